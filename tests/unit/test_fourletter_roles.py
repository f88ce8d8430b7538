"""Four-letter words by role (ZooKeeper 3.8's StatCommand, MonitorCommand and
DigestCommand): standalone, leader, follower, observer, read-only and looking, driven
through ``Kernel.quorum`` without a network."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from kernel.acl import OPEN_ACL_UNSAFE
from kernel.clock import ManualClock
from kernel.config import ServerConfig
from kernel.core import Kernel
from kernel.digest import LOG_INTERVAL, compute_digest, java_long
from kernel.txn import CreateTxn, SetDataTxn, Txn
from plugins.storage_memory import MemoryStorage
from plugins.transport_jute.fourletter import (
    NOT_SERVING,
    WORDS,
    FourLetterWords,
    peer_state,
)

LEADER_ONLY = ("zk_learners", "zk_synced_followers", "zk_synced_non_voting_followers",
               "zk_pending_syncs", "zk_last_proposal_size", "zk_min_proposal_size",
               "zk_max_proposal_size")


class FakeTransport:
    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.connections: set[Any] = set()
        self.port = 2181


def make(**quorum: Any) -> FourLetterWords:
    cfg = dataclasses.replace(ServerConfig(storage="memory"),
                              four_letter_words=frozenset(WORDS))
    k = Kernel(cfg, MemoryStorage(), [], ManualClock())
    for name, value in quorum.items():
        setattr(k.quorum, name, value)
    return FourLetterWords(FakeTransport(k))  # type: ignore[arg-type]


def ask(f: FourLetterWords, word: str) -> str:
    return f.answer(word, b"", None)  # type: ignore[arg-type]


def mntr(f: FourLetterWords) -> tuple[list[str], dict[str, str]]:
    lines = ask(f, "mntr").splitlines()
    kv = dict(line.split("\t", 1) for line in lines)
    assert len(kv) == len(lines), "duplicate keys"
    return [line.split("\t", 1)[0] for line in lines], kv


def test_standalone_is_unchanged() -> None:
    f = make()
    srvr = ask(f, "srvr").splitlines()
    assert srvr[-2:] == ["Mode: standalone", "Node count: 5"]
    assert not any(line.startswith("Proposal sizes") for line in srvr)
    keys, kv = mntr(f)
    assert keys[:2] == ["zk_version", "zk_server_state"]
    assert kv["zk_server_state"] == "standalone"
    for key in ("zk_peer_state", "zk_quorum_size", "zk_synced_observers", *LEADER_ONLY):
        assert key not in kv
    assert ask(f, "isro") == "rw"


def test_leader() -> None:
    f = make(mode="leader", phase="broadcast", quorum_size=3, learners=2,
             synced_followers=2, synced_non_voting_followers=0, synced_observers=1,
             pending_syncs=4, last_proposal_size=120, min_proposal_size=36,
             max_proposal_size=1024, epoch=2)
    srvr = ask(f, "srvr").splitlines()
    assert "Mode: leader" in srvr
    # ZooKeeper prints the proposal sizes after the node count, on a leader only.
    assert srvr[-2:] == ["Node count: 5", "Proposal sizes last/min/max: 120/36/1024"]
    stat = ask(f, "stat").splitlines()
    assert stat[1] == "Clients:" and stat[-1] == "Proposal sizes last/min/max: 120/36/1024"
    keys, kv = mntr(f)
    assert keys[:3] == ["zk_version", "zk_server_state", "zk_peer_state"]
    assert kv["zk_server_state"] == "leader"
    assert kv["zk_peer_state"] == "leading - broadcast"
    assert kv["zk_quorum_size"] == "3"
    assert kv["zk_learners"] == "2"
    assert kv["zk_synced_followers"] == "2"
    assert kv["zk_synced_non_voting_followers"] == "0"
    assert kv["zk_synced_observers"] == "1"
    assert kv["zk_pending_syncs"] == "4"
    assert (kv["zk_last_proposal_size"], kv["zk_min_proposal_size"],
            kv["zk_max_proposal_size"]) == ("120", "36", "1024")
    assert "zk_leader_uptime" not in kv  # QuorumStatus has no leader start time (yet)


def test_leader_uptime_when_the_status_has_a_start_time() -> None:
    f = make(mode="leader")
    k = f.kernel
    status = k.quorum

    class WithStart:  # a QuorumStatus that also knows when leadership began
        def __init__(self) -> None:
            self.leader_since_ms = 1000

        def __getattr__(self, name: str) -> Any:
            return getattr(status, name)

    k.quorum = WithStart()  # type: ignore[assignment]
    k.clock.advance(5000)  # type: ignore[attr-defined]
    assert mntr(f)[1]["zk_leader_uptime"] == str(k.clock.mono_ms() - 1000)


def test_leader_before_any_proposal_prints_minus_one() -> None:
    f = make(mode="leader")
    assert "Proposal sizes last/min/max: -1/-1/-1" in ask(f, "srvr")
    kv = mntr(f)[1]
    assert kv["zk_last_proposal_size"] == kv["zk_min_proposal_size"] == "-1"


def test_follower() -> None:
    f = make(mode="follower", phase="broadcast", quorum_size=5, leader_id=3)
    srvr = ask(f, "srvr").splitlines()
    assert srvr[-2:] == ["Mode: follower", "Node count: 5"]
    keys, kv = mntr(f)
    assert keys[:3] == ["zk_version", "zk_server_state", "zk_peer_state"]
    assert kv["zk_server_state"] == "follower"
    assert kv["zk_peer_state"] == "following - broadcast"
    assert kv["zk_quorum_size"] == "5"
    # A follower reports the observers it serves as observer master; no leader keys.
    assert kv["zk_synced_observers"] == "0"
    for key in LEADER_ONLY:
        assert key not in kv
    assert ask(f, "isro") == "rw"


def test_observer() -> None:
    f = make(mode="observer", quorum_size=3)
    assert "Mode: observer" in ask(f, "srvr")
    kv = mntr(f)[1]
    assert kv["zk_peer_state"] == "observing - broadcast"
    assert kv["zk_quorum_size"] == "3"
    assert "zk_synced_observers" not in kv


def test_read_only() -> None:
    f = make(mode="read-only")
    srvr = ask(f, "srvr").splitlines()
    assert srvr[1] == "READ-ONLY mode; serving only read-only clients"
    assert "Mode: read-only" in srvr
    stat = ask(f, "stat").splitlines()
    assert stat[1] == "READ-ONLY mode; serving only read-only clients"
    assert stat[2] == "Clients:"
    kv = mntr(f)[1]
    assert kv["zk_server_state"] == "read-only"
    assert "zk_peer_state" not in kv  # ZooKeeper's ReadOnlyZooKeeperServer is no quorum server
    assert ask(f, "isro") == "ro"


@pytest.mark.parametrize("how", ["looking", "not serving"])
def test_a_server_without_a_quorum_does_not_serve(how: str) -> None:
    f = make(mode="looking", phase="election") if how == "looking" else make()
    if how == "not serving":
        f.kernel.serving = False
    for word in ("srvr", "stat", "mntr", "hash", "cons", "conf", "dump", "wchs"):
        assert ask(f, word) == NOT_SERVING, word
    assert ask(f, "isro") == "null"
    assert ask(f, "ruok") == "imok"
    assert ask(f, "gtmk") == "306"


def test_peer_state_format() -> None:
    assert peer_state("leader", "broadcast") == "leading - broadcast"
    assert peer_state("follower", "synchronization", "diff") == \
        "following - synchronization - diff"
    assert peer_state("looking", "election") == "looking"
    assert peer_state("follower", "discovery") == "following - discovery"


def test_hash_and_mntr_digest_keys() -> None:
    f = make()
    tree = f.kernel.tree
    # A fresh tree: only the current digest.
    assert ask(f, "hash") == f"0: {java_long(tree.digest)}\n"
    zxid = 0
    tree.apply(Txn(1, 0, 0, 5, 1, CreateTxn("/n", b"", OPEN_ACL_UNSAFE, 0, 1)))
    logged = []
    for zxid in range(2, 2 * LOG_INTERVAL + 3):
        tree.apply(Txn(zxid, 0, 0, 5 + zxid, 5, SetDataTxn("/n", b"%d" % zxid, zxid - 1)))
        if zxid % LOG_INTERVAL == 0:
            logged.append((zxid, tree.digest))
    lines = ask(f, "hash").splitlines()
    assert lines == [f"{z:x}: {java_long(d)}" for z, d in logged] + \
        [f"{zxid:x}: {java_long(tree.digest)}"]
    assert lines[0].startswith("80: ") and lines[1].startswith("100: ")
    kv = mntr(f)[1]
    assert kv["zk_tree_digest"] == str(java_long(compute_digest(tree)))
    assert kv["zk_tree_digest_zxid"] == str(zxid)
    assert kv["zk_digest_mismatches_count"] == "0"
    # Ending exactly on a logged zxid: no duplicate last line.
    zxid += 1
    while zxid % LOG_INTERVAL:
        tree.apply(Txn(zxid, 0, 0, 5, 5, SetDataTxn("/n", b"", zxid - 1)))
        zxid += 1
    tree.apply(Txn(zxid, 0, 0, 5, 5, SetDataTxn("/n", b"", zxid - 1)))
    lines = ask(f, "hash").splitlines()
    assert len(lines) == 3 and lines[-1] == f"{zxid:x}: {java_long(tree.digest)}"


def test_hash_prints_the_digest_as_a_java_long() -> None:
    f = make()
    f.kernel.tree.digest = (1 << 64) - 5
    assert ask(f, "hash") == "0: -5\n"
    assert mntr(f)[1]["zk_tree_digest"] == "-5"
