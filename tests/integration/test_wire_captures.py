"""Replay the golden captures (/work/shared/reference/captures) against a live server.

For every scenario the client frames (``c2s``) are sent again, in capture order, over as
many TCP connections as the capture had, and every server frame the capture recorded
(``s2c``) is read back from the live server and compared *structurally* with the
recorded one: xids, error codes, record layout, every record field, notification order
relative to replies, and whether/when the server closes each connection.

Only what must differ between two runs is normalised:

* zxids are mapped capture -> live: the mapping must be consistent (same capture value,
  same live value) and order preserving, reply-header zxids must advance by exactly the
  captured steps (so failed writes consume a zxid), and zxids from before the scenario
  (nodes made by the fixture) only have to be "before the scenario" too;
* session ids / passwords are mapped (a resumed session must come back with the same id);
* ctime/mtime: zero stays zero, otherwise a plausible clock value, equal where the capture
  had equal values, never going backwards;
* sequential suffixes under nodes that existed before the scenario (their counters depend
  on the history of the shared capture server) are mapped like zxids; children lists of
  such nodes must be a subset of the captured list.

Client frames are rewritten only where they carry such values (the ConnectRequest's
sessionId/passwd/lastZxidSeen and SetWatches' relativeZxid).

The capture server ran ``tickTime=2000`` and ``extendedTypesEnabled=true``; the replay
server does too.  Every scenario gets a fresh server, prepared with the nodes the capture
drivers created over unrecorded connections before the scenario (``FAMILY_SETUP``).
"""

from __future__ import annotations

import gzip
import json
import os
import posixpath
import re
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration import wire
from tests.integration.wire import OP, Reader, Reply, Stat

CAPTURES = Path("/work/shared/reference/captures")
TARGET_ZK = os.environ.get("ZK_TEST_TARGET") == "zookeeper"
READ_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0

DIGEST_USER_SECRET = (wire.PERM_ALL, "digest", "user:5w9W4eL3797Y4Wq8AcKUPPk8ha4=")

# Nodes the capture drivers made over unrecorded connections, in the order they were
# made (kazoo driver first, then zkCli, the Java driver, cli_mt, raw).  A scenario of a
# family gets every node of its family and of the families that ran before it, so the
# root and the top-level nodes look exactly as they did when the scenario was recorded.
FAMILY_ORDER = ["kazoo", "zkcli", "java", "c", "raw"]
FAMILY_SETUP: list[tuple[str, str, bytes, list[tuple[int, str, str]]]] = [
    ("kazoo", "/kz", b"", wire.OPEN_ACL),
    ("zkcli", "/jz", b"root", wire.OPEN_ACL),
    ("zkcli", "/jz/sec2", b"topsecret", [DIGEST_USER_SECRET]),
    ("java", "/jd", b"x", wire.OPEN_ACL),
    ("java", "/jd/mr", b"x", wire.OPEN_ACL),
    ("java", "/jd/mr/a", b"A", wire.OPEN_ACL),
    ("java", "/jd/mr/b", b"B", wire.OPEN_ACL),
    ("java", "/jd/mm", b"x", wire.OPEN_ACL),
    ("c", "/cz", b"x", wire.OPEN_ACL),
    ("c", "/cz/sec", b"topsecret", [DIGEST_USER_SECRET]),
]
SYSTEM_PATHS = {"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"}


def _external_set(path: str, data: bytes) -> Callable[[Any], None]:
    def hook(srv: Any) -> None:
        c = wire.open_session(srv.host, srv.port)
        try:
            rep = c.set_data(path, data)
            assert rep.err == 0, f"hook setData {path}: err {rep.err}"
            c.close_session()
        finally:
            c.close()
    return hook


@dataclass
class ScenarioCfg:
    # reply-header zxids must advance by exactly the captured steps
    exact_deltas: bool = True
    relax_reason: str = ""
    # sleep the captured gaps between steps (only where time itself is the subject)
    honor_gaps: bool = False
    # run on the capture's "proxy holds this connection" event: the drivers changed the
    # tree over an unrecorded connection at that point
    hold_hook: Callable[[Any], None] | None = None
    # zkernel follows 3.9 where 3.8 differs: (conn, xid) -> expected err (header only)
    zkernel_errs: dict[tuple[int, int], int] = field(default_factory=dict)
    skip: str = ""


