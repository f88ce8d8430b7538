"""kazoo against a real server: create/get/set/delete/exists/children/sync and Stat rules.

Reference: /work/shared/reference/client-protocol.md §6 (errors and precedence), §7 (Stat
maintenance, sequential suffixes), §12 (reserved paths), §1.2 (jute.maxbuffer).
"""

from __future__ import annotations

import re
import time

import pytest
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    ConnectionLoss,
    InvalidACLError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    ReconfigDisabledError,
    UnimplementedError,
)
from kazoo.protocol.serialization import Delete, Exists, GetData
from kazoo.protocol.states import KazooState
from kazoo.security import OPEN_ACL_UNSAFE, make_acl

from tests.integration import kazoo_helpers as kh

ZERO_STAT = dict(czxid=0, mzxid=0, ctime=0, mtime=0, version=0, aversion=0,
                 ephemeralOwner=0, dataLength=0, pzxid=0)


def stat_dict(st):
    return st._asdict()


# ---------------------------------------------------------------------------------------
# The fresh tree and reserved paths (§12)
# ---------------------------------------------------------------------------------------


def test_fresh_tree_has_exactly_the_system_nodes_with_zero_stats(zk_fresh):
    zk = zk_fresh
    root = zk.exists("/")
    assert stat_dict(root) == {**ZERO_STAT, "cversion": -1, "numChildren": 1}
    zoo = zk.exists("/zookeeper")
    assert stat_dict(zoo) == {**ZERO_STAT, "cversion": -2, "numChildren": 2}
    assert sorted(zk.get_children("/")) == ["zookeeper"]
    assert sorted(zk.get_children("/zookeeper")) == ["config", "quota"]
    assert zk.get_children("/zookeeper/quota") == []
    assert zk.get_children("/zookeeper/config") == []

    quota_data, quota = zk.get("/zookeeper/quota")
    assert not quota_data
    assert stat_dict(quota) == {**ZERO_STAT, "cversion": 0, "numChildren": 0}

    for path in ("/", "/zookeeper", "/zookeeper/quota"):
        acls, st = zk.get_acls(path)
        assert [kh.acl_tuple(a) for a in acls] == [(31, "world", "anyone")], path
        assert st.aversion == 0

    cfg_data, cfg_stat = zk.get("/zookeeper/config")
    assert not cfg_data  # empty on a standalone server
    assert cfg_stat.dataLength == 0
    acls, st = zk.get_acls("/zookeeper/config")
    assert [kh.acl_tuple(a) for a in acls] == [(1, "world", "anyone")]
    assert st.aversion == -1
    assert (st.czxid, st.mzxid, st.version, st.cversion, st.numChildren) == (0, 0, 0, 0, 0)


def test_reserved_paths_cannot_be_deleted_or_recreated(zk_fresh):
    zk = zk_fresh
    for path in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
        with pytest.raises(BadArgumentsError):
            zk.delete(path)
    for path in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
        with pytest.raises(NodeExistsError):
            zk.create(path, b"")
    # /zookeeper/config is world:anyone READ only
    with pytest.raises(NoAuthError):
        zk.set("/zookeeper/config", b"server.1=x")
    with pytest.raises(NoAuthError):
        zk.create("/zookeeper/config/child", b"")
    assert zk.get("/zookeeper/config")[1].version == 0
    # nothing was deleted
    assert sorted(zk.get_children("/zookeeper")) == ["config", "quota"]


def test_other_children_of_zookeeper_node_are_allowed(zk_fresh):
    zk = zk_fresh
    assert zk.create("/zookeeper/mine", b"m") == "/zookeeper/mine"
    assert sorted(zk.get_children("/zookeeper")) == ["config", "mine", "quota"]
    st = zk.exists("/zookeeper")
    assert st.numChildren == 3
    assert st.cversion == -1  # -2 + one create
    zk.delete("/zookeeper/mine")
    st = zk.exists("/zookeeper")
    assert (st.numChildren, st.cversion) == (2, 0)
    # setData on the root and on /zookeeper is allowed
    assert zk.set("/", b"root").version == 1
    assert zk.set("/zookeeper", b"z").version == 1
    assert zk.get("/")[0] == b"root"


# ---------------------------------------------------------------------------------------
# create (§6.2, §7.2, §7.3)
# ---------------------------------------------------------------------------------------


