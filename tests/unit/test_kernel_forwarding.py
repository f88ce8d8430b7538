"""A leader's and a follower's Kernel wired in-process: the follower forwards what
changes state (createSession, writes, closeSession, sync) to the leader, which runs
prep and proposes; "Zab" here is taking the leader's batches and delivering them to
both kernels in order (no votes). Every kernel message and every replicated txn goes
through the peer-link codec on the way, as over a real link.

The follower answers a forwarded request when the txn is applied *there*, keeps each
session's FIFO order across the forward, and answers ``sync`` once the leader said how
far to catch up and it has; the leader alone expires sessions.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from kernel.clock import ManualClock
from kernel.config import ServerConfig
from kernel.core import Kernel
from kernel.errors import MarshallingError, NoAuth, NoNode, SessionExpired
from kernel.forwarding import Forward, ForwardSync, KernelMessage, SyncDone, Touch
from kernel.protocol import EventType, OpCode
from kernel.records import (
    ACL,
    AuthRequest,
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    EmptyRequest,
    Id,
    MultiRequest,
    PathRequest,
    PathWatchRequest,
    SetACLRequest,
    SetDataRequest,
    Stat,
)
from kernel.runtime.links import peer_registry
from kernel.snapshot import decode_snapshot, encode_snapshot
from kernel.tree import SessionRecord
from kernel.txn import CloseSessionTxn, CreateSessionTxn, CreateTxn, ErrorTxn, Txn
from kernel.zab.messages import Proposal
from kernel.zab.wire import frame_length
from plugins.auth_digest import DigestAuthProvider, digest_id
from plugins.storage_memory import MemoryStorage
from tests.unit.test_pipeline import OPEN, Conn
from tests.unit.test_pipeline import H as Standalone

REG = peer_registry()
EPOCH1 = (1 << 32) + 1
PW = b"\x00" * 16
CREATED, DELETED, CHANGED = (EventType.NODE_CREATED, EventType.NODE_DELETED,
                             EventType.NODE_DATA_CHANGED)


def wire(msg: object) -> Any:
    """``msg`` as the other end of a peer link receives it."""
    frame = REG.encode(msg)
    assert frame_length(frame[:4]) == len(frame) - 4
    return REG.decode(frame[4:])


class Pair:
    """Leader (server 1) and follower (server 2), one manual clock, two FIFO links."""

    def __init__(self, tick: int = 2000) -> None:
        self.clock = ManualClock(wall=1_700_000_000_000, mono=0)
        self.config = ServerConfig(tick_time=tick)
        self.leader = self._kernel(1)
        self.follower = self._kernel(2)
        self.to_leader: deque[KernelMessage] = deque()
        self.to_follower: deque[KernelMessage] = deque()
        self.leader.send_to_peer = self._leader_sends
        self.follower.send_to_peer = self._follower_sends
        self.leader.become("leader", 1, 1, next_zxid=EPOCH1)
        self.follower.become("follower", 1, 1)
        self.log: list[tuple[Any, ...]] = []
        self.xid = 0
        self.committed: list[Txn] = []

    def _kernel(self, sid: int) -> Kernel:
        return Kernel(self.config, MemoryStorage(), [DigestAuthProvider()], self.clock,
                      server_id=sid, replicated=True)

    def _leader_sends(self, peer: int, msg: KernelMessage) -> None:
        assert peer == 2
        self.to_follower.append(wire(msg))

    def _follower_sends(self, peer: int, msg: KernelMessage) -> None:
        assert peer == 1  # the leader the follower was told about
        self.to_leader.append(wire(msg))

    # -- moving things along ---------------------------------------------------------

    def forward(self) -> int:
        """Deliver the follower's messages to the leader."""
        n = len(self.to_leader)
        while self.to_leader:
            self.leader.from_peer(2, self.to_leader.popleft())
        return n

    def answer(self) -> int:
        """Deliver the leader's messages to the follower."""
        n = len(self.to_follower)
        while self.to_follower:
            self.follower.from_peer(1, self.to_follower.popleft())
        return n

    def propose(self) -> list[Txn]:
        return self.leader.take_batch()

    def commit_leader(self, batch: list[Txn]) -> None:
        self.leader.deliver(batch)
        self.committed.extend(batch)

    def commit_follower(self, batch: list[Txn]) -> None:
        self.follower.deliver([wire(Proposal(t)).txn for t in batch])

    def settle(self) -> None:
        """Run everything to quiescence: commit on the leader, then on the follower,
        then the leader's kernel messages (they follow the COMMIT on the link)."""
        while True:
            moved = self.forward()
            batch = self.propose()
            if batch:
                self.commit_leader(batch)
                self.commit_follower(batch)
            moved += self.answer()
            if not moved and not batch:
                return

    # -- clients -----------------------------------------------------------------------

    def conn(self, k: Kernel, name: str) -> Conn:
        c = Conn(name, self.log)
        k.register_connection(c)
        return c

    def session(self, k: Kernel, name: str, timeout: int = 10000) -> Conn:
        c = self.conn(k, name)
        assert k.connect(c, 0, timeout, 0, PW)
        self.settle()
        assert c.session is not None, c.events
        c.events.clear()
        return c

    def submit(self, k: Kernel, c: Conn, op: int, req: object) -> int:
        self.xid += 1
        k.submit(c, self.xid, op, req)
        return self.xid

    def create(self, k: Kernel, c: Conn, path: str, data: bytes = b"d", flags: int = 0,
               acl: list[ACL] = OPEN) -> int:
        return self.submit(k, c, OpCode.CREATE, CreateRequest(path, data, acl, flags))

    def agree(self) -> None:
        """Both replicas hold the same state."""
        assert self.leader.last_zxid == self.follower.last_zxid
        assert encode_snapshot(self.leader.tree) == encode_snapshot(self.follower.tree)
        assert self.leader.tree.digest == self.follower.tree.digest
        assert self.leader.tree.ephemerals == self.follower.tree.ephemerals
        assert self.leader.sessions.keys() == self.follower.sessions.keys()


