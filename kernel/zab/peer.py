"""One Zab peer as a pure state machine: election, discovery, synchronization, broadcast.

Inputs are method calls (``receive``, ``tick``, ``stored``, ``propose``, ``link_up`` /
``link_down``) with the current time in milliseconds; outputs are lists of actions
(``kernel.zab.messages``) that the runtime carries out **in order**. No I/O, no clock,
no randomness: a simulation drives N peers on a seeded schedule and replays a failure
exactly.

Runtime contract:

* Storage actions (``Persist``, ``Truncate``, ``InstallSnapshot``, ``SaveEpochs``) run in
  the order emitted, across calls; the runtime reports each completion by calling
  ``stored()`` once, in the same order. An action that follows a storage action in the
  same list waits until that storage action is done (so an epoch is durable before the
  message that promises it leaves). Later calls' actions keep their order relative to
  such a waiting tail: a ``Send`` never overtakes a held ``Send`` to the same peer, and a
  ``Deliver`` or ``RoleChanged`` never overtakes a held ``Deliver`` or ``RoleChanged``
  (one FIFO executor per peer satisfies this). Otherwise a follower applies the commit
  that arrives after NEWLEADER before the one held behind its ``SaveEpochs``
  (tests/zab_sim, ``mode="replicator"``, seed 144).
* ``Send`` to a peer whose link is down is dropped; links are FIFO without duplicates.
* ``Deliver`` carries committed transactions that are durable here, in zxid order.

The protocol follows Zab as ZooKeeper implements it (``shared/reference/ensemble.md``):
fast leader election with votes ordered by (peer epoch, last logged zxid, server id);
discovery (the leader picks an epoch above every accepted epoch of a quorum and gives up
if a quorum member's history is newer than its own); synchronization by DIFF, TRUNC+DIFF
or SNAP, then NEWLEADER; broadcast with cumulative ACKs and COMMITs. A peer votes with
its last *logged* zxid, so a proposal acknowledged by a quorum survives any later
election; the leader delivers a commit only once it is durable locally too.
"""

from __future__ import annotations

import bisect
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from kernel.txn import Txn
from kernel.zab.messages import (
    BROADCAST,
    DISCOVERY,
    ELECTION,
    FOLLOWING,
    LEADING,
    LOOKING,
    SYNCHRONIZATION,
    Ack,
    AckEpoch,
    AckNewLeader,
    Action,
    Commit,
    Deliver,
    FollowerInfo,
    InstallSnapshot,
    LeaderInfo,
    NewLeader,
    Notification,
    Persist,
    Ping,
    PingAck,
    Proposal,
    Proposals,
    RoleChanged,
    SaveEpochs,
    Send,
    SyncDiff,
    SyncSnap,
    SyncTrunc,
    Truncate,
    UpToDate,
    Vote,
    ZabMessage,
)

log = logging.getLogger(__name__)

# Messages only a learner sends; a follower never takes one as a sign of its leader.
_LEARNER_MESSAGES = (FollowerInfo, AckEpoch, AckNewLeader, Ack, PingAck)


def epoch_of(zxid: int) -> int:
    """The epoch part (high 32 bits) of a zxid."""
    return zxid >> 32


@dataclass
class DurableState:
    """What a peer finds on disk when it starts.

    ``log`` holds the logged transactions after ``base_zxid`` in zxid order (the state
    at ``base_zxid`` is in the snapshot / applied tree); ``committed_zxid`` is how far
    the persisted state has applied (``base_zxid <= committed_zxid <= last logged``).
    """

    accepted_epoch: int = 0
    current_epoch: int = 0
    base_zxid: int = 0
    committed_zxid: int = 0
    log: list[Txn] = field(default_factory=list)


@dataclass(frozen=True)
class Timing:
    """Timeouts, as zoo.cfg sets them (``tickTime``, ``initLimit``, ``syncLimit``)."""

    tick_ms: int = 2000
    init_limit: int = 10
    sync_limit: int = 5
    finalize_wait_ms: int = 200
    max_notify_interval_ms: int = 2000
    # Committed transactions kept in memory for DIFF syncs (older learners get SNAP).
    history_limit: int = 100_000


