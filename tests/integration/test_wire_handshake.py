"""Handshake corner cases over raw sockets (protocol reference §2, §10)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration import wire
from tests.integration.wire import OP, WireConn
from tests.support.servers import ServerProcess, server_class

EXPIRED_RESPONSE = struct.pack(">iiq", 0, 0, 0) + struct.pack(">i", 16) + bytes(16)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the handshake tests that do not depend on global state."""
    s = server_class()(tmp_path_factory.mktemp("wire-handshake"), None)
    s.start()
    yield s
    s.stop()


def conn(s: Any) -> WireConn:
    return WireConn(s.host, s.port)


def current_zxid(s: Any) -> int:
    with wire.open_session(s.host, s.port) as c:
        z = c.ping().zxid
        c.close_session()
    return z + 1  # the closeSession above was one more transaction


@pytest.mark.parametrize("read_only", [None, False, True], ids=["44-byte", "45-byte", "45-ro"])
def test_connect_response_mirrors_the_optional_readonly_byte(srv: Any,
                                                             read_only: bool | None) -> None:
    payload = wire.connect_request(30000, read_only=read_only)
    assert len(payload) == (44 if read_only is None else 45)
    with conn(srv) as c:
        c.send_frame(payload)
        raw = c.recv_frame()
        resp = wire.decode_connect_response(raw)
        if read_only is None:
            assert len(raw) == 36 and resp.read_only is None
        else:
            # a read/write server answers readOnly=false even to a readOnly=true client
            assert len(raw) == 37 and resp.read_only is False
        assert resp.protocol_version == 0 and resp.timeout == 30000
        assert resp.session_id != 0 and len(resp.passwd) == 16
        # the session works
        c.session_id = resp.session_id
        assert c.ping().err == 0


@pytest.mark.parametrize("asked,granted", [
    (-1, 4000), (0, 4000), (100, 4000), (3999, 4000), (4000, 4000), (4001, 4001),
    (10000, 10000), (40000, 40000), (40001, 40000), (3600000, 40000),
])
def test_session_timeout_is_clamped_to_2_and_20_ticks(srv: Any, asked: int,
                                                       granted: int) -> None:
    with conn(srv) as c:
        resp = c.handshake(asked)
        assert resp.timeout == granted
        c.close_session()


def test_last_zxid_seen_ahead_of_server_closes_without_answer(srv: Any) -> None:
    z = current_zxid(srv)
    # equal to the server's last zxid: accepted (this handshake makes createSession z+1)
    with conn(srv) as c:
        resp = c.handshake(30000, last_zxid=z)
        assert resp.timeout > 0 and resp.session_id != 0
        z = c.ping().zxid
        assert c.close_session().err == 0
        z += 1
    # one ahead: the server closes without sending a byte
    with conn(srv) as c:
        c.send_frame(wire.connect_request(30000, last_zxid=z + 1))
        c.expect_closed()
    with conn(srv) as c:
        c.send_frame(wire.connect_request(30000, last_zxid=0x7FFFFFFF00000000))
        c.expect_closed()
    # nothing was created by the refused attempts
    assert current_zxid(srv) == z + 2


@pytest.mark.parametrize("read_only", [False, None], ids=["45-byte", "44-byte"])
def test_resume_with_wrong_password_kicks_owner_then_expired_answer(
        srv: Any, read_only: bool | None) -> None:
    owner = wire.open_session(srv.host, srv.port)
    try:
        eph = f"/wrongpw-{read_only}"
        assert owner.create(eph, b"e", flags=1).err == 0
        bad = bytes([owner.passwd[0] ^ 0x55]) + owner.passwd[1:]
        with conn(srv) as intruder:
            intruder.send_frame(wire.connect_request(30000, owner.session_id, bad, 0,
                                                     read_only))
            raw = intruder.recv_frame()
            # timeOut 0, sessionId 0, 16 zero bytes (+ readOnly byte if the request had one)
            assert raw == EXPIRED_RESPONSE + (b"" if read_only is None else b"\x00")
            intruder.expect_closed()
        # the legitimate connection was closed first (before the password check)
        owner.expect_closed()
    finally:
        owner.close()
    # ... but the session itself is intact: resume it with the right password
    with conn(srv) as again:
        resp = again.handshake(30000, owner.session_id, owner.passwd, owner.last_zxid)
        assert (resp.session_id, resp.passwd) == (owner.session_id, owner.passwd)
        assert resp.timeout == 30000
        st = again.exists(eph)
        assert st.err == 0 and st.body["stat"].ephemeralOwner == owner.session_id
        again.close_session()