SCENARIO_CFG: dict[str, ScenarioCfg] = {
    "raw_reconnect_expired_session": ScenarioCfg(honor_gaps=True),
    "zkcli_setwatches_on_reconnect": ScenarioCfg(
        # zkCli fixture session: createSession + setData + closeSession = the 3 captured steps
        hold_hook=_external_set("/jz/sw", b"changed-while-disconnected")),
    "climt_setwatches_on_reconnect": ScenarioCfg(
        hold_hook=_external_set("/cz/sw", b"changed-while-disconnected"),
        exact_deltas=False,
        relax_reason="while the proxy held the reconnection the capture server ran 6 "
                     "transactions (0x10c -> 0x112); the fixture's zkCli session accounts "
                     "for 3 (createSession, setData, closeSession), the rest was the shared "
                     "capture server's own activity; the replay runs only the fixture's 3"),
    "zkcli_create_modes": ScenarioCfg(
        exact_deltas=False,
        relax_reason="two transactions that are not on the recorded connection (0x8c, 0x8d; "
                     "the shared capture server's own activity) ran before the closeSession, "
                     "which jumped from 0x8b to 0x8e"),
    # 3.9 (and 3.8.4+): exists on a node without READ permission is NoAuth
    "zkcli_noauth_without_credentials": ScenarioCfg(zkernel_errs={(1, 5): wire.NO_AUTH}),
}

# four-letter-word texts are compared in test_wire_4lw.py; these two are plain frames
FOURLW_REPLAYED = {"4lw_after_connect", "4lw_unknown_word"}


def scenario_files() -> list[Path]:
    files = []
    for sub in ("raw", "kazoo", "java", "c"):
        files += sorted((CAPTURES / sub).glob("*.json*"))
    files += [CAPTURES / "4lw" / f"{n}.json" for n in sorted(FOURLW_REPLAYED)]
    return files


def load_capture(path: Path) -> dict[str, Any]:
    if path.suffix == ".gz":
        with gzip.open(path, "rt") as f:
            return json.load(f)  # type: ignore[no-any-return]
    with open(path) as f:
        return json.load(f)  # type: ignore[no-any-return]


def family_of(path: Path) -> str:
    sub = path.parent.name
    if sub == "java":
        return "zkcli" if path.name.startswith("zkcli_") else "java"
    if sub == "4lw":
        return "raw"
    return sub


def scenario_name(path: Path) -> str:
    return path.name.split(".")[0]


# --------------------------------------------------------------------------- steps


@dataclass
class Step:
    t: float
    conn: int
    kind: str  # "c2s" | "s2c" | "event"
    frames: list[dict[str, Any]] = field(default_factory=list)
    event: str = ""
    index: int = 0


def build_steps(cap: dict[str, Any]) -> list[Step]:
    raw: list[tuple[float, int, int, Step]] = []
    for i, f in enumerate(cap["frames"]):
        raw.append((f["t_ms"], 0, i, Step(f["t_ms"], f["conn"], f["dir"], [f], index=i)))
    for i, e in enumerate(cap["events"]):
        raw.append((e["t_ms"], 1, i, Step(e["t_ms"], e["conn"], "event", event=e["event"])))
    raw.sort(key=lambda x: (x[0], x[1], x[2]))
    steps = [s for *_, s in raw]

    # A FIN the server sent while a long client frame was still in flight is recorded
    # before that frame (frames carry their completion time): check it after the send.
    i = 0
    while i < len(steps):
        s = steps[i]
        if s.kind == "event" and s.event.startswith("server sent FIN"):
            j = next((k for k in range(i + 1, len(steps)) if steps[k].conn == s.conn), None)
            if (j is not None and steps[j].kind == "c2s"
                    and isinstance(steps[j].frames[0]["decoded"].get("read"), list)):
                steps.insert(j, steps.pop(i))
                continue
        i += 1

    # Adjacent client frames that arrived in one segment were written together.
    merged: list[Step] = []
    for s in steps:
        if (merged and s.kind == "c2s" and merged[-1].kind == "c2s"
                and merged[-1].conn == s.conn):
            prev_read = merged[-1].frames[-1]["decoded"].get("read")
            read = s.frames[0]["decoded"].get("read")
            if isinstance(read, int) and read == prev_read:
                merged[-1].frames += s.frames
                continue
        merged.append(s)
    return merged


# --------------------------------------------------------------------------- requests


@dataclass
class Req:
    xid: int
    op: int
    path: str | None = None
    subops: list[int] = field(default_factory=list)


PATH_FIRST_OPS = {OP[n] for n in (
    "create", "delete", "exists", "getData", "setData", "getACL", "setACL", "getChildren",
    "sync", "getChildren2", "check", "create2", "checkWatches", "removeWatches",
    "createContainer", "createTTL", "getEphemerals", "getAllChildrenNumber", "addWatch")}


