"""Durability of the LMDB storage plugin (``kernel.storage=lmdb``, the default).

A real server process, real kazoo clients, real ``SIGKILL``s:

* crash recovery under a concurrent write load (plain and sequential creates, versioned
  setData and deletes, multi, pipelined async creates), killed at seeded random moments
  and restarted on the same dataDir; after every restart the tree is checked against
  everything the clients saw acknowledged, and against what a lost reply may or may not
  have done (all-or-nothing for multi, prefix order for pipelined requests, no phantom
  or resurrected writes, zxids and sequence numbers never going backwards);
* sessions and their ephemerals surviving a crash, and expiring after it;
* ``dataLogDir`` on its own directory, ``forceSync=no``;
* refusals: an Apache ZooKeeper ``version-2`` dataDir, a corrupted or truncated
  ``data.mdb``;
* log retention (``snapCount``).

``ZK_DURABILITY_SEED`` overrides the seeds; ``ZK_DURABILITY_KILLS`` the soak's kill count.
The soak variant (``-m soak``) runs the crash test with 120 kills.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb
import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, KazooException, NoNodeError
from kazoo.protocol.states import ZnodeStat

from tests.integration.kazoo_helpers import FAST_RETRY, IS_ZOOKEEPER
from tests.support.servers import ServerProcess, four_letter_word

pytestmark = pytest.mark.skipif(IS_ZOOKEEPER, reason="tests zkernel's LMDB storage plugin")

SESSION_TIMEOUT = 15.0
N_KEY_WORKERS = 4
KEYS_PER_WORKER = 6
BURST = 24
ROUND_MAX_OPS = 4000
ROUND_MAX_SECONDS = 5.0

State = tuple[bytes, int] | None  # (data, version) of a znode, or None: absent


def seed_for(default: int) -> int:
    return int(os.environ.get("ZK_DURABILITY_SEED", default))


def srvr_zxid(server: ServerProcess) -> int:
    out = four_letter_word(server.port, "srvr")
    m = re.search(r"^Zxid: (0x[0-9a-f]+)$", out, re.M)
    assert m, out
    return int(m.group(1), 16)


def new_client(server: ServerProcess, timeout: float = SESSION_TIMEOUT) -> KazooClient:
    zk = KazooClient(hosts=server.connect_string, timeout=timeout,
                     connection_retry=dict(FAST_RETRY), command_retry=None)
    zk.start(timeout=15)
    return zk


def close_client(zk: KazooClient) -> None:
    try:
        zk.stop()
    finally:
        zk.close()


def wait_connected(zk: KazooClient, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if zk.connected:
            return True
        time.sleep(0.02)
    return zk.connected


def read_many(zk: KazooClient, paths: list[str]) -> dict[str, State]:
    """The (data, version) of every path, read with pipelined getData calls."""
    out: dict[str, State] = {}
    for i in range(0, len(paths), 500):
        chunk = paths[i:i + 500]
        asyncs = [zk.get_async(p) for p in chunk]
        for p, a in zip(chunk, asyncs, strict=True):
            try:
                data, stat = a.get(timeout=30)
            except NoNodeError:
                out[p] = None
            else:
                out[p] = (data, stat.version)
    return out


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): (file_hash(p) if p.is_file() else "dir")
            for p in sorted(root.rglob("*"))}


# --------------------------------------------------------------------------------------
# The crash test: load, ledger of acknowledged writes, verification
# --------------------------------------------------------------------------------------


@dataclass
class Ledger:
    """Everything the clients were told, shared by the load threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    failures: list[str] = field(default_factory=list)
    # /seq: every acknowledged sequential create (path -> data), tokens whose reply was
    # lost, and the highest suffix that existed when the current round started.
    seq_acked: dict[str, bytes] = field(default_factory=dict)
    seq_unknown: set[bytes] = field(default_factory=set)
    seq_floor: int = -1
    # /bursts: pipelined creates; per burst the indexes acknowledged and those whose
    # reply was lost (sent on the connection that died, in order).
    bursts: dict[str, tuple[set[int], list[int]]] = field(default_factory=dict)
    bursts_checked: set[str] = field(default_factory=set)
    ops: int = 0

    def fail(self, msg: str) -> None:
        with self.lock:
            self.failures.append(msg)


def seq_number(path: str) -> int:
    return int(path[-10:])


