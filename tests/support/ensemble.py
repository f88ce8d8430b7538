"""Start a replicated ensemble (zkernel, or Apache ZooKeeper 3.8 for comparison) on loopback.

``Ensemble(n, workdir)`` starts *n* servers on free ports on 127.0.0.1, each with its own
``dataDir`` (holding ``myid``) and ``zoo.cfg``, exactly as an operator configures either
server.  ``ZK_TEST_TARGET=zookeeper`` selects Apache ZooKeeper (as in servers.py).

Servers are addressed by **index** ``i`` in ``range(n)``; server ``i`` has ``myid`` /
``server.N`` id ``sid = i + 1``.

Link control.  With ``proxied=True`` (the default) every directed peer link goes through a
:class:`~tests.support.proxy.LinkProxy`: server *i*'s zoo.cfg lists its own real quorum and
election ports on its ``server.<i+1>`` line and, for every other server *j*, the ports of
the proxies *i→j* (which forward to *j*'s real ports).  Whoever dials, traffic between
*i* and *j* crosses proxy *i→j* or *j→i*, so cutting both isolates the pair on both the
quorum and the election port.  :meth:`Ensemble.partition` / :meth:`Ensemble.heal` cut and
restore links.

Everything is torn down by :meth:`Ensemble.close` (also used by ``with`` and the pytest
fixtures): every process is SIGKILLed (after SIGCONT), proxies are closed and the work
directory is removed unless ``keep=True``.

The tree digest.  Both servers report a per-zxid tree digest through the ``hash``
four-letter word as ``<zxid-hex>: <digest>`` lines (Apache ZooKeeper logs one only at
zxids that are multiples of 128; zkernel adds a line for its last applied zxid), and
zkernel also in ``mntr`` (``zk_tree_digest`` at ``zk_tree_digest_zxid``).
:func:`parse_hash` also takes ``<digest> <zxid-hex>`` and ``zxid=.. digest=..`` lines;
:meth:`Ensemble.check_digests` pads the log with writes when needed so that every server
reports a digest at the same final zxid, then compares.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.proxy import LinkProxy, ProxyHub
from tests.support.servers import REPO, ZK_JAR_DIR, free_port

LOOPBACK = "127.0.0.1"
ZK_DIGEST_LOG_INTERVAL = 128  # Apache ZooKeeper logs a digest when zxid % 128 == 0

#: Timers used by the tests: an election timeout of a few hundred ms, learners dropped
#: after syncLimit * tickTime = 1.25 s of silence.
TEST_TIMERS: dict[str, object] = {"tickTime": 250, "initLimit": 10, "syncLimit": 5}


_LIVE: weakref.WeakSet[Ensemble] = weakref.WeakSet()


@atexit.register
def _close_leftovers() -> None:
    """Safety net: no server outlives the Python process that started it (normal exit,
    Ctrl-C).  Tests and scripts still close their ensembles explicitly."""
    for ens in list(_LIVE):
        ens.close()


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def reserve_port(taken: set[int]) -> int:
    """A port on 127.0.0.1 that nobody listens on and that the kernel never hands out as
    the source port of an outgoing connection (it lies below the ephemeral range), so a
    server restarted after SIGKILL can bind it again.  Falls back to :func:`free_port`."""
    import random

    lo, _ = _ephemeral_range()
    low, high = 20000, lo - 1  # (benchmarks use fixed bases like 12180)
    for _ in range(200):
        port = random.randint(low, high) if high > low else free_port()
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                continue
        taken.add(port)
        return port
    port = free_port()
    taken.add(port)
    return port


def target_kind() -> str:
    """``zookeeper`` or ``zkernel``, from ``ZK_TEST_TARGET`` (default zkernel)."""
    return "zookeeper" if os.environ.get("ZK_TEST_TARGET") == "zookeeper" else "zkernel"


# --------------------------------------------------------------------------- 4lw parsing
def four_letter_word(port: int, word: str, timeout: float = 3.0) -> str:
    """Send a four-letter word to 127.0.0.1:port and return the whole answer.

    Bounded by ``timeout`` overall (a SIGSTOPped server never answers)."""
    deadline = time.monotonic() + timeout
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.sendall(word.encode())
        chunks: list[bytes] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{word} on port {port}: no complete answer in {timeout}s")
            s.settimeout(left)
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode(errors="replace")


_MODE_RE = re.compile(r"^Mode:\s*(\S+)", re.M)
_ZXID_RE = re.compile(r"^Zxid:\s*(0x[0-9a-fA-F]+|\d+)", re.M)


def parse_mode(srvr: str) -> str | None:
    """``leader``/``follower``/``standalone``/``observer``/``read-only``, or None (not
    serving: ZooKeeper then answers "This ZooKeeper instance is not currently serving
    requests")."""
    m = _MODE_RE.search(srvr)
    return m.group(1) if m else None


def parse_zxid(srvr: str) -> int | None:
    m = _ZXID_RE.search(srvr)
    return int(m.group(1), 0) if m else None


def parse_mntr(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(None, 1) if "\t" not in line else line.split("\t", 1)
        if len(parts) == 2:
            out[parts[0].strip()] = parts[1].strip()
    return out


def _int_any(tok: str) -> int:
    """A zxid token: ``0x1f``, or bare hex (the 4lw convention for zxids)."""
    tok = tok.strip().rstrip(":,")
    return int(tok, 16) if not tok.lower().startswith("0x") else int(tok, 0)


_ZK_HASH_LINE = re.compile(r"^\s*(?:0x)?([0-9a-fA-F]+)\s*:\s*(-?\d+)\s*$")
_KV_HASH_LINE = re.compile(
    r"zxid\s*[=:]\s*(?P<zxid>(?:0x)?[0-9a-fA-F]+).*?digest\s*[=:]\s*(?P<digest>-?\w+)"
    r"|digest\s*[=:]\s*(?P<digest2>-?\w+).*?zxid\s*[=:]\s*(?P<zxid2>(?:0x)?[0-9a-fA-F]+)",
    re.I)
_PAIR_HASH_LINE = re.compile(
    r"^\s*(-?[0-9a-fA-Fx]+)\s+(?:zxid\s*)?(0x[0-9a-fA-F]+|[0-9a-fA-F]+)\s*$")


def parse_hash(text: str) -> dict[int, str]:
    """Digests by zxid from a ``hash`` answer, tolerant of the known spellings:

    * Apache ZooKeeper 3.6+: ``<zxid in hex>: <digest in decimal>`` per line (e.g.
      ``100000080: 8243175423``), only for zxids that are multiples of 128;
    * ``zxid=<hex> digest=<d>`` (either order, ``=`` or ``:``);
    * ``<digest> <zxid-hex>`` (zkernel's planned form; a zxid written ``0x..`` may come
      in either column).

    Digests are kept as strings: they are compared only with each other."""
    out: dict[int, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        m = _ZK_HASH_LINE.match(line)
        if m:
            out[int(m.group(1), 16)] = m.group(2)
            continue
        kv = _KV_HASH_LINE.search(line)
        if kv:
            z = kv.group("zxid") or kv.group("zxid2")
            d = kv.group("digest") or kv.group("digest2")
            out[_int_any(z)] = d
            continue
        p = _PAIR_HASH_LINE.match(line)
        if p:
            a, b = p.group(1), p.group(2)
            if a.lower().startswith("0x") and not b.lower().startswith("0x"):
                a, b = b, a  # "<zxid 0x..> <digest>"
            out[_int_any(b)] = a
    return out


def digests_from_mntr(mntr: Mapping[str, str]) -> dict[int, str]:
    """The digest at the last zxid from ``mntr``, if the server reports it: zkernel's
    ``zk_tree_digest`` at ``zk_tree_digest_zxid`` (also accepted: ``zk_digest`` at
    ``zk_digest_zxid``).  mntr numbers are decimal unless written ``0x..``."""
    for dkey, zkey in (("zk_tree_digest", "zk_tree_digest_zxid"),
                       ("zk_digest", "zk_digest_zxid")):
        d, z = mntr.get(dkey), mntr.get(zkey)
        if d is not None and z is not None:
            try:
                return {int(z, 0) if z.lower().startswith("0x") else int(z): d}
            except ValueError:
                return {}
    return {}


@dataclass
class DigestReport:
    """What one server says about its tree digest."""

    index: int
    zxid: int  # last processed zxid (srvr)
    digests: dict[int, str] = field(default_factory=dict)  # zxid -> digest


# --------------------------------------------------------------------------- servers
@dataclass
class Member:
    """One server of the ensemble."""

    index: int
    workdir: Path
    client_port: int
    quorum_port: int
    election_port: int
    proc: subprocess.Popen[bytes] | None = None
    stopped: bool = False  # SIGSTOPped

    @property
    def sid(self) -> int:
        return self.index + 1

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def cfg_path(self) -> Path:
        return self.workdir / "zoo.cfg"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def connect_string(self) -> str:
        return f"{LOOPBACK}:{self.client_port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, n: int = 30) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


class Ensemble:
    """N servers on 127.0.0.1 with controllable peer links.  See the module docstring.

    ``timers``: tickTime/initLimit/syncLimit (default :data:`TEST_TIMERS`); ``cfg``: more
    zoo.cfg keys for every server; ``proxied=False`` lists the real peer ports (no link
    control, as a benchmark wants); ``data_log_dir=True`` gives each server a separate
    ``dataLogDir``; ``heap_mb``/``jvm_flags`` for ZooKeeper, ``zkernel_args`` for zkernel;
    ``keep=True`` leaves the work dir (logs, data) in place after :meth:`close`.
    """

    def __init__(
        self,
        size: int,
        workdir: Path | None = None,
        *,
        kind: str | None = None,
        proxied: bool = True,
        timers: Mapping[str, object] | None = None,
        cfg: Mapping[str, object] | None = None,
        heap_mb: int = 256,
        jvm_flags: Sequence[str] = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"),
        zkernel_args: Sequence[str] = ("--log-level", "INFO"),
        data_log_dir: bool = False,
        keep: bool = False,
    ) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self.size = size
        self.kind = kind or target_kind()
        if self.kind not in ("zkernel", "zookeeper"):
            raise ValueError(f"unknown server kind {self.kind!r}")
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="zk-ensemble-")) if workdir is None \
            else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proxied = proxied and size > 1
        self.timers = dict(TEST_TIMERS if timers is None else timers)
        self.extra_cfg = dict(cfg or {})
        self.heap_mb = heap_mb
        self.jvm_flags = list(jvm_flags)
        self.zkernel_args = list(zkernel_args)
        self.data_log_dir = data_log_dir
        self.keep = keep
        self.members: list[Member] = []
        self.hub: ProxyHub | None = None
        # links[(i, j)] = [quorum proxy, election proxy] for i dialing j
        self.links: dict[tuple[int, int], tuple[LinkProxy, LinkProxy]] = {}
        self._closed = False
        _LIVE.add(self)
        taken: set[int] = set()
        for i in range(size):
            ports = [reserve_port(taken) for _ in range(3)]
            wd = self.workdir / f"server{i + 1}"
            self.members.append(Member(i, wd, client_port=ports[0], quorum_port=ports[1],
                                       election_port=ports[2]))
        if self.proxied:
            self.hub = ProxyHub()
            for i in range(size):
                for j in range(size):
                    if i != j:
                        mj = self.members[j]
                        self.links[(i, j)] = (
                            self.hub.add(f"{i + 1}->{j + 1} quorum", mj.quorum_port),
                            self.hub.add(f"{i + 1}->{j + 1} election", mj.election_port),
                        )

    # ------------------------------------------------------------------ configuration
    def peer_ports(self, i: int, j: int) -> tuple[int, int]:
        """The (quorum, election) ports server i dials to reach server j."""
        if i == j or not self.proxied:
            m = self.members[j]
            return m.quorum_port, m.election_port
        q, e = self.links[(i, j)]
        return q.listen_port, e.listen_port

    def config_lines(self, i: int) -> list[str]:
        """The zoo.cfg of server i, line by line."""
        m = self.members[i]
        cfg: dict[str, object] = dict(self.timers)
        cfg.update({
            "dataDir": m.data_dir,
            **({"dataLogDir": m.workdir / "datalog"} if self.data_log_dir else {}),
            "clientPort": m.client_port,
            "clientPortAddress": LOOPBACK,
            "maxClientCnxns": 0,
            "4lw.commands.whitelist": "*",
            # kazoo asks for 10 s; keep it (the default max is 20 ticks = 5 s here).
            "maxSessionTimeout": 30000,
        })
        if self.kind == "zookeeper":
            cfg["admin.enableServer"] = "false"
            cfg["autopurge.purgeInterval"] = 0
        cfg.update(self.extra_cfg)
        lines = [f"{k}={v}" for k, v in cfg.items()]
        if self.size > 1:
            for j in range(self.size):
                q, e = self.peer_ports(i, j)
                lines.append(f"server.{j + 1}={LOOPBACK}:{q}:{e}")
        return lines

    def write_config(self, i: int) -> Path:
        m = self.members[i]
        m.data_dir.mkdir(parents=True, exist_ok=True)
        if self.data_log_dir:
            (m.workdir / "datalog").mkdir(parents=True, exist_ok=True)
        if self.size > 1:
            (m.data_dir / "myid").write_text(f"{m.sid}\n")
        m.cfg_path.write_text("".join(line + "\n" for line in self.config_lines(i)))
        return m.cfg_path

    def command(self, i: int) -> list[str]:
        cfg = str(self.members[i].cfg_path)
        if self.kind == "zkernel":
            return [sys.executable, "-m", "kernel", "serve", "--config", cfg, *self.zkernel_args]
        java = shutil.which("java")
        if java is None or not (ZK_JAR_DIR / "zookeeper.jar").exists():
            raise RuntimeError("Apache ZooKeeper is not installed (apt-get install zookeeper)")
        jars = ["zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar", "slf4j-simple.jar",
                "netty-all.jar", "commons-cli.jar", "jline.jar", "snappy-java.jar",
                "metrics-core.jar"]
        cp = ":".join(str(ZK_JAR_DIR / j) for j in jars if (ZK_JAR_DIR / j).exists())
        main = "org.apache.zookeeper.server.quorum.QuorumPeerMain" if self.size > 1 \
            else "org.apache.zookeeper.server.ZooKeeperServerMain"
        return [java, f"-Xmx{self.heap_mb}m", *self.jvm_flags,
                f"-Dzookeeper.log.dir={self.members[i].workdir}",
                "-Dorg.slf4j.simpleLogger.showDateTime=true",
                "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
                "-cp", cp, main, cfg]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.kind == "zkernel":
            env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        return env

    # ------------------------------------------------------------------ lifecycle
    def launch(self, i: int) -> None:
        """Start server i (without waiting); it keeps its data dir."""
        m = self.members[i]
        if m.alive:
            raise RuntimeError(f"server {i} is already running")
        m.workdir.mkdir(parents=True, exist_ok=True)
        self.write_config(i)
        with open(m.log_path, "ab") as log:
            log.write(f"---- launch {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            m.proc = subprocess.Popen(
                self.command(i), stdout=log, stderr=subprocess.STDOUT, cwd=m.workdir,
                env=self.env(), start_new_session=True, stdin=subprocess.DEVNULL)
        m.stopped = False

    def start(self, timeout: float = 60.0) -> Ensemble:
        """Launch every server and wait until the ensemble serves (one leader, the rest
        followers).  On failure everything is stopped and the error shows the log tails."""
        try:
            for i in range(self.size):
                self.launch(i)
            self.wait_serving(timeout)
        except BaseException:
            self.close()
            raise
        return self

    def running(self) -> list[int]:
        """Indices of servers that are alive and not SIGSTOPped."""
        return [m.index for m in self.members if m.alive and not m.stopped]

    def _send(self, i: int, sig: int) -> None:
        m = self.members[i]
        if m.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(m.pid, sig)

    def kill(self, i: int) -> float:
        """SIGKILL server i and reap it; returns the monotonic time of the kill."""
        m = self.members[i]
        t = time.monotonic()
        self._send(i, signal.SIGKILL)
        if m.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                m.proc.wait(10)
        m.stopped = False
        return t

    def stop(self, i: int) -> None:
        """SIGSTOP server i (it keeps its sockets but answers nothing)."""
        self._send(i, signal.SIGSTOP)
        self.members[i].stopped = True

    def cont(self, i: int) -> None:
        """SIGCONT server i."""
        self._send(i, signal.SIGCONT)
        self.members[i].stopped = False

    def terminate(self, i: int, timeout: float = 10.0) -> None:
        """Stop server i gracefully (SIGTERM, SIGKILL after ``timeout``)."""
        m = self.members[i]
        if not m.alive:
            return
        self.cont(i)
        self._send(i, signal.SIGTERM)
        try:
            assert m.proc is not None
            m.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(i)

    def restart(self, i: int, timeout: float = 60.0, graceful: bool = False) -> None:
        """Kill (or terminate) server i, start it again on its data, wait until it serves."""
        if graceful:
            self.terminate(i)
        else:
            self.kill(i)
        self.launch(i)
        self.wait_member_serving(i, timeout)

    def close(self) -> None:
        """Kill every server, close the proxies, remove the work dir (unless ``keep``)."""
        if self._closed:
            return
        self._closed = True
        for m in self.members:
            if m.alive:
                self._send(m.index, signal.SIGCONT)
                self._send(m.index, signal.SIGKILL)
        for m in self.members:
            if m.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    m.proc.wait(10)
        if self.hub is not None:
            self.hub.close()
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Ensemble:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ observation
    def connect_string(self, indices: Iterable[int] | None = None) -> str:
        idx = range(self.size) if indices is None else indices
        return ",".join(self.members[i].connect_string for i in idx)

    def four_letter_word(self, i: int, word: str, timeout: float = 3.0) -> str:
        return four_letter_word(self.members[i].client_port, word, timeout)

    def mode(self, i: int, timeout: float = 1.0) -> str | None:
        """Server i's ``Mode:`` from ``srvr``, None if it does not serve or answer."""
        m = self.members[i]
        if not m.alive or m.stopped:
            return None
        try:
            return parse_mode(self.four_letter_word(i, "srvr", timeout))
        except OSError:
            return None

    def modes(self, indices: Iterable[int] | None = None) -> dict[int, str | None]:
        idx = self.running() if indices is None else list(indices)
        return {i: self.mode(i) for i in idx}

    def zxid(self, i: int, timeout: float = 1.0) -> int | None:
        try:
            return parse_zxid(self.four_letter_word(i, "srvr", timeout))
        except OSError:
            return None

    def leader(self, timeout: float = 30.0, among: Iterable[int] | None = None) -> int:
        """The index of the server whose ``srvr`` says ``Mode: leader``; waits until
        exactly one of ``among`` (default: every running server) does."""
        deadline = time.monotonic() + timeout
        last: dict[int, str | None] = {}
        while True:
            idx = self.running() if among is None else list(among)
            last = self.modes(idx)
            leaders = [i for i, mode in last.items() if mode == "leader"]
            if len(leaders) == 1:
                return leaders[0]
            if time.monotonic() >= deadline:
                raise AssertionError(f"no single leader after {timeout}s: modes {last}\n"
                                     + self.describe() + "\n" + self.log_tails())
            time.sleep(0.05)

    def followers(self, among: Iterable[int] | None = None) -> list[int]:
        """Indices of the servers that currently report ``Mode: follower``."""
        return [i for i, mode in self.modes(among).items() if mode == "follower"]

    def wait_serving(self, timeout: float = 60.0, among: Iterable[int] | None = None) -> int:
        """Wait until every server of ``among`` (default: every running one) serves --
        exactly one leader, all the others followers (one server alone: standalone).
        Returns the leader's index (or the standalone server's)."""
        deadline = time.monotonic() + timeout
        last: dict[int, str | None] = {}
        while True:
            for m in self.members:
                if m.proc is not None and not m.alive and m.proc.returncode not in (
                        -signal.SIGKILL, -signal.SIGTERM):
                    raise RuntimeError(f"server {m.index} exited with {m.proc.returncode}:\n"
                                       f"{m.log_tail()}")
            idx = self.running() if among is None else list(among)
            last = self.modes(idx)
            values = list(last.values())
            if self.size == 1 and values == ["standalone"]:
                return idx[0]
            if values.count("leader") == 1 and values.count("follower") == len(values) - 1:
                return next(i for i, mode in last.items() if mode == "leader")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{self.kind} ensemble not serving after {timeout}s: "
                                   f"modes {last}\n{self.log_tails()}")
            time.sleep(0.05)

    def wait_member_serving(self, i: int, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            mode = self.mode(i)
            if mode in ("leader", "follower", "standalone"):
                return mode
            m = self.members[i]
            if not m.alive:
                raise RuntimeError(f"server {i} exited:\n{m.log_tail()}")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"server {i} not serving after {timeout}s\n{m.log_tail()}")
            time.sleep(0.05)

    def wait_not_serving(self, i: int, timeout: float = 30.0) -> float:
        """Wait until server i stops serving (srvr shows no Mode); returns the time taken."""
        t0 = time.monotonic()
        while self.mode(i) is not None:
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"server {i} still serving after {timeout}s "
                                     f"(mode {self.mode(i)})")
            time.sleep(0.05)
        return time.monotonic() - t0

    def describe(self) -> str:
        """Modes, last zxids, cut links and proxy connection counts: for failure messages."""
        lines = []
        for m in self.members:
            state = "stopped" if m.stopped else ("up" if m.alive else "dead")
            z = self.zxid(m.index) if m.alive and not m.stopped else None
            lines.append(f"server {m.index} (sid {m.sid}, {state}): mode {self.mode(m.index)}, "
                         f"zxid {z and hex(z)}, log {m.log_path}")
        cut = sorted({(i, j) for (i, j), ps in self.links.items() if any(p.is_cut for p in ps)})
        if self.proxied:
            lines.append(f"cut links (i dials j): {cut or 'none'}")
        return "\n".join(lines)

    def log_tails(self, n: int = 15) -> str:
        return "\n".join(f"---- server {m.index} (sid {m.sid}) {m.log_path}\n{m.log_tail(n)}"
                         for m in self.members)

    # ------------------------------------------------------------------ links
    def set_links(self, cuts: Mapping[tuple[int, int], bool]) -> None:
        """Cut (True) or heal (False) directed links ``(i, j)`` (i dialing j, both ports),
        all in one step."""
        if not self.proxied or self.hub is None:
            raise RuntimeError("this ensemble was started with proxied=False")
        self.hub.set_cut([(p, cut) for link, cut in cuts.items() for p in self.links[link]])

    def cut(self, i: int, j: int) -> None:
        """Cut the links between i and j in both directions (both ports)."""
        self.set_links({(i, j): True, (j, i): True})

    def partition(self, groups: Sequence[Iterable[int]]) -> None:
        """Split the ensemble: servers in different groups cannot reach each other; links
        inside a group are healed.  Servers in no group are isolated from everyone."""
        group_of: dict[int, int] = {}
        for g, members in enumerate(groups):
            for i in members:
                group_of[i] = g
        self.set_links({(i, j): group_of.get(i, -1 - i) != group_of.get(j, -1 - j)
                        for (i, j) in self.links})

    def isolate(self, i: int) -> None:
        self.partition([[i], [j for j in range(self.size) if j != i]])

    def heal(self) -> None:
        self.set_links({link: False for link in self.links})

    # ------------------------------------------------------------------ digests
    def digest_report(self, i: int) -> DigestReport:
        srvr = self.four_letter_word(i, "srvr")
        zxid = parse_zxid(srvr)
        if zxid is None:
            raise AssertionError(f"server {i} does not serve: {srvr!r}")
        digests = parse_hash(self.four_letter_word(i, "hash"))
        try:
            digests.update(digests_from_mntr(parse_mntr(self.four_letter_word(i, "mntr"))))
        except OSError:
            pass
        return DigestReport(i, zxid, digests)

    def wait_same_zxid(self, timeout: float = 30.0,
                       among: Iterable[int] | None = None) -> int:
        """Wait until every server of ``among`` reports the same last zxid twice in a row."""
        deadline = time.monotonic() + timeout
        prev: dict[int, int | None] = {}
        while True:
            idx = self.running() if among is None else list(among)
            cur = {i: self.zxid(i) for i in idx}
            values = set(cur.values())
            if len(values) == 1 and None not in values and cur == prev:
                return next(iter(values))  # type: ignore[return-value]
            if time.monotonic() >= deadline:
                raise AssertionError(f"servers disagree on the last zxid after {timeout}s: "
                                     + ", ".join(f"{i}: {z and hex(z)}" for i, z in cur.items())
                                     + "\n" + self.describe() + "\n" + self.log_tails(25))
            prev = cur
            time.sleep(0.1)

    def check_digests(self, pad: Callable[[int], None] | None = None,
                      timeout: float = 30.0, among: Iterable[int] | None = None
                      ) -> tuple[int, str]:
        """Assert that every server reports the same tree digest at the same (last) zxid.

        Waits for the servers to agree on their last zxid.  A server that logs digests only
        at some zxids (Apache ZooKeeper: multiples of 128) may have no entry for it: then
        ``pad(n)`` (n writes, e.g. setData through a client) brings the last zxid to the
        next multiple of 128, and the check repeats (a few times at most).  Every zxid
        that two servers both report must carry the same digest.  Returns (zxid, digest)."""
        idx = self.running() if among is None else list(among)
        reports: list[DigestReport] = []
        for _ in range(6):
            zxid = self.wait_same_zxid(timeout, idx)
            reports = [self.digest_report(i) for i in idx]
            if any(r.zxid != zxid for r in reports):
                continue  # moved under us (a session expiry): look again
            if all(zxid in r.digests for r in reports):
                self._compare(reports)
                return zxid, reports[0].digests[zxid]
            if pad is None:
                break
            pad((-zxid) % ZK_DIGEST_LOG_INTERVAL or ZK_DIGEST_LOG_INTERVAL)
        raise AssertionError(
            "no digest at a common last zxid: "
            + "; ".join(f"server {r.index} zxid {r.zxid:#x} logged "
                        f"{[hex(z) for z in sorted(r.digests)[-3:]]}" for r in reports))

    @staticmethod
    def _compare(reports: Sequence[DigestReport]) -> None:
        problems = []
        for a in reports:
            for b in reports:
                if a.index >= b.index:
                    continue
                for z in sorted(set(a.digests) & set(b.digests)):
                    if a.digests[z] != b.digests[z]:
                        problems.append(f"zxid {z:#x}: server {a.index} {a.digests[z]} != "
                                        f"server {b.index} {b.digests[z]}")
        if problems:
            raise AssertionError("tree digests differ:\n" + "\n".join(problems))


