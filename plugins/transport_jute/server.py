"""The Jute transport: listens on clientPort and speaks the stock client protocol."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from typing import Any

from kernel.api import Kernel
from plugins.transport_jute.connection import JuteConnection
from plugins.transport_jute.fourletter import FourLetterWords

log = logging.getLogger(__name__)


class JuteTransport:
    """The client-port listener; holds its connections for the four-letter words."""

    name = "jute"

    def __init__(self, kernel: Kernel, host: str, port: int) -> None:
        self.kernel = kernel
        self.host = host
        self.port = port
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

    async def serve(self, task_status: Any) -> None:
        loop = asyncio.get_running_loop()
        backlog = self.kernel.config.listen_backlog
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET,
                             socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as e:
            sock.close()
            raise OSError(e.errno, f"cannot listen on {self.host}:{self.port}: "
                                   f"{e.strerror}") from None
        sock.listen(backlog if backlog > 0 else 1024)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._server = await loop.create_server(lambda: JuteConnection(self), sock=sock)
        log.info("serving the ZooKeeper client protocol on %s:%d", self.host, self.port)
        task_status.started(self.port)
        try:
            await asyncio.Event().wait()
        finally:
            self._server.close()
            for c in list(self.connections):
                if c.transport is not None:
                    c.transport.abort()
