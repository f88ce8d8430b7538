"""The kernel's request pipeline, driven directly: submit → prep → propose →
take_batch/durable → apply → watches → replies, per-session FIFO (§3.3, §8, §10).

A recording ClientConnection stands in for the transport; MemoryStorage and a
ManualClock make every step explicit.
"""

from __future__ import annotations

from typing import Any

import pytest

from kernel.clock import ManualClock
from kernel.config import ServerConfig
from kernel.core import Kernel, Session
from kernel.errors import AuthFailed, NoNode, NoWatcher, SessionExpired
from kernel.protocol import CONTAINER_EPHEMERAL_OWNER, EventType, OpCode
from kernel.records import (
    ACL,
    AuthRequest,
    CreateRequest,
    DeleteRequest,
    EmptyRequest,
    Id,
    MultiRequest,
    OpResult,
    PathRequest,
    PathWatchRequest,
    SetDataRequest,
    SetWatchesRequest,
    Stat,
    WatchTypeRequest,
)
from kernel.tree import Node
from plugins.auth_digest import DigestAuthProvider, digest_id
from plugins.storage_memory import MemoryStorage

OPEN = [ACL(31, "world", "anyone")]
CREATED, DELETED, CHANGED, CHILDREN = (EventType.NODE_CREATED, EventType.NODE_DELETED,
                                       EventType.NODE_DATA_CHANGED,
                                       EventType.NODE_CHILDREN_CHANGED)


def _snap(value: object) -> object:
    """Encode-before-return, as the protocol requires: copy live nodes."""
    if isinstance(value, Node):
        return (value.data, value.stat())
    if isinstance(value, list):
        return list(value)
    return value


class Conn:
    """A recording ClientConnection."""

    def __init__(self, name: str, log: list[tuple[Any, ...]]) -> None:
        self.name = name
        self.ids: list[Id] = [Id("ip", "127.0.0.1")]
        self.remote_address = "127.0.0.1"
        self.session: Session | None = None
        self.events: list[tuple[Any, ...]] = []
        self._log = log

    def _rec(self, *e: Any) -> None:
        self.events.append(e)
        self._log.append((self.name, *e))

    def notify(self, event_type: int, path: str, zxid: int) -> None:
        self._rec("event", event_type, path, zxid)

    def send_response(self, xid: int, zxid: int, err: int, op: int, value: object) -> None:
        self._rec("reply", xid, zxid, err, op, _snap(value))

    def session_established(self, session: Session) -> None:
        self._rec("established", session.id, session.timeout)

    def session_refused(self) -> None:
        self._rec("refused")

    def close(self) -> None:
        self._rec("close")

    # -- views ---------------------------------------------------------------------

    def replies(self) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] == "reply"]

    def reply(self, xid: int) -> tuple[Any, ...]:
        found = [e for e in self.events if e[0] == "reply" and e[1] == xid]
        assert len(found) == 1, f"{self.name}: replies to {xid}: {found}"
        return found[0]

    def notifications(self) -> list[tuple[int, str]]:
        return [(e[1], e[2]) for e in self.events if e[0] == "event"]

    def kinds(self) -> list[str]:
        return [e[0] for e in self.events]


class H:
    """A kernel with memory storage and a manual clock."""

    def __init__(self, **cfg: Any) -> None:
        self.clock = ManualClock(wall=1_700_000_000_000, mono=0)
        self.config = ServerConfig(tick_time=2000, **cfg)
        self.k = Kernel(self.config, MemoryStorage(), [DigestAuthProvider()], self.clock)
        self.log: list[tuple[Any, ...]] = []
        self.xid = 0

    def conn(self, name: str) -> Conn:
        c = Conn(name, self.log)
        self.k.register_connection(c)
        return c

    def flush(self) -> None:
        while True:
            batch = self.k.take_batch()
            if not batch:
                return
            self.k.durable(batch)

    def session(self, name: str, timeout: int = 10000) -> Conn:
        c = self.conn(name)
        assert self.k.connect(c, 0, timeout, 0, b"\x00" * 16)
        self.flush()
        assert c.session is not None
        c.events.clear()
        return c

    def submit(self, c: Conn, op: int, req: object, xid: int | None = None) -> int:
        if xid is None:
            self.xid += 1
            xid = self.xid
        self.k.submit(c, xid, op, req)
        return xid

    def create(self, c: Conn, path: str, data: bytes = b"d", flags: int = 0,
               op: int = OpCode.CREATE) -> int:
        return self.submit(c, op, CreateRequest(path, data, OPEN, flags))

    def run(self, c: Conn, op: int, req: object) -> tuple[Any, ...]:
        xid = self.submit(c, op, req)
        self.flush()
        return c.reply(xid)