def _skip_subop(r: Reader, op: int) -> None:
    if op in (OP["create"], OP["create2"], OP["createContainer"], OP["createTTL"]):
        r.ustring(), r.buffer(), r.acl(), r.int()
        if op == OP["createTTL"]:
            r.long()
    elif op in (OP["delete"], OP["check"]):
        r.ustring(), r.int()
    elif op == OP["setData"]:
        r.ustring(), r.buffer(), r.int()
    elif op in (OP["getData"], OP["getChildren"]):
        r.ustring(), r.bool()
    else:
        raise wire.DecodeError(f"unknown sub-op {op}")


def parse_request(payload: bytes) -> Req | None:
    if len(payload) < 8:
        return None
    xid, op = struct.unpack(">ii", payload[:8])
    req = Req(xid, op)
    r = Reader(payload[8:])
    try:
        if op in PATH_FIRST_OPS:
            req.path = r.ustring()
        elif op in (OP["multi"], OP["multiRead"]):
            while True:
                typ, done, _err = r.int(), r.bool(), r.int()
                if done:
                    break
                req.subops.append(typ)
                _skip_subop(r, typ)
    except (wire.DecodeError, UnicodeDecodeError):
        pass
    return req


# --------------------------------------------------------------------------- maps


class ZxidMap:
    """capture zxid -> live zxid, consistent and order preserving."""

    def __init__(self, exact_deltas: bool) -> None:
        self.exact = exact_deltas
        self.pairs: dict[int, int] = {}
        self.start: tuple[int, int] | None = None
        self.last_header: tuple[int, int] | None = None
        self.max_live = 0

    def is_pre(self, c: int) -> bool:
        return c != 0 and (self.start is None or c < self.start[0])

    def header(self, c: int, live: int, ctx: str) -> None:
        if self.start is None:
            self.start = (c, live)
        if self.last_header is not None:
            dc, dl = c - self.last_header[0], live - self.last_header[1]
            if dc == 0:
                assert dl == 0, f"{ctx}: zxid should not move (capture stays at {c:#x}), " \
                                f"live moved by {dl}"
            elif self.exact:
                assert dl == dc, f"{ctx}: reply zxid should advance by {dc} (capture " \
                                 f"{self.last_header[0]:#x} -> {c:#x}), live advanced by {dl}"
            else:
                assert (dl > 0) == (dc > 0), f"{ctx}: zxid order differs (capture step " \
                                             f"{dc}, live step {dl})"
        self.last_header = (c, live)
        self.pair(c, live, ctx)

    def pair(self, c: int, live: int, ctx: str) -> None:
        if c in (0, -1):
            assert live == c, f"{ctx}: zxid should be {c}, got {live:#x}"
            return
        self.max_live = max(self.max_live, live)
        assert self.start is not None
        if self.is_pre(c):
            assert 0 < live < self.start[1], \
                f"{ctx}: zxid {live:#x} should predate the scenario (capture {c:#x})"
            return
        assert live >= self.start[1], f"{ctx}: zxid {live:#x} predates the scenario but " \
                                      f"capture {c:#x} does not"
        if c in self.pairs:
            assert self.pairs[c] == live, f"{ctx}: capture zxid {c:#x} was live " \
                                          f"{self.pairs[c]:#x} before, now {live:#x}"
            return
        for c2, l2 in self.pairs.items():
            assert (c2 < c) == (l2 < live) and l2 != live, \
                f"{ctx}: zxid order broken: capture {c2:#x}->{l2:#x} vs {c:#x}->{live:#x}"
        self.pairs[c] = live

    def live_of(self, c: int) -> int | None:
        if c == 0:
            return 0
        return self.pairs.get(c)


class TimeMap:
    def __init__(self) -> None:
        self.pairs: dict[int, int] = {}

    def pair(self, c: int, live: int, ctx: str) -> None:
        if c == 0:
            assert live == 0, f"{ctx}: time should be 0, got {live}"
            return
        assert abs(live / 1000 - time.time()) < 3600, f"{ctx}: implausible time {live}"
        if c in self.pairs:
            assert self.pairs[c] == live, f"{ctx}: same capture time {c} (same txn) " \
                                          f"gave live {self.pairs[c]} and {live}"
            return
        for c2, l2 in self.pairs.items():
            if c2 < c:
                assert l2 <= live, f"{ctx}: time went backwards ({l2} then {live})"
            else:
                assert l2 >= live, f"{ctx}: time went backwards ({live} then {l2})"
        self.pairs[c] = live