def sid_of(c: Conn) -> int:
    assert c.session is not None
    return c.session.id


@pytest.fixture
def p() -> Pair:
    return Pair()


# -------------------------------------------------------------------------- sessions


def test_create_session_is_forwarded_and_established_when_applied(p: Pair) -> None:
    c = p.conn(p.follower, "c")
    assert p.follower.connect(c, 0, 10000, 0, PW)
    assert c.events == [] and p.follower.take_batch() == []
    [fwd] = p.to_leader
    assert isinstance(fwd, Forward) and fwd.op == OpCode.CREATE_SESSION
    sid = fwd.session_id
    assert (sid >> 56) & 0xFF == 2  # the follower's server id in the top byte
    assert isinstance(fwd.request, tuple)
    timeout: int = fwd.request[0]
    password: bytes = fwd.request[1]
    assert timeout == 10000 and len(password) == 16 and password != PW
    p.forward()
    [txn] = p.propose()
    assert txn.zxid == EPOCH1 and txn.session_id == sid
    assert txn.body == CreateSessionTxn(10000, password)
    p.commit_leader([txn])
    assert sid in p.leader.sessions and c.events == []
    p.commit_follower([txn])
    assert c.kinds() == ["established"]
    assert c.session is not None and c.session.id == sid and c.session.password == password
    assert p.follower.tree.sessions[sid] == p.leader.tree.sessions[sid] == SessionRecord(
        10000, password)
    p.agree()


def test_session_timeout_is_negotiated_on_the_follower(p: Pair) -> None:
    c = p.session(p.follower, "c", timeout=10**9)
    assert c.session is not None and c.session.timeout == 40000
    assert p.leader.sessions[sid_of(c)].timeout == 40000


def test_client_ahead_of_the_follower_is_refused(p: Pair) -> None:
    c = p.conn(p.follower, "c")
    assert not p.follower.connect(c, EPOCH1, 10000, 0, PW)
    assert not p.to_leader and c.events == []


def test_session_created_on_the_follower_resumes_on_the_leader(p: Pair) -> None:
    c = p.session(p.follower, "c")
    assert c.session is not None
    x = p.create(p.follower, c, "/e", flags=1)
    p.settle()
    assert c.reply(x)[3] == 0
    p.follower.disconnect(c)
    moved = p.conn(p.leader, "moved")
    assert p.leader.connect(moved, p.leader.last_zxid, 10000, c.session.id, c.session.password)
    assert moved.kinds() == ["established"]
    r = p.submit(p.leader, moved, OpCode.GET_EPHEMERALS, PathRequest("/"))
    assert moved.reply(r)[5] == ["/e"]


# -------------------------------------------------------------------------- writes


def test_write_is_answered_only_when_the_follower_applies_it(p: Pair) -> None:
    c = p.session(p.follower, "c")
    x = p.create(p.follower, c, "/a", b"v")
    [fwd] = p.to_leader
    assert fwd == Forward(sid_of(c), x, OpCode.CREATE, CreateRequest("/a", b"v", OPEN, 0),
                          [Id("ip", "127.0.0.1")])
    assert p.follower.take_batch() == []  # a follower never proposes
    p.forward()
    batch = p.propose()
    assert [t.body for t in batch] == [CreateTxn("/a", b"v", tuple(OPEN), 0, 1)]
    assert batch[0].session_id == sid_of(c) and batch[0].cxid == x
    p.commit_leader(batch)
    assert "/a" in p.leader.tree.nodes and c.events == []
    p.commit_follower(batch)
    assert c.replies() == [("reply", x, batch[0].zxid, 0, OpCode.CREATE, "/a")]
    p.agree()


def test_leader_clients_write_directly(p: Pair) -> None:
    a = p.session(p.leader, "a")
    x = p.create(p.leader, a, "/a")
    assert not p.to_leader
    batch = p.propose()
    p.commit_leader(batch)
    assert a.reply(x)[3:] == (0, OpCode.CREATE, "/a")
    p.commit_follower(batch)
    p.agree()


