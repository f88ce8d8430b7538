"""The peer-link codec (kernel/zab/wire.py with kernel/runtime/links.peer_registry()):
every record a link carries survives a round trip with its types intact, the byte form
is canonical, and anything malformed is a ProtocolError (the link is dropped), never
another exception."""

from __future__ import annotations

import dataclasses
import struct
import typing
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.errors import ProtocolError
from kernel.forwarding import Forward, ForwardSync, Owned, SyncDone, Touch
from kernel.protocol import OpCode
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
from kernel.runtime.links import Hello, peer_registry
from kernel.txn import (
    CheckTxn,
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    Txn,
    TxnBody,
)
from kernel.zab import messages as m
from kernel.zab.wire import MAX_FRAME, Registry, frame_length

REG = peer_registry()
FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# -------------------------------------------------------------------------- strategies

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
# The wire's integers have no fixed width (up to 255 bytes of two's complement).
BIG = st.one_of(INT64, st.integers(-(2**2000), 2**2000),
                st.sampled_from([0, -1, 1, 127, 128, -128, -129, 255, 256, 2**63, -(2**63),
                                 2**64 - 1, 2**2000, -(2**2000)]))
# Session ids with the server id in the top byte; >= 128 makes them negative longs.
SESSION = st.one_of(INT64, st.builds(lambda sid, low: ((sid << 56) | low) - (
    (1 << 64) if sid >= 128 else 0), st.integers(1, 255), st.integers(0, 2**56 - 1)))
TEXT = st.text(max_size=16)
DATA = st.none() | st.binary(max_size=32)
OPS = st.sampled_from(list(OpCode))  # IntEnum members

ACL_ST = st.builds(ACL, INT32, TEXT, TEXT)
ID_ST = st.builds(Id, TEXT, TEXT)
ACL_TUPLE = st.lists(ACL_ST, max_size=3).map(tuple)
ACL_LIST = st.none() | st.lists(ACL_ST, max_size=3)

CREATE_REQ = st.builds(CreateRequest, TEXT, DATA, ACL_LIST, INT32, INT64)
DELETE_REQ = st.builds(DeleteRequest, TEXT, INT32)
SET_DATA_REQ = st.builds(SetDataRequest, TEXT, DATA, INT32)
SET_ACL_REQ = st.builds(SetACLRequest, TEXT, ACL_LIST, INT32)
CHECK_REQ = st.builds(CheckVersionRequest, TEXT, INT32)
RECONFIG_REQ = st.builds(ReconfigRequest, st.none() | TEXT, st.none() | TEXT,
                         st.none() | TEXT, INT64)
MULTI_REQ = st.builds(MultiRequest, st.lists(st.tuples(OPS, st.one_of(
    CREATE_REQ, DELETE_REQ, SET_DATA_REQ, CHECK_REQ)), max_size=4))
REQUEST = st.one_of(CREATE_REQ, DELETE_REQ, SET_DATA_REQ, SET_ACL_REQ, CHECK_REQ,
                    RECONFIG_REQ, MULTI_REQ,
                    st.tuples(INT32, st.binary(min_size=16, max_size=16)),  # createSession
                    st.none())  # an undecodable write (Forward.err set)

SIMPLE_BODIES: dict[type, st.SearchStrategy[Any]] = {
    CreateTxn: st.builds(CreateTxn, TEXT, DATA, ACL_TUPLE, INT64, INT32),
    DeleteTxn: st.builds(DeleteTxn, TEXT),
    SetDataTxn: st.builds(SetDataTxn, TEXT, DATA, INT32),
    SetACLTxn: st.builds(SetACLTxn, TEXT, ACL_TUPLE, INT32),
    CheckTxn: st.builds(CheckTxn, TEXT),
    ErrorTxn: st.builds(ErrorTxn, INT32),
    CreateSessionTxn: st.builds(CreateSessionTxn, INT32, st.binary(max_size=16)),
    CloseSessionTxn: st.just(CloseSessionTxn()),
}
BODIES: dict[type, st.SearchStrategy[Any]] = {
    **SIMPLE_BODIES,
    MultiTxn: st.builds(MultiTxn, st.lists(st.tuples(OPS, st.one_of(
        *SIMPLE_BODIES.values())), max_size=4).map(tuple)),
}
BODY = st.one_of(*BODIES.values())


