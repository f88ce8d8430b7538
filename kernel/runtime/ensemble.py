"""The runtime of a replicated server: drives the sans-I/O Zab peer.

It carries out the peer's actions (``kernel.zab.peer`` states the contract): sends go
out on the peer links at once; storage actions run one after another on a worker
(consecutive ``Persist`` actions share one write and one fsync: group commit), and each
completion is reported back with ``peer.stored()``. An action that follows a storage
action in the same list waits for it; a later send to a peer that already has a send
waiting waits behind it (per-link order), and a later ``Deliver`` or ``RoleChanged``
waits behind any of those two still waiting (commits apply in order). Sends to other
peers and deliveries do not wait for unrelated fsyncs, so the leader keeps proposing
while its own log syncs. ``Deliver`` applies committed transactions to the kernel;
``RoleChanged`` starts or stops client service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from typing import TypeVar

import anyio

from kernel.clock import Clock
from kernel.config import ConfigError, ServerConfig
from kernel.core import Kernel
from kernel.forwarding import Touch
from kernel.runtime.links import PeerLinks
from kernel.snapshot import decode_snapshot, encode_snapshot
from kernel.storage import ReplicatedStorage, StorageError
from kernel.tls import TlsSettings, build_context
from kernel.txn import Txn
from kernel.zab.messages import (
    BROADCAST,
    LEADING,
    LOOKING,
    STORAGE_ACTIONS,
    Action,
    Deliver,
    InstallSnapshot,
    Persist,
    Proposal,
    Proposals,
    RoleChanged,
    SaveEpochs,
    Send,
    Truncate,
)
from kernel.zab.peer import DurableState, Timing, ZabPeer, epoch_of

log = logging.getLogger(__name__)
T = TypeVar("T")
# Every peer message in the log (ZKERNEL_TRACE_PEERS=1): for debugging elections.
_TRACE = os.environ.get("ZKERNEL_TRACE_PEERS") == "1"

# Committed transactions read back at start for DIFF syncs (newer than the tree's).
_HISTORY_ON_START = 10_000
_REPLICATED_METHODS = ("epochs", "set_epochs", "log_since", "truncate_log",
                       "install_snapshot")


def _bool_key(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "1", "on")


def check_replicated_storage(storage: object) -> ReplicatedStorage:
    """The storage, if it can serve an ensemble member; ConfigError otherwise."""
    missing = [m for m in _REPLICATED_METHODS if not hasattr(storage, m)]
    if missing or not hasattr(storage, "replay_log"):
        name = getattr(storage, "name", type(storage).__name__)
        raise ConfigError(f"storage {name!r} cannot run in an ensemble (it lacks "
                          f"{', '.join(missing) or 'replay_log'})")
    return storage  # type: ignore[return-value]


class Replicator:
    """One ensemble member's Zab peer, peer links and storage worker."""

    def __init__(self, config: ServerConfig, kernel: Kernel, storage: ReplicatedStorage,
                 clock: Clock) -> None:
        self.config = config
        self.kernel = kernel
        self.storage = storage
        self.clock = clock
        sid = config.server_id
        voters = [s for s, a in config.servers.items() if not a.observer]
        # An observer (server.N=...:observer) learns the history and serves clients but
        # never votes: neither in elections nor in commit quorums.
        self.observer = sid not in voters
        if not voters:
            raise ConfigError("the configuration lists no voting server")
        state = self._durable_state()
        tick = config.tick_time
        timing = Timing(tick_ms=tick, init_limit=config.init_limit,
                        sync_limit=config.sync_limit,
                        finalize_wait_ms=min(200, max(20, tick // 2)),
                        max_notify_interval_ms=max(400, 2 * tick))
        self.peer = ZabPeer(sid, voters, state, timing, self._snapshot, clock.mono_ms())
        peers = dict(config.servers)
        server_ssl = client_ssl = None
        if _bool_key(config.get("sslQuorum")):
            # ZooKeeper's quorum TLS keys; both sides present and verify certificates.
            settings = TlsSettings.from_config(config, "ssl.quorum.",
                                               "sslQuorumReloadCertFiles")
            server_ssl = build_context(settings, server_side=True)
            server_ssl.verify_mode = ssl.CERT_REQUIRED
            client_ssl = build_context(settings, server_side=False)
        self.links = PeerLinks(sid, peers, self._on_message, self._on_up, self._on_down,
                               server_ssl, client_ssl)
        kernel.send_to_peer = self.links.send
        kernel.quorum.quorum_size = len(voters)
        self._fifo: deque[Action] = deque()
        self._deferred_sends: dict[int, int] = {}
        self._deferred_state = 0
        self._work = anyio.Event()
        self._pump_scheduled = False
        # readonlymode.enabled: after this long without a quorum, serve reads only.
        self._read_only_after = (max(2000, config.tick_time)
                                 if _bool_key(config.get("readonlymode.enabled")) else None)
        self._looking_since = clock.mono_ms()

    def _durable_state(self) -> DurableState:
        accepted, current = self.storage.epochs()
        committed = self.kernel.tree.last_zxid
        base = committed
        recent = getattr(self.storage, "recent_log", None)
        tail: list[Txn] = []
        if recent is not None:
            # Some committed history too, so learners a little behind get a DIFF.
            base, tail = recent(_HISTORY_ON_START)
        if base > committed:
            base = committed
            try:
                tail = list(self.storage.log_since(committed))
            except StorageError as e:
                log.warning("log tail unreadable (%s); starting from the applied state", e)
                tail = []
        last = tail[-1].zxid if tail else committed
        if epoch_of(last) > current:
            # Data from a standalone server or an import: adopt its epoch.
            current = epoch_of(last)
            accepted = max(accepted, current)
            self.storage.set_epochs(accepted, current)
        if accepted < current:
            raise StorageError(f"acceptedEpoch {accepted} < currentEpoch {current}: the "
                               f"data directory is inconsistent")
        log.info("server %d: epochs accepted=%d current=%d, applied %#x, logged %#x",
                 self.config.server_id, accepted, current, committed, last)
        return DurableState(accepted, current, base, committed, tail)

    def _snapshot(self) -> tuple[int, bytes]:
        tree = self.kernel.tree
        return tree.last_zxid, encode_snapshot(tree)

    # -- running -------------------------------------------------------------------------

    async def run(self, tg: anyio.abc.TaskGroup) -> None:
        await self.links.start()
        self._run(self.peer.start(self.clock.mono_ms()))
        tg.start_soon(self._storage_worker)
        tg.start_soon(self._ticker)
        tg.start_soon(self._toucher)

    async def close(self) -> None:
        await self.links.close()

    def wake(self) -> None:
        """The kernel has proposals (leader): hand them to Zab on the next loop turn."""
        if not self._pump_scheduled:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_scheduled = False
        batch = self.kernel.take_batch()
        if not batch:
            return
        peer = self.peer
        if peer.state == LEADING and peer.established and self.kernel.role == "leader":
            self._run(peer.propose(batch, self.clock.mono_ms()))
        else:
            log.info("dropping %d proposals: no longer leading", len(batch))

    async def _ticker(self) -> None:
        step = max(0.01, min(self.config.tick_time / 4000, 0.05))
        while True:
            await anyio.sleep(step)
            now = self.clock.mono_ms()
            self._run(self.peer.tick(now))
            # What the four-letter words show: refreshed per tick, not per message.
            self._update_status()
            wait = self._read_only_after
            if wait is not None and self.kernel.role == "looking" \
                    and self.peer.state == LOOKING and now - self._looking_since >= wait:
                log.info("server %d: no quorum for %d ms; serving read-only",
                         self.config.server_id, now - self._looking_since)
                self.kernel.become("read-only")

    async def _toucher(self) -> None:
        step = max(0.02, self.config.tick_time / 2000)
        while True:
            await anyio.sleep(step)
            k = self.kernel
            if k.role == "follower":
                touches = k.take_touches()
                if touches:
                    self.links.send(k.leader_id, Touch(touches))

    # -- link events -----------------------------------------------------------------------

    def _on_message(self, sid: int, msg: object) -> None:
        now = self.clock.mono_ms()
        if _TRACE:
            log.debug("server %d <- %d: %r", self.config.server_id, sid, msg)
        if isinstance(msg, _ZAB_TYPES):
            self._run(self.peer.receive(sid, msg, now))
        else:
            self.kernel.from_peer(sid, msg)  # type: ignore[arg-type]

    def _on_up(self, sid: int) -> None:
        log.debug("server %d: link to %d up", self.config.server_id, sid)
        self._run(self.peer.link_up(sid, self.clock.mono_ms()))

    def _on_down(self, sid: int) -> None:
        log.debug("server %d: link to %d down", self.config.server_id, sid)
        self._run(self.peer.link_down(sid, self.clock.mono_ms()))

    # -- actions ---------------------------------------------------------------------------

    def _run(self, actions: Sequence[Action]) -> None:
        if not actions:
            return
        after_storage = False
        for a in actions:
            if isinstance(a, STORAGE_ACTIONS):
                after_storage = True
                self._fifo.append(a)
            elif isinstance(a, Send):
                if after_storage or self._deferred_sends.get(a.to):
                    self._deferred_sends[a.to] = self._deferred_sends.get(a.to, 0) + 1
                    self._fifo.append(a)
                else:
                    self._execute(a)
            elif after_storage or self._deferred_state:
                # Deliver and RoleChanged keep their order among themselves: a later
                # commit must never be applied before one still waiting here.
                self._deferred_state += 1
                self._fifo.append(a)
            else:
                self._execute(a)
        if after_storage:
            self._work.set()

    def _execute(self, a: Action) -> None:
        if isinstance(a, Send):
            msg = a.msg
            if isinstance(msg, Proposal | Proposals):
                frame = self._proposal_frame(msg)
                self.links.send_encoded(a.to, frame)
            else:
                self.links.send(a.to, msg)
        elif isinstance(a, Deliver):
            self.kernel.deliver(a.txns)
        elif isinstance(a, RoleChanged):
            self._role_changed(a)

    _last_proposal: tuple[object, bytes] | None = None

    def _proposal_frame(self, msg: Proposal | Proposals) -> bytes:
        # The same proposal goes to every learner: encode it once.
        last = self._last_proposal
        if last is not None and last[0] is msg:
            return last[1]
        frame = self.links.registry.encode(msg)
        self._last_proposal = (msg, frame)
        return frame

    def _role_changed(self, a: RoleChanged) -> None:
        k = self.kernel
        k.quorum.phase = a.phase
        if a.phase == BROADCAST:
            role = "leader" if a.state == LEADING else "follower"
            log.info("server %d: %s of epoch %d", self.config.server_id, role, a.epoch)
            k.become(role, a.leader, a.epoch, self.peer.next_zxid)
            if self.observer:
                k.quorum.mode = "observer"
        elif k.role != "looking":
            log.info("server %d: stops serving (%s)", self.config.server_id, a.phase)
            k.become("looking", a.leader, a.epoch)
            self._looking_since = self.clock.mono_ms()
        else:
            k.quorum.leader_id = a.leader
            k.quorum.epoch = a.epoch

    def _update_status(self) -> None:
        q = self.kernel.quorum
        peer = self.peer
        if peer.state == LEADING:
            q.learners = len(peer.learners)
            synced = peer.synced_learners()
            q.synced_followers = sum(1 for s in synced if s in peer.voters)
            q.synced_observers = len(synced) - q.synced_followers
            q.pending_syncs = sum(1 for ln in peer.learners.values() if ln.phase == "sync")
        else:
            q.learners = q.synced_followers = q.pending_syncs = 0

    async def _storage_worker(self) -> None:
        fifo = self._fifo
        storage = self.storage
        blocking = storage.blocking
        while True:
            if not fifo:
                self._work = anyio.Event()
                await self._work.wait()
                continue
            a = fifo[0]
            if isinstance(a, Persist):
                n = 0
                txns = []
                for item in fifo:
                    if not isinstance(item, Persist):
                        break
                    txns.extend(item.txns)
                    n += 1
                with self.kernel.tracer.span("persist", len(txns)):
                    if blocking:
                        await anyio.to_thread.run_sync(storage.append, txns)
                    else:
                        storage.append(txns)
                for _ in range(n):
                    fifo.popleft()
                    self._run(self.peer.stored(self.clock.mono_ms()))
                continue
            if isinstance(a, Truncate):
                await self._blocking(storage.truncate_log, a.zxid)
            elif isinstance(a, SaveEpochs):
                await self._blocking(storage.set_epochs, a.accepted, a.current)
            elif isinstance(a, InstallSnapshot):
                tree = decode_snapshot(a.snapshot)
                served = await self._blocking(storage.install_snapshot, tree)
                self.kernel.install_tree(served)
                log.info("server %d: installed a snapshot at %#x", self.config.server_id,
                         a.zxid)
            else:
                fifo.popleft()
                if isinstance(a, Send):
                    self._deferred_sends[a.to] -= 1
                else:
                    self._deferred_state -= 1
                self._execute(a)
                continue
            fifo.popleft()
            self._run(self.peer.stored(self.clock.mono_ms()))

    async def _blocking(self, fn: Callable[..., T], *args: object) -> T:
        if self.storage.blocking:
            return await anyio.to_thread.run_sync(fn, *args)
        return fn(*args)


from kernel.zab import messages as _m  # noqa: E402

_ZAB_TYPES = (_m.Notification, _m.FollowerInfo, _m.LeaderInfo, _m.AckEpoch, _m.SyncDiff,
              _m.SyncTrunc, _m.SyncSnap, _m.NewLeader, _m.AckNewLeader, _m.UpToDate,
              _m.Proposal, _m.Proposals, _m.Ack, _m.Commit, _m.Ping, _m.PingAck)