class KeyWorker(threading.Thread):
    """Owns /w<i>/k*: creates, versioned setData and deletes, multi, sequential creates.

    It is the only writer of its keys, so after every acknowledged reply it knows their
    exact state; the one request whose reply is lost (ConnectionLoss) ends its round and
    is kept in ``unknown`` as (path -> new state) for the verifier to resolve.
    """

    def __init__(self, idx: int, zk: KazooClient, state: dict[str, State],
                 rng: random.Random, ledger: Ledger) -> None:
        super().__init__(daemon=True, name=f"key-worker-{idx}")
        self.idx = idx
        self.zk = zk
        self.state = state
        self.rng = rng
        self.ledger = ledger
        self.stop_event = threading.Event()
        self.unknown: dict[str, State] = {}
        self.counter = 0

    def token(self) -> bytes:
        self.counter += 1
        pad = self.rng.choice((0, 0, 50, 700, 3000))
        return f"w{self.idx}:{self.counter}:".encode() + b"x" * pad

    def run(self) -> None:
        deadline = time.monotonic() + ROUND_MAX_SECONDS
        n = 0
        try:
            while not self.stop_event.is_set() and n < ROUND_MAX_OPS \
                    and time.monotonic() < deadline:
                n += 1
                r = self.rng.random()
                if r < 0.15:
                    ok = self.seq_create()
                elif r < 0.40:
                    ok = self.multi()
                else:
                    ok = self.single()
                if not ok:
                    return
        finally:
            with self.ledger.lock:
                self.ledger.ops += n

    def single(self) -> bool:
        path = self.rng.choice(sorted(self.state))
        cur = self.state[path]
        data = self.token()
        try:
            if cur is None:
                self.unknown = {path: (data, 0)}
                self.zk.create(path, data)
                new: State = (data, 0)
            elif self.rng.random() < 0.75:
                self.unknown = {path: (data, cur[1] + 1)}
                stat = self.zk.set(path, data, version=cur[1])
                if stat.version != cur[1] + 1:
                    self.ledger.fail(f"setData {path} v{cur[1]} acked version {stat.version}")
                new = (data, stat.version)
            else:
                self.unknown = {path: None}
                self.zk.delete(path, version=cur[1])
                new = None
        except ConnectionLoss:
            return False
        except KazooException as e:
            self.ledger.fail(f"{path} in state {cur!r}: unexpected {e!r}")
            return False
        self.unknown = {}
        self.state[path] = new
        return True

    def multi(self) -> bool:
        paths = self.rng.sample(sorted(self.state), self.rng.choice((2, 3, 4)))
        t = self.zk.transaction()
        changes: dict[str, State] = {}
        expect: list[Any] = []
        for i, path in enumerate(paths):
            cur = self.state[path]
            data = self.token()
            if cur is None:
                t.create(path, data)
                changes[path] = (data, 0)
                expect.append(path)
            elif i == 0 and self.rng.random() < 0.3:
                t.check(path, cur[1])
                expect.append(True)
            elif self.rng.random() < 0.8:
                t.set_data(path, data, version=cur[1])
                changes[path] = (data, cur[1] + 1)
                expect.append(cur[1] + 1)
            else:
                t.delete(path, version=cur[1])
                changes[path] = None
                expect.append(True)
        self.unknown = changes
        try:
            results = t.commit()
        except ConnectionLoss:
            return False
        except KazooException as e:
            self.ledger.fail(f"multi on {paths}: unexpected {e!r}")
            return False
        ok = len(results) == len(expect)
        for res, exp in zip(results, expect, strict=False):
            if isinstance(res, ZnodeStat):
                ok = ok and res.version == exp
            elif isinstance(res, Exception) or res != exp:
                ok = False
        if not ok:
            self.ledger.fail(f"multi on {paths} (states {[self.state[p] for p in paths]}): "
                             f"results {results!r}, expected {expect!r}")
            return False
        self.unknown = {}
        self.state.update(changes)
        return True

    def seq_create(self) -> bool:
        data = self.token()
        with self.ledger.lock:
            self.ledger.seq_unknown.add(data)
            floor = self.ledger.seq_floor
        try:
            path = self.zk.create("/seq/s-", data, sequence=True)
        except ConnectionLoss:
            return False
        except KazooException as e:
            self.ledger.fail(f"sequential create: unexpected {e!r}")
            return False
        with self.ledger.lock:
            self.ledger.seq_unknown.discard(data)
            if path in self.ledger.seq_acked:
                self.ledger.failures.append(
                    f"sequential path {path} acknowledged twice "
                    f"({self.ledger.seq_acked[path]!r:.30} and {data!r:.30})")
            self.ledger.seq_acked[path] = data
        if seq_number(path) <= floor:
            self.ledger.fail(f"sequential suffix reused: {path} after restart, but "
                             f"{floor:010d} already existed")
        return True