@pytest.fixture
def h() -> H:
    return H()


# ---------------------------------------------------------------------------- connect


def test_session_established_only_after_commit(h: H) -> None:
    c = h.conn("a")
    assert h.k.connect(c, 0, 10000, 0, b"\x00" * 16)
    assert c.events == [] and c.session is None
    batch = h.k.take_batch()
    assert len(batch) == 1 and batch[0].op == OpCode.CREATE_SESSION
    assert c.events == []
    h.k.durable(batch)
    assert c.kinds() == ["established"]
    assert c.session is not None and c.session.id == c.events[0][1] != 0
    assert len(c.session.password) == 16
    assert h.k.last_zxid == batch[0].zxid == 1  # createSession consumes a zxid
    assert c.session.id in h.k.tree.sessions


@pytest.mark.parametrize("asked, negotiated", [(1000, 4000), (10**9, 40000), (10000, 10000)])
def test_timeout_is_clamped(h: H, asked: int, negotiated: int) -> None:
    c = h.conn("a")
    h.k.connect(c, 0, asked, 0, b"\x00" * 16)
    h.flush()
    assert c.events[0][2] == negotiated


def test_session_ids_are_distinct(h: H) -> None:
    ids = {h.session(f"c{i}").session.id for i in range(5)}  # type: ignore[union-attr]
    assert len(ids) == 5 and 0 not in ids


def test_client_ahead_of_server_is_refused_without_answer(h: H) -> None:
    c = h.conn("a")
    assert h.k.connect(c, 5, 10000, 0, b"\x00" * 16) is False
    assert h.k.take_batch() == []
    assert c.events == []


def test_resume_with_wrong_password_is_refused_and_kicks_the_owner(h: H) -> None:
    a = h.session("a")
    sid = a.session.id  # type: ignore[union-attr]
    b = h.conn("b")
    assert h.k.connect(b, 0, 10000, sid, b"\x01" * 16)
    assert b.kinds() == ["refused"]
    assert a.kinds() == ["close"]  # closed before the password check (§2.2)
    assert sid in h.k.sessions  # the session itself lives on


def test_resume_unknown_session_is_refused(h: H) -> None:
    c = h.conn("a")
    h.k.connect(c, 0, 10000, 0x7777, b"\x00" * 16)
    assert c.kinds() == ["refused"]


def test_resume_with_password_moves_the_session(h: H) -> None:
    a = h.session("a")
    sess = a.session
    assert sess is not None
    h.run(a, OpCode.EXISTS, PathWatchRequest("/w", True))
    b = h.conn("b")
    assert h.k.connect(b, h.k.last_zxid, 4000, sess.id, sess.password)
    assert b.kinds() == ["established"]
    assert b.events[0][1:] == (sess.id, 4000)
    assert a.kinds()[-1] == "close"
    # The old connection's watches are gone; requests on it are ignored.
    h.k.submit(a, 99, OpCode.PING, EmptyRequest())
    h.create(b, "/w")
    h.flush()
    assert a.notifications() == []
    assert [e for e in a.events if e[0] == "reply" and e[1] == 99] == []


# ------------------------------------------------------------------------- FIFO order