def _norm(v: object) -> object:
    """A reply value without what legitimately differs between a standalone server
    and an ensemble: zxids, times, session ids."""
    if isinstance(v, Stat):
        return ("stat", v.version, v.cversion, v.aversion, v.ephemeralOwner != 0,
                v.dataLength, v.numChildren)
    if isinstance(v, tuple) and hasattr(v, "_fields"):
        return (type(v).__name__, *(_norm(x) for x in v))
    if isinstance(v, list | tuple):
        return (type(v).__name__, [_norm(x) for x in v])
    return v


DIGEST_ACL = [ACL(31, "digest", "u:Xxj+RgTF5lgUfRVS6YZ2VsClSaQ=")]
SCRIPT: list[tuple[int, object]] = [
    (OpCode.CREATE, CreateRequest("/a", b"1", OPEN, 0)),
    (OpCode.CREATE, CreateRequest("/a", b"2", OPEN, 0)),  # NodeExists
    (OpCode.CREATE, CreateRequest("/x/y", b"", OPEN, 0)),  # NoNode
    (OpCode.CREATE, CreateRequest("bad", b"", OPEN, 0)),  # BadArguments
    (OpCode.CREATE, CreateRequest("/a/", b"", OPEN, 0)),  # BadArguments
    (OpCode.CREATE, CreateRequest("/n", b"", [], 0)),  # InvalidACL
    (OpCode.CREATE2, CreateRequest("/a/e", b"eph", OPEN, 1)),
    (OpCode.CREATE, CreateRequest("/a/e/c", b"", OPEN, 0)),  # NoChildrenForEphemerals
    (OpCode.CREATE, CreateRequest("/s-", b"", OPEN, 2)),
    (OpCode.CREATE, CreateRequest("/s-", b"", OPEN, 2)),
    (OpCode.CREATE_CONTAINER, CreateRequest("/c", b"", OPEN, 4)),
    (OpCode.CREATE_TTL, CreateRequest("/t", b"", OPEN, 5, 1000)),  # TTLs disabled
    (OpCode.SET_DATA, SetDataRequest("/a", b"3", 7)),  # BadVersion
    (OpCode.SET_DATA, SetDataRequest("/a", b"3", 0)),
    (OpCode.SET_DATA, SetDataRequest("/missing", b"3", -1)),  # NoNode
    (OpCode.GET_DATA, PathWatchRequest("/a", False)),
    (OpCode.DELETE, DeleteRequest("/a", -1)),  # NotEmpty
    (OpCode.SET_ACL, SetACLRequest("/a", [], -1)),  # InvalidACL
    (OpCode.SET_ACL, SetACLRequest("/a", OPEN, 5)),  # BadVersion
    (OpCode.CREATE, CreateRequest("/locked", b"", DIGEST_ACL, 0)),
    (OpCode.SET_DATA, SetDataRequest("/locked", b"x", -1)),  # NoAuth
    (OpCode.DELETE, DeleteRequest("/locked", -1)),  # allowed (parent's ACL)
    (OpCode.CHECK, CheckVersionRequest("/a", 1)),
    (OpCode.CHECK, CheckVersionRequest("/a", 2)),  # BadVersion
    (OpCode.MULTI, MultiRequest([(OpCode.CREATE, CreateRequest("/m", b"", OPEN, 0)),
                                 (OpCode.CHECK, CheckVersionRequest("/m", 3))])),
    (OpCode.MULTI, MultiRequest([(OpCode.CREATE, CreateRequest("/m", b"", OPEN, 0)),
                                 (OpCode.SET_DATA, SetDataRequest("/m", b"z", 0)),
                                 (OpCode.CREATE2, CreateRequest("/m/k", b"", OPEN, 0)),
                                 (OpCode.DELETE, DeleteRequest("/a/e", -1))])),
    (OpCode.MULTI, MultiRequest([])),
    (OpCode.GET_CHILDREN2, PathWatchRequest("/", False)),
    (OpCode.DELETE, DeleteRequest("/a", 5)),  # BadVersion
    (OpCode.DELETE, DeleteRequest("/a", 1)),
    (OpCode.EXISTS, PathWatchRequest("/a", False)),  # NoNode
]


def test_replies_are_those_of_a_standalone_server(p: Pair) -> None:
    """Error codes and results of forwarded writes come back exactly as a standalone
    server gives them."""
    c = p.session(p.follower, "c")
    for op, req in SCRIPT:
        p.submit(p.follower, c, op, req)
    p.settle()
    solo = Standalone()
    s = solo.session("s")
    for op, req in SCRIPT:
        solo.submit(s, op, req)
    solo.flush()
    want = [(e[3], e[4], _norm(e[5])) for e in s.replies()]
    got = [(e[3], e[4], _norm(e[5])) for e in c.replies()]
    assert len(got) == len(SCRIPT)
    assert got == want
    assert {e[0] for e in got} >= {0, -110, -101, -8, -114, -108, -103, -102, -111}
    p.agree()