class BurstWorker(threading.Thread):
    """Pipelines bursts of async creates (/bursts/r<round>/b<n>-<i>) on one session.

    The bursts follow each other closely, so a kill usually lands in one: the log's last
    batch then holds creates that nothing rewrites later.
    """

    def __init__(self, zk: KazooClient, round_no: int, ledger: Ledger) -> None:
        super().__init__(daemon=True, name="burst-worker")
        self.zk = zk
        self.parent = f"/bursts/r{round_no:03d}"
        self.ledger = ledger
        self.stop_event = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + ROUND_MAX_SECONDS
        n = 0
        while not self.stop_event.is_set() and n < 60 and time.monotonic() < deadline:
            name = f"{self.parent}/b{n:02d}"
            n += 1
            acked: set[int] = set()
            lost: list[int] = []
            with self.ledger.lock:
                self.ledger.bursts[name] = (acked, lost)
            asyncs = [self.zk.create_async(f"{name}-{i:03d}", f"{name}:{i}".encode())
                      for i in range(BURST)]
            for i, a in enumerate(asyncs):
                try:
                    a.get(timeout=60)
                    acked.add(i)
                except ConnectionLoss:
                    lost.append(i)
                except Exception as e:  # any other answer is a failure
                    self.ledger.fail(f"burst create {name}-{i:03d}: unexpected {e!r}")
                    lost.append(i)
            with self.ledger.lock:
                self.ledger.ops += BURST
            if lost:
                return
            time.sleep(0.005)