SEQ_RE = re.compile(r"^(.*)(-?\d{9,10})$")


# --------------------------------------------------------------------------- replay


@dataclass
class RConn:
    cid: int
    wc: wire.WireConn
    pending: list[Req] = field(default_factory=list)
    sent_first: bool = False
    got_first: bool = False
    sent_close_session: bool = False
    server_will_close: bool = False
    closed: bool = False
    setwatches_pending: int = 0
    last_live_zxid: int = 0
    split_sends: bool = False
    shut_wr: bool = False


class Replayer:
    def __init__(self, name: str, cap: dict[str, Any], srv: Any, cfg: ScenarioCfg,
                 family: str) -> None:
        self.name = name
        self.cap = cap
        self.srv = srv
        self.cfg = cfg
        self.family = family
        self.steps = build_steps(cap)
        self.conns: dict[int, RConn] = {}
        self.zmap = ZxidMap(cfg.exact_deltas)
        self.times = TimeMap()
        self.sessions: dict[int, int] = {}
        self.passwds: dict[bytes, bytes] = {}
        self.paths: dict[str, str] = {}
        fams = FAMILY_ORDER[:FAMILY_ORDER.index(family) + 1]
        self.preexisting = {p for fam, p, _, _ in FAMILY_SETUP if fam in fams}
        self.notification_zxids: list[tuple[int, str]] = []

    # -- setup ---------------------------------------------------------------------
    def setup(self) -> None:
        fams = FAMILY_ORDER[:FAMILY_ORDER.index(self.family) + 1]
        c = wire.open_session(self.srv.host, self.srv.port)
        try:
            for fam, path, data, acl in FAMILY_SETUP:
                if fam in fams:
                    rep = c.create(path, data, acl)
                    assert rep.err == 0, f"setup create {path}: err {rep.err}"
            c.close_session()
        finally:
            c.close()

    # -- helpers -------------------------------------------------------------------
    def ctx(self, step: Step, what: str = "") -> str:
        f = step.frames[0] if step.frames else {}
        return (f"[{self.name}] conn {step.conn} t={step.t}ms frame#{f.get('index', step.index)}"
                f" {what}")

    def conn(self, cid: int) -> RConn:
        if cid not in self.conns:
            wc = wire.WireConn(self.srv.host, self.srv.port, READ_TIMEOUT)
            self.conns[cid] = RConn(cid, wc, split_sends=self.family == "c")
        return self.conns[cid]

    def map_path(self, c: str | None, live: str | None, ctx: str) -> None:
        if c is None or live is None:
            assert c == live, f"{ctx}: path {live!r}, expected {c!r}"
            return
        if c in self.paths:
            assert self.paths[c] == live, f"{ctx}: path {live!r}, expected {self.paths[c]!r}"
            return
        if c == live:
            return
        mc, ml = SEQ_RE.match(c), SEQ_RE.match(live)
        assert mc and ml and mc.group(1) == ml.group(1) and len(c) == len(live), \
            f"{ctx}: path {live!r}, expected {c!r}"
        parent = posixpath.dirname(mc.group(1)) or "/"
        assert parent in self.preexisting and parent not in SYSTEM_PATHS, \
            f"{ctx}: sequential path {live!r}, expected {c!r} (parent {parent} was made in " \
            f"this scenario, so its counter must match exactly)"
        assert live not in self.paths.values(), f"{ctx}: {live!r} already mapped"
        self.paths[c] = live

    def mapped(self, c: str) -> str:
        return self.paths.get(c, c)

    # -- record comparison ---------------------------------------------------------------
    def cmp_stat(self, cs: Stat, ls: Stat, ctx: str) -> None:
        pre = self.zmap.is_pre(cs.czxid)
        for f in ("czxid", "mzxid", "pzxid"):
            self.zmap.pair(getattr(cs, f), getattr(ls, f), f"{ctx} stat.{f}")
        if cs.ctime == 0 or not pre:
            self.times.pair(cs.ctime, ls.ctime, f"{ctx} stat.ctime")
        if cs.mtime == 0 or not self.zmap.is_pre(cs.mzxid):
            self.times.pair(cs.mtime, ls.mtime, f"{ctx} stat.mtime")
        assert ls.mtime >= ls.ctime, f"{ctx}: mtime before ctime"
        fields = ["version", "aversion", "dataLength"]
        if not pre:  # counters of fixture nodes depend on the capture server's history
            fields += ["cversion", "numChildren"]
        for f in fields:
            assert getattr(ls, f) == getattr(cs, f), \
                f"{ctx}: stat.{f} = {getattr(ls, f)}, expected {getattr(cs, f)} ({cs} vs {ls})"
        self.cmp_session(cs.ephemeralOwner, ls.ephemeralOwner, f"{ctx} stat.ephemeralOwner")

    def cmp_session(self, c: int, live: int, ctx: str) -> None:
        if c == 0:
            assert live == 0, f"{ctx}: expected 0, got {live:#x}"
            return
        assert c in self.sessions, f"{ctx}: capture session {c:#x} never seen"
        assert self.sessions[c] == live, f"{ctx}: session {live:#x}, expected " \
                                         f"{self.sessions[c]:#x}"

    def cmp_children(self, parent: str | None, cl: list[str] | None, ll: list[str] | None,
                     ctx: str) -> None:
        assert (cl is None) == (ll is None), f"{ctx}: children {ll} vs {cl}"
        if cl is None or ll is None:
            return
        base = parent or "/"

        def full(n: str) -> str:
            return posixpath.join(base, n)

        expected = sorted(posixpath.basename(self.mapped(full(n))) for n in cl)
        got = sorted(ll)
        if base in self.preexisting:
            missing = set(got) - set(expected)
            assert not missing, f"{ctx}: children {got} not within captured {expected}"
        else:
            assert got == expected, f"{ctx}: children {got}, expected {expected}"

    def cmp_body(self, op: int | None, req: Req | None, cb: dict[str, Any],
                 lb: dict[str, Any], ctx: str, live_zxid: int) -> None:
        assert set(cb) == set(lb), f"{ctx}: body fields {sorted(lb)} vs {sorted(cb)}"
        if "path" in cb:
            self.map_path(cb["path"], lb["path"], f"{ctx} path")
        if "stat" in cb:
            self.cmp_stat(cb["stat"], lb["stat"], ctx)
        if "data" in cb:
            assert lb["data"] == cb["data"], f"{ctx}: data {lb['data']!r:.80}, expected " \
                                             f"{cb['data']!r:.80}"
        if "acl" in cb:
            assert sorted(lb["acl"]) == sorted(cb["acl"]), f"{ctx}: acl {lb['acl']} vs " \
                                                           f"{cb['acl']}"
        if "children" in cb:
            if op == OP["getEphemerals"]:
                exp = sorted(self.mapped(p) for p in cb["children"])
                assert sorted(lb["children"]) == exp, f"{ctx}: ephemerals " \
                                                      f"{lb['children']} vs {exp}"
            else:
                self.cmp_children(req.path if req else None, cb["children"],
                                  lb["children"], ctx)
        if "int" in cb:
            assert lb["int"] == cb["int"], f"{ctx}: value {lb['int']}, expected {cb['int']}"
        if "clientInfo" in cb:
            assert sorted(lb["clientInfo"]) == sorted(cb["clientInfo"]), \
                f"{ctx}: whoAmI {lb['clientInfo']} vs {cb['clientInfo']}"
        if "token" in cb:
            assert lb["token"] == cb["token"]
        if "results" in cb:
            cr, lr = cb["results"], lb["results"]
            assert len(cr) == len(lr), f"{ctx}: {len(lr)} multi results, expected {len(cr)}"
            for i, (c, li) in enumerate(zip(cr, lr, strict=True)):
                sctx = f"{ctx} multi[{i}]"
                sub = req.subops[i] if req and i < len(req.subops) else None
                if (not TARGET_ZK and sub == OP["create2"] and c.type == OP["create"]):
                    # 3.9: a create2 sub-op answers type 15 (path + Stat); 3.8 downgrades
                    assert (li.type, li.done, li.err) == (OP["create2"], False, 0), \
                        f"{sctx}: {li}"
                    self.map_path(c.body["path"], li.body["path"], sctx)
                    assert li.body["stat"].czxid == live_zxid, f"{sctx}: {li.body['stat']}"
                    continue
                assert (li.type, li.done, li.err) == (c.type, c.done, c.err), \
                    f"{sctx}: MultiHeader {(li.type, li.done, li.err)}, expected " \
                    f"{(c.type, c.done, c.err)}"
                sreq = Req(0, sub or 0)
                self.cmp_body(c.type, sreq, c.body, li.body, sctx, live_zxid)
        if "err" in cb:  # ErrorResponse inside a multi
            assert lb["err"] == cb["err"], f"{ctx}: ErrorResponse {lb['err']} vs {cb['err']}"
        if "type" in cb:  # WatcherEvent
            assert (lb["type"], lb["state"]) == (cb["type"], cb["state"]), \
                f"{ctx}: event {lb} expected {cb}"
            self.map_path(cb["path"], lb["path"], f"{ctx} event path")

    # -- steps ----------------------------------------------------------------------------
    def do_c2s(self, step: Step) -> None:
        rc = self.conn(step.conn)
        out = b""
        for f in step.frames:
            data = bytes.fromhex(f["hex"])
            if not rc.sent_first:
                rc.sent_first = True
                data = self.rewrite_connect(data)
            elif len(data) >= 4 and struct.unpack(">i", data[:4])[0] == len(data) - 4:
                req = parse_request(data[4:])
                if req is not None:
                    if req.op == OP["closeSession"]:
                        rc.sent_close_session = True
                    if req.op in (OP["setWatches"], OP["setWatches2"]) and len(data) >= 20:
                        rel = struct.unpack(">q", data[12:20])[0]
                        live_rel = self.zmap.live_of(rel)
                        assert live_rel is not None, f"relativeZxid {rel:#x} never observed"
                        data = data[:12] + struct.pack(">q", live_rel) + data[20:]
                        rc.setwatches_pending += 1
                    rc.pending.append(req)
            out += data
        try:
            read = step.frames[0]["decoded"].get("read")
            if rc.split_sends and len(step.frames) == 1 and isinstance(read, list):
                # the C client writes the length prefix and the body separately
                rc.wc.send_raw(out[:4])
                time.sleep(0.02)
                rc.wc.send_raw(out[4:])
            else:
                rc.wc.send_raw(out)
        except OSError:
            # the server may already have closed (e.g. it rejected an oversized length
            # before the client finished writing); the close is checked by its own step
            pass

    def rewrite_connect(self, data: bytes) -> bytes:
        if len(data) < 4 or struct.unpack(">i", data[:4])[0] != len(data) - 4:
            return data
        try:
            rec = wire.decode_connect_request(data[4:])
        except wire.DecodeError:
            return data
        if rec.passwd is None:
            return data
        sid = self.sessions.get(rec.session_id, rec.session_id)
        pw = self.passwds.get(rec.passwd, rec.passwd)
        lz = rec.last_zxid
        if lz != 0:
            mapped = self.zmap.live_of(lz)
            lz = lz if mapped is None else mapped  # unknown (e.g. "ahead") stays as is
        payload = wire.connect_request(rec.timeout, sid, pw, lz, rec.read_only,
                                       rec.protocol_version)
        return wire.frame(payload)

    def read_live(self, rc: RConn, ctx: str) -> bytes:
        try:
            return rc.wc.recv_frame(READ_TIMEOUT)
        except wire.ConnectionClosed as e:
            raise AssertionError(f"{ctx}: server closed the connection ({e}) instead of "
                                 f"sending the expected frame") from e
        except TimeoutError as e:
            raise AssertionError(f"{ctx}: no frame within {READ_TIMEOUT}s") from e

    def do_s2c(self, step: Step) -> None:
        f = step.frames[0]
        rc = self.conns.get(step.conn)
        assert rc is not None, f"{self.ctx(step)}: server frame on an unopened connection"
        cap_payload = bytes.fromhex(f["hex"])[4:]
        if not rc.got_first:
            rc.got_first = True
            ctx = self.ctx(step, "ConnectResponse")
            self.cmp_connect_response(cap_payload, self.read_live(rc, ctx), rc, ctx)
            return
        (xid,) = struct.unpack(">i", cap_payload[:4])
        req = None
        if xid != wire.XID_NOTIFICATION:
            for i, r in enumerate(rc.pending):
                if r.xid == xid:
                    req = rc.pending.pop(i)
                    break
        op = req.op if req else None
        opname = next((k for k, v in OP.items() if v == op), str(op))
        ctx = self.ctx(step, f"reply to {opname} xid {xid}" if xid != -1 else "notification")
        cap = wire.decode_reply(cap_payload, op)
        live_payload = self.read_live(rc, ctx)
        try:
            live = wire.decode_reply(live_payload, op)
        except wire.DecodeError as e:
            raise AssertionError(f"{ctx}: undecodable frame {live_payload.hex()}: {e}") from e
        self.cmp_reply(cap, live, req, rc, ctx)

    def cmp_connect_response(self, cap_payload: bytes, live_payload: bytes, rc: RConn,
                             ctx: str) -> None:
        cc = wire.decode_connect_response(cap_payload)
        try:
            lc = wire.decode_connect_response(live_payload)
        except wire.DecodeError as e:
            raise AssertionError(f"{ctx}: bad ConnectResponse {live_payload.hex()}") from e
        assert lc.length == cc.length, f"{ctx}: ConnectResponse is {lc.length} bytes, " \
                                       f"expected {cc.length} ({lc})"
        assert (lc.protocol_version, lc.timeout, lc.read_only) == \
               (cc.protocol_version, cc.timeout, cc.read_only), f"{ctx}: {lc} expected {cc}"
        if cc.session_id == 0:
            assert (lc.session_id, lc.passwd) == (0, cc.passwd), f"{ctx}: {lc}"
            return
        assert lc.session_id != 0, ctx
        if cc.session_id in self.sessions:
            assert lc.session_id == self.sessions[cc.session_id], \
                f"{ctx}: resumed session came back as {lc.session_id:#x}, expected " \
                f"{self.sessions[cc.session_id]:#x}"
        else:
            assert lc.session_id not in self.sessions.values(), \
                f"{ctx}: new session got an existing id {lc.session_id:#x}"
            self.sessions[cc.session_id] = lc.session_id
        assert len(lc.passwd) == len(cc.passwd), ctx
        if cc.passwd in self.passwds:
            assert self.passwds[cc.passwd] == lc.passwd, f"{ctx}: password changed"
        else:
            self.passwds[cc.passwd] = lc.passwd

    def cmp_reply(self, cap: Reply, live: Reply, req: Req | None, rc: RConn,
                  ctx: str) -> None:
        assert live.xid == cap.xid, f"{ctx}: got xid {live.xid} ({live}), expected " \
                                    f"xid {cap.xid}"
        override = None if TARGET_ZK else self.cfg.zkernel_errs.get((rc.cid, cap.xid))
        want_err = cap.err if override is None else override
        assert live.err == want_err, f"{ctx}: err {live.err}, expected {want_err}"
        if cap.xid == wire.XID_NOTIFICATION:
            if TARGET_ZK or rc.setwatches_pending:
                # 3.8 sends -1; events synthesized by setWatches carry -1 in 3.9 too
                assert live.zxid == -1, f"{ctx}: notification zxid {live.zxid:#x}, expected -1"
            else:
                # 3.9 (ZOOKEEPER-4655): the zxid of the transaction that fired the watch
                assert live.zxid > 0 and live.zxid >= rc.last_live_zxid, \
                    f"{ctx}: notification zxid {live.zxid:#x} (last seen on this connection " \
                    f"{rc.last_live_zxid:#x})"
                self.notification_zxids.append((live.zxid, ctx))
                rc.last_live_zxid = live.zxid
        elif cap.zxid in (0, -1):
            assert live.zxid == cap.zxid, f"{ctx}: zxid {live.zxid:#x}, expected {cap.zxid}"
        else:
            self.zmap.header(cap.zxid, live.zxid, ctx)
            rc.last_live_zxid = max(rc.last_live_zxid, live.zxid)
        if req is not None and req.op in (OP["setWatches"], OP["setWatches2"]):
            rc.setwatches_pending -= 1
        if cap.err in (wire.AUTH_FAILED, wire.UNIMPLEMENTED):
            rc.server_will_close = True
        if override is not None:
            assert live.length == 16, f"{ctx}: error reply with a body"
            return
        assert live.length == cap.length or self.lengths_may_differ(req), \
            f"{ctx}: frame length {live.length}, expected {cap.length}"
        self.cmp_body(req.op if req else None, req, cap.body, live.body, ctx, live.zxid)

    def lengths_may_differ(self, req: Req | None) -> bool:
        if req is None:
            return False
        if req.op in (OP["getChildren"], OP["getChildren2"]) and \
                (req.path or "/") in self.preexisting:
            return True
        return not TARGET_ZK and OP["create2"] in req.subops

    def do_event(self, step: Step) -> None:
        ev = step.event
        rc = self.conns.get(step.conn)
        if ev.startswith("proxy holds"):
            if self.cfg.hold_hook is not None:
                self.cfg.hold_hook(self.srv)
            return
        if rc is None:
            return
        if ev.startswith("server sent FIN"):
            if rc.closed:
                return
            try:
                closed = rc.wc.closed_within(CLOSE_TIMEOUT)
            except AssertionError as e:
                raise AssertionError(f"{self.ctx(step)}: {e}") from e
            assert closed, f"{self.ctx(step)}: the server should close this connection " \
                           f"(it did not within {CLOSE_TIMEOUT}s)"
            rc.closed = True
        elif ev.startswith("client sent FIN"):
            if rc.closed:
                rc.wc.close()
            elif not (rc.sent_close_session or rc.server_will_close):
                # the client closes first; the server's FIN (if recorded) answers it
                try:
                    rc.wc.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                rc.shut_wr = True
        elif ev.startswith("client sent RST") or ev.startswith("proxy killed"):
            rc.wc.reset()
            rc.closed = True
        elif ev.startswith("connection closed"):
            rc.wc.close()
            rc.closed = True

    def run(self) -> None:
        self.setup()
        prev_t = None
        for step in self.steps:
            if self.cfg.honor_gaps and prev_t is not None and step.t - prev_t > 200:
                time.sleep((step.t - prev_t) / 1000)
            prev_t = step.t
            if step.kind == "c2s":
                self.do_c2s(step)
            elif step.kind == "s2c":
                self.do_s2c(step)
            else:
                self.do_event(step)
        # nothing unexpected may be left on connections the capture kept open, and the
        # server must not have closed them (unless the client half-closed its side)
        for rc in self.conns.values():
            if not rc.closed:
                try:
                    rc.wc.assert_silent_open(0.1)
                except AssertionError as e:
                    closed = "closed" in str(e) or "reset" in str(e)
                    if not (closed and rc.shut_wr):
                        raise AssertionError(f"[{self.name}] conn {rc.cid}: {e}") from e
                rc.wc.close()
        for z, ctx in self.notification_zxids:
            assert z <= self.zmap.max_live, f"{ctx}: notification zxid {z:#x} is beyond " \
                                            f"every zxid the server reported"

    def close(self) -> None:
        for rc in self.conns.values():
            rc.wc.close()


