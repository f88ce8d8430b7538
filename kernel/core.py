"""The kernel: sessions, the request pipeline and reads, independent of any transport.

Write path (one pipeline, also on a standalone server): prep → Zab broadcast →
storage (durable) → apply → watch events → reply. Reads are served straight from the
tree, but only after every earlier request of the same session has been answered
(ZooKeeper's per-session FIFO), so a client never sees its own writes out of order.

The kernel is driven by its runtime: ``take_batch`` / ``durable`` move proposals
through storage, ``tick`` expires sessions, ``reap`` removes containers and TTL nodes.
It does no I/O itself.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from kernel.acl import ACLChecker, AuthProvider, IPAuthProvider, redact_for_reader
from kernel.clock import Clock
from kernel.config import ConfigError, ServerConfig
from kernel.errors import (
    AuthFailed,
    BadArguments,
    MarshallingError,
    NoAuth,
    NoNode,
    NotReadOnly,
    NoWatcher,
    SessionClosedRequireSaslAuth,
    SessionExpired,
    SessionMoved,
    Unimplemented,
    ZooKeeperError,
)
from kernel.forwarding import Forward, ForwardSync, KernelMessage, Owned, SyncDone, Touch
from kernel.hookspecs import SaslAuthProvider, WriteDone, WriteObserver
from kernel.prep import Prep
from kernel.protocol import EventType, OpCode, Perm
from kernel.quorum_status import QuorumStatus
from kernel.records import (
    ACL,
    AuthRequest,
    DeleteRequest,
    Id,
    MultiRequest,
    OpResult,
    PathRequest,
    PathWatchRequest,
    SetWatchesRequest,
    WatchTypeRequest,
)
from kernel.sessions import ExpiryTracker, SessionIdGenerator, new_password
from kernel.storage import Storage
from kernel.tracing import Tracer
from kernel.tree import DataTree, Node
from kernel.txn import (
    CloseSessionTxn,
    CreateSessionTxn,
    ErrorTxn,
    MultiTxn,
    Txn,
    TxnBody,
)
from kernel.watches import WatchManager
from kernel.zab import Broadcast, QuorumVerifier

log = logging.getLogger(__name__)

_WRITE = 0
_READ = 1
_SYNC = 2
_DONE = 3
# The zxid a follower's sync waits for, until the leader says.
_UNKNOWN = 1 << 63


class ClientConnection(Protocol):
    """What a transport implements for each client connection.

    The kernel calls these from the event-loop thread; none may block. Values passed
    to ``send_response`` may reference live tree nodes: encode them before returning.
    """

    ids: list[Id]
    remote_address: str
    session: Session | None

    def notify(self, event_type: int, path: str, zxid: int) -> None:
        """Deliver a watch notification."""
        ...

    def send_response(self, xid: int, zxid: int, err: int, op: int, value: object) -> None:
        """Deliver the reply to request ``xid`` (``err`` 0 or a ZooKeeper error code)."""
        ...

    def session_established(self, session: Session) -> None:
        """The handshake succeeded: send the connect response."""
        ...

    def session_refused(self) -> None:
        """The session is unknown, expired or the password is wrong: tell the client
        (ZooKeeper sends a zero timeout) and close."""
        ...

    def close(self) -> None:
        """Drop the connection once everything queued has been written."""
        ...


class Session:
    """A client session: committed by a createSession txn, bound to one connection."""

    __slots__ = ("id", "timeout", "password", "conn", "pending", "closing", "last_op",
                 "last_xid", "last_zxid", "established_ms", "read_only")

    def __init__(self, sid: int, timeout: int, password: bytes) -> None:
        self.id = sid
        self.timeout = timeout
        self.password = password
        self.conn: ClientConnection | None = None
        self.pending: deque[Pending] = deque()
        self.closing = False
        self.last_op = "NA"
        self.last_xid = -1
        self.last_zxid = 0
        self.established_ms = 0
        # Established by a read-only server (the client accepts read-only service).
        self.read_only = False


class Pending:
    """A request waiting in its session's FIFO for the requests before it."""

    __slots__ = ("kind", "conn", "xid", "op", "request", "zxid", "err", "value", "t0")

    def __init__(self, kind: int, conn: ClientConnection, xid: int, op: int,
                 request: object, zxid: int = 0, t0: int = 0) -> None:
        self.kind = kind
        self.conn = conn
        self.xid = xid
        self.op = op
        self.request = request
        self.zxid = zxid
        self.err = 0
        self.value: object = None
        self.t0 = t0


