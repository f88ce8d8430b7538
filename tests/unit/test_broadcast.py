"""The sans-I/O Zab broadcast core: propose → ACKs → in-order commit on a majority."""

from __future__ import annotations

import itertools
import random

import pytest

from kernel.protocol import OpCode
from kernel.txn import ErrorTxn, Txn
from kernel.zab import Broadcast, Commit, Persist, QuorumVerifier


def txns(*zxids: int) -> list[Txn]:
    return [Txn(z, 1, z, 0, OpCode.SET_DATA, ErrorTxn(0)) for z in zxids]


def committed(c: Commit) -> list[int]:
    assert isinstance(c, Commit)
    return [t.zxid for t in c.txns]


# ----------------------------------------------------------------------- QuorumVerifier


@pytest.mark.parametrize("voters, acks, ok", [
    ({1}, set(), False),
    ({1}, {1}, True),
    ({1}, {2}, False),                 # not a voter
    ({1, 2, 3}, {1}, False),
    ({1, 2, 3}, {1, 3}, True),
    ({1, 2, 3}, {1, 4, 5}, False),     # observers / strangers do not count
    ({1, 2, 3}, {1, 2, 3}, True),
    ({1, 2, 3, 4}, {1, 2}, False),     # even ensemble: half is not a majority
    ({1, 2, 3, 4}, {1, 2, 4}, True),
    ({1, 2, 3, 4, 5}, {2, 4}, False),
    ({1, 2, 3, 4, 5}, {2, 4, 5}, True),
])
def test_quorum_verifier(voters: set[int], acks: set[int], ok: bool) -> None:
    assert QuorumVerifier(voters).contains_quorum(acks) is ok


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7])
def test_quorum_is_strict_majority_for_every_subset(n: int) -> None:
    voters = list(range(1, n + 1))
    qv = QuorumVerifier(voters)
    for k in range(n + 1):
        for subset in itertools.combinations(voters, k):
            assert qv.contains_quorum(set(subset)) is (2 * k > n)


# --------------------------------------------------------------------------- Broadcast


def test_propose_returns_persist_of_the_same_txns() -> None:
    b = Broadcast(1, QuorumVerifier([1]))
    batch = txns(1, 2)
    out = b.propose(batch)
    assert isinstance(out, Persist) and out.txns == batch
    assert b.last_proposed == 2 and b.outstanding == 2 and b.last_committed == 0


@pytest.mark.parametrize("before, bad", [
    ([], [4]),        # not after last_committed
    ([], [0]),
    ([5], [5]),       # same zxid twice
    ([5], [3]),       # backwards
    ([], [7, 6]),     # out of order inside a batch
])
def test_propose_requires_increasing_zxids(before: list[int], bad: list[int]) -> None:
    b = Broadcast(1, QuorumVerifier([1]), last_committed=4)
    if before:
        b.propose(txns(*before))
    with pytest.raises(ValueError):
        b.propose(txns(*bad))


def test_single_voter_commits_on_its_own_ack() -> None:
    b = Broadcast(1, QuorumVerifier([1]))
    b.propose(txns(1, 2, 3))
    assert committed(b.ack(1, 2)) == [1, 2]
    assert b.last_committed == 2 and b.outstanding == 1
    assert committed(b.ack(1, 3)) == [3]
    assert committed(b.ack(1, 3)) == []  # duplicate ACK: nothing new


def test_single_voter_ignores_acks_from_non_voters() -> None:
    b = Broadcast(1, QuorumVerifier([1]))
    b.propose(txns(1))
    assert committed(b.ack(2, 1)) == []
    assert committed(b.ack(1, 1)) == [1]


def test_three_voters_need_two_acks() -> None:
    b = Broadcast(1, QuorumVerifier([1, 2, 3]))
    b.propose(txns(1, 2, 3))
    assert committed(b.ack(1, 3)) == []  # leader alone
    assert committed(b.ack(2, 1)) == [1]
    assert committed(b.ack(3, 3)) == [2, 3]
    assert committed(b.ack(2, 3)) == []  # late ACK after commit
    assert b.outstanding == 0 and b.last_committed == 3


def test_cumulative_ack_covers_earlier_proposals() -> None:
    b = Broadcast(1, QuorumVerifier([1, 2, 3]))
    b.propose(txns(1, 2, 3, 4))
    b.ack(1, 4)
    assert committed(b.ack(3, 4)) == [1, 2, 3, 4]


def test_commit_only_in_order() -> None:
    # zxid 1 lacks a quorum while 2 and 3 have one: nothing may commit before 1.
    b = Broadcast(1, QuorumVerifier([1, 2, 3, 4, 5]))
    b.propose(txns(1))
    b.ack(1, 1)
    b.propose(txns(2, 3))
    assert committed(b.ack(2, 3)) == []     # 2, 3 have {2}; 1 has {1, 2}
    assert committed(b.ack(1, 3)) == []     # 2, 3 have {1, 2}
    assert committed(b.ack(4, 3)) == [1, 2, 3]


def test_ack_for_unproposed_zxid_does_not_count_later() -> None:
    b = Broadcast(1, QuorumVerifier([1, 2, 3]))
    b.propose(txns(1))
    assert committed(b.ack(2, 5)) == []
    b.propose(txns(2))
    assert committed(b.ack(1, 2)) == [1]  # 2 has only the leader's ACK
    assert committed(b.ack(3, 2)) == [2]


def test_five_voters_need_three_acks() -> None:
    b = Broadcast(1, QuorumVerifier([1, 2, 3, 4, 5]))
    b.propose(txns(1, 2))
    assert committed(b.ack(1, 2)) == []
    assert committed(b.ack(5, 2)) == []
    assert committed(b.ack(6, 2)) == []  # not a voter
    assert committed(b.ack(3, 1)) == [1]
    assert committed(b.ack(2, 2)) == [2]


def test_resumes_after_last_committed() -> None:
    b = Broadcast(1, QuorumVerifier([1]), last_committed=0x500000003)
    assert b.last_proposed == 0x500000003
    b.propose(txns(0x500000004))
    assert committed(b.ack(1, 0x500000004)) == [0x500000004]


@pytest.mark.parametrize("n", [1, 3, 5])
@pytest.mark.parametrize("seed", range(20))
def test_random_ack_orders_commit_a_prefix_in_order(n: int, seed: int) -> None:
    rng = random.Random(seed * 31 + n)
    voters = list(range(1, n + 1))
    b = Broadcast(1, QuorumVerifier(voters))
    total = 12
    b.propose(txns(*range(1, total + 1)))
    acked = dict.fromkeys(voters, 0)
    out: list[int] = []
    for _ in range(60):
        v = rng.choice(voters + [99])
        z = rng.randint(0, total)
        out += committed(b.ack(v, z))
        if v in acked:
            acked[v] = max(acked[v], z)
        # Model: z is committed iff a majority of voters acked at least z.
        expect = max([z for z in range(total + 1)
                      if sum(a >= z for a in acked.values()) * 2 > n])
        assert out == list(range(1, expect + 1))
        assert b.last_committed == expect
