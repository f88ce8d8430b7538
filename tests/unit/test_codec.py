"""Jute primitives and the client-protocol codec (plugins/transport_jute/codec.py).

Requests are built with ``kernel.jute.Writer`` and decoded with ``decode_request``;
replies are encoded with ``encode_reply`` and decoded by a small ``struct``-based reader
written here, independent of the server's codec. Real client frames recorded against
Apache ZooKeeper 3.8.0 (``/work/shared/reference/captures``) must decode too.
"""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.errors import MarshallingError, ProtocolError
from kernel.jute import Reader, Writer, encode_buffer, encode_string
from kernel.protocol import OpCode
from kernel.records import (
    ACL,
    AuthRequest,
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    EmptyRequest,
    MultiRequest,
    OpResult,
    PathRequest,
    PathWatchRequest,
    ReconfigRequest,
    SetACLRequest,
    SetDataRequest,
    SetWatchesRequest,
    Stat,
    WatchTypeRequest,
)
from kernel.tree import Node
from plugins.transport_jute import codec
from plugins.transport_jute.codec import (
    DECODERS,
    ENCODERS,
    decode_connect,
    decode_request,
    encode_connect_response,
    encode_notification,
    encode_reply,
)

MAXBUF = 0xFFFFF
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(max_size=24)
PATH = st.text(max_size=24)
DATA = st.none() | st.binary(max_size=48)
ACL_ST = st.builds(ACL, INT32, TEXT, TEXT)
ACLS = st.none() | st.lists(ACL_ST, max_size=3)
STRINGS = st.lists(TEXT, max_size=4)
STAT_ST = st.builds(Stat, INT64, INT64, INT64, INT64, INT32, INT32, INT32, INT64, INT32,
                    INT32, INT64)


# ------------------------------------------------------------------------- primitives


@SETTINGS
@given(INT32)
def test_int_round_trip(v: int) -> None:
    b = Writer().int(v).getvalue()
    assert b == struct.pack(">i", v)
    r = Reader(b)
    assert r.int() == v
    assert r.remaining() == 0


@SETTINGS
@given(INT64)
def test_long_round_trip(v: int) -> None:
    b = Writer().long(v).getvalue()
    assert b == struct.pack(">q", v)
    r = Reader(b)
    assert r.long() == v
    assert r.remaining() == 0


@pytest.mark.parametrize("v", [True, False])
def test_bool_round_trip(v: bool) -> None:
    b = Writer().bool(v).getvalue()
    assert b == (b"\x01" if v else b"\x00")
    assert Reader(b).bool() is v


@pytest.mark.parametrize("byte", [0x01, 0x02, 0x7F, 0x80, 0xFF])
def test_bool_any_nonzero_byte_reads_true(byte: int) -> None:
    assert Reader(bytes([byte])).bool() is True


@SETTINGS
@given(DATA)
def test_buffer_round_trip(v: bytes | None) -> None:
    b = Writer().buffer(v).getvalue()
    assert b == encode_buffer(v)
    r = Reader(b)
    assert r.buffer() == v
    assert r.remaining() == 0


def test_buffer_null_and_empty_are_distinct() -> None:
    assert Writer().buffer(None).getvalue() == b"\xff\xff\xff\xff"
    assert Writer().buffer(b"").getvalue() == b"\x00\x00\x00\x00"
    assert Reader(b"\xff\xff\xff\xff").buffer() is None
    assert Reader(b"\x00\x00\x00\x00").buffer() == b""


@SETTINGS
@given(st.none() | st.text(max_size=40))
def test_ustring_round_trip(v: str | None) -> None:
    b = Writer().ustring(v).getvalue()
    assert b == encode_string(v)
    r = Reader(b)
    assert r.ustring() == v
    assert r.remaining() == 0


def test_ustring_non_ascii_is_utf8_with_byte_length() -> None:
    b = Writer().ustring("/é€😀").getvalue()
    assert b == struct.pack(">i", 10) + "/é€😀".encode()
    assert Reader(b).ustring() == "/é€😀"
    assert Writer().ustring(None).getvalue() == b"\xff\xff\xff\xff"
    assert Reader(b"\xff\xff\xff\xff").string() == ""


def test_ustring_malformed_utf8_is_replaced_not_rejected() -> None:
    # Java decodes bad UTF-8 with U+FFFD; a bad path is then simply a missing node.
    assert Reader(b"\x00\x00\x00\x03/\xff\xfe").ustring() == "/\ufffd\ufffd"


@SETTINGS
@given(st.none() | st.lists(INT32, max_size=8), st.none() | st.lists(st.none() | TEXT,
                                                                      max_size=5))
def test_vector_round_trip(ints: list[int] | None, strs: list[str | None] | None) -> None:
    w = Writer()
    w.vector(ints, Writer.int)
    w.vector(strs, Writer.ustring)
    b = w.getvalue()
    r = Reader(b)
    assert r.vector(Reader.int) == ints
    assert r.vector(Reader.ustring) == strs
    assert r.remaining() == 0