@pytest.mark.parametrize("sid,passwd", [
    (0x0BADC0DE12345678, bytes(16)),
    (0x0123456789ABCDEF, b"\x11" * 16),
])
def test_resume_unknown_session_gets_expired_answer(srv: Any, sid: int, passwd: bytes) -> None:
    with conn(srv) as c:
        c.send_frame(wire.connect_request(30000, sid, passwd))
        assert c.recv_frame() == EXPIRED_RESPONSE + b"\x00"
        c.expect_closed()


def test_resume_with_short_password_gets_expired_answer(srv: Any) -> None:
    owner = wire.open_session(srv.host, srv.port)
    try:
        with conn(srv) as c:
            # 15-byte password + readOnly byte: 44 bytes, but the readOnly byte IS present
            payload = wire.connect_request(30000, owner.session_id, owner.passwd[:15], 0, False)
            assert len(payload) == 44
            c.send_frame(payload)
            assert c.recv_frame() == EXPIRED_RESPONSE + b"\x00"
            c.expect_closed()
        owner.expect_closed()
    finally:
        owner.close()


def test_resume_moves_the_session_and_kicks_the_old_connection(srv: Any) -> None:
    a = wire.open_session(srv.host, srv.port)
    try:
        assert a.create("/moved", b"m", flags=1).err == 0
        assert a.get_data("/moved", watch=True).err == 0
        with conn(srv) as b:
            resp = b.handshake(30000, a.session_id, a.passwd, a.last_zxid)
            assert (resp.session_id, resp.passwd, resp.timeout) == \
                (a.session_id, a.passwd, 30000)
            a.expect_closed()  # the old connection is closed without any message
            # the session lives on over b, with its ephemeral
            st = b.exists("/moved")
            assert st.err == 0 and st.body["stat"].ephemeralOwner == a.session_id
            # watches belonged to the old connection: a change now notifies nobody
            rep = b.set_data("/moved", b"n")
            assert rep.err == 0 and b.events == []
            assert b.ping().err == 0 and b.events == []
            b.close_session()
    finally:
        a.close()


def test_resume_after_socket_drop_keeps_session(srv: Any) -> None:
    a = wire.open_session(srv.host, srv.port)
    assert a.create("/dropped", b"d", flags=1).err == 0
    last = a.last_zxid
    a.reset()
    with conn(srv) as b:
        resp = b.handshake(30000, a.session_id, a.passwd, last)
        assert resp.session_id == a.session_id
        assert b.exists("/dropped").err == 0
        assert b.close_session().err == 0
        b.expect_closed()
    with wire.open_session(srv.host, srv.port) as c:
        # closeSession deleted the ephemeral
        assert c.exists("/dropped").err == wire.NO_NODE
        c.close_session()


@pytest.mark.parametrize("first", [
    pytest.param(wire.header(-2, OP["ping"]), id="ping-first"),
    pytest.param(wire.header(1, OP["getData"]) + wire.path_watch_body("/", False),
                 id="getData-first"),
    pytest.param(bytes.fromhex("deadbeef" * 5) + b"\x01", id="21-junk-bytes"),
    pytest.param(b"", id="empty-frame"),
])
def test_first_frame_not_a_connect_request_is_closed(srv: Any, first: bytes) -> None:
    with conn(srv) as c:
        c.send_frame(first)
        c.expect_closed()
    # the server carries on
    with wire.open_session(srv.host, srv.port) as ok:
        assert ok.ping().err == 0
        ok.close_session()


def test_close_session_reply_then_server_closes_and_ignores_rest(srv: Any) -> None:
    with wire.open_session(srv.host, srv.port) as c:
        before = c.ping().zxid
        # closeSession and a getData in one write: only the close is answered
        c.send_raw(wire.frame(wire.header(7, OP["closeSession"])) +
                   wire.frame(wire.header(8, OP["getData"]) + wire.path_watch_body("/")))
        c.pending += [(7, OP["closeSession"]), (8, OP["getData"])]
        rep = c.read()
        assert (rep.xid, rep.err, rep.length) == (7, 0, 16)
        assert rep.zxid == before + 1  # closing is a transaction
        c.expect_closed()