def test_undecodable_write_is_forwarded_as_an_error(p: Pair) -> None:
    c = p.session(p.follower, "c")
    p.follower.submit_error(c, 7, OpCode.SET_DATA, MarshallingError.code)
    r = p.submit(p.follower, c, OpCode.EXISTS, PathWatchRequest("/", False))
    assert c.events == []
    p.settle()
    assert [e[1] for e in c.replies()] == [7, r]
    assert c.reply(7)[3:5] == (MarshallingError.code, OpCode.SET_DATA)
    assert p.committed[-1].body == ErrorTxn(MarshallingError.code)
    p.agree()


# -------------------------------------------------------------------------- FIFO


def test_reads_wait_for_the_forwarded_writes_before_them(p: Pair) -> None:
    c = p.session(p.follower, "c")
    other = p.session(p.follower, "other")
    w1 = p.create(p.follower, c, "/a", b"v1")
    r1 = p.submit(p.follower, c, OpCode.GET_DATA, PathWatchRequest("/a", False))
    r2 = p.submit(p.follower, c, OpCode.EXISTS, PathWatchRequest("/b", False))
    w2 = p.submit(p.follower, c, OpCode.SET_DATA, SetDataRequest("/a", b"v2", 0))
    r3 = p.submit(p.follower, c, OpCode.GET_DATA, PathWatchRequest("/a", False))
    ping = p.submit(p.follower, c, OpCode.PING, EmptyRequest())
    assert c.events == []  # nothing overtakes the write, not even a ping
    assert len(p.to_leader) == 2  # only the writes travel
    # another session is not held up, and does not see the uncommitted write
    o = p.submit(p.follower, other, OpCode.EXISTS, PathWatchRequest("/a", False))
    assert other.reply(o)[3] == NoNode.code
    p.forward()
    batch = p.propose()
    p.commit_leader(batch)
    assert c.events == []
    p.commit_follower(batch[:1])
    assert [e[1] for e in c.replies()] == [w1, r1, r2]
    assert c.reply(r1)[5][0] == b"v1" and c.reply(r2)[3] == NoNode.code
    p.commit_follower(batch[1:])
    assert [e[1] for e in c.replies()] == [w1, r1, r2, w2, r3, ping]
    assert c.reply(r3)[5][0] == b"v2" and c.reply(r3)[5][1].version == 1
    zxids = [e[2] for e in c.replies()]
    assert zxids == sorted(zxids) and c.reply(w2)[2] == batch[1].zxid


def test_replies_of_one_session_keep_request_order_under_load(p: Pair) -> None:
    c = p.session(p.follower, "c")
    a = p.session(p.leader, "a")
    xs = []
    for i in range(20):
        xs.append(p.create(p.follower, c, f"/n{i}", bytes([i])))
        p.create(p.leader, a, f"/l{i}")
        xs.append(p.submit(p.follower, c, OpCode.GET_DATA, PathWatchRequest(f"/n{i}", False)))
        if i % 3 == 0:
            p.settle()
    p.settle()
    assert [e[1] for e in c.replies()] == xs
    assert all(e[3] == 0 for e in c.replies())
    assert [e[5][0] for e in c.replies() if e[4] == OpCode.GET_DATA] == [
        bytes([i]) for i in range(20)]
    p.agree()


def test_watch_event_comes_before_the_reply_that_caused_it(p: Pair) -> None:
    c = p.session(p.follower, "c")
    ex = p.submit(p.follower, c, OpCode.EXISTS, PathWatchRequest("/w", True))
    assert c.reply(ex)[3] == NoNode.code
    x = p.create(p.follower, c, "/w")
    p.settle()
    assert [e[0] for e in c.events[1:]] == ["event", "reply"]
    assert c.events[1][1:3] == (CREATED, "/w") and c.events[2][1] == x


def test_follower_watches_fire_when_the_follower_applies(p: Pair) -> None:
    c = p.session(p.follower, "c")
    a = p.session(p.leader, "a")
    p.create(p.leader, a, "/w")
    p.settle()
    p.submit(p.follower, c, OpCode.GET_DATA, PathWatchRequest("/w", True))
    p.submit(p.leader, a, OpCode.SET_DATA, SetDataRequest("/w", b"new", -1))
    batch = p.propose()
    p.commit_leader(batch)
    assert c.notifications() == []
    p.commit_follower(batch)
    assert c.notifications() == [(CHANGED, "/w")]


# -------------------------------------------------------------------------- sync


def test_sync_on_an_idle_follower(p: Pair) -> None:
    c = p.session(p.follower, "c")
    x = p.submit(p.follower, c, OpCode.SYNC, PathRequest("/a"))
    assert c.events == [] and list(p.to_leader) == [ForwardSync(sid_of(c), x)]
    p.forward()
    assert list(p.to_follower) == [SyncDone(sid_of(c), x, p.leader.last_zxid)]
    assert p.leader.take_batch() == []  # a sync is no transaction
    p.answer()
    assert c.replies() == [("reply", x, p.follower.last_zxid, 0, OpCode.SYNC, "/a")]