def test_create2_returns_full_stat_and_updates_parent(zk_fresh):
    zk = zk_fresh
    before = kh.now_ms()
    path, st = zk.create("/a", b"hello", include_data=True)
    after = kh.now_ms()
    assert path == "/a"
    assert st.czxid == st.mzxid == st.pzxid
    assert st.czxid > 0
    assert zk.last_zxid == st.czxid  # the reply header of a write carries its zxid
    assert st.ctime == st.mtime
    assert before - 60_000 <= st.ctime <= after + 60_000, (before, st.ctime)  # server clock
    assert (st.version, st.cversion, st.aversion) == (0, 0, 0)
    assert st.ephemeralOwner == 0
    assert st.dataLength == 5
    assert st.numChildren == 0

    data, st2 = zk.get("/a")
    assert data == b"hello"
    assert st2 == st
    assert zk.exists("/a") == st

    root = zk.exists("/")
    assert root.cversion == 0  # -1 + 1
    assert root.numChildren == 2
    assert root.pzxid == st.czxid
    assert (root.mzxid, root.version, root.czxid) == (0, 0, 0)


def test_plain_create_returns_path_only(zk):
    assert zk.create("/b", b"x") == "/b"
    st = zk.exists("/b")
    assert st.dataLength == 1
    assert st.czxid == st.mzxid == st.pzxid == zk.last_zxid


def test_null_and_empty_data_are_preserved(zk):
    zk.create("/nul", None)
    data, st = zk.get("/nul")
    assert data is None
    assert st.dataLength == 0
    zk.create("/empty", b"")
    data, st = zk.get("/empty")
    assert data == b""
    assert st.dataLength == 0


def test_create_existing_and_missing_parent(zk):
    zk.create("/x", b"1")
    with pytest.raises(NodeExistsError):
        zk.create("/x", b"2")
    assert zk.get("/x")[0] == b"1"
    with pytest.raises(NoNodeError):
        zk.create("/missing/child", b"")
    with pytest.raises(NoNodeError):
        zk.create("/missing/deeper/child", b"")
    assert zk.exists("/missing") is None
    # makepath creates the parents
    assert zk.create("/mp/a/b", b"v", makepath=True) == "/mp/a/b"
    assert zk.get("/mp/a/b")[0] == b"v"


def test_ephemeral_owner_is_session_id(zk, srv, clients):
    sid = zk.client_id[0]
    path, st = zk.create("/eph", b"e", ephemeral=True, include_data=True)
    assert path == "/eph"
    assert st.ephemeralOwner == sid
    assert sid != 0
    _, pst = zk.create("/pers", b"p", include_data=True)
    assert pst.ephemeralOwner == 0

    other = clients.new(srv)
    assert other.client_id[0] != sid
    assert other.exists("/eph").ephemeralOwner == sid

    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create("/eph/child", b"")
    with pytest.raises(NoChildrenForEphemeralsError):
        other.create("/eph/child", b"", ephemeral=True, sequence=True)
    # an existing path wins over the ephemeral-parent check
    with pytest.raises(NodeExistsError):
        zk.create("/eph", b"")
    assert zk.exists("/eph").numChildren == 0


SEQ_RE = re.compile(r"^s-(\d{10})$")


def test_sequential_suffix_follows_parent_creation_counter(zk):
    zk.create("/seq", b"")
    p1 = zk.create("/seq/s-", b"", sequence=True)
    assert p1 == "/seq/s-0000000000"
    zk.create("/seq/x", b"")  # non-sequential creates advance the counter too
    assert zk.create("/seq/s-", b"", sequence=True) == "/seq/s-0000000002"
    zk.delete("/seq/x")  # deletes do not move it back
    assert zk.create("/seq/s-", b"", sequence=True) == "/seq/s-0000000003"
    with pytest.raises(NodeExistsError):  # a failed create does not advance it
        zk.create("/seq/s-0000000000", b"")
    assert zk.create("/seq/s-", b"", sequence=True) == "/seq/s-0000000004"
    names = sorted(zk.get_children("/seq"))
    assert names == ["s-0000000000", "s-0000000002", "s-0000000003", "s-0000000004"]
    assert all(SEQ_RE.match(n) for n in names)
    st = zk.exists("/seq")
    # 5 creates + 1 delete; cversion == 2 * creations - numChildren
    assert (st.cversion, st.numChildren) == (6, 4)

    # each parent has its own counter; a path ending in '/' gets the bare number
    zk.create("/seq2", b"")
    assert zk.create("/seq2/", b"", sequence=True) == "/seq2/0000000000"
    assert zk.create("/seq2/n", b"", sequence=True) == "/seq2/n0000000001"