def test_vector_null_and_empty_are_distinct() -> None:
    assert Writer().vector(None, Writer.int).getvalue() == b"\xff\xff\xff\xff"
    assert Writer().vector([], Writer.int).getvalue() == b"\x00\x00\x00\x00"
    assert Reader(b"\xff\xff\xff\xff").vector(Reader.int) is None
    assert Reader(b"\x00\x00\x00\x00").vector(Reader.int) == []


_PRIM = st.one_of(
    st.tuples(st.just("int"), INT32), st.tuples(st.just("long"), INT64),
    st.tuples(st.just("bool"), st.booleans()), st.tuples(st.just("buffer"), DATA),
    st.tuples(st.just("ustring"), st.none() | TEXT),
)


@SETTINGS
@given(st.lists(_PRIM, max_size=12))
def test_mixed_sequence_round_trip(items: list[tuple[str, Any]]) -> None:
    w = Writer()
    for kind, v in items:
        getattr(w, kind)(v)
    r = Reader(w.getvalue())
    for kind, v in items:
        assert getattr(r, kind)() == v
    assert r.remaining() == 0


@pytest.mark.parametrize("raw, method", [
    (b"\x00\x00\x00", "int"),
    (b"\x00" * 7, "long"),
    (b"", "bool"),
    (b"\x00\x00\x00\x05abcd", "buffer"),
    (b"\x00\x00\x00\x05abcd", "ustring"),
    (b"\xff\xff\xff\xfe", "buffer"),  # length -2
    (b"\xff\xff\xff\xfe", "ustring"),
    (b"\x00\x00\x00\x02\x00\x00\x00\x01", "int_vector"),
    (b"\x7f\xff\xff\xff", "int_vector"),
    (b"\xff\xff\xff\xf0", "int_vector"),
])
def test_reader_truncated_or_impossible_raises(raw: bytes, method: str) -> None:
    r = Reader(raw)
    with pytest.raises(ProtocolError):
        if method == "int_vector":
            r.vector(Reader.int)
        else:
            getattr(r, method)()


def test_reader_buffer_longer_than_max_len_raises() -> None:
    raw = Writer().buffer(b"x" * 100).getvalue()
    with pytest.raises(ProtocolError):
        Reader(raw, max_len=99).buffer()
    assert Reader(raw, max_len=100).buffer() == b"x" * 100


# -------------------------------------------------------------------- request encoders
# Independent writers of every request record, in the field order of §5.2.


def _w_acls(w: Writer, acls: list[ACL] | None) -> None:
    w.vector(acls, lambda w2, a: w2.int(a.perms).ustring(a.scheme).ustring(a.id))


def _w_create(w: Writer, r: CreateRequest) -> None:
    w.ustring(r.path).buffer(r.data)
    _w_acls(w, r.acl)
    w.int(r.flags)


def _w_create_ttl(w: Writer, r: CreateRequest) -> None:
    _w_create(w, r)
    w.long(r.ttl)


def _w_delete(w: Writer, r: DeleteRequest) -> None:
    w.ustring(r.path).int(r.version)


def _w_delete_container(w: Writer, r: DeleteRequest) -> None:
    w.buffer(r.path.encode("utf-8"))


def _w_path_watch(w: Writer, r: PathWatchRequest) -> None:
    w.ustring(r.path).bool(r.watch)


def _w_path(w: Writer, r: PathRequest) -> None:
    w.ustring(r.path)


def _w_set_data(w: Writer, r: SetDataRequest) -> None:
    w.ustring(r.path).buffer(r.data).int(r.version)


def _w_set_acl(w: Writer, r: SetACLRequest) -> None:
    w.ustring(r.path)
    _w_acls(w, r.acl)
    w.int(r.version)


def _w_check(w: Writer, r: CheckVersionRequest) -> None:
    w.ustring(r.path).int(r.version)


def _w_watch_type(w: Writer, r: WatchTypeRequest) -> None:
    w.ustring(r.path).int(r.type)


def _w_auth(w: Writer, r: AuthRequest) -> None:
    w.int(r.type).ustring(r.scheme).buffer(r.auth)


def _w_set_watches(w: Writer, r: SetWatchesRequest) -> None:
    w.long(r.relative_zxid)
    for lst in (r.data, r.exist, r.child):
        w.vector(lst, Writer.ustring)


def _w_set_watches2(w: Writer, r: SetWatchesRequest) -> None:
    _w_set_watches(w, r)
    w.vector(r.persistent, Writer.ustring)
    w.vector(r.persistent_recursive, Writer.ustring)


def _w_reconfig(w: Writer, r: ReconfigRequest) -> None:
    w.ustring(r.joining).ustring(r.leaving).ustring(r.new_members).long(r.config_id)


def _w_empty(w: Writer, r: EmptyRequest) -> None:
    pass


def _w_sasl(w: Writer, r: bytes | None) -> None:
    w.buffer(r)


_SUB_WRITERS: dict[int, Callable[[Writer, Any], None]] = {
    OpCode.CREATE: _w_create, OpCode.CREATE2: _w_create, OpCode.CREATE_CONTAINER: _w_create,
    OpCode.CREATE_TTL: _w_create_ttl, OpCode.DELETE: _w_delete, OpCode.SET_DATA: _w_set_data,
    OpCode.CHECK: _w_check, OpCode.GET_DATA: _w_path_watch, OpCode.GET_CHILDREN: _w_path_watch,
}


