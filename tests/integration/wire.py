"""A tiny raw ZooKeeper wire client for protocol tests.

Deliberately self-contained: it encodes and decodes the Jute records with ``struct`` and
shares no code with the server's codec, so the wire tests exercise a genuine second
implementation of the protocol (layouts from the protocol reference, §1-§5).

Every socket read has a deadline; a test never hangs on a silent server.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# --------------------------------------------------------------------------- constants

OP = {
    "notification": 0, "create": 1, "delete": 2, "exists": 3, "getData": 4, "setData": 5,
    "getACL": 6, "setACL": 7, "getChildren": 8, "sync": 9, "ping": 11, "getChildren2": 12,
    "check": 13, "multi": 14, "create2": 15, "reconfig": 16, "checkWatches": 17,
    "removeWatches": 18, "createContainer": 19, "deleteContainer": 20, "createTTL": 21,
    "multiRead": 22, "auth": 100, "setWatches": 101, "sasl": 102, "getEphemerals": 103,
    "getAllChildrenNumber": 104, "setWatches2": 105, "addWatch": 106, "whoAmI": 107,
    "closeSession": -11, "error": -1,
}

OK = 0
RUNTIME_INCONSISTENCY = -2
MARSHALLING_ERROR = -5
UNIMPLEMENTED = -6
BAD_ARGUMENTS = -8
NO_NODE = -101
NO_AUTH = -102
BAD_VERSION = -103
NO_CHILDREN_FOR_EPHEMERALS = -108
NODE_EXISTS = -110
NOT_EMPTY = -111
INVALID_ACL = -114
AUTH_FAILED = -115
NO_WATCHER = -121
RECONFIG_DISABLED = -123

NODE_CREATED, NODE_DELETED, NODE_DATA_CHANGED, NODE_CHILDREN_CHANGED = 1, 2, 3, 4
SYNC_CONNECTED = 3

PERM_READ, PERM_WRITE, PERM_CREATE, PERM_DELETE, PERM_ADMIN, PERM_ALL = 1, 2, 4, 8, 16, 31
OPEN_ACL = [(PERM_ALL, "world", "anyone")]

XID_NOTIFICATION, XID_PING, XID_AUTH, XID_SET_WATCHES = -1, -2, -4, -8
JUTE_MAXBUFFER = 0xFFFFF
DEFAULT_TIMEOUT = 10.0


class DecodeError(Exception):
    """A frame does not match the expected record layout."""


# --------------------------------------------------------------------------- encoding


class Writer:
    """Jute binary archive writer (big-endian)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def int(self, v: int) -> Writer:
        self.parts.append(struct.pack(">i", v))
        return self

    def long(self, v: int) -> Writer:
        self.parts.append(struct.pack(">q", v))
        return self

    def bool(self, v: bool) -> Writer:
        self.parts.append(b"\x01" if v else b"\x00")
        return self

    def buffer(self, b: bytes | None) -> Writer:
        if b is None:
            return self.int(-1)
        self.int(len(b))
        self.parts.append(bytes(b))
        return self

    def ustring(self, s: str | bytes | None) -> Writer:
        if s is None:
            return self.int(-1)
        return self.buffer(s.encode("utf-8", "surrogatepass") if isinstance(s, str) else s)

    def strings(self, items: Sequence[str] | None) -> Writer:
        if items is None:
            return self.int(-1)
        self.int(len(items))
        for s in items:
            self.ustring(s)
        return self

    def acl(self, acl: Sequence[tuple[int, str, str]] | None) -> Writer:
        if acl is None:
            return self.int(-1)
        self.int(len(acl))
        for perms, scheme, ident in acl:
            self.int(perms).ustring(scheme).ustring(ident)
        return self

    def raw(self, b: bytes) -> Writer:
        self.parts.append(b)
        return self

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def frame(payload: bytes) -> bytes:
    """Length-prefix a payload."""
    return struct.pack(">i", len(payload)) + payload


def connect_request(timeout: int = 30000, session_id: int = 0, passwd: bytes = bytes(16),
                    last_zxid: int = 0, read_only: bool | None = False,
                    protocol_version: int = 0) -> bytes:
    """ConnectRequest payload; ``read_only=None`` omits the trailing byte (44-byte form)."""
    w = (Writer().int(protocol_version).long(last_zxid).int(timeout).long(session_id)
         .buffer(passwd))
    if read_only is not None:
        w.bool(read_only)
    return w.bytes()


