"""The simulation harness: N ``ZabPeer``s, their runtimes, a faulty network, one clock.

See the package docstring (``tests/zab_sim/__init__.py``) for what is simulated and checked.
Run one seed by hand, with its event trace::

    python -m tests.zab_sim.sim 1234            # pass/fail and a summary
    python -m tests.zab_sim.sim 1234 --trace    # plus the whole event trace
    python -m tests.zab_sim.sim 1234 --mode=replicator --links=duplex   # other models
"""

from __future__ import annotations

import bisect
import heapq
import logging
import pickle
import random
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from kernel.protocol import OpCode
from kernel.txn import SetDataTxn, Txn
from kernel.zab.messages import (
    BROADCAST,
    FOLLOWING,
    LEADING,
    SYNCHRONIZATION,
    Action,
    Deliver,
    InstallSnapshot,
    Persist,
    RoleChanged,
    SaveEpochs,
    Send,
    Truncate,
    ZabMessage,
)
from kernel.zab.peer import DurableState, Timing, ZabPeer, epoch_of

Entry = tuple[int, bytes]          # (zxid, payload): what a state machine holds per txn

RERUN_ENV = "ZAB_SIM_SEED"


def rerun_hint(seed: int, mode: str = "pipeline", links: str = "directed") -> str:
    env = f"{RERUN_ENV}={seed}"
    flags = ""
    if mode != "pipeline":
        env += f" ZAB_SIM_MODE={mode}"
        flags += f" --mode={mode}"
    if links != "directed":
        env += f" ZAB_SIM_LINKS={links}"
        flags += f" --links={links}"
    return (f"rerun: {env} python -m pytest tests/zab_sim -k env_seed   "
            f"(trace: python -m tests.zab_sim.sim {seed}{flags} --trace)")


def zx(zxid: int) -> str:
    return f"{zxid >> 32}:{zxid & 0xFFFFFFFF}"


class Violation(AssertionError):
    """A checker failed (or the liveness bound passed)."""


class SimFailure(AssertionError):
    """A seed failed; the message says how to reproduce it."""

    sim: Sim | None = None


# -- configuration ---------------------------------------------------------------------

@dataclass(frozen=True)
class SimConfig:
    seed: int
    n: int
    fault_ms: int = 6000            # sim time with faults and writes
    liveness_ms: int = 40_000       # bound for recovery once every fault is healed
    # runtime model (package docstring): "pipeline", "replicator", "replicator-fixed",
    # "list"
    mode: str = "pipeline"
    # peer links: "directed" (one connection per direction, as kernel/runtime/links.py:
    # a break tells both ends, a reconnection tells the dialler) or "duplex" (one
    # connection per pair carries both directions; both ends hear of a reconnection)
    links: str = "directed"
    tick_ms: int = 150
    finalize_wait_ms: int = 50
    max_notify_ms: int = 800
    history_limit: int = 20
    tick_every_ms: int = 50
    net_latency: tuple[int, int] = (1, 8)
    disk_latency: tuple[int, int] = (1, 12)
    disk_stall_p: float = 0.01      # chance that one storage action takes disk_stall_ms
    disk_stall_ms: tuple[int, int] = (100, 1500)
    p_loss: float = 0.0
    p_dup: float = 0.0
    p_reorder: float = 0.0
    p_reset: float = 0.0            # per message: the connection is reset instead
    rto_ms: tuple[int, int] = (100, 600)
    reconnect_ms: tuple[int, int] = (20, 300)
    fault_gap_ms: tuple[int, int] = (100, 900)
    w_crash: int = 3
    w_partition: int = 3
    w_pause: int = 2
    w_reset: int = 2
    w_leader: int = 2               # aimed at the leader: crash it just after a proposal,
                                    # or cut it off with a minority while it proposes
    downtime_ms: tuple[int, int] = (50, 2500)
    write_gap_ms: tuple[int, int] = (5, 60)
    sm_lag_p: float = 0.2           # chance a crash loses the not-yet-flushed applied tail


def config_for_seed(seed: int, **overrides: Any) -> SimConfig:
    """Everything about a run follows from its seed (overrides are for experiments)."""
    r = random.Random(seed * 7919 + 17)
    n = (3, 5, 7)[seed % 3]
    p = r.choice((0.0, 0.0005, 0.002, 0.01))
    cfg = SimConfig(
        seed=seed, n=n,
        tick_ms=r.choice((100, 150, 200)),
        finalize_wait_ms=r.choice((50, 100, 200)),
        max_notify_ms=r.choice((400, 800, 1600)),
        history_limit=r.choice((4, 10, 40, 1000)),
        p_loss=p * r.random(), p_dup=p * r.random(), p_reorder=p * r.random(),
        p_reset=p * r.random() / 2,
        disk_stall_p=r.choice((0.0, 0.005, 0.02)),
        w_crash=r.choice((0, 2, 4)), w_partition=r.choice((0, 2, 4)),
        w_pause=r.choice((0, 1, 3)), w_reset=r.choice((0, 1, 3)),
        w_leader=r.choice((0, 2, 4)),
    )
    return replace(cfg, **overrides)


# -- one server ------------------------------------------------------------------------

@dataclass
class Disk:
    """What survives a crash."""

    accepted: int = 0
    current: int = 0
    base: int = 0
    log: list[Txn] = field(default_factory=list)
    sm: list[Entry] = field(default_factory=list)   # the applied state (flushed part)


