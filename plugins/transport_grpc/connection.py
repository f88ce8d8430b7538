"""One zkernel session as seen by the gRPC transport: the kernel's ClientConnection.

gRPC calls are independent HTTP/2 streams, but the kernel serves a session through
one connection object (per-session FIFO, watches, auth ids). ``GrpcConnection`` is
that object: every call naming the session (metadata ``zk-session``) goes through it,
whatever channel it arrives on. It numbers requests (xids), turns the kernel's replies
into protobuf messages while the values are still current, and keeps the session's
watch events in a bounded log that event streams read from.

The event log holds at most ``max_events`` events. A stream that falls further behind
(a slow reader while events flood in), or a resume from a zxid whose later events were
already dropped, ends with an error instead of growing memory: see docs/grpc.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from kernel.api import Id, Kernel, Session
from plugins.transport_grpc.errors import CONNECTION_LOSS, SESSION_EXPIRED, CallError

if TYPE_CHECKING:
    from plugins.transport_grpc.server import GrpcTransport

log = logging.getLogger(__name__)

#: How long a call waits for the kernel to establish or refuse a session (seconds).
HANDSHAKE_TIMEOUT = 30.0

#: Turns a reply value into the response (called inside ``send_response``).
Convert = Callable[[object], Any]


class Reply(NamedTuple):
    """A kernel reply: the zxid, the ZooKeeper error code (0 for success) and the
    converted value (None on error)."""

    zxid: int
    err: int
    value: Any


class Event(NamedTuple):
    """One watch event in a session's log; ``seq`` numbers them per connection."""

    seq: int
    zxid: int
    type: int
    path: str


class GrpcConnection:
    """The kernel's ClientConnection for one session served over gRPC."""

    def __init__(self, transport: GrpcTransport, remote_address: str,
                 max_events: int) -> None:
        self.transport = transport
        self.kernel: Kernel = transport.kernel
        self.remote_address = remote_address
        self.ids: list[Id] = [Id("ip", remote_address)]
        self.session: Session | None = None
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._handshake: asyncio.Future[bool] = self._loop.create_future()
        self._xid = 0
        self._calls: dict[int, tuple[asyncio.Future[Reply], Convert]] = {}
        # The watch-event log: events[i].seq == first_seq + i.
        self.max_events = max_events
        self.events: deque[Event] = deque()
        self.first_seq = 0
        self.next_seq = 0
        self.delivered = 0  # every event before this seq was written to some stream
        self.dropped_zxid = -1  # zxid of the newest event dropped from the log
        self._changed: asyncio.Event | None = None

    # -- calls ---------------------------------------------------------------------------

    async def handshake(self, timeout: float = HANDSHAKE_TIMEOUT) -> bool:
        """Wait for the kernel to establish (True) or refuse (False) the session;
        CallError CONNECTION_LOSS if it does neither within ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._handshake), timeout)
        except TimeoutError:
            self.close()
            raise CallError(CONNECTION_LOSS, "the server did not establish the session "
                                             f"within {timeout:g}s") from None

    def call(self, op: int, request: object, convert: Convert) -> asyncio.Future[Reply]:
        """Submit one request; the future resolves with its Reply, in session order."""
        fut: asyncio.Future[Reply] = self._loop.create_future()
        if self.closed or self.session is None:
            fut.set_exception(CallError(CONNECTION_LOSS, "the session's connection closed"))
            return fut
        xid = self._xid = (self._xid + 1) & 0x7FFFFFFF
        self._calls[xid] = (fut, convert)
        self.kernel.submit(self, xid, op, request)
        return fut

    # -- kernel → client (ClientConnection) ----------------------------------------------

    def send_response(self, xid: int, zxid: int, err: int, op: int, value: object) -> None:
        entry = self._calls.pop(xid, None)
        if entry is None:
            return
        fut, convert = entry
        if fut.done():
            return  # the call was cancelled
        if err:
            fut.set_result(Reply(zxid, err, None))
            return
        try:
            out = convert(value)
        except Exception as e:  # a bug in a converter must not hit the kernel
            log.exception("cannot convert the reply to op %d", op)
            fut.set_exception(e)
            return
        fut.set_result(Reply(zxid, 0, out))

    def session_established(self, session: Session) -> None:
        self.session = session
        if not self._handshake.done():
            self._handshake.set_result(True)

    def session_refused(self) -> None:
        if not self._handshake.done():
            self._handshake.set_result(False)
        self.close()

    def notify(self, event_type: int, path: str, zxid: int) -> None:
        if self.closed:
            return
        events = self.events
        events.append(Event(self.next_seq, zxid, event_type, path))
        self.next_seq += 1
        if len(events) > self.max_events:
            old = events.popleft()
            self.first_seq = old.seq + 1
            self.dropped_zxid = old.zxid
        self._wake()

    def close(self) -> None:
        """Detach from the session: the kernel closed this connection (session ended,
        auth failed, or another connection took the session over)."""
        if self.closed:
            return
        self.closed = True
        if not self._handshake.done():
            self._handshake.set_result(False)
        calls, self._calls = self._calls, {}
        for fut, _ in calls.values():
            if not fut.done():
                fut.set_exception(CallError(self.lost_code(),
                                            "the session's connection closed"))
        self._wake()
        self.transport.forget(self)
        # Not re-entrant: the kernel may be in the middle of closing the session.
        self._loop.call_soon(self.kernel.disconnect, self)

    def lost_code(self) -> int:
        """Why calls on a closed connection fail: the session ended, or only this
        connection to it did."""
        sess = self.session
        if sess is None or sess.closing:
            return SESSION_EXPIRED
        return CONNECTION_LOSS

    # -- the event log -------------------------------------------------------------------

    def _wake(self) -> None:
        ev = self._changed
        if ev is not None:
            self._changed = None
            ev.set()

    async def changed(self) -> None:
        """Wait for a new event or for the connection to close."""
        if self._changed is None:
            self._changed = asyncio.Event()
        await self._changed.wait()

    def start(self, after_zxid: int) -> int | None:
        """The seq a new stream starts at, or None if events it should get were dropped.

        ``after_zxid`` 0: the first event not yet delivered on any stream. Otherwise the
        first retained event with a larger zxid."""
        if after_zxid <= 0:
            return self.delivered if self.delivered >= self.first_seq else None
        if self.dropped_zxid > after_zxid:
            return None
        for ev in self.events:
            if ev.zxid > after_zxid:
                return ev.seq
        return self.next_seq

    def take(self, seq: int) -> list[Event]:
        """The events from ``seq`` on that share its zxid (one transaction's events)."""
        events = self.events
        i = seq - self.first_seq
        if i < 0 or i >= len(events):
            return []
        zxid = events[i].zxid
        out = []
        n = len(events)
        while i < n and events[i].zxid == zxid:
            out.append(events[i])
            i += 1
        return out