def test_sync_waits_until_the_follower_has_applied_what_the_leader_committed(
        p: Pair) -> None:
    c = p.session(p.follower, "c")
    a = p.session(p.leader, "a")
    p.create(p.leader, a, "/x", b"fresh")
    batch = p.propose()
    p.commit_leader(batch)  # committed; the follower has not applied it yet
    s = p.submit(p.follower, c, OpCode.SYNC, PathRequest("/x"))
    r = p.submit(p.follower, c, OpCode.GET_DATA, PathWatchRequest("/x", False))
    p.forward()
    [done] = p.to_follower
    assert done == SyncDone(sid_of(c), s, batch[-1].zxid)
    p.answer()  # SyncDone overtakes the commit (not over one link; still must hold)
    assert c.events == []
    p.commit_follower(batch)
    assert [e[1] for e in c.replies()] == [s, r]
    assert c.reply(r)[3] == 0 and c.reply(r)[5][0] == b"fresh"


def test_sync_waits_for_proposals_the_leader_has_not_committed(p: Pair) -> None:
    c = p.session(p.follower, "c")
    a = p.session(p.leader, "a")
    p.create(p.leader, a, "/y")
    batch = p.propose()  # proposed, not committed
    s = p.submit(p.follower, c, OpCode.SYNC, PathRequest("/y"))
    r = p.submit(p.follower, c, OpCode.EXISTS, PathWatchRequest("/y", False))
    p.forward()
    assert not p.to_follower  # the leader waits for its own commit
    p.commit_leader(batch)
    assert list(p.to_follower) == [SyncDone(sid_of(c), s, batch[-1].zxid)]
    p.answer()
    assert c.events == []
    p.commit_follower(batch)
    assert [e[1] for e in c.replies()] == [s, r] and c.reply(r)[3] == 0


def test_sync_after_a_forwarded_write_of_the_same_session(p: Pair) -> None:
    c = p.session(p.follower, "c")
    w = p.create(p.follower, c, "/z")
    s = p.submit(p.follower, c, OpCode.SYNC, PathRequest("/z"))
    r = p.submit(p.follower, c, OpCode.GET_DATA, PathWatchRequest("/z", False))
    p.settle()
    assert [e[1] for e in c.replies()] == [w, s, r]
    assert [e[3] for e in c.replies()] == [0, 0, 0]


def test_two_syncs_of_one_session(p: Pair) -> None:
    c = p.session(p.follower, "c")
    s1 = p.submit(p.follower, c, OpCode.SYNC, PathRequest("/1"))
    s2 = p.submit(p.follower, c, OpCode.SYNC, PathRequest("/2"))
    p.settle()
    assert [(e[1], e[5]) for e in c.replies()] == [(s1, "/1"), (s2, "/2")]


# -------------------------------------------------------------------------- close


def test_close_session_removes_ephemerals_on_both(p: Pair) -> None:
    c = p.session(p.follower, "c")
    a = p.session(p.leader, "a")
    sid = sid_of(c)
    p.create(p.follower, c, "/e1", flags=1)
    p.create(p.follower, c, "/e2", flags=3)
    p.settle()
    assert len(p.leader.tree.ephemerals[sid]) == 2
    p.submit(p.leader, a, OpCode.EXISTS, PathWatchRequest("/e1", True))
    close = p.submit(p.follower, c, OpCode.CLOSE_SESSION, EmptyRequest())
    after = p.submit(p.follower, c, OpCode.EXISTS, PathWatchRequest("/", False))
    assert [type(m) for m in p.to_leader] == [Forward]
    p.settle()
    assert c.reply(close)[3:5] == (0, OpCode.CLOSE_SESSION)
    assert c.kinds()[-1] == "close"
    # what came after the close is not executed
    assert all(e[1] != after or e[3] == SessionExpired.code for e in c.replies())
    assert isinstance(p.committed[-1].body, CloseSessionTxn)
    for k in (p.leader, p.follower):
        assert sid not in k.sessions and sid not in k.tree.sessions
        assert sid not in k.tree.ephemerals
        assert not [n for n in k.tree.nodes if n.startswith("/e")]
    assert (DELETED, "/e1") in a.notifications()
    p.agree()


def test_a_write_after_close_is_not_forwarded(p: Pair) -> None:
    c = p.session(p.follower, "c")
    p.submit(p.follower, c, OpCode.CLOSE_SESSION, EmptyRequest())
    x = p.submit(p.follower, c, OpCode.CREATE, CreateRequest("/late", b"", OPEN, 0))
    assert len(p.to_leader) == 1  # the write after the close is not forwarded
    p.settle()
    assert "/late" not in p.leader.tree.nodes
    assert [e for e in c.replies() if e[1] == x] in ([], [("reply", x, p.leader.last_zxid,
                                                            SessionExpired.code,
                                                            OpCode.CREATE, None)])


# -------------------------------------------------------------------------- unknown session