def test_read_after_pending_write_waits_and_sees_it(h: H) -> None:
    a = h.session("a")
    w = h.create(a, "/x", b"v1")
    r1 = h.submit(a, OpCode.GET_DATA, PathWatchRequest("/x", False))
    r2 = h.submit(a, OpCode.EXISTS, PathWatchRequest("/x", False))
    p = h.submit(a, OpCode.PING, EmptyRequest(), xid=-2)
    assert a.events == []  # nothing overtakes the write
    h.flush()
    assert [e[1] for e in a.replies()] == [w, r1, r2, p]
    create_zxid = a.reply(w)[2]
    assert a.reply(w)[3:] == (0, OpCode.CREATE, "/x")
    data, stat = a.reply(r1)[5]
    assert data == b"v1" and stat.czxid == create_zxid
    assert a.reply(r1)[2] == create_zxid  # reads carry the last zxid
    assert a.reply(r2)[5][1].czxid == create_zxid
    assert a.reply(p)[2:5] == (create_zxid, 0, OpCode.PING)


def test_read_without_pending_is_answered_at_once(h: H) -> None:
    a = h.session("a")
    x = h.submit(a, OpCode.GET_DATA, PathWatchRequest("/", False))
    assert a.reply(x)[3] == 0
    y = h.submit(a, OpCode.GET_DATA, PathWatchRequest("/missing", False))
    assert a.reply(y)[3] == NoNode.code and a.reply(y)[5] is None
    assert h.k.take_batch() == []  # reads never enter the write pipeline


def test_writes_of_one_session_answered_in_order(h: H) -> None:
    a = h.session("a")
    xs = [h.create(a, f"/n{i}") for i in range(5)]
    xs.append(h.submit(a, OpCode.SET_DATA, SetDataRequest("/n0", b"", 0)))
    xs.append(h.submit(a, OpCode.DELETE, DeleteRequest("/n1", -1)))
    h.flush()
    replies = a.replies()
    assert [e[1] for e in replies] == xs
    zxids = [e[2] for e in replies]
    assert zxids == sorted(zxids) and len(set(zxids)) == len(zxids)


def test_failed_write_consumes_a_zxid(h: H) -> None:
    a = h.session("a")
    before = h.k.last_zxid
    rep = h.run(a, OpCode.CREATE, CreateRequest("/nope/x", b"", OPEN, 0))
    assert rep[3] == NoNode.code and rep[5] is None
    assert rep[2] == before + 1 == h.k.last_zxid


def test_other_sessions_reads_do_not_wait(h: H) -> None:
    a, b = h.session("a"), h.session("b")
    h.create(a, "/x")
    r = h.submit(b, OpCode.EXISTS, PathWatchRequest("/x", False))
    assert b.reply(r)[3] == NoNode.code  # b has nothing pending; the write is in flight
    h.flush()


# --------------------------------------------------------------- notification ordering


def test_watch_event_precedes_the_reply_of_the_write_that_fired_it(h: H) -> None:
    a, b = h.session("a"), h.session("b")
    e = h.submit(a, OpCode.EXISTS, PathWatchRequest("/w", True))
    assert a.reply(e)[3] == NoNode.code  # missing, but the watch is set
    h.submit(b, OpCode.GET_CHILDREN, PathWatchRequest("/", True))
    c = h.create(a, "/w")
    h.flush()
    assert a.kinds()[-2:] == ["event", "reply"]
    ev, rep = a.events[-2], a.events[-1]
    assert ev[1:3] == (CREATED, "/w") and rep[1] == c
    assert ev[3] == rep[2]  # the notification carries the write's zxid
    assert b.notifications() == [(CHILDREN, "/")]
    # Global order: a's NodeCreated precedes b's NodeChildrenChanged (§8.3).
    order = [(x[0], x[2], x[3]) for x in h.log if x[1] == "event"]
    assert order == [("a", CREATED, "/w"), ("b", CHILDREN, "/")]


def test_notification_before_read_reply_queued_behind_the_write(h: H) -> None:
    a = h.session("a")
    h.create(a, "/d")
    h.flush()
    h.run(a, OpCode.GET_DATA, PathWatchRequest("/d", True))
    a.events.clear()
    w = h.submit(a, OpCode.SET_DATA, SetDataRequest("/d", b"new", -1))
    r = h.submit(a, OpCode.GET_DATA, PathWatchRequest("/d", False))
    h.flush()
    assert [e[0] for e in a.events] == ["event", "reply", "reply"]
    assert a.events[0][1:3] == (CHANGED, "/d")
    assert [a.events[1][1], a.events[2][1]] == [w, r]
    assert a.reply(r)[5][0] == b"new"


