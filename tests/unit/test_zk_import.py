"""The ZooKeeper data-directory importer on synthesized snapshots and logs.

The files are written here by a small writer of ZooKeeper's on-disk formats (FileSnap /
FileTxnLog layouts); tests/integration/test_zk_import_real.py checks the importer
against a real ZooKeeper's files.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

import pytest

from kernel.acl import OPEN_ACL_UNSAFE
from kernel.jute import Writer
from kernel.protocol import CONTAINER_EPHEMERAL_OWNER, TTL_MARKER, OpCode
from kernel.records import ACL
from kernel.tree import DataTree, Node
from plugins.storage_lmdb.zk_import import (
    LOG_MAGIC,
    SNAP_MAGIC,
    ImportResult,
    TxnLogFile,
    ZooKeeperDataError,
    read_snapshot,
    read_zookeeper_datadir,
    tree_digest,
    zookeeper_session_password,
)

T0 = 1_700_000_000_000
S1 = 0x100000ABCDEF0001
S2 = 0x100000ABCDEF0002
S3 = 0x100000ABCDEF0003
ALICE = (ACL(31, "digest", "alice:hash"), ACL(1, "world", "anyone"))

# -- a writer of ZooKeeper's formats ---------------------------------------------------


def _w_acl(w: Writer, a: ACL) -> None:
    w.int(a.perms).ustring(a.scheme).ustring(a.id)


def _seal(w: Writer) -> None:
    w.long(zlib.adler32(w.buf)).ustring("/")


def snapshot_bytes(nodes: dict[str, Node], sessions: dict[int, int] | None = None, *,
                   digest: tuple[int, int, int] | None = None, hex_digest: bool = False,
                   magic: int = SNAP_MAGIC, acl_ids: dict[str, int] | None = None) -> bytes:
    """A snapshot of ``nodes`` (keyed "/" for the root, ``Node.c`` = stored cversion);
    ``acl_ids`` overrides the ACL id written for some paths."""
    w = Writer().int(magic).int(2).long(0)
    sessions = sessions or {}
    w.int(len(sessions))
    for sid, timeout in sessions.items():
        w.long(sid).int(timeout)
    ids: dict[tuple[ACL, ...], int] = {}
    for n in nodes.values():
        ids.setdefault(n.acl, len(ids) + 1)  # ZooKeeper caches world:anyone too
    w.int(len(ids))
    for acl, i in ids.items():
        w.long(i).vector(acl, _w_acl)

    def visit(path: str) -> None:
        n = nodes[path]
        prefix = "" if path == "/" else path
        w.ustring(prefix).buffer(n.data).long((acl_ids or {}).get(path, ids[n.acl]))
        w.raw(struct.pack(">qqqqiiiqq", n.czxid, n.mzxid, n.ctime, n.mtime, n.version, n.c,
                          n.aversion, n.owner, n.pzxid))
        for child in sorted(n.children):
            visit(prefix + "/" + child)

    visit("/")
    w.ustring("/")
    _seal(w)
    if digest is not None:
        zxid, version, value = digest
        w.long(zxid).int(version)
        if hex_digest:
            w.ustring(f"{value:x}")
        else:
            w.long(value)
        _seal(w)
    return w.getvalue()


def entry(zxid: int, typ: int, body: bytes = b"", *, sid: int = S1, time: int | None = None,
          digest: int | None = None) -> bytes:
    w = Writer().long(sid).int(7).long(zxid).long(T0 + zxid if time is None else time)
    w.int(typ).raw(body)
    if digest is not None:
        w.int(2).long(digest)
    return w.getvalue()


def log_bytes(entries: Iterable[bytes], pad: int = 512, magic: int = LOG_MAGIC) -> bytes:
    w = Writer().int(magic).int(2).long(0)
    for e in entries:
        w.long(zlib.adler32(e)).buffer(e).raw(b"B")
    return w.getvalue() + bytes(pad)


def create(path: str, parent_cv: int, data: bytes | None = b"",
           acl: tuple[ACL, ...] = OPEN_ACL_UNSAFE, ephemeral: bool = False) -> bytes:
    return (Writer().ustring(path).buffer(data).vector(acl, _w_acl).bool(ephemeral)
            .int(parent_cv).getvalue())


def create_v0(path: str, data: bytes = b"") -> bytes:
    return Writer().ustring(path).buffer(data).vector(OPEN_ACL_UNSAFE, _w_acl).bool(False) \
        .getvalue()


def create_ttl(path: str, parent_cv: int, ttl: int, data: bytes = b"") -> bytes:
    return (Writer().ustring(path).buffer(data).vector(OPEN_ACL_UNSAFE, _w_acl).int(parent_cv)
            .long(ttl).getvalue())


def create_container(path: str, parent_cv: int, data: bytes = b"") -> bytes:
    return (Writer().ustring(path).buffer(data).vector(OPEN_ACL_UNSAFE, _w_acl)
            .int(parent_cv).getvalue())


def delete(path: str) -> bytes:
    return Writer().ustring(path).getvalue()


def set_data(path: str, data: bytes, version: int) -> bytes:
    return Writer().ustring(path).buffer(data).int(version).getvalue()


def set_acl(path: str, acl: tuple[ACL, ...], version: int) -> bytes:
    return Writer().ustring(path).vector(acl, _w_acl).int(version).getvalue()


def check(path: str, version: int) -> bytes:
    return Writer().ustring(path).int(version).getvalue()


def session(timeout: int) -> bytes:
    return Writer().int(timeout).getvalue()


def close(paths: list[str] | None) -> bytes:
    if paths is None:
        return b""
    return Writer().vector(paths, Writer.ustring).getvalue()


def error(code: int) -> bytes:
    return Writer().int(code).getvalue()


def multi(*ops: tuple[int, bytes]) -> bytes:
    w = Writer().int(len(ops))
    for typ, body in ops:
        w.int(typ).buffer(body)
    return w.getvalue()


# The history used by most tests: every transaction type, zxids 1..20.
HISTORY = [
    entry(1, OpCode.CREATE_SESSION, session(30000)),
    entry(2, OpCode.CREATE, create("/a", 1, b"A")),
    entry(3, OpCode.CREATE2, create("/a/b", 1, b"B")),
    entry(4, OpCode.CREATE, create("/a/e", 2, b"", ephemeral=True)),
    entry(5, OpCode.CREATE, create("/a/s-0000000002", 3, None)),
    entry(6, OpCode.SET_DATA, set_data("/a/b", b"B1", 1)),
    entry(7, OpCode.SET_ACL, set_acl("/a/b", ALICE, 1)),
    entry(8, OpCode.DELETE, delete("/a/s-0000000002")),
    entry(9, OpCode.MULTI, multi((OpCode.CREATE, create("/m", 2, b"M")),
                                 (OpCode.SET_DATA, set_data("/a", b"A1", 1)),
                                 (OpCode.DELETE, delete("/a/b")),
                                 (OpCode.CHECK, check("/a", 1)))),
    entry(10, OpCode.MULTI, multi((OpCode.CREATE, create("/n", 3)),
                                  (OpCode.ERROR, error(-101)),
                                  (OpCode.ERROR, error(-2)))),
    entry(11, OpCode.ERROR, error(-110)),
    entry(12, OpCode.CREATE_CONTAINER, create_container("/c", 3, b"C")),
    entry(13, OpCode.CREATE_TTL, create_ttl("/t", 4, 5000, b"T")),
    entry(14, OpCode.CREATE_SESSION, session(10000), sid=S2),
    entry(15, OpCode.CREATE, create("/a/f", 4, ephemeral=True), sid=S2),
    entry(16, OpCode.CLOSE_SESSION, close(["/a/f"]), sid=S2),
    entry(17, OpCode.CREATE, create_v0("/v", b"V")),
    entry(18, OpCode.CREATE_SESSION, session(4000), sid=S3),
    entry(19, OpCode.CREATE, create("/a/g", 5, ephemeral=True), sid=S3),
    entry(20, OpCode.CLOSE_SESSION, close(None), sid=S3),  # a pre-3.6 closeSession
]


def write_dir(root: Path, snaps: dict[str, bytes] | None = None,
              logs: dict[str, bytes] | None = None) -> Path:
    v2 = root / "version-2"
    v2.mkdir(parents=True, exist_ok=True)
    for name, data in (snaps or {}).items():
        (v2 / name).write_bytes(data)
    for name, data in (logs or {}).items():
        (v2 / name).write_bytes(data)
    return root


def stat(r: ImportResult, path: str) -> tuple[int, ...]:
    return tuple(r.tree.nodes[path].stat())


def check_history(r: ImportResult) -> None:
    """The state after HISTORY, worked out by hand from ZooKeeper's rules."""
    nodes = r.tree.nodes
    assert nodes[""] is nodes["/"]
    assert sorted(p for p, _ in r.tree.walk()) == [
        "/", "/a", "/a/e", "/c", "/m", "/t", "/v", "/zookeeper", "/zookeeper/config",
        "/zookeeper/quota"]
    # Root: 5 creates (/a /m /c /t /v, the V0 create computing its own counter), 6
    # children (zookeeper was never created) -> cversion 2*5-6; pzxid of the last create.
    assert stat(r, "/") == (0, 0, 0, 0, 0, 4, 0, 0, 0, 6, 17)
    # /a: creates of b e s f g; only e left; last child change: the close of S3 (20).
    assert stat(r, "/a") == (2, 9, T0 + 2, T0 + 9, 1, 9, 0, 0, 2, 1, 20)
    assert nodes["/a"].c == 5 and nodes["/a"].data == b"A1"
    assert stat(r, "/a/e") == (4, 4, T0 + 4, T0 + 4, 0, 0, 0, S1, 0, 0, 4)
    assert stat(r, "/m") == (9, 9, T0 + 9, T0 + 9, 0, 0, 0, 0, 1, 0, 9)
    assert stat(r, "/c")[7] == 0 and nodes["/c"].owner == CONTAINER_EPHEMERAL_OWNER
    assert nodes["/t"].owner == TTL_MARKER | 5000 and nodes["/t"].ttl == 5000
    assert stat(r, "/t")[7] == 0
    assert stat(r, "/v") == (17, 17, T0 + 17, T0 + 17, 0, 0, 0, 0, 1, 0, 17)
    assert nodes["/zookeeper"].cversion == -2 and nodes["/zookeeper/config"].aversion == -1
    assert r.tree.ephemerals == {S1: {"/a/e"}}
    assert r.tree.containers == {"/c"} and r.tree.ttls == {"/t"}
    assert set(r.tree.sessions) == {S1}
    assert r.tree.sessions[S1].timeout == 30000
    assert r.tree.sessions[S1].password == zookeeper_session_password(S1)
    assert r.last_zxid == r.tree.last_zxid == 20
    assert r.session_count == 1 and r.znode_count == 10