def txn_st(body: st.SearchStrategy[Any] = BODY) -> st.SearchStrategy[Txn]:
    return st.builds(Txn, INT64, SESSION, INT32, INT64, OPS, body)


VOTE = st.builds(m.Vote, BIG, BIG, BIG)

RECORDS: dict[type, st.SearchStrategy[Any]] = {
    Hello: st.builds(Hello, BIG),
    m.Vote: VOTE,
    m.Notification: st.builds(m.Notification, st.sampled_from([m.LOOKING, m.FOLLOWING,
                                                                m.LEADING]), VOTE, BIG),
    m.FollowerInfo: st.builds(m.FollowerInfo, BIG, BIG),
    m.LeaderInfo: st.builds(m.LeaderInfo, BIG),
    m.AckEpoch: st.builds(m.AckEpoch, BIG, BIG),
    m.SyncDiff: st.just(m.SyncDiff()),
    m.SyncTrunc: st.builds(m.SyncTrunc, BIG),
    m.SyncSnap: st.builds(m.SyncSnap, BIG, st.binary(max_size=200)),
    m.NewLeader: st.builds(m.NewLeader, BIG),
    m.AckNewLeader: st.builds(m.AckNewLeader, BIG, BIG),
    m.UpToDate: st.builds(m.UpToDate, BIG),
    m.Proposal: st.builds(m.Proposal, txn_st()),
    m.Proposals: st.builds(m.Proposals, st.lists(txn_st(), max_size=4)),
    m.Ack: st.builds(m.Ack, INT64),  # zxids: 64-bit
    m.Commit: st.builds(m.Commit, INT64),
    m.Ping: st.builds(m.Ping, BIG),
    m.PingAck: st.just(m.PingAck()),
    Forward: st.builds(Forward, SESSION, INT32, OPS, REQUEST, st.lists(ID_ST, max_size=3),
                       INT32),
    ForwardSync: st.builds(ForwardSync, SESSION, INT32),
    SyncDone: st.builds(SyncDone, SESSION, INT32, BIG),
    Touch: st.builds(Touch, st.lists(st.tuples(SESSION, INT32), max_size=5)),
    Owned: st.builds(Owned, SESSION),
    Id: ID_ST,
    ACL: ACL_ST,
    CreateRequest: CREATE_REQ,
    DeleteRequest: DELETE_REQ,
    SetDataRequest: SET_DATA_REQ,
    SetACLRequest: SET_ACL_REQ,
    CheckVersionRequest: CHECK_REQ,
    MultiRequest: MULTI_REQ,
    ReconfigRequest: RECONFIG_REQ,
}
ANY_RECORD = st.one_of(*RECORDS.values())
# Bare values a record field may hold.
PLAIN = st.recursive(
    st.one_of(st.none(), st.booleans(), BIG, st.text(max_size=8), st.binary(max_size=8)),
    lambda inner: st.lists(inner, max_size=3) | st.lists(inner, max_size=3).map(tuple),
    max_leaves=12)


def typed(v: object) -> object:
    """``v`` with every type spelled out, so that equality also compares types (True
    == 1, OpCode.CREATE == 1, [x] != (x,) only by accident of __eq__)."""
    if isinstance(v, Txn):
        return ("Txn", typed(v.zxid), typed(v.session_id), typed(v.cxid), typed(v.time),
                typed(v.op), typed(v.body))
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return (type(v).__name__, *(typed(getattr(v, f.name)) for f in dataclasses.fields(v)))
    if isinstance(v, tuple) and hasattr(v, "_fields"):
        return (type(v).__name__, *(typed(x) for x in v))
    if isinstance(v, list | tuple):
        return (type(v).__name__, [typed(x) for x in v])
    if isinstance(v, bool) or v is None:
        return (type(v).__name__, v)
    if isinstance(v, int):
        return ("int", int(v))  # an IntEnum travels as its value
    return (type(v).__name__, v)