def test_one_event_per_connection_per_trigger_and_one_shot(h: H) -> None:
    a = h.session("a")
    h.create(a, "/o")
    h.flush()
    h.submit(a, OpCode.EXISTS, PathWatchRequest("/o", True))
    h.submit(a, OpCode.GET_DATA, PathWatchRequest("/o", True))
    h.run(a, OpCode.SET_DATA, SetDataRequest("/o", b"1", -1))
    h.run(a, OpCode.SET_DATA, SetDataRequest("/o", b"2", -1))
    assert a.notifications() == [(CHANGED, "/o")]


def test_delete_fires_node_deleted_once_for_data_and_child_watch(h: H) -> None:
    a, b = h.session("a"), h.session("b")
    h.create(a, "/n")
    h.flush()
    h.submit(b, OpCode.GET_DATA, PathWatchRequest("/n", True))
    h.submit(b, OpCode.GET_CHILDREN, PathWatchRequest("/n", True))
    h.submit(b, OpCode.GET_CHILDREN, PathWatchRequest("/", True))
    h.run(a, OpCode.DELETE, DeleteRequest("/n", -1))
    assert b.notifications() == [(DELETED, "/n"), (CHILDREN, "/")]
    xid = h.submit(b, OpCode.CHECK_WATCHES, WatchTypeRequest("/n", 1))
    assert b.reply(xid)[3] == NoWatcher.code  # the child watch was consumed too


def test_failed_multi_fires_nothing(h: H) -> None:
    a, b = h.session("a"), h.session("b")
    h.submit(b, OpCode.EXISTS, PathWatchRequest("/m1", True))
    rep = h.run(a, OpCode.MULTI, MultiRequest([
        (OpCode.CREATE, CreateRequest("/m1", b"", OPEN, 0)),
        (OpCode.DELETE, DeleteRequest("/missing", -1)),
        (OpCode.CREATE, CreateRequest("/m2", b"", OPEN, 0)),
    ]))
    assert rep[3] == 0
    assert rep[5] == [OpResult(OpCode.ERROR, 0), OpResult(OpCode.ERROR, NoNode.code),
                      OpResult(OpCode.ERROR, -2)]
    assert b.notifications() == []
    assert "/m1" not in h.k.tree.nodes


def test_multi_echoes_the_create_type(h: H) -> None:
    a = h.session("a")
    rep = h.run(a, OpCode.MULTI, MultiRequest([
        (OpCode.CREATE, CreateRequest("/k1", b"", OPEN, 0)),
        (OpCode.CREATE2, CreateRequest("/k2", b"", OPEN, 0)),
        (OpCode.CREATE_CONTAINER, CreateRequest("/k3", b"", OPEN, 4)),
        (OpCode.SET_DATA, SetDataRequest("/k1", b"x", 0)),
        (OpCode.DELETE, DeleteRequest("/k2", 0)),
    ]))
    results = rep[5]
    assert [r.op for r in results] == [OpCode.CREATE, OpCode.CREATE2, OpCode.CREATE2,
                                       OpCode.SET_DATA, OpCode.DELETE]
    assert results[0].value == "/k1"
    path, stat = results[1].value
    assert path == "/k2" and isinstance(stat, Stat) and stat.czxid == rep[2]
    assert results[2].value[0] == "/k3"
    assert results[3].value.version == 1
    assert h.k.tree.nodes["/k3"].owner == CONTAINER_EPHEMERAL_OWNER


# ------------------------------------------------------------------------------- sync


def test_sync_waits_for_own_pending_write(h: H) -> None:
    a = h.session("a")
    w = h.create(a, "/s")
    s = h.submit(a, OpCode.SYNC, PathRequest("/s"))
    assert a.events == []
    h.flush()
    assert [e[1] for e in a.replies()] == [w, s]
    assert a.reply(s)[3:] == (0, OpCode.SYNC, "/s")


def test_sync_waits_for_another_sessions_proposed_write(h: H) -> None:
    a, b = h.session("a"), h.session("b")
    h.create(a, "/s")
    batch = h.k.take_batch()  # proposed, not yet durable
    s = h.submit(b, OpCode.SYNC, PathRequest("/s"))
    assert b.replies() == []
    h.k.durable(batch)
    assert h.log[-1][0] == "b" and h.log[-1][2] == s
    assert b.reply(s)[2] >= batch[0].zxid