# -- round trips ---------------------------------------------------------------------


def test_logs_only_from_zxid_1(tmp_path: Path) -> None:
    d = write_dir(tmp_path, logs={"log.1": log_bytes(HISTORY)})
    r = read_zookeeper_datadir(d)
    check_history(r)
    assert r.snapshot is None and r.txns_applied == 20 and r.txns_skipped == 0
    assert [p.name for p in r.logs] == ["log.1"]


def test_snapshot_round_trip(tmp_path: Path) -> None:
    first = read_zookeeper_datadir(write_dir(tmp_path / "a", logs={"log.1": log_bytes(HISTORY)}))
    snap = snapshot_bytes(dict(first.tree.walk()), {S1: 30000})
    r = read_zookeeper_datadir(write_dir(tmp_path / "b", {"snapshot.14": snap}))
    check_history(r)
    assert r.snapshot is not None and r.snapshot.name == "snapshot.14"
    assert r.txns_applied == 0 and r.logs == []
    assert any("dataLogDir" in w for w in r.warnings)
    for path, node in first.tree.walk():
        got = r.tree.nodes[path]
        assert (got.data, got.acl, got.stat(), got.c, got.owner) == \
            (node.data, node.acl, node.stat(), node.c, node.owner)


def test_snapshot_plus_logs(tmp_path: Path) -> None:
    """Replay starts after the snapshot's zxid, in the log that holds it."""
    part = read_zookeeper_datadir(write_dir(tmp_path / "a",
                                            logs={"log.1": log_bytes(HISTORY[:10])}))
    snap = snapshot_bytes(dict(part.tree.walk()), {S1: 30000})
    d = write_dir(tmp_path / "b", {"snapshot.a": snap},
                  {"log.1": log_bytes(HISTORY[:12]), "log.d": log_bytes(HISTORY[12:])})
    r = read_zookeeper_datadir(d)
    check_history(r)
    assert r.snapshot_zxid == 10 and r.txns_skipped == 10 and r.txns_applied == 10
    assert [p.name for p in r.logs] == ["log.1", "log.d"]