def test_sequential_at_fresh_root_starts_at_zero(zk_fresh):
    zk = zk_fresh
    # the system node /zookeeper did not go through create: the root counter is 0
    assert zk.create("/s-", b"", sequence=True) == "/s-0000000000"
    assert zk.create("/s-", b"", sequence=True) == "/s-0000000001"
    assert zk.exists("/").cversion == 1


def test_ephemeral_sequential(zk):
    sid = zk.client_id[0]
    zk.create("/q", b"")
    zk.create("/q/a", b"")
    path, st = zk.create("/q/lock-", b"", ephemeral=True, sequence=True, include_data=True)
    assert path == "/q/lock-0000000001"
    assert st.ephemeralOwner == sid
    path2 = zk.create("/q/lock-", b"", ephemeral=True, sequence=True)
    assert path2 == "/q/lock-0000000002"
    assert zk.exists(path2).ephemeralOwner == sid


def test_create_path_validation_via_raw_requests(zk):
    """kazoo validates paths client-side; raw requests reach the server's checks."""
    zk.create("/v", b"")
    bad = ["/v/.", "/v/..", "/v/x\x01", "/v/x\x1f", "/v/x\x7f", "/v/x\x9f", "/v/\U0001f600",
           "/v/\ue000", "/v/\uf8ff", "/v/\ufff0", "/v/\uffff", "/v/\ufffd", "/v/x\x00y",
           "/v/", "noslash"]
    for opcode in (1, 15):
        outcome = {p: kh.error_name(lambda p=p, o=opcode: kh.call(zk, kh.raw_create(p, opcode=o)))
                   for p in bad}
        assert outcome == {p: "BadArgumentsError" for p in bad}, opcode
    # the parent is looked up before the final path is validated
    with pytest.raises(NoNodeError):
        kh.call(zk, kh.raw_create("/v/a/./b"))
    # empty components / trailing slash with a missing parent: NoNode (parent check first)
    with pytest.raises(NoNodeError):
        kh.call(zk, kh.raw_create("/v//x"))
    with pytest.raises(NoNodeError):
        kh.call(zk, kh.raw_create("/nope/"))
    # fine: '..x', '...', non-ASCII BMP characters
    for ok in ("/v/..x", "/v/...", "/v/\u00e9t\u00e9", "/v/\u00a0", "/v/\u4e2d"):
        assert kh.call(zk, kh.raw_create(ok)) == ok
    assert sorted(zk.get_children("/v")) == sorted(
        ["..x", "...", "\u00e9t\u00e9", "\u00a0", "\u4e2d"])


def test_create_flag_validation(zk):
    for flags in (7, 8, -1, 100):
        with pytest.raises(BadArgumentsError):
            kh.call(zk, kh.raw_create(f"/f{flags}", flags=flags))
    # TTL modes need opcode 21
    for opcode in (1, 15):
        for flags in (5, 6):
            with pytest.raises(BadArgumentsError):
                kh.call(zk, kh.raw_create("/ttl", flags=flags, opcode=opcode))
    assert zk.exists("/ttl") is None
    # flag 4 (CONTAINER) with opcode 1 / 15 makes an ordinary persistent node
    assert kh.call(zk, kh.raw_create("/c1", flags=4)) == "/c1"
    path, st = kh.call(zk, kh.raw_create("/c15", flags=4, opcode=15))
    assert path == "/c15"
    assert st.ephemeralOwner == 0


def test_create_error_precedence(zk):
    bad_acl = [make_acl("world", "somebody", read=True)]
    # an invalid ACL is checked before the parent (§6.2 step 5 before 6)
    with pytest.raises(InvalidACLError):
        zk.create("/nope/x", b"", acl=bad_acl)
    # ... but after the basic path check (no '/', NUL)
    with pytest.raises(BadArgumentsError):
        kh.call(zk, kh.raw_create("noslash", acl=bad_acl))
    with pytest.raises(BadArgumentsError):
        kh.call(zk, kh.raw_create("/nope/\x00", acl=bad_acl))
    # missing parent beats the final-path validation of a trailing '/'
    with pytest.raises(NoNodeError):
        kh.call(zk, kh.raw_create("/nope/x/"))
    # flags are checked before everything else
    with pytest.raises(BadArgumentsError):
        kh.call(zk, kh.raw_create("/nope/x", flags=9))