FILES = scenario_files()


@pytest.mark.parametrize("path", FILES, ids=[scenario_name(p) for p in FILES])
def test_replay_capture(path: Path, server_factory: Any) -> None:
    name = scenario_name(path)
    cfg = SCENARIO_CFG.get(name, ScenarioCfg())
    if cfg.skip:
        pytest.skip(cfg.skip)
    cap = load_capture(path)
    srv = server_factory(cfg={"extendedTypesEnabled": "true"})
    rp = Replayer(name, cap, srv, cfg, family_of(path))
    try:
        rp.run()
    finally:
        rp.close()


# --------------------------------------------------------------------------- self-check


def _op_from_decoded(d: dict[str, Any]) -> int | None:
    name = d.get("reply_to")
    return OP.get(name) if isinstance(name, str) else None


@pytest.mark.parametrize("path", [p for p in FILES], ids=[scenario_name(p) for p in FILES])
def test_wire_decoder_agrees_with_capture_decoding(path: Path) -> None:
    """wire.py decodes every captured server frame as the capture's own decoder did.

    Guards the test client itself (no server needed): header fields, body layouts and
    frame consumption must agree with the independently produced ``decoded`` field.
    """
    cap = load_capture(path)
    first: set[int] = set()
    for f in cap["frames"]:
        if f["dir"] != "s2c":
            continue
        payload = bytes.fromhex(f["hex"])[4:]
        d = f["decoded"]
        if f["conn"] not in first:
            first.add(f["conn"])
            cr = wire.decode_connect_response(payload)
            assert cr.timeout == d["timeOut"] and f"0x{cr.session_id:016x}" == d["sessionId"]
            assert cr.passwd.hex() == d["passwd"]
            continue
        rep = wire.decode_reply(payload, _op_from_decoded(d))
        assert rep.xid == d["xid"] and rep.err == d["err"], (f, rep)
        zx = d["zxid"]
        assert rep.zxid == (zx if isinstance(zx, int) else int(zx, 16)), (f, rep)
        body = d.get("body") or {}
        if "path" in body and rep.xid != -1:
            assert rep.body["path"] == body["path"]
        if "children" in body:
            assert rep.body["children"] == body["children"]
        if "stat" in body:
            s = body["stat"]
            assert rep.body["stat"].czxid == s["czxid"] and \
                rep.body["stat"].numChildren == s["numChildren"]
        if "results" in body:
            entries = [r for r in body["results"] if not r["MultiHeader"]["done"]]
            assert [(r.type, r.err) for r in rep.body["results"]] == \
                [(r["MultiHeader"]["type"], r["MultiHeader"]["err"]) for r in entries]