def _w_multi(w: Writer, r: MultiRequest) -> None:
    for op, rec in r.ops:
        w.int(op).bool(False).int(-1)
        _SUB_WRITERS[op](w, rec)
    w.int(-1).bool(True).int(-1)


CREATE_ST = st.builds(CreateRequest, PATH, DATA, ACLS, INT32, st.just(-1))
CREATE_TTL_ST = st.builds(CreateRequest, PATH, DATA, ACLS, INT32, INT64)
DELETE_ST = st.builds(DeleteRequest, PATH, INT32)
SET_DATA_ST = st.builds(SetDataRequest, PATH, DATA, INT32)
CHECK_ST = st.builds(CheckVersionRequest, PATH, INT32)
PATH_WATCH_ST = st.builds(PathWatchRequest, PATH, st.booleans())

MULTI_WRITE_SUB = st.one_of(
    st.tuples(st.sampled_from([OpCode.CREATE, OpCode.CREATE2, OpCode.CREATE_CONTAINER]),
              CREATE_ST),
    st.tuples(st.just(OpCode.CREATE_TTL), CREATE_TTL_ST),
    st.tuples(st.just(OpCode.DELETE), DELETE_ST),
    st.tuples(st.just(OpCode.SET_DATA), SET_DATA_ST),
    st.tuples(st.just(OpCode.CHECK), CHECK_ST),
)
MULTI_READ_SUB = st.tuples(st.sampled_from([OpCode.GET_DATA, OpCode.GET_CHILDREN]),
                           PATH_WATCH_ST)


# op -> (strategy of (record written, record expected), writer)
def _same(s: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, Any]]:
    return s.map(lambda r: (r, r))


REQUESTS: dict[int, tuple[st.SearchStrategy[tuple[Any, Any]], Callable[[Writer, Any], None]]] = {
    OpCode.CREATE: (_same(CREATE_ST), _w_create),
    OpCode.CREATE2: (_same(CREATE_ST), _w_create),
    OpCode.CREATE_CONTAINER: (_same(CREATE_ST), _w_create),
    OpCode.CREATE_TTL: (_same(CREATE_TTL_ST), _w_create_ttl),
    OpCode.DELETE: (_same(DELETE_ST), _w_delete),
    OpCode.DELETE_CONTAINER: (_same(st.builds(DeleteRequest, PATH, st.just(-1))),
                              _w_delete_container),
    OpCode.EXISTS: (_same(PATH_WATCH_ST), _w_path_watch),
    OpCode.GET_DATA: (_same(PATH_WATCH_ST), _w_path_watch),
    OpCode.GET_CHILDREN: (_same(PATH_WATCH_ST), _w_path_watch),
    OpCode.GET_CHILDREN2: (_same(PATH_WATCH_ST), _w_path_watch),
    OpCode.SET_DATA: (_same(SET_DATA_ST), _w_set_data),
    OpCode.GET_ACL: (_same(st.builds(PathRequest, PATH)), _w_path),
    OpCode.SET_ACL: (_same(st.builds(SetACLRequest, PATH, ACLS, INT32)), _w_set_acl),
    OpCode.SYNC: (_same(st.builds(PathRequest, PATH)), _w_path),
    OpCode.GET_ALL_CHILDREN_NUMBER: (_same(st.builds(PathRequest, PATH)), _w_path),
    OpCode.GET_EPHEMERALS: (_same(st.builds(PathRequest, PATH)), _w_path),
    OpCode.PING: (_same(st.just(EmptyRequest())), _w_empty),
    OpCode.WHO_AM_I: (_same(st.just(EmptyRequest())), _w_empty),
    OpCode.CLOSE_SESSION: (_same(st.just(EmptyRequest())), _w_empty),
    OpCode.MULTI: (_same(st.builds(MultiRequest, st.lists(MULTI_WRITE_SUB, max_size=5))),
                   _w_multi),
    OpCode.MULTI_READ: (_same(st.builds(MultiRequest, st.lists(MULTI_READ_SUB, max_size=5))),
                        _w_multi),
    OpCode.RECONFIG: (_same(st.builds(ReconfigRequest, st.none() | TEXT, st.none() | TEXT,
                                      st.none() | TEXT, INT64)), _w_reconfig),
    OpCode.CHECK_WATCHES: (_same(st.builds(WatchTypeRequest, PATH, st.integers(1, 5))),
                           _w_watch_type),
    OpCode.REMOVE_WATCHES: (_same(st.builds(WatchTypeRequest, PATH, st.integers(1, 5))),
                            _w_watch_type),
    OpCode.ADD_WATCH: (_same(st.builds(WatchTypeRequest, PATH, st.integers(0, 1))),
                       _w_watch_type),
    OpCode.AUTH: (_same(st.builds(AuthRequest, INT32, TEXT, st.binary(max_size=32))), _w_auth),
    OpCode.SET_WATCHES: (_same(st.builds(SetWatchesRequest, INT64, STRINGS, STRINGS, STRINGS,
                                         st.just([]), st.just([]))), _w_set_watches),
    OpCode.SET_WATCHES2: (_same(st.builds(SetWatchesRequest, INT64, STRINGS, STRINGS, STRINGS,
                                          STRINGS, STRINGS)), _w_set_watches2),
    # GetSASLRequest{token} arrives as AuthRequest(0, "sasl", token); null reads as b"".
    OpCode.SASL: (st.builds(lambda t: (t, AuthRequest(0, "sasl", t or b"")),
                            st.none() | st.binary(max_size=32)), _w_sasl),
}