class CrashHarness:
    def __init__(self, server: ServerProcess, seed: int) -> None:
        self.server = server
        self.seed = seed
        self.rng = random.Random(seed)
        self.ledger = Ledger()
        self.states: list[dict[str, State]] = [
            {f"/w{i}/k{j}": None for j in range(KEYS_PER_WORKER)} for i in range(N_KEY_WORKERS)]
        self.counters = [0] * N_KEY_WORKERS
        self.clients: list[KazooClient] = []
        self.session_ids: list[int] = []
        self.verifier: KazooClient | None = None
        self.last_zxid = 0
        self.kills = 0  # under load
        self.startup_kills = 0

    def setup(self) -> None:
        self.clients = [new_client(self.server) for _ in range(N_KEY_WORKERS + 1)]
        self.session_ids = [c.client_id[0] for c in self.clients]
        self.verifier = new_client(self.server)
        zk = self.clients[0]
        for p in ["/seq", "/bursts"] + [f"/w{i}" for i in range(N_KEY_WORKERS)]:
            zk.create(p)

    def close(self) -> None:
        for c in [*self.clients, *([self.verifier] if self.verifier else [])]:
            try:
                close_client(c)
            except Exception:  # best effort: the server may be gone
                pass

    def where(self, round_no: int) -> str:
        return (f"seed={self.seed} round={round_no} kills={self.kills}+{self.startup_kills}\n"
                f"--- server log ---\n{self.server.log_tail(25)}")

    def check(self, round_no: int) -> None:
        if self.ledger.failures:
            pytest.fail("\n".join(self.ledger.failures[:20]) + "\n" + self.where(round_no))

    def round(self, round_no: int, how: str) -> None:
        """Load, then stop the server under it (``how``: "kill9" or "sigterm"), restart
        (sometimes killing the recovering process first), and verify."""
        ledger = self.ledger
        workers: list[threading.Thread] = []
        for i in range(N_KEY_WORKERS):
            w = KeyWorker(i, self.clients[i], self.states[i],
                          random.Random(self.rng.random()), ledger)
            w.counter = self.counters[i]
            workers.append(w)
        self.clients[N_KEY_WORKERS].create(f"/bursts/r{round_no:03d}")
        workers.append(BurstWorker(self.clients[N_KEY_WORKERS], round_no, ledger))
        for w in workers:
            w.start()
        if self.rng.random() < 0.15:
            delay = self.rng.uniform(0.0, 0.03)
        else:
            delay = self.rng.uniform(0.1, 0.9)
        time.sleep(delay)
        if how == "kill9":
            self.server.kill9()
            self.kills += 1
        else:
            self.server.stop()  # SIGTERM under load: the clean shutdown path
        for w in workers:
            w.stop_event.set()  # type: ignore[attr-defined]
        seen = max(c.last_zxid for c in self.clients)
        if self.rng.random() < 0.3:
            # Crash the next start too, somewhere in start-up or recovery.
            self.kill_while_starting(self.rng.uniform(0.1, 0.9))
        self.server.start()
        z = srvr_zxid(self.server)
        if z < seen:
            ledger.fail(f"zxid went backwards: clients saw {seen:#x} before the kill, the "
                        f"restarted server is at {z:#x}")
        if z < self.last_zxid:
            ledger.fail(f"zxid went backwards across restart: {self.last_zxid:#x} -> {z:#x}")
        deadline = time.monotonic() + 30
        for i, c in enumerate(self.clients):
            if not wait_connected(c, deadline):
                ledger.fail(f"client {i} did not reconnect (it has seen zxid "
                            f"{c.last_zxid:#x}, the server is at {srvr_zxid(self.server):#x})")
            elif c.client_id[0] != self.session_ids[i]:
                ledger.fail(f"client {i} lost its session {self.session_ids[i]:#x} "
                            f"(now {c.client_id[0]:#x})")
        for w in workers:
            w.join(60)
            if w.is_alive():
                ledger.fail(f"{w.name} is stuck after the restart")
        self.check(round_no)
        for i, w in enumerate(workers[:N_KEY_WORKERS]):
            assert isinstance(w, KeyWorker)
            self.counters[i] = w.counter
        self.verify([w.unknown for w in workers[:N_KEY_WORKERS]])  # type: ignore[attr-defined]
        z2 = srvr_zxid(self.server)
        top = max(c.last_zxid for c in [*self.clients, self.verifier] if c is not None)
        if z2 < top:
            ledger.fail(f"a client has seen zxid {top:#x}, the server is at {z2:#x}")
        self.last_zxid = z2
        self.check(round_no)

    def kill_while_starting(self, delay: float) -> None:
        server = self.server
        old = server.proc

        def start() -> None:
            try:
                server.start()
            except RuntimeError:
                pass  # killed before it served: expected

        t = threading.Thread(target=start, daemon=True)
        t.start()
        deadline = time.monotonic() + 10
        while server.proc is old and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(delay)
        server.kill9()
        t.join(60)
        server.kill9()  # in case it came up serving just as it was killed
        self.startup_kills += 1

    def verify(self, unknowns: list[dict[str, State]]) -> None:
        zk = self.verifier
        assert zk is not None
        assert wait_connected(zk, time.monotonic() + 30), "verifier did not reconnect"
        fail = self.ledger.fail
        # Keys of the key workers: exact state, except the one request with a lost reply,
        # which is all-or-nothing.
        for i, state in enumerate(self.states):
            actual = read_many(zk, sorted(state))
            children = set(zk.get_children(f"/w{i}"))
            present = {p.rsplit("/", 1)[1] for p, s in actual.items() if s is not None}
            if children != present:
                fail(f"/w{i}: children {sorted(children)} but getData finds {sorted(present)}")
            unknown = unknowns[i]
            for path, expected in state.items():
                got = actual[path]
                if path in unknown:
                    continue
                if got != expected:
                    fail(f"{path}: expected {_fmt(expected)}, found {_fmt(got)}")
            if unknown:
                old = {p: state[p] for p in unknown}
                now = {p: actual[p] for p in unknown}
                if now != old and now != unknown:
                    fail(f"request with a lost reply half-applied: before {_fmts(old)}, "
                         f"request {_fmts(unknown)}, found {_fmts(now)}")
            state.update(actual)
        # /seq: acknowledged creates present, nothing nobody wrote, nothing twice.
        ledger = self.ledger
        names = zk.get_children("/seq")
        actual = read_many(zk, [f"/seq/{n}" for n in names])
        by_data: dict[bytes, str] = {}
        for path, s in actual.items():
            if s is None:
                fail(f"{path} listed but not readable")
                continue
            data = s[0]
            if data in by_data:
                fail(f"{by_data[data]} and {path} both hold {data!r:.40}")
            by_data[data] = path
            if path in ledger.seq_acked:
                if ledger.seq_acked[path] != data:
                    fail(f"{path}: acknowledged with {ledger.seq_acked[path]!r:.40}, "
                         f"holds {data!r:.40}")
            elif data in ledger.seq_unknown:
                ledger.seq_unknown.discard(data)
                ledger.seq_acked[path] = data  # its create was applied: now known
            else:
                fail(f"{path} holds {data!r:.40}, which no pending request wrote")
        for path in ledger.seq_acked:
            if path not in actual:
                fail(f"acknowledged sequential create {path} is missing")
        ledger.seq_unknown.clear()  # lost for good; must never show up later
        ledger.seq_floor = max((seq_number(p) for p in actual), default=-1)
        # /bursts: acknowledged present; of the lost replies a prefix was applied.
        existing: dict[str, set[int]] = {}
        for parent in zk.get_children("/bursts"):
            for name in zk.get_children(f"/bursts/{parent}"):
                burst, idx = name.rsplit("-", 1)
                existing.setdefault(f"/bursts/{parent}/{burst}", set()).add(int(idx))
        for burst in existing.keys() - ledger.bursts.keys():
            fail(f"{burst}-*: created by nobody")
        new_reads: list[str] = []
        for burst, (acked, lost) in ledger.bursts.items():
            have = existing.get(burst, set())
            if not acked <= have:
                fail(f"burst {burst}: acknowledged creates {sorted(acked - have)} are missing")
            extra = have - acked - set(lost)
            if extra:
                fail(f"burst {burst}: {sorted(extra)} exist but nobody created them")
            applied = [i for i in lost if i in have]
            if applied != lost[:len(applied)]:
                fail(f"burst {burst}: of the pipelined creates whose reply was lost "
                     f"{lost}, only {applied} were applied (not a prefix)")
            if burst not in ledger.bursts_checked:
                new_reads += [f"{burst}-{i:03d}" for i in sorted(have)]
            acked |= have
            lost.clear()
        for path, s in read_many(zk, new_reads).items():
            burst, idx = path.rsplit("-", 1)
            if s is None or s[0] != f"{burst}:{int(idx)}".encode():
                fail(f"{path}: data {s!r:.60}")
        ledger.bursts_checked |= ledger.bursts.keys()