@dataclass
class Node:
    sid: int
    disk: Disk = field(default_factory=Disk)
    inc: int = 0                          # incarnation; bumps on every crash
    peer: ZabPeer | None = None           # None while crashed
    paused: bool = False
    inbox: deque[tuple[str, tuple[Any, ...]]] = field(default_factory=deque)
    # the runtime's volatile state
    sm: list[Entry] = field(default_factory=list)
    sm_zxid: int = 0
    pipeline: deque[tuple[Action, int]] = field(default_factory=deque)  # (action, list id)
    blocked_on: int | None = None         # pipeline mode: storage op the head waits for
    held: dict[int, list[Action]] = field(default_factory=dict)        # list mode
    storage: deque[tuple[int, Action]] = field(default_factory=deque)
    # "replicator" mode: kernel/runtime/ensemble.py's one FIFO of storage actions and
    # held actions, with a count of held sends per destination
    fifo: deque[Action] = field(default_factory=deque)
    deferred: dict[int, int] = field(default_factory=dict)
    storage_busy: bool = False
    next_op: int = 0
    was_established: bool = False
    role: tuple[int, str, int, int] = (0, "", 0, 0)


class Conn:
    """One TCP-like connection from ``src`` to ``dst`` (kernel/runtime/links.py: each
    server sends on the connection it dialled and receives on the ones the others
    dialled)."""

    __slots__ = ("src", "dst", "up", "cid", "sent", "expect", "last_arrival", "retry")

    def __init__(self, src: int, dst: int) -> None:
        self.src, self.dst = src, dst
        self.up = False
        self.cid = 0
        self.sent = 0                     # next sequence number to send
        self.expect = 0                   # next sequence number the receiver takes
        self.last_arrival = 0
        self.retry = False


# -- the simulation --------------------------------------------------------------------