def _frame_body(xid: int, op: int, write: Callable[[Writer, Any], None], rec: Any) -> bytes:
    """A request frame without its length prefix: RequestHeader + record."""
    w = Writer().int(xid).int(op)
    write(w, rec)
    return w.getvalue()


def test_request_table_covers_every_decoder() -> None:
    assert set(REQUESTS) == set(DECODERS)


@pytest.mark.parametrize("op", sorted(REQUESTS), ids=lambda o: OpCode(o).name)
@SETTINGS
@given(data=st.data())
def test_request_round_trip(op: int, data: st.DataObject) -> None:
    strategy, write = REQUESTS[op]
    rec, expected = data.draw(strategy)
    xid = data.draw(INT32)
    payload = _frame_body(xid, op, write, rec)
    assert decode_request(op, payload, MAXBUF) == expected


@pytest.mark.parametrize("op", sorted(o for o in REQUESTS
                                      if REQUESTS[o][1] is not _w_empty),
                         ids=lambda o: OpCode(o).name)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_truncated_request_body_raises_marshalling_error(op: int, data: st.DataObject) -> None:
    strategy, write = REQUESTS[op]
    rec, _ = data.draw(strategy)
    payload = _frame_body(7, op, write, rec)
    for cut in range(8, len(payload)):
        with pytest.raises(MarshallingError):
            decode_request(op, payload[:cut], MAXBUF)


def test_header_only_getdata_is_marshalling_error() -> None:
    # raw_malformed_header_only_getdata: RequestHeader with no GetDataRequest at all.
    with pytest.raises(MarshallingError):
        decode_request(OpCode.GET_DATA, struct.pack(">ii", 1, 4), MAXBUF)


def test_path_length_overrunning_frame_is_marshalling_error() -> None:
    # raw_malformed_truncated_record: path length says 100, frame holds 3 bytes.
    payload = struct.pack(">iii", 1, 4, 100) + b"/ab"
    with pytest.raises(MarshallingError):
        decode_request(OpCode.GET_DATA, payload, MAXBUF)


def test_buffer_above_max_len_is_marshalling_error() -> None:
    payload = _frame_body(1, OpCode.SET_DATA, _w_set_data, SetDataRequest("/a", b"x" * 64, -1))
    assert decode_request(OpCode.SET_DATA, payload, 64).data == b"x" * 64
    with pytest.raises(MarshallingError):
        decode_request(OpCode.SET_DATA, payload, 63)


def test_get_ephemerals_null_prefix_means_all() -> None:
    payload = Writer().int(1).int(OpCode.GET_EPHEMERALS).ustring(None).getvalue()
    assert decode_request(OpCode.GET_EPHEMERALS, payload, MAXBUF) == PathRequest("")


def test_auth_null_credentials_decode_as_empty() -> None:
    payload = Writer().int(-4).int(100).int(0).ustring("digest").buffer(None).getvalue()
    assert decode_request(OpCode.AUTH, payload, MAXBUF) == AuthRequest(0, "digest", b"")


@pytest.mark.parametrize("op", [OpCode.CHECK_WATCHES, OpCode.REMOVE_WATCHES])
@pytest.mark.parametrize("wtype", [0, 6, -1, 100, 2**31 - 1])
def test_invalid_watcher_type_is_marshalling_error(op: int, wtype: int) -> None:
    payload = Writer().int(1).int(op).ustring("/w").int(wtype).getvalue()
    with pytest.raises(MarshallingError):
        decode_request(op, payload, MAXBUF)


@pytest.mark.parametrize("mode", [2, 3, -1, 255])
def test_invalid_add_watch_mode_is_marshalling_error(mode: int) -> None:
    payload = Writer().int(1).int(OpCode.ADD_WATCH).ustring("/w").int(mode).getvalue()
    with pytest.raises(MarshallingError):
        decode_request(OpCode.ADD_WATCH, payload, MAXBUF)


# ------------------------------------------------------------------------------- multi


def test_empty_multi_is_just_the_terminator() -> None:
    payload = struct.pack(">ii", 1, OpCode.MULTI) + struct.pack(">i?i", -1, True, -1)
    assert decode_request(OpCode.MULTI, payload, MAXBUF) == MultiRequest([])


def test_multi_layout_bytes() -> None:
    # MultiHeader{type, done=false, err=-1} + record per op, then {-1, true, -1}.
    payload = _frame_body(3, OpCode.MULTI, _w_multi, MultiRequest([
        (OpCode.CHECK, CheckVersionRequest("/a", 4)),
        (OpCode.DELETE, DeleteRequest("/a", -1)),
    ]))
    expected = (struct.pack(">ii", 3, 14)
                + struct.pack(">i?i", 13, False, -1) + struct.pack(">i", 2) + b"/a"
                + struct.pack(">i", 4)
                + struct.pack(">i?i", 2, False, -1) + struct.pack(">i", 2) + b"/a"
                + struct.pack(">i", -1)
                + struct.pack(">i?i", -1, True, -1))
    assert payload == expected
    assert decode_request(OpCode.MULTI, payload, MAXBUF) == MultiRequest([
        (OpCode.CHECK, CheckVersionRequest("/a", 4)), (OpCode.DELETE, DeleteRequest("/a", -1))])


