"""The tree digest (kernel/digest.py): the incremental value kept by DataTree.apply
always equals a full recomputation; it follows ZooKeeper's digest layout; the LMDB
storage persists it and gets it back on restart."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import lmdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from kernel.digest import (
    DIGEST_VERSION,
    LOG_INTERVAL,
    LOG_LIMIT,
    MASK64,
    compute_digest,
    java_long,
    node_digest,
)
from kernel.protocol import CONTAINER_EPHEMERAL_OWNER, OpCode
from kernel.storage import StorageError
from kernel.tree import DataTree, Node, ttl_owner
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
from plugins.storage_lmdb.store import ENV_DIR, SEAL_FILE, LmdbStorage
from plugins.storage_lmdb.zk_import import tree_digest as import_tree_digest
from tests.unit.test_lmdb_nodes import Gen, run_batch

SIDS = (0x100000000000001, 0x100000000000002)


def zk_node_digest(path: str, n: Node) -> int:
    """ZooKeeper's DigestCalculator, written out independently of kernel.digest."""
    if path.startswith("/zookeeper/"):
        return 0
    if path == "/":
        path = ""
    stat = struct.pack(">qqqqqiiiq", n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime, n.version,
                       n.c, n.aversion, n.owner)
    assert len(stat) == 60
    return zlib.crc32(path.encode() + (n.data or b"") + stat)


def zk_tree_digest(tree: DataTree) -> int:
    return sum(zk_node_digest(p, n) for p, n in tree.walk()) & MASK64


class Driver:
    """Applies valid txns built from hypothesis-chosen steps to a tree."""

    NAMES = ("a", "b", "c", "zookeeper")

    def __init__(self) -> None:
        self.tree = DataTree()
        self.zxid = 0
        self.sessions: set[int] = set()

    def paths(self) -> list[str]:
        return sorted(p for p, _ in self.tree.walk())

    def body(self, kind: int, pick: int, name: str, data: bytes | None,
             owner_kind: int) -> TxnBody:
        tree = self.tree
        paths = self.paths()
        path = paths[pick % len(paths)]
        node = tree.nodes[path]
        if kind <= 3:  # create (under any node that may have children, /zookeeper too)
            if node.is_ephemeral or node.ttl:
                return ErrorTxn(-108)
            child = ("/" if path == "/" else path + "/") + name
            if child in tree.nodes:
                return SetDataTxn(child, data, tree.nodes[child].version + 1)
            owner = 0
            if owner_kind == 1 and self.sessions:
                owner = sorted(self.sessions)[pick % len(self.sessions)]
            elif owner_kind == 2:
                owner = CONTAINER_EPHEMERAL_OWNER
            elif owner_kind == 3:
                owner = ttl_owner(1000 + pick)
            return CreateTxn(child, data, OPEN_ACL_UNSAFE, owner, node.c + 1)
        if kind <= 5:
            leaves = [p for p in paths if p != "/" and not tree.nodes[p].children]
            if leaves:
                return DeleteTxn(leaves[pick % len(leaves)])
            return ErrorTxn(-101)
        if kind <= 7:
            return SetDataTxn(path, data, node.version + 1)
        if kind == 8:
            return SetACLTxn(path, READ_ACL_UNSAFE if pick % 2 else OPEN_ACL_UNSAFE,
                             node.aversion + 1)
        return CheckTxn(path)

    def apply(self, body: TxnBody, sid: int = 0, op: int = OpCode.CREATE) -> None:
        self.zxid += 1
        self.tree.apply(Txn(self.zxid, sid, 0, 1_700_000_000_000 + self.zxid, op, body))

    def step(self, s: tuple[int, int, str, bytes | None, int]) -> None:
        kind, pick, name, data, owner_kind = s
        if kind == 10:  # a session opens or closes (closing deletes its ephemerals)
            sid = SIDS[pick % len(SIDS)]
            if sid in self.sessions:
                self.sessions.discard(sid)
                self.apply(CloseSessionTxn(), sid, OpCode.CLOSE_SESSION)
            else:
                self.sessions.add(sid)
                self.apply(CreateSessionTxn(30000, b"p" * 16), sid, OpCode.CREATE_SESSION)
        elif kind == 11:  # a multi of up to three sub-ops, planned on a scratch tree
            scratch = Driver()
            scratch.tree = DataTree()
            scratch.tree.nodes.clear()
            for p, n in self.tree.walk():
                scratch.tree.nodes[p] = _clone(n)
            scratch.tree.link_root_alias()
            scratch.sessions = set(self.sessions)
            subs = []
            for i in range(1 + pick % 3):
                b = scratch.body((pick + i) % 10, pick * 7 + i, name, data, owner_kind)
                scratch.tree.apply(Txn(0, 0, 0, 0, 0, b))
                subs.append((OpCode.MULTI, b))
            self.apply(MultiTxn(tuple(subs)), op=OpCode.MULTI)
        else:
            self.apply(self.body(kind, pick, name, data, owner_kind))