def test_sync_waits_for_another_sessions_write_not_yet_batched(h: H) -> None:
    a, b = h.session("a"), h.session("b")
    w = h.create(a, "/s")  # received before the sync, still in flight
    s = h.submit(b, OpCode.SYNC, PathRequest("/s"))
    assert b.replies() == []
    h.flush()
    names = [(x[0], x[2]) for x in h.log if x[1] == "reply"]
    assert names.index(("a", w)) < names.index(("b", s))


# ----------------------------------------------------------------- sessions: expiry


def test_expiry_deletes_ephemerals_and_notifies_other_connection(h: H) -> None:
    a = h.session("a", timeout=4000)  # touched at mono 0 → deadline roundUp(4000) = 6000
    b = h.session("b", timeout=40000)
    sid = a.session.id  # type: ignore[union-attr]
    h.create(a, "/eph", flags=1)
    h.create(b, "/keep", flags=1)
    h.flush()
    assert h.k.tree.nodes["/eph"].stat().ephemeralOwner == sid
    h.submit(b, OpCode.EXISTS, PathWatchRequest("/eph", True))
    h.submit(b, OpCode.GET_CHILDREN, PathWatchRequest("/", True))
    a.events.clear()
    b.events.clear()
    h.clock.advance(5999)
    h.k.tick()
    h.flush()
    assert "/eph" in h.k.tree.nodes and sid in h.k.sessions
    h.clock.advance(1)
    h.k.tick()
    assert h.k.sessions[sid].closing
    h.flush()
    assert "/eph" not in h.k.tree.nodes and "/keep" in h.k.tree.nodes
    assert sid not in h.k.sessions and sid not in h.k.tree.sessions
    assert b.notifications() == [(DELETED, "/eph"), (CHILDREN, "/")]
    assert a.kinds() == ["close"]  # no message on expiry, just the close
    # The expired session cannot be resumed.
    c = h.conn("c")
    h.k.connect(c, 0, 4000, sid, a.session.password)  # type: ignore[union-attr]
    assert c.kinds() == ["refused"]


def test_requests_extend_the_session(h: H) -> None:
    a = h.session("a", timeout=4000)
    sid = a.session.id  # type: ignore[union-attr]
    for _ in range(5):
        h.clock.advance(3000)
        h.submit(a, OpCode.PING, EmptyRequest(), xid=-2)
        h.k.tick()
    h.flush()
    assert sid in h.k.sessions
    h.clock.advance(6000)
    h.k.tick()
    h.flush()
    assert sid not in h.k.sessions


def test_request_on_closing_session_gets_session_expired(h: H) -> None:
    a = h.session("a", timeout=4000)
    h.clock.advance(6000)
    h.k.tick()  # close proposed, not yet committed
    x = h.submit(a, OpCode.GET_DATA, PathWatchRequest("/", False))
    assert a.reply(x)[3] == SessionExpired.code
    y = h.create(a, "/late")
    h.flush()
    assert a.reply(y)[3] == SessionExpired.code
    assert "/late" not in h.k.tree.nodes


def test_disconnect_drops_watches_but_keeps_session(h: H) -> None:
    a, b = h.session("a"), h.session("b")
    sid = a.session.id  # type: ignore[union-attr]
    h.submit(a, OpCode.ADD_WATCH, WatchTypeRequest("/", 1))
    h.create(a, "/e", flags=1)
    h.flush()
    h.k.disconnect(a)
    h.run(b, OpCode.SET_DATA, SetDataRequest("/e", b"x", -1))
    assert a.notifications() == [(CREATED, "/e")]  # only from before the disconnect
    assert sid in h.k.sessions and "/e" in h.k.tree.nodes


# ------------------------------------------------------------------- closeSession