def body_of(frame: bytes) -> bytes:
    assert frame_length(frame[:4]) == len(frame) - 4
    return frame[4:]


def round_trip(v: object) -> object:
    frame = REG.encode(v)
    out = REG.decode(body_of(frame))
    assert typed(out) == typed(v)
    assert out == v
    assert REG.encode(out) == frame  # canonical: the same value, the same bytes
    return out


# -------------------------------------------------------------------------- registry


def test_every_registered_record_has_a_strategy() -> None:
    """A record type added to peer_registry() without a round-trip strategy here
    fails this test."""
    assert set(REG._by_type) == set(RECORDS)


def test_every_txn_body_kind_has_a_strategy() -> None:
    assert set(BODIES) == set(typing.get_args(TxnBody))


def test_record_codes_are_stable() -> None:
    """Codes are part of the wire format between servers of different builds."""
    order = [Hello, m.Vote, m.Notification, m.FollowerInfo, m.LeaderInfo, m.AckEpoch,
             m.SyncDiff, m.SyncTrunc, m.SyncSnap, m.NewLeader, m.AckNewLeader, m.UpToDate,
             m.Proposal, m.Ack, m.Commit, m.Ping, m.PingAck, Forward, ForwardSync,
             SyncDone, Touch, Id, ACL, CreateRequest, DeleteRequest, SetDataRequest,
             SetACLRequest, CheckVersionRequest, MultiRequest, ReconfigRequest, m.Proposals,
             Owned]
    assert REG._by_type == {cls: code for code, cls in enumerate(order, start=1)}


def test_register_fast_rejects_generic_and_taken_tags() -> None:
    reg = Registry()
    for tag in b"NTFisbxltr":
        with pytest.raises(ValueError):
            reg.register_fast(bytes([tag]), m.Ack, lambda v: b"", lambda b: m.Ack(0))
    reg.register_fast(b"A", m.Ack, lambda v: b"", lambda b: m.Ack(0))
    with pytest.raises(ValueError):
        reg.register_fast(b"A", m.Commit, lambda v: b"", lambda b: m.Commit(0))


@pytest.mark.parametrize("code", [0, 256, -1, 1000])
def test_register_rejects_out_of_range_codes(code: int) -> None:
    with pytest.raises(ValueError):
        Registry().register(code, Hello)


def test_register_rejects_a_taken_code() -> None:
    reg = Registry()
    reg.register(7, Hello)
    with pytest.raises(ValueError):
        reg.register(7, m.Ack)


def test_unregistered_record_types_are_not_encoded() -> None:
    reg = Registry()
    reg.register(1, m.Ack)
    with pytest.raises(TypeError):
        reg.encode(m.Commit(1))
    # a NamedTuple that is not registered travels as a plain tuple
    assert reg.decode(body_of(reg.encode(Id("a", "b")))) == ("a", "b")
    assert type(reg.decode(body_of(reg.encode(Id("a", "b"))))) is tuple


@pytest.mark.parametrize("v", [1.5, {"a": 1}, {1, 2}, object(), frozenset(), 3j])
def test_unsupported_values_are_a_type_error(v: object) -> None:
    with pytest.raises(TypeError):
        REG.encode(v)
    with pytest.raises(TypeError):
        REG.encode(Forward(1, 1, OpCode.CREATE, v, []))


# -------------------------------------------------------------------------- round trips


@FAST
@given(ANY_RECORD)
def test_every_record_round_trips(v: object) -> None:
    round_trip(v)


@pytest.mark.parametrize("cls", list(RECORDS), ids=lambda c: c.__name__)
def test_each_record_type_round_trips(cls: type) -> None:
    """Every type individually (the one_of above might favour some)."""
    @settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(RECORDS[cls])
    def check(v: object) -> None:
        assert type(round_trip(v)) is cls

    check()