@pytest.mark.parametrize("op, sub", [
    (OpCode.MULTI, (OpCode.GET_DATA, PathWatchRequest("/a", False))),
    (OpCode.MULTI, (OpCode.GET_CHILDREN, PathWatchRequest("/a", False))),
    (OpCode.MULTI_READ, (OpCode.CREATE, CreateRequest("/a", b"", [ACL(31, "world", "anyone")],
                                                      0))),
    (OpCode.MULTI_READ, (OpCode.DELETE, DeleteRequest("/a", -1))),
])
def test_mixed_read_write_multi_is_marshalling_error(op: int, sub: tuple[int, Any]) -> None:
    if op == OpCode.MULTI:
        ops = [(OpCode.CHECK, CheckVersionRequest("/a", -1)), sub]
    else:
        ops = [(OpCode.GET_DATA, PathWatchRequest("/a", False)), sub]
    payload = _frame_body(1, op, _w_multi, MultiRequest(ops))
    with pytest.raises(MarshallingError):
        decode_request(op, payload, MAXBUF)


@pytest.mark.parametrize("sub_op", [0, 3, 9, 11, 14, 22, 99, -1])
def test_unknown_multi_sub_op_is_marshalling_error(sub_op: int) -> None:
    payload = (struct.pack(">ii", 1, OpCode.MULTI) + struct.pack(">i?i", sub_op, False, -1)
               + Writer().ustring("/a").int(-1).getvalue() + struct.pack(">i?i", -1, True, -1))
    with pytest.raises(MarshallingError):
        decode_request(OpCode.MULTI, payload, MAXBUF)


def test_multi_without_terminator_is_marshalling_error() -> None:
    payload = (struct.pack(">ii", 1, OpCode.MULTI) + struct.pack(">i?i", 2, False, -1)
               + Writer().ustring("/a").int(-1).getvalue())
    with pytest.raises(MarshallingError):
        decode_request(OpCode.MULTI, payload, MAXBUF)


# ------------------------------------------------------------------------------ connect


def _connect_payload(pv: int, last: int, timeout: int, sid: int, pw: bytes,
                     ro: bool | None) -> bytes:
    w = Writer().int(pv).long(last).int(timeout).long(sid).buffer(pw)
    if ro is not None:
        w.bool(ro)
    return w.getvalue()


@SETTINGS
@given(INT32, INT64, INT32, INT64, st.binary(min_size=16, max_size=16),
       st.none() | st.booleans())
def test_decode_connect_round_trip(pv: int, last: int, timeout: int, sid: int, pw: bytes,
                                   ro: bool | None) -> None:
    req = decode_connect(_connect_payload(pv, last, timeout, sid, pw, ro))
    assert (req.protocol_version, req.last_zxid_seen, req.timeout, req.session_id,
            req.password) == (pv, last, timeout, sid, pw)
    assert req.has_read_only is (ro is not None)
    assert req.read_only is bool(ro)


def test_decode_connect_45_and_44_bytes() -> None:
    with_ro = _connect_payload(0, 0, 10000, 0, b"\x00" * 16, True)
    without = _connect_payload(0, 0, 10000, 0, b"\x00" * 16, None)
    assert (len(with_ro), len(without)) == (45, 44)
    a, b = decode_connect(with_ro), decode_connect(without)
    assert (a.has_read_only, a.read_only) == (True, True)
    assert (b.has_read_only, b.read_only) == (False, False)


def test_decode_connect_truncated_raises() -> None:
    payload = _connect_payload(0, 0, 10000, 0, b"\x00" * 16, False)
    for cut in range(0, 44):
        with pytest.raises(ProtocolError):
            decode_connect(payload[:cut])


def test_connect_response_mirrors_read_only_byte() -> None:
    pw = bytes(range(16))
    with_ro = encode_connect_response(4000, 0x1234, pw, False, True)
    without = encode_connect_response(4000, 0x1234, pw, False, False)
    head = struct.pack(">iiq", 0, 4000, 0x1234) + struct.pack(">i", 16) + pw
    assert with_ro == struct.pack(">i", 37) + head + b"\x00"
    assert without == struct.pack(">i", 36) + head
    assert encode_connect_response(4000, 1, pw, True, True)[-1:] == b"\x01"


def test_refused_connect_response_exact_bytes() -> None:
    # README of the captures, observation 2: the whole "expired" answer.
    expected = bytes.fromhex("00000025" "00000000" "00000000" "0000000000000000" "00000010"
                             + "00" * 16 + "00")
    assert encode_connect_response(0, 0, b"\x00" * 16, False, True) == expected


# --------------------------------------------------------------- independent decoder