@contextlib.contextmanager
def ensemble(size: int, workdir: Path | None = None, **kw: Any) -> Iterator[Ensemble]:
    """``with ensemble(3, tmp_path) as ens:`` -- started, and always torn down."""
    ens = Ensemble(size, workdir, **kw)
    try:
        ens.start()
        yield ens
    finally:
        ens.close()


# --------------------------------------------------------------------------- client load
@dataclass
class Ack:
    """One write the server acknowledged: the znode name, when it was sent and answered."""

    name: str
    sent: float  # time.monotonic()
    acked: float


def kazoo_client(hosts: str, timeout: float = 10.0, randomize: bool = False) -> Any:
    """A kazoo client that reconnects fast (every 50-200 ms) and never retries commands."""
    from kazoo.client import KazooClient
    from kazoo.retry import KazooRetry

    return KazooClient(
        hosts=hosts, timeout=timeout, randomize_hosts=randomize,
        connection_retry=KazooRetry(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.2,
                                    ignore_expire=False),
    )


class WriteLoad:
    """A few writer threads, each with its own kazoo session, creating sequential znodes
    ``<root>/w<k>-NNNNNNNNNN`` as fast as they are acknowledged (optionally paced).

    Every acknowledged create is recorded (:attr:`acks`); a write whose outcome is unknown
    (connection loss, timeout, expired session) is only counted in :attr:`errors`.  Writer
    ``k`` lists the servers starting at ``k`` so the writers spread over the ensemble.
    Bounded: each writer stops after ``max_writes`` writes or ``max_seconds``, whichever
    comes first, and :meth:`stop` joins them."""

    def __init__(self, ens: Ensemble, root: str = "/load", writers: int = 3,
                 max_writes: int = 5000, max_seconds: float = 120.0, pause: float = 0.0,
                 op_timeout: float = 3.0, session_timeout: float = 8.0) -> None:
        import threading

        self.ens = ens
        self.root = root
        self.n = writers
        self.max_writes = max_writes
        self.max_seconds = max_seconds
        self.pause = pause
        self.op_timeout = op_timeout
        self.session_timeout = session_timeout
        self.acks: list[Ack] = []
        self.errors: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._clients: list[Any] = []

    def start(self) -> WriteLoad:
        import threading

        setup = kazoo_client(self.ens.connect_string(self.ens.running()))
        setup.start(timeout=20)
        try:
            setup.ensure_path(self.root)
        finally:
            setup.stop()
            setup.close()
        order = list(range(self.ens.size))
        for k in range(self.n):
            hosts = self.ens.connect_string(order[k % len(order):] + order[:k % len(order)])
            zk = kazoo_client(hosts, timeout=self.session_timeout)
            zk.start(timeout=20)
            self._clients.append(zk)
            t = threading.Thread(target=self._run, args=(k, zk), name=f"writer-{k}",
                                 daemon=True)
            self._threads.append(t)
        for t in self._threads:
            t.start()
        return self

    def _run(self, k: int, zk: Any) -> None:
        deadline = time.monotonic() + self.max_seconds
        prefix = f"{self.root}/w{k}-"
        for _ in range(self.max_writes):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            sent = time.monotonic()
            try:
                path = zk.create_async(prefix, b"x", sequence=True).get(timeout=self.op_timeout)
            except Exception as e:  # noqa: BLE001 - outcome unknown: not recorded
                with self._lock:
                    name = type(e).__name__
                    self.errors[name] = self.errors.get(name, 0) + 1
                self._stop.wait(0.05)
                continue
            with self._lock:
                self.acks.append(Ack(path.rsplit("/", 1)[1], sent, time.monotonic()))
            if self.pause:
                self._stop.wait(self.pause)

    def count(self) -> int:
        with self._lock:
            return len(self.acks)

    def wait_acks(self, n: int, timeout: float = 30.0, after: float | None = None) -> float:
        """Wait until ``n`` more writes than now (or, with ``after``, ``n`` writes sent at
        or after that monotonic time) are acknowledged; returns the time waited."""
        t0 = time.monotonic()
        base = 0 if after is not None else self.count()
        while True:
            with self._lock:
                got = sum(1 for a in self.acks if a.sent >= after) if after is not None \
                    else len(self.acks) - base
            if got >= n:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"only {got}/{n} writes acknowledged in {timeout}s "
                                     f"(errors {self.errors})\n{self.ens.log_tails()}")
            if not any(t.is_alive() for t in self._threads):
                raise AssertionError(f"writers finished after {got}/{n} writes "
                                     f"(errors {self.errors})")
            time.sleep(0.01)

    def first_ack_after(self, t: float, timeout: float = 30.0) -> float:
        """Seconds from monotonic time ``t`` (e.g. a SIGKILL) to the first acknowledged
        write that was *sent* at or after ``t``."""
        self.wait_acks(1, timeout, after=t)
        with self._lock:
            return min(a.acked for a in self.acks if a.sent >= t) - t

    def acked_names(self) -> set[str]:
        with self._lock:
            return {a.name for a in self.acks}

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.op_timeout + 5)
        for zk in self._clients:
            with contextlib.suppress(Exception):
                zk.stop()
            with contextlib.suppress(Exception):
                zk.close()
        self._clients.clear()

    def __enter__(self) -> WriteLoad:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def read_children_everywhere(ens: Ensemble, root: str,
                             among: Iterable[int] | None = None) -> dict[int, set[str]]:
    """``root``'s children as each server sees them, read through a client connected to
    that server alone, after ``sync(root)``."""
    out: dict[int, set[str]] = {}
    for i in (ens.running() if among is None else list(among)):
        zk = kazoo_client(ens.members[i].connect_string)
        zk.start(timeout=20)
        try:
            zk.sync(root)
            out[i] = set(zk.get_children(root))
        finally:
            zk.stop()
            zk.close()
    return out


