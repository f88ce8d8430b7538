"""The ZooKeeper client protocol's records (sans-I/O): request decoding, reply encoding.

Requests decode straight into the kernel's request records; replies encode from the
values the kernel hands to ``send_response``. Struct objects are precompiled and the
hot reads (getData, exists) avoid per-field Python objects.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import NamedTuple

from kernel.api import (
    ACL,
    AuthRequest,
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    EmptyRequest,
    MarshallingError,
    MultiRequest,
    Node,
    OpCode,
    OpResult,
    PathRequest,
    PathWatchRequest,
    ProtocolError,
    ReconfigRequest,
    SetACLRequest,
    SetDataRequest,
    SetWatchesRequest,
    Stat,
    WatchTypeRequest,
)
from kernel.jute import Reader, Writer

HEADER = struct.Struct(">iqi")  # ReplyHeader: xid, zxid, err
REQ_HEADER = struct.Struct(">ii")  # RequestHeader: xid, type
LEN = struct.Struct(">i")
STAT = struct.Struct(">qqqqiiiqiiq")
LEN_HEADER = struct.Struct(">iiqi")  # frame length + ReplyHeader
MULTI_HEADER = struct.Struct(">i?i")
EVENT_PREFIX = struct.Struct(">iiqiii")  # len, xid=-1, zxid, err=0, type, state
CONNECT_RESPONSE = struct.Struct(">iiq")  # protocolVersion, timeOut, sessionId

_NULL = b"\xff\xff\xff\xff"
_MULTI_DONE = MULTI_HEADER.pack(-1, True, -1)


class ConnectRequest(NamedTuple):
    """The first frame of a connection."""

    protocol_version: int
    last_zxid_seen: int
    timeout: int
    session_id: int
    password: bytes
    read_only: bool
    has_read_only: bool


def decode_connect(payload: bytes) -> ConnectRequest:
    """Decode a ConnectRequest; the trailing readOnly byte is optional (old clients)."""
    r = Reader(payload)
    pv = r.int()
    last = r.long()
    timeout = r.int()
    sid = r.long()
    pw = r.buffer() or b""
    has_ro = r.remaining() >= 1
    ro = r.bool() if has_ro else False
    return ConnectRequest(pv, last, timeout, sid, pw, ro, has_ro)


def encode_connect_response(timeout: int, session_id: int, password: bytes,
                            read_only: bool, with_read_only: bool) -> bytes:
    body = CONNECT_RESPONSE.pack(0, timeout, session_id) + LEN.pack(len(password)) + password
    if with_read_only:
        body += b"\x01" if read_only else b"\x00"
    return LEN.pack(len(body)) + body


# -- requests -----------------------------------------------------------------------


def _acl(r: Reader) -> ACL:
    return ACL(r.int(), r.string(), r.string())


def _acls(r: Reader) -> list[ACL] | None:
    return r.vector(_acl)


def _strings(r: Reader) -> list[str]:
    return r.vector(Reader.string) or []


def _create(r: Reader) -> CreateRequest:
    return CreateRequest(r.string(), r.buffer(), _acls(r), r.int())


def _create_ttl(r: Reader) -> CreateRequest:
    return CreateRequest(r.string(), r.buffer(), _acls(r), r.int(), r.long())


def _path_watch(r: Reader) -> PathWatchRequest:
    return PathWatchRequest(r.string(), r.bool())


def _path(r: Reader) -> PathRequest:
    return PathRequest(r.string())


def _nullable_path(r: Reader) -> PathRequest:
    s = r.ustring()
    return PathRequest(s if s is not None else "")


def _delete(r: Reader) -> DeleteRequest:
    return DeleteRequest(r.string(), r.int())


def _delete_container(r: Reader) -> DeleteRequest:
    b = r.buffer()
    return DeleteRequest((b or b"").decode("utf-8", errors="replace"), -1)


def _set_data(r: Reader) -> SetDataRequest:
    return SetDataRequest(r.string(), r.buffer(), r.int())


def _set_acl(r: Reader) -> SetACLRequest:
    return SetACLRequest(r.string(), _acls(r), r.int())


def _check(r: Reader) -> CheckVersionRequest:
    return CheckVersionRequest(r.string(), r.int())


def _watch_type(r: Reader) -> WatchTypeRequest:
    path, t = r.string(), r.int()
    if not 1 <= t <= 5:
        raise MarshallingError(f"invalid watcher type {t}")
    return WatchTypeRequest(path, t)


def _add_watch(r: Reader) -> WatchTypeRequest:
    path, mode = r.string(), r.int()
    if mode not in (0, 1):
        raise MarshallingError(f"invalid addWatch mode {mode}")
    return WatchTypeRequest(path, mode)


def _auth(r: Reader) -> AuthRequest:
    return AuthRequest(r.int(), r.string(), r.buffer() or b"")


def _set_watches(r: Reader) -> SetWatchesRequest:
    return SetWatchesRequest(r.long(), _strings(r), _strings(r), _strings(r), [], [])


def _set_watches2(r: Reader) -> SetWatchesRequest:
    return SetWatchesRequest(r.long(), _strings(r), _strings(r), _strings(r), _strings(r),
                             _strings(r))


def _reconfig(r: Reader) -> ReconfigRequest:
    return ReconfigRequest(r.ustring(), r.ustring(), r.ustring(), r.long())


def _sasl(r: Reader) -> AuthRequest:
    """GetSASLRequest{buffer token}: carried to the kernel as an auth record of scheme
    ``sasl`` (a null token reads as empty, as ZooKeeper's server sees it)."""
    return AuthRequest(0, "sasl", r.buffer() or b"")


def _empty(r: Reader) -> EmptyRequest:
    return EmptyRequest()


_MULTI_WRITE_OPS: dict[int, Callable[[Reader], object]] = {
    OpCode.CREATE: _create, OpCode.CREATE2: _create, OpCode.CREATE_CONTAINER: _create,
    OpCode.CREATE_TTL: _create_ttl, OpCode.DELETE: _delete, OpCode.SET_DATA: _set_data,
    OpCode.CHECK: _check,
}
_MULTI_READ_OPS: dict[int, Callable[[Reader], object]] = {
    OpCode.GET_DATA: _path_watch, OpCode.GET_CHILDREN: _path_watch,
}


def _multi(r: Reader, read: bool) -> MultiRequest:
    ops: list[tuple[int, object]] = []
    allowed = _MULTI_READ_OPS if read else _MULTI_WRITE_OPS
    while True:
        op, done, _err = r.int(), r.bool(), r.int()
        if done:
            break
        dec = allowed.get(op)
        if dec is None:
            raise MarshallingError(f"op {op} not allowed in this multi")
        ops.append((op, dec(r)))
    return MultiRequest(ops)


def _multi_write(r: Reader) -> MultiRequest:
    return _multi(r, False)


def _multi_read(r: Reader) -> MultiRequest:
    return _multi(r, True)


#: Body decoders of every opcode a client may send (``check`` only inside multi).
DECODERS: dict[int, Callable[[Reader], object]] = {
    OpCode.CREATE: _create, OpCode.CREATE2: _create, OpCode.CREATE_CONTAINER: _create,
    OpCode.CREATE_TTL: _create_ttl, OpCode.DELETE: _delete,
    OpCode.DELETE_CONTAINER: _delete_container, OpCode.EXISTS: _path_watch,
    OpCode.GET_DATA: _path_watch, OpCode.SET_DATA: _set_data, OpCode.GET_ACL: _path,
    OpCode.SET_ACL: _set_acl, OpCode.GET_CHILDREN: _path_watch,
    OpCode.GET_CHILDREN2: _path_watch, OpCode.SYNC: _path, OpCode.PING: _empty,
    OpCode.MULTI: _multi_write, OpCode.MULTI_READ: _multi_read, OpCode.RECONFIG: _reconfig,
    OpCode.CHECK_WATCHES: _watch_type, OpCode.REMOVE_WATCHES: _watch_type,
    OpCode.ADD_WATCH: _add_watch, OpCode.GET_EPHEMERALS: _nullable_path,
    OpCode.GET_ALL_CHILDREN_NUMBER: _path, OpCode.AUTH: _auth,
    OpCode.SET_WATCHES: _set_watches, OpCode.SET_WATCHES2: _set_watches2,
    OpCode.SASL: _sasl, OpCode.WHO_AM_I: _empty, OpCode.CLOSE_SESSION: _empty,
}


def decode_request(op: int, payload: bytes, max_len: int) -> object:
    """Decode the body of a request with opcode ``op`` (the header already read).

    Raises MarshallingError for undecodable bodies; KeyError for unknown opcodes."""
    dec = DECODERS[op]
    r = Reader(payload, 8, max_len=max_len)
    try:
        return dec(r)
    except ProtocolError as e:
        raise MarshallingError(str(e)) from None


# -- replies ------------------------------------------------------------------------


def _bstr(s: str) -> bytes:
    b = s.encode("utf-8")
    return LEN.pack(len(b)) + b


def _bbuf(b: bytes | None) -> bytes:
    if b is None:
        return _NULL
    return LEN.pack(len(b)) + b


def _bstat(s: Stat) -> bytes:
    return STAT.pack(*s)


def _bstrings(items: list[str]) -> bytes:
    parts = [LEN.pack(len(items))]
    for s in items:
        b = s.encode("utf-8")
        parts.append(LEN.pack(len(b)))
        parts.append(b)
    return b"".join(parts)


def _bacls(acl: list[ACL]) -> bytes:
    w = Writer()
    w.int(len(acl))
    for a in acl:
        w.int(a.perms).ustring(a.scheme).ustring(a.id)
    return w.getvalue()


def _enc_path(v: object) -> bytes:
    assert isinstance(v, str)
    return _bstr(v)


def _enc_path_stat(v: object) -> bytes:
    assert isinstance(v, tuple)
    return _bstr(v[0]) + _bstat(v[1])


def _enc_node_stat(v: object) -> bytes:
    if isinstance(v, Node):
        return v.stat_bytes()
    assert isinstance(v, Stat)
    return _bstat(v)


def _enc_get_data(v: object) -> bytes:
    if isinstance(v, Node):
        data = v.data
        if data is None:
            return _NULL + v.stat_bytes()
        return LEN.pack(len(data)) + data + v.stat_bytes()
    assert isinstance(v, tuple)
    return _bbuf(v[0]) + _bstat(v[1])


def _enc_acl(v: object) -> bytes:
    assert isinstance(v, tuple)
    return _bacls(v[0]) + _bstat(v[1])


def _enc_children(v: object) -> bytes:
    assert isinstance(v, list)
    return _bstrings(v)


def _enc_children2(v: object) -> bytes:
    assert isinstance(v, tuple)
    return _bstrings(v[0]) + _bstat(v[1])


def _enc_none(v: object) -> bytes:
    return b""


def _enc_int(v: object) -> bytes:
    assert isinstance(v, int)
    return LEN.pack(v)


def _enc_zero(v: object) -> bytes:
    return b"\x00\x00\x00\x00"


def _enc_who_am_i(v: object) -> bytes:
    assert isinstance(v, list)
    parts = [LEN.pack(len(v))]
    for scheme, user in v:
        parts.append(_bstr(scheme))
        parts.append(_bstr(user))
    return b"".join(parts)


def _enc_sasl(v: object) -> bytes:
    return _bbuf(v if isinstance(v, bytes) else None)


_MULTI_RESULT_ENCODERS: dict[int, Callable[[object], bytes]] = {
    OpCode.CREATE: _enc_path, OpCode.CREATE2: _enc_path_stat, OpCode.DELETE: _enc_none,
    OpCode.SET_DATA: _enc_node_stat, OpCode.CHECK: _enc_none,
    OpCode.GET_DATA: _enc_get_data, OpCode.GET_CHILDREN: _enc_children,
}


def _enc_multi(v: object) -> bytes:
    assert isinstance(v, list)
    parts = []
    for res in v:
        assert isinstance(res, OpResult)
        if res.op == OpCode.ERROR:
            parts.append(MULTI_HEADER.pack(-1, False, res.err))
            parts.append(LEN.pack(res.err))
        else:
            parts.append(MULTI_HEADER.pack(res.op, False, 0))
            parts.append(_MULTI_RESULT_ENCODERS[res.op](res.value))
    parts.append(_MULTI_DONE)
    return b"".join(parts)


#: Success-body encoders by opcode.
ENCODERS: dict[int, Callable[[object], bytes]] = {
    OpCode.CREATE: _enc_path, OpCode.CREATE2: _enc_path_stat,
    OpCode.CREATE_CONTAINER: _enc_path_stat, OpCode.CREATE_TTL: _enc_path_stat,
    OpCode.DELETE: _enc_none, OpCode.DELETE_CONTAINER: _enc_none,
    OpCode.EXISTS: _enc_node_stat, OpCode.GET_DATA: _enc_get_data,
    OpCode.SET_DATA: _enc_node_stat, OpCode.GET_ACL: _enc_acl, OpCode.SET_ACL: _enc_node_stat,
    OpCode.GET_CHILDREN: _enc_children, OpCode.GET_CHILDREN2: _enc_children2,
    OpCode.SYNC: _enc_path, OpCode.PING: _enc_none, OpCode.MULTI: _enc_multi,
    OpCode.MULTI_READ: _enc_multi, OpCode.CHECK_WATCHES: _enc_none,
    OpCode.REMOVE_WATCHES: _enc_none, OpCode.ADD_WATCH: _enc_zero,
    OpCode.GET_EPHEMERALS: _enc_children, OpCode.GET_ALL_CHILDREN_NUMBER: _enc_int,
    OpCode.AUTH: _enc_none, OpCode.SET_WATCHES: _enc_none, OpCode.SET_WATCHES2: _enc_none,
    OpCode.SASL: _enc_sasl, OpCode.WHO_AM_I: _enc_who_am_i, OpCode.CLOSE_SESSION: _enc_none,
}


def encode_reply(xid: int, zxid: int, err: int, op: int, value: object) -> bytes:
    """A whole reply frame (length prefix included)."""
    if err:
        if op == OpCode.SASL:
            # ZooKeeper answers a failed SASL step with SetSASLResponse{null} after the
            # error header; the Java client reads that token whatever the error code.
            return LEN_HEADER.pack(20, xid, zxid, err) + _NULL
        return LEN_HEADER.pack(16, xid, zxid, err)
    body = ENCODERS[op](value)
    return LEN_HEADER.pack(16 + len(body), xid, zxid, 0) + body


def encode_notification(event_type: int, path: str, zxid: int) -> bytes:
    """A watch notification frame: ReplyHeader{-1, zxid, 0} + WatcherEvent."""
    p = path.encode("utf-8")
    return EVENT_PREFIX.pack(28 + len(p), -1, zxid, 0, event_type, 3) + LEN.pack(len(p)) + p