def _fmt(s: State) -> str:
    return "absent" if s is None else f"v{s[1]} {s[0][:24]!r}"


def _fmts(d: dict[str, State]) -> str:
    return "{" + ", ".join(f"{p}: {_fmt(s)}" for p, s in sorted(d.items())) + "}"


def run_crash_test(server: ServerProcess, kills: int, seed: int) -> CrashHarness:
    h = CrashHarness(server, seed)
    try:
        h.setup()
        r = 0
        while h.kills < kills:
            h.round(r, "sigterm" if r % 5 == 4 else "kill9")
            r += 1
        # A final clean stop/start must also keep everything.
        server.restart()
        h.verify([{} for _ in range(N_KEY_WORKERS)])
        h.check(r)
    finally:
        h.close()
    assert h.ledger.ops > 0
    return h


def test_crash_recovery_under_concurrent_load(server_factory):
    server = server_factory()
    h = run_crash_test(server, kills=8, seed=seed_for(20240611))
    # The load really ran: acknowledged writes of every kind.
    assert h.ledger.seq_acked and h.ledger.bursts
    assert any(s is not None for st in h.states for s in st.values())


def test_crash_recovery_with_separate_data_log_dir(server_factory, tmp_path):
    # A small snapCount as well, so the log is trimmed while the server is being killed.
    log_dir = tmp_path / "txnlog"
    server = server_factory(cfg={"dataLogDir": log_dir, "snapCount": 100})
    run_crash_test(server, kills=4, seed=seed_for(7))
    server.stop()
    assert (log_dir / "zkernel-lmdb" / "data.mdb").is_file()
    counts = lmdb_counts(server.workdir / "data")
    log_counts = lmdb_counts(log_dir)
    assert counts["log"] == 0, counts  # the log lives in dataLogDir only
    assert 0 < log_counts["log"] <= 100 + 1000 + 1000, log_counts
    assert log_counts["nodes"] == 0, log_counts


@pytest.mark.soak
def test_crash_recovery_soak(server_factory):
    kills = int(os.environ.get("ZK_DURABILITY_KILLS", 120))
    server = server_factory()
    run_crash_test(server, kills=kills, seed=seed_for(99))


# --------------------------------------------------------------------------------------
# The replayed log tail (deterministic): the tree lags the log by one batch, so every
# kill -9 leaves the last batch to be replayed on start; what the replay changed must
# reach the node records before anything newer is persisted, or the next restart
# silently loses it (seen with the random crash test on 22154ea).
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("second_stop", ["clean", "kill9"])
def test_replayed_writes_survive_the_next_restart(server_factory, second_stop):
    server = server_factory()
    zk = new_client(server)
    zk.create("/replayed", b"r")
    zk.create("/replayed/child", b"c")
    zk.set("/replayed", b"r2")
    server.kill9()  # zk's session stays open: the last batch holds the setData
    close_client(zk)
    server.start()
    zk = new_client(server)
    try:
        assert zk.get("/replayed")[0] == b"r2"
        zk.create("/after", b"a")  # persists newer changes and a newer last_applied
    finally:
        close_client(zk)
    if second_stop == "clean":
        server.stop()
    else:
        server.kill9()
    server.start()
    zk = new_client(server)
    try:
        data, stat = zk.get("/replayed")
        assert (data, stat.version) == (b"r2", 1)
        assert zk.get("/replayed/child")[0] == b"c"
        assert zk.get("/after")[0] == b"a"
    finally:
        close_client(zk)


