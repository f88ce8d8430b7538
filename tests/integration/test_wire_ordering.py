"""Ordering and special xids over raw sockets (protocol reference §3.2-§3.4, §8.3, §8.6).

zkernel follows 3.9 where 3.8 differs: a notification carries the zxid of the transaction
that fired it (ZOOKEEPER-4655); 3.8 always sends -1.  Events synthesized by setWatches
carry -1 in both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration import wire
from tests.integration.wire import OP, Reply, WireConn
from tests.support.servers import ServerProcess, server_class

TARGET_ZK = os.environ.get("ZK_TEST_TARGET") == "zookeeper"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = server_class()(tmp_path_factory.mktemp("wire-ordering"), None)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def c(srv: Any) -> Iterator[WireConn]:
    conn = wire.open_session(srv.host, srv.port)
    yield conn
    conn.close()


def other(srv: Any) -> WireConn:
    return wire.open_session(srv.host, srv.port)


def ev(rep: Reply) -> tuple[int, str]:
    assert rep.is_notification, f"expected a notification, got {rep}"
    assert rep.err == 0 and rep.body["state"] == wire.SYNC_CONNECTED, rep
    return rep.body["type"], rep.body["path"]


def assert_event_zxid(rep: Reply, txn_zxid: int) -> None:
    if TARGET_ZK:
        assert rep.zxid == -1, f"3.8 notifications carry zxid -1, got {rep.zxid:#x}"
    else:
        assert rep.zxid == txn_zxid, f"notification zxid {rep.zxid:#x}, expected the " \
                                     f"firing transaction's {txn_zxid:#x}"


def read_frames(conn: WireConn, n: int) -> list[Reply]:
    return [conn.read() for _ in range(n)]


def test_pipelined_requests_are_answered_in_order(c: WireConn) -> None:
    base = f"/pipe-{c.session_id:x}"
    ops: list[tuple[int, int, bytes]] = [
        (10, OP["create"], wire.create_body(base, b"0")),
        (11, OP["getData"], wire.path_watch_body(base)),
        (wire.XID_PING, OP["ping"], b""),
        (12, OP["setData"], wire.set_data_body(base, b"1")),
        (13, OP["exists"], wire.path_watch_body(base + "/missing")),
        (14, OP["create"], wire.create_body(base)),  # NodeExists
        (15, OP["sync"], wire.path_body(base)),
        (7, OP["getChildren2"], wire.path_watch_body(base)),
        (7, OP["getACL"], wire.path_body(base)),  # duplicate xid: echoed, answered in order
        (-100, OP["create"], wire.create_body(base + "/c", flags=2)),
        (0x7FFFFFFF, OP["getAllChildrenNumber"], wire.path_body(base)),
        (16, OP["delete"], wire.path_version_body(base, 5)),  # BadVersion
        (17, OP["getData"], wire.path_watch_body(base)),
    ]
    c.send_raw(b"".join(wire.frame(wire.header(x, op) + body) for x, op, body in ops))
    c.pending += [(x, op) for x, op, _ in ops]
    reps = read_frames(c, len(ops))
    assert [r.xid for r in reps] == [x for x, _, _ in ops]
    assert [r.err for r in reps] == [0, 0, 0, 0, wire.NO_NODE, wire.NODE_EXISTS, 0, 0, 0, 0,
                                     0, wire.BAD_VERSION, 0]
    create_z = reps[0].zxid
    # reads carry the last zxid, writes (also failed ones) their own
    assert [r.zxid - create_z for r in reps] == [0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 4, 4]
    assert reps[1].body["data"] == b"0" and reps[12].body["data"] == b"1"
    assert reps[7].body["children"] == [] and reps[9].body["path"] == base + "/c0000000000"
    assert reps[10].body["int"] == 1
    assert reps[12].body["stat"].version == 1
    c.close_session()


def test_connect_and_requests_in_one_write(srv: Any) -> None:
    with WireConn(srv.host, srv.port) as c:
        c.send_raw(wire.frame(wire.connect_request(30000)) +
                   wire.frame(wire.header(wire.XID_AUTH, OP["auth"]) +
                              wire.auth_body("digest", b"pipe:pw")) +
                   wire.frame(wire.header(1, OP["whoAmI"])) +
                   wire.frame(wire.header(wire.XID_PING, OP["ping"])) +
                   wire.frame(wire.header(2, OP["getData"]) + wire.path_watch_body("/")))
        resp = wire.decode_connect_response(c.recv_frame())
        assert resp.timeout == 30000 and resp.session_id != 0
        c.pending += [(wire.XID_AUTH, OP["auth"]), (1, OP["whoAmI"]),
                      (wire.XID_PING, OP["ping"]), (2, OP["getData"])]
        auth, who, pong, gd = read_frames(c, 4)
        assert (auth.xid, auth.zxid, auth.err, auth.length) == (wire.XID_AUTH, 0, 0, 16)
        assert sorted(who.body["clientInfo"]) == [("digest", "pipe"), ("ip", "127.0.0.1")]
        assert (pong.xid, pong.err) == (wire.XID_PING, 0) and pong.zxid == who.zxid
        assert gd.xid == 2 and gd.err == 0


def test_ping_reply_carries_last_zxid(c: WireConn) -> None:
    z0 = c.ping().zxid
    rep = c.create(f"/pingz-{c.session_id:x}")
    assert rep.zxid == z0 + 1
    pong = c.ping()
    assert (pong.xid, pong.zxid, pong.err, pong.length) == (wire.XID_PING, z0 + 1, 0, 16)
    # a failed write moves it too; a read does not
    assert c.create(f"/pingz-{c.session_id:x}").err == wire.NODE_EXISTS
    assert c.ping().zxid == z0 + 2
    assert c.get_data("/nope").err == wire.NO_NODE
    assert c.ping().zxid == z0 + 2
    # the server answers pings with xid -2 whatever xid... the client always sends -2
    c.close_session()


def test_auth_reply_xid_minus_4_zxid_0_and_identities_accumulate(c: WireConn) -> None:
    c.create(f"/authz-{c.session_id:x}")  # make the last zxid non-zero
    a = c.add_auth("digest", b"alice:secret")
    assert (a.xid, a.zxid, a.err, a.length) == (wire.XID_AUTH, 0, 0, 16)
    b = c.add_auth("digest", b"bob:pw")
    assert (b.xid, b.zxid, b.err) == (wire.XID_AUTH, 0, 0)
    who = c.call(OP["whoAmI"])
    assert sorted(who.body["clientInfo"]) == [("digest", "alice"), ("digest", "bob"),
                                              ("ip", "127.0.0.1")]
    c.close_session()


def test_unknown_auth_scheme_fails_and_closes(c: WireConn) -> None:
    rep = c.add_auth("nosuchscheme", b"whatever")
    assert (rep.xid, rep.zxid, rep.err, rep.length) == (wire.XID_AUTH, 0, wire.AUTH_FAILED, 16)
    c.expect_closed()


def test_own_write_notification_precedes_its_reply(c: WireConn) -> None:
    p = f"/own-{c.session_id:x}"
    assert c.exists(p, watch=True).err == wire.NO_NODE
    c.send(OP["create"], wire.create_body(p, b"x"))
    e, r = read_frames(c, 2)
    assert ev(e) == (wire.NODE_CREATED, p) and r.err == 0
    assert_event_zxid(e, r.zxid)
    assert c.get_data(p, watch=True).err == 0
    assert c.get_children(p, watch=True).err == 0
    c.send(OP["setData"], wire.set_data_body(p, b"y"))
    e, r = read_frames(c, 2)
    assert ev(e) == (wire.NODE_DATA_CHANGED, p) and r.xid == c.xid
    assert_event_zxid(e, r.zxid)
    c.send(OP["create"], wire.create_body(p + "/kid"))
    e, r = read_frames(c, 2)
    assert ev(e) == (wire.NODE_CHILDREN_CHANGED, p) and r.body["path"] == p + "/kid"
    assert_event_zxid(e, r.zxid)
    c.close_session()


def test_delete_fires_node_deleted_before_parent_children_changed(c: WireConn) -> None:
    p = f"/deld-{c.session_id:x}"
    assert c.create(p).err == 0 and c.create(p + "/x").err == 0
    assert c.get_data(p + "/x", watch=True).err == 0
    assert c.get_children(p + "/x", watch=True).err == 0
    assert c.get_children(p, watch=True).err == 0
    c.send(OP["delete"], wire.path_version_body(p + "/x"))
    frames = read_frames(c, 3)
    # one NodeDeleted for x (data and child watch of the same connection), then the parent
    assert [ev(f) for f in frames[:2]] == [(wire.NODE_DELETED, p + "/x"),
                                           (wire.NODE_CHILDREN_CHANGED, p)]
    assert frames[2].xid == c.xid and frames[2].err == 0
    for f in frames[:2]:
        assert_event_zxid(f, frames[2].zxid)
    c.assert_silent_open(0.2)
    c.close_session()


def test_other_session_sees_notification_before_replies_that_reveal_the_change(
        srv: Any, c: WireConn) -> None:
    p = f"/cross-{c.session_id:x}"
    assert c.create(p, b"v0").err == 0
    assert c.get_data(p, watch=True).err == 0
    assert c.exists(p + "/new", watch=True).err == wire.NO_NODE
    with other(srv) as w:
        set_rep = w.set_data(p, b"v1")
        assert set_rep.err == 0
        # c now reads: the notification must come before the read's reply
        c.send(OP["getData"], wire.path_watch_body(p))
        e, r = read_frames(c, 2)
        assert ev(e) == (wire.NODE_DATA_CHANGED, p)
        assert_event_zxid(e, set_rep.zxid)
        assert r.err == 0 and r.body["data"] == b"v1" and r.zxid >= set_rep.zxid
        cr = w.create(p + "/new")
        assert cr.err == 0
        c.send(OP["ping"], b"", xid=wire.XID_PING)
        e, r = read_frames(c, 2)
        assert ev(e) == (wire.NODE_CREATED, p + "/new")
        assert_event_zxid(e, cr.zxid)
        assert r.xid == wire.XID_PING and r.zxid == cr.zxid
        w.close_session()
    c.close_session()


def test_closing_session_fires_ephemeral_deletes_before_its_reply(
        srv: Any, c: WireConn) -> None:
    p = f"/ephw-{c.session_id:x}"
    assert c.create(p).err == 0
    with other(srv) as owner:
        assert owner.create(p + "/e", flags=1).err == 0
        assert c.exists(p + "/e", watch=True).err == 0
        assert c.get_children(p, watch=True).err == 0
        close = owner.close_session()
        owner.expect_closed()
    e1, e2 = read_frames(c, 2)
    assert [ev(e1), ev(e2)] == [(wire.NODE_DELETED, p + "/e"), (wire.NODE_CHILDREN_CHANGED, p)]
    assert_event_zxid(e1, close.zxid)
    assert_event_zxid(e2, close.zxid)
    c.close_session()


def test_multi_fires_events_in_sub_op_order_before_reply(c: WireConn) -> None:
    p = f"/mev-{c.session_id:x}"
    assert c.create(p, b"").err == 0
    assert c.exists(p + "/a", watch=True).err == wire.NO_NODE
    assert c.get_children(p, watch=True).err == 0
    assert c.get_data(p, watch=True).err == 0
    c.send(OP["multi"], wire.multi_body([
        (OP["create"], wire.create_body(p + "/a")),
        (OP["create"], wire.create_body(p + "/b")),
        (OP["setData"], wire.set_data_body(p, b"m")),
    ]))
    frames = read_frames(c, 4)
    assert [ev(f) for f in frames[:3]] == [(wire.NODE_CREATED, p + "/a"),
                                           (wire.NODE_CHILDREN_CHANGED, p),
                                           (wire.NODE_DATA_CHANGED, p)]
    reply = frames[3]
    assert reply.err == 0 and [r.type for r in reply.body["results"]] == [1, 1, 5]
    for f in frames[:3]:
        assert_event_zxid(f, reply.zxid)
    # a failed multi fires nothing
    assert c.exists(p + "/c", watch=True).err == wire.NO_NODE
    rep = c.multi([(OP["create"], wire.create_body(p + "/c")),
                   (OP["check"], wire.path_version_body(p, 99))])
    assert [r.err for r in rep.body["results"]] == [0, wire.BAD_VERSION]
    c.assert_silent_open(0.2)
    c.close_session()


def _setwatches_fixture(c: WireConn, base: str) -> tuple[int, dict[str, str]]:
    """Nodes before/after a relativeZxid; returns (relativeZxid, paths)."""
    p = {k: f"{base}/{k}" for k in ("w", "same", "cw", "csame", "gone", "gone3", "mk",
                                     "late")}
    for k in ("w", "same", "cw", "csame", "gone", "gone3"):
        assert c.create(p[k], b"0").err == 0
    rel = c.ping().zxid
    assert c.set_data(p["w"], b"1").err == 0                # mzxid > rel
    assert c.create(p["cw"] + "/kid").err == 0              # pzxid > rel
    assert c.delete(p["gone"]).err == 0
    assert c.delete(p["gone3"]).err == 0
    assert c.create(p["late"]).err == 0                     # created after rel
    return rel, p


@pytest.mark.parametrize("xid", [wire.XID_SET_WATCHES, 42], ids=["xid-8", "ordinary-xid"])
def test_set_watches_synthesizes_missed_events_before_reply(srv: Any, c: WireConn,
                                                            xid: int) -> None:
    base = f"/sw-{c.session_id:x}-{xid & 0xff}"
    assert c.create(base).err == 0
    rel, p = _setwatches_fixture(c, base)
    with other(srv) as w:
        last = c.ping().zxid
        body = wire.set_watches_body(
            rel,
            data=[p["w"], p["same"], p["gone"]],
            exist=[p["late"], p["mk"], p["same"]],
            child=[p["cw"], p["csame"], p["gone3"]])
        w.send(OP["setWatches"], body, xid=xid)
        frames = read_frames(w, 6)
        # lists are processed in order: data, exist, child; each entry in list order
        assert [ev(f) for f in frames] == [
            (wire.NODE_DATA_CHANGED, p["w"]),        # data: modified after rel
            (wire.NODE_DELETED, p["gone"]),          # data: missing
            (wire.NODE_CREATED, p["late"]),          # exist: present
            (wire.NODE_CREATED, p["same"]),          # exist: present, zxids not compared
            (wire.NODE_CHILDREN_CHANGED, p["cw"]),   # child: pzxid after rel
            (wire.NODE_DELETED, p["gone3"]),         # child: missing
        ]
        for f in frames:
            assert f.zxid == -1, "events synthesized by setWatches carry zxid -1"
        reply = w.read()
        assert (reply.xid, reply.zxid, reply.err, reply.length) == (xid, last, 0, 16)
        w.assert_silent_open(0.2)
        # registered (not fired) watches: data /same, exist /mk, child /csame
        cr = c.create(p["mk"])
        e = w.read()
        assert ev(e) == (wire.NODE_CREATED, p["mk"])
        assert_event_zxid(e, cr.zxid)
        sd = c.set_data(p["same"], b"x")
        e = w.read()
        assert ev(e) == (wire.NODE_DATA_CHANGED, p["same"])
        assert_event_zxid(e, sd.zxid)
        kid = c.create(p["csame"] + "/k")
        e = w.read()
        assert ev(e) == (wire.NODE_CHILDREN_CHANGED, p["csame"])
        assert_event_zxid(e, kid.zxid)
        # fired ones were not registered: /w changes again, nothing arrives
        assert c.set_data(p["w"], b"2").err == 0
        assert c.create(p["cw"] + "/kid2").err == 0
        w.assert_silent_open(0.2)
        w.close_session()
    c.close_session()


def test_set_watches2_registers_persistent_watches_without_events(srv: Any,
                                                                  c: WireConn) -> None:
    base = f"/sw2-{c.session_id:x}"
    assert c.create(base).err == 0
    assert c.create(base + "/pers", b"0").err == 0
    assert c.create(base + "/rec").err == 0
    rel = c.ping().zxid
    assert c.set_data(base + "/pers", b"1").err == 0  # changed after rel: still no event
    with other(srv) as w:
        last = c.ping().zxid
        w.send(OP["setWatches2"], wire.set_watches_body(
            rel, data=[], exist=[], child=[], persistent=[base + "/pers"],
            recursive=[base + "/rec"]), xid=wire.XID_SET_WATCHES)
        reply = w.read()
        assert (reply.xid, reply.zxid, reply.err, reply.length) == \
            (wire.XID_SET_WATCHES, last, 0, 16)
        # persistent: fires for the node itself, every time, and for its children list
        for val in (b"a", b"b"):
            sd = c.set_data(base + "/pers", val)
            e = w.read()
            assert ev(e) == (wire.NODE_DATA_CHANGED, base + "/pers")
            assert_event_zxid(e, sd.zxid)
        assert c.create(base + "/pers/kid").err == 0
        assert ev(w.read()) == (wire.NODE_CHILDREN_CHANGED, base + "/pers")
        # recursive: descendants, never NodeChildrenChanged
        assert c.create(base + "/rec/a").err == 0
        assert ev(w.read()) == (wire.NODE_CREATED, base + "/rec/a")
        assert c.create(base + "/rec/a/b").err == 0
        assert ev(w.read()) == (wire.NODE_CREATED, base + "/rec/a/b")
        assert c.delete(base + "/rec/a/b").err == 0
        assert ev(w.read()) == (wire.NODE_DELETED, base + "/rec/a/b")
        # a sibling whose name merely starts with the watched path is not a descendant
        assert c.create(base + "/recx").err == 0
        w.assert_silent_open(0.2)
        w.close_session()
    c.close_session()