def test_older_logs_are_not_read(tmp_path: Path) -> None:
    part = read_zookeeper_datadir(write_dir(tmp_path / "a",
                                            logs={"log.1": log_bytes(HISTORY[:12])}))
    snap = snapshot_bytes(dict(part.tree.walk()), {S1: 30000})
    d = write_dir(tmp_path / "b", {"snapshot.c": snap},
                  {"log.1": b"garbage, never opened", "log.b": log_bytes(HISTORY[10:12]),
                   "log.d": log_bytes(HISTORY[12:])})
    r = read_zookeeper_datadir(d)
    check_history(r)
    assert [p.name for p in r.logs] == ["log.b", "log.d"]
    assert r.txns_skipped == 2


def test_gzip_snapshot_and_paths(tmp_path: Path) -> None:
    part = read_zookeeper_datadir(write_dir(tmp_path / "a",
                                            logs={"log.1": log_bytes(HISTORY[:10])}))
    snap = gzip.compress(snapshot_bytes(dict(part.tree.walk()), {S1: 30000}))
    data = tmp_path / "data"
    logs = tmp_path / "logs"
    write_dir(data, {"snapshot.a.gz": snap, "snapshot.5.tmp": b"ignored"})
    write_dir(logs, logs={"log.1": log_bytes(HISTORY)})
    for r in (read_zookeeper_datadir(data, logs),
              read_zookeeper_datadir(data / "version-2", logs / "version-2")):
        check_history(r)
        assert r.snapshot is not None and r.snapshot.name == "snapshot.a.gz"
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"tickTime=2000\n# comment\ndataDir={data}\ndataLogDir=logs\n")
    check_history(read_zookeeper_datadir(cfg))


