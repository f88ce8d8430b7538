"""DataTree.apply: the znode state machine (stat rules of §7, triggers of §8.3)."""

from __future__ import annotations

import pytest

from kernel.acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from kernel.protocol import CONTAINER_EPHEMERAL_OWNER, EventType, OpCode
from kernel.records import ACL, STAT, Stat
from kernel.sessions import SessionIdGenerator
from kernel.tree import DataTree, ttl_owner
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

SID = 0x100000000000001
SID2 = 0x100000000000002
T0 = 1_700_000_000_000
OPEN = OPEN_ACL_UNSAFE

CREATED, DELETED, CHANGED, CHILDREN = (EventType.NODE_CREATED, EventType.NODE_DELETED,
                                       EventType.NODE_DATA_CHANGED,
                                       EventType.NODE_CHILDREN_CHANGED)


class T:
    """A tree plus a zxid counter; mirrors what prep would put in each txn."""

    def __init__(self) -> None:
        self.tree = DataTree()
        self.zxid = 0

    def apply(self, body: TxnBody, op: int = OpCode.CREATE, sid: int = SID,
              time: int | None = None) -> tuple[Txn, list[tuple[int, str]]]:
        self.zxid += 1
        txn = Txn(self.zxid, sid, 1, T0 + self.zxid if time is None else time, op, body)
        trig = self.tree.apply(txn)
        return txn, [(e, p) for e, p, _ in trig]

    def create(self, path: str, data: bytes | None = b"d", owner: int = 0,
               acl: tuple[ACL, ...] = OPEN, sid: int = SID,
               op: int = OpCode.CREATE) -> tuple[Txn, list[tuple[int, str]]]:
        parent = path.rsplit("/", 1)[0] or "/"
        pc = self.tree.nodes[parent].c + 1
        return self.apply(CreateTxn(path, data, acl, owner, pc), op=op, sid=sid)

    def stat(self, path: str) -> Stat:
        return self.tree.nodes[path].stat()


@pytest.fixture
def t() -> T:
    return T()


# ------------------------------------------------------------------------ fresh tree