class R:
    """A struct-based Jute reader, independent of kernel.jute."""

    def __init__(self, b: bytes) -> None:
        self.b = b
        self.p = 0

    def _take(self, fmt: str) -> Any:
        n = struct.calcsize(fmt)
        assert self.p + n <= len(self.b), "reply body truncated"
        v = struct.unpack_from(fmt, self.b, self.p)
        self.p += n
        return v[0] if len(v) == 1 else v

    def int(self) -> int:
        return int(self._take(">i"))

    def long(self) -> int:
        return int(self._take(">q"))

    def bool(self) -> bool:
        return bool(self._take(">B"))

    def buffer(self) -> bytes | None:
        n = self.int()
        if n == -1:
            return None
        assert 0 <= n <= len(self.b) - self.p
        v = self.b[self.p:self.p + n]
        self.p += n
        return v

    def ustring(self) -> str | None:
        v = self.buffer()
        return None if v is None else v.decode("utf-8")

    def stat(self) -> Stat:
        return Stat(*self._take(">qqqqiiiqiiq"))

    def strings(self) -> list[str | None]:
        n = self.int()
        return [self.ustring() for _ in range(n)]

    def acls(self) -> list[ACL]:
        n = self.int()
        return [ACL(self.int(), self.ustring() or "", self.ustring() or "") for _ in range(n)]

    def done(self) -> bool:
        return self.p == len(self.b)


def split_reply(frame: bytes) -> tuple[int, int, int, bytes]:
    (length,) = struct.unpack_from(">i", frame, 0)
    assert length == len(frame) - 4
    xid, zxid, err = struct.unpack_from(">iqi", frame, 4)
    return xid, zxid, err, frame[20:]


def _d_multi(r: R) -> list[tuple[int, int, Any]]:
    out = []
    while True:
        typ, done, err = r.int(), r.bool(), r.int()
        if done:
            assert (typ, err) == (-1, -1)
            return out
        if typ == -1:
            assert r.int() == err  # ErrorResponse repeats the code
            out.append((-1, err, None))
            continue
        assert err == 0
        if typ == OpCode.CREATE:
            v: Any = r.ustring()
        elif typ == OpCode.CREATE2:
            v = (r.ustring(), r.stat())
        elif typ in (OpCode.DELETE, OpCode.CHECK):
            v = None
        elif typ == OpCode.SET_DATA:
            v = r.stat()
        elif typ == OpCode.GET_DATA:
            v = (r.buffer(), r.stat())
        elif typ == OpCode.GET_CHILDREN:
            v = r.strings()
        else:
            raise AssertionError(f"unexpected multi result type {typ}")
        out.append((typ, 0, v))


NAMES = st.lists(st.text(min_size=1, max_size=12), max_size=5)
OP_RESULT = st.one_of(
    st.builds(OpResult, st.just(OpCode.CREATE), st.just(0), PATH),
    st.builds(OpResult, st.just(OpCode.CREATE2), st.just(0), st.tuples(PATH, STAT_ST)),
    st.builds(OpResult, st.just(OpCode.DELETE), st.just(0), st.none()),
    st.builds(OpResult, st.just(OpCode.SET_DATA), st.just(0), STAT_ST),
    st.builds(OpResult, st.just(OpCode.CHECK), st.just(0), st.none()),
    st.builds(OpResult, st.just(OpCode.ERROR), st.sampled_from([0, -2, -101, -103, -110]),
              st.none()),
)
OP_RESULT_READ = st.one_of(
    st.builds(OpResult, st.just(OpCode.GET_DATA), st.just(0), st.tuples(DATA, STAT_ST)),
    st.builds(OpResult, st.just(OpCode.GET_CHILDREN), st.just(0), NAMES),
    st.builds(OpResult, st.just(OpCode.ERROR), st.sampled_from([-101, -102]), st.none()),
)


def _multi_expect(v: list[OpResult]) -> list[tuple[int, int, Any]]:
    return [(o.op, o.err, o.value) for o in v]


# op -> (value strategy, body decoder, expected decoded value from the value)
_ident: Callable[[Any], Any] = lambda v: v  # noqa: E731
_none: Callable[[Any], Any] = lambda v: None  # noqa: E731


def _empty_body(r: R) -> None:
    return None