def test_forward_of_an_unknown_session_is_session_expired(p: Pair) -> None:
    ghost = (2 << 56) | 12345
    p.leader.from_peer(2, wire(Forward(ghost, 9, OpCode.CREATE,
                                       CreateRequest("/g", b"", OPEN, 0), [])))
    [txn] = p.propose()
    assert txn.body == ErrorTxn(SessionExpired.code)
    assert (txn.session_id, txn.cxid, txn.op) == (ghost, 9, OpCode.CREATE)
    p.commit_leader([txn])
    assert "/g" not in p.leader.tree.nodes


def test_write_of_a_session_the_leader_does_not_know(p: Pair) -> None:
    """The follower still knows a session the leader has not (or no longer): the
    write comes back as SessionExpired."""
    ghost, pw = (2 << 56) | 777, b"g" * 16
    snap = decode_snapshot(encode_snapshot(p.leader.tree))
    snap.sessions[ghost] = SessionRecord(10000, pw)
    p.follower.install_tree(snap)
    c = p.conn(p.follower, "c")
    assert p.follower.connect(c, 0, 10000, ghost, pw)
    assert c.kinds() == ["established"]
    x = p.create(p.follower, c, "/g")
    r = p.submit(p.follower, c, OpCode.EXISTS, PathWatchRequest("/g", False))
    p.settle()
    assert [e[1] for e in c.replies()] == [x, r]
    assert c.reply(x)[3:5] == (SessionExpired.code, OpCode.CREATE)
    assert c.reply(r)[3] == NoNode.code
    assert "/g" not in p.leader.tree.nodes and "/g" not in p.follower.tree.nodes


def test_a_session_closing_on_the_leader_gets_session_expired(p: Pair) -> None:
    c = p.session(p.follower, "c")
    p.leader.expire_session(sid_of(c))  # proposed, not yet committed
    p.create(p.follower, c, "/late")
    p.forward()
    batch = p.propose()
    assert [type(t.body) for t in batch] == [CloseSessionTxn, ErrorTxn]
    assert batch[1].body == ErrorTxn(SessionExpired.code)
    p.commit_leader(batch)
    p.commit_follower(batch)
    assert c.kinds()[-1] == "close"
    assert sid_of(c) not in p.follower.sessions
    p.agree()


# -------------------------------------------------------------------------- touches, expiry


def test_take_touches_reports_sessions_with_client_activity(p: Pair) -> None:
    """As ZooKeeper's learner session tracker: every request (pings included) and
    every session resumed here marks the session live until the next report."""
    a = p.session(p.follower, "a", timeout=6000)
    b = p.session(p.follower, "b", timeout=8000)
    gone = p.session(p.follower, "gone")
    on_leader = p.session(p.leader, "l")
    p.follower.disconnect(gone)
    p.follower.take_touches()
    assert p.follower.take_touches() == []  # nothing happened since
    p.submit(p.follower, a, OpCode.PING, EmptyRequest())
    p.submit(p.follower, b, OpCode.GET_DATA, PathWatchRequest("/", False))
    p.submit(p.leader, on_leader, OpCode.PING, EmptyRequest())
    assert dict(p.follower.take_touches()) == {sid_of(a): 6000, sid_of(b): 8000}
    assert p.follower.take_touches() == []
    # activity since the last call is reported even if the client left since
    p.create(p.follower, b, "/x")  # a forwarded write is activity too
    p.follower.disconnect(b)
    assert dict(p.follower.take_touches()) == {sid_of(b): 8000}
    # a client resuming its session on the follower makes it live again
    assert gone.session is not None
    back = p.conn(p.follower, "back")
    assert p.follower.connect(back, 0, 5000, gone.session.id, gone.session.password)
    p.submit(p.follower, a, OpCode.SYNC, PathRequest("/"))
    touches = p.follower.take_touches()
    assert dict(touches) == {sid_of(a): 6000, gone.session.id: 5000}
    # a Touch is one record on the link
    assert wire(Touch(touches)) == Touch(touches)


