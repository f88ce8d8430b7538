"""The peer links of a replicated server: one TCP connection per direction per peer.

Each server dials every other server and sends on that outbound connection only; what
it receives arrives on the connections the others dialled. A break of either direction
is reported as ``link_down`` (Zab treats it as the loss of everything in flight), a new
outbound connection as ``link_up``. Frames are ``kernel.zab.wire`` values; the first
frame of every connection is a ``Hello`` naming the dialler.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from kernel.config import PeerAddress
from kernel.errors import ProtocolError
from kernel.forwarding import Forward, ForwardSync, Owned, SyncDone, Touch
from kernel.records import (
    ACL,
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    Id,
    MultiRequest,
    ReconfigRequest,
    SetACLRequest,
    SetDataRequest,
)
from kernel.txn_codec import decode_txn, encode_txn
from kernel.zab import messages as m
from kernel.zab.wire import Registry, frame_length

log = logging.getLogger(__name__)

# A peer that does not drain this much queued output is too slow: drop the link (it
# re-syncs) rather than buffer without bound.
MAX_BUFFERED = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Hello:
    """First frame of a connection: who dialled."""

    sid: int


def peer_registry() -> Registry:
    """Every record type a peer link carries, with its stable code."""
    reg = Registry()
    for code, cls in enumerate((
            Hello, m.Vote, m.Notification, m.FollowerInfo, m.LeaderInfo, m.AckEpoch,
            m.SyncDiff, m.SyncTrunc, m.SyncSnap, m.NewLeader, m.AckNewLeader, m.UpToDate,
            m.Proposal, m.Ack, m.Commit, m.Ping, m.PingAck, Forward, ForwardSync, SyncDone,
            Touch, Id, ACL, CreateRequest, DeleteRequest, SetDataRequest, SetACLRequest,
            CheckVersionRequest, MultiRequest, ReconfigRequest, m.Proposals, Owned),
            start=1):
        reg.register(code, cls)
    reg.register_fast(b"P", m.Proposal, lambda v: encode_txn(v.txn),
                      lambda b: m.Proposal(decode_txn(bytes(b))))
    reg.register_fast(b"B", m.Proposals, _encode_batch, _decode_batch)
    reg.register_fast(b"A", m.Ack, lambda v: _Q.pack(v.zxid),
                      lambda b: m.Ack(_unpack_q(b)))
    reg.register_fast(b"C", m.Commit, lambda v: _Q.pack(v.zxid),
                      lambda b: m.Commit(_unpack_q(b)))
    return reg


_Q = struct.Struct(">q")
_I = struct.Struct(">I")


def _encode_batch(v: m.Proposals) -> bytes:
    parts = [_I.pack(len(v.txns))]
    for t in v.txns:
        b = encode_txn(t)
        parts.append(_I.pack(len(b)))
        parts.append(b)
    return b"".join(parts)


def _decode_batch(b: memoryview) -> m.Proposals:
    n = _I.unpack_from(b, 0)[0]
    pos = 4
    txns = []
    if n > len(b):
        raise ProtocolError("impossible batch size")
    for _ in range(n):
        size = _I.unpack_from(b, pos)[0]
        pos += 4
        if pos + size > len(b):
            raise ProtocolError("batch truncated")
        txns.append(decode_txn(bytes(b[pos:pos + size])))
        pos += size
    if pos != len(b):
        raise ProtocolError("trailing bytes after a batch")
    return m.Proposals(txns)


def _unpack_q(b: memoryview) -> int:
    if len(b) != 8:
        raise ProtocolError("bad length")
    return int(_Q.unpack(b)[0])


class _Inbound(asyncio.Protocol):
    def __init__(self, links: PeerLinks) -> None:
        self.links = links
        self.buf = bytearray()
        self.sid = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        try:
            while len(buf) - pos >= 4:
                n = frame_length(memoryview(buf)[pos:pos + 4])
                if len(buf) - pos - 4 < n:
                    break
                msg = self.links.registry.decode(memoryview(buf)[pos + 4:pos + 4 + n])
                pos += 4 + n
                if self.sid == 0:
                    if not isinstance(msg, Hello) or msg.sid not in self.links.peers:
                        raise ProtocolError(f"unexpected first frame {msg!r}")
                    self.sid = msg.sid
                    self.links.inbound_up(self)
                    continue
                self.links.on_message(self.sid, msg)
        except ProtocolError as e:
            log.warning("peer link from %s: %s; closing", self.sid or "?", e)
            del buf[:pos]
            assert self.transport is not None
            self.transport.close()
            return
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.sid:
            self.links.inbound_down(self)


class _Outbound(asyncio.Protocol):
    def __init__(self, links: PeerLinks, sid: int) -> None:
        self.links = links
        self.sid = sid
        self.transport: asyncio.Transport | None = None
        # Frames queued this loop turn: one write (one syscall) per turn per link.
        self.chunks: list[bytes] = []
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        pass  # nothing is sent back on an outbound connection

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class PeerLinks:
    """Connections to every other voter; delivers decoded messages to ``on_message``."""

    def __init__(self, sid: int, peers: dict[int, PeerAddress],
                 on_message: Callable[[int, object], None],
                 on_up: Callable[[int], None], on_down: Callable[[int], None],
                 server_ssl: ssl.SSLContext | None = None,
                 client_ssl: ssl.SSLContext | None = None) -> None:
        self.sid = sid
        self.me = peers[sid]
        self.peers = {s: a for s, a in peers.items() if s != sid}
        self.registry = peer_registry()
        self.on_message = on_message
        self._on_up = on_up
        self._on_down = on_down
        self._out: dict[int, _Outbound] = {}
        self._in: dict[int, _Inbound] = {}
        self._server: asyncio.AbstractServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.bytes_sent = 0
        # sslQuorum: both directions mutually authenticated TLS.
        self._server_ssl = server_ssl
        self._client_ssl = client_ssl
        self._dirty: list[_Outbound] = []
        self._flush_scheduled = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Inbound(self), self.me.host,
                                                self.me.quorum_port, reuse_address=True,
                                                ssl=self._server_ssl)
        for sid in sorted(self.peers):
            self._tasks.append(loop.create_task(self._dial_forever(sid)))

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for o in list(self._out.values()):
            if o.transport is not None:
                o.transport.abort()
        for i in list(self._in.values()):
            if i.transport is not None:
                i.transport.abort()
        if self._server is not None:
            self._server.close()

    async def _dial_forever(self, sid: int) -> None:
        """Keep one outbound connection to ``sid`` for as long as we run."""
        while True:
            try:
                await self._dial_once(sid)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Nothing may end this loop: a dead dialler would cut us off from the
                # peer for good (e.g. uvloop raises RuntimeError writing to a
                # connection the peer reset right after accepting it).
                log.exception("peer link to %d failed; redialling", sid)
                await asyncio.sleep(0.2)

    async def _dial_once(self, sid: int) -> None:
        addr = self.peers[sid]
        loop = asyncio.get_running_loop()
        delay = 0.05
        while True:
            try:
                _, proto = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: _Outbound(self, sid), addr.host, addr.quorum_port,
                        ssl=self._client_ssl,
                        server_hostname=addr.host if self._client_ssl else None),
                    timeout=5)
            except (TimeoutError, OSError):  # ssl.SSLError is an OSError: retried
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            transport = proto.transport
            if transport is None or proto.closed.done() or transport.is_closing():
                await asyncio.sleep(delay)
                continue
            delay = 0.05
            try:
                transport.write(self.registry.encode(Hello(self.sid)))
            except RuntimeError:
                transport.abort()
                await asyncio.sleep(delay)
                continue
            self._out[sid] = proto
            self._on_up(sid)
            await proto.closed
            if self._out.get(sid) is proto:
                del self._out[sid]
            self._on_down(sid)
            await asyncio.sleep(0.05)

    def inbound_up(self, conn: _Inbound) -> None:
        old = self._in.get(conn.sid)
        self._in[conn.sid] = conn
        if old is not None and old.transport is not None:
            old.sid = 0  # its loss is not news any more
            old.transport.abort()
            self._on_down(conn.sid)

    def inbound_down(self, conn: _Inbound) -> None:
        if self._in.get(conn.sid) is conn:
            del self._in[conn.sid]
            self._on_down(conn.sid)

    def send(self, sid: int, msg: object) -> None:
        """Queue ``msg`` to ``sid``; dropped when the link is down."""
        out = self._out.get(sid)
        if out is None or out.transport is None or out.transport.is_closing():
            return
        self.send_bytes(out, self.registry.encode(msg))

    def send_encoded(self, sid: int, frame: bytes) -> None:
        out = self._out.get(sid)
        if out is None or out.transport is None or out.transport.is_closing():
            return
        self.send_bytes(out, frame)

    def send_bytes(self, out: _Outbound, frame: bytes) -> None:
        if not out.chunks:
            self._dirty.append(out)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)
        out.chunks.append(frame)
        self.bytes_sent += len(frame)

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        for out in dirty:
            chunks, out.chunks = out.chunks, []
            t = out.transport
            if t is None or t.is_closing():
                continue
            if t.get_write_buffer_size() > MAX_BUFFERED:
                log.warning("peer %d is not keeping up; dropping the link", out.sid)
                t.abort()
                continue
            t.write(b"".join(chunks) if len(chunks) > 1 else chunks[0])

    def connected(self) -> list[int]:
        return sorted(s for s in self._out if s in self._in)