def test_replayed_session_close_is_not_undone(server_factory):
    server = server_factory()
    zk = new_client(server)
    zk.create("/eph", b"e", ephemeral=True)
    close_client(zk)  # closeSession (removes /eph) is the last batch
    server.kill9()
    server.start()
    zk = new_client(server)
    try:
        assert zk.exists("/eph") is None
        zk.create("/later", b"l")
    finally:
        close_client(zk)
    server.stop()
    server.start()
    zk = new_client(server)
    try:
        assert zk.exists("/eph") is None, "a closed session's ephemeral came back"
        assert zk.exists("/later") is not None
    finally:
        close_client(zk)


# --------------------------------------------------------------------------------------
# Sessions across a crash
# --------------------------------------------------------------------------------------


def test_session_and_ephemeral_survive_kill9(server_factory):
    server = server_factory()
    keeper = new_client(server, timeout=SESSION_TIMEOUT)
    gone = new_client(server, timeout=4.0)  # the server's minimum: 2 * tickTime
    try:
        sid = keeper.client_id[0]
        keeper.create("/eph-keeper", b"k", ephemeral=True)
        gone.create("/eph-gone", b"g", ephemeral=True)
        gone_sid = gone.client_id[0]
        server.kill9()
        # The second client goes away while the server is down: no closeSession reaches
        # the server, so its session must expire after the restart.
        close_client(gone)
        server.start()
        assert wait_connected(keeper, time.monotonic() + 20), "client did not reconnect"
        assert keeper.client_id[0] == sid
        data, stat = keeper.get("/eph-keeper")
        assert data == b"k" and stat.ephemeralOwner == sid
        # Still there right after the restart, gone after its timeout.
        _, gstat = keeper.get("/eph-gone")
        assert gstat.ephemeralOwner == gone_sid
        deadline = time.monotonic() + 20
        while keeper.exists("/eph-gone") is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert keeper.exists("/eph-gone") is None, "expired session's ephemeral remains"
        # The surviving session still works and its ephemeral stays.
        keeper.set("/eph-keeper", b"k2")
        assert keeper.get("/eph-keeper")[0] == b"k2"
        # The expiry itself is durable: it does not come back after another crash.
        server.kill9()
        server.start()
        assert wait_connected(keeper, time.monotonic() + 20)
        assert keeper.exists("/eph-gone") is None
        assert keeper.get("/eph-keeper")[0] == b"k2"
    finally:
        close_client(keeper)
    # A closed session's ephemeral is removed, durably.
    server.kill9()
    server.start()
    zk = new_client(server)
    try:
        assert zk.exists("/eph-keeper") is None
    finally:
        close_client(zk)


# --------------------------------------------------------------------------------------
# dataLogDir, forceSync
# --------------------------------------------------------------------------------------


def write_nodes(zk: KazooClient, prefix: str, n: int, size: int = 100) -> dict[str, bytes]:
    zk.ensure_path(prefix)
    want = {f"{prefix}/n{i:05d}": f"{i}:".encode() + b"d" * size for i in range(n)}
    asyncs = [zk.create_async(p, d) for p, d in want.items()]
    for a in asyncs:
        a.get(timeout=60)
    return want


def check_nodes(zk: KazooClient, want: dict[str, bytes]) -> None:
    got = read_many(zk, sorted(want))
    missing = [p for p, s in got.items() if s is None]
    assert not missing, f"{len(missing)} missing, e.g. {missing[:3]}"
    wrong = [p for p, s in got.items() if s is not None and s[0] != want[p]]
    assert not wrong, f"wrong data in {wrong[:3]}"


def test_separate_data_log_dir_survives_kill9(server_factory, tmp_path):
    log_dir = tmp_path / "separate-log"
    server = server_factory(cfg={"dataLogDir": log_dir})
    zk = new_client(server)
    try:
        want = write_nodes(zk, "/logdir", 300)
        zk.set("/logdir/n00007", b"changed")
        want["/logdir/n00007"] = b"changed"
        zk.delete("/logdir/n00008")
        del want["/logdir/n00008"]
        before = srvr_zxid(server)
    finally:
        close_client(zk)
    server.kill9()
    server.start()
    assert srvr_zxid(server) >= before
    zk = new_client(server)
    try:
        check_nodes(zk, want)
        assert zk.exists("/logdir/n00008") is None
        assert len(zk.get_children("/logdir")) == len(want)
    finally:
        close_client(zk)
    dirs = four_letter_word(server.port, "dirs")
    sizes = dict(line.split(": ") for line in dirs.strip().splitlines())
    assert int(sizes["logdir_size"]) > 0 and int(sizes["datadir_size"]) > 0, dirs
    assert (log_dir / "zkernel-lmdb" / "data.mdb").is_file()