REPLIES: dict[int, tuple[st.SearchStrategy[Any], Callable[[R], Any], Callable[[Any], Any]]] = {
    OpCode.CREATE: (PATH, R.ustring, _ident),
    OpCode.CREATE2: (st.tuples(PATH, STAT_ST), lambda r: (r.ustring(), r.stat()), _ident),
    OpCode.CREATE_CONTAINER: (st.tuples(PATH, STAT_ST), lambda r: (r.ustring(), r.stat()),
                              _ident),
    OpCode.CREATE_TTL: (st.tuples(PATH, STAT_ST), lambda r: (r.ustring(), r.stat()), _ident),
    OpCode.DELETE: (st.none(), _empty_body, _none),
    OpCode.DELETE_CONTAINER: (st.none(), _empty_body, _none),
    OpCode.EXISTS: (STAT_ST, R.stat, _ident),
    OpCode.GET_DATA: (st.tuples(DATA, STAT_ST), lambda r: (r.buffer(), r.stat()), _ident),
    OpCode.SET_DATA: (STAT_ST, R.stat, _ident),
    OpCode.GET_ACL: (st.tuples(st.lists(ACL_ST, max_size=3), STAT_ST),
                     lambda r: (r.acls(), r.stat()), _ident),
    OpCode.SET_ACL: (STAT_ST, R.stat, _ident),
    OpCode.GET_CHILDREN: (NAMES, R.strings, _ident),
    OpCode.GET_CHILDREN2: (st.tuples(NAMES, STAT_ST), lambda r: (r.strings(), r.stat()), _ident),
    OpCode.SYNC: (PATH, R.ustring, _ident),
    OpCode.PING: (st.none(), _empty_body, _none),
    OpCode.MULTI: (st.lists(OP_RESULT, max_size=5), _d_multi, _multi_expect),
    OpCode.MULTI_READ: (st.lists(OP_RESULT_READ, max_size=5), _d_multi, _multi_expect),
    OpCode.CHECK_WATCHES: (st.none(), _empty_body, _none),
    OpCode.REMOVE_WATCHES: (st.none(), _empty_body, _none),
    OpCode.ADD_WATCH: (st.none(), R.int, lambda v: 0),  # ErrorResponse{0}, 4 bytes
    OpCode.GET_EPHEMERALS: (NAMES, R.strings, _ident),
    OpCode.GET_ALL_CHILDREN_NUMBER: (INT32, R.int, _ident),
    OpCode.AUTH: (st.none(), _empty_body, _none),
    OpCode.SET_WATCHES: (st.none(), _empty_body, _none),
    OpCode.SET_WATCHES2: (st.none(), _empty_body, _none),
    OpCode.SASL: (st.none() | st.binary(max_size=16), R.buffer, _ident),
    OpCode.WHO_AM_I: (st.lists(st.tuples(TEXT, TEXT), max_size=3),
                      lambda r: [(r.ustring(), r.ustring()) for _ in range(r.int())], _ident),
    OpCode.CLOSE_SESSION: (st.none(), _empty_body, _none),
}


def test_reply_table_covers_every_encoder() -> None:
    assert set(REPLIES) == set(ENCODERS)


@pytest.mark.parametrize("op", sorted(REPLIES), ids=lambda o: OpCode(o).name)
@SETTINGS
@given(data=st.data())
def test_reply_round_trip(op: int, data: st.DataObject) -> None:
    strategy, decode, expect = REPLIES[op]
    value = data.draw(strategy)
    xid, zxid = data.draw(INT32), data.draw(INT64)
    frame = encode_reply(xid, zxid, 0, op, value)
    rxid, rzxid, err, body = split_reply(frame)
    assert (rxid, rzxid, err) == (xid, zxid, 0)
    r = R(body)
    assert decode(r) == expect(value)
    assert r.done(), f"{len(body) - r.p} trailing bytes"


@pytest.mark.parametrize("op", sorted((set(ENCODERS) - {OpCode.SASL})
                                      | {OpCode.RECONFIG, OpCode.CHECK, 999}), ids=str)
@pytest.mark.parametrize("err", [-5, -6, -101, -110, -115])
def test_error_reply_is_a_bare_header(op: int, err: int) -> None:
    frame = encode_reply(12, 0x55, err, op, "ignored")
    assert frame == struct.pack(">iiqi", 16, 12, 0x55, err)


@pytest.mark.parametrize("err", [-115, -124])
def test_sasl_error_reply_carries_a_null_token(err: int) -> None:
    # ZooKeeper: ReplyHeader{err} + SetSASLResponse{null}; the Java client reads it.
    frame = encode_reply(12, 0, err, OpCode.SASL, None)
    assert frame == struct.pack(">iiqii", 20, 12, 0, err, -1)


def test_add_watch_success_body_is_four_zero_bytes() -> None:
    assert encode_reply(4, 9, 0, OpCode.ADD_WATCH, None) == \
        struct.pack(">iiqi", 20, 4, 9, 0) + b"\x00\x00\x00\x00"


def _node(data: bytes | None) -> Node:
    n = Node(data, (ACL(31, "world", "anyone"),), 5, 1000, 0)
    n.version = 3
    n.c = 2
    n.children.update({"a", "b"})
    return n


@pytest.mark.parametrize("data", [None, b"", b"hello"])
def test_get_data_reply_from_a_live_node(data: bytes | None) -> None:
    node = _node(data)
    _, _, _, body = split_reply(encode_reply(1, 2, 0, OpCode.GET_DATA, node))
    r = R(body)
    assert r.buffer() == data
    st_ = r.stat()
    assert r.done()
    assert st_ == Stat(5, 5, 1000, 1000, 3, 2, 0, 0, len(data or b""), 2, 5)


@pytest.mark.parametrize("op", [OpCode.EXISTS, OpCode.SET_DATA, OpCode.SET_ACL])
def test_stat_reply_from_a_live_node(op: int) -> None:
    node = _node(b"xyz")
    _, _, _, body = split_reply(encode_reply(1, 2, 0, op, node))
    assert len(body) == 68
    assert R(body).stat() == node.stat()


