"""Execute a sequence step by step against one server and record what the client sees.

One request per step; after its reply every open connection gets a ping barrier (a ping
is answered after everything the server queued for that connection before it), so the
notifications caused by a step and their order relative to replies are deterministic.

Timing sequences (``"timing": true``, generator.generate_timing) add three steps and one
step attribute; they run on servers with short timers (shrink.TIMING_CFG):

* ``disconnect``: the slot's socket is closed without closeSession (the session lives on);
  with ``"half_open": true`` the socket is left open but never used again, as when a
  client gives up on a connection the server still thinks alive;
* ``reconnect``: the slot resumes that session as the Java client does
  (ClientCnxn.primeConnection): the connect request carries the last zxid it saw, then
  its digest credentials are sent again, then its watches (a client-side model of
  ZKWatchManager) with setWatches, or setWatches2 when it holds persistent watches, with
  the same zxid; the connect answer, the replies and the events are recorded (after a
  half-open disconnect, also whether the server closed the previous socket);
* ``wait``, or ``"settle": true`` on any step (after its reply): the servers' timers act
  while the runner records everything the connections receive. It waits until every
  disconnected session has expired (``dump`` no longer lists it), then until no container
  or short-TTL node the sequence created is due for reaping (no children and
  cversion > 0; no children and a TTL below SHORT_TTL_LIMIT_MS: ZooKeeper's
  ContainerManager rules), pinging the live connections meanwhile. A wait ends on the
  server's state, not after a fixed delay, so both servers are compared at the same point
  whatever their speed.
"""

from __future__ import annotations

import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from tests.integration import wire
from tests.integration.wire import OP, WireConn

from . import generator

OVERSIZED = 0x100000 + 16  # a frame above jute.maxbuffer: the server closes the socket
STEP_TIMEOUT = 5.0
SETTLE_TIMEOUT = 15.0  # a wait gives up after this long (the observations then differ)
DEFAULT_SESSION_MS = 30000
TICK_S = 0.1  # the timing servers' tickTime (shrink.TIMING_CFG)
SHORT_TTL_LIMIT_MS = 10000  # shorter TTLs are waited for; longer ones never expire in a run
EV_CREATED, EV_DELETED, EV_DATA, EV_CHILDREN = 1, 2, 3, 4


def _acl(idx: int) -> list[tuple[int, str, str]]:
    return [(int(p), str(s), str(i)) for p, s, i in generator.ACLS[idx]]


def _stat(st: wire.Stat) -> dict[str, int]:
    return dict(st.__dict__)