def test_close_session_replies_then_closes(h: H) -> None:
    a, b = h.session("a"), h.session("b")
    h.create(a, "/ce", flags=1)
    h.flush()
    h.submit(b, OpCode.EXISTS, PathWatchRequest("/ce", True))
    a.events.clear()
    w = h.create(a, "/cp")
    r = h.submit(a, OpCode.GET_DATA, PathWatchRequest("/cp", False))
    c = h.submit(a, OpCode.CLOSE_SESSION, EmptyRequest())
    late = h.submit(a, OpCode.GET_DATA, PathWatchRequest("/", False))
    h.flush()
    assert a.kinds() == ["reply", "reply", "reply", "close"]
    assert [e[1] for e in a.replies()] == [w, r, c]
    close_reply = a.reply(c)
    assert close_reply[3:5] == (0, OpCode.CLOSE_SESSION)
    assert close_reply[2] == h.k.last_zxid  # the close is a transaction
    assert all(e[1] != late for e in a.replies())  # pipelined after close: ignored
    assert "/ce" not in h.k.tree.nodes and "/cp" in h.k.tree.nodes
    assert b.notifications() == [(DELETED, "/ce")]
    assert a.session.id not in h.k.sessions  # type: ignore[union-attr]


# ------------------------------------------------------------------------------ auth


def test_auth_unknown_scheme_fails_then_closes(h: H) -> None:
    a = h.session("a")
    h.k.submit(a, -4, OpCode.AUTH, AuthRequest(0, "nosuch", b"x"))
    assert a.kinds() == ["reply", "close"]
    assert a.events[0][1] == -4 and a.events[0][3:5] == (AuthFailed.code, OpCode.AUTH)


def test_auth_digest_adds_identity(h: H) -> None:
    a = h.session("a")
    h.k.submit(a, -4, OpCode.AUTH, AuthRequest(0, "digest", b"alice:secret"))
    assert a.kinds() == ["reply"] and a.events[0][3] == 0
    assert Id("digest", digest_id("alice:secret")) in a.ids
    x = h.submit(a, OpCode.WHO_AM_I, EmptyRequest())
    assert sorted(a.reply(x)[5]) == [("digest", "alice"), ("ip", "127.0.0.1")]
    # The identity unlocks a digest-protected node.
    acl = [ACL(31, "digest", digest_id("alice:secret"))]
    h.submit(a, OpCode.CREATE, CreateRequest("/sec", b"s", acl, 0))
    h.flush()
    b = h.session("b")
    y = h.submit(b, OpCode.GET_DATA, PathWatchRequest("/sec", False))
    assert b.reply(y)[3] == -102
    z = h.submit(a, OpCode.GET_DATA, PathWatchRequest("/sec", False))
    assert a.reply(z)[3] == 0


# ---------------------------------------------------------- persistent / recursive


def test_persistent_watch(h: H) -> None:
    a, w = h.session("a"), h.session("w")
    x = h.submit(w, OpCode.ADD_WATCH, WatchTypeRequest("/pw", 0))
    assert w.reply(x)[3] == 0
    w.events.clear()
    for op, req in [
        (OpCode.CREATE, CreateRequest("/pw", b"", OPEN, 0)),
        (OpCode.CREATE, CreateRequest("/pw/c", b"", OPEN, 0)),
        (OpCode.CREATE, CreateRequest("/pw/c/d", b"", OPEN, 0)),  # grandchild: nothing
        (OpCode.SET_DATA, SetDataRequest("/pw", b"1", -1)),
        (OpCode.SET_DATA, SetDataRequest("/pw", b"2", -1)),
        (OpCode.DELETE, DeleteRequest("/pw/c/d", -1)),
        (OpCode.DELETE, DeleteRequest("/pw/c", -1)),
        (OpCode.DELETE, DeleteRequest("/pw", -1)),
        (OpCode.CREATE, CreateRequest("/pw", b"", OPEN, 0)),  # survives re-creation
    ]:
        h.run(a, op, req)
    assert w.notifications() == [
        (CREATED, "/pw"), (CHILDREN, "/pw"), (CHANGED, "/pw"), (CHANGED, "/pw"),
        (CHILDREN, "/pw"), (DELETED, "/pw"), (CREATED, "/pw"),
    ]