def header(xid: int, op: int) -> bytes:
    return struct.pack(">ii", xid, op)


# Request records (bodies, without the RequestHeader) -------------------------------

def create_body(path: str, data: bytes | None = b"", acl: Sequence[tuple[int, str, str]]
                | None = None, flags: int = 0) -> bytes:
    return (Writer().ustring(path).buffer(data).acl(OPEN_ACL if acl is None else acl)
            .int(flags).bytes())


def create_ttl_body(path: str, data: bytes | None = b"", acl: Sequence[tuple[int, str, str]]
                    | None = None, flags: int = 5, ttl: int = 60000) -> bytes:
    return create_body(path, data, acl, flags) + struct.pack(">q", ttl)


def path_version_body(path: str, version: int = -1) -> bytes:
    """DeleteRequest / CheckVersionRequest."""
    return Writer().ustring(path).int(version).bytes()


def path_watch_body(path: str, watch: bool = False) -> bytes:
    """ExistsRequest / GetDataRequest / GetChildren(2)Request."""
    return Writer().ustring(path).bool(watch).bytes()


def path_body(path: str) -> bytes:
    """GetACL / Sync / GetEphemerals / GetAllChildrenNumber requests."""
    return Writer().ustring(path).bytes()


def set_data_body(path: str, data: bytes | None, version: int = -1) -> bytes:
    return Writer().ustring(path).buffer(data).int(version).bytes()


def set_acl_body(path: str, acl: Sequence[tuple[int, str, str]] | None,
                 version: int = -1) -> bytes:
    return Writer().ustring(path).acl(acl).int(version).bytes()


def path_int_body(path: str, value: int) -> bytes:
    """Check/RemoveWatchesRequest (type) and AddWatchRequest (mode)."""
    return Writer().ustring(path).int(value).bytes()


def auth_body(scheme: str, auth: bytes, auth_type: int = 0) -> bytes:
    return Writer().int(auth_type).ustring(scheme).buffer(auth).bytes()


def set_watches_body(relative_zxid: int, data: Sequence[str] = (), exist: Sequence[str] = (),
                     child: Sequence[str] = (), persistent: Sequence[str] | None = None,
                     recursive: Sequence[str] | None = None) -> bytes:
    """SetWatches, or SetWatches2 when ``persistent``/``recursive`` are given."""
    w = (Writer().long(relative_zxid).strings(list(data)).strings(list(exist))
         .strings(list(child)))
    if persistent is not None or recursive is not None:
        w.strings(list(persistent or ())).strings(list(recursive or ()))
    return w.bytes()


def reconfig_body(joining: str | None = None, leaving: str | None = None,
                  new_members: str | None = None, cur_config_id: int = -1) -> bytes:
    return (Writer().ustring(joining).ustring(leaving).ustring(new_members)
            .long(cur_config_id).bytes())


def multi_body(ops: Iterable[tuple[int, bytes]]) -> bytes:
    """MultiOperationRecord: (MultiHeader{type,false,-1} + record)* + {-1,true,-1}."""
    w = Writer()
    for op, body in ops:
        w.int(op).bool(False).int(-1).raw(body)
    w.int(-1).bool(True).int(-1)
    return w.bytes()


# --------------------------------------------------------------------------- decoding