def test_snappy_is_refused(tmp_path: Path) -> None:
    d = write_dir(tmp_path, {"snapshot.0": snapshot_bytes(dict(DataTree().walk())),
                             "snapshot.5.snappy": b"\x82SNAPPY\x00"})
    with pytest.raises(ZooKeeperDataError, match="snappy") as ei:
        read_zookeeper_datadir(d)
    assert ei.value.file is not None and ei.value.file.name == "snapshot.5.snappy"


def test_session_password_matches_java() -> None:
    # Values printed by java.util.Random(id ^ 0xB3415C00L).nextBytes(new byte[16]).
    vectors = {
        0x100000ABCDEF0001: "76b39f6d54c3bc4f6ebe2fdff1198ecf",
        0: "f22acd4a97e69d6d20a49bb638eadb38",
        0x7F00000000000001: "054cc74a37327db215e702e20c73f005",
        -0x0200000000000001: "20f62cb5648dc2d771471c8a2486a9ee",
        0x01839F2A5B6C0000: "76c0af50cb271ccf441fe2db8cb0b027",
    }
    for sid, hexpw in vectors.items():
        assert zookeeper_session_password(sid).hex() == hexpw


# -- fuzzy snapshots: ZooKeeper's replay rules ---------------------------------------------


def _base(*paths: str) -> dict[str, Node]:
    nodes = dict(DataTree().walk())
    for p in paths:
        parent, name = p.rsplit("/", 1)
        nodes[p] = Node(b"", OPEN_ACL_UNSAFE, 1, T0, 0)
        nodes[parent or "/"].children.add(name)
        nodes[parent or "/"].c += 1
    return nodes


def test_fuzzy_snapshot_replay(tmp_path: Path) -> None:
    # snapshot.5 already holds the effects of zxid 6 (create /f/x) and 7 (delete /f/y).
    nodes = _base("/f", "/f/x", "/g", "/g/z")
    nodes["/f"].c = 2
    nodes["/f"].pzxid = 7
    nodes["/g"].c = 3
    nodes["/g/z"].owner = S2  # re-created by S2 inside the fuzzy window
    log = [
        entry(6, OpCode.CREATE, create("/f/x", 1)),        # exists: nothing moves back
        entry(7, OpCode.DELETE, delete("/f/y")),           # already gone
        entry(8, OpCode.CREATE, create("/g/z", 5)),        # exists: parent repaired
        entry(9, OpCode.DELETE, delete("/f/gone")),        # gone: parent pzxid moves
        entry(10, OpCode.CREATE2, create("/g/z", 9)),      # create2: no repair
        entry(11, OpCode.SET_DATA, set_data("/nothere", b"", 1)),
    ]
    d = write_dir(tmp_path, {"snapshot.5": snapshot_bytes(nodes, {S1: 5000, S2: 5000})},
                  {"log.6": log_bytes(log)})
    r = read_zookeeper_datadir(d)
    f, g = r.tree.nodes["/f"], r.tree.nodes["/g"]
    assert (f.c, f.pzxid, sorted(f.children)) == (2, 9, ["x"])
    assert (g.c, g.pzxid, sorted(g.children)) == (5, 8, ["z"])
    assert r.tree.nodes["/g/z"].owner == S2 and r.tree.ephemerals == {S2: {"/g/z"}}
    assert r.last_zxid == 11 and r.txns_applied == 6