def test_recursive_and_persistent_watch_on_same_connection(h: H) -> None:
    # §8.3 [observed 3.8.0]: recursive on /pr, persistent on /pr/x.
    a, w = h.session("a"), h.session("w")
    h.run(a, OpCode.CREATE, CreateRequest("/pr", b"", OPEN, 0))
    h.submit(w, OpCode.ADD_WATCH, WatchTypeRequest("/pr", 1))
    h.submit(w, OpCode.ADD_WATCH, WatchTypeRequest("/pr/x", 0))
    w.events.clear()
    h.run(a, OpCode.CREATE, CreateRequest("/pr/x", b"", OPEN, 0))
    assert w.notifications() == [(CREATED, "/pr/x")]  # once, and no NodeChildrenChanged /pr
    h.run(a, OpCode.CREATE, CreateRequest("/pr/x/y", b"", OPEN, 0))
    h.run(a, OpCode.SET_DATA, SetDataRequest("/pr/x/y", b"1", -1))
    h.run(a, OpCode.SET_DATA, SetDataRequest("/pr/x/y", b"2", -1))
    h.run(a, OpCode.DELETE, DeleteRequest("/pr/x/y", -1))
    assert w.notifications() == [
        (CREATED, "/pr/x"),
        (CREATED, "/pr/x/y"), (CHILDREN, "/pr/x"),
        (CHANGED, "/pr/x/y"), (CHANGED, "/pr/x/y"),
        (DELETED, "/pr/x/y"), (CHILDREN, "/pr/x"),
    ]


def test_recursive_watch_never_gets_children_changed(h: H) -> None:
    a, w = h.session("a"), h.session("w")
    h.submit(w, OpCode.ADD_WATCH, WatchTypeRequest("/", 1))
    w.events.clear()
    h.run(a, OpCode.CREATE, CreateRequest("/r", b"", OPEN, 0))
    h.run(a, OpCode.CREATE, CreateRequest("/r/a", b"", OPEN, 0))
    h.run(a, OpCode.DELETE, DeleteRequest("/r/a", -1))
    assert w.notifications() == [(CREATED, "/r"), (CREATED, "/r/a"), (DELETED, "/r/a")]


def test_remove_and_check_watches(h: H) -> None:
    w = h.session("w")
    h.submit(w, OpCode.ADD_WATCH, WatchTypeRequest("/x", 1))
    h.submit(w, OpCode.EXISTS, PathWatchRequest("/x", True))
    w.events.clear()
    codes = [h.run(w, op, WatchTypeRequest("/x", t))[3] for op, t in [
        (OpCode.CHECK_WATCHES, 5), (OpCode.CHECK_WATCHES, 2), (OpCode.CHECK_WATCHES, 1),
        (OpCode.CHECK_WATCHES, 4), (OpCode.REMOVE_WATCHES, 2), (OpCode.REMOVE_WATCHES, 2),
        (OpCode.REMOVE_WATCHES, 3), (OpCode.CHECK_WATCHES, 3),
    ]]
    nw = NoWatcher.code
    assert codes == [0, 0, nw, nw, 0, nw, 0, nw]


# ---------------------------------------------------------------------------- reaper


def test_reap_deletes_used_empty_container_and_notifies(h: H) -> None:
    a, w = h.session("a"), h.session("w")
    h.run(a, OpCode.CREATE_CONTAINER, CreateRequest("/c", b"", OPEN, 4))
    h.run(a, OpCode.CREATE, CreateRequest("/c/k", b"", OPEN, 0))
    assert h.k.reap(10) == 0  # has a child
    h.run(a, OpCode.DELETE, DeleteRequest("/c/k", -1))
    h.submit(w, OpCode.EXISTS, PathWatchRequest("/c", True))
    assert h.k.reap(10) == 1
    assert h.k.reap(10) == 0  # already in flight
    h.flush()
    assert "/c" not in h.k.tree.nodes
    assert w.notifications() == [(DELETED, "/c")]


# ------------------------------------------------------------------------ setWatches


