"""Snapshots (kernel/snapshot.py), what a leader sends a learner too far behind: the
decoded tree is the encoded one in every stored field, index and counter, and keeps
working as a state machine; bytes that are not a snapshot are a ProtocolError."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings

from kernel.digest import compute_digest
from kernel.errors import ProtocolError
from kernel.jute import Writer
from kernel.protocol import CONTAINER_EPHEMERAL_OWNER, OpCode
from kernel.records import ACL
from kernel.snapshot import decode_snapshot, encode_snapshot
from kernel.tree import DataTree, ttl_owner
from kernel.txn import CreateSessionTxn, CreateTxn, SetDataTxn, Txn
from tests.unit.test_digest import Driver, steps

Step = tuple[int, int, str, bytes | None, int]
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
SID = 0x200000000000001
NEG_SID = (0xF0 << 56) - (1 << 64) + 7  # a server id >= 128: a negative session id


def state(tree: DataTree) -> dict[str, object]:
    """Everything a snapshot must carry (the digest is compared on its own)."""
    nodes = {}
    for path, n in tree.nodes.items():
        nodes[path] = (n.stat(), n.stat_bytes(), n.data, n.acl, sorted(n.children), n.owner,
                       n.c, n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime, n.version,
                       n.aversion, n.cversion)
    return {
        "nodes": nodes,
        "ephemerals": {s: sorted(p) for s, p in tree.ephemerals.items()},
        "containers": sorted(tree.containers),
        "ttls": sorted(tree.ttls),
        "sessions": {s: (r.timeout, r.password) for s, r in tree.sessions.items()},
        "data_size": tree.approximate_data_size(),
        "node_count": tree.node_count(),
        "last_zxid": tree.last_zxid,
        "walk": sorted(p for p, _ in tree.walk()),
        "descendants": tree.count_descendants("/"),
        "reapable": tree.reapable(2_000_000_000_000, 1),
    }


def assert_same(a: DataTree, b: DataTree) -> None:
    sa, sb = state(a), state(b)
    for key in sa:
        if key == "nodes":
            assert sa["nodes"].keys() == sb["nodes"].keys()  # type: ignore[attr-defined]
            for p in sa["nodes"]:  # type: ignore[attr-defined]
                assert sa["nodes"][p] == sb["nodes"][p], p  # type: ignore[index]
        else:
            assert sa[key] == sb[key], key
    assert b.nodes[""] is b.nodes["/"]  # the root alias is the root itself


def driven(seq: list[Step]) -> Driver:
    d = Driver()
    for s in seq:
        d.step(s)
    return d


def seeded_steps(seed: int, n: int) -> list[Step]:
    rng = random.Random(seed)
    return [(rng.randrange(12), rng.randrange(1001), rng.choice(Driver.NAMES),
             rng.choice([None, b"", rng.randbytes(rng.randrange(1, 20))]), rng.randrange(4))
            for _ in range(n)]


def rich_tree() -> DataTree:
    """Every owner kind, sessions with positive and negative ids, data None / empty."""
    tree = DataTree()
    z = 0

    def apply(sid: int, op: int, body: object) -> None:
        nonlocal z
        z += 1
        tree.apply(Txn((5 << 32) + z, sid, z, 1_700_000_000_000 + z, op, body))  # type: ignore[arg-type]

    acl = (ACL(31, "world", "anyone"), ACL(1, "digest", "u:x"))
    apply(SID, OpCode.CREATE_SESSION, CreateSessionTxn(30000, b"p" * 16))
    apply(NEG_SID, OpCode.CREATE_SESSION, CreateSessionTxn(4000, b"\xff" * 16))
    apply(0, OpCode.CREATE, CreateTxn("/a", b"data", acl, 0, 1))
    apply(0, OpCode.CREATE, CreateTxn("/a/n", None, acl, 0, 1))
    apply(0, OpCode.CREATE, CreateTxn("/a/empty", b"", acl, 0, 2))
    apply(SID, OpCode.CREATE, CreateTxn("/a/e1", b"x", acl, SID, 3))
    apply(NEG_SID, OpCode.CREATE, CreateTxn("/e2", b"y", acl, NEG_SID, 2))
    apply(0, OpCode.CREATE_CONTAINER, CreateTxn("/c", b"", acl, CONTAINER_EPHEMERAL_OWNER, 3))
    apply(0, OpCode.CREATE_TTL, CreateTxn("/t", b"t", acl, ttl_owner(5000), 4))
    apply(0, OpCode.CREATE, CreateTxn("/\u00e4\u00f6", b"u", acl, 0, 5))
    apply(0, OpCode.SET_DATA, SetDataTxn("/", b"root data", 1))
    apply(0, OpCode.SET_DATA, SetDataTxn("/zookeeper/config", b"server.1=x", 1))
    return tree


# -------------------------------------------------------------------------- round trips


def test_fresh_tree_round_trips() -> None:
    tree = DataTree()
    out = decode_snapshot(encode_snapshot(tree))
    assert_same(tree, out)
    assert out.digest == tree.digest


def test_rich_tree_round_trips() -> None:
    tree = rich_tree()
    out = decode_snapshot(encode_snapshot(tree))
    assert_same(tree, out)
    assert out.ephemerals == {SID: {"/a/e1"}, NEG_SID: {"/e2"}}
    assert out.containers == {"/c"} and out.ttls == {"/t"}
    assert out.nodes["/a/n"].data is None and out.nodes["/a/empty"].data == b""
    assert out.nodes["/t"].ttl == 5000 and out.nodes["/c"].is_container
    assert out.nodes["/e2"].ephemeral_owner == NEG_SID
    assert encode_snapshot(out) == encode_snapshot(tree)


@SETTINGS
@given(steps)
def test_round_trip_after_random_operations(seq: list[Step]) -> None:
    tree = driven(seq).tree
    blob = encode_snapshot(tree)
    out = decode_snapshot(blob)
    assert_same(tree, out)
    assert encode_snapshot(out) == blob  # canonical


@SETTINGS
@given(steps, steps)
def test_decoded_tree_keeps_working(before: list[Step], after: list[Step]) -> None:
    """The learner applies the proposals after the snapshot to the decoded tree: it
    must reach the state the leader reaches (indexes, sizes, counters)."""
    leader = driven(before)
    learner = Driver()
    learner.tree = decode_snapshot(encode_snapshot(leader.tree))
    learner.zxid, learner.sessions = leader.zxid, set(leader.sessions)
    for s in after:
        leader.step(s)
        learner.step(s)
    assert_same(leader.tree, learner.tree)


@pytest.mark.parametrize("seed", range(8))
def test_digest_of_a_fresh_tree_after_a_snapshot_of_it(seed: int) -> None:
    """Whatever the snapshot's own digest, recomputing gives the leader's."""
    tree = driven(seeded_steps(seed, 80)).tree
    out = decode_snapshot(encode_snapshot(tree))
    assert out.recompute_digest() == tree.digest == compute_digest(tree)


@pytest.mark.parametrize("seed", range(4))
def test_decoded_tree_has_the_digest(seed: int) -> None:
    """A learner installed from a SNAP reports the leader's digest (MemoryStorage
    serves the decoded tree as it is)."""
    tree = driven(seeded_steps(seed, 80)).tree
    out = decode_snapshot(encode_snapshot(tree))
    assert out.digest == tree.digest == compute_digest(out)


def test_digest_keeps_matching_after_a_snapshot() -> None:
    """The learner's incremental digest after a SNAP follows the leader's."""
    seq = seeded_steps(11, 120)
    leader = driven(seq[:60])
    learner = Driver()
    learner.tree = decode_snapshot(encode_snapshot(leader.tree))
    learner.zxid, learner.sessions = leader.zxid, set(leader.sessions)
    for s in seq[60:]:
        leader.step(s)
        learner.step(s)
    assert learner.tree.digest == leader.tree.digest == compute_digest(learner.tree)


def test_a_tree_without_system_nodes_round_trips() -> None:
    """A snapshot holds whatever nodes the leader has, /zookeeper included or not."""
    tree = rich_tree()
    for p in ("/zookeeper/config", "/zookeeper/quota", "/zookeeper"):
        del tree.nodes[p]
    tree.nodes["/"].children.discard("zookeeper")
    out = decode_snapshot(encode_snapshot(tree))
    assert "/zookeeper" not in out.nodes
    assert sorted(out.nodes["/"].children) == sorted(tree.nodes["/"].children)


def test_snapshot_is_taken_at_last_zxid() -> None:
    tree = rich_tree()
    blob = encode_snapshot(tree)
    assert struct.unpack(">q", blob[4:12])[0] == tree.last_zxid == (5 << 32) + 12
    assert decode_snapshot(blob).last_zxid == tree.last_zxid


# -------------------------------------------------------------------------- malformed


def malformed(blob: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_snapshot(blob)


def header(n_nodes: int, zxid: int = 7) -> Writer:
    return Writer().int(0x7A6B736E).long(zxid).int(n_nodes)


def node(w: Writer, path: str) -> Writer:
    w.ustring(path).buffer(b"").int(1).int(31).ustring("world").ustring("anyone")
    return w.long(1).long(1).long(0).long(0).int(0).int(0).int(0).long(0).long(1)


def test_hand_built_snapshot_decodes() -> None:
    """The layout these malformed cases are derived from."""
    w = node(node(header(2), "/"), "/a").int(1).long(SID).int(30000).buffer(b"p")
    tree = decode_snapshot(bytes(w.buf))
    assert sorted(tree.nodes["/"].children) == ["a"] and tree.last_zxid == 7
    assert tree.sessions[SID].timeout == 30000 and tree.node_count() == 3


def test_every_prefix_is_a_protocol_error() -> None:
    blob = encode_snapshot(rich_tree())
    for cut in range(len(blob)):
        malformed(blob[:cut])


@pytest.mark.parametrize("blob", [
    b"",
    b"zksm" + bytes(16),
    b"\x00" * 32,
    bytes(header(0).buf) + b"\x00\x00\x00\x00",  # no nodes at all: no root
    bytes(node(header(1), "/a").buf) + b"\x00\x00\x00\x00",  # child without parent
    bytes(node(node(header(2), "/"), "/a/b").buf) + b"\x00\x00\x00\x00",
    bytes(node(header(1), "/").buf) + b"\x00\x00\x00\x01",  # a session is missing
    bytes(node(header(1), "/").buf) + b"\x00\x00\x00\x00" + b"x",  # trailing
    bytes(node(header(2), "/").buf) + b"\x00\x00\x00\x00",  # a node is missing
    bytes(header(1).buf) + b"\xff\xff\xff\xf0",  # impossible string length
], ids=["empty", "bad magic", "zeros", "no root", "orphan", "grandchild first",
        "short sessions", "trailing", "short nodes", "bad length"])
def test_malformed_examples(blob: bytes) -> None:
    malformed(blob)


@pytest.mark.parametrize("path", ["a", ""])
def test_path_without_slash_is_a_protocol_error(path: str) -> None:
    malformed(bytes(node(node(header(2), "/"), path).buf) + b"\x00\x00\x00\x00")


def test_fuzz_mutated_snapshots() -> None:
    base = encode_snapshot(rich_tree())
    rng = random.Random(5)
    escaped = []
    for _ in range(3000):
        b = bytearray(base)
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        try:
            decode_snapshot(bytes(b))
        except ProtocolError:
            pass
        except Exception as e:  # noqa: BLE001 - that is the point
            escaped.append((bytes(b), e))
    assert not escaped, escaped[0]