def test_orphan_ephemerals_are_removed(tmp_path: Path) -> None:
    nodes = _base("/p", "/p/mine", "/p/orphan")
    nodes["/p/mine"].owner = S1
    nodes["/p/orphan"].owner = S3  # its session is not in the snapshot
    d = write_dir(tmp_path, {"snapshot.9": snapshot_bytes(nodes, {S1: 5000})})
    r = read_zookeeper_datadir(d)
    assert r.orphans_removed == ["/p/orphan"]
    assert sorted(r.tree.nodes["/p"].children) == ["mine"]
    assert r.tree.nodes["/p"].pzxid == 9
    assert r.tree.ephemerals == {S1: {"/p/mine"}}


def test_fuzzy_snapshot_with_acl_newer_than_its_cache(tmp_path: Path) -> None:
    """ZooKeeper writes the ACL cache before the nodes: a create or setACL applied in
    between leaves a node with an ACL id the snapshot does not define (seen with a real
    ZooKeeper 3.8); replaying that transaction must resolve it."""
    def snap(dangling: list[str]) -> bytes:
        nodes = _base("/p", "/p/created", "/p/acl")
        nodes["/p/created"].czxid = 6
        return snapshot_bytes(nodes, {S1: 5000}, acl_ids={p: 9 for p in dangling})

    log = [entry(6, OpCode.CREATE, create("/p/created", 4, acl=ALICE)),
           entry(7, OpCode.SET_ACL, set_acl("/p/acl", ALICE, 1))]
    d = write_dir(tmp_path / "ok", {"snapshot.5": snap(["/p/created", "/p/acl"])},
                  {"log.1": log_bytes(log)})
    r = read_zookeeper_datadir(d)
    assert r.tree.nodes["/p/created"].acl == ALICE and r.tree.nodes["/p/acl"].acl == ALICE
    assert r.tree.nodes["/p/acl"].aversion == 1
    d = write_dir(tmp_path / "bad", {"snapshot.5": snap(["/p/acl"])},
                  {"log.1": log_bytes(log[:1])})
    with pytest.raises(ZooKeeperDataError, match="'/p/acl' refers to ACL id 9") as ei:
        read_zookeeper_datadir(d)
    assert ei.value.file is not None and ei.value.file.name == "snapshot.5"
    snapshot = read_snapshot(d / "version-2" / "snapshot.5")
    assert set(snapshot.dangling_acls) == {"/p/acl"}
    assert snapshot.nodes["/p/acl"].acl[0].perms == 0


# -- digests ------------------------------------------------------------------------------


def _digests_after_each_txn(tmp_path: Path) -> list[int]:
    out = []
    for k in range(1, len(HISTORY) + 1):
        d = write_dir(tmp_path / f"d{k}", logs={"log.1": log_bytes(HISTORY[:k])})
        out.append(tree_digest(dict(read_zookeeper_datadir(d).tree.walk())))
    return out


def _with_digests(digests: list[int]) -> list[bytes]:
    """HISTORY with a TxnDigest appended to every transaction."""
    out = []
    for e, dg in zip(HISTORY, digests, strict=True):
        out.append(e + Writer().int(2).long(dg).getvalue())
    return out


def test_incremental_digest_matches_recomputation(tmp_path: Path) -> None:
    digests = _digests_after_each_txn(tmp_path)
    assert len(set(digests)) > 10
    d = write_dir(tmp_path / "all", logs={"log.1": log_bytes(_with_digests(digests))})
    r = read_zookeeper_datadir(d, strict_digest=True)
    check_history(r)
    assert r.digests_checked == 20 and r.digest_mismatch_zxid is None


def test_digest_mismatch(tmp_path: Path) -> None:
    digests = _digests_after_each_txn(tmp_path)
    digests[14] += 1
    d = write_dir(tmp_path / "bad", logs={"log.1": log_bytes(_with_digests(digests))})
    r = read_zookeeper_datadir(d)
    check_history(r)
    assert r.digest_mismatch_zxid == 15
    with pytest.raises(ZooKeeperDataError, match="digest after zxid 0xf") as ei:
        read_zookeeper_datadir(d, strict_digest=True)
    assert ei.value.file is not None and ei.value.file.name == "log.1"