# ---------------------------------------------------------------------------------------
# setData
# ---------------------------------------------------------------------------------------


def test_set_data_stat_rules(zk):
    _, st0 = zk.create("/d", b"v0", include_data=True)
    st1 = zk.set("/d", b"v1!")
    assert st1.czxid == st0.czxid
    assert st1.ctime == st0.ctime
    assert st1.mzxid == zk.last_zxid
    assert st1.mzxid > st0.mzxid
    assert st1.mtime >= st1.ctime
    assert st1.version == 1
    assert (st1.cversion, st1.aversion, st1.numChildren) == (0, 0, 0)
    assert st1.pzxid == st0.pzxid  # only child changes move pzxid
    assert st1.dataLength == 3
    # identical bytes still bump the version
    assert zk.set("/d", b"v1!").version == 2
    assert zk.set("/d", b"v3", version=2).version == 3
    with pytest.raises(BadVersionError):
        zk.set("/d", b"nope", version=7)
    with pytest.raises(BadVersionError):
        zk.set("/d", b"nope", version=2)
    data, st = zk.get("/d")
    assert (data, st.version) == (b"v3", 3)
    st = zk.set("/d", b"")
    assert (st.dataLength, st.version) == (0, 4)
    assert zk.get("/d")[0] == b""
    with pytest.raises(NoNodeError):
        zk.set("/d-missing", b"x")
    # a child's setData does not touch the parent
    root_before = zk.exists("/")
    zk.set("/d", b"again")
    assert zk.exists("/") == root_before


def test_set_data_validates_path_first(zk):
    zk.create("/sv", b"")
    with pytest.raises(BadArgumentsError):
        kh.call(zk, kh.RawSetData("/sv/", b"x", -1))
    with pytest.raises(BadArgumentsError):
        kh.call(zk, kh.RawSetData("/missing/./x", b"x", -1))
    with pytest.raises(NoNodeError):
        kh.call(zk, kh.RawSetData("/missing", b"x", 5))


def test_set_data_version_minus_one_matches_any(zk):
    zk.create("/vv", b"")
    for i in range(1, 4):
        assert zk.set("/vv", str(i).encode(), version=-1).version == i
    assert zk.set("/vv", b"x", version=3).version == 4


# ---------------------------------------------------------------------------------------
# delete (§6.2)
# ---------------------------------------------------------------------------------------


def test_delete_versions_and_errors(zk):
    zk.create("/d1", b"")
    zk.delete("/d1")
    assert zk.exists("/d1") is None

    zk.create("/d2", b"")
    zk.set("/d2", b"1")
    with pytest.raises(BadVersionError):
        zk.delete("/d2", version=5)
    with pytest.raises(BadVersionError):
        zk.delete("/d2", version=0)
    assert zk.exists("/d2") is not None
    zk.delete("/d2", version=1)
    assert zk.exists("/d2") is None

    with pytest.raises(NoNodeError):
        zk.delete("/d-missing")
    with pytest.raises(NoNodeError):
        zk.delete("/d-missing/child")

    zk.create("/d3/child", b"", makepath=True)
    with pytest.raises(NotEmptyError):
        zk.delete("/d3")
    # BadVersion is checked before NotEmpty
    with pytest.raises(BadVersionError):
        zk.delete("/d3", version=9)
    with pytest.raises(NotEmptyError):
        zk.delete("/d3", version=0)
    zk.delete("/d3", recursive=True)
    assert zk.exists("/d3") is None


def test_delete_updates_parent_stat(zk):
    _, p = zk.create("/p", b"", include_data=True)
    czxids = [zk.create(f"/p/c{i}", b"", include_data=True)[1].czxid for i in range(3)]
    st = zk.exists("/p")
    assert (st.cversion, st.numChildren, st.pzxid) == (3, 3, czxids[-1])
    assert (st.mzxid, st.version) == (p.mzxid, 0)
    zk.delete("/p/c1")
    delete_zxid = zk.last_zxid
    assert delete_zxid > czxids[-1]
    st = zk.exists("/p")
    assert (st.cversion, st.numChildren, st.pzxid) == (4, 2, delete_zxid)
    assert (st.mzxid, st.version, st.czxid) == (p.mzxid, 0, p.czxid)
    children, st2 = zk.get_children("/p", include_data=True)
    assert sorted(children) == ["c0", "c2"]
    assert st2 == st