def run_time(p: Pair, ms: int, step: int = 500, touch: bool = True,
             pinging: tuple[Conn, ...] = ()) -> None:
    """Let ``ms`` pass: the clients in ``pinging`` ping the follower, the follower
    reports touches to the leader (if ``touch``), both kernels tick."""
    for _ in range(ms // step):
        p.clock.advance(step)
        for c in pinging:
            p.submit(p.follower, c, OpCode.PING, EmptyRequest())
        if touch:
            touches = p.follower.take_touches()
            if touches:
                p.leader.from_peer(2, wire(Touch(touches)))
        p.leader.tick()
        p.follower.tick()
        assert p.follower.take_batch() == []
        p.settle()


def test_leader_expires_sessions_the_follower_does_not_touch(p: Pair) -> None:
    live = p.session(p.follower, "live", timeout=4000)
    idle = p.session(p.follower, "idle", timeout=4000)
    p.create(p.follower, idle, "/idle-eph", flags=1)
    p.create(p.follower, live, "/live-eph", flags=1)
    p.settle()
    idle_sid = sid_of(idle)
    p.follower.disconnect(idle)  # the client is gone; nothing touches its session
    run_time(p, 20000, pinging=(live,))
    assert idle_sid not in p.leader.sessions and idle_sid not in p.follower.sessions
    assert "/idle-eph" not in p.follower.tree.nodes
    assert sid_of(live) in p.leader.sessions and "/live-eph" in p.follower.tree.nodes
    x = p.create(p.follower, live, "/still")
    p.settle()
    assert live.reply(x)[3] == 0
    p.agree()


def test_without_touches_the_leader_expires_follower_sessions(p: Pair) -> None:
    c = p.session(p.follower, "c", timeout=4000)
    run_time(p, 12000, touch=False, pinging=(c,))
    assert sid_of(c) not in p.leader.sessions and sid_of(c) not in p.follower.sessions
    assert c.kinds()[-1] == "close"


def test_touch_keeps_the_timeout_the_follower_negotiated(p: Pair) -> None:
    c = p.session(p.follower, "c", timeout=4000)
    p.leader.from_peer(2, wire(Touch([(sid_of(c), 30000)])))
    assert p.leader.sessions[sid_of(c)].timeout == 30000
    run_time(p, 20000, touch=False)
    assert sid_of(c) in p.leader.sessions  # 30 s not over yet
    run_time(p, 15000, touch=False)
    assert sid_of(c) not in p.leader.sessions


def test_follower_tick_never_expires(p: Pair) -> None:
    c = p.session(p.follower, "c", timeout=4000)
    p.follower.disconnect(c)
    p.clock.advance(10**7)
    p.follower.tick()
    assert p.follower.reap(100) == 0
    assert p.follower.take_batch() == [] and not p.to_leader
    assert sid_of(c) in p.follower.sessions


def test_a_touch_of_a_closing_session_does_not_revive_it(p: Pair) -> None:
    c = p.session(p.follower, "c", timeout=4000)
    p.leader.expire_session(sid_of(c))
    p.leader.from_peer(2, wire(Touch([(sid_of(c), 4000)])))
    p.settle()
    assert sid_of(c) not in p.leader.sessions and sid_of(c) not in p.follower.sessions


# -------------------------------------------------------------------------- roles


def test_looking_closes_connections_and_drops_pending_requests(p: Pair) -> None:
    c = p.session(p.follower, "c")
    a = p.session(p.leader, "a")
    sess = c.session
    assert sess is not None
    w = p.create(p.follower, c, "/f")  # forwarded, not yet at the leader
    s = p.submit(p.follower, c, OpCode.SYNC, PathRequest("/"))
    p.create(p.leader, a, "/l")  # proposed by the leader, not taken yet
    p.follower.become("looking", 1, 1)
    assert c.kinds() == ["close"] and not p.follower.serving
    assert sess.conn is None and not sess.pending and not sess.closing
    assert sess.id in p.follower.sessions  # sessions outlive their connections
    late = p.conn(p.follower, "late")
    assert not p.follower.connect(late, 0, 10000, 0, PW)  # not serving
    assert late.events == []
    # what was already sent still arrives; its answers reach nobody
    p.forward()
    p.leader.become("looking", 1, 1)
    assert a.kinds() == ["close"]
    assert p.leader.take_batch() == [] and p.leader.outstanding_requests == 0
    p.leader.tick()
    assert p.leader.take_batch() == []
    p.answer()
    assert c.kinds() == ["close"]
    assert [e for e in c.replies() if e[1] in (w, s)] == []
    # a new epoch: clients reconnect and keep their sessions
    p.leader.become("leader", 1, 2, next_zxid=(2 << 32) + 1)
    p.follower.become("follower", 1, 2)
    again = p.conn(p.follower, "again")
    assert p.follower.connect(again, p.follower.last_zxid, 10000, sess.id, sess.password)
    assert again.kinds() == ["established"]
    x = p.create(p.follower, again, "/f")
    p.settle()
    assert again.reply(x)[3] == 0 and again.reply(x)[2] == (2 << 32) + 1
    p.agree()


def test_leader_becoming_follower_forwards_from_then_on(p: Pair) -> None:
    p.leader.become("looking", 1, 1)
    p.leader.become("follower", 2, 2)
    assert p.leader.leader_id == 2 and p.leader.role == "follower"
    c = p.conn(p.leader, "c")
    sent: list[tuple[int, KernelMessage]] = []
    p.leader.send_to_peer = lambda peer, msg: sent.append((peer, msg))
    assert p.leader.connect(c, 0, 10000, 0, PW)
    assert len(sent) == 1 and sent[0][0] == 2 and isinstance(sent[0][1], Forward)
    assert p.leader.take_batch() == []


def test_messages_for_another_role_are_ignored(p: Pair) -> None:
    c = p.session(p.follower, "c")
    # a follower does not act on leader-bound messages ...
    p.follower.from_peer(1, wire(Forward(sid_of(c), 1, OpCode.CREATE,
                                         CreateRequest("/x", b"", OPEN, 0), [])))
    p.follower.from_peer(1, wire(ForwardSync(sid_of(c), 2)))
    p.follower.from_peer(1, wire(Touch([(sid_of(c), 4000)])))
    assert p.follower.take_batch() == [] and not p.to_leader and not p.to_follower
    # ... and a SyncDone nobody waits for changes nothing
    p.follower.from_peer(1, wire(SyncDone(sid_of(c), 99, p.follower.last_zxid)))
    p.follower.from_peer(1, wire(SyncDone(12345, 99, 0)))
    assert c.events == []


# -------------------------------------------------------------------------- snapshots


def test_install_tree_replaces_the_tree_and_the_sessions(p: Pair) -> None:
    c = p.session(p.follower, "c")
    a = p.session(p.leader, "a")
    for i in range(5):
        p.create(p.leader, a, f"/n{i}", bytes([i]))
    p.create(p.leader, a, "/eph", flags=1)
    p.settle()
    # the follower misses some commits, then gets a snapshot instead
    p.create(p.leader, a, "/missed")
    p.commit_leader(p.propose())
    only_here = p.follower.sessions.keys() - p.leader.sessions.keys()
    assert not only_here
    ghost = (2 << 56) | 5
    p.follower.tree.sessions[ghost] = SessionRecord(4000, PW)  # will be gone
    p.follower.sessions[ghost] = p.follower.sessions[sid_of(c)]
    snap = decode_snapshot(encode_snapshot(p.leader.tree))
    p.follower.install_tree(snap)
    assert p.follower.tree is snap
    assert c.kinds()[-1] == "close"
    assert p.follower.last_zxid == p.leader.last_zxid
    assert p.follower.sessions.keys() == p.leader.sessions.keys() == snap.sessions.keys()
    for sid, sess in p.follower.sessions.items():
        assert (sess.timeout, sess.password) == (snap.sessions[sid].timeout,
                                                 snap.sessions[sid].password)
        assert sess.conn is None and not sess.pending
    assert ghost not in p.follower.sessions
    assert "/missed" in p.follower.tree.nodes
    p.agree()
    # reads see the new tree; the client resumes its session; replication goes on
    assert c.session is not None
    back = p.conn(p.follower, "back")
    assert p.follower.connect(back, p.follower.last_zxid, 10000, c.session.id,
                              c.session.password)
    r = p.submit(p.follower, back, OpCode.GET_DATA, PathWatchRequest("/n3", False))
    assert back.reply(r)[5][0] == b"\x03"
    x = p.create(p.follower, back, "/after", flags=1)
    p.create(p.leader, a, "/n0/child")
    p.settle()
    assert back.reply(x)[3] == 0
    assert p.follower.tree.ephemerals[c.session.id] == {"/after"}
    p.agree()


def test_sync_then_close_when_both_commit_in_one_batch(p: Pair) -> None:
    """The sync point and the close commit together (group commit): the leader sends
    SyncDone after the whole batch, so the follower applies the close first. The sync,
    queued before the close, must still be answered, before the close's reply."""
    c = p.session(p.follower, "c")
    a = p.session(p.leader, "a")
    p.create(p.leader, a, "/y")
    batch = p.propose()
    s = p.submit(p.follower, c, OpCode.SYNC, PathRequest("/y"))
    close = p.submit(p.follower, c, OpCode.CLOSE_SESSION, EmptyRequest())
    p.forward()
    batch += p.propose()
    assert [type(t.body) for t in batch] == [CreateTxn, CloseSessionTxn]
    p.commit_leader(batch)
    p.commit_follower(batch)
    p.answer()
    assert [e[1] for e in c.replies()] == [s, close]


def test_forwarded_writes_carry_the_clients_identities(p: Pair) -> None:
    c = p.session(p.follower, "c")
    stranger = p.session(p.follower, "stranger")
    auth = p.submit(p.follower, c, OpCode.AUTH, AuthRequest(0, "digest", b"u:pw"))
    assert c.reply(auth)[3] == 0  # authentication is local to the follower
    me = [ACL(31, "digest", digest_id("u:pw"))]
    x = p.create(p.follower, c, "/mine", acl=me)
    p.settle()
    assert c.reply(x)[3] == 0
    y = p.submit(p.follower, c, OpCode.SET_DATA, SetDataRequest("/mine", b"ok", -1))
    z = p.submit(p.follower, stranger, OpCode.SET_DATA, SetDataRequest("/mine", b"no", -1))
    p.settle()
    assert c.reply(y)[3] == 0 and stranger.reply(z)[3] == NoAuth.code
    assert p.follower.tree.nodes["/mine"].data == b"ok"
    p.agree()


def test_looking_abandons_sessions_being_created(p: Pair) -> None:
    c = p.conn(p.follower, "c")
    assert p.follower.connect(c, 0, 10000, 0, PW)
    p.forward()
    batch = p.propose()
    p.follower.become("looking", 1, 1)
    assert c.kinds() == ["close"]
    p.commit_leader(batch)
    p.commit_follower(batch)  # the session commits; the closed client is not told
    assert c.kinds() == ["close"] and c.session is None
    assert batch[0].session_id in p.follower.sessions
