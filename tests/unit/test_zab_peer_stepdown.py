"""A leader steps down when a voter has promised a newer epoch than the one it leads.

Such a voter (it accepted the epoch of a leader attempt that failed) refuses the
leader's epoch for as long as that leader leads; without a new election it would stay
out of the ensemble for good.
"""

from __future__ import annotations

from collections import deque

from kernel.zab.messages import (
    FOLLOWING,
    LEADING,
    LOOKING,
    STORAGE_ACTIONS,
    Action,
    FollowerInfo,
    Send,
)
from kernel.zab.peer import DurableState, Timing, ZabPeer

TIMING = Timing(tick_ms=100, init_limit=10, sync_limit=5, finalize_wait_ms=20)


def _cluster(n: int) -> dict[int, ZabPeer]:
    return {s: ZabPeer(s, range(1, n + 1), DurableState(), TIMING, lambda: (0, b""), 0)
            for s in range(1, n + 1)}


def _pump(peers: dict[int, ZabPeer], first: dict[int, list[Action]], now: int,
          down: frozenset[int] = frozenset()) -> None:
    """Deliver every send at once and complete storage at once, until quiet."""
    queue: deque[tuple[int, Action]] = deque(
        (s, a) for s, acts in sorted(first.items()) for a in acts)
    while queue:
        s, a = queue.popleft()
        if isinstance(a, Send):
            if a.to in down or s in down:
                continue
            queue.extend((a.to, b) for b in peers[a.to].receive(s, a.msg, now))
        elif isinstance(a, STORAGE_ACTIONS):
            queue.extend((s, b) for b in peers[s].stored(now))


def _settle(peers: dict[int, ZabPeer], until: int,
            down: frozenset[int] = frozenset()) -> int:
    now = 0
    _pump(peers, {s: p.start(now) for s, p in peers.items() if s not in down}, now, down)
    while now < until:
        now += 10
        _pump(peers, {s: p.tick(now) for s, p in peers.items() if s not in down}, now,
              down)
    return now


def test_three_peers_elect_the_highest_id_and_establish() -> None:
    peers = _cluster(3)
    _settle(peers, 500)
    assert peers[3].state == LEADING and peers[3].established
    assert peers[1].state == FOLLOWING and peers[2].state == FOLLOWING
    assert peers[1].serving and peers[2].serving


def test_leader_steps_down_for_a_voter_that_promised_a_newer_epoch() -> None:
    peers = _cluster(3)
    now = _settle(peers, 500)
    leader = peers[3]
    assert leader.established
    epoch = leader.epoch
    out = leader.receive(1, FollowerInfo(epoch + 1, peers[1].last_logged), now)
    assert leader.state == LOOKING
    assert any(isinstance(a, Send) for a in out)  # it asks for votes at once


def test_a_repeated_follower_info_with_our_epoch_does_not_step_down() -> None:
    peers = _cluster(3)
    now = _settle(peers, 500)
    leader = peers[3]
    leader.receive(1, FollowerInfo(leader.epoch, peers[1].last_logged), now)
    assert leader.state == LEADING


def test_an_observer_follows_but_never_counts() -> None:
    peers = _cluster(3)
    peers[4] = ZabPeer(4, range(1, 4), DurableState(), TIMING, lambda: (0, b""), 0)
    _settle(peers, 500)
    assert peers[3].state == LEADING and peers[3].established
    assert peers[4].state == FOLLOWING and peers[4].leader == 3 and peers[4].serving
    # With one voter down, the leader still commits through the other voter alone; the
    # observer's ACKs could never make a quorum on their own.
    assert 4 not in peers[3].voters
    assert "synced" == peers[3].learners[4].phase
