"""The Jute transport: listens on clientPort (and secureClientPort, over TLS) and speaks
the stock client protocol."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from typing import Any

from kernel.api import Kernel
from plugins.transport_jute.connection import JuteConnection
from plugins.transport_jute.fourletter import FourLetterWords
from plugins.transport_jute.tls import TlsJuteConnection, TlsListener

log = logging.getLogger(__name__)


class JuteTransport:
    """The client-port listeners (plain and/or TLS); holds their connections for the
    four-letter words. ``port`` None: no plaintext listener (TLS only)."""

    name = "jute"

    def __init__(self, kernel: Kernel, host: str, port: int | None,
                 tls: TlsListener | None = None) -> None:
        self.kernel = kernel
        self.host = host
        self.port = port
        self.tls = tls
        self.connections: set[JuteConnection] = set()
        self._per_ip: Counter[str] = Counter()
        self.four_letter_words = FourLetterWords(self)
        self._server: asyncio.base_events.Server | None = None
        raw = kernel.config.get("nio.sessionlessCnxnTimeout")
        self.sessionless_timeout = (int(raw) if raw else 10000) / 1000

    def admit(self, conn: JuteConnection) -> bool:
        """Apply maxClientCnxns (per client IP, 0 = unlimited) and register ``conn``."""
        limit = self.kernel.config.max_client_cnxns
        if limit > 0 and self._per_ip[conn.remote_address] >= limit:
            return False
        self._per_ip[conn.remote_address] += 1
        self.connections.add(conn)
        self.kernel.register_connection(conn)
        return True

    def forget(self, conn: JuteConnection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self._per_ip[conn.remote_address] -= 1
            if self._per_ip[conn.remote_address] <= 0:
                del self._per_ip[conn.remote_address]

    def _listen(self, host: str, port: int) -> socket.socket:
        backlog = self.kernel.config.listen_backlog
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                             socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            raise OSError(e.errno, f"cannot listen on {host}:{port}: "
                                   f"{e.strerror}") from None
        sock.listen(backlog if backlog > 0 else 1024)
        sock.setblocking(False)
        return sock

    async def serve(self, task_status: Any) -> None:
        loop = asyncio.get_running_loop()
        servers: list[asyncio.base_events.Server] = []
        watcher: asyncio.Task[None] | None = None
        try:
            if self.port is not None:
                sock = self._listen(self.host, self.port)
                self.port = sock.getsockname()[1]
                self._server = await loop.create_server(lambda: JuteConnection(self),
                                                        sock=sock)
                servers.append(self._server)
                log.info("serving the ZooKeeper client protocol on %s:%d", self.host,
                         self.port)
            tls = self.tls
            if tls is not None:
                tsock = self._listen(tls.host, tls.port)
                tls.port = tsock.getsockname()[1]
                servers.append(await loop.create_server(
                    lambda: TlsJuteConnection(self), sock=tsock,
                    ssl=tls.contexts.context,
                    ssl_handshake_timeout=tls.settings.handshake_timeout))
                log.info("serving the ZooKeeper client protocol over TLS on %s:%d "
                         "(ssl.clientAuth=%s)", tls.host, tls.port, tls.settings.client_auth)
                if tls.settings.reload:
                    watcher = asyncio.ensure_future(tls.contexts.watch())
            task_status.started(self.port if self.port is not None
                                else tls.port if tls is not None else 0)
            await asyncio.Event().wait()
        finally:
            if watcher is not None:
                watcher.cancel()
            for srv in servers:
                srv.close()
            for c in list(self.connections):
                if c.transport is not None:
                    c.transport.abort()