def test_set_watches_sends_missed_events_before_its_reply(h: H) -> None:
    # §8.6 [observed 3.8.0]: /w exists and was modified after relativeZxid; /gone is gone.
    a, w = h.session("a"), h.session("w")
    h.run(a, OpCode.CREATE, CreateRequest("/w", b"", OPEN, 0))
    h.run(a, OpCode.CREATE, CreateRequest("/same", b"", OPEN, 0))
    rz = h.k.last_zxid
    h.run(a, OpCode.SET_DATA, SetDataRequest("/w", b"x", -1))
    h.run(a, OpCode.CREATE, CreateRequest("/w/kid", b"", OPEN, 0))
    w.events.clear()
    req = SetWatchesRequest(rz, ["/w", "/gone", "/same"], ["/w", "/missing"],
                            ["/w", "/gone3", "/same"], [], [])
    x = h.submit(w, OpCode.SET_WATCHES, req, xid=-8)
    assert w.events == [
        ("event", CHANGED, "/w", -1), ("event", DELETED, "/gone", -1),
        ("event", CREATED, "/w", -1),
        ("event", CHILDREN, "/w", -1), ("event", DELETED, "/gone3", -1),
        ("reply", x, h.k.last_zxid, 0, OpCode.SET_WATCHES, None),
    ]
    w.events.clear()
    # The watches that did not fire are registered (one-shot).
    h.run(a, OpCode.CREATE, CreateRequest("/missing", b"", OPEN, 0))
    h.run(a, OpCode.SET_DATA, SetDataRequest("/same", b"1", -1))
    h.run(a, OpCode.CREATE, CreateRequest("/same/k", b"", OPEN, 0))
    assert w.notifications() == [(CREATED, "/missing"), (CHANGED, "/same"),
                                 (CHILDREN, "/same")]


def test_set_watches2_registers_persistent_watches(h: H) -> None:
    a, w = h.session("a"), h.session("w")
    req = SetWatchesRequest(0, [], [], [], ["/p"], ["/r"])
    x = h.submit(w, OpCode.SET_WATCHES2, req, xid=-8)
    assert w.events == [("reply", x, h.k.last_zxid, 0, OpCode.SET_WATCHES2, None)]
    w.events.clear()
    h.run(a, OpCode.CREATE, CreateRequest("/p", b"", OPEN, 0))
    h.run(a, OpCode.CREATE, CreateRequest("/p/c", b"", OPEN, 0))
    h.run(a, OpCode.CREATE, CreateRequest("/r", b"", OPEN, 0))
    h.run(a, OpCode.CREATE, CreateRequest("/r/c", b"", OPEN, 0))
    assert w.notifications() == [(CREATED, "/p"), (CHILDREN, "/p"), (CREATED, "/r"),
                                 (CREATED, "/r/c")]


# ------------------------------------------------------------- ACL-filtered delivery


def test_notifications_need_read_on_the_node(h: H) -> None:
    # 3.9.2+ (ZOOKEEPER-4799): a watcher without READ on the node gets no event.
    a, w = h.session("a"), h.session("w")
    h.k.submit(a, -4, OpCode.AUTH, AuthRequest(0, "digest", b"alice:secret"))
    h.submit(w, OpCode.ADD_WATCH, WatchTypeRequest("/", 1))
    w.events.clear()
    secret = [ACL(31, "digest", digest_id("alice:secret"))]
    h.run(a, OpCode.CREATE, CreateRequest("/open", b"", OPEN, 0))
    h.run(a, OpCode.CREATE, CreateRequest("/secret", b"", secret, 0))
    h.run(a, OpCode.SET_DATA, SetDataRequest("/secret", b"x", -1))
    h.run(a, OpCode.CREATE, CreateRequest("/open/k", b"", OPEN, 0))
    assert w.notifications() == [(CREATED, "/open"), (CREATED, "/open/k")]


def test_sync_queued_before_close_session_is_answered(h: H) -> None:
    a, b = h.session("a"), h.session("b")
    h.create(a, "/s")
    batch = h.k.take_batch()  # a's write is proposed, not yet durable
    s = h.submit(b, OpCode.SYNC, PathRequest("/s"))
    c = h.submit(b, OpCode.CLOSE_SESSION, EmptyRequest())
    assert b.events == []
    h.flush()  # the close's durable ACK commits a's write and the close together
    h.k.durable(batch)
    assert b.kinds() == ["reply", "reply", "close"]
    assert [e[1] for e in b.replies()] == [s, c]