class Reader:
    """Jute binary archive reader that insists on consuming every byte."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise DecodeError(f"need {n} bytes at offset {self.pos}, frame has "
                              f"{len(self.data)}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def int(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def long(self) -> int:
        return int(struct.unpack(">q", self.take(8))[0])

    def bool(self) -> bool:
        return self.take(1) != b"\x00"

    def buffer(self) -> bytes | None:
        n = self.int()
        if n == -1:
            return None
        if n < -1:
            raise DecodeError(f"negative buffer length {n}")
        return self.take(n)

    def ustring(self) -> str | None:
        b = self.buffer()
        return None if b is None else b.decode("utf-8", "surrogateescape")

    def strings(self) -> list[str] | None:
        n = self.int()
        if n == -1:
            return None
        return [self.ustring() or "" for _ in range(n)]

    def stat(self) -> Stat:
        return Stat(self.long(), self.long(), self.long(), self.long(), self.int(), self.int(),
                    self.int(), self.long(), self.int(), self.int(), self.long())

    def acl(self) -> list[tuple[int, str, str]] | None:
        n = self.int()
        if n == -1:
            return None
        return [(self.int(), self.ustring() or "", self.ustring() or "") for _ in range(n)]

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def end(self) -> None:
        if self.pos != len(self.data):
            raise DecodeError(f"{len(self.data) - self.pos} unexpected trailing bytes")


@dataclass(frozen=True)
class Stat:
    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeralOwner: int  # wire field names, as in zookeeper.jute
    dataLength: int
    numChildren: int
    pzxid: int


@dataclass
class ConnectResponse:
    protocol_version: int
    timeout: int
    session_id: int
    passwd: bytes
    read_only: bool | None  # None: the byte was absent
    length: int


def decode_connect_response(payload: bytes) -> ConnectResponse:
    r = Reader(payload)
    pv, to, sid = r.int(), r.int(), r.long()
    pw = r.buffer() or b""
    ro: bool | None = None
    if r.remaining() == 1:
        ro = r.bool()
    r.end()
    return ConnectResponse(pv, to, sid, pw, ro, len(payload))


@dataclass
class ConnectRequestRecord:
    protocol_version: int
    last_zxid: int
    timeout: int
    session_id: int
    passwd: bytes | None
    read_only: bool | None


def decode_connect_request(payload: bytes) -> ConnectRequestRecord:
    r = Reader(payload)
    rec = ConnectRequestRecord(r.int(), r.long(), r.int(), r.long(), r.buffer(), None)
    if r.remaining() == 1:
        rec.read_only = r.bool()
    r.end()
    return rec


@dataclass
class MultiResult:
    type: int
    done: bool
    err: int
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reply:
    xid: int
    zxid: int
    err: int
    body: dict[str, Any]
    length: int
    raw: bytes = b""

    @property
    def is_notification(self) -> bool:
        return self.xid == XID_NOTIFICATION


def _multi_results(r: Reader, allowed_read: bool) -> list[MultiResult]:
    out: list[MultiResult] = []
    while True:
        typ, done, err = r.int(), r.bool(), r.int()
        if done:
            if typ != -1 or err != -1:
                raise DecodeError(f"bad multi terminator {typ},{done},{err}")
            return out
        res = MultiResult(typ, done, err)
        if typ == OP["create"]:
            res.body = {"path": r.ustring()}
        elif typ in (OP["create2"], OP["createContainer"], OP["createTTL"]):
            res.body = {"path": r.ustring(), "stat": r.stat()}
        elif typ in (OP["delete"], OP["check"]):
            pass
        elif typ == OP["setData"]:
            res.body = {"stat": r.stat()}
        elif typ == OP["error"]:
            res.body = {"err": r.int()}
        elif typ == OP["getData"] and allowed_read:
            res.body = {"data": r.buffer(), "stat": r.stat()}
        elif typ == OP["getChildren"] and allowed_read:
            res.body = {"children": r.strings()}
        else:
            raise DecodeError(f"unknown multi result type {typ}")
        out.append(res)


def decode_body(op: int | None, r: Reader) -> dict[str, Any]:
    """Decode a success response record for request opcode ``op``."""
    if op in (OP["create"], OP["sync"]):
        return {"path": r.ustring()}
    if op in (OP["create2"], OP["createContainer"], OP["createTTL"]):
        return {"path": r.ustring(), "stat": r.stat()}
    if op in (OP["exists"], OP["setData"], OP["setACL"]):
        return {"stat": r.stat()}
    if op in (OP["getData"], OP["reconfig"]):
        return {"data": r.buffer(), "stat": r.stat()}
    if op == OP["getACL"]:
        return {"acl": r.acl(), "stat": r.stat()}
    if op in (OP["getChildren"], OP["getEphemerals"]):
        return {"children": r.strings()}
    if op == OP["getChildren2"]:
        return {"children": r.strings(), "stat": r.stat()}
    if op in (OP["multi"], OP["multiRead"]):
        return {"results": _multi_results(r, op == OP["multiRead"])}
    if op in (OP["getAllChildrenNumber"], OP["addWatch"]):
        return {"int": r.int()}
    if op == OP["whoAmI"]:
        n = r.int()
        return {"clientInfo": [] if n == -1 else
                [(r.ustring() or "", r.ustring() or "") for _ in range(n)]}
    if op == OP["sasl"]:
        return {"token": r.buffer()}
    # delete, ping, auth, setWatches(2), check/removeWatches, closeSession: header only
    return {}


def decode_reply(payload: bytes, op: int | None) -> Reply:
    """Decode a server frame (without its length prefix) answering request ``op``."""
    r = Reader(payload)
    xid, zxid, err = r.int(), r.long(), r.int()
    if xid == XID_NOTIFICATION:
        body: dict[str, Any] = {"type": r.int(), "state": r.int(), "path": r.ustring()}
    elif err != 0:
        body = {}
    else:
        body = decode_body(op, r)
    r.end()
    return Reply(xid, zxid, err, body, len(payload), payload)


# --------------------------------------------------------------------------- connection


class ConnectionClosed(Exception):
    """The server closed the connection (EOF or reset)."""


class WireConn:
    """One TCP connection speaking raw frames; every read has a deadline."""

    def __init__(self, host: str, port: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""
        self.xid = 0
        self.pending: list[tuple[int, int]] = []  # (xid, op) awaiting replies
        self.session_id = 0
        self.passwd = bytes(16)
        self.negotiated_timeout = 0
        self.last_zxid = 0
        self.events: list[Reply] = []  # notifications collected by call()

    # -- raw I/O -----------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(frame(payload))

    def _fill(self, n: int, deadline: float) -> None:
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete frame from the server (have {len(self.buf)} "
                                   f"of {n} bytes)")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as e:
                raise ConnectionClosed(f"reset ({e}) after {len(self.buf)} bytes") from e
            if not chunk:
                raise ConnectionClosed(f"EOF after {len(self.buf)} buffered bytes")
            self.buf += chunk

    def recv_frame(self, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._fill(4, deadline)
        (n,) = struct.unpack(">i", self.buf[:4])
        if n < 0 or n > 16 * 1024 * 1024:
            raise DecodeError(f"server sent an absurd frame length {n}")
        self._fill(4 + n, deadline)
        payload, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        return payload

    def recv_all_until_close(self, timeout: float | None = None) -> bytes:
        """Everything the server sends until it closes (for four-letter words)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        out = self.buf
        self.buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"server did not close; got {out[:200]!r}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except (ConnectionResetError, ConnectionAbortedError):
                return out
            if not chunk:
                return out
            out += chunk

    def expect_closed(self, timeout: float = 5.0) -> None:
        """Assert the server closes the connection without sending any further byte."""
        data = self.recv_all_until_close(timeout)
        assert data == b"", f"server sent {len(data)} unexpected bytes before closing: " \
                            f"{data[:64].hex()}"

    def closed_within(self, timeout: float) -> bool:
        """True if the server closed (EOF/reset) within ``timeout`` s, sending nothing."""
        try:
            data = self.recv_all_until_close(timeout)
        except TimeoutError:
            return False
        assert data == b"", f"unexpected bytes before close: {data[:64].hex()}"
        return True

    def assert_silent_open(self, wait: float = 0.3) -> None:
        """Assert nothing arrives and the connection stays open for ``wait`` s."""
        assert self.buf == b"", f"unexpected buffered bytes {self.buf[:64].hex()}"
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return
        except (ConnectionResetError, ConnectionAbortedError) as e:
            raise AssertionError("server reset a connection that should stay open") from e
        assert chunk != b"", "server closed a connection that should stay open"
        raise AssertionError(f"unexpected bytes from the server: {chunk[:64].hex()}")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self) -> None:
        """Abort with an RST (SO_LINGER 0)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    # -- protocol ----------------------------------------------------------------
    def handshake(self, timeout: int = 30000, session_id: int = 0,
                  passwd: bytes | None = None, last_zxid: int = 0,
                  read_only: bool | None = False) -> ConnectResponse:
        self.send_frame(connect_request(timeout, session_id, bytes(16) if passwd is None
                                        else passwd, last_zxid, read_only))
        resp = decode_connect_response(self.recv_frame())
        self.session_id, self.passwd = resp.session_id, resp.passwd
        self.negotiated_timeout = resp.timeout
        return resp

    def next_xid(self) -> int:
        self.xid += 1
        return self.xid

    def send(self, op: int, body: bytes = b"", xid: int | None = None) -> int:
        if xid is None:
            xid = self.next_xid()
        self.send_frame(header(xid, op) + body)
        self.pending.append((xid, op))
        return xid

    def read(self, timeout: float | None = None) -> Reply:
        """Next server frame, decoded against the oldest pending request with its xid."""
        payload = self.recv_frame(timeout)
        if len(payload) < 16:
            raise DecodeError(f"reply shorter than a ReplyHeader: {payload.hex()}")
        (xid,) = struct.unpack(">i", payload[:4])
        op = None
        if xid != XID_NOTIFICATION:
            for i, (pxid, pop) in enumerate(self.pending):
                if pxid == xid:
                    op = pop
                    del self.pending[i]
                    break
            else:
                raise DecodeError(f"reply with xid {xid} matches no pending request "
                                  f"{self.pending}")
        rep = decode_reply(payload, op)
        if not rep.is_notification and rep.zxid > 0:
            self.last_zxid = max(self.last_zxid, rep.zxid)
        return rep

    def call(self, op: int, body: bytes = b"", xid: int | None = None,
             timeout: float | None = None) -> Reply:
        """Send one request and return its reply; notifications on the way go to .events."""
        xid = self.send(op, body, xid)
        while True:
            rep = self.read(timeout)
            if rep.is_notification:
                self.events.append(rep)
                continue
            assert rep.xid == xid, f"reply xid {rep.xid} != request xid {xid}"
            return rep

    # convenience wrappers ----------------------------------------------------------
    def create(self, path: str, data: bytes | None = b"", acl: Sequence[tuple[int, str, str]]
               | None = None, flags: int = 0, op: int = OP["create"]) -> Reply:
        return self.call(op, create_body(path, data, acl, flags))

    def create_ttl(self, path: str, ttl: int, data: bytes | None = b"", flags: int = 5,
                   acl: Sequence[tuple[int, str, str]] | None = None) -> Reply:
        return self.call(OP["createTTL"], create_ttl_body(path, data, acl, flags, ttl))

    def delete(self, path: str, version: int = -1) -> Reply:
        return self.call(OP["delete"], path_version_body(path, version))

    def exists(self, path: str, watch: bool = False) -> Reply:
        return self.call(OP["exists"], path_watch_body(path, watch))

    def get_data(self, path: str, watch: bool = False) -> Reply:
        return self.call(OP["getData"], path_watch_body(path, watch))

    def set_data(self, path: str, data: bytes | None, version: int = -1) -> Reply:
        return self.call(OP["setData"], set_data_body(path, data, version))

    def get_children(self, path: str, watch: bool = False) -> Reply:
        return self.call(OP["getChildren"], path_watch_body(path, watch))

    def get_acl(self, path: str) -> Reply:
        return self.call(OP["getACL"], path_body(path))

    def set_acl(self, path: str, acl: Sequence[tuple[int, str, str]] | None,
                version: int = -1) -> Reply:
        return self.call(OP["setACL"], set_acl_body(path, acl, version))

    def add_auth(self, scheme: str, auth: bytes) -> Reply:
        return self.call(OP["auth"], auth_body(scheme, auth), xid=XID_AUTH)

    def ping(self) -> Reply:
        return self.call(OP["ping"], b"", xid=XID_PING)

    def multi(self, ops: Iterable[tuple[int, bytes]], op: int = OP["multi"]) -> Reply:
        return self.call(op, multi_body(ops))

    def close_session(self) -> Reply:
        return self.call(OP["closeSession"])

    def __enter__(self) -> WireConn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_session(host: str, port: int, timeout_ms: int = 30000,
                 read_timeout: float = DEFAULT_TIMEOUT) -> WireConn:
    """A connected, handshaken session."""
    c = WireConn(host, port, read_timeout)
    resp = c.handshake(timeout_ms)
    assert resp.timeout > 0 and resp.session_id != 0, f"handshake refused: {resp}"
    return c


def four_letter(host: str, port: int, word: bytes, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """Send a four-letter word (plus any argument bytes) and read the answer to EOF."""
    with WireConn(host, port, timeout) as c:
        c.send_raw(word)
        return c.recv_all_until_close(timeout)