def test_snapshot_digest_record(tmp_path: Path) -> None:
    nodes = dict(read_zookeeper_datadir(write_dir(tmp_path / "a", logs={
        "log.1": log_bytes(HISTORY)})).tree.walk())
    good = tree_digest(nodes)
    for i, (dg, hex_digest, mismatch) in enumerate([(good, False, None), (good + 1, False, 20),
                                                    (good & (2**63 - 1), True, None)]):
        snap = snapshot_bytes(nodes, {S1: 30000}, digest=(20, 2 if not hex_digest else 1, dg),
                              hex_digest=hex_digest)
        r = read_zookeeper_datadir(write_dir(tmp_path / f"s{i}", {"snapshot.14": snap}))
        check_history(r)
        assert r.digest_mismatch_zxid == mismatch
        assert r.digests_checked == (0 if hex_digest else 1)
    # A fuzzy snapshot's digest is for a later zxid: checked when replay reaches it.
    snap = snapshot_bytes(nodes, {S1: 30000}, digest=(20, 2, good))
    r = read_zookeeper_datadir(write_dir(tmp_path / "fuzzy", {"snapshot.12": snap},
                                         {"log.1": log_bytes(HISTORY)}))
    assert r.digests_checked == 1 and r.digest_mismatch_zxid is None


def test_snapshot_digest_of_a_fuzzy_snapshot(tmp_path: Path) -> None:
    """ZooKeeper writes the digest of the last *completed* transaction (12 here) while
    the next one (13) may already be in the snapshot: no mismatch may be reported as
    long as transaction 13 follows (its own digest is checked instead)."""
    digests = _digests_after_each_txn(tmp_path)
    after13 = dict(read_zookeeper_datadir(write_dir(tmp_path / "13", logs={
        "log.1": log_bytes(HISTORY[:13])})).tree.walk())
    snap = snapshot_bytes(after13, {S1: 30000}, digest=(12, 2, digests[11]))
    d = write_dir(tmp_path / "fuzzy", {"snapshot.c": snap},
                  {"log.1": log_bytes(_with_digests(digests))})
    r = read_zookeeper_datadir(d, strict_digest=True)
    check_history(r)
    assert r.digests_checked == 8 and r.digest_mismatch_zxid is None
    # With nothing after it, the snapshot's digest is all there is to check.
    d = write_dir(tmp_path / "alone", {"snapshot.c": snap})
    assert read_zookeeper_datadir(d).digest_mismatch_zxid == 12


# -- refusing bad input ------------------------------------------------------------------


def _history_dir(tmp_path: Path, log: bytes | None = None) -> Path:
    return write_dir(tmp_path, logs={"log.1": log or log_bytes(HISTORY)})


def _entry_offsets(path: Path) -> list[int]:
    return [e.offset for e in TxnLogFile(path).entries()]


def test_log_crc_mismatch(tmp_path: Path) -> None:
    d = _history_dir(tmp_path)
    log = d / "version-2" / "log.1"
    offsets = _entry_offsets(log)
    raw = bytearray(log.read_bytes())
    raw[offsets[6] + 12 + 30] ^= 0x01  # a byte of the 7th transaction's body
    log.write_bytes(bytes(raw))
    with pytest.raises(ZooKeeperDataError, match="CRC mismatch") as ei:
        read_zookeeper_datadir(d)
    assert ei.value.file == log and ei.value.offset == offsets[6]
    assert f"log.1 at offset {offsets[6]}" in str(ei.value)


def test_crc_mismatch_in_last_entry_is_not_a_torn_write(tmp_path: Path) -> None:
    d = _history_dir(tmp_path)
    log = d / "version-2" / "log.1"
    offsets = _entry_offsets(log)
    raw = bytearray(log.read_bytes())
    raw[offsets[-1] + 12 + 5] ^= 0x40
    log.write_bytes(bytes(raw))
    with pytest.raises(ZooKeeperDataError, match="CRC mismatch"):
        read_zookeeper_datadir(d)


@pytest.mark.parametrize("how", ["cut", "eor", "cut-prefix"])
def test_torn_tail_of_newest_log(tmp_path: Path, how: str) -> None:
    extra = entry(21, OpCode.SET_DATA, set_data("/m", b"lost", 1))
    start = len(log_bytes(HISTORY, pad=0))  # where the last entry begins
    raw = log_bytes([*HISTORY, extra], pad=0)
    if how == "cut":
        raw = raw[:-10]
    elif how == "cut-prefix":
        raw = raw[:start + 6]  # inside the crc/length of the last entry
    else:
        raw = raw[:-1] + b"\0" + bytes(100)  # no end-of-record byte, then padding
    d = _history_dir(tmp_path, raw)
    r = read_zookeeper_datadir(d)
    check_history(r)
    assert r.torn_tail == (d / "version-2" / "log.1", start)
    assert any("partial last transaction" in w for w in r.warnings)
    with pytest.raises(ZooKeeperDataError, match="partial transaction"):
        read_zookeeper_datadir(d, strict=True)