@pytest.mark.parametrize("kind", list(BODIES), ids=lambda c: c.__name__)
def test_proposal_carries_every_txn_body(kind: type) -> None:
    @settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(txn_st(BODIES[kind]))
    def check(txn: Txn) -> None:
        out = round_trip(m.Proposal(txn))
        assert isinstance(out, m.Proposal)
        assert out.txn == txn and type(out.txn.body) is kind
        assert out.txn.result is None

    check()


def test_txn_result_is_not_replicated() -> None:
    txn = Txn(1, 2, 3, 4, OpCode.CREATE, CreateTxn("/a", b"x", (), 0, 1))
    txn.result = ("/a", "anything")
    out = REG.decode(body_of(REG.encode(m.Proposal(txn))))
    assert isinstance(out, m.Proposal) and out.txn.result is None and out.txn == txn


@FAST
@given(PLAIN)
def test_plain_values_round_trip(v: object) -> None:
    round_trip(v)


@FAST
@given(BIG)
def test_integers_of_any_size_round_trip(v: int) -> None:
    round_trip(v)
    round_trip(m.Ping(v))


@pytest.mark.parametrize("v", [0, -1, 2**63 - 1, -(2**63), 2**63, 2**64, -(2**64) - 1,
                               2**2031, -(2**2031), 2**2038, -(2**2038)])
def test_integer_edges(v: int) -> None:
    assert round_trip(v) == v


def test_integers_and_booleans_stay_distinct() -> None:
    for v in (True, False, 0, 1, None):
        assert typed(REG.decode(body_of(REG.encode(v)))) == typed(v)
    assert REG.encode(True) != REG.encode(1)
    assert REG.encode(False) != REG.encode(0)


def test_intenum_values_travel_as_their_integer() -> None:
    for op in OpCode:
        assert REG.encode(op) == REG.encode(int(op))
        out = REG.decode(body_of(REG.encode(Forward(1, 2, op, None, [], 0))))
        assert isinstance(out, Forward)
        assert out.op == op and type(out.op) is int


@pytest.mark.parametrize("sid", [-1, -(2**63), (0xFF << 56) - (1 << 64) + 5,
                                 (0x80 << 56) - (1 << 64), 2**63 - 1])
def test_negative_session_ids(sid: int) -> None:
    for v in (Forward(sid, 1, OpCode.CREATE, CreateRequest("/a", b"", None, 0), []),
              ForwardSync(sid, 3), SyncDone(sid, 3, 2**40), Touch([(sid, 4000)]),
              m.Proposal(Txn(5, sid, 1, 2, OpCode.CLOSE_SESSION, CloseSessionTxn()))):
        assert round_trip(v) == v


def test_lists_and_tuples_stay_distinct() -> None:
    out = round_trip(Touch([(1, 2), (3, 4)]))
    assert isinstance(out, Touch) and type(out.sessions) is list
    assert all(type(t) is tuple for t in out.sessions)
    create_session = round_trip(Forward(1, 0, OpCode.CREATE_SESSION, (4000, b"p" * 16), []))
    assert isinstance(create_session, Forward) and type(create_session.request) is tuple


def test_str_and_bytes_stay_distinct() -> None:
    assert round_trip("ab") == "ab" and round_trip(b"ab") == b"ab"
    assert REG.encode("ab") != REG.encode(b"ab")
    # bytes-likes travel as bytes
    assert REG.decode(body_of(REG.encode(bytearray(b"xy")))) == b"xy"
    assert REG.decode(body_of(REG.encode(memoryview(b"xy")))) == b"xy"


def test_decode_accepts_a_memoryview_slice() -> None:
    """PeerLinks decodes straight from its receive buffer."""
    a, b = REG.encode(m.Ack(1)), REG.encode(m.Proposal(Txn(
        9, -5, 1, 2, OpCode.SET_DATA, SetDataTxn("/x", b"d", 3))))
    buf = bytearray(a + b)
    view = memoryview(buf)
    n = frame_length(view[:4])
    assert REG.decode(view[4:4 + n]) == m.Ack(1)
    n2 = frame_length(view[4 + n:8 + n])
    out = REG.decode(view[8 + n:8 + n + n2])
    assert isinstance(out, m.Proposal) and out.txn.body == SetDataTxn("/x", b"d", 3)


