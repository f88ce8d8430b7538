"""Observers (``server.N=...:observer``): they learn every committed write and serve
clients like followers, but never vote, so losing them never costs the quorum, and a
leader failover carries them along. Runs against Apache ZooKeeper too
(``ZK_TEST_TARGET=zookeeper``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.support.ensemble import Ensemble

pytestmark = pytest.mark.ensemble

VOTERS = [0, 1, 2]
OBSERVER = 3


class _WithObserver(Ensemble):
    """Three voters and one observer (index 3)."""

    def config_lines(self, i: int) -> list[str]:
        lines = []
        for line in super().config_lines(i):
            if line.startswith(f"server.{OBSERVER + 1}="):
                line += ":observer"
            lines.append(line)
        if i == OBSERVER:
            lines.append("peerType=observer")
        return lines


@pytest.fixture
def ensemble(tmp_path: Path) -> Iterator[_WithObserver]:
    ens = _WithObserver(4, tmp_path / "ens")
    try:
        for i in range(4):
            ens.launch(i)
        ens.wait_serving(60, among=VOTERS)
        _wait_mode(ens, OBSERVER, "observer", 60)
        yield ens
    finally:
        ens.close()


def _wait_mode(ens: Ensemble, i: int, want: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while ens.mode(i) != want:
        if time.monotonic() > deadline:
            raise AssertionError(f"server {i} is {ens.mode(i)!r}, not {want!r}\n"
                                 + ens.log_tails())
        time.sleep(0.05)


def _client(ens: Ensemble, i: int) -> KazooClient:
    c = KazooClient(hosts=ens.connect_string([i]), timeout=10)
    c.start(timeout=30)
    return c


def test_observer_serves_and_never_votes(ensemble: _WithObserver) -> None:
    ens = ensemble
    obs = _client(ens, OBSERVER)
    voter = _client(ens, VOTERS[0])
    try:
        obs.create("/from-observer", b"o")          # forwarded to the leader
        voter.sync("/from-observer")
        assert voter.get("/from-observer")[0] == b"o"
        voter.create("/from-voter", b"v")
        obs.sync("/from-voter")
        assert obs.get("/from-voter")[0] == b"v"
        leader = ens.leader(among=VOTERS)
        # The learner counts the words show are refreshed every few tens of ms.
        deadline = time.monotonic() + 5
        while "zk_synced_observers\t1" not in ens.four_letter_word(leader, "mntr"):
            assert time.monotonic() < deadline, ens.four_letter_word(leader, "mntr")
            time.sleep(0.05)
        # Losing the observer costs nothing; losing it and one voter still leaves a
        # quorum of voters.
        ens.kill(OBSERVER)
        ens.kill(next(i for i in VOTERS if i != leader))
        assert ens.mode(leader) == "leader"
        survivor = next(i for i in VOTERS if ens.members[i].alive and i != leader)
        c = _client(ens, survivor)
        try:
            c.create("/without-observer", b"")
        finally:
            c.stop()
    finally:
        obs.stop()
        voter.stop()


def test_observer_follows_the_new_leader_after_failover(ensemble: _WithObserver) -> None:
    ens = ensemble
    leader = ens.leader(among=VOTERS)
    ens.kill(leader)
    rest = [i for i in VOTERS if i != leader]
    ens.wait_serving(60, among=rest)
    _wait_mode(ens, OBSERVER, "observer", 60)
    obs = _client(ens, OBSERVER)
    try:
        obs.create("/after-failover", b"")
        other = _client(ens, rest[0])
        try:
            other.sync("/after-failover")
            assert other.exists("/after-failover") is not None
        finally:
            other.stop()
    finally:
        obs.stop()