class Sim:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.now = 0
        self._events: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self.sids = list(range(1, cfg.n + 1))
        self.nodes = {s: Node(s) for s in self.sids}
        self.conns = {(a, b): Conn(a, b) for a in self.sids for b in self.sids if a != b}
        # partitions cut unordered pairs: both directions
        self.cut: dict[tuple[int, int], int] = {
            (a, b): 0 for a in self.sids for b in self.sids if a < b}
        self.timing = Timing(tick_ms=cfg.tick_ms, init_limit=10, sync_limit=5,
                             finalize_wait_ms=cfg.finalize_wait_ms,
                             max_notify_interval_ms=cfg.max_notify_ms,
                             history_limit=cfg.history_limit)
        self.faults_on = True
        self.trace: deque[tuple[int, int, str, object]] = deque(maxlen=600)
        self.full_trace: list[tuple[int, int, str, object]] | None = None
        # checker state
        self.canon: list[Entry] = []                      # the longest delivered sequence
        self.proposed: dict[int, bytes] = {}              # zxid -> payload, every proposal
        self.proposer: dict[bytes, tuple[int, int, int]] = {}  # payload -> sid, inc, epoch
        self.acked: dict[bytes, int] = {}                 # acknowledged payload -> zxid
        self.primaries: dict[int, tuple[int, int]] = {}   # epoch -> (sid, inc) established
        self.primary_hist: dict[int, set[Entry]] = {}     # epoch -> history when established
        self.leading: dict[int, tuple[int, int]] = {}     # epoch -> (sid, inc) sync/bcast
        self.sms: list[tuple[str, list[Entry]]] = []      # state machines of past incs
        self.writes = 0
        self.final: bytes | None = None
        self._list_id = 0
        self._crash_after_propose = 0
        self._final_by: tuple[int, int, int] | None = None
        self.stats = {"events": 0, "crashes": 0, "partitions": 0, "pauses": 0, "resets": 0,
                      "breaks": 0, "elections": 0, "snaps": 0, "truncs": 0}

    # -- scheduler ---------------------------------------------------------------------

    def at(self, t: int, fn: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, fn, args))

    def after(self, dt: int, fn: Callable[..., None], *args: Any) -> None:
        self.at(self.now + dt, fn, *args)

    def run_until(self, t_end: int, stop: Callable[[], bool] | None = None) -> None:
        while self._events and self._events[0][0] <= t_end:
            t, _, fn, args = heapq.heappop(self._events)
            self.now = t
            self.stats["events"] += 1
            fn(*args)
            if stop is not None and stop():
                return
        self.now = max(self.now, t_end)

    def rand(self, lo_hi: tuple[int, int]) -> int:
        return self.rng.randint(lo_hi[0], lo_hi[1])

    def log(self, sid: int, kind: str, what: object = "") -> None:
        rec = (self.now, sid, kind, what)
        self.trace.append(rec)
        if self.full_trace is not None:
            self.full_trace.append(rec)

    def fail(self, msg: str) -> None:
        raise Violation(f"t={self.now}ms: {msg}")

    # -- peers -------------------------------------------------------------------------

    def _snapshot_fn(self, node: Node) -> Callable[[], tuple[int, bytes]]:
        def snap() -> tuple[int, bytes]:
            return node.sm_zxid, pickle.dumps((node.sm_zxid, list(node.sm)))
        return snap

    def boot(self, sid: int) -> None:
        node = self.nodes[sid]
        d = node.disk
        node.sm = list(d.sm)
        node.sm_zxid = d.sm[-1][0] if d.sm else 0
        state = DurableState(accepted_epoch=d.accepted, current_epoch=d.current,
                             base_zxid=d.base, committed_zxid=node.sm_zxid,
                             log=[t for t in d.log if t.zxid > d.base])
        node.peer = ZabPeer(sid, self.sids, state, self.timing, self._snapshot_fn(node),
                            now=self.now)
        node.paused = False
        node.inbox.clear()
        node.pipeline.clear()
        node.blocked_on = None
        node.held.clear()
        node.storage.clear()
        node.storage_busy = False
        node.fifo.clear()
        node.deferred.clear()
        node.was_established = False
        self.log(sid, "boot", f"inc={node.inc} epochs=({d.accepted},{d.current}) "
                 f"base={zx(d.base)} sm={zx(node.sm_zxid)} log={len(state.log)}")
        self._run(node, node.peer.start(self.now))
        self.after(self.rng.randint(1, self.cfg.tick_every_ms), self._tick, sid, node.inc)

    def _tick(self, sid: int, inc: int) -> None:
        node = self.nodes[sid]
        if node.inc != inc or node.peer is None:
            return
        self.after(self.cfg.tick_every_ms, self._tick, sid, inc)
        if not node.paused:
            self._process(node, "tick", ())

    def post(self, sid: int, kind: str, *args: Any) -> None:
        """An input for a server: handled now, or queued while it is paused."""
        node = self.nodes[sid]
        if node.peer is None:
            return
        if node.paused or node.inbox:
            node.inbox.append((kind, args))
        else:
            self._process(node, kind, args)

    def _process(self, node: Node, kind: str, args: tuple[Any, ...]) -> None:
        peer = node.peer
        assert peer is not None
        now = self.now
        if kind == "tick":
            acts = peer.tick(now)
        elif kind == "msg":
            src, msg = args
            self.log(node.sid, "recv", (src, msg))
            acts = peer.receive(src, msg, now)
        elif kind == "down":
            self.log(node.sid, "link_down", args[0])
            acts = peer.link_down(args[0], now)
        elif kind == "up":
            self.log(node.sid, "link_up", args[0])
            acts = peer.link_up(args[0], now)
        elif kind == "stored":
            op = args[0]
            self.log(node.sid, "stored", op)
            acts = peer.stored(now)
            if self.cfg.mode == "pipeline":
                if node.blocked_on == op:
                    node.blocked_on = None
            else:
                self._execute_all(node, node.held.pop(op, []))
        elif kind == "rstored":
            # the Replicator's worker: the storage action(s) at the head are done
            self._replicator_stored(node, args[0])
            self._check_step(node)
            return
        elif kind == "write":
            acts = self._client_write(node, args[0])
        else:
            raise AssertionError(kind)
        self._run(node, acts)
        self._check_step(node)

    def _run(self, node: Node, acts: list[Action]) -> None:
        """Carry out an action list per the runtime contract."""
        if self.cfg.mode.startswith("replicator"):
            self._replicator_run(node, acts)
            return
        if self.cfg.mode == "pipeline":
            self._list_id += 1
            for a in acts:
                node.pipeline.append((a, self._list_id))
            self._drain(node)
            return
        # "list" mode: storage actions go to the disk queue at once (it is FIFO, so a
        # storage action after another waits for it anyway); other actions wait for the
        # last storage action before them in the same list.
        waiting: int | None = None
        for a in acts:
            if isinstance(a, Persist | Truncate | InstallSnapshot | SaveEpochs):
                waiting = self._submit(node, a)
            elif waiting is not None:
                node.held.setdefault(waiting, []).append(a)
            else:
                self._execute(node, a)

    # -- "replicator" mode: a model of kernel/runtime/ensemble.py's Replicator --------

    def _channel(self, a: Action) -> int:
        """What a held action keeps its order within: its link (a Send), or, in
        "replicator-fixed" mode, the server itself (0: Deliver, RoleChanged)."""
        return a.to if isinstance(a, Send) else 0

    def _replicator_run(self, node: Node, acts: list[Action]) -> None:
        fixed = self.cfg.mode == "replicator-fixed"
        after_storage = False
        for a in acts:
            if isinstance(a, Persist | Truncate | InstallSnapshot | SaveEpochs):
                after_storage = True
                node.fifo.append(a)
            elif after_storage or node.deferred.get(self._channel(a)):
                if isinstance(a, Send) or fixed:
                    ch = self._channel(a)
                    node.deferred[ch] = node.deferred.get(ch, 0) + 1
                node.fifo.append(a)
            else:
                self._execute(node, a)
        self._replicator_work(node)

    def _replicator_work(self, node: Node) -> None:
        """The storage worker: run the FIFO's head until it must wait for the disk."""
        fifo = node.fifo
        while fifo and not node.storage_busy and node.peer is not None and not node.paused:
            a = fifo[0]
            if isinstance(a, Persist):
                n = 0
                for item in fifo:           # group commit: one write for the run
                    if not isinstance(item, Persist):
                        break
                    n += 1
                self._replicator_disk(node, n)
                return
            if isinstance(a, Truncate | SaveEpochs | InstallSnapshot):
                self._replicator_disk(node, 1)
                return
            fifo.popleft()
            if isinstance(a, Send) or self.cfg.mode == "replicator-fixed":
                node.deferred[self._channel(a)] -= 1
            self._execute(node, a)

    def _replicator_disk(self, node: Node, n: int) -> None:
        node.storage_busy = True
        dt = self.rand(self.cfg.disk_latency)
        if self.faults_on and self.rng.random() < self.cfg.disk_stall_p:
            dt = self.rand(self.cfg.disk_stall_ms)
        self.log(node.sid, "submit", f"{n} storage action(s) at the FIFO head")
        self.after(dt, self._replicator_disk_done, node.sid, node.inc, n)

    def _replicator_disk_done(self, sid: int, inc: int, n: int) -> None:
        node = self.nodes[sid]
        if node.inc != inc or node.peer is None:
            return
        for i in range(n):
            self._apply_durable(node, node.fifo[i])
        self.post(sid, "rstored", n)

    def _replicator_stored(self, node: Node, n: int) -> None:
        assert node.peer is not None
        for _ in range(n):              # (the worker stays busy until all n are reported)
            node.fifo.popleft()
            self.log(node.sid, "stored")
            self._replicator_run(node, node.peer.stored(self.now))
        node.storage_busy = False
        self._replicator_work(node)

    def _execute_all(self, node: Node, acts: list[Action]) -> None:
        for a in acts:
            if node.peer is None:
                return
            self._execute(node, a)

    def _drain(self, node: Node) -> None:
        while node.pipeline and node.blocked_on is None and node.peer is not None:
            a, lid = node.pipeline.popleft()
            if isinstance(a, Persist | Truncate | InstallSnapshot | SaveEpochs):
                op = self._submit(node, a)
                if node.pipeline and node.pipeline[0][1] == lid:
                    node.blocked_on = op
            else:
                self._execute(node, a)

    def _execute(self, node: Node, a: Action) -> None:
        if isinstance(a, Send):
            self.send(node.sid, a.to, a.msg)
        elif isinstance(a, Deliver):
            self._deliver(node, a.txns)
        elif isinstance(a, RoleChanged):
            node.role = (a.state, a.phase, a.leader, a.epoch)
            self.log(node.sid, "role", a)
            if a.phase == "election":
                self.stats["elections"] += 1
        else:
            raise AssertionError(f"unexpected action {a!r}")

    # -- storage -----------------------------------------------------------------------

    def _submit(self, node: Node, a: Action) -> int:
        node.next_op += 1
        op = node.next_op
        node.storage.append((op, a))
        self.log(node.sid, "submit", (op, a if not isinstance(a, InstallSnapshot)
                                      else f"InstallSnapshot({zx(a.zxid)})"))
        if not node.storage_busy:
            self._start_storage(node)
        return op

    def _start_storage(self, node: Node) -> None:
        node.storage_busy = True
        dt = self.rand(self.cfg.disk_latency)
        if self.faults_on and self.rng.random() < self.cfg.disk_stall_p:
            dt = self.rand(self.cfg.disk_stall_ms)
        self.after(dt, self._storage_done, node.sid, node.inc)

    def _storage_done(self, sid: int, inc: int) -> None:
        node = self.nodes[sid]
        if node.inc != inc or node.peer is None:
            return
        op, a = node.storage.popleft()
        self._apply_durable(node, a)
        node.storage_busy = False
        if node.storage:
            self._start_storage(node)
        self.post(sid, "stored", op)

    def _apply_durable(self, node: Node, a: Action) -> None:
        d = node.disk
        if isinstance(a, Persist):
            for t in a.txns:
                last = d.log[-1].zxid if d.log else d.base
                if t.zxid <= last:
                    self.fail(f"s{node.sid} persists {zx(t.zxid)} after {zx(last)}: log "
                              "not strictly increasing")
                if epoch_of(t.zxid) == epoch_of(last) and t.zxid != last + 1 and last:
                    self.fail(f"s{node.sid} persists {zx(t.zxid)} after {zx(last)}: gap "
                              "inside an epoch")
                if epoch_of(t.zxid) > d.accepted:
                    self.fail(f"s{node.sid} persists {zx(t.zxid)} above its accepted "
                              f"epoch {d.accepted}")
                d.log.append(t)
        elif isinstance(a, Truncate):
            i = bisect.bisect_right(d.log, a.zxid, key=lambda t: t.zxid)
            dropped = d.log[i:]
            del d.log[i:]
            self.stats["truncs"] += 1
            for t in dropped:
                e = (t.zxid, payload(t))
                if t.zxid <= node.sm_zxid:
                    self.fail(f"s{node.sid} truncates applied {zx(t.zxid)}")
                if e[1] in self.acked:
                    self.fail(f"s{node.sid} truncates acknowledged write {zx(t.zxid)}")
                if self._in_canon(e):
                    self.fail(f"s{node.sid} truncates delivered {zx(t.zxid)}")
            self.log(node.sid, "truncated", [zx(t.zxid) for t in dropped])
        elif isinstance(a, InstallSnapshot):
            zxid, sm = pickle.loads(a.snapshot)
            if zxid != a.zxid:
                self.fail(f"snapshot says {zx(a.zxid)} but holds state at {zx(zxid)}")
            if sm[:len(node.sm)] != node.sm:
                self.fail(f"s{node.sid} installs a snapshot at {zx(zxid)} that does not "
                          f"extend its applied state at {zx(node.sm_zxid)}")
            self.stats["snaps"] += 1
            self._check_seq(node, sm[len(node.sm):], len(node.sm))
            node.sm = list(sm)
            node.sm_zxid = zxid
            d.log = []
            d.base = zxid
            d.sm = node.sm
        elif isinstance(a, SaveEpochs):
            if a.accepted < d.accepted or a.current < d.current:
                self.fail(f"s{node.sid} epochs go back: ({d.accepted},{d.current}) -> "
                          f"({a.accepted},{a.current})")
            if a.accepted < a.current:
                self.fail(f"s{node.sid} saves accepted {a.accepted} < current {a.current}")
            d.accepted, d.current = a.accepted, a.current

    # -- state machine -----------------------------------------------------------------

    def _deliver(self, node: Node, txns: list[Txn]) -> None:
        d = node.disk
        for t in txns:
            e = (t.zxid, payload(t))
            self.log(node.sid, "deliver", zx(t.zxid))
            if t.zxid <= node.sm_zxid:
                self.fail(f"s{node.sid} delivers {zx(t.zxid)} at/below applied "
                          f"{zx(node.sm_zxid)}")
            i = bisect.bisect_left(d.log, t.zxid, key=lambda x: x.zxid)
            if i == len(d.log) or d.log[i].zxid != t.zxid or payload(d.log[i]) != e[1]:
                self.fail(f"s{node.sid} delivers {zx(t.zxid)} that is not in its durable log")
            if self.proposed.get(t.zxid) != e[1]:
                self.fail(f"s{node.sid} delivers {zx(t.zxid)} that no leader proposed "
                          "(integrity)")
            self._check_seq(node, [e], len(node.sm))
            node.sm.append(e)
            node.sm_zxid = t.zxid
            if (self.proposer.get(e[1]) == (node.sid, node.inc, epoch_of(t.zxid))
                    and node.peer is not None and node.peer.state == LEADING
                    and e[1] not in self.acked):
                self.acked[e[1]] = t.zxid
                self.log(node.sid, "ack-client", zx(t.zxid))
        # the applied state reaches the disk with the delivery (see sm_lag_p for crashes)
        d.sm = node.sm

    def _in_canon(self, e: Entry) -> bool:
        i = bisect.bisect_left(self.canon, e[0], key=lambda x: x[0])
        return i < len(self.canon) and self.canon[i] == e

    def _check_seq(self, node: Node, entries: list[Entry], start: int) -> None:
        """Agreement/total order: every applied sequence is a prefix of one sequence."""
        canon = self.canon
        for k, e in enumerate(entries):
            i = start + k
            if i < len(canon):
                if canon[i] != e:
                    self.fail(f"agreement: s{node.sid} applies {zx(e[0])}:{e[1]!r} at "
                              f"position {i}, others applied {zx(canon[i][0])}:"
                              f"{canon[i][1]!r}")
                continue
            prev = canon[-1][0] if canon else 0
            if e[0] <= prev:
                self.fail(f"total order: {zx(e[0])} applied after {zx(prev)}")
            if epoch_of(e[0]) == epoch_of(prev) and prev and e[0] != prev + 1:
                self.fail(f"primary order: {zx(e[0])} applied right after {zx(prev)} "
                          "(gap in the epoch)")
            if epoch_of(e[0]) != epoch_of(prev) and e[0] & 0xFFFFFFFF != 1:
                self.fail(f"primary order: first applied txn of epoch {epoch_of(e[0])} is "
                          f"{zx(e[0])}, not its first proposal")
            for ep, hist in self.primary_hist.items():
                if ep > epoch_of(e[0]) and e not in hist:
                    self.fail(f"primary integrity: {zx(e[0])} is delivered but the primary "
                              f"of epoch {ep} {self.primaries[ep]} did not have it when it "
                              "was established")
            canon.append(e)

    # -- per-step checks ---------------------------------------------------------------

    def _check_step(self, node: Node) -> None:
        p = node.peer
        if p is None:
            return
        if p.state == LEADING and p.phase in (SYNCHRONIZATION, BROADCAST):
            me = (node.sid, node.inc)
            other = self.leading.setdefault(p.epoch, me)
            if other != me:
                self.fail(f"two leaders in epoch {p.epoch}: s{other[0]} and s{node.sid}")
        if p.accepted_epoch < p.current_epoch:
            self.fail(f"s{node.sid}: accepted epoch {p.accepted_epoch} < current "
                      f"{p.current_epoch}")
        if p.committed > p.last_logged:
            self.fail(f"s{node.sid}: committed {zx(p.committed)} beyond last logged "
                      f"{zx(p.last_logged)}")
        if p.last_logged != (p.history[-1].zxid if p.history else p.history_base):
            self.fail(f"s{node.sid}: last_logged {zx(p.last_logged)} is not the end of its "
                      "history")
        est = p.state == LEADING and p.established
        if est and not node.was_established:
            self._on_established(node, p)
        node.was_established = est

    def _on_established(self, node: Node, p: ZabPeer) -> None:
        ep = p.epoch
        self.log(node.sid, "ESTABLISHED", f"epoch {ep} last={zx(p.last_logged)}")
        if ep in self.primaries:
            self.fail(f"epoch {ep} established twice: {self.primaries[ep]} and s{node.sid}")
        hist: set[Entry] = set(node.sm)
        hist.update((t.zxid, payload(t)) for t in node.disk.log)
        hist.update((t.zxid, payload(t)) for t in p.history)
        for e in self.canon:
            if epoch_of(e[0]) < ep and e not in hist:
                what = "acknowledged write" if e[1] in self.acked else "delivered txn"
                self.fail(f"s{node.sid} established epoch {ep} without the {what} "
                          f"{zx(e[0])}")
        for data, z in self.acked.items():
            if (z, data) not in hist and epoch_of(z) < ep:
                self.fail(f"s{node.sid} established epoch {ep} without acknowledged write "
                          f"{zx(z)}")
        self.primaries[ep] = (node.sid, node.inc)
        self.primary_hist[ep] = hist

    # -- clients -----------------------------------------------------------------------

    def _client_write(self, node: Node, count: int) -> list[Action]:
        p = node.peer
        assert p is not None
        if not (p.state == LEADING and p.established):
            return []
        z = p.next_zxid
        txns = []
        for i in range(count):
            self.writes += 1
            data = b"w%d" % self.writes
            zxid = z + i
            if zxid in self.proposed:
                self.fail(f"s{node.sid} proposes {zx(zxid)} a second time")
            prev = zxid - 1
            if zxid & 0xFFFFFFFF != 1 and prev not in self.proposed:
                self.fail(f"s{node.sid} proposes {zx(zxid)} without {zx(prev)} before it")
            self.proposed[zxid] = data
            self.proposer[data] = (node.sid, node.inc, p.epoch)
            txns.append(Txn(zxid=zxid, session_id=0x100 + node.sid, cxid=self.writes,
                            time=self.now, op=OpCode.SET_DATA,
                            body=SetDataTxn("/k", data, self.writes)))
        self.log(node.sid, "propose", [zx(t.zxid) for t in txns])
        if self._crash_after_propose == node.sid:
            self._crash_after_propose = 0
            self.after(self.rng.randint(0, 6), self._crash_for, node.sid, node.inc)
        return p.propose(txns, self.now)

    def _writer(self) -> None:
        if not self.faults_on:
            return
        self.after(self.rand(self.cfg.write_gap_ms), self._writer)
        leaders = [s for s in self.sids if self._is_leader(s)]
        if leaders:
            self.post(self.rng.choice(leaders), "write", self.rng.randint(1, 3))

    def _is_leader(self, sid: int) -> bool:
        p = self.nodes[sid].peer
        return p is not None and p.state == LEADING and p.established

    # -- network -----------------------------------------------------------------------

    def _cut(self, a: int, b: int) -> int:
        return self.cut[(a, b) if a < b else (b, a)]

    def _linked(self, key: tuple[int, int]) -> list[tuple[int, int]]:
        """The connections that break and come back together with ``key``."""
        if self.cfg.links == "duplex":
            return [key, (key[1], key[0])]
        return [key]

    def send(self, src: int, dst: int, msg: ZabMessage) -> None:
        key = (src, dst)
        c = self.conns[key]
        if not c.up:
            self.log(src, "send-dropped(link down)", (dst, msg))
            return
        self.log(src, "send", (dst, msg))
        seq = c.sent
        c.sent = seq + 1
        rng = self.rng
        faults = self.faults_on
        if self._cut(src, dst) or (faults and rng.random() < self.cfg.p_loss):
            # lost on the wire: the sender's retransmission timer gives up later
            self.after(self.rand(self.cfg.rto_ms), self._lost, key, c.cid, seq)
            return
        if faults and rng.random() < self.cfg.p_reset:
            self.after(1, self._break, key, c.cid, "reset")
            return
        arrival = max(self.now + self.rand(self.cfg.net_latency), c.last_arrival)
        if faults and rng.random() < self.cfg.p_reorder:
            arrival += rng.randint(1, 40)     # overtaken by later packets
        else:
            c.last_arrival = arrival
        self.at(arrival, self._arrive, key, c.cid, seq, msg)
        if faults and rng.random() < self.cfg.p_dup:
            self.at(arrival + rng.randint(0, 20), self._arrive, key, c.cid, seq, msg)

    def _arrive(self, key: tuple[int, int], cid: int, seq: int, msg: ZabMessage) -> None:
        c = self.conns[key]
        if not c.up or c.cid != cid:
            return
        if seq != c.expect:
            why = "duplicate" if seq < c.expect else "gap"
            self._break(key, cid, f"{why} seq {seq} expected {c.expect}")
            return
        c.expect = seq + 1
        self.post(c.dst, "msg", c.src, msg)

    def _lost(self, key: tuple[int, int], cid: int, seq: int) -> None:
        c = self.conns[key]
        if c.up and c.cid == cid and c.expect <= seq:
            self._break(key, cid, "retransmission timeout")

    def _break(self, key: tuple[int, int], cid: int, why: str) -> None:
        c = self.conns[key]
        if not c.up or c.cid != cid:
            return
        for k in self._linked(key):
            ck = self.conns[k]
            ck.up = False
            ck.cid += 1
        self.stats["breaks"] += 1
        self.log(0, "link-break", f"{key[0]}->{key[1]} {why}")
        # both ends hear of it: the dialler's connection closed, the acceptor's too
        src, dst = key
        self.post(src, "down", dst)
        self.post(dst, "down", src)
        self._schedule_reconnect(key)

    def _schedule_reconnect(self, key: tuple[int, int]) -> None:
        c = self.conns[key]
        if not c.retry:
            c.retry = True
            self.after(self.rand(self.cfg.reconnect_ms), self._reconnect, key)

    def _reconnect(self, key: tuple[int, int]) -> None:
        c = self.conns[key]
        c.retry = False
        if c.up:
            return
        src, dst = key
        if self._cut(src, dst) or self.nodes[src].peer is None or self.nodes[dst].peer is None:
            self._schedule_reconnect(key)
            return
        linked = self._linked(key)
        for k in linked:
            ck = self.conns[k]
            ck.up = True
            ck.cid += 1
            ck.sent = ck.expect = 0
            ck.last_arrival = self.now
        self.log(0, "link-up", f"{src}->{dst}")
        # the dialler learns that its connection is up (duplex: both ends do)
        ups = [(k[0], k[1]) for k in linked]
        self.rng.shuffle(ups)
        for a, b in ups:
            self.post(a, "up", b)

    # -- faults ------------------------------------------------------------------------

    def _fault(self) -> None:
        if not self.faults_on:
            return
        self.after(self.rand(self.cfg.fault_gap_ms), self._fault)
        cfg = self.cfg
        kinds = (["crash"] * cfg.w_crash + ["partition"] * cfg.w_partition
                 + ["pause"] * cfg.w_pause + ["reset"] * cfg.w_reset
                 + ["leader"] * cfg.w_leader)
        if not kinds:
            return
        kind = self.rng.choice(kinds)
        if kind == "crash":
            up = [s for s in self.sids if self.nodes[s].peer is not None]
            if up:
                s = self.rng.choice(up)
                self.crash(s)
                self.after(self.rand(cfg.downtime_ms), self.restart, s)
        elif kind == "leader":
            leaders = [s for s in self.sids if self._is_leader(s)]
            if not leaders:
                return
            lid = self.rng.choice(leaders)
            if self.rng.random() < 0.5:
                self._crash_after_propose = lid
            else:
                others = [s for s in self.sids if s != lid]
                k = self.rng.randint(0, len(self.sids) // 2 - 1)
                self._partition({lid} | set(self.rng.sample(others, k)))
        elif kind == "partition":
            k = self.rng.randint(1, max(1, len(self.sids) // 2 + 1))
            self._partition(set(self.rng.sample(self.sids, k)))
        elif kind == "pause":
            up = [s for s in self.sids if self.nodes[s].peer is not None
                  and not self.nodes[s].paused]
            if up:
                s = self.rng.choice(up)
                self.stats["pauses"] += 1
                self.nodes[s].paused = True
                self.log(s, "PAUSE")
                self.after(self.rand(cfg.downtime_ms), self.resume, s, self.nodes[s].inc)
        else:
            live = sorted(k for k, c in self.conns.items() if c.up)
            if live:
                key = self.rng.choice(live)
                self.stats["resets"] += 1
                self._break(key, self.conns[key].cid, "reset by fault")

    def _partition(self, side: set[int]) -> None:
        self.stats["partitions"] += 1
        pairs = self.cut_off(side)
        self.after(self.rand(self.cfg.downtime_ms), self._heal, pairs)

    def _crash_for(self, sid: int, inc: int) -> None:
        if self.nodes[sid].inc == inc and self.faults_on:
            self.crash(sid)
            self.after(self.rand(self.cfg.downtime_ms), self.restart, sid)

    def _heal(self, pairs: list[tuple[int, int]]) -> None:
        for key in pairs:
            if self.cut[key]:
                self.cut[key] -= 1
        self.log(0, "heal", pairs)

    def crash(self, sid: int) -> None:
        node = self.nodes[sid]
        if node.peer is None:
            return
        self.stats["crashes"] += 1
        self.log(sid, "CRASH", f"inc={node.inc} pending storage={len(node.storage)}")
        self.sms.append((f"s{sid}#{node.inc}", node.sm))
        d = node.disk
        if self.faults_on and self.rng.random() < self.cfg.sm_lag_p:
            # the applied state on disk may trail the one in memory: the restart starts
            # from an older committed_zxid (never below the log's base) and the leader's
            # commits deliver the tail again
            floor = bisect.bisect_right(d.sm, d.base, key=lambda e: e[0])
            d.sm = list(d.sm[:self.rng.randint(floor, len(d.sm))])
        else:
            d.sm = list(d.sm)
        node.peer = None
        node.inc += 1
        node.paused = False
        for key in sorted(self.conns):
            if sid in key and self.conns[key].up:
                self._break(key, self.conns[key].cid, f"s{sid} crashed")

    def restart(self, sid: int) -> None:
        if self.nodes[sid].peer is None:
            self.boot(sid)
            for key in sorted(self.conns):
                if sid in key:
                    self._schedule_reconnect(key)

    def resume(self, sid: int, inc: int) -> None:
        node = self.nodes[sid]
        if node.inc != inc or not node.paused:
            return
        node.paused = False
        self.log(sid, "RESUME", f"{len(node.inbox)} queued")
        while node.inbox and not node.paused and node.peer is not None and node.inc == inc:
            kind, args = node.inbox.popleft()
            self._process(node, kind, args)
        if self.cfg.mode == "pipeline" and node.peer is not None:
            self._drain(node)
        if self.cfg.mode.startswith("replicator") and node.peer is not None:
            self._replicator_work(node)

    # -- the run -----------------------------------------------------------------------

    def converged(self) -> bool:
        leaders = [s for s in self.sids if self._is_leader(s)]
        if len(leaders) != 1:
            return False
        lid = leaders[0]
        for s in self.sids:
            p = self.nodes[s].peer
            if p is None or p.phase != BROADCAST:
                return False
            if s != lid and (p.state != FOLLOWING or p.leader != lid):
                return False
        return True

    def settled(self) -> bool:
        if not self.converged():
            return False
        first = self.nodes[self.sids[0]].sm
        if any(self.nodes[s].sm != first for s in self.sids):
            return False
        applied = set(first)
        if self.final is None or self.final not in self.acked:
            return False
        return all((z, d) in applied for d, z in self.acked.items())

    def run(self) -> None:
        self.start()
        self.run_until(self.cfg.fault_ms)
        self.finish()

    def start(self) -> None:
        """Boot every server; clients write and the fault injector runs from now on."""
        cfg = self.cfg
        for s in self.sids:
            self.boot(s)
        for key in sorted(self.conns):      # every server dials every other one
            self._schedule_reconnect(key)
        self.after(self.rand(cfg.write_gap_ms), self._writer)
        self.after(self.rand(cfg.fault_gap_ms), self._fault)

    # scripted scenarios use these
    def leader(self) -> int | None:
        """The established leader of the highest epoch, if any."""
        best: tuple[int, int] | None = None
        for s in self.sids:
            p = self.nodes[s].peer
            if p is not None and p.state == LEADING and p.established:
                if best is None or p.epoch > best[0]:
                    best = (p.epoch, s)
        return best[1] if best else None

    def cut_off(self, side: set[int]) -> list[tuple[int, int]]:
        """Partition ``side`` from the others until ``heal``."""
        pairs = sorted(key for key in self.cut if (key[0] in side) != (key[1] in side))
        self.log(0, "partition", sorted(side))
        for key in pairs:
            self.cut[key] += 1
        return pairs

    def heal(self, pairs: list[tuple[int, int]]) -> None:
        self._heal(pairs)

    def crash_after_next_proposal(self, sid: int) -> None:
        """Crash ``sid`` 0-6 ms after it next proposes; it restarts a while later."""
        self._crash_after_propose = sid

    def finish(self) -> None:
        """Heal every fault, restart every server, and check that the ensemble recovers."""
        cfg = self.cfg
        self.faults_on = False
        self.log(0, "HEAL-ALL")
        for key in self.cut:
            self.cut[key] = 0
        for s in self.sids:
            node = self.nodes[s]
            if node.peer is None:
                self.restart(s)
            elif node.paused:
                self.resume(s, node.inc)
        for key in sorted(self.conns):
            if not self.conns[key].up:
                self._schedule_reconnect(key)
        deadline = self.now + cfg.liveness_ms
        while True:
            # a client writes until one write commits; it writes again when the write
            # it waits on was given to a leader that is gone
            self.run_until(deadline, lambda: self.settled() or self._need_final())
            if self.settled():
                return
            if not self._need_final():
                break
            leader = next(s for s in self.sids if self._is_leader(s))
            p = self.nodes[leader].peer
            assert p is not None
            before = self.writes
            self.post(leader, "write", 1)
            if self.writes == before:
                self.fail(f"s{leader} is the established leader but took no write")
            self.final = b"w%d" % self.writes
            self._final_by = (leader, self.nodes[leader].inc, p.epoch)
        if not self.converged():
            self.fail(f"liveness: no stable leader with every peer in broadcast "
                      f"{cfg.liveness_ms} ms after healing; roles: {self.roles()}")
        self.fail(f"liveness: the state machines did not converge within "
                  f"{cfg.liveness_ms} ms after healing; roles: {self.roles()}; applied: "
                  + ", ".join(f"s{s}={zx(self.nodes[s].sm_zxid)}" for s in self.sids))

    def _need_final(self) -> bool:
        if not self.converged():
            return False
        if self.final is not None and self.final in self.acked:
            return False
        leader = next(s for s in self.sids if self._is_leader(s))
        p = self.nodes[leader].peer
        assert p is not None
        return self._final_by != (leader, self.nodes[leader].inc, p.epoch)

    def roles(self) -> str:
        out = []
        for s in self.sids:
            p = self.nodes[s].peer
            if p is None:
                out.append(f"s{s}=down")
            else:
                st = {0: "looking", 1: "following", 2: "leading"}[p.state]
                out.append(f"s{s}={st}/{p.phase}/e{p.epoch}/L{p.leader}"
                           f"/last={zx(p.last_logged)}/c={zx(p.committed)}")
        return " ".join(out)

    def format_trace(self, recs: list[tuple[int, int, str, object]] | None = None) -> str:
        lines = []
        for t, sid, kind, what in (recs if recs is not None else list(self.trace)):
            who = f"s{sid}" if sid else "net"
            lines.append(f"{t:>7} {who:>4} {kind:<12} {_short(what)}")
        return "\n".join(lines)


def payload(t: Txn) -> bytes:
    body = t.body
    assert isinstance(body, SetDataTxn) and body.data is not None
    return body.data


def _short(what: object) -> str:
    if isinstance(what, tuple) and len(what) == 2:
        return f"{what[0]} {_msg(what[1])}"
    return _msg(what)


def _msg(m: object) -> str:
    from kernel.zab.messages import Proposal, SyncSnap
    if isinstance(m, Proposal):
        return f"Proposal({zx(m.txn.zxid)})"
    if isinstance(m, SyncSnap):
        return f"SyncSnap({zx(m.zxid)})"
    if isinstance(m, Persist):
        return f"Persist({[zx(t.zxid) for t in m.txns]})"
    if isinstance(m, Send):
        return f"Send({m.to}, {_msg(m.msg)})"
    s = repr(m)
    return s if len(s) < 200 else s[:200] + "..."


@dataclass
class SimResult:
    cfg: SimConfig
    sim: Sim


def run_seed(seed: int, keep_trace: bool = False, **overrides: Any) -> SimResult:
    """Run one seed; raise ``SimFailure`` (with the rerun command) if a checker fails."""
    cfg = config_for_seed(seed, **overrides)
    sim = Sim(cfg)
    if keep_trace:
        sim.full_trace = []
    try:
        sim.run()
    except Violation as e:
        failure = SimFailure(_failure_text(sim, str(e)))
        failure.sim = sim
        raise failure from None
    except Exception as e:  # a crash inside the peer is a failure of the seed too
        failure = SimFailure(_failure_text(sim, f"{type(e).__name__}: {e}"))
        failure.sim = sim
        raise failure from e
    return SimResult(cfg, sim)


def _failure_text(sim: Sim, what: str) -> str:
    cfg = sim.cfg
    return (f"zab sim seed {cfg.seed} failed (n={cfg.n}, mode={cfg.mode}): {what}\n"
            f"{rerun_hint(cfg.seed, cfg.mode, cfg.links)}\nroles: {sim.roles()}\nlast events:\n"
            + sim.format_trace(list(sim.trace)[-80:]))


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m tests.zab_sim.sim SEED [--trace]")
        return 2
    seed = int(argv[0])
    trace = "--trace" in argv
    overrides: dict[str, Any] = {}
    for arg in argv[1:]:
        if arg.startswith("--mode="):
            overrides["mode"] = arg.split("=", 1)[1]
        elif arg.startswith("--links="):
            overrides["links"] = arg.split("=", 1)[1]
        elif arg.startswith("--fault-ms="):
            overrides["fault_ms"] = int(arg.split("=", 1)[1])
    logging.getLogger("kernel.zab").setLevel(logging.CRITICAL)
    try:
        res = run_seed(seed, keep_trace=trace, **overrides)
    except SimFailure as e:
        if trace and e.sim is not None and e.sim.full_trace is not None:
            print(e.sim.format_trace(e.sim.full_trace))
        print(e)
        return 1
    sim = res.sim
    if trace and sim.full_trace is not None:
        print(sim.format_trace(sim.full_trace))
    print(f"seed {seed} ok: n={res.cfg.n} mode={res.cfg.mode} t={sim.now}ms "
          f"writes={sim.writes} acked={len(sim.acked)} delivered={len(sim.canon)} "
          f"epochs={sorted(sim.primaries)} {sim.stats}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
