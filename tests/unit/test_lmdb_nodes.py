"""The LMDB plugin's lazily loaded tree against the plain in-memory DataTree.

The same random transactions go to a dict-backed tree and to an LMDB-backed one whose
cache holds only a handful of nodes (so nearly every lookup goes to LMDB and eviction
runs constantly); after every batch, after a clean reopen and after a simulated crash
(a copy of the files taken between two batches), both trees must agree on every node,
stat, child list, counter and index.
"""

from __future__ import annotations

import copy
import random
import shutil
from pathlib import Path
from typing import Any

import lmdb
import pytest

from kernel.acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from kernel.protocol import CONTAINER_EPHEMERAL_OWNER, OpCode
from kernel.storage import StorageError
from kernel.tree import DataTree, ttl_owner
from kernel.txn import (
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
from plugins.storage_lmdb.nodes import LazyChildren
from plugins.storage_lmdb.store import ENV_DIR, SEAL_FILE, LmdbStorage

SIDS = (0x100, 0x200, 0x300)


def snapshot(tree: DataTree) -> dict[str, Any]:
    nodes = {p: (n.data, n.acl, n.stat(), sorted(n.children), n.c) for p, n in tree.walk()}
    return {
        "nodes": nodes,
        "count": tree.node_count(),
        "size": tree.approximate_data_size(),
        "ephemerals": {k: set(v) for k, v in tree.ephemerals.items() if v},
        "containers": set(tree.containers),
        "ttls": set(tree.ttls),
        "sessions": {k: (v.timeout, v.password) for k, v in tree.sessions.items()},
        "last_zxid": tree.last_zxid,
        "descendants": {p: tree.count_descendants(p) for p in ("/", "/a", "/b", "/a/x")
                        if p in tree.nodes},
    }


class Gen:
    """Random but valid transaction bodies, checked against the reference tree."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def body(self, ref: DataTree, open_sessions: set[int]) -> TxnBody:
        rng = self.rng
        paths = [p for p, _ in ref.walk() if not p.startswith("/zookeeper")]
        r = rng.random()
        if r < 0.45:
            parent = rng.choice([p for p in paths
                                 if not ref.nodes[p].is_ephemeral and not ref.nodes[p].ttl])
            name = rng.choice("abxyz") + str(rng.randrange(30))
            path = ("/" if parent == "/" else parent + "/") + name
            if path in ref.nodes:
                return SetDataTxn(path, rng.randbytes(rng.randrange(0, 40)),
                                  ref.nodes[path].version + 1)
            kind = rng.random()
            owner = 0
            if kind < 0.15 and open_sessions:
                owner = rng.choice(sorted(open_sessions))
            elif kind < 0.2:
                owner = CONTAINER_EPHEMERAL_OWNER
            elif kind < 0.25:
                owner = ttl_owner(rng.randrange(1, 10_000))
            data = None if rng.random() < 0.05 else rng.randbytes(rng.randrange(0, 40))
            acl = READ_ACL_UNSAFE if rng.random() < 0.1 else OPEN_ACL_UNSAFE
            return CreateTxn(path, data, acl, owner, ref.nodes[parent].c + 1)
        if r < 0.65:
            leaves = [p for p in paths if p != "/" and not ref.nodes[p].children]
            if leaves:
                return DeleteTxn(rng.choice(leaves))
        if r < 0.85:
            p = rng.choice(paths)
            return SetDataTxn(p, rng.randbytes(rng.randrange(0, 60)), ref.nodes[p].version + 1)
        if r < 0.9:
            p = rng.choice(paths)
            return SetACLTxn(p, READ_ACL_UNSAFE if rng.random() < 0.5 else OPEN_ACL_UNSAFE,
                             ref.nodes[p].aversion + 1)
        return ErrorTxn(-101)


def run_batch(gen: Gen, ref: DataTree, lazy: DataTree, n: int,
              open_sessions: set[int]) -> list[Txn]:
    """Apply n txns to both trees (separate Txn objects: apply stores results); returns
    the lazy tree's."""
    out = []
    for _ in range(n):
        zxid = ref.last_zxid + 1
        r = gen.rng.random()
        sid = 0
        op = 1
        body: TxnBody
        if r < 0.05:
            sid = gen.rng.choice(SIDS)
            if sid in open_sessions:
                body = CloseSessionTxn()
                open_sessions.discard(sid)
            else:
                body = CreateSessionTxn(30000, bytes([sid >> 8]) * 16)
                open_sessions.add(sid)
        elif r < 0.12:
            # A multi: each sub-op planned against the state the previous ones leave.
            scratch = copy.deepcopy(ref)
            sub = []
            for _ in range(gen.rng.randrange(1, 5)):
                b = gen.body(scratch, open_sessions)
                scratch.apply(Txn(0, 0, 0, 0, 0, b))  # zxid 0: always applies
                sub.append((OpCode.MULTI, b))
            body = MultiTxn(tuple(sub))
            op = OpCode.MULTI
        else:
            body = gen.body(ref, open_sessions)
        ref.apply(Txn(zxid, sid, 0, 1000 + zxid, op, body))
        t = Txn(zxid, sid, 0, 1000 + zxid, op, body)
        lazy.apply(t)
        out.append(t)
    return out


def compare(want: dict[str, Any], got: dict[str, Any]) -> None:
    assert want.keys() == got.keys()
    for k in want:
        if k == "nodes":
            assert want[k].keys() == got[k].keys()
            for p in want[k]:
                assert want[k][p] == got[k][p], p
        else:
            assert want[k] == got[k], k


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("cache", [3, 40, 0])
def test_lazy_tree_matches_the_dict_tree(store_dir: Path, tmp_path: Path, seed: int,
                                         cache: int) -> None:
    gen = Gen(seed)
    store_dir.mkdir()
    st = LmdbStorage(store_dir, force_sync=False, cache_nodes=cache)
    lazy = st.open()
    ref = DataTree()
    open_sessions: set[int] = set()
    crash_copy: tuple[Path, dict[str, Any]] | None = None
    for batch in range(40):
        txns = run_batch(gen, ref, lazy, 25, open_sessions)
        st.append(txns)
        st.applied(txns, lazy)
        compare(snapshot(ref), snapshot(lazy))
        if batch == 25:
            # A crash between two batches: the files hold the log up to here and the
            # tree as of the batch before; recovery must apply the tail.
            crash = tmp_path / "crash"
            shutil.copytree(store_dir, crash, ignore=shutil.ignore_patterns("zkernel.lock"))
            crash_copy = (crash, snapshot(ref))
    st.close()
    reopened = LmdbStorage(store_dir, force_sync=False, cache_nodes=cache)
    compare(snapshot(ref), snapshot(reopened.open()))
    reopened.close()
    assert crash_copy is not None
    crashed = LmdbStorage(crash_copy[0], force_sync=False, cache_nodes=cache)
    compare(crash_copy[1], snapshot(crashed.open()))
    crashed.close()


def test_children_load_lazily_and_count_without_names(store_dir: Path) -> None:
    store_dir.mkdir()
    st = LmdbStorage(store_dir, force_sync=False, cache_nodes=2)
    tree = st.open()
    txns = [Txn(1, 0, 0, 1, 1, CreateTxn("/p", b"", OPEN_ACL_UNSAFE, 0, 1))]
    txns += [Txn(2 + i, 0, 0, 1, 1, CreateTxn(f"/p/c{i}", b"d", OPEN_ACL_UNSAFE, 0, i + 1))
             for i in range(50)]
    for t in txns:
        tree.apply(t)
    st.append(txns)
    st.applied(txns, tree)
    st.close()
    st = LmdbStorage(store_dir, force_sync=False, cache_nodes=2)
    tree = st.open()
    p = tree.nodes["/p"]
    assert isinstance(p.children, LazyChildren)
    assert p.stat().numChildren == 50 and p.children._names is None  # no names read
    t = Txn(100, 0, 0, 1, 1, CreateTxn("/p/new", b"", OPEN_ACL_UNSAFE, 0, 51))
    tree.apply(t)
    t2 = Txn(101, 0, 0, 1, 1, DeleteTxn("/p/c7"))
    tree.apply(t2)
    assert len(p.children) == 50 and p.children._names is None  # still only a delta
    assert set(p.children) == {f"c{i}" for i in range(50) if i != 7} | {"new"}
    assert tree.count_descendants("/p") == 50
    st.append([t, t2])
    st.applied([t, t2], tree)
    st.close()


def test_old_format_is_refused_untouched(store_dir: Path) -> None:
    env_dir = store_dir / ENV_DIR
    env_dir.mkdir(parents=True)
    env = lmdb.open(str(env_dir), max_dbs=8)
    meta = env.open_db(b"meta")
    nodes = env.open_db(b"nodes")
    with env.begin(write=True) as w:
        w.put(b"format", b"zkernel-lmdb-1", db=meta)
        w.put(b"/", b"old record", db=nodes)
    env.close()
    before = (env_dir / "data.mdb").read_bytes()
    with pytest.raises(StorageError, match="zkernel-lmdb-1.*earlier zkernel build"):
        LmdbStorage(store_dir).open()
    assert (env_dir / "data.mdb").read_bytes() == before


def test_changed_file_is_checked_and_unchanged_one_is_trusted(store_dir: Path) -> None:
    store_dir.mkdir()
    st = LmdbStorage(store_dir, force_sync=False)
    tree = st.open()
    txns = [Txn(i + 1, 0, 0, 1, 1, CreateTxn(f"/n{i}", b"x" * 10, OPEN_ACL_UNSAFE, 0, i + 1))
            for i in range(100)]
    for t in txns:
        tree.apply(t)
    st.append(txns)
    st.applied(txns, tree)
    st.close()
    seal = store_dir / ENV_DIR / SEAL_FILE
    assert seal.exists()
    st = LmdbStorage(store_dir, force_sync=False)
    assert st.open().node_count() == 105
    assert not seal.exists()  # consumed: a crash from here on leaves no seal
    st.close()
    # Damage one node record in place (same size), as a stray writer would.
    data = store_dir / ENV_DIR / "data.mdb"
    raw = bytearray(data.read_bytes())
    i = raw.index(b"x" * 10)
    raw[i - 12:i - 8] = b"\x7f\xff\xff\xff"  # the record's data length
    data.write_bytes(bytes(raw))
    with pytest.raises(StorageError, match="corrupt"):
        LmdbStorage(store_dir, force_sync=False).open()
    assert seal.exists()  # still refused next time


def test_index_entries_follow_a_path_deleted_and_created_again(store_dir: Path) -> None:
    """Within one batch a path changes owner kind; the owners index must follow."""
    store_dir.mkdir()
    st = LmdbStorage(store_dir, force_sync=False, cache_nodes=3)
    tree = st.open()
    sid = 0x100
    bodies: list[tuple[int, TxnBody]] = [
        (sid, CreateSessionTxn(30000, b"p" * 16)),
        (sid, CreateTxn("/e", b"", OPEN_ACL_UNSAFE, sid, 1)),
        (0, CreateTxn("/c", b"", OPEN_ACL_UNSAFE, CONTAINER_EPHEMERAL_OWNER, 2)),
    ]
    second: list[tuple[int, TxnBody]] = [
        (sid, DeleteTxn("/e")),
        (0, CreateTxn("/e", b"now persistent", OPEN_ACL_UNSAFE, 0, 3)),
        (0, DeleteTxn("/c")),
        (sid, CreateTxn("/c", b"", OPEN_ACL_UNSAFE, sid, 4)),
    ]
    zxid = 0
    for group in (bodies, second):
        txns = []
        for s, b in group:
            zxid += 1
            t = Txn(zxid, s, 0, 1, 1, b)
            tree.apply(t)
            txns.append(t)
        st.append(txns)
        st.applied(txns, tree)
    assert tree.ephemerals == {sid: {"/c"}} and not tree.containers
    st.close()
    st = LmdbStorage(store_dir, force_sync=False, cache_nodes=3)
    tree = st.open()
    assert tree.ephemerals == {sid: {"/c"}} and not tree.containers
    assert tree.nodes["/e"].data == b"now persistent" and tree.nodes["/e"].owner == 0
    assert tree.node_count() == 7
    st.close()


def test_cache_size_comes_from_zoo_cfg(tmp_path: Path) -> None:
    from kernel.config import ConfigError, load_config
    from plugins.storage_lmdb import zk_storage

    def storage(extra: str) -> Any:
        cfg = tmp_path / "zoo.cfg"
        cfg.write_text(f"dataDir={tmp_path / 'd'}\nclientPort=2181\n{extra}")
        return zk_storage(config=load_config(cfg))

    assert storage("").cache_nodes == 250_000
    assert storage("kernel.lmdb.cacheNodes=1234\n").cache_nodes == 1234
    assert storage("kernel.lmdb.cacheNodes=0\n").cache_nodes == 0
    for bad in ("many", "-1"):
        with pytest.raises(ConfigError, match="cacheNodes"):
            storage(f"kernel.lmdb.cacheNodes={bad}\n")
