"""One client connection speaking the ZooKeeper wire protocol (an asyncio Protocol).

Reading: every complete frame in the buffer is decoded and handed to the kernel in one
pass. Writing: replies and notifications are queued and written with one ``write`` per
loop turn. Malformed, truncated or oversized input closes only this connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from kernel.api import (
    XID_AUTH,
    XID_PING,
    Id,
    Kernel,
    MarshallingError,
    OpCode,
    PathWatchRequest,
    ProtocolError,
    Session,
)
from plugins.transport_jute import codec
from plugins.transport_jute.fourletter import FOUR_LETTER_CODES

if TYPE_CHECKING:
    from plugins.transport_jute.server import JuteTransport

log = logging.getLogger(__name__)

_INIT, _CONNECTING, _ESTABLISHED, _CLOSED = range(4)
_unpack_len = codec.LEN.unpack_from
_unpack_req = codec.REQ_HEADER.unpack_from
_encode_reply = codec.encode_reply
_DECODERS = codec.DECODERS
_PING = int(OpCode.PING)
_PATH_WATCH_OPS = frozenset({int(OpCode.GET_DATA), int(OpCode.EXISTS),
                             int(OpCode.GET_CHILDREN), int(OpCode.GET_CHILDREN2)})


class JuteConnection(asyncio.Protocol):
    """The server side of one client connection."""

    def __init__(self, server: JuteTransport) -> None:
        self.server = server
        self.kernel: Kernel = server.kernel
        self.maxbuf = server.kernel.config.jute_maxbuffer
        self.transport: asyncio.Transport | None = None
        self.state = _INIT
        self.buf = bytearray()
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.close_after_flush = False
        self.ids: list[Id] = []
        self.remote_address = ""
        self.remote_port = 0
        self.session: Session | None = None
        self.with_read_only = True
        self._handshake_timer: asyncio.TimerHandle | None = None
        # Connection statistics for cons / stat.
        self.received = 0
        self.sent = 0
        self.established_ms = 0
        self.last_op_code: int | None = None
        self.last_cxid = -1
        self.last_zxid = -1
        self.last_response_ms = 0
        self.latency_min = -1
        self.latency_max = 0
        self.latency_total = 0
        self.latency_count = 0

    # -- asyncio callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.remote_address, self.remote_port = str(peer[0]), int(peer[1])
        if not self.server.admit(self):
            log.warning("too many connections from %s (maxClientCnxns)", self.remote_address)
            self.state = _CLOSED
            transport.abort()
            return
        self.ids = [Id("ip", self.remote_address)]
        # A connection that never completes its handshake is dropped (ZooKeeper's
        # zookeeper.nio.sessionlessCnxnTimeout, 10 s).
        loop = asyncio.get_running_loop()
        self._handshake_timer = loop.call_later(self.server.sessionless_timeout,
                                                self._handshake_timeout)

    def _handshake_timeout(self) -> None:
        self._handshake_timer = None
        if self.state in (_INIT, _CONNECTING) and self.session is None:
            self._fail("no session established within the sessionless timeout")

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = _CLOSED
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self.server.forget(self)
        self.kernel.disconnect(self)

    def data_received(self, data: bytes) -> None:
        if self.state == _CLOSED:
            return
        buf = self.buf
        if buf:
            buf += data
        else:
            buf = self.buf = bytearray(data)
        if self.state == _INIT and not self._maybe_four_letter_word():
            return
        try:
            self._process()
        except ProtocolError as e:
            self._fail(str(e))

    # -- framing ---------------------------------------------------------------------

    def _maybe_four_letter_word(self) -> bool:
        """True if the input is (or may still be) a normal frame stream."""
        if len(self.buf) < 4:
            return False
        code = _unpack_len(self.buf, 0)[0]
        word = FOUR_LETTER_CODES.get(code)
        if word is None:
            return True
        if word == "stmk" and len(self.buf) < 12:
            return False
        self.state = _CLOSED
        self.received += 1
        self.server.kernel.stats.packets_received += 1
        try:
            answer = self.server.four_letter_words.answer(word, bytes(self.buf[4:12]), self)
        except Exception:
            log.exception("four-letter word %s failed", word)
            answer = ""
        assert self.transport is not None
        self.transport.write(answer.encode("utf-8"))
        self.server.kernel.stats.packets_sent += 1
        self.transport.close()
        return False

    def _process(self) -> None:
        buf = self.buf
        pos = 0
        n = len(buf)
        maxbuf = self.maxbuf
        count = 0
        while self.state != _CLOSED and n - pos >= 4:
            if self.state == _CONNECTING:
                break  # wait for the session before reading further frames
            length = _unpack_len(buf, pos)[0]
            if length < 0 or length > maxbuf:
                del buf[:pos]
                self._fail(f"frame length {length} outside 0..{maxbuf}")
                return
            end = pos + 4 + length
            if end > n:
                break
            payload = bytes(buf[pos + 4:end])
            pos = end
            count += 1
            if self.state == _ESTABLISHED:
                self._request(payload)
            else:
                self._connect(payload)
        del buf[:pos]
        self.received += count
        self.server.kernel.stats.packets_received += count

    def _connect(self, payload: bytes) -> None:
        try:
            req = codec.decode_connect(payload)
        except ProtocolError as e:
            self._fail(f"bad ConnectRequest: {e}")
            return
        self.with_read_only = req.has_read_only
        self.state = _CONNECTING
        self.last_op_code = int(OpCode.CREATE_SESSION)
        if not self.kernel.connect(self, req.last_zxid_seen, req.timeout, req.session_id,
                                   req.password, req.read_only):
            self._fail("client has seen a newer zxid than this server, or it does not "
                       "accept a read-only server")

    def _request(self, payload: bytes) -> None:
        if len(payload) < 8:
            self._fail("request shorter than its header")
            return
        xid, op = _unpack_req(payload, 0)
        if xid >= 0:
            self.last_cxid = xid
        dec = _DECODERS.get(op)
        if dec is None or op == OpCode.CHECK:
            # Unknown opcode (or a bare check): Unimplemented, then close.
            self.send_response(xid, -1, -6, op, None)
            self.close()
            return
        self.last_op_code = op
        if op in _PATH_WATCH_OPS:
            # Hot path (getData/exists/getChildren): path + watch flag, no Reader.
            n = _unpack_len(payload, 8)[0] if len(payload) >= 13 else -1
            if 0 <= n and len(payload) == 13 + n:
                path = payload[12:12 + n].decode("utf-8", "replace")
                self.kernel.submit(self, xid, op, PathWatchRequest(path, payload[-1] != 0))
                return
        try:
            request = codec.decode_request(op, payload, self.maxbuf)
        except MarshallingError:
            # Answer in order with the requests before it.
            sess = self.session
            if sess is not None:
                self.kernel.submit_error(self, xid, op, MarshallingError.code)
            return
        self.kernel.submit(self, xid, op, request)

    # -- kernel → client ---------------------------------------------------------------

    def session_established(self, session: Session) -> None:
        self.session = session
        self.state = _ESTABLISHED
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self.established_ms = int(time.time() * 1000)
        self._queue(codec.encode_connect_response(session.timeout, session.id,
                                                  session.password, session.read_only,
                                                  self.with_read_only))
        if self.buf:
            # Frames the client pipelined behind the ConnectRequest.
            asyncio.get_running_loop().call_soon(self._resume)

    def _resume(self) -> None:
        if self.state == _ESTABLISHED and self.buf:
            try:
                self._process()
            except ProtocolError as e:
                self._fail(str(e))

    def session_refused(self) -> None:
        self._queue(codec.encode_connect_response(0, 0, b"\x00" * 16, False,
                                                  self.with_read_only))
        self.close()

    def send_response(self, xid: int, zxid: int, err: int, op: int, value: object) -> None:
        if self.state == _CLOSED:
            return
        if op == _PING:
            frame = codec.LEN_HEADER.pack(16, XID_PING, zxid, 0)
        elif op == OpCode.AUTH:
            frame = codec.LEN_HEADER.pack(16, XID_AUTH, 0, err)
        else:
            frame = _encode_reply(xid, zxid, err, op, value)
        self.last_zxid = zxid
        self._queue(frame)

    def notify(self, event_type: int, path: str, zxid: int) -> None:
        if self.state == _CLOSED:
            return
        self._queue(codec.encode_notification(event_type, path, zxid))

    def close(self) -> None:
        """Close once everything queued is written."""
        if self.state == _CLOSED:
            return
        self.state = _CLOSED
        self.close_after_flush = True
        if not self.flush_scheduled:
            self._flush()

    def _fail(self, reason: str) -> None:
        log.warning("closing connection from %s:%s: %s", self.remote_address,
                    self.remote_port, reason)
        self.buf.clear()
        self.close()

    # -- output ------------------------------------------------------------------------

    def _queue(self, frame: bytes) -> None:
        self.out.append(frame)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        out = self.out
        t = self.transport
        if out and t is not None and not t.is_closing():
            n = len(out)
            t.write(b"".join(out) if n > 1 else out[0])
            self.sent += n
            self.server.kernel.stats.packets_sent += n
            self.out = []
        if self.close_after_flush and t is not None:
            t.close()