def test_failed_multi_reply_layout() -> None:
    # §5.6: header err 0, entries {-1, false, E} + ErrorResponse{E}, then the terminator.
    results = [OpResult(OpCode.ERROR, 0), OpResult(OpCode.ERROR, -103),
               OpResult(OpCode.ERROR, -2)]
    frame = encode_reply(5, 0x20, 0, OpCode.MULTI, results)
    expected_body = b"".join(struct.pack(">i?ii", -1, False, e, e) for e in (0, -103, -2))
    expected_body += struct.pack(">i?i", -1, True, -1)
    assert frame == struct.pack(">iiqi", 16 + len(expected_body), 5, 0x20, 0) + expected_body


def test_empty_multi_reply_is_just_the_terminator() -> None:
    _, _, err, body = split_reply(encode_reply(5, 1, 0, OpCode.MULTI, []))
    assert err == 0
    assert body == struct.pack(">i?i", -1, True, -1)


@SETTINGS
@given(st.sampled_from([1, 2, 3, 4]), PATH, INT64)
def test_notification_round_trip(etype: int, path: str, zxid: int) -> None:
    frame = encode_notification(etype, path, zxid)
    xid, rzxid, err, body = split_reply(frame)
    assert (xid, rzxid, err) == (-1, zxid, 0)
    r = R(body)
    assert (r.int(), r.int(), r.ustring()) == (etype, 3, path)
    assert r.done()


# ---------------------------------------------------------------------- real captures

CAPTURES = Path("/work/shared/reference/captures")
_CAPTURE_FILES = sorted(p for d in ("kazoo", "java", "c") for p in (CAPTURES / d).glob("*.json*"))

_FIELD = {
    "path": "path", "prefixPath": "path", "watch": "watch", "data": "data", "acl": "acl",
    "flags": "flags", "ttl": "ttl", "version": "version", "scheme": "scheme", "auth": "auth",
    "authType": "type", "mode": "type", "watcherType": "type", "relativeZxid": "relative_zxid",
    "dataWatches": "data", "existWatches": "exist", "childWatches": "child",
    "persistentWatches": "persistent", "persistentRecursiveWatches": "persistent_recursive",
}
_IGNORED = {"flags_name", "mode_name", "watcherType_name", "MultiHeader", "op"}


def _load(p: Path) -> dict[str, Any]:
    raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
    return json.loads(raw)  # type: ignore[no-any-return]


def _capture_frames() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for p in _CAPTURE_FILES:
        for i, fr in enumerate(_load(p)["frames"]):
            if fr["dir"] != "c2s":
                continue
            dec = fr.get("decoded", {})
            if dec.get("record") != "RequestHeader":
                continue  # ConnectRequests (first frame of each connection)
            if fr.get("partial") or dec.get("partial") or dec.get("length_violation"):
                continue  # kazoo's deliberately oversized setData
            out.append((f"{p.parent.name}/{p.name}#{i}", fr))
    return out


def _check_value(where: str, key: str, want: Any, got: Any) -> None:
    if key in ("data", "auth"):
        if want is None:
            assert got is None, where
            return
        assert got is not None and len(got) == want["len"], where
        text = got.decode("utf-8", errors="replace")
        if want.get("truncated"):
            assert text.startswith(want["utf8"]), where
        else:
            assert text == want["utf8"], where
    elif key == "acl":
        # A null scheme or id (kazoo sends auth:<null>) decodes as the empty string.
        assert got == [ACL(a["perms"], a["scheme"] or "", a["id"] or "") for a in want], where
    elif key == "relativeZxid":
        assert got == (int(want, 16) if isinstance(want, str) else want), where
    else:
        assert got == want, f"{where}: {key}"


def _check_record(where: str, body: dict[str, Any], rec: Any) -> None:
    for key, want in body.items():
        if key in _IGNORED:
            continue
        assert key in _FIELD, f"{where}: capture field {key!r} not mapped by this test"
        _check_value(where, key, want, getattr(rec, _FIELD[key]))


def test_captures_present() -> None:
    frames = _capture_frames()
    assert len(_CAPTURE_FILES) >= 40
    assert len(frames) >= 250


@pytest.mark.parametrize("where, frame", _capture_frames(), ids=lambda x: x
                         if isinstance(x, str) else "")
def test_real_client_frame_decodes(where: str, frame: dict[str, Any]) -> None:
    raw = bytes.fromhex(frame["hex"])
    (length,) = struct.unpack_from(">i", raw, 0)
    assert length == len(raw) - 4
    payload = raw[4:]
    xid, op = codec.REQ_HEADER.unpack_from(payload, 0)
    dec = frame["decoded"]
    assert (xid, op) == (dec["xid"], dec["type"])
    assert op in DECODERS, f"{where}: opcode {op} has no decoder"
    rec = decode_request(op, payload, MAXBUF)
    body = dec.get("body")
    if body is None:
        assert rec == EmptyRequest(), where
        return
    if op in (OpCode.MULTI, OpCode.MULTI_READ):
        assert isinstance(rec, MultiRequest)
        subs = [o for o in body["ops"] if not o["MultiHeader"]["done"]]
        assert len(rec.ops) == len(subs), where
        for (sub_op, sub_rec), want in zip(rec.ops, subs, strict=True):
            assert sub_op == want["MultiHeader"]["type"], where
            _check_record(where, want, sub_rec)
        return
    _check_record(where, body, rec)