class Kernel:
    """One server's kernel: tree, sessions, watches, ACLs and the write pipeline."""

    def __init__(self, config: ServerConfig, storage: Storage,
                 auth_providers: Sequence[AuthProvider], clock: Clock,
                 wake: Callable[[], None] | None = None,
                 on_commit: Callable[[Txn], None] | None = None,
                 on_session: Callable[[int, bool, bool], None] | None = None,
                 tracer: Tracer | None = None, server_id: int = 1,
                 replicated: bool = False) -> None:
        from kernel.stats import ServerStats

        self.config = config
        self.storage = storage
        self.clock = clock
        self.server_id = server_id
        providers: dict[str, AuthProvider] = {"ip": IPAuthProvider()}
        for p in auth_providers:
            providers[p.scheme] = p
        self.acl = ACLChecker(providers, skip_acl=config.skip_acl)
        if config.skip_acl:
            log.warning("skipACL=yes: ACL checks are skipped, every client may read and "
                        "change every znode")
        self.enforce_auth_schemes = enforced_auth_schemes(config, providers)
        self.tree: DataTree = storage.open()
        self.watches = WatchManager(self.acl.allowed)
        self.prep = Prep(self.tree, self.acl, extended_types=config.extended_types,
                         reconfig_enabled=config.reconfig_enabled)
        self.zab = Broadcast(server_id, QuorumVerifier([server_id]), self.tree.last_zxid)
        self.expiry = ExpiryTracker(config.tick_time)
        self.session_ids = SessionIdGenerator(server_id, clock.wall_ms())
        self.sessions: dict[int, Session] = {}
        self.connections: set[ClientConnection] = set()
        self.stats = ServerStats(clock.mono_ms())
        self.tracer = tracer or Tracer(enabled=False)
        self._wake = wake or (lambda: None)
        self._on_commit = on_commit
        self._on_session = on_session
        self._next_zxid = self.tree.last_zxid + 1
        self._batch: list[Txn] = []
        self._waiting: dict[int, tuple[Session | None, Pending | None]] = {}
        self._connecting: dict[int, tuple[ClientConnection, int]] = {}
        self._sync_waiters: set[Session] = set()
        self._expiring: set[int] = set()
        self._reap_in_flight: set[str] = set()
        self.serving = not replicated
        self.quorum = QuorumStatus(server_id=server_id)
        # standalone | leader | follower | looking. A replicated kernel starts looking
        # and serves only once Zab reaches its broadcast phase.
        self.role = "looking" if replicated else "standalone"
        self.replicated = replicated
        # Set by the runtime of a replicated server: send a kernel message to a peer
        # (the leader, for a follower). Messages on one link keep their order.
        self.send_to_peer: Callable[[int, KernelMessage], None] = lambda peer, msg: None
        self.leader_id = 0
        # Plugins' zk_write_observers (audit logs...), set by the runtime.
        self.write_observers: list[WriteObserver] = []
        self._remote_syncs: list[tuple[int, int, int, int]] = []
        # Leader: the server each session's client is connected to (ZooKeeper's session
        # owner); writes arriving through any other server get SessionMoved.
        self._owner: dict[int, int] = {}
        self._touched: dict[int, int] = {}
        now = clock.mono_ms()
        # Sessions recovered from durable storage get a fresh full timeout, as
        # ZooKeeper does on restart; clients that are gone expire after it.
        for sid, rec in self.tree.sessions.items():
            s = Session(sid, rec.timeout, rec.password)
            self.sessions[sid] = s
            self.expiry.touch(sid, rec.timeout, now)

    # -- introspection ------------------------------------------------------------------

    @property
    def last_zxid(self) -> int:
        """The zxid of the last applied transaction."""
        return self.tree.last_zxid

    @property
    def outstanding_requests(self) -> int:
        return len(self._waiting)

    def register_connection(self, conn: ClientConnection) -> None:
        self.connections.add(conn)

    # -- handshake ----------------------------------------------------------------------

    def connect(self, conn: ClientConnection, last_zxid_seen: int, timeout: int,
                session_id: int, password: bytes, read_only: bool = False) -> bool:
        """Start or resume a session for ``conn``. Returns False if the connection must
        be closed without an answer (the client has seen a newer zxid than ours, or
        this server serves read-only and the client does not accept that).
        ``read_only``: the client accepts a read-only server (``canBeReadOnly``)."""
        if not self.serving:
            return False
        if self.role == "read-only":
            return self._connect_read_only(conn, last_zxid_seen, timeout, session_id,
                                           password, read_only)
        if last_zxid_seen > self.tree.last_zxid:
            log.info("client has seen zxid %#x, server is at %#x: refusing",
                     last_zxid_seen, self.tree.last_zxid)
            return False
        t = self.config.clamp_timeout(timeout)
        if session_id == 0:
            sid = self.session_ids.next_id()
            password = new_password()
            self._connecting[sid] = (conn, t)
            if self.role == "follower":
                self.send_to_peer(self.leader_id, Forward(sid, 0, OpCode.CREATE_SESSION,
                                                          (t, password), []))
            else:
                self._owner[sid] = self.server_id
                self._propose(sid, 0, OpCode.CREATE_SESSION, CreateSessionTxn(t, password),
                              None)
            return True
        sess = self.sessions.get(session_id)
        if sess is not None and sess.conn is not None and sess.conn is not conn:
            old = sess.conn
            sess.conn = None
            self.watches.remove_watcher(old)
            old.close()
        if sess is None or sess.closing or sess.password != password:
            conn.session_refused()
            return True
        sess.timeout = t
        sess.conn = conn
        sess.established_ms = self.clock.wall_ms()
        conn.session = sess
        self.expiry.touch(sess.id, t, self.clock.mono_ms())
        if self.role == "follower":
            self._touched[sess.id] = t
            # Before anything of this client reaches the leader (same link, in order).
            self.send_to_peer(self.leader_id, Owned(sess.id))
        elif self.role == "leader":
            self._owner[sess.id] = self.server_id
        conn.session_established(sess)
        return True

    def disconnect(self, conn: ClientConnection) -> None:
        """The transport lost ``conn``: drop its watches; its session lives until expiry."""
        self.connections.discard(conn)
        self.watches.remove_watcher(conn)
        sess = conn.session
        if sess is not None and sess.conn is conn:
            sess.conn = None

    # -- requests -----------------------------------------------------------------------

    def submit(self, conn: ClientConnection, xid: int, op: int, request: object) -> None:
        """Handle one request of an established connection. The reply arrives through
        ``conn.send_response`` in request order."""
        sess = conn.session
        if sess is None:
            return
        if sess.conn is not conn:
            return  # a stale connection whose session moved on
        if self.enforce_auth_schemes and op != OpCode.SASL and op != OpCode.AUTH:
            # ZooKeeper's AuthenticationHelper: a connection without an id of a
            # required scheme gets SessionClosedRequireSaslAuth and is closed.
            if not any(i.scheme in self.enforce_auth_schemes for i in conn.ids):
                log.warning("session %#x from %s is not authenticated with %s: closing",
                            sess.id, conn.remote_address,
                            ",".join(sorted(self.enforce_auth_schemes)))
                conn.send_response(xid, 0, SessionClosedRequireSaslAuth.code, op, None)
                conn.close()
                return
        now = self.clock.mono_ms()
        self.expiry.touch(sess.id, sess.timeout, now)
        sess.last_xid = xid
        if sess.closing:
            self._enqueue_ready(sess, conn, xid, op, SessionExpired.code, None)
            return
        if self.role == "read-only" and (op in _WRITE_OPCODES or op == OpCode.SYNC
                                         or op == OpCode.CLOSE_SESSION):
            self._read_only_refusal(sess, conn, xid, op)
            return
        if self.role == "follower":
            self._touched[sess.id] = sess.timeout
            if op in _WRITE_OPCODES or op == OpCode.CLOSE_SESSION:
                if op == OpCode.CLOSE_SESSION:
                    sess.closing = True
                sess.pending.append(Pending(_WRITE, conn, xid, op, request, 0, now))
                self.send_to_peer(self.leader_id,
                                  Forward(sess.id, xid, op, request, list(conn.ids)))
                return
            if op == OpCode.SYNC:
                # Answered once the leader says how far we must have applied.
                sess.pending.append(Pending(_SYNC, conn, xid, op, request, _UNKNOWN, now))
                self.send_to_peer(self.leader_id, ForwardSync(sess.id, xid))
                return
        if op in _WRITE_OPCODES:
            with self.tracer.span("prep", op):
                zxid = self._next_zxid
                if self._owner.get(sess.id, self.server_id) != self.server_id:
                    body: TxnBody = ErrorTxn(SessionMoved.code)
                else:
                    body = self.prep.prepare(op, request, sess.id, conn.ids, zxid)
            p = Pending(_WRITE, conn, xid, op, request, zxid, now)
            sess.pending.append(p)
            self._propose(sess.id, xid, op, body, p)
        elif op == OpCode.CLOSE_SESSION:
            sess.closing = True
            p = Pending(_WRITE, conn, xid, op, request, self._next_zxid, now)
            sess.pending.append(p)
            self._propose(sess.id, xid, op, self.prep.close_session(sess.id, self._next_zxid), p)
        elif op == OpCode.SYNC:
            # Wait for every write proposed so far, batched or not, from any session.
            p = Pending(_SYNC, conn, xid, op, request, self._next_zxid - 1, now)
            sess.pending.append(p)
            if not self._drain(sess):
                self._sync_waiters.add(sess)
        elif sess.pending:
            sess.pending.append(Pending(_READ, conn, xid, op, request))
        else:
            self._read(sess, conn, xid, op, request)
            self.stats.latency.add_zeros(1)

    def submit_error(self, conn: ClientConnection, xid: int, op: int, err: int) -> None:
        """Answer a request the transport could not decode, in order with the others."""
        sess = conn.session
        if sess is None or sess.conn is not conn:
            return
        if op in _WRITE_OPCODES and not sess.closing and self.role == "follower":
            sess.pending.append(Pending(_WRITE, conn, xid, op, None, 0, self.clock.mono_ms()))
            self.send_to_peer(self.leader_id, Forward(sess.id, xid, op, None, [], err))
            return
        if op in _WRITE_OPCODES and not sess.closing:
            # ZooKeeper logs an undecodable write as a failed transaction (a zxid).
            p = Pending(_WRITE, conn, xid, op, None, self._next_zxid, self.clock.mono_ms())
            sess.pending.append(p)
            self._propose(sess.id, xid, op, ErrorTxn(err), p)
            return
        self._enqueue_ready(sess, conn, xid, op, err, None)

    def _enqueue_ready(self, sess: Session, conn: ClientConnection, xid: int, op: int,
                       err: int, value: object) -> None:
        if not sess.pending:
            conn.send_response(xid, self.tree.last_zxid, err, op, value)
            return
        p = Pending(_DONE, conn, xid, op, None)
        p.err = err
        p.value = value
        sess.pending.append(p)

    def _drain(self, sess: Session) -> bool:
        """Answer the head of the session's FIFO while possible; True if emptied."""
        q = sess.pending
        applied = self.tree.last_zxid
        now = -1
        while q:
            p = q[0]
            kind = p.kind
            if kind == _WRITE:
                break
            if kind == _SYNC:
                if p.zxid > applied:
                    return False
                q.popleft()
                req = p.request
                path = req.path if isinstance(req, PathRequest) else ""
                p.conn.send_response(p.xid, applied, 0, p.op, path)
                if now < 0:
                    now = self.clock.mono_ms()
                self.stats.latency.add(now - p.t0)
            elif kind == _READ:
                q.popleft()
                self._read(sess, p.conn, p.xid, p.op, p.request)
                self.stats.latency.add_zeros(1)
            else:
                q.popleft()
                p.conn.send_response(p.xid, applied, p.err, p.op, p.value)
        return not q

    # -- the write pipeline -------------------------------------------------------------

    def _propose(self, sid: int, cxid: int, op: int, body: TxnBody,
                 pending: Pending | None) -> Txn:
        zxid = self._next_zxid
        self._next_zxid = zxid + 1
        txn = Txn(zxid, sid, cxid, self.clock.wall_ms(), op, body)
        self._waiting[zxid] = (self.sessions.get(sid), pending)
        if not self._batch:
            self._wake()
        self._batch.append(txn)
        return txn

    def take_batch(self) -> list[Txn]:
        """Proposals made since the last call, for the runtime to make durable."""
        batch = self._batch
        if not batch:
            return batch
        self._batch = []
        if not self.replicated:
            self.zab.propose(batch)
        return batch

    def durable(self, txns: Sequence[Txn]) -> None:
        """Standalone: ``txns`` are durable in our log: ACK them; apply and answer what
        commits (a quorum of one)."""
        if not txns:
            return
        commit = self.zab.ack(self.server_id, txns[-1].zxid)
        self.deliver(commit.txns)

    def deliver(self, txns: Sequence[Txn]) -> None:
        """Apply committed transactions in order and answer what they complete."""
        if not txns:
            return
        for txn in txns:
            self._apply(txn)
        self.storage.applied(txns, self.tree)
        if self._sync_waiters:
            for sess in list(self._sync_waiters):
                if self._drain(sess):
                    self._sync_waiters.discard(sess)
        if self._remote_syncs:
            self._answer_remote_syncs()

    def _apply(self, txn: Txn) -> None:
        with self.tracer.span("apply", txn.op):
            try:
                triggers = self.tree.apply(txn)
            except ZooKeeperError:
                # Only possible if prep and the tree disagree: never reply with a
                # half-applied state; the txn is logged, the tree is unchanged.
                log.exception("transaction %#x does not apply", txn.zxid)
                triggers = []
        self.prep.applied(txn.zxid)
        self.stats.commits += 1
        zxid = txn.zxid
        if triggers:
            trigger = self.watches.trigger
            for etype, path, acl in triggers:
                trigger(etype, path, acl, zxid)
        body = txn.body
        sess, pending = self._waiting.pop(zxid, (None, None))
        if pending is None and self.role == "follower" and txn.session_id:
            sess, pending = self._forwarded_pending(txn)
        if isinstance(body, CreateSessionTxn):
            self._session_created(txn, body)
        elif isinstance(body, CloseSessionTxn):
            self._session_closed(txn.session_id, pending)
            pending = None
        if self._on_commit is not None:
            self._on_commit(txn)
        if pending is None or sess is None:
            return
        pending.kind = _DONE
        pending.err, pending.value = self._write_result(pending.op, body, txn.result)
        if self.write_observers:
            self._tell_observers(sess, pending, txn)
        if pending.err == SessionMoved.code:
            # As ZooKeeper: the connection the session left is closed, not answered;
            # its client reconnects (and the session moves back if it comes here).
            self._drop_moved_connection(sess, pending.conn)
            return
        sess.last_zxid = zxid
        now = self.clock.mono_ms()
        self.stats.latency.add(now - pending.t0)
        q = sess.pending
        if q and q[0] is pending:
            q.popleft()
            pending.conn.send_response(pending.xid, zxid, pending.err, pending.op,
                                       pending.value)
            if q:
                self._drain(sess)

    def _drop_moved_connection(self, sess: Session, conn: ClientConnection) -> None:
        sess.pending.clear()
        self._sync_waiters.discard(sess)
        self.watches.remove_watcher(conn)
        if sess.conn is conn:
            sess.conn = None
        conn.close()

    def _tell_observers(self, sess: Session, pending: Pending, txn: Txn) -> None:
        conn = pending.conn
        event = WriteDone(sess.id, tuple(conn.ids), conn.remote_address, pending.op,
                          pending.request, txn, pending.err)
        for observer in self.write_observers:
            try:
                observer.write_done(event)
            except Exception:  # an observer must never break the write path
                log.exception("write observer %r failed", observer)

    def _forwarded_pending(self, txn: Txn) -> tuple[Session | None, Pending | None]:
        """Follower: the local request a committed transaction answers (the oldest
        forwarded write of its session; forwarded writes commit in order)."""
        sess = self.sessions.get(txn.session_id)
        if sess is None or not sess.pending:
            return None, None
        for p in sess.pending:
            if p.kind == _WRITE:
                return (sess, p) if p.xid == txn.cxid else (None, None)
        return None, None

    @staticmethod
    def _write_result(op: int, body: TxnBody, result: object) -> tuple[int, object]:
        if isinstance(body, ErrorTxn):
            return body.err, None
        if isinstance(body, MultiTxn):
            assert isinstance(result, list)
            return 0, _multi_results(body, result)
        return 0, _single_result(op, result)

    def _session_created(self, txn: Txn, body: CreateSessionTxn) -> None:
        sid = txn.session_id
        sess = Session(sid, body.timeout, body.password)
        sess.last_zxid = txn.zxid
        sess.established_ms = txn.time
        self.sessions[sid] = sess
        self.expiry.touch(sid, body.timeout, self.clock.mono_ms())
        waiting = self._connecting.pop(sid, None)
        if waiting is not None:
            conn = waiting[0]
            if conn in self.connections:
                sess.conn = conn
                conn.session = sess
                conn.session_established(sess)
        if self._on_session is not None:
            self._on_session(sid, True, False)

    def _session_closed(self, sid: int, pending: Pending | None) -> None:
        self._owner.pop(sid, None)
        sess = self.sessions.pop(sid, None)
        self.expiry.remove(sid)
        expired = sid in self._expiring
        self._expiring.discard(sid)
        if sess is None:
            return
        self._sync_waiters.discard(sess)
        conn = sess.conn
        sess.conn = None
        if pending is not None and pending.conn is conn and conn is not None:
            # Answer every request queued before the close (everything before it is
            # applied by now, also what a follower's sync still waits to hear about),
            # then the close itself.
            applied = self.tree.last_zxid
            for p in sess.pending:
                if p.kind == _SYNC and p.zxid > applied:
                    p.zxid = applied
            self._drain(sess)
            conn.send_response(pending.xid, self.tree.last_zxid, 0, pending.op, None)
        sess.pending.clear()
        if conn is not None:
            self.watches.remove_watcher(conn)
            conn.close()
        if self._on_session is not None:
            self._on_session(sid, False, expired)

    # -- replication --------------------------------------------------------------------

    def become(self, role: str, leader: int = 0, epoch: int = 0, next_zxid: int = 0) -> None:
        """The runtime's Zab peer changed role: ``leader`` or ``follower`` when it
        serves (broadcast phase), ``looking`` otherwise. Leaving a serving role drops
        every client connection and every request in flight, as ZooKeeper does; the
        clients reconnect (to this server or another) and keep their sessions."""
        previous = self.role
        self.role = role
        self.leader_id = leader
        serving = role in ("leader", "follower", "read-only")
        if previous in ("leader", "follower", "read-only") or not serving:
            self._reset_pipeline()
        if previous == "read-only":
            # Sessions a read-only server made were never committed: they end here.
            for sid in [s for s, x in self.sessions.items() if s not in self.tree.sessions]:
                del self.sessions[sid]
                self.expiry.remove(sid)
        self.serving = serving
        q = self.quorum
        q.mode = role
        q.leader_id = leader
        q.epoch = epoch
        if role == "leader":
            self._next_zxid = next_zxid
            # A new leader gives every session a full timeout (ZooKeeper does too):
            # their clients may be reconnecting after the failover.
            now = self.clock.mono_ms()
            self.expiry = ExpiryTracker(self.config.tick_time)
            for sid, sess in self.sessions.items():
                self.expiry.touch(sid, sess.timeout, now)

    # -- read-only service -----------------------------------------------------------------

    def _connect_read_only(self, conn: ClientConnection, last_zxid_seen: int,
                           timeout: int, session_id: int, password: bytes,
                           client_accepts: bool) -> bool:
        """A read-only server (cut off from its quorum, ``readonlymode.enabled``):
        only clients that accept read-only service; their new sessions are local to this
        server and end when it rejoins the quorum (as ZooKeeper's are)."""
        if not client_accepts or last_zxid_seen > self.tree.last_zxid:
            return False
        t = self.config.clamp_timeout(timeout)
        now = self.clock.mono_ms()
        if session_id == 0:
            sess = Session(self.session_ids.next_id(), t, new_password())
            self.sessions[sess.id] = sess
        else:
            found = self.sessions.get(session_id)
            if found is None or found.password != password:
                conn.session_refused()
                return True
            sess = found
            if sess.conn is not None and sess.conn is not conn:
                old = sess.conn
                self.watches.remove_watcher(old)
                old.close()
        sess.read_only = True
        sess.timeout = t
        sess.conn = conn
        sess.established_ms = self.clock.wall_ms()
        conn.session = sess
        self.expiry.touch(sess.id, t, now)
        conn.session_established(sess)
        return True

    def _read_only_refusal(self, sess: Session, conn: ClientConnection, xid: int,
                           op: int) -> None:
        if op == OpCode.CLOSE_SESSION:
            # Nothing to commit: answer, end a local session, drop the connection.
            self._enqueue_ready(sess, conn, xid, op, 0, None)
            if sess.id not in self.tree.sessions:
                self.sessions.pop(sess.id, None)
                self.expiry.remove(sess.id)
            conn.close()
            return
        self._enqueue_ready(sess, conn, xid, op, NotReadOnly.code, None)

    def _expire_read_only_sessions(self) -> None:
        for sid in self.expiry.expired(self.clock.mono_ms()):
            sess = self.sessions.get(sid)
            if sess is None or sid in self.tree.sessions:
                continue  # a committed session: the quorum decides its fate
            del self.sessions[sid]
            if sess.conn is not None:
                self.watches.remove_watcher(sess.conn)
                sess.conn.close()

    def _reset_pipeline(self) -> None:
        for conn in list(self.connections):
            conn.close()
        for sess in self.sessions.values():
            sess.pending.clear()
            sess.conn = None
            sess.closing = False
        self._batch = []
        self._waiting.clear()
        self._connecting.clear()
        self._sync_waiters.clear()
        self._remote_syncs.clear()
        self._expiring.clear()
        self._reap_in_flight.clear()
        self._touched.clear()
        self._owner.clear()
        self.watches = WatchManager(self.acl.allowed)
        self.prep = Prep(self.tree, self.acl, extended_types=self.config.extended_types,
                         reconfig_enabled=self.config.reconfig_enabled)
        self._next_zxid = self.tree.last_zxid + 1

    def install_tree(self, tree: DataTree) -> None:
        """A learner received a snapshot: serve from ``tree`` from now on."""
        self.tree = tree
        self.sessions = {}
        for sid, rec in tree.sessions.items():
            self.sessions[sid] = Session(sid, rec.timeout, rec.password)
        self._reset_pipeline()

    def from_peer(self, origin: int, msg: KernelMessage) -> None:
        """A kernel message from peer ``origin`` (forwarded requests on the leader;
        sync answers on a follower)."""
        if isinstance(msg, Forward):
            if self.role == "leader":
                self._forwarded(origin, msg)
        elif isinstance(msg, Owned):
            if self.role == "leader" and msg.session_id in self.sessions:
                self._owner[msg.session_id] = origin
        elif isinstance(msg, ForwardSync):
            if self.role == "leader":
                zxid = self._next_zxid - 1
                if zxid <= self.tree.last_zxid:
                    self.send_to_peer(origin, SyncDone(msg.session_id, msg.cxid, zxid))
                else:
                    self._remote_syncs.append((origin, msg.session_id, msg.cxid, zxid))
        elif isinstance(msg, SyncDone):
            self._sync_done(msg)
        elif isinstance(msg, Touch):
            if self.role == "leader":
                now = self.clock.mono_ms()
                for sid, timeout in msg.sessions:
                    sess = self.sessions.get(sid)
                    if sess is not None and not sess.closing:
                        sess.timeout = timeout
                        self.expiry.touch(sid, timeout, now)

    def take_touches(self) -> list[tuple[int, int]]:
        """Follower: the sessions with client activity since the last call."""
        touched, self._touched = self._touched, {}
        return list(touched.items())

    def _forwarded(self, origin: int, f: Forward) -> None:
        sid = f.session_id
        if f.op == OpCode.CREATE_SESSION:
            req = f.request
            assert isinstance(req, tuple) and len(req) == 2
            self._owner[sid] = origin
            self._propose(sid, 0, OpCode.CREATE_SESSION,
                          CreateSessionTxn(int(req[0]), bytes(req[1])), None)
            return
        sess = self.sessions.get(sid)
        zxid = self._next_zxid
        owner = self._owner.setdefault(sid, origin) if sess is not None else origin
        if sess is None or (sess.closing and f.op != OpCode.CLOSE_SESSION):
            body: TxnBody = ErrorTxn(SessionExpired.code)
        elif owner != origin:
            body = ErrorTxn(SessionMoved.code)
        elif f.op == OpCode.CLOSE_SESSION:
            if sess.closing:
                body = ErrorTxn(SessionExpired.code)
            else:
                sess.closing = True
                body = self.prep.close_session(sid, zxid)
        elif f.err:
            body = ErrorTxn(f.err)
        else:
            self.expiry.touch(sid, sess.timeout, self.clock.mono_ms())
            with self.tracer.span("prep", f.op):
                body = self.prep.prepare(f.op, f.request, sid, f.ids, zxid)
        self._propose(sid, f.cxid, f.op, body, None)

    def _answer_remote_syncs(self) -> None:
        applied = self.tree.last_zxid
        waiting = []
        for origin, sid, cxid, zxid in self._remote_syncs:
            if zxid <= applied:
                self.send_to_peer(origin, SyncDone(sid, cxid, zxid))
            else:
                waiting.append((origin, sid, cxid, zxid))
        self._remote_syncs = waiting

    def _sync_done(self, msg: SyncDone) -> None:
        sess = self.sessions.get(msg.session_id)
        if sess is None:
            return
        for p in sess.pending:
            if p.kind == _SYNC and p.zxid == _UNKNOWN:
                p.zxid = msg.zxid
                break
        if not self._drain(sess):
            self._sync_waiters.add(sess)

    # -- timers -------------------------------------------------------------------------

    def tick(self) -> None:
        """Expire sessions whose deadline has passed (the leader decides expiry)."""
        if self.role == "read-only":
            self._expire_read_only_sessions()
            return
        if self.role not in ("standalone", "leader"):
            return
        for sid in self.expiry.expired(self.clock.mono_ms()):
            sess = self.sessions.get(sid)
            if sess is None or sess.closing:
                continue
            log.info("session %#x expired", sid)
            self.expire_session(sid)

    def expire_session(self, sid: int) -> None:
        """Close a session on the server's initiative (timeout)."""
        sess = self.sessions.get(sid)
        if sess is None or sess.closing:
            return
        sess.closing = True
        self._expiring.add(sid)
        zxid = self._next_zxid
        self._propose(sid, 0, OpCode.CLOSE_SESSION, self.prep.close_session(sid, zxid), None)

    def reap(self, limit: int) -> int:
        """Delete up to ``limit`` empty containers and expired TTL nodes."""
        n = 0
        if self.role not in ("standalone", "leader"):
            return 0
        self._reap_in_flight &= set(self.tree.containers) | set(self.tree.ttls)
        for path in self.tree.reapable(self.clock.wall_ms(),
                                       self.config.container_max_never_used_ms):
            if n >= limit:
                break
            if path in self._reap_in_flight:
                continue
            zxid = self._next_zxid
            body = self.prep.prepare(OpCode.DELETE_CONTAINER, DeleteRequest(path), 0, [], zxid)
            if isinstance(body, ErrorTxn):
                continue
            self._reap_in_flight.add(path)
            self._propose(0, 0, OpCode.DELETE_CONTAINER, body, None)
            n += 1
        return n

    # -- reads --------------------------------------------------------------------------

    def _read(self, sess: Session, conn: ClientConnection, xid: int, op: int,
              request: object) -> None:
        try:
            value = self._read_value(sess, conn, op, request)
        except ZooKeeperError as e:
            conn.send_response(xid, self.tree.last_zxid, e.code, op, None)
            if op == OpCode.AUTH or op == OpCode.SASL:
                self.stats.auth_failed += 1
                conn.close()
            return
        conn.send_response(xid, self.tree.last_zxid, 0, op, value)

    def _read_value(self, sess: Session, conn: ClientConnection, op: int,
                    request: object) -> object:
        tree = self.tree
        if op == OpCode.GET_DATA:
            assert isinstance(request, PathWatchRequest)
            node = tree.nodes.get(request.path)
            if node is None:
                raise NoNode()
            if not self.acl.allowed(node.acl, conn.ids, Perm.READ):
                raise NoAuth()
            if request.watch:
                self.watches.add_data(request.path, conn)
            return node
        if op == OpCode.EXISTS:
            assert isinstance(request, PathWatchRequest)
            path = request.path
            if "\0" in path:
                raise BadArguments()
            node = tree.nodes.get(path)
            if node is not None and not self.acl.allowed(node.acl, conn.ids, Perm.READ):
                raise NoAuth()
            if request.watch:
                self.watches.add_data(path, conn)
            if node is None:
                raise NoNode()
            return node
        if op in (OpCode.GET_CHILDREN, OpCode.GET_CHILDREN2):
            assert isinstance(request, PathWatchRequest)
            node = self._readable(request.path, conn.ids)
            if request.watch:
                self.watches.add_child(request.path, conn)
            if op == OpCode.GET_CHILDREN:
                return list(node.children)
            return list(node.children), node.stat()
        if op == OpCode.PING:
            return None
        if op == OpCode.GET_ACL:
            assert isinstance(request, PathRequest)
            node = tree.nodes.get(request.path)
            if node is None:
                raise NoNode()
            ids = conn.ids
            if self.acl.allowed(node.acl, ids, Perm.ADMIN):
                return list(node.acl), node.stat()
            if self.acl.allowed(node.acl, ids, Perm.READ):
                return redact_for_reader(node.acl), node.stat()
            raise NoAuth()
        if op == OpCode.GET_ALL_CHILDREN_NUMBER:
            assert isinstance(request, PathRequest)
            self._readable(request.path, conn.ids)
            return tree.count_descendants(request.path)
        if op == OpCode.GET_EPHEMERALS:
            assert isinstance(request, PathRequest)
            prefix = request.path
            paths = tree.ephemerals.get(sess.id, ())
            if not prefix or not prefix.strip() or prefix == "/":
                return sorted(paths)
            return sorted(p for p in paths if p.startswith(prefix))
        if op == OpCode.WHO_AM_I:
            return [_client_info(i) for i in conn.ids]
        if op == OpCode.MULTI_READ:
            assert isinstance(request, MultiRequest)
            return self._multi_read(sess, conn, request)
        if op == OpCode.AUTH:
            assert isinstance(request, AuthRequest)
            new_ids = self.acl.authenticate(request.scheme, conn.remote_address, request.auth)
            for i in new_ids:
                if i not in conn.ids:
                    conn.ids.append(i)
            return None
        if op == OpCode.ADD_WATCH:
            assert isinstance(request, WatchTypeRequest)
            self.watches.add_persistent(request.path, conn, recursive=request.type == 1)
            return None
        if op == OpCode.CHECK_WATCHES:
            assert isinstance(request, WatchTypeRequest)
            if not self.watches.has(request.path, conn, request.type):
                raise NoWatcher()
            return None
        if op == OpCode.REMOVE_WATCHES:
            assert isinstance(request, WatchTypeRequest)
            if not self.watches.remove(request.path, conn, request.type):
                raise NoWatcher()
            return None
        if op in (OpCode.SET_WATCHES, OpCode.SET_WATCHES2):
            assert isinstance(request, SetWatchesRequest)
            self._set_watches(conn, request)
            return None
        if op == OpCode.SASL:
            assert isinstance(request, AuthRequest)
            provider = self.acl.providers.get("sasl")
            if not isinstance(provider, SaslAuthProvider):
                raise Unimplemented("SASL needs the auth_sasl plugin")
            try:
                token, gained = provider.sasl_step(conn, conn.remote_address, request.auth)
            except (AuthFailed, SessionClosedRequireSaslAuth):
                raise
            except Exception as e:  # a plugin bug must not take the server down
                log.exception("SASL step failed")
                raise AuthFailed(str(e)) from None
            for i in gained:
                if i not in conn.ids:
                    conn.ids.append(i)
            return token
        raise MarshallingError(f"unexpected read op {op}")

    def _readable(self, path: str, ids: Sequence[Id]) -> Node:
        node = self.tree.nodes.get(path)
        if node is None:
            raise NoNode()
        if not self.acl.allowed(node.acl, ids, Perm.READ):
            raise NoAuth()
        return node

    def _multi_read(self, sess: Session, conn: ClientConnection,
                    request: MultiRequest) -> list[OpResult]:
        out = []
        for op, rec in request.ops:
            assert isinstance(rec, PathWatchRequest)
            try:
                node = self._readable(rec.path, conn.ids)
            except ZooKeeperError as e:
                out.append(OpResult(OpCode.ERROR, e.code))
                continue
            if op == OpCode.GET_DATA:
                out.append(OpResult(op, 0, (node.data, node.stat())))
            else:
                out.append(OpResult(op, 0, list(node.children)))
        return out

    def _set_watches(self, conn: ClientConnection, req: SetWatchesRequest) -> None:
        nodes = self.tree.nodes
        rz = req.relative_zxid
        for path in req.data:
            node = nodes.get(path)
            if node is None:
                conn.notify(EventType.NODE_DELETED, path, -1)
            elif node.mzxid > rz:
                conn.notify(EventType.NODE_DATA_CHANGED, path, -1)
            else:
                self.watches.add_data(path, conn)
        for path in req.exist:
            if path in nodes:
                conn.notify(EventType.NODE_CREATED, path, -1)
            else:
                self.watches.add_data(path, conn)
        for path in req.child:
            node = nodes.get(path)
            if node is None:
                conn.notify(EventType.NODE_DELETED, path, -1)
            elif node.pzxid > rz:
                conn.notify(EventType.NODE_CHILDREN_CHANGED, path, -1)
            else:
                self.watches.add_child(path, conn)
        for path in req.persistent:
            self.watches.add_persistent(path, conn, recursive=False)
        for path in req.persistent_recursive:
            self.watches.add_persistent(path, conn, recursive=True)


