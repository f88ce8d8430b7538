"""The broadcast phase of Zab, as a pure state machine.

The leader proposes transactions in zxid order; each voter (the leader included) ACKs a
zxid once the proposal is durable in its log; a proposal commits when a quorum has
ACKed it *and* every earlier proposal has committed. Inputs are method calls, outputs
are action lists the runtime carries out in order: no I/O, no clock.

A standalone server is an ensemble of one voter: its own durable ACK is a quorum.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from kernel.txn import Txn


class QuorumVerifier:
    """Majority of a fixed voter set (ZooKeeper's QuorumMaj)."""

    def __init__(self, voters: Iterable[int]) -> None:
        self.voters = frozenset(voters)
        self.half = len(self.voters) // 2

    def contains_quorum(self, acks: set[int]) -> bool:
        return len(acks & self.voters) > self.half


@dataclass(slots=True)
class Persist:
    """Write these proposals to the log; ACK them once durable."""

    txns: list[Txn]


@dataclass(slots=True)
class Commit:
    """Apply these committed proposals, in order."""

    txns: list[Txn]


@dataclass(slots=True)
class _Proposal:
    txn: Txn
    acks: set[int] = field(default_factory=set)


class Broadcast:
    """Leader-side proposal tracking: propose → ACKs → in-order commit."""

    def __init__(self, self_id: int, quorum: QuorumVerifier, last_committed: int = 0) -> None:
        self.self_id = self_id
        self.quorum = quorum
        self.last_committed = last_committed
        self.last_proposed = last_committed
        self._outstanding: deque[_Proposal] = deque()
        self._by_zxid: dict[int, _Proposal] = {}

    def propose(self, txns: list[Txn]) -> Persist:
        """Accept new proposals (already stamped with increasing zxids)."""
        for t in txns:
            if t.zxid <= self.last_proposed:
                raise ValueError(f"zxid {t.zxid:#x} not after {self.last_proposed:#x}")
            p = _Proposal(t)
            self._outstanding.append(p)
            self._by_zxid[t.zxid] = p
            self.last_proposed = t.zxid
        return Persist(list(txns))

    def ack(self, voter: int, zxid: int) -> Commit:
        """``voter`` has every proposal up to ``zxid`` durable; commit what is now ready.

        Cumulative ACKs keep the standalone path cheap: one ACK per group commit."""
        for p in self._outstanding:
            if p.txn.zxid > zxid:
                break
            p.acks.add(voter)
        ready: list[Txn] = []
        q = self._outstanding
        while q and self.quorum.contains_quorum(q[0].acks):
            p = q.popleft()
            del self._by_zxid[p.txn.zxid]
            ready.append(p.txn)
            self.last_committed = p.txn.zxid
        return Commit(ready)

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)