@pytest.mark.parametrize("change", ["add", "remove"])
def test_changing_data_log_dir_after_crash_keeps_or_refuses(server_factory, tmp_path, change):
    log_dir = tmp_path / "moved-log"
    server = server_factory(cfg={"dataLogDir": log_dir} if change == "remove" else {})
    zk = new_client(server)
    zk.create("/first", b"1")
    zk.create("/last", b"2")  # acknowledged; its node record waits for the next batch
    server.kill9()
    close_client(zk)
    if change == "add":  # the operator moves the log to its own disk...
        server.extra_cfg["dataLogDir"] = log_dir
    else:  # ...or back
        del server.extra_cfg["dataLogDir"]
    log_size = server.log_path.stat().st_size
    try:
        server.start()
    except RuntimeError:
        # Refusing is fine, with a message that points at the log directory.
        out = server.log_path.read_bytes()[log_size:].decode(errors="replace")
        assert "dataLogDir" in out or str(log_dir) in out, out[-1500:]
        assert "Traceback" not in out, out[-1500:]
        return
    zk = new_client(server)
    try:
        assert zk.exists("/first") is not None
        assert zk.exists("/last") is not None, "acknowledged create lost"
    finally:
        close_client(zk)


@pytest.mark.parametrize("stop", ["clean", "kill9"])
def test_force_sync_no(server_factory, stop):
    server = server_factory(cfg={"forceSync": "no"})
    zk = new_client(server)
    try:
        want = write_nodes(zk, "/nosync", 200)
        zk.set("/nosync/n00003", b"v1")
        want["/nosync/n00003"] = b"v1"
    finally:
        close_client(zk)
    # Without fsync only a power loss may lose writes; a process crash may not, since
    # LMDB's writes are in the page cache once the transaction has committed.
    if stop == "clean":
        server.stop()
    else:
        server.kill9()
    server.start()
    zk = new_client(server)
    try:
        check_nodes(zk, want)
    finally:
        close_client(zk)


# --------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------


def fake_zookeeper_data_dir(data_dir: Path) -> None:
    v2 = data_dir / "version-2"
    v2.mkdir(parents=True)
    (v2 / "snapshot.0").write_bytes(b"ZKSN" + bytes(range(256)) * 4)
    (v2 / "log.1").write_bytes(b"ZKLG" + b"\x00\x00\x00\x02" + b"\x00" * 1000)
    (v2 / "acceptedEpoch").write_text("0\n")
    (v2 / "currentEpoch").write_text("0\n")
    (data_dir / "myid").write_text("1\n")


def start_refused(server: ServerProcess) -> str:
    with pytest.raises(RuntimeError):
        server.start(timeout=20)
    assert server.proc is not None
    assert server.proc.returncode != 0
    return server.log_path.read_text(errors="replace")


def test_refuses_apache_zookeeper_data_dir(server_factory):
    server = server_factory(start=False)
    data_dir = server.workdir / "data"
    fake_zookeeper_data_dir(data_dir)
    before = tree_hashes(data_dir)
    out = start_refused(server)
    assert "import-zookeeper" in out, out[-2000:]
    assert tree_hashes(data_dir) == before, "the ZooKeeper data directory was modified"
    assert not (data_dir / "zkernel-lmdb").exists()


def test_refuses_apache_zookeeper_data_dir_without_traceback(server_factory):
    server = server_factory(start=False)
    fake_zookeeper_data_dir(server.workdir / "data")
    out = start_refused(server)
    assert "Traceback" not in out, out[-2000:]


def test_second_server_on_a_data_dir_in_use_is_refused(server_factory, tmp_path):
    shared = tmp_path / "shared-data"
    first = server_factory(cfg={"dataDir": shared})
    zk = new_client(first)
    try:
        zk.create("/first", b"1")
        second = server_factory(cfg={"dataDir": shared}, start=False)
        out = start_refused(second)
        assert "Traceback" not in out, out[-1500:]
        assert zk.get("/first")[0] == b"1"
    finally:
        close_client(zk)


