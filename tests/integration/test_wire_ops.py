"""Less common opcodes over raw sockets (protocol reference §4, §5.3-§5.7, §7.5, §8.4, §8.5)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration import wire
from tests.integration.wire import OP, Reply, WireConn
from tests.support.servers import ServerProcess, server_class

TARGET_ZK = os.environ.get("ZK_TEST_TARGET") == "zookeeper"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = server_class()(tmp_path_factory.mktemp("wire-ops"), {"extendedTypesEnabled": "true"})
    s.start()
    yield s
    s.stop()


@pytest.fixture
def c(srv: Any) -> Iterator[WireConn]:
    conn = wire.open_session(srv.host, srv.port)
    yield conn
    conn.close()


def uniq(c: WireConn, name: str) -> str:
    return f"/{name}-{c.session_id:x}"


def test_fresh_server_counts_and_root(server: Any) -> None:
    with wire.open_session(server.host, server.port) as c:
        n = c.call(OP["getAllChildrenNumber"], wire.path_body("/"))
        assert (n.err, n.length, n.body["int"]) == (0, 20, 3)  # /zookeeper, quota, config
        root = c.get_data("/")
        assert root.err == 0 and root.body["data"] == b""
        st = root.body["stat"]
        assert (st.czxid, st.mzxid, st.ctime, st.version, st.cversion, st.numChildren,
                st.pzxid) == (0, 0, 0, 0, -1, 1, 0)
        zk = c.get_data("/zookeeper").body["stat"]
        assert (zk.cversion, zk.numChildren) == (-2, 2)
        cfg = c.get_acl("/zookeeper/config")
        assert cfg.body["acl"] == [(wire.PERM_READ, "world", "anyone")]
        assert cfg.body["stat"].aversion == -1
        assert sorted(c.get_children("/zookeeper").body["children"]) == ["config", "quota"]
        # the root is also known under ""
        alias = c.get_data("")
        assert alias.err == 0 and alias.body["stat"] == st
        c.close_session()


def test_get_all_children_number(srv: Any, c: WireConn) -> None:
    p = uniq(c, "gacn")
    for path in (p, p + "/a", p + "/a/b", p + "/a/b/c", p + "/d"):
        assert c.create(path).err == 0
    z = c.ping().zxid
    rep = c.call(OP["getAllChildrenNumber"], wire.path_body(p))
    assert (rep.err, rep.zxid, rep.length, rep.body["int"]) == (0, z, 20, 4)
    assert c.call(OP["getAllChildrenNumber"], wire.path_body(p + "/d")).body["int"] == 0
    assert c.call(OP["getAllChildrenNumber"], wire.path_body(p + "/x")).err == wire.NO_NODE
    assert c.create(p + "/secret", acl=[(wire.PERM_ALL, "digest", "u:x")]).err == 0
    rep = c.call(OP["getAllChildrenNumber"], wire.path_body(p + "/secret"))
    assert rep.err == wire.NO_AUTH
    c.close_session()


def test_get_ephemerals_prefix_and_session_scope(srv: Any, c: WireConn) -> None:
    p = uniq(c, "geph")
    assert c.create(p).err == 0
    assert c.create(p + "/a").err == 0
    mine = [p + "/e1", p + "/a/e2", p + "/ab"]
    for e in mine:
        assert c.create(e, flags=1).err == 0
    seq = c.create(p + "/s-", flags=3).body["path"]
    mine.append(seq)
    with wire.open_session(srv.host, srv.port) as o:
        assert o.create(p + "/theirs", flags=1).err == 0

        def eph(prefix: str | None, conn: WireConn = c) -> list[str]:
            rep = conn.call(OP["getEphemerals"], wire.Writer().ustring(prefix).bytes())
            assert rep.err == 0
            return sorted(rep.body["children"])

        assert eph("/") == sorted(mine)
        assert eph(p) == sorted(mine)
        # a plain string prefix: "/a" also matches "/ab"
        assert eph(p + "/a") == sorted([p + "/a/e2", p + "/ab"])
        assert eph(p + "/a/") == [p + "/a/e2"]
        assert eph(p + "/nothing") == []
        assert eph("/nothing") == []
        assert eph(None) == sorted(mine)  # null prefix: everything
        assert eph(p, o) == [p + "/theirs"]
        o.close_session()
    c.close_session()


def test_who_am_i(c: WireConn) -> None:
    rep = c.call(OP["whoAmI"])
    assert rep.err == 0 and rep.body["clientInfo"] == [("ip", "127.0.0.1")]
    assert rep.length == 16 + 4 + (4 + 2) + (4 + 9)
    assert c.add_auth("digest", b"alice:secret").err == 0
    assert c.add_auth("digest", b"nocolon").err == 0
    assert c.add_auth("digest", b"alice:secret").err == 0  # same identity twice
    who = c.call(OP["whoAmI"]).body["clientInfo"]
    assert sorted(who) == [("digest", "alice"), ("digest", "nocolon"), ("ip", "127.0.0.1")]
    c.close_session()


def test_auth_acl_expansion_and_redacted_get_acl(srv: Any, c: WireConn) -> None:
    p = uniq(c, "authacl")
    assert c.create(p, acl=[(31, "auth", "")]).err == wire.INVALID_ACL
    assert c.add_auth("digest", b"alice:secret").err == 0
    assert c.create(p, b"x", acl=[(31, "auth", ""), (1, "world", "anyone")]).err == 0
    acl = c.get_acl(p).body["acl"]
    assert sorted(acl) == [(1, "world", "anyone"),
                           (31, "digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=")]
    with wire.open_session(srv.host, srv.port) as anon:
        # READ without ADMIN: digest ids come back redacted
        acl = anon.get_acl(p).body["acl"]
        assert sorted(acl) == [(1, "world", "anyone"), (31, "digest", "alice:x")]
        assert anon.set_data(p, b"y").err == wire.NO_AUTH
        anon.close_session()
    c.close_session()


def test_create_container_and_ttl_replies(c: WireConn) -> None:
    p = uniq(c, "kinds")
    assert c.create(p).err == 0
    rep = c.create(p + "/cont", b"cd", flags=4, op=OP["createContainer"])
    assert rep.err == 0 and rep.body["path"] == p + "/cont"
    st = rep.body["stat"]
    assert (st.czxid, st.mzxid, st.pzxid, st.ephemeralOwner, st.dataLength, st.version) == \
        (rep.zxid, rep.zxid, rep.zxid, 0, 2, 0)
    assert rep.length == 16 + 4 + len(p + "/cont") + 68
    rep = c.create_ttl(p + "/ttl", 60000, b"t")
    assert rep.err == 0 and rep.body["stat"].ephemeralOwner == 0
    assert rep.body["stat"].czxid == rep.zxid
    rep = c.create_ttl(p + "/ttls-", 60000, flags=6)
    assert rep.err == 0 and rep.body["path"] == p + "/ttls-0000000002"
    # a TTL node and a container may have children (not ephemeral)
    assert c.create(p + "/ttl/kid").err == 0
    assert c.create(p + "/cont/kid").err == 0
    c.close_session()


def test_container_and_ttl_nodes_are_reaped(server_factory: Any) -> None:
    srv = server_factory(cfg={"extendedTypesEnabled": "true",
                              "znode.container.checkIntervalMs": 500})
    with wire.open_session(srv.host, srv.port) as c:
        assert c.create("/cont", flags=4, op=OP["createContainer"]).err == 0
        assert c.create("/never-used", flags=4, op=OP["createContainer"]).err == 0
        assert c.create("/cont/k").err == 0
        assert c.create_ttl("/ttl", 300).err == 0
        assert c.create_ttl("/ttl-kept", 300).err == 0
        assert c.create("/ttl-kept/kid").err == 0
        assert c.get_data("/cont", watch=True).err == 0
        assert c.exists("/ttl", watch=True).err == 0
        assert c.get_children("/", watch=True).err == 0
        assert c.delete("/cont/k").err == 0
        seen: list[tuple[int, str]] = []
        deadline = time.monotonic() + 8
        while len(seen) < 3 and time.monotonic() < deadline:
            e = c.read(timeout=deadline - time.monotonic())
            assert e.is_notification
            if not TARGET_ZK:
                assert e.zxid > 0  # the reaper's delete transaction
            seen.append((e.body["type"], e.body["path"]))
        # the root's one-shot child watch fires once, for whichever reap came first
        assert sorted(seen) == sorted([(wire.NODE_DELETED, "/cont"),
                                       (wire.NODE_DELETED, "/ttl"),
                                       (wire.NODE_CHILDREN_CHANGED, "/")])
        time.sleep(1.0)
        assert c.exists("/cont").err == wire.NO_NODE
        assert c.exists("/ttl").err == wire.NO_NODE
        assert c.exists("/never-used").err == 0   # never had a child
        assert c.exists("/ttl-kept").err == 0     # has a child
        c.close_session()


def test_reconfig_is_disabled(c: WireConn) -> None:
    z = c.ping().zxid
    rep = c.call(OP["reconfig"], wire.reconfig_body("server.2=127.0.0.1:2888:3888", None,
                                                    None, -1))
    assert (rep.err, rep.length) == (wire.RECONFIG_DISABLED, 16)
    assert rep.zxid == z + 1  # a write: the failure is logged as a transaction
    assert c.ping().err == 0
    c.close_session()


def test_add_watch_reply_body_and_persistence(srv: Any, c: WireConn) -> None:
    p = uniq(c, "aw")
    z = c.ping().zxid
    rep = c.call(OP["addWatch"], wire.path_int_body(p, 0))  # the node need not exist
    assert (rep.err, rep.zxid, rep.length, rep.raw[16:]) == (0, z, 20, b"\x00\x00\x00\x00")
    rep = c.call(OP["addWatch"], wire.path_int_body(p + "/r", 1))
    assert (rep.err, rep.length, rep.body) == (0, 20, {"int": 0})
    with wire.open_session(srv.host, srv.port) as o:
        for step in range(2):  # persistent: fires every time
            cr = o.create(p, b"x") if step == 0 else o.set_data(p, b"y")
            e = c.read()
            assert e.is_notification and e.body["type"] == (1 if step == 0 else 3)
            assert e.body["path"] == p
            if not TARGET_ZK:
                assert e.zxid == cr.zxid
        assert o.create(p + "/r").err == 0
        # /r has a recursive watch (NodeCreated) and is a child of /p (NodeChildrenChanged)
        events = [(e.body["type"], e.body["path"]) for e in (c.read(), c.read())]
        assert events == [(wire.NODE_CREATED, p + "/r"), (wire.NODE_CHILDREN_CHANGED, p)]
        assert o.create(p + "/r/deep").err == 0
        e = c.read()
        assert (e.body["type"], e.body["path"]) == (wire.NODE_CREATED, p + "/r/deep")
        c.assert_silent_open(0.2)
        o.close_session()
    c.close_session()


def test_check_and_remove_watches(c: WireConn) -> None:
    p = uniq(c, "cw")
    assert c.create(p, b"x").err == 0

    def check(t: int) -> int:
        return c.call(OP["checkWatches"], wire.path_int_body(p, t)).err

    def remove(t: int) -> int:
        rep = c.call(OP["removeWatches"], wire.path_int_body(p, t))
        assert rep.length == 16
        return rep.err

    assert [check(t) for t in (1, 2, 3)] == [wire.NO_WATCHER] * 3
    assert [remove(t) for t in (1, 2, 3)] == [wire.NO_WATCHER] * 3
    assert c.get_data(p, watch=True).err == 0
    assert [check(t) for t in (1, 2, 3)] == [wire.NO_WATCHER, 0, 0]
    assert c.get_children(p, watch=True).err == 0
    assert [check(t) for t in (1, 2, 3)] == [0, 0, 0]
    assert remove(2) == 0 and check(2) == wire.NO_WATCHER and check(1) == 0
    assert remove(2) == wire.NO_WATCHER
    assert remove(3) == 0 and check(3) == wire.NO_WATCHER
    # removed watches do not fire (and the server sends no "removed" event)
    assert c.set_data(p, b"y").err == 0
    assert c.create(p + "/kid").err == 0
    c.assert_silent_open(0.2)
    # an exists watch on a missing node is a data watch too
    assert c.exists(p + "/none", watch=True).err == wire.NO_NODE
    assert c.call(OP["checkWatches"], wire.path_int_body(p + "/none", 2)).err == 0
    assert c.call(OP["removeWatches"], wire.path_int_body(p + "/none", 3)).err == 0
    c.close_session()


def test_check_and_remove_persistent_watch_types(c: WireConn) -> None:
    """WatcherType 4/5 exist since 3.9; 3.8 answers MarshallingError for them."""
    p = uniq(c, "pw")
    assert c.call(OP["addWatch"], wire.path_int_body(p, 0)).err == 0
    assert c.call(OP["addWatch"], wire.path_int_body(p + "/r", 1)).err == 0

    def check(path: str, t: int) -> int:
        return c.call(OP["checkWatches"], wire.path_int_body(path, t)).err

    if TARGET_ZK:
        assert [check(p, t) for t in (4, 5)] == [wire.MARSHALLING_ERROR] * 2
        assert c.call(OP["removeWatches"], wire.path_int_body(p, 4)).err == \
            wire.MARSHALLING_ERROR
        assert check(p, 3) == 0
    else:
        # §8.4: Data/Children only match STANDARD entries; 4/5 match the persistent modes
        assert [check(p, t) for t in (1, 2, 3, 4, 5)] == \
            [wire.NO_WATCHER, wire.NO_WATCHER, 0, 0, wire.NO_WATCHER]
        assert [check(p + "/r", t) for t in (1, 2, 3, 4, 5)] == \
            [wire.NO_WATCHER, wire.NO_WATCHER, 0, wire.NO_WATCHER, 0]
        assert c.call(OP["removeWatches"], wire.path_int_body(p, 5)).err == wire.NO_WATCHER
        assert c.call(OP["removeWatches"], wire.path_int_body(p, 4)).err == 0
        assert check(p, 3) == wire.NO_WATCHER
        assert c.call(OP["removeWatches"], wire.path_int_body(p + "/r", 5)).err == 0
        assert check(p + "/r", 3) == wire.NO_WATCHER
        assert c.create(p).err == 0 and c.create(p + "/r").err == 0
        c.assert_silent_open(0.2)
    c.close_session()


def test_empty_multi_and_multi_read(c: WireConn) -> None:
    z = c.ping().zxid
    rep = c.multi([])
    assert (rep.err, rep.zxid, rep.length, rep.body["results"]) == (0, z + 1, 25, [])
    assert rep.raw[16:] == b"\xff\xff\xff\xff\x01\xff\xff\xff\xff"
    rep = c.multi([], op=OP["multiRead"])
    assert (rep.err, rep.zxid, rep.length) == (0, z + 1, 25)  # a read: no zxid
    c.close_session()


def _results(rep: Reply) -> list[tuple[int, int]]:
    return [(r.type, r.err) for r in rep.body["results"]]


@pytest.mark.parametrize("fail_at", [0, 1, 3])
def test_multi_failure_layout(srv: Any, c: WireConn, fail_at: int) -> None:
    p = uniq(c, f"mf{fail_at}")
    assert c.create(p, b"0").err == 0
    assert c.get_data(p, watch=True).err == 0
    assert c.get_children(p, watch=True).err == 0
    ops = [
        (OP["create"], wire.create_body(p + "/a")),
        (OP["setData"], wire.set_data_body(p, b"1")),
        (OP["check"], wire.path_version_body(p, 1)),
        (OP["delete"], wire.path_version_body(p + "/a")),
    ]
    bad = {0: (OP["create"], wire.create_body(p + "/missing/a")),
           1: (OP["setData"], wire.set_data_body(p, b"1", 42)),
           3: (OP["delete"], wire.path_version_body(p + "/a", 9))}[fail_at]
    want = {0: wire.NO_NODE, 1: wire.BAD_VERSION, 3: wire.BAD_VERSION}[fail_at]
    ops[fail_at] = bad
    z = c.ping().zxid
    rep = c.multi(ops)
    assert rep.err == 0 and rep.zxid == z + 1  # header err 0, a zxid is consumed
    exp = [(-1, 0)] * fail_at + [(-1, want)] + [(-1, wire.RUNTIME_INCONSISTENCY)] * (3 - fail_at)
    assert _results(rep) == exp
    assert [r.body["err"] for r in rep.body["results"]] == [e for _, e in exp]
    assert rep.length == 16 + 4 * (9 + 4) + 9
    # nothing applied, nothing fired
    assert c.exists(p + "/a").err == wire.NO_NODE
    gd = c.get_data(p)
    assert gd.body["data"] == b"0" and gd.body["stat"].version == 0
    c.assert_silent_open(0.2)
    c.close_session()


def test_multi_success_layout(c: WireConn) -> None:
    p = uniq(c, "ms")
    assert c.create(p).err == 0
    rep = c.multi([
        (OP["create"], wire.create_body(p + "/a", b"A")),
        (OP["create2"], wire.create_body(p + "/b", b"B")),
        (OP["createContainer"], wire.create_body(p + "/c", flags=4)),
        (OP["createTTL"], wire.create_ttl_body(p + "/t", ttl=60000)),
        (OP["create"], wire.create_body(p + "/a/s-", flags=2)),
        (OP["setData"], wire.set_data_body(p + "/a", b"A2")),
        (OP["check"], wire.path_version_body(p + "/a", 1)),
        (OP["delete"], wire.path_version_body(p + "/b")),
    ])
    assert rep.err == 0
    res = rep.body["results"]
    # 3.9 answers a create2 sub-op with type 15 (path + Stat); 3.8 downgrades it to 1
    c2_type = OP["create"] if TARGET_ZK else OP["create2"]
    assert [(r.type, r.err) for r in res] == [(1, 0), (c2_type, 0), (15, 0), (15, 0), (1, 0),
                                            (5, 0), (13, 0), (2, 0)]
    assert [r.body.get("path") for r in res[:5]] == [p + "/a", p + "/b", p + "/c", p + "/t",
                                                     p + "/a/s-0000000000"]
    if not TARGET_ZK:
        assert res[1].body["stat"].czxid == rep.zxid
    for r in (res[2], res[3], res[5]):
        assert r.body["stat"].mzxid == rep.zxid  # one zxid for the whole multi
    assert res[5].body["stat"].version == 1 and res[5].body["stat"].numChildren == 1
    assert res[5].body["stat"].czxid == rep.zxid
    times = {r.body["stat"].mtime for r in (res[2], res[3], res[5])}
    assert len(times) == 1  # ... and one time
    assert c.exists(p + "/b").err == wire.NO_NODE
    c.close_session()


def test_multi_read_per_slot_results(c: WireConn) -> None:
    p = uniq(c, "mr")
    assert c.create(p, b"P").err == 0 and c.create(p + "/k").err == 0
    assert c.create(p + "/secret", acl=[(wire.PERM_ALL, "digest", "u:x")]).err == 0
    z = c.ping().zxid
    rep = c.multi([
        (OP["getData"], wire.path_watch_body(p, True)),
        (OP["getChildren"], wire.path_watch_body(p, True)),
        (OP["getData"], wire.path_watch_body(p + "/missing")),
        (OP["getData"], wire.path_watch_body(p + "/secret")),
        (OP["getChildren"], wire.path_watch_body(p + "/k")),
    ], op=OP["multiRead"])
    assert (rep.err, rep.zxid) == (0, z)
    assert _results(rep) == [(4, 0), (8, 0), (-1, wire.NO_NODE), (-1, wire.NO_AUTH), (8, 0)]
    res = rep.body["results"]
    assert res[0].body["data"] == b"P" and res[0].body["stat"].numChildren == 2
    assert sorted(res[1].body["children"]) == ["k", "secret"] and res[4].body["children"] == []
    # watch flags inside multiRead are ignored
    assert c.set_data(p, b"Q").err == 0 and c.create(p + "/k2").err == 0
    c.assert_silent_open(0.2)
    c.close_session()


def test_ping_reply_xid_is_always_minus_2(c: WireConn) -> None:
    c.send(OP["ping"], b"", xid=5)
    c.pending = [(wire.XID_PING, OP["ping"])]
    rep = c.read()
    assert (rep.xid, rep.err, rep.length) == (wire.XID_PING, 0, 16)
    assert c.get_data("/").err == 0
    c.close_session()


def test_sync_echoes_path(c: WireConn) -> None:
    z = c.ping().zxid
    for path in ("/", "/zookeeper", "/does/not/exist"):
        rep = c.call(OP["sync"], wire.path_body(path))
        assert (rep.err, rep.zxid, rep.body["path"]) == (0, z, path)
        assert rep.length == 16 + 4 + len(path)
    c.close_session()


def test_null_and_empty_data_are_distinct(c: WireConn) -> None:
    p = uniq(c, "nul")
    assert c.create(p, None).err == 0
    rep = c.get_data(p)
    assert rep.body["data"] is None and rep.body["stat"].dataLength == 0
    assert rep.raw[16:20] == b"\xff\xff\xff\xff"
    assert c.set_data(p, b"").err == 0
    rep = c.get_data(p)
    assert rep.body["data"] == b"" and rep.raw[16:20] == b"\x00\x00\x00\x00"
    c.close_session()
