"""Controllable TCP forwarders on 127.0.0.1 for cutting links between ensemble peers.

One :class:`LinkProxy` forwards one directed peer link (server *i* dialing server *j* on
one of *j*'s peer ports).  All proxies of a test share one asyncio loop running in a
daemon thread (:class:`ProxyHub`), so 40 links cost one thread.

A cut link stops forwarding at once, closes (with RST) every connection it carries, and
accepts-then-resets every new connection until healed; the listening socket stays bound
the whole time so no other process can take its port.  Only 127.0.0.1 is ever bound or
dialed.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

LOOPBACK = "127.0.0.1"
T = TypeVar("T")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close a connection with RST (SO_LINGER 0) so the peer notices immediately."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class LinkProxy:
    """Forward connections from ``127.0.0.1:listen_port`` to ``127.0.0.1:target_port``."""

    #: How long to keep redialing a target that refuses before resetting the client.
    DIAL_WINDOW_S = 1.0

    def __init__(self, hub: ProxyHub, name: str, target_port: int) -> None:
        self.hub = hub
        self.dial_window = self.DIAL_WINDOW_S
        self.name = name
        self.target_port = target_port
        self.listen_port = 0
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._cut = False
        self.accepted = 0  # connections forwarded since start (for diagnostics)

    # -- called on the hub's loop -------------------------------------------------------
    async def _start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, LOOPBACK, 0, reuse_address=True, backlog=64)
        self.listen_port = int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        if self._cut:
            _reset(cwriter)
            return
        # The kernel completed the client's handshake before we could look at the target,
        # so a refused upstream dial cannot be passed on as a refusal.  Keep dialing for
        # DIAL_WINDOW_S instead: a peer that is about to listen (a freshly elected leader)
        # looks merely slow, as it would without the proxy when the dialer retries; a dead
        # peer's connection is reset after the window.
        give_up = asyncio.get_running_loop().time() + self.dial_window
        while True:
            try:
                sreader, swriter = await asyncio.wait_for(
                    asyncio.open_connection(LOOPBACK, self.target_port), timeout=2.0)
                break
            except (TimeoutError, OSError):
                if self._cut or asyncio.get_running_loop().time() >= give_up:
                    _reset(cwriter)
                    return
                await asyncio.sleep(0.02)
        if self._cut:  # cut while we were dialing
            _reset(cwriter)
            _reset(swriter)
            return
        self.accepted += 1
        pair = (cwriter, swriter)
        self._conns.add(pair)
        try:
            await asyncio.gather(self._pump(creader, swriter), self._pump(sreader, cwriter))
        finally:
            self._conns.discard(pair)
            for w in pair:
                if not w.transport.is_closing():
                    w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction.  A clean EOF is passed on as a FIN (half-close, as TCP
        would); a reset, an error or a cut resets the other side too."""
        reset = True
        try:
            while not self._cut:
                data = await reader.read(65536)
                if not data:
                    reset = self._cut
                    break
                if self._cut:
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if reset:
                _reset(writer)
            elif not writer.transport.is_closing():
                try:
                    writer.write_eof()
                except (OSError, RuntimeError):
                    _reset(writer)

    async def _set_cut(self, cut: bool) -> None:
        self._cut = cut
        if cut:
            for cw, sw in list(self._conns):
                _reset(cw)
                _reset(sw)
            self._conns.clear()

    async def _close(self) -> None:
        await self._set_cut(True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- thread-safe API ----------------------------------------------------------------
    @property
    def is_cut(self) -> bool:
        return self._cut

    def cut(self) -> None:
        self.hub.run(self._set_cut(True))

    def heal(self) -> None:
        self.hub.run(self._set_cut(False))

    def __repr__(self) -> str:
        state = "cut" if self._cut else "up"
        return f"<LinkProxy {self.name} :{self.listen_port}->:{self.target_port} {state}>"


class ProxyHub:
    """An asyncio loop in a daemon thread that runs every :class:`LinkProxy` of a test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.proxies: list[LinkProxy] = []
        self._thread = threading.Thread(target=self._run, name="link-proxies", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def set_cut(self, changes: list[tuple[LinkProxy, bool]]) -> None:
        """Cut/heal several links in one step on the loop (no traffic in between)."""

        async def apply() -> None:
            for proxy, cut in changes:
                await proxy._set_cut(cut)

        self.run(apply())

    def add(self, name: str, target_port: int) -> LinkProxy:
        proxy = LinkProxy(self, name, target_port)
        self.run(proxy._start())
        self.proxies.append(proxy)
        return proxy

    def close(self) -> None:
        if self.loop.is_closed():
            return
        for p in self.proxies:
            try:
                self.run(p._close(), timeout=5.0)
            except Exception:  # noqa: BLE001 - best-effort teardown
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self.loop.close()