def _clone(n: Node) -> Node:
    c = Node(n.data, n.acl, n.czxid, n.ctime, n.owner)
    c.mzxid, c.mtime, c.pzxid, c.version, c.c, c.aversion = (n.mzxid, n.mtime, n.pzxid,
                                                              n.version, n.c, n.aversion)
    c.children = set(n.children)
    return c


steps = st.lists(st.tuples(st.integers(0, 11), st.integers(0, 1000),
                           st.sampled_from(Driver.NAMES),
                           st.one_of(st.none(), st.binary(max_size=24)),
                           st.integers(0, 3)),
                 max_size=60)


# ------------------------------------------------------------------ the value itself


def test_fresh_tree_digest_is_zookeepers() -> None:
    """A fresh tree: "/" (hashed as "") and /zookeeper with all-zero stats and empty
    data; /zookeeper/quota and /zookeeper/config are left out, as in ZooKeeper."""
    tree = DataTree()
    want = zlib.crc32(bytes(60)) + zlib.crc32(b"/zookeeper" + bytes(60))
    assert tree.digest == compute_digest(tree) == want == 1371985504
    assert DIGEST_VERSION == 2


def test_node_digest_layout_matches_zookeeper() -> None:
    n = Node(b"hello", OPEN_ACL_UNSAFE, 0x100000005, 1_700_000_000_123,
             CONTAINER_EPHEMERAL_OWNER)
    n.mzxid, n.pzxid, n.mtime, n.version, n.c, n.aversion = (0x100000009, 0x10000000a,
                                                             1_700_000_000_456, -3, 7, 2)
    assert node_digest("/a/b", n) == zk_node_digest("/a/b", n)
    assert node_digest("/", n) == node_digest("", n) == zk_node_digest("/", n)
    assert node_digest("/zookeeper/quota/x", n) == 0
    assert node_digest("/zookeeper", n) != 0
    n.data = None
    assert node_digest("/a/b", n) == zlib.crc32(b"/a/b" + struct.pack(
        ">qqqqqiiiq", n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime, n.version, n.c,
        n.aversion, n.owner))


def test_java_long() -> None:
    assert java_long(5) == 5
    assert java_long(MASK64) == -1
    assert java_long(1 << 63) == -(1 << 63)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_incremental_digest_equals_full_recompute(seq: list[tuple[int, int, str,
                                                                  bytes | None, int]]) -> None:
    d = Driver()
    for s in seq:
        before = d.tree.digest
        d.step(s)
        assert 0 <= d.tree.digest <= MASK64
        assert d.tree.digest == compute_digest(d.tree) == zk_tree_digest(d.tree), s
        # The importer checks ZooKeeper's logged digests with its own copy of the rule.
        assert java_long(d.tree.digest) == import_tree_digest(dict(d.tree.walk()))
        if s[0] == 9:  # a check changes nothing
            assert d.tree.digest == before