_WRITE_OPCODES = frozenset({
    OpCode.CREATE, OpCode.CREATE2, OpCode.CREATE_CONTAINER, OpCode.CREATE_TTL,
    OpCode.DELETE, OpCode.SET_DATA, OpCode.SET_ACL, OpCode.MULTI, OpCode.RECONFIG,
    OpCode.CHECK,
})


def _single_result(op: int, result: object) -> object:
    """A plain create answers the path only; every other write its apply result."""
    if op == OpCode.CREATE:
        assert isinstance(result, tuple)
        return result[0]
    return result


def _multi_results(body: MultiTxn, results: list[tuple[int, object]]) -> list[OpResult]:
    out = []
    for (op, sub), (_, res) in zip(body.ops, results, strict=True):
        if isinstance(sub, ErrorTxn):
            out.append(OpResult(OpCode.ERROR, sub.err))
        elif op == OpCode.CREATE:
            assert isinstance(res, tuple)
            out.append(OpResult(op, 0, res[0]))
        elif op in (OpCode.CREATE2, OpCode.CREATE_CONTAINER, OpCode.CREATE_TTL):
            out.append(OpResult(OpCode.CREATE2, 0, res))
        else:
            out.append(OpResult(op, 0, res))
    return out


def enforced_auth_schemes(config: ServerConfig,
                          providers: dict[str, AuthProvider]) -> frozenset[str]:
    """The schemes a connection must hold an id of before any request but auth/sasl
    (ZooKeeper's ``sessionRequireClientSASLAuth`` / ``enforce.auth.enabled`` +
    ``enforce.auth.schemes``); empty when not enforced."""
    def flag(key: str) -> bool:
        return (config.get(key) or "false").strip().lower() == "true"

    if flag("sessionRequireClientSASLAuth"):
        schemes = frozenset({"sasl"})
    elif flag("enforce.auth.enabled"):
        raw = config.get("enforce.auth.schemes") or ""
        schemes = frozenset(s.strip() for s in raw.split(",") if s.strip())
        if not schemes:
            raise ConfigError("enforce.auth.enabled is true: enforce.auth.schemes must be "
                              "configured")
    else:
        return frozenset()
    for s in schemes:
        if s not in providers:
            raise ConfigError(f"enforce.auth.schemes: authentication scheme {s} is not "
                              f"available (is its provider configured?)")
    return schemes


def _client_info(i: Id) -> tuple[str, str]:
    if i.scheme == "digest":
        return i.scheme, i.id.split(":", 1)[0]
    return i.scheme, i.id


__all__ = ["ACL", "ClientConnection", "Kernel", "Pending", "Session"]