def _body(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in body.items():
        if isinstance(v, wire.Stat):
            out[k] = _stat(v)
        elif isinstance(v, bytes):
            out[k] = v.decode("latin-1")
        elif k == "results":
            out[k] = [{"type": r.type, "err": r.err, **_body(r.body)} for r in v]
        elif k == "acl" and v is not None:
            out[k] = [list(a) for a in v]
        else:
            out[k] = v
    return out


def _reply(rep: wire.Reply) -> dict[str, Any]:
    return {"zxid": rep.zxid, "err": rep.err, **_body(rep.body)}


def _event(rep: wire.Reply) -> dict[str, Any]:
    return {"event": rep.body["type"], "state": rep.body["state"], "path": rep.body["path"],
            "zxid": rep.zxid}


@dataclass
class WatchModel:
    """The watches a Java client holds for its session (ZKWatchManager)."""

    data: set[str] = field(default_factory=set)
    exist: set[str] = field(default_factory=set)
    child: set[str] = field(default_factory=set)
    persistent: set[str] = field(default_factory=set)
    recursive: set[str] = field(default_factory=set)

    def fired(self, etype: int, path: str) -> None:
        """A notification arrived: the one-time watches it triggers are used up."""
        if etype in (EV_CREATED, EV_DATA):
            self.data.discard(path)
            self.exist.discard(path)
        elif etype == EV_CHILDREN:
            self.child.discard(path)
        elif etype == EV_DELETED:
            self.data.discard(path)
            self.exist.discard(path)
            self.child.discard(path)

    def registered(self, st: dict[str, Any], path: str, err: int) -> None:
        """The reply to step ``st`` arrived: register the watch as the client would."""
        op = st["op"]
        if op in ("getData", "exists", "getChildren", "getChildren2") and st.get("watch"):
            if op in ("getData", "exists") and err == 0:
                self.data.add(path)
            elif op == "exists" and err == wire.NO_NODE:
                self.exist.add(path)
            elif op.startswith("getChildren") and err == 0:
                self.child.add(path)
        elif op == "addWatch" and err == 0:
            (self.recursive if st["mode"] == 1 else self.persistent).add(path)
        elif op == "removeWatches" and err == 0:
            if st["type"] in (1, 3):
                self.child.discard(path)
            if st["type"] in (2, 3):
                self.data.discard(path)
                self.exist.discard(path)

    def empty(self) -> bool:
        return not (self.data or self.exist or self.child or self.persistent
                    or self.recursive)


@dataclass
class SlotState:
    """Client-side state of a slot's current session."""

    watches: WatchModel = field(default_factory=WatchModel)
    auths: list[str] = field(default_factory=list)
    last_zxid: int = 0  # the zxid of the last reply, as the Java client tracks it


@dataclass
class Detached:
    """A session whose connection the client dropped (``disconnect``)."""

    session_id: int
    passwd: bytes
    timeout_ms: int
    since: float  # time.monotonic() of the drop
    expired: bool = False  # a wait has seen it expire
    stale: WireConn | None = None  # half-open: the client gave up on a socket still open


class Runner:
    """Runs sequences on one server; each run gets its own root path."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.admin = wire.open_session(host, port)
        self.counter = 0
        self.lost: list[tuple[int, bytes]] = []  # sessions whose socket closed under them
        self.timing = False
        self.timeouts: dict[int, int] = {}
        self.slots: dict[int, SlotState] = {}
        self.detached: dict[int, Detached] = {}
        # containers (0) and TTL nodes (their TTL) the sequence created: path -> TTL
        self.reapers: dict[str, int] = {}

    def close(self) -> None:
        try:
            self.admin.close_session()
        except Exception:  # noqa: BLE001 - best effort at teardown
            pass
        self.admin.close()

    def run(self, seq: dict[str, Any], tag: str = "d") -> dict[str, Any]:
        """Raw observations: {"root", "sessions": [sid...], "steps": [...]}."""
        self.counter += 1
        # the root sits under a parent of its own, so a sequential create of the root's
        # sibling ("" with a sequential flag) counts from the same value on every server
        parent = f"/{tag}{seq['seed']}_{self.counter}_{int(time.time() * 1000) % 100000}"
        root = parent + "/r"
        for p in (parent, root):
            rep = self.admin.create(p)
            assert rep.err == 0, f"cannot create sequence root {p}: {rep.err}"
        conns: dict[int, WireConn] = {}
        sessions: list[int] = []
        self.lost = []
        self.timing = bool(seq.get("timing"))
        self.timeouts = {int(k): int(v) for k, v in seq.get("timeouts", {}).items()}
        self.slots = {}
        self.detached = {}
        self.reapers = {}
        out: list[Any] = []
        deadline = time.monotonic() + 120
        try:
            for st in seq["steps"]:
                if time.monotonic() > deadline:
                    raise TimeoutError("sequence took longer than 120 s")
                out.append(self._step(st, root, conns, sessions))
        finally:
            self.lost.extend((d.session_id, d.passwd) for d in self.detached.values())
            for d in self.detached.values():
                if d.stale is not None:
                    d.stale.close()
            self.detached = {}
            self._cleanup(conns)
            if self.timing:
                self._remove_tree(parent)
        return {"root": root, "sessions": sessions, "steps": out}

    def _cleanup(self, conns: dict[int, WireConn]) -> None:
        """Close every session the sequence left, and wait for it, so no session of this
        sequence expires (a transaction) while a later sequence runs."""
        for c in conns.values():
            try:
                c.call(OP["closeSession"], timeout=STEP_TIMEOUT)
            except (OSError, wire.ConnectionClosed, wire.DecodeError):
                self.lost.append((c.session_id, c.passwd))
            c.close()
        for sid, pw in self.lost:
            try:
                c = WireConn(self.host, self.port, STEP_TIMEOUT)
                try:
                    resp = c.handshake(30000, session_id=sid, passwd=pw)
                    if resp.timeout > 0:
                        c.call(OP["closeSession"], timeout=STEP_TIMEOUT)
                finally:
                    c.close()
            except (OSError, wire.ConnectionClosed, wire.DecodeError):
                pass
        self.lost = []

    def _remove_tree(self, top: str) -> None:
        """Delete a timing sequence's nodes so that none is reaped (a transaction) while a
        later sequence runs; then give a reaper pass already under way time to finish."""
        order: list[str] = []
        todo = [top]
        while todo:
            p = todo.pop()
            order.append(p)
            rep = self.admin.call(OP["getChildren"], wire.path_watch_body(p, False),
                                  timeout=STEP_TIMEOUT)
            if rep.err == 0:
                todo.extend(f"{p}/{c}" for c in rep.body["children"])
        for p in reversed(order):
            self.admin.call(OP["delete"], wire.path_version_body(p, -1), timeout=STEP_TIMEOUT)
        time.sleep(3 * TICK_S)

    def _conn(self, slot: int, conns: dict[int, WireConn], sessions: list[int]) -> WireConn:
        c = conns.get(slot)
        if c is None:
            c = wire.open_session(self.host, self.port,
                                  self.timeouts.get(slot, DEFAULT_SESSION_MS),
                                  read_timeout=STEP_TIMEOUT)
            sessions.append(c.session_id)
            conns[slot] = c
            self.slots[slot] = SlotState()
            old = self.detached.pop(slot, None)
            if old is not None:  # a dropped session the slot never resumed: close it at the end
                self.lost.append((old.session_id, old.passwd))
                if old.stale is not None:
                    old.stale.close()
        return c

    def _events(self, slot: int, c: WireConn) -> list[dict[str, Any]]:
        """The notifications ``c`` collected (cleared); the slot's watch model uses up the
        one-time watches they trigger, as the Java client does."""
        out = [_event(e) for e in c.events]
        c.events = []
        state = self.slots.get(slot)
        if state is not None:
            for e in out:
                state.watches.fired(e["event"], e["path"])
        return out

    def _step(self, st: dict[str, Any], root: str, conns: dict[int, WireConn],
              sessions: list[int]) -> dict[str, Any]:
        slot = st["s"]
        obs: dict[str, Any] = {}
        log: dict[str, list[Any]] = {}
        if st["op"] in ("disconnect", "reconnect", "wait"):
            self._timing_step(st, root, conns, sessions, obs, log)
            return self._finish(slot, conns, obs, log)
        c = self._conn(slot, conns, sessions)
        c.events = []
        op, body = encode(st, root)
        try:
            if st["op"] == "oversized":
                c.send_raw(struct.pack(">i", OVERSIZED) + header_only(c, OP["setData"])
                           + b"\0" * 64)
                try:
                    c.recv_frame(timeout=STEP_TIMEOUT)
                    obs["reply"] = "UNEXPECTED_FRAME"
                except wire.ConnectionClosed:
                    obs["reply"] = "CLOSED"
                self.lost.append((c.session_id, c.passwd))
                del conns[slot]
                c.close()
            else:
                xid = wire.XID_AUTH if op == OP["auth"] else None
                rep = c.call(op, body, xid=xid, timeout=STEP_TIMEOUT)
                obs["reply"] = _reply(rep)
                state = self.slots[slot]
                if op != OP["auth"] and rep.zxid > 0:
                    state.last_zxid = rep.zxid
                if op == OP["auth"] and rep.err == 0:
                    state.auths.append(st["auth"])
                state.watches.registered(st, _p(root, st.get("path", "")), rep.err)
                if rep.err == 0 and st["op"] == "createContainer":
                    self.reapers[rep.body["path"]] = 0
                elif rep.err == 0 and st["op"] == "createTTL" and st["flags"] in (5, 6):
                    self.reapers[rep.body["path"]] = st["ttl"]
                if st["op"] == "close" or (op == OP["auth"] and rep.err != 0):
                    try:
                        c.recv_all_until_close(STEP_TIMEOUT)
                        obs["after"] = "CLOSED"
                    except TimeoutError:
                        obs["after"] = "OPEN"
                    if st["op"] != "close":
                        self.lost.append((c.session_id, c.passwd))
                    del conns[slot]
                    c.close()
        except wire.ConnectionClosed:
            obs["reply"] = "CLOSED"
            self.lost.append((c.session_id, c.passwd))
            conns.pop(slot, None)
            c.close()
        except TimeoutError:
            obs["reply"] = "TIMEOUT"
            self.lost.append((c.session_id, c.passwd))
            conns.pop(slot, None)
            c.close()
        except (wire.DecodeError, AssertionError) as e:
            obs["reply"] = f"UNDECODABLE: {e}"  # a malformed reply is a difference too
            self.lost.append((c.session_id, c.passwd))
            conns.pop(slot, None)
            c.close()
        log[str(slot)] = self._events(slot, c) + ["REPLY"]
        if st.get("settle"):
            self._settle(root, conns, obs, log)
        return self._finish(slot, conns, obs, log)

    def _finish(self, slot: int, conns: dict[int, WireConn], obs: dict[str, Any],
                log: dict[str, list[Any]]) -> dict[str, Any]:
        self._barrier(conns, log)
        obs["conns"] = {k: v for k, v in log.items() if v != ["REPLY"] or k == str(slot)}
        return obs

    def _barrier(self, conns: dict[int, WireConn], log: dict[str, list[Any]]) -> None:
        """Ping every open connection, in slot order; log the events before each pong."""
        for s in sorted(conns):
            cc = conns[s]
            cc.events = []
            try:
                cc.call(OP["ping"], b"", xid=wire.XID_PING, timeout=STEP_TIMEOUT)
            except (wire.ConnectionClosed, TimeoutError, wire.DecodeError, AssertionError):
                log.setdefault(str(s), []).append("LOST")
                self.lost.append((cc.session_id, cc.passwd))
                conns.pop(s, None)
                cc.close()
                continue
            evs = self._events(s, cc)
            if evs or str(s) in log:
                log.setdefault(str(s), []).extend(evs)

    # -- timing steps ---------------------------------------------------------------------

    def _timing_step(self, st: dict[str, Any], root: str, conns: dict[int, WireConn],
                     sessions: list[int], obs: dict[str, Any],
                     log: dict[str, list[Any]]) -> None:
        slot = st["s"]
        if st["op"] == "wait":
            obs["reply"] = "WAITED"
            self._settle(root, conns, obs, log)
        elif st["op"] == "disconnect":
            c = self._conn(slot, conns, sessions)
            log[str(slot)] = self._events(slot, c) + ["REPLY"]
            half_open = bool(st.get("half_open"))
            self.detached[slot] = Detached(c.session_id, c.passwd,
                                           self.timeouts.get(slot, DEFAULT_SESSION_MS),
                                           time.monotonic(), stale=c if half_open else None)
            del conns[slot]
            if not half_open:
                c.close()
            obs["reply"] = "DISCONNECTED"
        else:
            obs["reply"] = self._reconnect(slot, conns, log)

    def _reconnect(self, slot: int, conns: dict[int, WireConn],
                   log: dict[str, list[Any]]) -> Any:
        """Resume a dropped session as the Java client does: connect with the last zxid
        seen, send the credentials again, then the watches (setWatches)."""
        d = self.detached.pop(slot, None)
        if d is None or slot in conns:
            return "NOT_DETACHED"
        state = self.slots.setdefault(slot, SlotState())
        c = WireConn(self.host, self.port, STEP_TIMEOUT)
        try:
            resp = c.handshake(d.timeout_ms, session_id=d.session_id, passwd=d.passwd,
                               last_zxid=state.last_zxid)
        except (OSError, wire.ConnectionClosed, wire.DecodeError) as e:
            c.close()
            self.lost.append((d.session_id, d.passwd))
            return f"CONNECT FAILED: {type(e).__name__}"
        out: dict[str, Any] = {"timeout": resp.timeout, "session": resp.session_id}
        if d.stale is not None and resp.timeout <= 0:
            d.stale.close()
        if resp.timeout <= 0:
            # the session expired: the server answers timeout 0 and closes the connection
            try:
                out["then"] = "CLOSED" if c.recv_all_until_close(STEP_TIMEOUT) == b"" \
                    else "DATA"
            except TimeoutError:
                out["then"] = "OPEN"
            c.close()
            self.slots[slot] = SlotState()
            log[str(slot)] = ["REPLY"]
            return {"connect": out}
        out["same_passwd"] = resp.passwd == d.passwd
        if d.stale is not None:
            # the server closes the session's previous connection (the session moved)
            try:
                d.stale.recv_all_until_close(STEP_TIMEOUT)  # unread events may come first
                out["previous"] = "CLOSED"
            except TimeoutError:
                out["previous"] = "OPEN"
            d.stale.close()
            d.stale = None
        conns[slot] = c
        c.events = []
        replies: list[Any] = []
        try:
            for auth in state.auths:
                rep = c.call(OP["auth"], wire.auth_body("digest", auth.encode()),
                             xid=wire.XID_AUTH, timeout=STEP_TIMEOUT)
                replies.append({"auth": rep.err})
            w = state.watches
            if not w.empty():
                persistent = bool(w.persistent or w.recursive)
                body = wire.set_watches_body(
                    state.last_zxid, sorted(w.data), sorted(w.exist), sorted(w.child),
                    sorted(w.persistent) if persistent else None,
                    sorted(w.recursive) if persistent else None)
                op = OP["setWatches2"] if persistent else OP["setWatches"]
                rep = c.call(op, body, xid=wire.XID_SET_WATCHES, timeout=STEP_TIMEOUT)
                if rep.zxid > 0:
                    state.last_zxid = rep.zxid
                replies.append({"setWatches": op, "zxid": rep.zxid, "err": rep.err})
        except (wire.ConnectionClosed, TimeoutError, wire.DecodeError, AssertionError) as e:
            replies.append(f"FAILED: {type(e).__name__}")
            conns.pop(slot, None)
            self.lost.append((d.session_id, d.passwd))
            c.close()
        log[str(slot)] = self._events(slot, c) + ["REPLY"]
        return {"connect": out, "replies": replies}

    def _settle(self, root: str, conns: dict[int, WireConn], obs: dict[str, Any],
                log: dict[str, list[Any]]) -> None:
        """Let the servers' timers act (see the module doc), pinging the live connections
        and logging what they receive."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        obs["settled"] = True
        gone = {s: d for s, d in self.detached.items() if not d.expired}
        if gone:
            obs["expired"] = sorted(gone)
            for d in gone.values():
                d.expired = True
            due = max(d.since + d.timeout_ms / 1000 for d in gone.values())
            while time.monotonic() < due:
                time.sleep(min(2 * TICK_S, max(0.0, due - time.monotonic())))
                self._barrier(conns, log)
            pat = re.compile("|".join(rf"{d.session_id:#x}\b" for d in gone.values()))
            while time.monotonic() < deadline:
                try:
                    dump = wire.four_letter(self.host, self.port, b"dump",
                                            STEP_TIMEOUT).decode()
                except OSError:
                    dump = ""
                if dump and not pat.search(dump):
                    break
                time.sleep(TICK_S / 2)
                self._barrier(conns, log)
            # the close transaction is submitted when the session leaves the tracker;
            # a sync queues behind it
            time.sleep(TICK_S / 2)
            self.admin.call(OP["sync"], wire.path_body("/"), timeout=STEP_TIMEOUT)
        while time.monotonic() < deadline and self._reapable():
            time.sleep(TICK_S / 2)
            self._barrier(conns, log)

    def _reapable(self) -> list[str]:
        """The containers and short-TTL nodes this sequence created that are due for
        reaping, or will be once their (short) TTL has passed, by the rules of
        ContainerManager.getCandidates. (A client cannot tell a container or a TTL node by
        its Stat: ZooKeeper reports ephemeralOwner 0 for both; the runner remembers what
        it created.)"""
        out: list[str] = []
        for path, ttl in sorted(self.reapers.items()):
            rep = self.admin.call(OP["exists"], wire.path_watch_body(path, False),
                                  timeout=STEP_TIMEOUT)
            if rep.err != 0:
                del self.reapers[path]
                continue
            stat: wire.Stat = rep.body["stat"]
            if stat.numChildren:
                continue
            if (ttl == 0 and stat.cversion > 0) or 0 < ttl < SHORT_TTL_LIMIT_MS:
                out.append(path)
        return out


def header_only(c: WireConn, op: int) -> bytes:
    return wire.header(c.next_xid(), op)


def _p(root: str, path: str) -> str:
    if path.startswith("/") or path == "":
        return root + path
    return path  # a relative (invalid) path is sent as it is


def _sub(so: dict[str, Any], root: str) -> tuple[int, bytes]:
    p = _p(root, so["path"])
    k = so["op"]
    if k == "create":
        return OP["create"], wire.create_body(p, so["data"].encode(), _acl(so["acl"]),
                                              so["flags"])
    if k == "delete":
        return OP["delete"], wire.path_version_body(p, so["version"])
    if k == "check":
        return OP["check"], wire.path_version_body(p, so["version"])
    if k == "setData":
        return OP["setData"], wire.set_data_body(p, so["data"].encode(), so["version"])
    if k in ("getData", "getChildren"):
        return OP[k], wire.path_watch_body(p, False)
    raise ValueError(k)


def encode(st: dict[str, Any], root: str) -> tuple[int, bytes]:
    """Opcode and request record for a step."""
    k = st["op"]
    p = _p(root, st.get("path", ""))
    if k in ("create", "create2", "createContainer"):
        return OP[k], wire.create_body(p, st["data"].encode(), _acl(st["acl"]), st["flags"])
    if k == "createTTL":
        return OP[k], wire.create_ttl_body(p, st["data"].encode(), _acl(st["acl"]),
                                           st["flags"], st["ttl"])
    if k == "delete":
        return OP[k], wire.path_version_body(p, st["version"])
    if k == "setData":
        return OP[k], wire.set_data_body(p, st["data"].encode(), st["version"])
    if k in ("getData", "exists", "getChildren", "getChildren2"):
        return OP[k], wire.path_watch_body(p, st["watch"])
    if k in ("getAllChildrenNumber", "getEphemerals", "getACL", "sync"):
        return OP[k], wire.path_body(p)
    if k in ("multi", "multiRead"):
        return OP[k], wire.multi_body([_sub(so, root) for so in st["ops"]])
    if k == "setACL":
        return OP[k], wire.set_acl_body(p, _acl(st["acl"]), st["version"])
    if k == "addAuth":
        return OP["auth"], wire.auth_body("digest", st["auth"].encode())
    if k == "addWatch":
        return OP[k], wire.path_int_body(p, st["mode"])
    if k == "removeWatches":
        return OP[k], wire.path_int_body(p, st["type"])
    if k == "close":
        return OP["closeSession"], b""
    if k == "oversized":
        return OP["setData"], b""
    raise ValueError(k)