def test_every_stat_change_moves_the_digest() -> None:
    d = Driver()
    seen = {d.tree.digest}
    for body in (CreateTxn("/a", b"x", OPEN_ACL_UNSAFE, 0, 1),
                 CreateTxn("/a/b", None, OPEN_ACL_UNSAFE, 0, 1),  # parent c, pzxid
                 SetDataTxn("/a", b"x", 1),  # same data: mzxid, mtime, version
                 SetACLTxn("/a", READ_ACL_UNSAFE, 1),  # aversion
                 DeleteTxn("/a/b"),  # parent pzxid
                 SetDataTxn("/", b"root data", 1)):
        d.apply(body)
        assert d.tree.digest not in seen
        seen.add(d.tree.digest)
        assert d.tree.digest == compute_digest(d.tree)
    # Error txns and changes under /zookeeper/ leave it alone (they still use zxids).
    last = d.tree.digest
    d.apply(ErrorTxn(-101))
    d.apply(SetDataTxn("/zookeeper/quota", b"q", 1))
    assert d.tree.digest == last == compute_digest(d.tree)


def test_replicas_applying_the_same_txns_agree() -> None:
    gen_a, gen_b = Gen(7), Gen(7)
    a, b, c = DataTree(), DataTree(), DataTree()
    sessions_a: set[int] = set()
    sessions_b: set[int] = set()
    txns = run_batch(gen_a, a, c, 300, sessions_a)
    for t in txns:  # a third replica applies the same logged txns (duplicates skipped)
        b.apply(Txn(t.zxid, t.session_id, t.cxid, t.time, t.op, t.body))
        b.apply(Txn(t.zxid, t.session_id, t.cxid, t.time, t.op, t.body))
    assert a.digest == b.digest == c.digest == compute_digest(a)
    assert list(a.digest_log) == list(b.digest_log)
    # A different history gives a different digest.
    other = DataTree()
    run_batch(gen_b, other, DataTree(), 299, sessions_b)
    assert other.digest != a.digest


def test_digest_log_every_128_zxids_bounded() -> None:
    d = Driver()
    d.apply(CreateTxn("/n", b"", OPEN_ACL_UNSAFE, 0, 1))
    at = {}
    for i in range(2, 3 * LOG_INTERVAL + 5):
        d.apply(SetDataTxn("/n", str(i).encode(), i - 1))
        if d.zxid % LOG_INTERVAL == 0:
            at[d.zxid] = d.tree.digest
    assert list(d.tree.digest_log) == sorted(at.items())
    assert [z for z, _ in d.tree.digest_log] == [128, 256, 384]
    assert d.tree.digest_log.maxlen == LOG_LIMIT


def test_lazy_nodes_without_caches() -> None:
    """A NodeStore may build nodes with Node.__new__ (no cached digest fields)."""
    tree = DataTree()
    tree.apply(Txn(1, 0, 0, 5, 1, CreateTxn("/a", b"1", OPEN_ACL_UNSAFE, 0, 1)))
    bare = Node.__new__(Node)
    src = tree.nodes["/a"]
    for f in ("data", "acl", "czxid", "mzxid", "ctime", "mtime", "version", "c",
              "aversion", "owner", "pzxid", "children", "_stat"):
        setattr(bare, f, getattr(src, f))
    tree.nodes["/a"] = bare
    tree.apply(Txn(2, 0, 0, 6, 1, CreateTxn("/a/b", b"", OPEN_ACL_UNSAFE, 0, 1)))
    tree.apply(Txn(3, 0, 0, 7, 5, SetDataTxn("/a", b"22", 1)))
    assert tree.digest == compute_digest(tree)


# ------------------------------------------------------------------------ LMDB storage


@pytest.mark.parametrize("cache", [3, 0])
def test_lmdb_restart_gives_the_same_digest(tmp_path: Path, cache: int) -> None:
    data = tmp_path / "data"
    data.mkdir()
    st = LmdbStorage(data, force_sync=False, cache_nodes=cache)
    lazy = st.open()
    ref = DataTree()
    assert lazy.digest == ref.digest
    gen = Gen(3)
    sessions: set[int] = set()
    crash: tuple[Path, int, int] | None = None
    history = {0: ref.digest}
    for batch in range(12):
        txns = run_batch(gen, ref, lazy, 25, sessions)
        st.append(txns)
        st.applied(txns, lazy)
        assert lazy.digest == ref.digest == compute_digest(ref)
        history[ref.last_zxid] = ref.digest
        if batch == 8:
            # Files copied between two batches: the tree lags the log by one batch.
            shutil.copytree(data, tmp_path / "crash",
                            ignore=shutil.ignore_patterns("zkernel.lock"))
            crash = (tmp_path / "crash", ref.last_zxid, ref.digest)
    with st.sync_snapshot() as snap:  # the persisted tree: one batch behind the log
        assert snap.zxid == ref.last_zxid - 25 and snap.digest == history[snap.zxid]
    st.close()
    again = LmdbStorage(data, force_sync=False, cache_nodes=cache)
    tree = again.open()
    assert (tree.last_zxid, tree.digest) == (ref.last_zxid, ref.digest)
    assert compute_digest(tree) == ref.digest  # walks the lazily loaded tree
    again.close()
    assert crash is not None
    crashed = LmdbStorage(crash[0], force_sync=False, cache_nodes=cache)
    tree = crashed.open()  # replays the last batch from the log
    assert (tree.last_zxid, tree.digest) == crash[1:]
    crashed.close()