def test_unicode_text() -> None:
    for s in ("", "ä/ö", "\U0001f600", "\x00", "a" * 70000):
        assert round_trip(s) == s


# -------------------------------------------------------------------------- malformed


def malformed(body: bytes | memoryview) -> None:
    with pytest.raises(ProtocolError):
        REG.decode(body)


def decodes_or_protocol_error(body: bytes) -> None:
    try:
        v = REG.decode(body)
    except ProtocolError:
        return
    # what decodes is a value this side can encode again (not necessarily to the same
    # bytes: a decoder accepts non-minimal integers)
    assert typed(REG.decode(REG.encode(v)[4:])) == typed(v)


@FAST
@given(ANY_RECORD, st.data())
def test_every_truncation_is_a_protocol_error(v: object, data: st.DataObject) -> None:
    body = body_of(REG.encode(v))
    cut = data.draw(st.integers(0, len(body) - 1))
    malformed(body[:cut])


@pytest.mark.parametrize("v", [m.Ack(7), m.Proposal(Txn(
    (1 << 32) + 1, -2, 3, 4, OpCode.MULTI, MultiTxn(((OpCode.CREATE, CreateTxn(
        "/a", None, (ACL(31, "world", "anyone"),), 0, 1)), (OpCode.DELETE, DeleteTxn("/b")))))),
    Forward(1, 2, OpCode.SET_DATA, SetDataRequest("/a", b"x", 1), [Id("ip", "1.2.3.4")]),
    Touch([(1, 2)]), "text", b"bytes", [1, (2, None)]], ids=repr)
def test_every_prefix_is_a_protocol_error(v: object) -> None:
    body = body_of(REG.encode(v))
    for cut in range(len(body)):
        malformed(body[:cut])


@FAST
@given(ANY_RECORD, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_a_protocol_error(v: object, extra: bytes) -> None:
    malformed(body_of(REG.encode(v)) + extra)


def test_unknown_tag_is_a_protocol_error() -> None:
    for tag in sorted(set(range(256)) - set(b"NTFisbxltr")):
        malformed(bytes([tag]))  # also the compact tags of the hot messages, without body
        malformed(b"l\x00\x00\x00\x01" + bytes([tag]))


@pytest.mark.parametrize("code", [0, 33, 34, 200, 255])
def test_unknown_record_code_is_a_protocol_error(code: int) -> None:
    with pytest.raises(ProtocolError, match="unknown record code"):
        REG.decode(bytes([0x72, code, 0]))
    malformed(b"t\x00\x00\x00\x01" + bytes([0x72, code, 1]) + b"N")


@pytest.mark.parametrize("body", [
    b"r\x0e\x00",  # Ack without its field
    b"r\x0e\x02i\x01\x01i\x01\x02",  # Ack with two
    b"r\x01\x05NNNNN",  # Hello with five
    b"r\x02\x02i\x00i\x00",  # Vote with two of three
], ids=repr)
def test_wrong_field_count_is_a_protocol_error(body: bytes) -> None:
    malformed(body)


@pytest.mark.parametrize("body", [
    b"", b"i", b"i\x05\x01", b"s\x00\x00", b"s\x00\x00\x00\x05abc", b"b\xff\xff\xff\xff",
    b"x\x00\x00\x00\x03abc", b"x\x00\x00\x00\x00", b"l\x00\x00\x00\x02N",
    b"l\xff\xff\xff\xff", b"t\x7f\xff\xff\xffN", b"s\x00\x00\x00\x02\xff\xfe",
    b"r", b"r\x0e", b"NN", b"TF",
], ids=repr)
def test_malformed_examples(body: bytes) -> None:
    malformed(body)


def test_malformed_txn_inside_a_proposal() -> None:
    good = REG.encode(m.Proposal(Txn(1, 2, 3, 4, OpCode.DELETE, DeleteTxn("/a"))))[4:]
    # the txn's own bytes, cut short or with an unknown body kind
    n = struct.unpack(">I", good[4:8])[0]
    txn = good[8:8 + n]
    for bad in (txn[:-1], txn[:-4] + b"\x00\x00\x00\x63", txn + b"\x00"):
        malformed(good[:4] + struct.pack(">I", len(bad)) + bad)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64))