def corrupt(data_file: Path, how: str) -> None:
    size = data_file.stat().st_size
    if how == "truncate":
        os.truncate(data_file, size // 2)
    else:
        rng = random.Random(1234)
        start = size // 4
        with open(data_file, "r+b") as f:
            f.seek(start)
            f.write(rng.randbytes(size // 2))


def populated_then_stopped(server_factory) -> tuple[ServerProcess, Path]:
    server = server_factory()
    zk = new_client(server)
    try:
        write_nodes(zk, "/c", 2500, size=1500)
    finally:
        close_client(zk)
    server.stop()
    data_file = server.workdir / "data" / "zkernel-lmdb" / "data.mdb"
    assert data_file.stat().st_size > 4 << 20
    return server, data_file


@pytest.mark.parametrize("how", ["truncate", "garbage"])
def test_corrupt_lmdb_is_not_served_and_not_modified(server_factory, how):
    server, data_file = populated_then_stopped(server_factory)
    corrupt(data_file, how)
    digest = file_hash(data_file)
    size = data_file.stat().st_size
    start_refused(server)
    assert data_file.stat().st_size == size
    assert file_hash(data_file) == digest, "the corrupt data file was modified"


@pytest.mark.parametrize("how", ["truncate", "garbage"])
def test_corrupt_lmdb_refused_with_clear_error(server_factory, how):
    server, data_file = populated_then_stopped(server_factory)
    corrupt(data_file, how)
    log_size = server.log_path.stat().st_size
    start_refused(server)
    assert server.proc is not None
    code = server.proc.returncode
    out = server.log_path.read_bytes()[log_size:].decode(errors="replace")
    assert code > 0, f"killed by {signal.Signals(-code).name}:\n{out[-1500:]}"
    assert "Traceback" not in out and "Assertion" not in out, out[-1500:]
    assert str(data_file.parent) in out, out[-1500:]
    assert any(w in out.lower() for w in ("corrupt", "truncated", "damaged", "invalid")), \
        out[-1500:]


# --------------------------------------------------------------------------------------
# Log retention (snapCount)
# --------------------------------------------------------------------------------------


def lmdb_counts(base: Path) -> dict[str, int]:
    """Entries per named DB of base/zkernel-lmdb, opened read-only (server stopped)."""
    env = lmdb.open(str(base / "zkernel-lmdb"), readonly=True, lock=False, max_dbs=8,
                    map_size=1 << 36)
    try:
        out = {}
        with env.begin() as txn:
            for name in (b"log", b"nodes", b"sessions", b"meta"):
                try:
                    db = env.open_db(name, txn=txn, create=False)
                except lmdb.NotFoundError:
                    out[name.decode()] = 0
                    continue
                out[name.decode()] = txn.stat(db)["entries"]
        return out
    finally:
        env.close()


def log_range(base: Path) -> tuple[int, int]:
    env = lmdb.open(str(base / "zkernel-lmdb"), readonly=True, lock=False, max_dbs=8,
                    map_size=1 << 36)
    try:
        db = env.open_db(b"log", create=False)
        with env.begin(db=db) as txn:
            cur = txn.cursor()
            assert cur.first()
            first = int.from_bytes(cur.key(), "big")
            assert cur.last()
            return first, int.from_bytes(cur.key(), "big")
    finally:
        env.close()


def test_log_retention_trims_and_restart_serves_everything(server_factory):
    server = server_factory(cfg={"snapCount": 200})
    zk = new_client(server)
    try:
        want: dict[str, bytes] = {}
        for batch in range(6):  # 3000 creates, in pipelined batches (several commits)
            part = write_nodes(zk, f"/ret{batch}", 500, size=50)
            want.update(part)
        for i in range(0, 3000, 7):  # and some setData on top
            p = f"/ret{i // 500}/n{i % 500:05d}"
            zk.set(p, b"s")
            want[p] = b"s"
        top = srvr_zxid(server)
    finally:
        close_client(zk)
    assert top > 3000
    # Crash, recover from the trimmed log, then stop cleanly and look inside.
    server.kill9()
    server.start()
    assert srvr_zxid(server) >= top
    zk = new_client(server)
    try:
        check_nodes(zk, want)
    finally:
        close_client(zk)
    server.stop()
    counts = lmdb_counts(server.workdir / "data")
    assert counts["nodes"] >= len(want)
    # Retention keeps the newest snapCount txns plus at most ~1000 of slack.
    assert 200 <= counts["log"] <= 200 + 1000 + 600, counts
    first, last = log_range(server.workdir / "data")
    assert last >= top and first > 1000, (first, last, top)
    server.start()
    zk = new_client(server)
    try:
        check_nodes(zk, want)
        assert srvr_zxid(server) >= top
    finally:
        close_client(zk)