def test_empty_newest_log(tmp_path: Path) -> None:
    d = write_dir(tmp_path, logs={"log.1": log_bytes(HISTORY), "log.15": b""})
    r = read_zookeeper_datadir(d)
    check_history(r)
    assert r.torn_tail == (d / "version-2" / "log.15", 0)
    d = write_dir(tmp_path / "older", logs={"log.1": log_bytes(HISTORY[:3]), "log.4": b"ZK",
                                            "log.5": log_bytes(HISTORY[4:])})
    with pytest.raises(ZooKeeperDataError, match="log.4 at offset 0: partial transaction"):
        read_zookeeper_datadir(d)


def test_torn_entry_in_older_log(tmp_path: Path) -> None:
    d = write_dir(tmp_path, logs={"log.1": log_bytes(HISTORY[:10], pad=0)[:-7],
                                  "log.a": log_bytes(HISTORY[9:])})
    with pytest.raises(ZooKeeperDataError, match="partial transaction.*newest log") as ei:
        read_zookeeper_datadir(d)
    assert ei.value.file is not None and ei.value.file.name == "log.1"


def test_bad_magic(tmp_path: Path) -> None:
    d = _history_dir(tmp_path / "log", log_bytes(HISTORY, magic=0x12345678))
    with pytest.raises(ZooKeeperDataError, match="bad magic.*not a ZooKeeper transaction log"
                       ) as ei:
        read_zookeeper_datadir(d)
    assert ei.value.offset == 0
    d = write_dir(tmp_path / "snap", {"snapshot.0": snapshot_bytes(dict(DataTree().walk()),
                                                                   magic=LOG_MAGIC)})
    with pytest.raises(ZooKeeperDataError, match="bad magic.*not a ZooKeeper snapshot"):
        read_zookeeper_datadir(d)
    with pytest.raises(ZooKeeperDataError, match="snapshot.0 at offset 0: bad magic"):
        read_snapshot(d / "version-2" / "snapshot.0")


def test_truncated_snapshot(tmp_path: Path) -> None:
    snap = snapshot_bytes(_base("/a", "/a/b"), {S1: 1000})
    for cut in (10, 40, len(snap) // 2, len(snap) - 3):
        d = write_dir(tmp_path / str(cut), {"snapshot.3": snap[:cut]})
        with pytest.raises(ZooKeeperDataError, match="no valid snapshot.*snapshot.3.*truncated"):
            read_zookeeper_datadir(d)
        with pytest.raises(ZooKeeperDataError, match="truncated") as ei:
            read_snapshot(d / "version-2" / "snapshot.3")
        assert ei.value.offset is not None
    d = write_dir(tmp_path / "gz", {"snapshot.3.gz": gzip.compress(snap)[:-8]})
    with pytest.raises(ZooKeeperDataError, match="gzip"):
        read_zookeeper_datadir(d)


def test_snapshot_checksum(tmp_path: Path) -> None:
    nodes = _base("/a")
    nodes["/a"].data = b"some data here"
    snap = bytearray(snapshot_bytes(nodes))
    i = snap.index(b"some data here")
    snap[i] ^= 0x20
    d = write_dir(tmp_path, {"snapshot.1": bytes(snap)})
    with pytest.raises(ZooKeeperDataError, match="checksum mismatch"):
        read_zookeeper_datadir(d)
    good = snapshot_bytes(nodes, digest=(1, 2, 12345))
    bad = bytearray(good)
    bad[-20] ^= 1  # inside the digest record, covered by the second seal
    d = write_dir(tmp_path / "digest", {"snapshot.1": bytes(bad)})
    with pytest.raises(ZooKeeperDataError, match="checksum mismatch after the digest"):
        read_zookeeper_datadir(d)
    d = write_dir(tmp_path / "trailing", {"snapshot.1": good + b"\0\0"})
    with pytest.raises(ZooKeeperDataError, match="unexpected bytes"):
        read_zookeeper_datadir(d)


def test_invalid_newer_snapshot_falls_back(tmp_path: Path) -> None:
    part = read_zookeeper_datadir(write_dir(tmp_path / "a",
                                            logs={"log.1": log_bytes(HISTORY[:10])}))
    good = snapshot_bytes(dict(part.tree.walk()), {S1: 30000})
    d = write_dir(tmp_path / "b", {"snapshot.a": good, "snapshot.10": good[:-30]},
                  {"log.1": log_bytes(HISTORY)})
    r = read_zookeeper_datadir(d)
    check_history(r)
    assert r.snapshot is not None and r.snapshot.name == "snapshot.a"
    assert [p.name for p, _ in r.skipped_snapshots] == ["snapshot.10"]
    with pytest.raises(ZooKeeperDataError, match="snapshot.10"):
        read_zookeeper_datadir(d, strict=True)


def test_gaps_and_order(tmp_path: Path) -> None:
    part = read_zookeeper_datadir(write_dir(tmp_path / "a",
                                            logs={"log.1": log_bytes(HISTORY[:10])}))
    snap = snapshot_bytes(dict(part.tree.walk()), {S1: 30000})
    cases = {
        "snapshot-gap": ({"log.c": log_bytes(HISTORY[11:])}, "gap: the snapshot"),
        "log-gap": ({"log.1": log_bytes(HISTORY[:12]), "log.e": log_bytes(HISTORY[13:])},
                    "gap: transaction 0xe follows 0xc"),
        "duplicate": ({"log.1": log_bytes([*HISTORY[:12], HISTORY[11], *HISTORY[12:]])},
                      "does not follow"),
    }
    for name, (logs, message) in cases.items():
        d = write_dir(tmp_path / name, {"snapshot.a": snap}, logs)
        with pytest.raises(ZooKeeperDataError, match=message):
            read_zookeeper_datadir(d)


def test_new_epoch_is_not_a_gap(tmp_path: Path) -> None:
    e1 = (1 << 32) | 1
    e2 = (2 << 32) | 1
    log = [entry(e1, OpCode.CREATE, create("/x", 1)),
           entry(e1 + 1, OpCode.CREATE, create("/y", 2)),
           entry(e2, OpCode.CREATE, create("/z", 3))]
    r = read_zookeeper_datadir(write_dir(tmp_path, logs={f"log.{e1:x}": log_bytes(log)}))
    assert r.last_zxid == e2 and r.tree.nodes["/"].c == 3
    bad = [*log, entry(e2 + (1 << 32) + 5, OpCode.CREATE, create("/w", 4))]
    with pytest.raises(ZooKeeperDataError, match="gap"):
        read_zookeeper_datadir(write_dir(tmp_path / "bad", logs={f"log.{e1:x}": log_bytes(bad)}))


def test_missing_snapshot(tmp_path: Path) -> None:
    d = write_dir(tmp_path, logs={"log.5": log_bytes(HISTORY[4:])})
    with pytest.raises(ZooKeeperDataError, match="no snapshot.*0x5.*missing"):
        read_zookeeper_datadir(d)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ZooKeeperDataError, match="no ZooKeeper snapshot or transaction log"):
        read_zookeeper_datadir(tmp_path / "empty")
    with pytest.raises(ZooKeeperDataError, match="no such directory"):
        read_zookeeper_datadir(tmp_path / "nowhere")


