"""Messages between Zab peers, and the actions the sans-I/O peer asks its runtime for.

Messages travel on per-pair links that deliver in FIFO order without duplicates, and
may break (everything in flight is lost; both ends are told ``link_down``). That is
what a TCP connection gives; a simulated network with loss, duplication and reordering
sits behind a sequence-numbered link that turns any anomaly into a break.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from kernel.txn import Txn

# Peer states, numbered as ZooKeeper's notifications number them.
LOOKING = 0
FOLLOWING = 1
LEADING = 2

# Zab phases (monitoring; ZooKeeper's ZabState).
ELECTION = "election"
DISCOVERY = "discovery"
SYNCHRONIZATION = "synchronization"
BROADCAST = "broadcast"


class Vote(NamedTuple):
    """A proposed leader. Votes order by (peer_epoch, zxid, leader), as in FLE."""

    peer_epoch: int
    zxid: int
    leader: int


# -- election ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Notification:
    """FLE notification: the sender's state, its vote and its election round."""

    state: int
    vote: Vote
    round: int


# -- discovery ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FollowerInfo:
    """Learner → leader: join, with the newest epoch promised and the last logged zxid."""

    accepted_epoch: int
    last_zxid: int


@dataclass(frozen=True, slots=True)
class LeaderInfo:
    """Leader → learner: the new epoch."""

    epoch: int


@dataclass(frozen=True, slots=True)
class AckEpoch:
    """Learner → leader: promised ``LeaderInfo.epoch``; its history's epoch and end.

    ``epoch`` names the LeaderInfo answered: a link outlives a leader's term, so a
    LeaderInfo of its previous term can still reach a learner that has begun to
    follow its next one, and an answer to it must not count as a promise of the new epoch.
    """

    current_epoch: int
    last_zxid: int
    epoch: int = 0


# -- synchronization ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SyncDiff:
    """Leader → learner: your log is a prefix of mine; the missing proposals follow."""


@dataclass(frozen=True, slots=True)
class SyncTrunc:
    """Leader → learner: drop every logged proposal after ``zxid``; the rest follow."""

    zxid: int


@dataclass(frozen=True, slots=True)
class SyncSnap:
    """Leader → learner: replace your state with this snapshot (taken at ``zxid``)."""

    zxid: int
    snapshot: bytes


@dataclass(frozen=True, slots=True)
class NewLeader:
    """Leader → learner: the proposals so far are the epoch's initial history."""

    epoch: int


@dataclass(frozen=True, slots=True)
class AckNewLeader:
    """Learner → leader: the initial history is durable up to ``last_zxid``."""

    epoch: int
    last_zxid: int


@dataclass(frozen=True, slots=True)
class UpToDate:
    """Leader → learner: everything up to ``committed`` is committed; start serving."""

    committed: int


# -- broadcast ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Proposal:
    """Leader → learner: log this transaction."""

    txn: Txn


@dataclass(frozen=True, slots=True)
class Proposals:
    """Leader → learner: log these transactions, in order (one batch of proposals:
    one message, one write, one ACK for many writes)."""

    txns: list[Txn]


@dataclass(frozen=True, slots=True)
class Ack:
    """Learner → leader: every proposal up to ``zxid`` is durable here (cumulative)."""

    zxid: int


@dataclass(frozen=True, slots=True)
class Commit:
    """Leader → learner: every proposal up to ``zxid`` is committed (cumulative)."""

    zxid: int


@dataclass(frozen=True, slots=True)
class Ping:
    """Leader → learner heartbeat, with the leader's commit point."""

    committed: int


@dataclass(frozen=True, slots=True)
class PingAck:
    """Learner → leader heartbeat answer."""


ZabMessage = (Notification | FollowerInfo | LeaderInfo | AckEpoch | SyncDiff | SyncTrunc
              | SyncSnap | NewLeader | AckNewLeader | UpToDate | Proposal | Proposals | Ack
              | Commit | Ping | PingAck)


# -- actions -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Send:
    """Send ``msg`` to peer ``to`` (dropped if the link is down)."""

    to: int
    msg: ZabMessage


@dataclass(frozen=True, slots=True)
class Persist:
    """Append ``txns`` to the durable log; report ``persisted(last zxid)`` when done."""

    txns: list[Txn]


@dataclass(frozen=True, slots=True)
class Truncate:
    """Drop logged transactions after ``zxid`` (never a committed one)."""

    zxid: int


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """Replace the state and the log with ``snapshot`` (state at ``zxid``, log empty)."""

    zxid: int
    snapshot: bytes


@dataclass(frozen=True, slots=True)
class Deliver:
    """Apply these committed transactions, in order (each is already durable here)."""

    txns: list[Txn]


@dataclass(frozen=True, slots=True)
class SaveEpochs:
    """Store acceptedEpoch and currentEpoch durably before anything after this."""

    accepted: int
    current: int


@dataclass(frozen=True, slots=True)
class RoleChanged:
    """The peer's role or phase changed; the server serves clients only in BROADCAST."""

    state: int
    phase: str
    leader: int
    epoch: int


Action = Send | Persist | Truncate | InstallSnapshot | Deliver | SaveEpochs | RoleChanged

STORAGE_ACTIONS = (Persist, Truncate, InstallSnapshot, SaveEpochs)
