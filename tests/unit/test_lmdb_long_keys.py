"""Paths longer than an LMDB key (511 bytes) in the LMDB storage plugin.

The key functions (``plugins.storage_lmdb.keys``) on every form and boundary; the store
against the dict-backed tree with long paths and names everywhere (a tiny cache, clean
reopen, a crash copy, the full-record check, SNAP streams, imports and installed
snapshots); a format-2 environment (the layout without long keys) opened as it is and
upgraded; and a failed write that must not let a later commit claim what it lost.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import lmdb
import pytest

from kernel.acl import OPEN_ACL_UNSAFE
from kernel.digest import compute_digest
from kernel.errors import ProtocolError
from kernel.protocol import OpCode
from kernel.storage import StorageError
from kernel.tree import DataTree
from kernel.txn import CreateSessionTxn, CreateTxn, DeleteTxn, SetDataTxn, Txn, TxnBody
from plugins.storage_lmdb.keys import (
    LONG,
    LONG_KEY_SIZE,
    MAX_KEY,
    child_entry,
    child_name,
    child_prefixes,
    node_key,
    split_child_entry,
    unwrap_value,
    wrap_value,
)
from plugins.storage_lmdb.store import ENV_DIR, FORMAT, SEAL_FILE, LmdbStorage
from tests.support.servers import REPO
from tests.unit.test_lmdb_nodes import Gen, compare, run_batch, snapshot
from tests.unit.test_zk_import import create as zk_create
from tests.unit.test_zk_import import entry as zk_entry
from tests.unit.test_zk_import import log_bytes, session, write_dir

# -- the key functions -----------------------------------------------------------------


def test_short_paths_keep_the_format_2_keys() -> None:
    assert node_key("/") == b"/"
    assert node_key("/a/b") == b"/a/b"
    assert child_entry("/a") == (b"/\0a", b"")
    assert child_entry("/a/b") == (b"/a\0b", b"")
    assert child_prefixes("/") == (b"/\0",)
    assert child_prefixes("/a") == (b"/a\0",)
    p = "/" + "x" * (MAX_KEY - 1)
    assert node_key(p) == p.encode()
    p2 = "/" + "é" * ((MAX_KEY - 1) // 2)  # 511 UTF-8 bytes
    assert len(p2.encode()) == MAX_KEY and node_key(p2) == p2.encode()


@pytest.mark.parametrize("path", ["/" + "x" * MAX_KEY, "/" + "é" * 256, "/a/" + "b" * 100_000])
def test_long_paths_get_a_digest_key_and_keep_the_path_in_the_value(path: str) -> None:
    k = node_key(path)
    assert len(k) == LONG_KEY_SIZE and k[:1] == LONG and k < b"/"
    assert node_key(path + "x") != k
    v = wrap_value(k, path, b"record")
    assert unwrap_value(k, v) == (path, b"record")
    with pytest.raises(ProtocolError):  # a record holding another path is refused
        unwrap_value(node_key(path + "x"), v)
    with pytest.raises(ProtocolError):
        unwrap_value(k, v[:10])
    # Short keys: the value is stored as it is.
    assert wrap_value(b"/a", "/a", b"r") == b"r"
    assert unwrap_value(b"/a", b"r") == ("/a", b"r")


PARENTS = ["/", "/p", "/" + "m" * 476, "/" + "m" * 477, "/" + "m" * 490, "/" + "m" * 510,
           "/" + "l" * 511, "/" + "l" * 5000, "/p/" + "é" * 300]
NAMES = ["a", "n" * 200, "n" * 470, "n" * 509, "n" * 510, "n" * 600, "é" * 3000]


@pytest.mark.parametrize("parent", PARENTS)
def test_children_entries_fit_group_and_read_back(parent: str) -> None:
    prefixes = child_prefixes(parent)
    others = [child_prefixes(q) for q in PARENTS + ["/pp", "/p/x"] if q != parent]
    for name in NAMES:
        path = (parent.rstrip("/") or "") + "/" + name
        key, value = child_entry(path)
        assert len(key) <= MAX_KEY
        prefix = next(p for p in prefixes if key.startswith(p))
        assert child_name(key[len(prefix):], value) == name
        group, got = split_child_entry(key, value)
        assert got == name and group + b"\0" == prefix
        # A key of this parent is in no other parent's range.
        assert not any(key.startswith(p) for ps in others for p in ps)
        old = parent.encode() + b"\0" + name.encode()  # format 2's key
        if len(old) <= MAX_KEY:
            assert (key, value) == (old, b"")
    # A plain parent of 478..511 bytes has an overflow group for names that don't fit.
    assert len(prefixes) == (2 if MAX_KEY - LONG_KEY_SIZE - 1 < len(parent) <= MAX_KEY
                             else 1)


# -- the store against the dict tree -----------------------------------------------------


class LongGen(Gen):
    """Gen, plus creates of names from 1 to 3,000 characters (multi-byte ones too),
    under any parent: long paths, long names, short names under long parents."""

    LENGTHS = (1, 30, 470, 480, 505, 520, 1000, 3000)

    def body(self, ref: DataTree, open_sessions: set[int]) -> TxnBody:
        rng = self.rng
        if rng.random() < 0.4:
            parents = [p for p, n in ref.walk() if not p.startswith("/zookeeper")
                       and not n.is_ephemeral and not n.ttl and len(p) < 12_000]
            parent = rng.choice(parents)
            name = rng.choice("ab") + str(rng.randrange(3))
            name += rng.choice("xé") * max(0, rng.choice(self.LENGTHS) - len(name))
            path = ("/" if parent == "/" else parent + "/") + name
            if path in ref.nodes:
                if ref.nodes[path].children or rng.random() < 0.5:
                    return SetDataTxn(path, rng.randbytes(8), ref.nodes[path].version + 1)
                return DeleteTxn(path)
            owner = rng.choice(sorted(open_sessions)) if open_sessions and \
                rng.random() < 0.2 else 0
            return CreateTxn(path, rng.randbytes(rng.randrange(0, 20)), OPEN_ACL_UNSAFE,
                             owner, ref.nodes[parent].c + 1)
        return super().body(ref, open_sessions)


def full_snapshot(tree: DataTree) -> dict[str, Any]:
    out = snapshot(tree)
    out["descendants"] = {p: tree.count_descendants(p) for p, n in tree.walk()
                          if n.children}
    out["digest"] = tree.digest
    return out


def stored_paths(data_dir: Path) -> set[str]:
    st = LmdbStorage(data_dir, force_sync=False)
    st.open()
    with st.sync_snapshot() as snap:
        paths = {p for p, _ in snap.nodes()}
    st.close()
    return paths


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("cache", [3, 0])
def test_long_paths_match_the_dict_tree(tmp_path: Path, seed: int, cache: int) -> None:
    gen = LongGen(seed)
    data = tmp_path / "data"
    data.mkdir()
    st = LmdbStorage(data, force_sync=False, cache_nodes=cache)
    lazy = st.open()
    ref = DataTree()
    sessions: set[int] = set()
    crash: tuple[Path, dict[str, Any]] | None = None
    for batch in range(24):
        txns = run_batch(gen, ref, lazy, 20, sessions)
        st.append(txns)
        st.applied(txns, lazy)
        if batch % 3 == 2:
            compare(full_snapshot(ref), full_snapshot(lazy))
        if batch == 17:
            shutil.copytree(data, tmp_path / "crash",
                            ignore=shutil.ignore_patterns("zkernel.lock"))
            crash = (tmp_path / "crash", full_snapshot(ref))
    assert set(lazy.nodes) == set(ref.nodes)  # the walk of the whole nodes table
    assert max(len(p.encode()) for p in ref.nodes) > 5_000
    st.close()
    want = full_snapshot(ref)
    st = LmdbStorage(data, force_sync=False, cache_nodes=cache)
    compare(want, full_snapshot(st.open()))
    st.close()
    # SNAP streams real paths; the full-record check (a changed seal) passes.
    assert stored_paths(data) == set(ref.nodes) - {""}
    (data / ENV_DIR / SEAL_FILE).write_text("0 0 0 0\n")
    st = LmdbStorage(data, force_sync=False, cache_nodes=cache)
    tree = st.open()
    assert tree.digest == compute_digest(ref)
    st.close()
    assert crash is not None
    st = LmdbStorage(crash[0], force_sync=False, cache_nodes=cache)
    compare(crash[1], full_snapshot(st.open()))
    st.close()


def test_children_index_is_checked_on_a_changed_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    tree = DataTree()
    long_parent = "/" + "p" * 600
    for z, (path, cv) in enumerate([(long_parent, 1), (long_parent + "/c", 1),
                                    ("/s", 2), ("/s/" + "n" * 700, 1)], start=1):
        tree.apply(Txn(z, 0, 0, 1, OpCode.CREATE, CreateTxn(path, b"d", OPEN_ACL_UNSAFE, 0, cv)))
    LmdbStorage(data, force_sync=False).write_imported(tree)
    env = lmdb.open(str(data / ENV_DIR), max_dbs=16)
    children = env.open_db(b"children")
    with env.begin(write=True) as w:
        key, value = child_entry("/s/" + "n" * 700)
        assert w.get(key, db=children) == ("n" * 700).encode()
        w.put(key, b"another name", db=children)
    env.close()
    with pytest.raises(StorageError, match="corrupt"):
        LmdbStorage(data, force_sync=False).open()


# -- whole trees: import, install_snapshot, zkernel import-zookeeper ---------------------


def _long_tree() -> DataTree:
    tree = DataTree()
    sid = 0x500
    tree.apply(Txn(1, sid, 0, 1, OpCode.CREATE_SESSION, CreateSessionTxn(30000, b"x" * 16)))
    bodies = [
        CreateTxn("/" + "a" * 600, b"600", OPEN_ACL_UNSAFE, 0, 1),
        CreateTxn("/" + "a" * 600 + "/" + "b" * 5000, b"5k", OPEN_ACL_UNSAFE, 0, 1),
        CreateTxn("/" + "a" * 600 + "/short", b"s", OPEN_ACL_UNSAFE, sid, 2),
        CreateTxn("/s", b"", OPEN_ACL_UNSAFE, 0, 2),
        CreateTxn("/s/" + "c" * 100_000, b"100k", OPEN_ACL_UNSAFE, sid, 1),
    ]
    for z, b in enumerate(bodies, start=2):
        tree.apply(Txn(z, sid, 0, z, OpCode.CREATE, b))
    return tree


def check_long_tree(tree: DataTree) -> None:
    a = "/" + "a" * 600
    assert tree.nodes[a].data == b"600"
    assert set(tree.nodes[a].children) == {"b" * 5000, "short"}
    assert tree.nodes[a + "/" + "b" * 5000].data == b"5k"
    assert set(tree.nodes["/s"].children) == {"c" * 100_000}
    assert tree.nodes["/s/" + "c" * 100_000].data == b"100k"
    assert tree.ephemerals == {0x500: {a + "/short", "/s/" + "c" * 100_000}}
    assert tree.count_descendants(a) == 2 and tree.count_descendants("/s") == 1


def test_imported_and_installed_trees_with_long_paths(tmp_path: Path) -> None:
    tree = _long_tree()
    LmdbStorage(tmp_path / "imp", force_sync=False).write_imported(tree)
    st = LmdbStorage(tmp_path / "imp", force_sync=False, cache_nodes=2)
    got = st.open()
    check_long_tree(got)
    assert got.digest == compute_digest(tree)
    st.close()
    st = LmdbStorage(tmp_path / "inst", force_sync=False, cache_nodes=2)
    st.open()
    served = st.install_snapshot(_long_tree())
    check_long_tree(served)
    st.close()
    st = LmdbStorage(tmp_path / "inst", force_sync=False, cache_nodes=2)
    check_long_tree(st.open())
    st.close()


def test_import_zookeeper_command_with_long_paths(tmp_path: Path) -> None:
    s1 = 0x100000ABCDEF0001
    a = "/" + "a" * 700
    log = log_bytes([
        zk_entry(1, OpCode.CREATE_SESSION, session(30000), sid=s1),
        zk_entry(2, OpCode.CREATE, zk_create(a, 1, b"A")),
        zk_entry(3, OpCode.CREATE, zk_create(a + "/" + "b" * 3000, 1, b"B")),
        zk_entry(4, OpCode.CREATE, zk_create("/s", 2, b"")),
        zk_entry(5, OpCode.CREATE, zk_create("/s/" + "e" * 600, 1, b"E", ephemeral=True)),
    ])
    src = write_dir(tmp_path / "zk", logs={"log.1": log})
    out = subprocess.run([sys.executable, "-m", "kernel", "import-zookeeper", str(src),
                          "--data-dir", str(tmp_path / "zkernel")], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    st = LmdbStorage(tmp_path / "zkernel", force_sync=False, cache_nodes=2)
    tree = st.open()
    assert set(tree.nodes[a].children) == {"b" * 3000}
    assert tree.nodes[a + "/" + "b" * 3000].data == b"B"
    assert set(tree.nodes["/s"].children) == {"e" * 600}
    assert tree.ephemerals == {s1: {"/s/" + "e" * 600}}
    st.close()


# -- format 2 ------------------------------------------------------------------------------


def _meta(data: Path, key: bytes, value: bytes | None = None) -> bytes | None:
    env = lmdb.open(str(data / ENV_DIR), max_dbs=16)
    try:
        meta = env.open_db(b"meta")
        with env.begin(write=value is not None) as t:
            if value is not None:
                t.put(key, value, db=meta)
            return t.get(key, db=meta)
    finally:
        env.close()


def _commit(st: LmdbStorage, tree: DataTree, bodies: list[tuple[int, TxnBody]]) -> None:
    txns = []
    for sid, body in bodies:
        t = Txn(tree.last_zxid + 1, sid, 0, 1, OpCode.CREATE, body)
        tree.apply(t)
        txns.append(t)
    st.append(txns)
    st.applied(txns, tree)


def _format_2_env(data: Path) -> dict[str, Any]:
    """An environment holding exactly what format 2 would: short paths only, with an
    ephemeral, a session and nested children; returns its snapshot."""
    st = LmdbStorage(data, force_sync=False)
    tree = st.open()
    sid = 0x700
    _commit(st, tree, [(sid, CreateSessionTxn(30000, b"s" * 16)),
                       (0, CreateTxn("/a", b"a", OPEN_ACL_UNSAFE, 0, 1)),
                       (0, CreateTxn("/a/b", b"b", OPEN_ACL_UNSAFE, 0, 1)),
                       (sid, CreateTxn("/a/e", b"e", OPEN_ACL_UNSAFE, sid, 2)),
                       (0, CreateTxn("/" + "m" * 509, b"m", OPEN_ACL_UNSAFE, 0, 2))])
    want = full_snapshot(tree)
    st.close()
    # Byte for byte the format-2 layout: path keys, parent NUL name, empty values.
    env = lmdb.open(str(data / ENV_DIR), max_dbs=16, readonly=True)
    with env.begin() as r:
        nodes = [bytes(k) for k in r.cursor(db=env.open_db(b"nodes", txn=r))
                 .iternext(values=False)]
        children = list(r.cursor(db=env.open_db(b"children", txn=r)))
        owners = list(r.cursor(db=env.open_db(b"owners", txn=r)))
    env.close()
    assert nodes == sorted(p.encode() for p in want["nodes"])
    assert sorted((bytes(k), bytes(v)) for k, v in children) == sorted(
        (((p[:p.rfind("/")] or "/") + "\0" + p[p.rfind("/") + 1:]).encode(), b"")
        for p in want["nodes"] if p != "/")
    assert [bytes(k) for k, v in owners] == [b"/a/e"] and len(owners[0][1]) == 8
    _meta(data, b"format", b"zkernel-lmdb-2")
    return want


def test_format_2_environment_is_read_and_upgraded(tmp_path: Path) -> None:
    data = tmp_path / "data"
    want = _format_2_env(data)  # the marker change breaks the seal: full check too
    st = LmdbStorage(data, force_sync=False, cache_nodes=2)
    tree = st.open()
    assert st.env is not None
    with st.env.begin() as r:
        assert r.get(b"format", db=st.meta) == FORMAT == b"zkernel-lmdb-3"
    compare(want, full_snapshot(tree))
    long_path = "/a/" + "L" * 2000
    _commit(st, tree, [(0, CreateTxn(long_path, b"long", OPEN_ACL_UNSAFE, 0, 3)),
                       (0, CreateTxn("/" + "m" * 509 + "/c", b"", OPEN_ACL_UNSAFE, 0, 1))])
    want = full_snapshot(tree)
    st.close()
    st = LmdbStorage(data, force_sync=False, cache_nodes=2)
    tree = st.open()
    compare(want, full_snapshot(tree))
    assert set(tree.nodes["/a"].children) == {"b", "e", "L" * 2000}
    st.close()


def test_format_2_environment_with_a_long_path_in_its_log_recovers(tmp_path: Path) -> None:
    """A format-2 server logged a create of a long path and then died writing its
    record: the log tail holds it. This build replays and stores it."""
    data = tmp_path / "data"
    want = _format_2_env(data)
    st = LmdbStorage(data, force_sync=False)
    tree = st.open()
    long_path = "/a/" + "z" * 900
    t = Txn(tree.last_zxid + 1, 0, 0, 1, OpCode.CREATE,
            CreateTxn(long_path, b"z", OPEN_ACL_UNSAFE, 0, 3))
    st.append([t])  # logged; the tree records never got it
    st.close()
    _meta(data, b"format", b"zkernel-lmdb-2")
    for _ in range(2):
        st = LmdbStorage(data, force_sync=False)
        tree = st.open()
        assert tree.nodes[long_path].data == b"z"
        assert set(tree.nodes["/a"].children) == {"b", "e", "z" * 900}
        assert tree.node_count() == len(want["nodes"]) + 2
        st.close()


def test_other_formats_are_still_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    st = LmdbStorage(data, force_sync=False)
    st.open()
    st.close()
    _meta(data, b"format", b"zkernel-lmdb-9")
    with pytest.raises(StorageError, match="unsupported storage format"):
        LmdbStorage(data, force_sync=False).open()


# -- a failed write --------------------------------------------------------------------------


def test_a_failed_write_stops_writing_and_the_log_recovers_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    st = LmdbStorage(data, force_sync=False)
    tree = st.open()
    _commit(st, tree, [(0, CreateTxn("/x", b"x", OPEN_ACL_UNSAFE, 0, 1))])

    def fail(*args: object, **kwargs: object) -> None:
        raise lmdb.MapFullError("simulated")

    monkeypatch.setattr(st, "_write_tree", fail)
    t = Txn(tree.last_zxid + 1, 0, 0, 1, OpCode.CREATE,
            CreateTxn("/y", b"y", OPEN_ACL_UNSAFE, 0, 2))
    tree.apply(t)
    with pytest.raises(lmdb.MapFullError):
        st.append([t])  # carried /x's record: lost with the aborted transaction
    st.applied([t], tree)
    with pytest.raises(StorageError, match="after a failed one"):
        st.append([])
    monkeypatch.undo()
    st.close()  # must not store a last_applied that covers /x
    st = LmdbStorage(data, force_sync=False)
    tree = st.open()
    assert tree.nodes["/x"].data == b"x"  # replayed from the log
    assert "/y" not in tree.nodes  # never logged, never acknowledged
    st.close()
