"""Execute a sequence step by step against one server and record what the client sees.

One request per step; after its reply every open connection gets a ping barrier (a ping
is answered after everything the server queued for that connection before it), so the
notifications caused by a step and their order relative to replies are deterministic.
"""

from __future__ import annotations

import struct
import time
from typing import Any

from tests.integration import wire
from tests.integration.wire import OP, WireConn

from . import generator

OVERSIZED = 0x100000 + 16  # a frame above jute.maxbuffer: the server closes the socket
STEP_TIMEOUT = 5.0


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


class Runner:
    """Runs sequences on one server; each run gets its own root path."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.admin = wire.open_session(host, port)
        self.counter = 0
        self.lost: list[tuple[int, bytes]] = []  # sessions whose socket closed under them

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
        self.lost: list[tuple[int, bytes]] = []
        out: list[Any] = []
        deadline = time.monotonic() + 120
        try:
            for st in seq["steps"]:
                if time.monotonic() > deadline:
                    raise TimeoutError("sequence took longer than 120 s")
                out.append(self._step(st, root, conns, sessions))
        finally:
            self._cleanup(conns)
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

    def _conn(self, slot: int, conns: dict[int, WireConn], sessions: list[int]) -> WireConn:
        c = conns.get(slot)
        if c is None:
            c = wire.open_session(self.host, self.port, read_timeout=STEP_TIMEOUT)
            sessions.append(c.session_id)
            conns[slot] = c
        return c

    def _step(self, st: dict[str, Any], root: str, conns: dict[int, WireConn],
              sessions: list[int]) -> dict[str, Any]:
        slot = st["s"]
        c = self._conn(slot, conns, sessions)
        c.events = []
        op, body = encode(st, root)
        obs: dict[str, Any] = {}
        log: dict[str, list[Any]] = {}
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
        log[str(slot)] = [_event(e) for e in c.events] + ["REPLY"]
        # ping barrier on every open connection, in slot order
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
            evs = [_event(e) for e in cc.events]
            if evs or str(s) in log:
                log.setdefault(str(s), []).extend(evs)
        obs["conns"] = {k: v for k, v in log.items() if v != ["REPLY"] or k == str(slot)}
        return obs


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