def assert_writes_everywhere(ens: Ensemble, root: str, acked: set[str],
                             among: Iterable[int] | None = None) -> int:
    """Every acknowledged write is on every server, and all servers hold the same
    children of ``root``.  Returns how many children there are."""
    seen = read_children_everywhere(ens, root, among)
    problems = []
    lacking = {i: acked - names for i, names in seen.items() if acked - names}
    sets = list(seen.values())
    if not lacking and all(s == sets[0] for s in sets[1:]):
        return len(sets[0]) if sets else 0
    # Tell a read that missed committed writes after sync (late) from a lost write.
    time.sleep(2.0)
    later = read_children_everywhere(ens, root, lacking or None)
    for i, missing in lacking.items():
        still = missing - later.get(i, set())
        problems.append(
            f"server {i}: after sync({root}) its read lacked {len(missing)} acknowledged "
            f"writes, e.g. {sorted(missing)[:5]}; 2 s later "
            + (f"{len(still)} are still missing (lost?)" if still
               else "all of them are there (sync did not wait for them)"))
    if any(s != sets[0] for s in sets[1:]):
        problems.append("servers hold different children after sync: "
                        + ", ".join(f"{i}: {len(s)}" for i, s in seen.items()))
    raise AssertionError("\n".join(problems))


def check_digests_with_client(ens: Ensemble, among: Iterable[int] | None = None,
                              pad_path: str = "/digest-pad") -> tuple[int, str]:
    """:meth:`Ensemble.check_digests`, padding with setData on ``pad_path`` when needed."""
    idx = ens.running() if among is None else list(among)
    zk = kazoo_client(ens.connect_string(idx))
    zk.start(timeout=20)
    try:
        zk.ensure_path(pad_path)

        def pad(n: int) -> None:
            for _ in range(n):
                zk.set(pad_path, b"")

        return ens.check_digests(pad, among=idx)
    finally:
        zk.stop()
        zk.close()