def test_delete_raw_path_checks(zk):
    zk.create("/rd", b"")
    with pytest.raises(BadArgumentsError):
        kh.call(zk, Delete("noslash", -1))
    # delete does no other path validation: '/rd/' simply does not exist
    with pytest.raises(NoNodeError):
        kh.call(zk, Delete("/rd/", -1))
    with pytest.raises(BadArgumentsError):
        kh.call(zk, Delete("/zookeeper/quota", 0))


# ---------------------------------------------------------------------------------------
# reads
# ---------------------------------------------------------------------------------------


def test_exists_get_and_children_on_missing_and_leaf(zk):
    assert zk.exists("/none") is None
    with pytest.raises(NoNodeError):
        zk.get("/none")
    with pytest.raises(NoNodeError):
        zk.get_children("/none")
    with pytest.raises(NoNodeError):
        zk.get_children("/none", include_data=True)
    with pytest.raises(NoNodeError):
        zk.get_acls("/none")
    zk.create("/leaf", b"l")
    assert zk.get_children("/leaf") == []
    children, st = zk.get_children("/leaf", include_data=True)
    assert children == []
    assert st == zk.exists("/leaf")


def test_get_children2_returns_parent_stat(zk):
    zk.create("/gc", b"parent")
    for name in ("b", "a", "c"):
        zk.create(f"/gc/{name}", b"")
    children, st = zk.get_children("/gc", include_data=True)
    assert sorted(children) == ["a", "b", "c"]
    assert st == zk.exists("/gc")
    assert (st.numChildren, st.cversion, st.dataLength) == (3, 3, 6)
    assert sorted(zk.get_children("/gc")) == ["a", "b", "c"]


def test_reads_do_not_validate_paths(zk):
    zk.create("/r", b"")
    with pytest.raises(NoNodeError):
        kh.call(zk, GetData("/r/", False))
    assert kh.call(zk, Exists("/r/", False)) is None
    with pytest.raises(NoNodeError):
        kh.call(zk, GetData("/r/./x", False))


def test_sync_echoes_path(zk):
    zk.create("/sy", b"")
    assert zk.sync("/sy") == "/sy"
    assert zk.sync("/") == "/"
    # no validation, no existence check
    assert zk.sync("/does/not/exist") == "/does/not/exist"


def test_reply_zxids_track_last_write(zk):
    zxids = []
    for i in range(4):
        _, st = zk.create(f"/z{i}", b"", include_data=True)
        zxids.append(st.czxid)
    assert zxids == sorted(set(zxids))
    st = zk.set("/z0", b"x")
    assert st.mzxid > zxids[-1]
    last = st.mzxid
    mark = kh.wire(zk).mark()
    zk.get("/z1")
    zk.exists("/z2")
    zk.get_children("/")
    zk.get_acls("/z3")
    replies = [f for f in kh.wire(zk).frames[mark:] if f.xid > 0]
    assert len(replies) == 4
    # reads carry the server's last zxid, not the node's mzxid
    assert {f.zxid for f in replies} == {last}
    assert zk.last_zxid == last


def test_reconfig_is_disabled_on_standalone(zk):
    with pytest.raises(ReconfigDisabledError):
        zk.reconfig(joining="server.2=127.0.0.1:2888:3888;2181", leaving=None,
                    new_members=None)


def test_unknown_opcodes_are_unimplemented_and_close_the_connection(zk):
    sid = zk.client_id[0]
    zk.create("/unk", b"", ephemeral=True)
    for n, opcode in enumerate((10, 23, 50, 99, 108, 1000), start=2):
        with pytest.raises(UnimplementedError):
            kh.call(zk, kh.BareOp(opcode))
        # the connection is closed after the error; kazoo resumes the same session
        kh.wait_until(lambda n=n: len(kh.wire(zk).connects) >= n and zk.connected,
                      msg=f"reconnect after opcode {opcode}")
    assert zk.client_id[0] == sid
    assert zk.exists("/unk").ephemeralOwner == sid


# ---------------------------------------------------------------------------------------
# getAllChildrenNumber / getEphemerals (raw opcodes 104 / 103)
# ---------------------------------------------------------------------------------------


