"""Import a real Apache ZooKeeper 3.8 data directory and compare with what it served.

A real ZooKeeper (Debian's package) runs with ``snapCount=100`` so that a few hundred
writes span several snapshots and log files; the workload covers ephemerals (of a
session still open when the server stops, and of a closed one), sequentials,
containers and TTL nodes (also reaped ones: deleteContainer transactions), digest ACLs,
setACL, setData (also on the root), deletes, null data, large data, successful and
failed multis and failed writes. Every node ZooKeeper serves is recorded with kazoo
(data, ACL, stat); the server is stopped (SIGTERM, or SIGKILL as a crash); the importer
must reproduce every node exactly -- stats as clients see them, ephemeralOwner 0 for
containers/TTL -- plus the open session with the password ZooKeeper gave it, and the
last zxid. ZooKeeper's own tree digests in the log must match the imported tree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.security import make_digest_acl

from kernel.tree import DataTree
from plugins.storage_lmdb.zk_import import read_zookeeper_datadir
from tests.integration.kazoo_helpers import (
    ClientPool,
    Multi,
    call,
    create_container,
    create_ttl,
    raw_create,
)
from tests.support.servers import (
    REPO,
    ZK_JAR_DIR,
    ApacheZooKeeperServer,
    ZkernelServer,
    four_letter_word,
)

pytestmark = pytest.mark.skipif(
    shutil.which("java") is None or not (ZK_JAR_DIR / "zookeeper.jar").exists(),
    reason="Apache ZooKeeper (Debian zookeeper package) and Java are not installed")

SESSION_TIMEOUT = 20.0  # within ZooKeeper's bounds for tickTime 2000, so not renegotiated
Recorded = dict[str, tuple[bytes | None, tuple[tuple[int, str, str], ...], tuple[int, ...]]]


@pytest.fixture
def pool() -> Iterator[ClientPool]:
    p = ClientPool()
    yield p
    p.close()


def _wait_gone(zk: KazooClient, path: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while zk.exists(path) is not None:
        assert time.monotonic() < deadline, f"{path} was not reaped"
        time.sleep(0.1)


def _workload(zk: KazooClient, other: KazooClient, closer: KazooClient) -> None:
    """Several hundred writes of every kind; ``other`` stays open, ``closer`` is closed."""
    secret = make_digest_acl("alice", "secret", all=True)
    reader = make_digest_acl("bob", "pw", read=True)
    zk.set("/", b"root data")  # the root's digest path is "" in ZooKeeper
    zk.create("/app", b"app")
    zk.create("/app/items", b"")
    for i in range(180):
        zk.create(f"/app/items/n{i}", b"v%d" % i)
        if i % 3 == 0:
            zk.delete(f"/app/items/n{i}")
        elif i % 3 == 1:
            zk.set(f"/app/items/n{i}", b"changed %d" % i)
            zk.set(f"/app/items/n{i}", b"changed again %d" % i)
    for i in range(1, 180, 21):
        zk.set_acls(f"/app/items/n{i}", [secret, reader])
    zk.set_acls("/app/items/n4", [reader, secret])
    zk.set_acls("/app/items/n4", [secret])
    for _ in range(60):
        zk.create("/app/seq-", b"s", sequence=True)
    for i in range(40):
        zk.create(f"/app/churn{i}", b"x")
        zk.delete(f"/app/churn{i}")
    zk.create("/private", b"top secret", acl=[secret])
    zk.create("/private/child", b"c", acl=[secret, reader])
    zk.create("/ünïcode-ñode", "ü".encode())
    zk.create("/big", b"x" * 300_000)
    call(zk, raw_create("/nulldata", None))
    call(zk, raw_create("/create2", b"via create2", opcode=15))

    # Ephemerals of the session that stays open, and of one that closes.
    zk.create("/eph", b"")
    for i in range(5):
        other.create(f"/eph/o{i}", b"o", ephemeral=True)
    other.create("/eph/oseq-", b"", ephemeral=True, sequence=True)
    for i in range(4):
        closer.create(f"/eph/c{i}", b"c", ephemeral=True)
    closer.stop()  # closeSession: deletes its ephemerals in one transaction

    # Containers and TTL nodes; the reaper deletes the used container and the short TTL.
    call(zk, create_container("/cont", b"container"))
    zk.create("/cont/child", b"")
    call(zk, create_container("/used", b""))
    zk.create("/used/child", b"")
    zk.delete("/used/child")
    call(zk, create_container("/fresh", b"never used"))
    zk.create("/ttl", b"")
    call(zk, create_ttl("/ttl/long", 3_600_000, b"long"))
    call(zk, create_ttl("/ttl/seq-", 3_600_000, b"seq", flags=6))
    call(zk, create_ttl("/ttl/short", 300, b"short"))
    call(zk, create_ttl("/ttl/parent", 300, b""))
    zk.create("/ttl/parent/keep", b"")

    # Multis: one that commits, one that fails (an error txn with sub-errors).
    t = zk.transaction()
    t.create("/multi", b"m")
    t.create("/multi/a", b"a")
    t.set_data("/app", b"app v1")
    t.delete("/app/items/n2")
    t.check("/app", 1)
    t.commit()
    t = zk.transaction()
    t.create("/multi/b", b"b")
    t.check("/app", 99)
    assert not all(r is True for r in t.commit())
    call(zk, Multi([raw_create("/multi/c", b"c", flags=2)]))

    # Failed writes are logged as error transactions.
    with pytest.raises(NodeExistsError):
        zk.create("/app", b"")
    with pytest.raises(NoNodeError):
        zk.delete("/missing")

    # Filler across more snapshots/logs.
    for i in range(120):
        zk.set("/app", b"app %d" % i)
    _wait_gone(zk, "/used")
    _wait_gone(zk, "/ttl/short")


def _record(zk: KazooClient) -> Recorded:
    out: Recorded = {}
    stack = ["/"]
    while stack:
        path = stack.pop()
        data, stat = zk.get(path)
        acls, _ = zk.get_acls(path)
        out[path] = (data, tuple((a.perms, a.id.scheme, a.id.id) for a in acls), tuple(stat))
        for child in zk.get_children(path):
            stack.append(("" if path == "/" else path) + "/" + child)
    return out


def _assert_same_tree(tree: DataTree, expected: Recorded) -> None:
    assert sorted(p for p, _ in tree.walk()) == sorted(expected)
    assert tree.nodes[""] is tree.nodes["/"]
    mismatches: list[Any] = []
    for path, (data, acl, stat) in expected.items():
        node = tree.nodes[path]
        got_acl = tuple((a.perms, a.scheme, a.id) for a in node.acl)
        if node.data != data or got_acl != acl or tuple(node.stat()) != stat:
            mismatches.append((path, (node.data, got_acl, tuple(node.stat())),
                               (data, acl, stat)))
    assert mismatches == []


def _linked_copy(src: Path, dst: Path, leave_out: set[str]) -> Path:
    """``dst`` with symlinks to every file of ``src`` but ``leave_out`` (no 64 MB copies
    of pre-allocated logs)."""
    dst.mkdir()
    for f in src.iterdir():
        if f.name not in leave_out:
            (dst / f.name).symlink_to(f)
    return dst


def _server_zxid(port: int) -> int:
    m = re.search(r"Zxid: (0x[0-9a-f]+)", four_letter_word(port, "srvr"))
    assert m is not None
    return int(m.group(1), 16)


@pytest.mark.parametrize("variant", ["sigterm", "sigkill-gz-logdir"])
def test_import_matches_what_zookeeper_served(tmp_path: Path, pool: ClientPool,
                                              variant: str) -> None:
    cfg: dict[str, object] = {"snapCount": 100, "forceSync": "no",
                              "znode.container.checkIntervalMs": 200}
    if "gz" in variant:
        cfg["snapshot.compression.method"] = "gz"
    if "logdir" in variant:
        cfg["dataLogDir"] = str(tmp_path / "zk" / "txnlog")
    srv = ApacheZooKeeperServer(tmp_path / "zk", cfg=cfg)
    try:
        srv.start()
        zk = pool.new(srv, timeout=SESSION_TIMEOUT)
        zk.add_auth("digest", "alice:secret")
        other = pool.new(srv, timeout=SESSION_TIMEOUT)
        closer = pool.new(srv, timeout=SESSION_TIMEOUT)
        closed_sid = closer.client_id[0]
        _workload(zk, other, closer)
        expected = _record(zk)
        last_zxid = _server_zxid(srv.port)
        open_sessions = {zk.client_id, other.client_id}
        other_sid = other.client_id[0]
        if "sigkill" in variant:
            srv.kill9()
        else:
            srv.stop()
    finally:
        srv.stop()

    data_dir = tmp_path / "zk" / "data"
    names = os.listdir(data_dir / "version-2")
    snaps = [n for n in names if n.startswith("snapshot.")]
    assert len(snaps) >= 3, names
    if "gz" in variant:
        assert all(n.endswith(".gz") for n in snaps), names
    log_dir = tmp_path / "zk" / "txnlog" if "logdir" in variant else None
    if log_dir is not None:
        assert not any(n.startswith("log.") for n in names)

    t0 = time.monotonic()
    result = read_zookeeper_datadir(data_dir, log_dir)
    elapsed = time.monotonic() - t0
    assert elapsed < 5, elapsed

    tree = result.tree
    assert result.last_zxid == last_zxid == tree.last_zxid
    assert result.snapshot is not None  # (it may or may not be followed by txns)
    assert result.skipped_snapshots == [] and result.torn_tail is None
    assert result.orphans_removed == []
    assert result.digests_checked > 0 and result.digest_mismatch_zxid is None, result

    _assert_same_tree(tree, expected)
    assert result.znode_count == len(expected)

    # Sessions: the two still open, with ZooKeeper's own passwords; not the closed one.
    assert closed_sid not in tree.sessions
    for sid, password in open_sessions:
        rec = tree.sessions[sid]
        assert rec.password == password
        assert rec.timeout == int(SESSION_TIMEOUT * 1000)
    assert tree.ephemerals == {other_sid: {f"/eph/o{i}" for i in range(5)}
                               | {p for p in expected if p.startswith("/eph/oseq-")}}
    assert tree.containers == {"/cont", "/fresh"}
    assert tree.ttls == {"/ttl/long", "/ttl/parent"} | {
        p for p in expected if p.startswith("/ttl/seq-")}
    assert tree.nodes["/ttl/long"].ttl == 3_600_000
    assert tree.nodes["/cont"].is_container

    # Replay from every older (fuzzy) snapshot too: ZooKeeper keeps all logs here, so
    # starting from any snapshot -- down to snapshot.0, i.e. replaying every
    # transaction of the workload -- must reach the same tree and pass every digest.
    snap_files = sorted((data_dir / "version-2").glob("snapshot.*"),
                        key=lambda p: int(p.name.split(".")[1], 16))
    for i, keep in enumerate(snap_files):
        work = _linked_copy(data_dir / "version-2", tmp_path / f"from-{keep.name}",
                            {p.name for p in snap_files[i + 1:]})
        older = read_zookeeper_datadir(work, log_dir)
        assert older.snapshot is not None and older.snapshot.name == keep.name
        if i == 0:
            assert older.txns_applied == last_zxid  # the whole history, from zxid 1
        assert older.last_zxid == last_zxid
        assert older.digest_mismatch_zxid is None and older.digests_checked > 0
        _assert_same_tree(older.tree, expected)
        assert older.tree.sessions == tree.sessions
        assert older.tree.ephemerals == tree.ephemerals
    assert snap_files[0].name.startswith("snapshot.0")

    # A torn newest snapshot (a crash while writing it) is skipped, as ZooKeeper does.
    newest = snap_files[-1]
    work = _linked_copy(data_dir / "version-2", tmp_path / "torn-snapshot", {newest.name})
    (work / newest.name).write_bytes(newest.read_bytes()[:-50])
    fallback = read_zookeeper_datadir(work, log_dir)
    assert [p.name for p, _ in fallback.skipped_snapshots] == [newest.name]
    assert "truncated" in fallback.skipped_snapshots[0][1] \
        or "gzip" in fallback.skipped_snapshots[0][1]
    assert fallback.snapshot is not None and fallback.snapshot.name == snap_files[-2].name
    _assert_same_tree(fallback.tree, expected)

    # End to end, as an operator migrates: the CLI imports the data directory, zkernel
    # serves it, and a stock client sees what ZooKeeper served -- and can resume a
    # session with the password ZooKeeper gave it.
    target = tmp_path / "zkernel-data"
    cmd = [sys.executable, "-m", "kernel", "import-zookeeper", str(data_dir),
           "--data-dir", str(target)]
    if log_dir is not None:
        cmd += ["--data-log-dir", str(log_dir)]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"imported {len(expected)} znodes" in out.stdout
    assert f"up to zxid {last_zxid:#x}" in out.stdout
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    with ZkernelServer(tmp_path / "zkernel", cfg={"dataDir": target}) as zsrv:
        zsrv.start()
        assert _server_zxid(zsrv.port) == last_zxid
        reader = pool.new(zsrv, timeout=SESSION_TIMEOUT)
        reader.add_auth("digest", "alice:secret")
        served = _record(reader)
        assert served == expected
        sid, password = next((s, p) for s, p in open_sessions if s == other_sid)
        resumed = KazooClient(hosts=zsrv.connect_string, client_id=(sid, password),
                              timeout=SESSION_TIMEOUT)
        resumed.start(timeout=15)
        try:
            assert resumed.client_id[0] == sid
            assert resumed.exists("/eph/o0").ephemeralOwner == sid
        finally:
            resumed.stop()
            resumed.close()