def test_malformed_content(tmp_path: Path) -> None:
    cases = {
        "type": [entry(1, 99, b"")],
        "body": [entry(1, OpCode.SET_DATA, set_data("/x", b"", 1) + b"\0\0\0")],
        "path": [entry(1, OpCode.CREATE, create("relative", 1))],
        "multi": [entry(1, OpCode.MULTI, multi((OpCode.SET_ACL, set_acl("/", ALICE, 1))))],
    }
    for name, log in cases.items():
        d = write_dir(tmp_path / name, logs={"log.1": log_bytes(log)})
        with pytest.raises(ZooKeeperDataError, match="log.1 at offset 16"):
            read_zookeeper_datadir(d)


def test_snapshot_structure_errors(tmp_path: Path) -> None:
    def snap_with(paths: list[str], acl_id: int = 1) -> bytes:
        w = Writer().int(SNAP_MAGIC).int(2).long(0).int(0)
        w.int(1).long(1).vector(OPEN_ACL_UNSAFE, _w_acl)
        for p in paths:
            w.ustring(p).buffer(b"").long(acl_id).raw(bytes(60))
        w.ustring("/")
        _seal(w)
        return w.getvalue()

    cases = {
        "precedes its parent": snap_with(["", "/a/b"]),
        "duplicate node": snap_with(["", "/a", "/a"]),
        "ACL id 7, which is neither in the snapshot's ACL cache": snap_with(["", "/a"],
                                                                           acl_id=7),
        "no root": snap_with([]),
    }
    for i, (message, data) in enumerate(cases.items()):
        d = write_dir(tmp_path / str(i), {"snapshot.1": data})
        with pytest.raises(ZooKeeperDataError, match=message):
            read_zookeeper_datadir(d)
    assert read_snapshot(write_dir(tmp_path / "ok", {"snapshot.1": snap_with(["", "/a"])})
                         / "version-2" / "snapshot.1").nodes["/"].children == {"a"}