def test_fresh_tree_has_the_system_nodes_with_zero_stats() -> None:
    tree = DataTree()
    assert {p for p, _ in tree.walk()} == {"/", "/zookeeper", "/zookeeper/quota",
                                           "/zookeeper/config"}
    assert tree.nodes[""] is tree.nodes["/"]  # ZooKeeper's root alias
    assert tree.node_count() == 5  # ZooKeeper counts the alias too (srvr: Node count: 5)
    assert tree.last_zxid == 0
    root, zk = tree.nodes["/"].stat(), tree.nodes["/zookeeper"].stat()
    assert root == Stat(0, 0, 0, 0, 0, -1, 0, 0, 0, 1, 0)  # c = 0, one child: cversion -1
    assert zk == Stat(0, 0, 0, 0, 0, -2, 0, 0, 0, 2, 0)  # two children: cversion -2
    assert tree.nodes["/zookeeper/quota"].stat() == Stat(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    cfg = tree.nodes["/zookeeper/config"]
    assert cfg.stat() == Stat(0, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0)
    assert cfg.acl == READ_ACL_UNSAFE
    assert tree.nodes["/"].acl == OPEN_ACL_UNSAFE
    assert tree.nodes["/"].children == {"zookeeper"}


# ----------------------------------------------------------------------------- create


def test_create_stat_rules(t: T) -> None:
    txn, trig = t.create("/a", b"hello")
    z, tm = txn.zxid, txn.time
    assert t.stat("/a") == Stat(z, z, tm, tm, 0, 0, 0, 0, 5, 0, z)
    assert txn.result == ("/a", t.stat("/a"))
    assert trig == [(CREATED, "/a"), (CHILDREN, "/")]
    # Parent: cversion +1, pzxid = z, numChildren +1; mzxid/mtime/version unchanged.
    root = t.stat("/")
    assert (root.cversion, root.pzxid, root.numChildren) == (0, z, 2)
    assert (root.mzxid, root.mtime, root.version) == (0, 0, 0)
    assert t.tree.last_zxid == z


def test_create_null_data_has_zero_length(t: T) -> None:
    t.create("/n", None)
    assert t.tree.nodes["/n"].data is None
    assert t.stat("/n").dataLength == 0


def test_create_keeps_the_acl_it_was_given(t: T) -> None:
    acl = (ACL(1, "world", "anyone"), ACL(31, "digest", "u:h"))
    t.create("/a", acl=acl)
    assert t.tree.nodes["/a"].acl == acl


def test_create_advances_parent_counter_from_txn(t: T) -> None:
    t.create("/p")
    for name in ("a", "b", "c"):
        t.create(f"/p/{name}")
    assert t.tree.nodes["/p"].c == 3
    # A txn with a parent_c below the stored counter never lowers it.
    t.apply(CreateTxn("/p/d", b"", OPEN, 0, 1))
    assert t.tree.nodes["/p"].c == 3


def test_three_creates_one_delete_gives_cversion_4(t: T) -> None:
    # §7.2 [observed 3.8.0]: cversion 4, numChildren 2, pzxid = the delete's zxid.
    t.create("/p")
    for name in ("a", "b", "c"):
        t.create(f"/p/{name}")
    txn, trig = t.apply(DeleteTxn("/p/b"), op=OpCode.DELETE)
    p = t.stat("/p")
    assert (p.cversion, p.numChildren, p.pzxid) == (4, 2, txn.zxid)
    assert p.cversion == 2 * t.tree.nodes["/p"].c - p.numChildren
    assert trig == [(DELETED, "/p/b"), (CHILDREN, "/p")]


def test_stat_bytes_cache_follows_changes(t: T) -> None:
    t.create("/p")
    node = t.tree.nodes["/p"]
    assert node.stat_bytes() == STAT.pack(*node.stat())
    t.create("/p/a")
    assert node.stat_bytes() == STAT.pack(*node.stat())
    t.apply(SetDataTxn("/p", b"xyz", 1), op=OpCode.SET_DATA)
    assert node.stat_bytes() == STAT.pack(*node.stat())
    t.apply(SetACLTxn("/p", OPEN, 1), op=OpCode.SET_ACL)
    assert node.stat_bytes() == STAT.pack(*node.stat())
    t.apply(DeleteTxn("/p/a"), op=OpCode.DELETE)
    assert node.stat_bytes() == STAT.pack(*node.stat())
    assert node.stat().numChildren == 0


# ---------------------------------------------------------------------- ephemerals


def test_ephemeral_owner_and_index(t: T) -> None:
    t.create("/e1", owner=SID)
    t.create("/e2", owner=SID)
    t.create("/o", owner=SID2, sid=SID2)
    assert t.stat("/e1").ephemeralOwner == SID
    assert t.tree.ephemerals == {SID: {"/e1", "/e2"}, SID2: {"/o"}}
    t.apply(DeleteTxn("/e1"), op=OpCode.DELETE)
    assert t.tree.ephemerals[SID] == {"/e2"}
    t.apply(DeleteTxn("/e2"), op=OpCode.DELETE)
    assert SID not in t.tree.ephemerals  # no empty sets left behind


def test_ephemeral_of_a_session_from_a_high_server_id(t: T) -> None:
    sid = SessionIdGenerator(200, T0).next_id()
    assert sid < 0 and (sid >> 56) & 0xFF == 200
    t.create("/e", owner=sid, sid=sid)
    assert t.tree.ephemerals == {sid: {"/e"}}
    assert t.tree.ttls == set()
    assert t.stat("/e").ephemeralOwner == sid
    assert t.tree.reapable(T0 + 10**9) == []


def test_close_session_deletes_its_ephemerals(t: T) -> None:
    t.apply(CreateSessionTxn(10000, b"p" * 16), op=OpCode.CREATE_SESSION)
    assert t.tree.sessions[SID].timeout == 10000
    assert t.tree.sessions[SID].password == b"p" * 16
    t.create("/p")
    t.create("/p/b", owner=SID)
    t.create("/p/a", owner=SID)
    t.create("/keep", owner=SID2, sid=SID2)
    t.create("/persist")
    before = t.stat("/p")
    txn, trig = t.apply(CloseSessionTxn(), op=OpCode.CLOSE_SESSION)
    assert "/p/a" not in t.tree.nodes and "/p/b" not in t.tree.nodes
    assert "/keep" in t.tree.nodes and "/persist" in t.tree.nodes
    assert SID not in t.tree.ephemerals and SID not in t.tree.sessions
    p = t.stat("/p")
    assert (p.numChildren, p.cversion, p.pzxid) == (0, before.cversion + 2, txn.zxid)
    # Each deletion fires NodeDeleted then the parent's NodeChildrenChanged.
    assert trig == [(DELETED, "/p/a"), (CHILDREN, "/p"), (DELETED, "/p/b"), (CHILDREN, "/p")]


def test_close_session_without_ephemerals_is_harmless(t: T) -> None:
    t.apply(CreateSessionTxn(4000, b"x" * 16), op=OpCode.CREATE_SESSION)
    _, trig = t.apply(CloseSessionTxn(), op=OpCode.CLOSE_SESSION)
    assert trig == []
    assert SID not in t.tree.sessions


# ----------------------------------------------------------------- containers / TTL


def test_container_and_ttl_sets(t: T) -> None:
    t.create("/c", owner=CONTAINER_EPHEMERAL_OWNER, op=OpCode.CREATE_CONTAINER)
    t.create("/t", owner=ttl_owner(5000), op=OpCode.CREATE_TTL)
    assert t.tree.containers == {"/c"}
    assert t.tree.ttls == {"/t"}
    assert t.tree.nodes["/c"].is_container
    assert t.tree.nodes["/t"].ttl == 5000
    # Containers and TTL nodes show ephemeralOwner 0 and are not ephemeral.
    assert t.stat("/c").ephemeralOwner == 0 and t.stat("/t").ephemeralOwner == 0
    assert t.tree.ephemerals == {}
    t.apply(DeleteTxn("/c"), op=OpCode.DELETE_CONTAINER)
    t.apply(DeleteTxn("/t"), op=OpCode.DELETE_CONTAINER)
    assert t.tree.containers == set() and t.tree.ttls == set()


def test_container_reapable_only_after_it_had_a_child(t: T) -> None:
    t.create("/c", owner=CONTAINER_EPHEMERAL_OWNER, op=OpCode.CREATE_CONTAINER)
    now = T0 + 10**9
    assert t.tree.reapable(now) == []  # never used
    t.create("/c/x")
    assert t.tree.reapable(now) == []  # has a child
    t.apply(DeleteTxn("/c/x"), op=OpCode.DELETE)
    assert t.tree.reapable(now) == ["/c"]


def test_never_used_container_reaped_after_max_never_used(t: T) -> None:
    txn, _ = t.create("/c", owner=CONTAINER_EPHEMERAL_OWNER, op=OpCode.CREATE_CONTAINER)
    mtime = txn.time
    assert t.tree.reapable(mtime + 1000, max_never_used_ms=1000) == []
    assert t.tree.reapable(mtime + 1001, max_never_used_ms=1000) == ["/c"]
    assert t.tree.reapable(mtime + 10**9, max_never_used_ms=0) == []


def test_ttl_reapable_after_ttl_without_children(t: T) -> None:
    txn, _ = t.create("/t", owner=ttl_owner(1500), op=OpCode.CREATE_TTL)
    assert t.tree.reapable(txn.time + 1500) == []
    assert t.tree.reapable(txn.time + 1501) == ["/t"]
    # setData refreshes mtime and so extends the life.
    sd, _ = t.apply(SetDataTxn("/t", b"x", 1), op=OpCode.SET_DATA, time=txn.time + 1000)
    assert t.tree.reapable(txn.time + 1501) == []
    assert t.tree.reapable(sd.time + 1501) == ["/t"]
    t.create("/t/kid")
    assert t.tree.reapable(sd.time + 10**6) == []


def test_reapable_is_sorted(t: T) -> None:
    for name in ("/z", "/a", "/m"):
        t.create(name, owner=ttl_owner(1), op=OpCode.CREATE_TTL)
    assert t.tree.reapable(T0 + 10**6) == ["/a", "/m", "/z"]


# ------------------------------------------------------------------- setData/setACL


def test_set_data_stat_rules(t: T) -> None:
    c, _ = t.create("/a", b"x")
    txn, trig = t.apply(SetDataTxn("/a", b"four", 1), op=OpCode.SET_DATA)
    s = t.stat("/a")
    assert (s.czxid, s.ctime) == (c.zxid, c.time)
    assert (s.mzxid, s.mtime, s.version, s.dataLength) == (txn.zxid, txn.time, 1, 4)
    assert s.pzxid == c.zxid  # no child change
    assert txn.result == s
    assert trig == [(CHANGED, "/a")]
    # Parent untouched.
    assert t.stat("/").pzxid == c.zxid


def test_set_data_to_null(t: T) -> None:
    t.create("/a", b"abc")
    t.apply(SetDataTxn("/a", None, 1), op=OpCode.SET_DATA)
    assert t.tree.nodes["/a"].data is None and t.stat("/a").dataLength == 0


def test_set_acl_changes_aversion_not_mzxid(t: T) -> None:
    c, _ = t.create("/a")
    acl = (ACL(1, "world", "anyone"),)
    txn, trig = t.apply(SetACLTxn("/a", acl, 1), op=OpCode.SET_ACL)
    s = t.stat("/a")
    assert (s.aversion, s.mzxid, s.version) == (1, c.zxid, 0)
    assert t.tree.nodes["/a"].acl == acl
    assert txn.result == s
    assert trig == []
    assert t.tree.last_zxid == txn.zxid


# ------------------------------------------------------------------ check / error


@pytest.mark.parametrize("body", [ErrorTxn(-101), CheckTxn("/a")])
def test_error_and_check_change_nothing_but_last_zxid(t: T, body: TxnBody) -> None:
    t.create("/a")
    before = {p: n.stat() for p, n in t.tree.nodes.items()}
    txn, trig = t.apply(body, op=OpCode.SET_DATA)
    assert trig == []
    assert {p: n.stat() for p, n in t.tree.nodes.items()} == before
    assert t.tree.last_zxid == txn.zxid


# ---------------------------------------------------------------------------- multi


def test_multi_sub_ops_share_one_zxid_and_fire_in_order(t: T) -> None:
    t.create("/m")
    body = MultiTxn((
        (OpCode.CREATE, CreateTxn("/m/a", b"a", OPEN, 0, 1)),
        (OpCode.CREATE2, CreateTxn("/m/a/b", b"b", OPEN, 0, 1)),
        (OpCode.SET_DATA, SetDataTxn("/m", b"new", 1)),
        (OpCode.CHECK, CheckTxn("/m")),
        (OpCode.DELETE, DeleteTxn("/m/a/b")),
    ))
    txn, trig = t.apply(body, op=OpCode.MULTI)
    z = txn.zxid
    a = t.stat("/m/a")
    m = t.stat("/m")
    assert (a.czxid, a.mzxid, a.pzxid, a.numChildren, a.cversion) == (z, z, z, 0, 2)
    assert (m.mzxid, m.pzxid, m.version) == (z, z, 1)
    assert trig == [(CREATED, "/m/a"), (CHILDREN, "/m"), (CREATED, "/m/a/b"),
                    (CHILDREN, "/m/a"), (CHANGED, "/m"), (DELETED, "/m/a/b"),
                    (CHILDREN, "/m/a")]
    assert [op for op, _ in txn.result] == [1, 15, 5, 13, 2]
    assert t.tree.last_zxid == z


def test_failed_multi_changes_nothing(t: T) -> None:
    t.create("/m")
    before = {p: n.stat() for p, n in t.tree.nodes.items()}
    body = MultiTxn(((OpCode.ERROR, ErrorTxn(0)), (OpCode.ERROR, ErrorTxn(-103)),
                     (OpCode.ERROR, ErrorTxn(-2))))
    txn, trig = t.apply(body, op=OpCode.MULTI)
    assert trig == []
    assert {p: n.stat() for p, n in t.tree.nodes.items()} == before
    assert t.tree.last_zxid == txn.zxid


# -------------------------------------------------------------------- idempotence


def _snapshot(tree: DataTree) -> object:
    return ({p: (n.stat(), n.data, n.acl, n.c, frozenset(n.children))
             for p, n in tree.nodes.items()},
            {k: frozenset(v) for k, v in tree.ephemerals.items()},
            frozenset(tree.containers), frozenset(tree.ttls), dict(tree.sessions),
            tree.last_zxid)


def test_reapplying_a_txn_is_a_no_op(t: T) -> None:
    t.create("/p")
    txn, _ = t.create("/p/e", owner=SID)
    snap = _snapshot(t.tree)
    assert t.tree.apply(txn) == []  # same zxid: would raise NodeExists if applied
    assert _snapshot(t.tree) == snap


@pytest.mark.parametrize("body", [
    DeleteTxn("/p"), SetDataTxn("/p", b"zzz", 9), SetACLTxn("/p", READ_ACL_UNSAFE, 9),
    CreateTxn("/q", b"", OPEN, 0, 9), CloseSessionTxn(), CreateSessionTxn(1, b"x"),
])
def test_txn_older_than_last_zxid_is_skipped(t: T, body: TxnBody) -> None:
    t.apply(CreateSessionTxn(4000, b"k" * 16), op=OpCode.CREATE_SESSION, sid=SID2)
    t.create("/p")
    t.create("/p/e", owner=SID2, sid=SID2)
    snap = _snapshot(t.tree)
    for zxid in (1, t.zxid):
        assert t.tree.apply(Txn(zxid, SID2, 1, T0, OpCode.DELETE, body)) == []
        assert _snapshot(t.tree) == snap


def test_replaying_a_log_twice_gives_the_same_tree() -> None:
    log = [
        Txn(1, SID, 1, T0 + 1, OpCode.CREATE_SESSION, CreateSessionTxn(4000, b"s" * 16)),
        Txn(2, SID, 2, T0 + 2, OpCode.CREATE, CreateTxn("/a", b"1", OPEN, 0, 1)),
        Txn(3, SID, 3, T0 + 3, OpCode.CREATE, CreateTxn("/a/e", b"", OPEN, SID, 1)),
        Txn(4, SID, 4, T0 + 4, OpCode.SET_DATA, SetDataTxn("/a", b"2", 1)),
        Txn(5, SID, 5, T0 + 5, OpCode.CLOSE_SESSION, CloseSessionTxn()),
    ]
    once = DataTree()
    for txn in log:
        once.apply(txn)
    twice = DataTree()
    for txn in log[:3]:
        twice.apply(txn)
    for txn in log:  # recovery replays the whole log over a fuzzy state
        twice.apply(txn)
    assert _snapshot(once) == _snapshot(twice)


# ---------------------------------------------------------------------- descendants


def test_count_descendants(t: T) -> None:
    assert t.tree.count_descendants("/") == 3  # /zookeeper, quota, config
    t.create("/a")
    t.create("/a/b")
    t.create("/a/b/c")
    t.create("/a/d")
    assert t.tree.count_descendants("/a") == 3
    assert t.tree.count_descendants("/") == 7
    assert t.tree.node_count() == 9  # 8 nodes + the root alias, as ZooKeeper counts