class _Learner:
    __slots__ = ("sid", "phase", "accepted", "last_zxid", "heard", "acked_epoch",
                 "current_epoch")

    def __init__(self, sid: int, accepted: int, last_zxid: int, now: int) -> None:
        self.sid = sid
        self.phase = "info"          # info → epoch → sync → synced
        self.accepted = accepted
        self.last_zxid = last_zxid
        self.heard = now
        self.acked_epoch = False
        self.current_epoch = -1


class ZabPeer:
    """One server's Zab state machine (see the module docstring for the contract)."""

    def __init__(self, sid: int, voters: Iterable[int], state: DurableState,
                 timing: Timing, snapshot: Callable[[], tuple[int, bytes]],
                 now: int = 0) -> None:
        self.sid = sid
        self.voters = frozenset(voters)
        self.half = len(self.voters) // 2
        self.timing = timing
        self._snapshot = snapshot
        self.accepted_epoch = state.accepted_epoch
        self.current_epoch = state.current_epoch
        self.history: list[Txn] = list(state.log)
        self.history_base = state.base_zxid
        self.last_logged = self.history[-1].zxid if self.history else state.base_zxid
        self.durable = self.last_logged
        self.committed = state.committed_zxid
        self._expect: deque[int | None] = deque()   # durable value per storage action
        # role
        self.state = LOOKING
        self.phase = ELECTION
        self.leader = 0
        self.epoch = 0
        # election
        self.round = 0
        self.vote = Vote(self.current_epoch, self.last_logged, sid)
        self._recv: dict[int, Vote] = {}
        self._outside: dict[int, tuple[int, Vote, int]] = {}
        self._decide_at: int | None = None
        self._notify_at = 0
        self._notify_interval = timing.finalize_wait_ms
        # follower
        self._leader_committed = 0
        self._heard = now
        self._newleader: tuple[int, int] | None = None
        self._newleader_acked = False
        self._acked = 0
        self._info_at = 0
        # leader
        self.learners: dict[int, _Learner] = {}
        self._info_acc: dict[int, int] = {}
        self._epoch_decided = False
        self._epoch_quorum = False
        self._epoch_acks: set[int] = set()
        self.established = False
        self._lead_start = now
        self._ack_of: dict[int, int] = {}
        self.commit_point = self.committed
        self._last_ping = now
        self._started = False

    # -- introspection -------------------------------------------------------------------

    @property
    def serving(self) -> bool:
        """True in the broadcast phase: the server may answer clients."""
        return self.phase == BROADCAST

    @property
    def next_zxid(self) -> int:
        """The zxid the leader's next proposal must carry."""
        if epoch_of(self.last_logged) == self.epoch:
            return self.last_logged + 1
        return (self.epoch << 32) + 1

    def synced_learners(self) -> list[int]:
        return [s for s, ln in self.learners.items() if ln.phase == "synced"]

    # -- inputs --------------------------------------------------------------------------

    def start(self, now: int) -> list[Action]:
        """Begin: look for a leader (a lone voter leads at once)."""
        self._started = True
        return self._look(now)

    def tick(self, now: int) -> list[Action]:
        """Timers: election retransmits and finalize wait, heartbeats, liveness."""
        out: list[Action] = []
        if self.state == LOOKING:
            if self._decide_at is not None and now >= self._decide_at:
                self._decide_at = None
                if self._has_quorum_for(self._recv, self.vote):
                    return self._decide(self.vote, now)
            if now >= self._notify_at:
                out += self._broadcast_vote()
                self._notify_interval = min(self._notify_interval * 2,
                                            self.timing.max_notify_interval_ms)
                self._notify_at = now + self._notify_interval
            return out
        t = self.timing
        if self.state == FOLLOWING:
            limit = (t.sync_limit if self.phase == BROADCAST else t.init_limit) * t.tick_ms
            if now - self._heard > limit:
                log.warning("server %d: no word from leader %d for %d ms", self.sid,
                            self.leader, now - self._heard)
                return self._look(now)
            if self.phase == DISCOVERY and now >= self._info_at:
                # The leader ignores us until it has decided it leads: say it again.
                self._info_at = now + self.timing.finalize_wait_ms
                out.append(Send(self.leader, FollowerInfo(self.accepted_epoch,
                                                          self.last_logged)))
            return out
        # LEADING
        if not self.established:
            if now - self._lead_start > t.init_limit * t.tick_ms:
                log.warning("server %d: no quorum synced within initLimit", self.sid)
                return self._look(now)
        for ln in list(self.learners.values()):
            limit = (t.sync_limit if ln.phase == "synced" else t.init_limit) * t.tick_ms
            if now - ln.heard > limit:
                out += self._drop_learner(ln.sid)
        if self.established:
            live = {self.sid} | {s for s, ln in self.learners.items() if ln.phase == "synced"}
            if len(live & self.voters) <= self.half:
                log.warning("server %d: lost the quorum", self.sid)
                return self._look(now)
        if now - self._last_ping >= t.tick_ms // 2:
            self._last_ping = now
            for ln in self.learners.values():
                if ln.phase in ("sync", "synced"):
                    out.append(Send(ln.sid, Ping(self.commit_point)))
        return out

    def stored(self, now: int) -> list[Action]:
        """The oldest outstanding storage action is done."""
        value = self._expect.popleft()
        if value is None:
            return []
        self.durable = value
        out: list[Action] = []
        if self.state == FOLLOWING:
            if self._newleader is not None and self.durable >= self._newleader[1]:
                out += self._finish_newleader()
            if self._newleader_acked and self.durable > self._acked:
                self._acked = self.durable
                out.append(Send(self.leader, Ack(self.durable)))
            out += self._deliver_to(min(self._leader_committed, self.durable))
        elif self.state == LEADING:
            if not self.established:
                out += self._maybe_establish(now)
            else:
                out += self._advance_commit()
        return out

    def link_up(self, peer: int, now: int) -> list[Action]:
        """A link to ``peer`` came up: repeat what it may have missed."""
        if self.state == LOOKING:
            return [Send(peer, Notification(LOOKING, self.vote, self.round))]
        if self.state == FOLLOWING and peer == self.leader and self.phase == DISCOVERY:
            return [Send(peer, FollowerInfo(self.accepted_epoch, self.last_logged))]
        return []

    def link_down(self, peer: int, now: int) -> list[Action]:
        """The link to ``peer`` broke; messages in flight are lost."""
        if self.state == FOLLOWING and peer == self.leader:
            log.info("server %d: lost the link to leader %d", self.sid, peer)
            return self._look(now)
        if self.state == LEADING and peer in self.learners:
            out = self._drop_learner(peer)
            if self.established:
                live = {self.sid} | set(self.synced_learners())
                if len(live & self.voters) <= self.half:
                    return out + self._look(now)
            return out
        return []

    def propose(self, txns: list[Txn], now: int) -> list[Action]:
        """Leader: broadcast new transactions (zxids from ``next_zxid`` on)."""
        if not (self.state == LEADING and self.established):
            raise RuntimeError("not an established leader")
        out: list[Action] = []
        for txn in txns:
            if txn.zxid <= self.last_logged or epoch_of(txn.zxid) != self.epoch:
                raise ValueError(f"zxid {txn.zxid:#x} out of order after {self.last_logged:#x}")
            self.history.append(txn)
            self.last_logged = txn.zxid
        # One message per learner for the whole batch (the same object for all).
        msg: ZabMessage = Proposal(txns[0]) if len(txns) == 1 else Proposals(list(txns))
        for ln in self.learners.values():
            if ln.phase in ("sync", "synced"):
                out.append(Send(ln.sid, msg))
        out.append(self._persist(list(txns)))
        return out

    def receive(self, src: int, msg: ZabMessage, now: int) -> list[Action]:
        """A message from peer ``src``."""
        if isinstance(msg, Notification):
            return self._on_notification(src, msg, now)
        if self.state == FOLLOWING:
            if src != self.leader or isinstance(msg, _LEARNER_MESSAGES):
                # A learner's message from our "leader" (it follows someone too, maybe
                # us) is no word from a leader: it must not keep us waiting on it.
                return []
            self._heard = now
            return self._follower_receive(msg, now)
        if self.state == LEADING:
            return self._leader_receive(src, msg, now)
        return []

    # -- election ------------------------------------------------------------------------

    def _look(self, now: int) -> list[Action]:
        was = (self.state, self.phase)
        self.state = LOOKING
        self.phase = ELECTION
        self.leader = 0
        self.established = False
        self.learners.clear()
        self._ack_of.clear()
        self._newleader = None
        self._newleader_acked = False
        self.round += 1
        self.vote = Vote(self.current_epoch, self.last_logged, self.sid)
        self._recv = {self.sid: self.vote}
        self._outside = {}
        self._decide_at = None
        self._notify_interval = self.timing.finalize_wait_ms
        self._notify_at = now + self._notify_interval
        out: list[Action] = []
        if was != (LOOKING, ELECTION) or not self._started:
            out.append(RoleChanged(LOOKING, ELECTION, 0, 0))
        if len(self.voters) == 1 and self.sid in self.voters:
            return out + self._decide(self.vote, now)
        return out + self._broadcast_vote()

    def _broadcast_vote(self) -> list[Action]:
        n = Notification(LOOKING, self.vote, self.round)
        return [Send(v, n) for v in sorted(self.voters) if v != self.sid]

    def _has_quorum_for(self, votes: dict[int, Vote], vote: Vote) -> bool:
        n = sum(1 for s, v in votes.items() if s in self.voters and v == vote)
        return n > self.half

    def _on_notification(self, src: int, n: Notification, now: int) -> list[Action]:
        if src not in self.voters:
            # An observer looking for the leader: tell it whom we follow; its vote
            # never counts.
            if self.state != LOOKING and n.state == LOOKING:
                return [Send(src, Notification(self.state, self.vote, self.round))]
            return []
        if self.state != LOOKING:
            if n.state == LOOKING:
                return [Send(src, Notification(self.state, self.vote, self.round))]
            return []
        if n.state == LOOKING:
            out: list[Action] = []
            if n.round > self.round:
                self.round = n.round
                self._recv = {}
                self.vote = max(Vote(self.current_epoch, self.last_logged, self.sid), n.vote)
                self._decide_at = None
                out += self._broadcast_vote()
            elif n.round < self.round:
                return [Send(src, Notification(LOOKING, self.vote, self.round))]
            elif n.vote > self.vote:
                self.vote = n.vote
                self._decide_at = None
                out += self._broadcast_vote()
            self._recv[src] = n.vote
            self._recv[self.sid] = self.vote
            if self._has_quorum_for(self._recv, self.vote):
                if self._decide_at is None:
                    self._decide_at = now + self.timing.finalize_wait_ms
            else:
                self._decide_at = None
            return out
        # The sender follows or leads: join an ensemble that is already up.
        if n.round == self.round:
            self._recv[src] = n.vote
            if self._has_quorum_for(self._recv, n.vote) and self._leader_known(n.vote.leader):
                return self._decide(n.vote, now)
        self._outside[src] = (n.state, n.vote, n.round)
        backing = sum(1 for s, (_, v, _) in self._outside.items()
                      if s in self.voters and v.leader == n.vote.leader
                      and v.peer_epoch == n.vote.peer_epoch)
        if backing > self.half and self._leader_known(n.vote.leader):
            self.round = n.round
            return self._decide(n.vote, now)
        return []

    def _leader_known(self, leader: int) -> bool:
        if leader == self.sid:
            return False
        entry = self._outside.get(leader)
        return entry is not None and entry[0] == LEADING

    def _decide(self, vote: Vote, now: int) -> list[Action]:
        log.info("server %d: elected %d in round %d", self.sid, vote.leader, self.round)
        self.vote = vote
        self.leader = vote.leader
        self._decide_at = None
        if vote.leader == self.sid:
            return self._lead(now)
        return self._follow(now)

    # -- follower ------------------------------------------------------------------------

    def _follow(self, now: int) -> list[Action]:
        self.state = FOLLOWING
        self.phase = DISCOVERY
        self._heard = now
        self._leader_committed = self.committed
        self._newleader = None
        self._newleader_acked = False
        self._acked = 0
        self._info_at = now + self.timing.finalize_wait_ms
        return [RoleChanged(FOLLOWING, DISCOVERY, self.leader, 0),
                Send(self.leader, FollowerInfo(self.accepted_epoch, self.last_logged))]

    def _follower_receive(self, msg: ZabMessage, now: int) -> list[Action]:
        out: list[Action] = []
        if self.phase == DISCOVERY and isinstance(msg, Proposal | Proposals | Commit):
            # Left over from an earlier session with this leader (we went LOOKING while
            # the link stayed up): our log is not synced to its stream yet.
            return []
        if isinstance(msg, Proposal):
            txn = msg.txn
            if txn.zxid <= self.last_logged:
                return []
            self.history.append(txn)
            self.last_logged = txn.zxid
            out.append(self._persist([txn]))
            return out
        if isinstance(msg, Proposals):
            new = [t for t in msg.txns if t.zxid > self.last_logged]
            if not new:
                return []
            self.history.extend(new)
            self.last_logged = new[-1].zxid
            out.append(self._persist(new))
            return out
        if isinstance(msg, Commit):
            if msg.zxid > self._leader_committed:
                self._leader_committed = msg.zxid
            return self._deliver_to(min(self._leader_committed, self.durable))
        if isinstance(msg, Ping):
            if msg.committed > self._leader_committed and self.phase == BROADCAST:
                self._leader_committed = msg.committed
                out += self._deliver_to(min(self._leader_committed, self.durable))
            out.append(Send(self.leader, PingAck()))
            return out
        if isinstance(msg, LeaderInfo):
            if self.phase != DISCOVERY:
                return []
            if msg.epoch < self.accepted_epoch:
                log.warning("server %d: leader %d offers epoch %d below accepted %d",
                            self.sid, self.leader, msg.epoch, self.accepted_epoch)
                return self._look(now)
            self.epoch = msg.epoch
            if msg.epoch > self.accepted_epoch:
                self.accepted_epoch = msg.epoch
                out.append(self._save_epochs())
            self.phase = SYNCHRONIZATION
            out.append(RoleChanged(FOLLOWING, SYNCHRONIZATION, self.leader, self.epoch))
            out.append(Send(self.leader, AckEpoch(self.current_epoch, self.last_logged,
                                                  msg.epoch)))
            return out
        if self.phase == DISCOVERY:
            return []
        if isinstance(msg, SyncDiff):
            return []
        if isinstance(msg, SyncTrunc):
            if msg.zxid < self.committed:
                log.error("server %d: asked to truncate committed history to %#x",
                          self.sid, msg.zxid)
                return self._look(now)
            i = bisect.bisect_right(self.history, msg.zxid, key=lambda t: t.zxid)
            del self.history[i:]
            self.last_logged = self.history[-1].zxid if self.history else self.history_base
            self._expect.append(self.last_logged)
            return [Truncate(msg.zxid)]
        if isinstance(msg, SyncSnap):
            self.history = []
            self.history_base = msg.zxid
            self.last_logged = msg.zxid
            self.committed = msg.zxid
            self._leader_committed = msg.zxid
            self._expect.append(msg.zxid)
            return [InstallSnapshot(msg.zxid, msg.snapshot)]
        if isinstance(msg, NewLeader):
            if msg.epoch != self.epoch:
                return self._look(now)
            self._newleader = (msg.epoch, self.last_logged)
            if self.durable >= self.last_logged:
                out += self._finish_newleader()
            return out
        if isinstance(msg, UpToDate):
            if msg.committed > self._leader_committed:
                self._leader_committed = msg.committed
            self.phase = BROADCAST
            out.append(RoleChanged(FOLLOWING, BROADCAST, self.leader, self.epoch))
            out += self._deliver_to(min(self._leader_committed, self.durable))
            return out
        return []

    def _finish_newleader(self) -> list[Action]:
        assert self._newleader is not None
        epoch, last = self._newleader
        self._newleader = None
        self.current_epoch = epoch
        # As ZooKeeper's updateElectionVote: peers that join later count the
        # ensemble's members by (leader, peer epoch), so every member must report the
        # epoch it follows, not the one it was elected with.
        self.vote = Vote(epoch, self.vote.zxid, self.vote.leader)
        self._newleader_acked = True
        self._acked = last
        return [self._save_epochs(), Send(self.leader, AckNewLeader(epoch, last))]

    # -- leader --------------------------------------------------------------------------

    def _lead(self, now: int) -> list[Action]:
        self.state = LEADING
        self.phase = DISCOVERY
        self.leader = self.sid
        self.learners = {}
        self._info_acc = {self.sid: self.accepted_epoch}
        self._epoch_decided = False
        self._epoch_quorum = False
        self._epoch_acks = {self.sid}
        self.established = False
        self._lead_start = now
        self._ack_of = {}
        self.commit_point = self.committed
        out: list[Action] = [RoleChanged(LEADING, DISCOVERY, self.sid, 0)]
        out += self._maybe_decide_epoch(now)
        return out

    def _maybe_decide_epoch(self, now: int) -> list[Action]:
        if self._epoch_decided:
            return []
        if sum(1 for s in self._info_acc if s in self.voters) <= self.half:
            return []
        self._epoch_decided = True
        self.epoch = max(self._info_acc.values()) + 1
        self.accepted_epoch = self.epoch
        out: list[Action] = [self._save_epochs()]
        for ln in self.learners.values():
            if ln.phase == "info":
                ln.phase = "epoch"
                out.append(Send(ln.sid, LeaderInfo(self.epoch)))
        out += self._maybe_epoch_quorum(now)
        return out

    def _maybe_epoch_quorum(self, now: int) -> list[Action]:
        if self._epoch_quorum or not self._epoch_decided:
            return []
        if sum(1 for s in self._epoch_acks if s in self.voters) <= self.half:
            return []
        self._epoch_quorum = True
        self.current_epoch = self.epoch
        self.phase = SYNCHRONIZATION
        out: list[Action] = [self._save_epochs(),
                             RoleChanged(LEADING, SYNCHRONIZATION, self.sid, self.epoch)]
        for ln in self.learners.values():
            if ln.phase == "epoch" and ln.acked_epoch:
                out += self._sync(ln)
        out += self._maybe_establish(now)
        return out

    def _leader_receive(self, src: int, msg: ZabMessage, now: int) -> list[Action]:
        if isinstance(msg, FollowerInfo):
            out: list[Action] = []
            known = self.learners.get(src)
            if known is not None and known.phase == "info":
                known.heard = now
                return []  # a repeat while we gather a quorum
            if known is not None:
                out += self._drop_learner(src)
            if self._epoch_decided and msg.accepted_epoch > self.epoch \
                    and src in self.voters:
                # It promised a newer epoch (to a leader attempt that failed) and will
                # refuse ours for as long as we lead: make way for an election that
                # picks an epoch every voter can accept.
                log.warning("server %d: voter %d accepted epoch %d > our %d; stepping "
                            "down", self.sid, src, msg.accepted_epoch, self.epoch)
                return out + self._look(now)
            new = _Learner(src, msg.accepted_epoch, msg.last_zxid, now)
            self.learners[src] = new
            if not self._epoch_decided:
                self._info_acc[src] = msg.accepted_epoch
                return out + self._maybe_decide_epoch(now)
            new.phase = "epoch"
            out.append(Send(src, LeaderInfo(self.epoch)))
            return out
        found = self.learners.get(src)
        if found is None:
            return []
        ln = found
        ln.heard = now
        if isinstance(msg, Ack):
            if ln.phase == "synced" and msg.zxid > self._ack_of.get(src, -1):
                self._ack_of[src] = msg.zxid
                if self.established:
                    return self._advance_commit()
            return []
        if isinstance(msg, PingAck):
            return []
        if isinstance(msg, AckEpoch):
            if ln.phase != "epoch" or ln.acked_epoch or msg.epoch != self.epoch:
                return []   # (an answer to a LeaderInfo of an earlier term of ours)
            ln.acked_epoch = True
            ln.current_epoch = msg.current_epoch
            ln.last_zxid = msg.last_zxid
            if not self._epoch_quorum:
                if (msg.current_epoch, msg.last_zxid) > (self.current_epoch, self.last_logged):
                    log.warning("server %d: follower %d is ahead (%d, %#x); giving up",
                                self.sid, src, msg.current_epoch, msg.last_zxid)
                    return self._look(now)
                self._epoch_acks.add(src)
                return self._maybe_epoch_quorum(now)
            return self._sync(ln)
        if isinstance(msg, AckNewLeader):
            if ln.phase != "sync" or msg.epoch != self.epoch:
                return []
            ln.phase = "synced"
            self._ack_of[src] = msg.last_zxid
            if self.established:
                return [Send(src, UpToDate(self.commit_point))] + self._advance_commit()
            return self._maybe_establish(now)
        return []

    def _sync(self, ln: _Learner) -> list[Action]:
        """Bring learner ``ln`` to our history: DIFF, TRUNC+DIFF or SNAP, then NEWLEADER."""
        f = ln.last_zxid
        out: list[Action] = []
        hist = self.history
        if f == self.last_logged:
            start = len(hist)
            out.append(Send(ln.sid, SyncDiff()))
        elif f >= self.history_base:
            i = bisect.bisect_right(hist, f, key=lambda t: t.zxid)
            if (i > 0 and hist[i - 1].zxid == f) or (f == self.history_base):
                out.append(Send(ln.sid, SyncDiff()))
            else:
                t = hist[i - 1].zxid if i > 0 else self.history_base
                out.append(Send(ln.sid, SyncTrunc(t)))
            start = i
        else:
            # The applied state may trail ``committed`` by deliveries still queued in
            # the runtime; the history covers the gap.
            zxid, blob = self._snapshot()
            if not self.history_base <= zxid <= self.committed:
                raise RuntimeError(f"snapshot at {zxid:#x} outside the history")
            out.append(Send(ln.sid, SyncSnap(zxid, blob)))
            start = bisect.bisect_right(hist, zxid, key=lambda t: t.zxid)
        if start < len(hist):
            out.append(Send(ln.sid, Proposals(hist[start:])))
        if self.commit_point > 0:
            out.append(Send(ln.sid, Commit(self.commit_point)))
        out.append(Send(ln.sid, NewLeader(self.epoch)))
        ln.phase = "sync"
        return out

    def _maybe_establish(self, now: int) -> list[Action]:
        if self.established or not self._epoch_quorum:
            return []
        if self.durable < self.last_logged:
            return []
        synced = {self.sid} | set(self.synced_learners())
        if len(synced & self.voters) <= self.half:
            return []
        self.established = True
        self.phase = BROADCAST
        self.vote = Vote(self.epoch, self.vote.zxid, self.sid)   # updateElectionVote
        out: list[Action] = [RoleChanged(LEADING, BROADCAST, self.sid, self.epoch)]
        out += self._advance_commit(force=True)
        for s in self.synced_learners():
            out.append(Send(s, UpToDate(self.commit_point)))
        return out

    def _advance_commit(self, force: bool = False) -> list[Action]:
        acks = [self.durable if v == self.sid else self._ack_of.get(v, -1)
                for v in self.voters]
        acks.sort(reverse=True)
        q = min(acks[self.half], self.last_logged)
        out: list[Action] = []
        if q > self.commit_point:
            self.commit_point = q
            for ln in self.learners.values():
                if ln.phase == "sync" or (ln.phase == "synced" and not force):
                    out.append(Send(ln.sid, Commit(q)))
        out += self._deliver_to(min(self.commit_point, self.durable))
        return out

    def _drop_learner(self, sid: int) -> list[Action]:
        self.learners.pop(sid, None)
        self._ack_of.pop(sid, None)
        return []

    # -- shared --------------------------------------------------------------------------

    def _persist(self, txns: list[Txn]) -> Persist:
        self._expect.append(txns[-1].zxid)
        return Persist(txns)

    def _save_epochs(self) -> SaveEpochs:
        self._expect.append(None)
        return SaveEpochs(self.accepted_epoch, self.current_epoch)

    def _deliver_to(self, target: int) -> list[Action]:
        if target <= self.committed:
            return []
        hist = self.history
        lo = bisect.bisect_right(hist, self.committed, key=lambda t: t.zxid)
        hi = bisect.bisect_right(hist, target, key=lambda t: t.zxid)
        txns = hist[lo:hi]
        if not txns:
            return []
        self.committed = txns[-1].zxid
        self._trim_history()
        return [Deliver(txns)]

    def _trim_history(self) -> None:
        limit = self.timing.history_limit
        hist = self.history
        if len(hist) <= limit + limit // 2:
            return
        cut = bisect.bisect_right(hist, self.committed, key=lambda t: t.zxid)
        cut = min(cut, len(hist) - limit)
        if cut > 0:
            self.history_base = hist[cut - 1].zxid
            del hist[:cut]
