"""Malformed input over raw sockets (protocol reference §1.2, §3.4, §6.1, checklist §13).

After each abuse a second session, connected *before* the abuse, must still work (the
server carries on and does not drop unrelated connections), and new sessions connect.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration import wire
from tests.integration.wire import OP, WireConn
from tests.support.servers import ServerProcess, server_class

TARGET_ZK = os.environ.get("ZK_TEST_TARGET") == "zookeeper"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = server_class()(tmp_path_factory.mktemp("wire-malformed"), None)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def bystander(srv: Any) -> Iterator[WireConn]:
    """An established session with a watch; it must be unaffected by the abuse."""
    c = wire.open_session(srv.host, srv.port)
    name = f"/bystander-{c.session_id:x}"
    assert c.create(name, b"b").err == 0
    assert c.get_data(name, watch=True).err == 0
    c.watch_path = name  # type: ignore[attr-defined]
    yield c
    # still alive and still watching: its own change notifies it before the reply
    rep = c.set_data(name, b"after")
    assert rep.err == 0, "bystander session broken by the abuse"
    assert [(e.body["type"], e.body["path"]) for e in c.events] == \
        [(wire.NODE_DATA_CHANGED, name)], "bystander lost its watch"
    assert c.ping().err == 0
    c.close_session()
    c.close()
    # and new sessions are accepted
    with wire.open_session(srv.host, srv.port) as fresh:
        assert fresh.get_data("/").err == 0
        fresh.close_session()


def after_handshake(srv: Any) -> WireConn:
    return wire.open_session(srv.host, srv.port)


FRAMING_ABUSE: list[Any] = [
    pytest.param(struct.pack(">i", -1) + bytes(8), id="negative-length"),
    pytest.param(struct.pack(">i", -0x80000000) + bytes(8), id="min-int-length"),
    pytest.param(struct.pack(">i", 0x100000) + bytes(16), id="maxbuffer-plus-1"),
    pytest.param(struct.pack(">i", 0x7FFFFFFF) + bytes(16), id="max-int-length"),
    pytest.param(b"GARBAGE\r\nmore garbage\r\n", id="ascii-garbage"),
    pytest.param(struct.pack(">i", 0), id="zero-length-frame"),
    pytest.param(struct.pack(">i", 2) + b"\x00\x01", id="two-byte-frame"),
    pytest.param(struct.pack(">i", 7) + bytes(7), id="seven-byte-frame"),
    pytest.param(b"ruok", id="4lw-after-handshake"),
]


@pytest.mark.parametrize("data", FRAMING_ABUSE)
def test_bad_framing_closes_without_answer(srv: Any, bystander: WireConn, data: bytes) -> None:
    with after_handshake(srv) as c:
        c.send_raw(data)
        c.expect_closed()


def test_oversized_length_is_rejected_before_the_body_arrives(srv: Any,
                                                             bystander: WireConn) -> None:
    """The server closes as soon as it has read a length above jute.maxbuffer."""
    with after_handshake(srv) as c:
        c.send_raw(struct.pack(">i", 0x100000))  # and never send the body
        c.expect_closed()


def test_frame_of_exactly_maxbuffer_is_accepted(srv: Any, bystander: WireConn) -> None:
    with after_handshake(srv) as c:
        path = f"/big-{c.session_id:x}"
        assert c.create(path, None).err == 0
        head = wire.header(2, OP["setData"]) + wire.Writer().ustring(path).bytes()
        data_len = wire.JUTE_MAXBUFFER - len(head) - 4 - 4  # buffer length + version
        payload = head + wire.Writer().buffer(b"y" * data_len).int(-1).bytes()
        assert len(payload) == 0xFFFFF
        c.send_frame(payload)
        c.pending.append((2, OP["setData"]))
        rep = c.read(timeout=30)
        assert rep.err == 0 and rep.body["stat"].dataLength == data_len
        got = c.get_data(path)
        assert got.err == 0 and got.body["data"] == b"y" * data_len
        assert c.delete(path).err == 0
        c.close_session()


@pytest.mark.parametrize("payload", [
    pytest.param(wire.header(1, OP["getData"]), id="getData-header-only"),
    pytest.param(wire.header(1, OP["getData"]) + struct.pack(">i", 100) + b"/ab",
                 id="path-length-overruns-frame"),
    pytest.param(wire.header(1, OP["create"]) + wire.Writer().ustring("/t").bytes(),
                 id="create-truncated-after-path"),
    pytest.param(wire.header(1, OP["setData"]) + wire.Writer().ustring("/").int(50).bytes(),
                 id="setData-data-overruns"),
    pytest.param(wire.header(1, OP["exists"]) + wire.Writer().ustring("/").bytes(),
                 id="exists-missing-watch-flag"),
])
def test_truncated_record_is_marshalling_error_and_connection_survives(
        srv: Any, bystander: WireConn, payload: bytes) -> None:
    with after_handshake(srv) as c:
        before = c.ping().zxid
        c.send_frame(payload)
        c.pending.append((1, struct.unpack(">i", payload[4:8])[0]))
        rep = c.read()
        assert (rep.xid, rep.err, rep.length) == (1, wire.MARSHALLING_ERROR, 16)
        # a write whose record cannot be decoded is still logged as a failed transaction
        op = struct.unpack(">i", payload[4:8])[0]
        assert rep.zxid == before + (1 if op in (OP["create"], OP["setData"]) else 0)
        # the connection carries on
        assert c.ping().err == 0
        assert c.get_data("/").err == 0
        c.close_session()


@pytest.mark.parametrize("opcode", [999, 0, -5, 10, 23, 108], ids=lambda o: f"op{o}")
def test_unknown_opcode_is_unimplemented_then_closed(srv: Any, bystander: WireConn,
                                                    opcode: int) -> None:
    with after_handshake(srv) as c:
        c.send(opcode, b"")
        rep = c.read()
        assert (rep.xid, rep.zxid, rep.err, rep.length) == (1, -1, wire.UNIMPLEMENTED, 16)
        c.expect_closed()


def test_standalone_check_op(srv: Any, bystander: WireConn) -> None:
    """check (13) is only valid inside multi.

    3.9 (ZOOKEEPER-2623, what zkernel follows): Unimplemented(-6) and close.
    3.8.0: accepted as a transaction; a passing check is never answered at all, a
    failing one is answered with its error - the connection stays open.
    """
    with after_handshake(srv) as c:
        before = c.ping().zxid
        c.send(OP["check"], wire.path_version_body("/", -1))
        if TARGET_ZK:
            c.send(OP["ping"], b"", xid=wire.XID_PING)
            rep = c.read()  # the check's reply never comes: the next frame is the pong
            assert rep.xid == wire.XID_PING and rep.zxid == before + 1
            c.pending = [p for p in c.pending if p[0] != 1]
            rep = c.call(OP["check"], wire.path_version_body("/no-such-node", 3))
            assert (rep.err, rep.zxid) == (wire.NO_NODE, before + 2)
            c.close_session()
        else:
            rep = c.read()
            assert (rep.xid, rep.zxid, rep.err, rep.length) == (1, -1, wire.UNIMPLEMENTED, 16)
            c.expect_closed()


MULTI_BAD: list[Any] = [
    pytest.param(OP["multi"], [(OP["getData"], wire.path_watch_body("/")),
                               (OP["create"], wire.create_body("/mixed-a"))],
                 id="multi-read+write"),
    pytest.param(OP["multi"], [(OP["getChildren"], wire.path_watch_body("/"))],
                 id="multi-read-only-subop"),
    pytest.param(OP["multi"], [(OP["exists"], wire.path_watch_body("/"))],
                 id="multi-unknown-subop"),
    pytest.param(OP["multiRead"], [(OP["getData"], wire.path_watch_body("/")),
                                   (OP["create"], wire.create_body("/mixed-b"))],
                 id="multiRead-with-create"),
    pytest.param(OP["multiRead"], [(OP["exists"], wire.path_watch_body("/"))],
                 id="multiRead-unknown-subop"),
]


@pytest.mark.parametrize("op,subops", MULTI_BAD)
def test_bad_multi_is_marshalling_error(srv: Any, bystander: WireConn, op: int,
                                        subops: list[tuple[int, bytes]]) -> None:
    with after_handshake(srv) as c:
        before = c.ping().zxid
        rep = c.multi(subops, op=op)
        assert (rep.err, rep.length) == (wire.MARSHALLING_ERROR, 16)
        # a multi (14) that cannot be decoded is still a failed transaction; multiRead is not
        assert rep.zxid == before + (1 if op == OP["multi"] else 0)
        assert c.ping().zxid == rep.zxid
        # nothing was created
        assert c.exists("/mixed-a").err == wire.NO_NODE
        assert c.exists("/mixed-b").err == wire.NO_NODE
        c.close_session()


@pytest.mark.parametrize("make", [
    pytest.param(lambda: (OP["addWatch"], wire.path_int_body("/", 2)), id="addWatch-mode-2"),
    pytest.param(lambda: (OP["addWatch"], wire.path_int_body("/", -1)), id="addWatch-mode-neg"),
    pytest.param(lambda: (OP["removeWatches"], wire.path_int_body("/", 0)), id="removeWatches-0"),
    pytest.param(lambda: (OP["removeWatches"], wire.path_int_body("/", 6)), id="removeWatches-6"),
    pytest.param(lambda: (OP["checkWatches"], wire.path_int_body("/", 0)), id="checkWatches-0"),
    pytest.param(lambda: (OP["checkWatches"], wire.path_int_body("/", 99)), id="checkWatches-99"),
])
def test_out_of_range_watch_modes_are_marshalling_errors(
        srv: Any, bystander: WireConn, make: Callable[[], tuple[int, bytes]]) -> None:
    op, body = make()
    with after_handshake(srv) as c:
        before = c.ping().zxid
        rep = c.call(op, body)
        assert (rep.err, rep.length, rep.zxid) == (wire.MARSHALLING_ERROR, 16, before)
        assert c.ping().err == 0
        c.close_session()


def test_non_utf8_paths(srv: Any, bystander: WireConn) -> None:
    with after_handshake(srv) as c:
        before = c.ping().zxid
        bad = b"/\xff\xfe"
        rep = c.call(OP["getData"], wire.Writer().ustring(bad).bool(False).bytes())
        assert (rep.err, rep.zxid) == (wire.NO_NODE, before)  # reads do not validate
        rep = c.call(OP["create"], wire.Writer().ustring(bad).buffer(b"").acl(wire.OPEN_ACL)
                     .int(0).bytes())
        assert (rep.err, rep.zxid) == (wire.BAD_ARGUMENTS, before + 1)
        assert c.ping().zxid == before + 1
        c.close_session()


def test_trailing_bytes_after_a_record_are_ignored(srv: Any, bystander: WireConn) -> None:
    with after_handshake(srv) as c:
        c.send_frame(wire.header(5, OP["getData"]) + wire.path_watch_body("/zookeeper") +
                     b"trailing-junk")
        c.pending.append((5, OP["getData"]))
        rep = c.read()
        assert rep.err == 0 and rep.body["stat"].cversion == -2
        assert c.ping().err == 0
        c.close_session()


def test_pipelined_garbage_after_valid_requests(srv: Any, bystander: WireConn) -> None:
    """The connection is closed; whatever was answered before is an in-order prefix.

    (ZooKeeper 3.8 closes as soon as it parses the bad length, usually before the
    replies of the valid requests in the same segment were written.)
    """
    with after_handshake(srv) as c:
        good = b"".join(wire.frame(wire.header(x, OP["exists"]) + wire.path_watch_body("/"))
                        for x in (1, 2, 3))
        c.send_raw(good + struct.pack(">i", -7) + b"junk")
        c.pending += [(1, OP["exists"]), (2, OP["exists"]), (3, OP["exists"])]
        got = []
        while True:
            try:
                rep = c.read()
            except wire.ConnectionClosed:
                break
            assert rep.err == 0 and rep.body["stat"].czxid == 0
            got.append(rep.xid)
        assert got == [1, 2, 3][:len(got)]