def test_fuzz_random_bytes(body: bytes) -> None:
    decodes_or_protocol_error(body)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(b"NTFisbxltrPAC"), st.binary(max_size=48))
def test_fuzz_after_a_valid_tag(tag: int, rest: bytes) -> None:
    decodes_or_protocol_error(bytes([tag]) + rest)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 30), st.integers(0, 6), st.binary(max_size=48))
def test_fuzz_record_fields(code: int, nfields: int, rest: bytes) -> None:
    decodes_or_protocol_error(bytes([0x72, code, nfields]) + rest)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(txn_st(), st.data())
def test_fuzz_mutated_proposals(txn: Txn, data: st.DataObject) -> None:
    body = bytearray(body_of(REG.encode(m.Proposal(txn))))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    decodes_or_protocol_error(bytes(body))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_RECORD, st.data())
def test_fuzz_mutated_records(v: object, data: st.DataObject) -> None:
    body = bytearray(body_of(REG.encode(v)))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    decodes_or_protocol_error(bytes(body))


def _nested_lists(depth: int) -> bytes:
    return b"l\x00\x00\x00\x01" * depth + b"N"


def _nested_multi_proposal(depth: int) -> bytes:
    body: TxnBody = ErrorTxn(0)
    for _ in range(depth):
        body = MultiTxn(((OpCode.MULTI, body),))
    try:
        return REG.encode(m.Proposal(Txn(1, 1, 1, 1, OpCode.MULTI, body)))[4:]
    except RecursionError:
        pytest.skip("cannot even encode")


def test_deeply_nested_lists_are_a_protocol_error() -> None:
    malformed(_nested_lists(5000))


def _nested_multi_txn(depth: int) -> bytes:
    """A txn whose body is ``depth`` multis, each holding the next (built by hand:
    encode_txn would recurse as deep)."""
    header = struct.pack(">qqiqi", 1, 1, 1, 1, OpCode.MULTI)
    multi = struct.pack(">iii", 9, 1, OpCode.MULTI)  # kind MULTI, one op, its opcode
    return header + multi * depth + struct.pack(">ii", 6, 0)  # kind ERROR, err 0


@pytest.mark.parametrize("layout", ["compact", "generic"])
def test_deeply_nested_multi_txn_is_a_protocol_error(layout: str) -> None:
    txn = _nested_multi_txn(5000)
    if layout == "compact":
        malformed(b"P" + txn)
    else:
        malformed(b"r\x0d\x01x" + struct.pack(">I", len(txn)) + txn)


def test_moderate_nesting_decodes() -> None:
    assert REG.decode(_nested_lists(200)) is not None
    out = REG.decode(_nested_multi_proposal(100))
    assert isinstance(out, m.Proposal)
    txn = _nested_multi_txn(100)
    for body in (b"P" + txn, b"r\x0d\x01x" + struct.pack(">I", len(txn)) + txn):
        out = REG.decode(body)
        assert isinstance(out, m.Proposal) and isinstance(out.txn.body, MultiTxn)


# -------------------------------------------------------------------------- frame length


@pytest.mark.parametrize("n", [0, 1, 1000, MAX_FRAME - 1, MAX_FRAME])
def test_frame_length_within_the_limit(n: int) -> None:
    assert frame_length(struct.pack(">I", n)) == n
    assert frame_length(memoryview(struct.pack(">I", n) + b"rest")[:4]) == n


@pytest.mark.parametrize("n", [MAX_FRAME + 1, 2**31, 2**32 - 1])
def test_frame_length_over_the_limit_is_a_protocol_error(n: int) -> None:
    with pytest.raises(ProtocolError):
        frame_length(struct.pack(">I", n))


def test_frame_header_is_the_body_length() -> None:
    for v in (None, m.PingAck(), m.SyncSnap(1, b"s" * 100_000), "x" * 300):
        frame = REG.encode(v)
        assert struct.unpack(">I", frame[:4])[0] == len(frame) - 4