def _drop_meta_digest(data: Path) -> None:
    env = lmdb.open(str(data / ENV_DIR), max_dbs=16)
    with env.begin(write=True) as w:
        assert w.delete(b"digest", db=env.open_db(b"meta", txn=w))
    env.close()


def test_lmdb_without_a_stored_digest_computes_and_stores_it(tmp_path: Path) -> None:
    """An environment written before the digest existed: computed once at open."""
    data = tmp_path / "data"
    data.mkdir()
    st = LmdbStorage(data, force_sync=False)
    tree = st.open()
    txns = [Txn(i + 1, 0, 0, 9, 1, CreateTxn(f"/n{i}", b"v", OPEN_ACL_UNSAFE, 0, i + 1))
            for i in range(50)]
    for t in txns:
        tree.apply(t)
    st.append(txns)
    st.applied(txns, tree)
    want = tree.digest
    st.close()
    (data / ENV_DIR / SEAL_FILE).unlink()  # as after a crash: no full check
    _drop_meta_digest(data)
    st = LmdbStorage(data, force_sync=False, cache_nodes=5)
    assert st.open().digest == want
    st.close()
    env = lmdb.open(str(data / ENV_DIR), max_dbs=16, readonly=True)
    with env.begin() as r:
        raw = r.get(b"digest", db=env.open_db(b"meta", txn=r, create=False))
    env.close()
    assert raw is not None and struct.unpack(">Q", raw)[0] == want


def test_changed_record_caught_by_the_digest(tmp_path: Path) -> None:
    """A record changed in place while the server was down (still decodable): the
    full check that a broken seal triggers finds it through the digest."""
    data = tmp_path / "data"
    data.mkdir()
    st = LmdbStorage(data, force_sync=False)
    tree = st.open()
    t = Txn(1, 0, 0, 9, 1, CreateTxn("/n", b"precious-value", OPEN_ACL_UNSAFE, 0, 1))
    tree.apply(t)
    st.append([t])
    st.applied([t], tree)
    st.close()
    f = data / ENV_DIR / "data.mdb"
    raw = f.read_bytes()
    assert b"precious-value" in raw  # the node record (and the log entry)
    f.write_bytes(raw.replace(b"precious-value", b"tampered-value"))
    with pytest.raises(StorageError, match="digest"):
        LmdbStorage(data, force_sync=False).open()


def test_recompute_after_changes_outside_apply() -> None:
    """A tree filled or changed without apply (an import, a snapshot transfer):
    recompute_digest fixes the value and the per-node caches apply relies on."""
    tree = DataTree()
    tree.apply(Txn(1, 0, 0, 5, 1, CreateTxn("/a", b"1", OPEN_ACL_UNSAFE, 0, 1)))
    node = tree.nodes["/a"]
    node.data, node.version = b"changed in place", 9  # cached digest now stale
    n = Node(b"new", OPEN_ACL_UNSAFE, 2, 6, 0)
    tree.nodes["/b"] = n
    tree.nodes["/"].children.add("b")
    assert tree.digest != compute_digest(tree)
    assert tree.recompute_digest() == compute_digest(tree)
    tree.apply(Txn(3, 0, 0, 7, 5, SetDataTxn("/a", b"2", 10)))
    tree.apply(Txn(4, 0, 0, 8, 2, DeleteTxn("/b")))
    assert tree.digest == compute_digest(tree)