def test_get_all_children_number(zk_fresh):
    zk = zk_fresh
    assert kh.call(zk, kh.GetAllChildrenNumber("/")) == 3  # the three /zookeeper nodes
    zk.create("/a/b/c", b"", makepath=True)
    zk.create("/a/d", b"")
    assert kh.call(zk, kh.GetAllChildrenNumber("/")) == 7
    assert kh.call(zk, kh.GetAllChildrenNumber("/a")) == 3
    assert kh.call(zk, kh.GetAllChildrenNumber("/a/b/c")) == 0
    with pytest.raises(NoNodeError):
        kh.call(zk, kh.GetAllChildrenNumber("/nope"))
    zk.create("/secret/x", b"", makepath=True)
    zk.set_acls("/secret", [make_acl("world", "anyone", write=True)])
    with pytest.raises(NoAuthError):
        kh.call(zk, kh.GetAllChildrenNumber("/secret"))


def test_get_ephemerals_lists_only_the_callers(zk, srv, clients):
    other = clients.new(srv)
    zk.create("/e1", b"", ephemeral=True)
    zk.create("/eg", b"")
    zk.create("/eg/e2", b"", ephemeral=True)
    other.create("/e3", b"", ephemeral=True)
    assert sorted(kh.call(zk, kh.GetEphemerals("/"))) == ["/e1", "/eg/e2"]
    # a plain string prefix test
    assert sorted(kh.call(zk, kh.GetEphemerals("/e"))) == ["/e1", "/eg/e2"]
    assert sorted(kh.call(zk, kh.GetEphemerals("/eg"))) == ["/eg/e2"]
    assert kh.call(zk, kh.GetEphemerals("/zzz")) == []
    assert kh.call(other, kh.GetEphemerals("/")) == ["/e3"]


# ---------------------------------------------------------------------------------------
# jute.maxbuffer (§1.2)
# ---------------------------------------------------------------------------------------


def test_oversized_request_drops_only_that_connection(zk, srv, clients):
    other = clients.new(srv)
    zk.create("/big", b"small")
    sid = zk.client_id[0]
    # setData frame = xid 4 + type 4 + path (4 + 4) + data (4 + n) + version 4 = n + 24
    limit = 0xFFFFF - 24
    st = zk.set("/big", b"y" * limit)  # a frame of exactly 0xfffff bytes is accepted
    assert st.dataLength == limit
    assert zk.get("/big")[0] == b"y" * limit
    zk.set("/big", b"small")

    with pytest.raises(ConnectionLoss):
        zk.set("/big", b"x" * (limit + 1))  # one byte over: connection closed
    # other sessions are unaffected
    assert other.get("/big")[0] == b"small"
    assert other.create("/after", b"") == "/after"
    # the dropped client reconnects to the same, still-alive session
    kh.wait_until(lambda: zk.state == KazooState.CONNECTED, msg="reconnect")
    assert KazooState.SUSPENDED in kh.states(zk)
    assert zk.client_id[0] == sid
    assert zk.get("/big")[0] == b"small"
    with pytest.raises(ConnectionLoss):
        zk.set("/big", b"x" * (1 << 20))
    kh.wait_until(lambda: zk.state == KazooState.CONNECTED, msg="reconnect")
    assert zk.get("/big")[1].version == 2


def test_many_children_and_large_listing(zk):
    zk.create("/many", b"")
    tx = zk.transaction()
    for i in range(200):
        tx.create(f"/many/n{i:04d}", b"")
    assert len(tx.commit()) == 200
    children, st = zk.get_children("/many", include_data=True)
    assert len(children) == 200
    assert sorted(children) == [f"n{i:04d}" for i in range(200)]
    assert (st.numChildren, st.cversion) == (200, 200)
    # one multi == one zxid: all children share it
    zx = {zk.exists(f"/many/n{i:04d}").czxid for i in (0, 99, 199)}
    assert len(zx) == 1
    assert st.pzxid == zx.pop()


def test_acl_list_is_kept_on_create(zk):
    acl = [make_acl("world", "anyone", read=True, write=True)]
    zk.create("/acl", b"", acl=acl)
    acls, st = zk.get_acls("/acl")
    assert [kh.acl_tuple(a) for a in acls] == [(3, "world", "anyone")]
    assert st.aversion == 0
    zk.create("/open", b"")
    assert zk.get_acls("/open")[0] == OPEN_ACL_UNSAFE


def test_time_fields_move_forward(zk):
    _, st = zk.create("/t", b"", include_data=True)
    time.sleep(0.02)
    st2 = zk.set("/t", b"1")
    assert st2.ctime == st.ctime
    assert st2.mtime >= st.mtime
    assert st2.mtime - st.ctime < 60_000
