"""Drive the stock ZooKeeper clients (Java library, C library, cli_mt, zkCli.sh) from tests.

Two small script drivers live in ``tests/clients``: ``java/ZkScript.java`` (the Java client
``org.apache.zookeeper.ZooKeeper``) and ``c/zkscript.c`` (``libzookeeper_mt``). Both read
commands from stdin, one per line, execute them in order, and print one JSON object per line:

* one **result** per command: ``{"s": session, "n": k, "label": ..., "cmd": ..., "ok": true,
  ...values}`` or ``{"ok": false, "err": "NONODE", "code": -101}`` (``"client": true`` in the C
  driver when the library refused the call before sending it);
* one **event** per watch/session notification the client delivers:
  ``{"s": session, "event": "NodeCreated", "state": ..., "path": ..., "w": watcher}``.

Both drivers use the clients' asynchronous APIs, so a session's results and events come out of
one client thread in the order the client read them off the wire.

Script syntax: ``[label:] [@session] command args... [key=value ...]``; blanks separate tokens,
double quotes group, ``~`` as data is a null buffer, ``""`` is empty data.

Commands (both drivers unless marked J = Java only):

===================================  ===========================================================
``connect NAME [cs=H:P] [timeout=MS]  new session (becomes current); ``session=OTHER`` reuses
[session=OTHER [badpw]]``             OTHER's id+password (``badpw`` flips a password byte)
``use NAME`` / ``@NAME cmd``          switch current session / run one command on NAME
``create PATH DATA MODE [acl=] [ttl=]``  create (path only; Java TTL modes use the create2 API)
``create2 PATH DATA MODE [acl=] [ttl=]`` create returning path + stat
``delete PATH [VERSION]``
``exists|get|ls|ls2 PATH [watch|watch=NAME]``  ``watch`` = default watcher, ``watch=NAME`` = a
                                      named watcher (events carry ``"w": NAME``)
``set PATH DATA [VERSION]``
``getacl PATH`` / ``setacl PATH ACL [VERSION]``  ACL = ``open`` | ``read`` | ``creator`` |
                                      ``scheme:id:perms[,...]`` (perms like ``cdrwa``)
``sync PATH`` / ``addauth SCHEME AUTH`` / ``session`` / ``close``
``multi OP | OP | ...``               OP = create/delete/set/check (+ get/ls in Java: multiRead)
``count PATH`` (J)                    getAllChildrenNumber
``ephemerals [PREFIX]`` (J)           getEphemerals
``whoami`` (J)
``addwatch PATH PERSISTENT|PERSISTENT_RECURSIVE [watch=NAME]`` (J)
``removewatches PATH WATCHER TYPE [local]`` (J)  TYPE = children|data|any
``removeallwatches PATH TYPE [local]``
``wait_event SESS TYPE PATH|- [MS]``  wait for (and consume) a matching event
``wait_state SESS STATE [MS]``        wait for a connection-state event (Java: SyncConnected,
                                      Disconnected, Expired; C: Connected, Connecting, Expired)
``sleep MS`` / ``echo TEXT``
===================================  ===========================================================
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import re
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

# KeeperException codes, shared with the raw wire client (re-exported for the driver tests).
from tests.integration.wire import (  # noqa: F401
    BAD_ARGUMENTS,
    BAD_VERSION,
    INVALID_ACL,
    MARSHALLING_ERROR,
    NO_AUTH,
    NO_CHILDREN_FOR_EPHEMERALS,
    NO_NODE,
    NO_WATCHER,
    NODE_EXISTS,
    NOT_EMPTY,
    OK,
    RUNTIME_INCONSISTENCY,
    UNIMPLEMENTED,
)

REPO = Path(__file__).resolve().parents[2]
CLIENTS = REPO / "tests" / "clients"
JAR_DIR = Path("/usr/share/java")
ZK_INCLUDE = Path("/usr/include/zookeeper")
CLI_MT = Path("/usr/lib/zookeeper/bin/cli_mt")
ZKCLI = Path("/usr/share/zookeeper/bin/zkCli.sh")

TARGET_IS_ZOOKEEPER = os.environ.get("ZK_TEST_TARGET") == "zookeeper"



def digest(user: str, password: str) -> str:
    """The digest ACL id for ``user:password`` (``user:BASE64(SHA1(user:password))``)."""
    h = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(h).decode()}"


# ---------------------------------------------------------------------------------------------
# Transcripts and running processes


class Transcript:
    """Everything a script driver printed, in order."""

    def __init__(self, records: list[dict[str, Any]], stderr: str = "") -> None:
        self.records = records
        self.stderr = stderr

    @property
    def results(self) -> list[dict[str, Any]]:
        return [r for r in self.records if "cmd" in r]

    def events(self, session: str | None = None, *, states: bool = False) -> list[dict[str, Any]]:
        """Watch events (connection-state events only with ``states=True``)."""
        return [
            r for r in self.records
            if "event" in r and "cmd" not in r
            and (session is None or r["s"] == session)
            and (states or r["event"] != "None")
        ]

    def event_list(self, session: str | None = None) -> list[tuple[str, str]]:
        """``[(type, path), ...]`` of the watch events of one session."""
        return [(e["event"], e["path"]) for e in self.events(session)]

    def __getitem__(self, label: str) -> dict[str, Any]:
        found = [r for r in self.results if r.get("label") == label]
        assert len(found) == 1, f"label {label!r} matched {len(found)} results:\n{self.dump()}"
        return found[0]

    def ok(self, label: str) -> dict[str, Any]:
        r = self[label]
        assert r["ok"] is True, f"{label}: expected success, got {r}\n{self.dump()}"
        return r

    def err(self, label: str) -> int:
        r = self[label]
        assert r["ok"] is False and "code" in r, f"{label}: expected an error, got {r}"
        return int(r["code"])

    def index(self, label: str) -> int:
        """Position of a result among all records (to check ordering against events)."""
        return self.records.index(self[label])

    def event_index(self, session: str, event: str, path: str | None) -> int:
        for i, r in enumerate(self.records):
            if ("cmd" not in r and r.get("s") == session and r.get("event") == event
                    and r.get("path") == path):
                return i
        raise AssertionError(f"no event {event} {path} for {session}:\n{self.dump()}")

    def events_between(self, first: str, second: str) -> list[tuple[str, str]]:
        """Watch events printed after result ``first`` and before result ``second``."""
        return [(r["event"], r["path"]) for r in self.records[self.index(first) + 1:
                                                              self.index(second)]
                if "event" in r and "cmd" not in r and r["event"] != "None"]

    def all_ok(self) -> None:
        bad = [r for r in self.results if r.get("ok") is not True and "label" not in r]
        assert not bad, f"unlabelled commands failed: {bad}\n{self.dump()}"

    def dump(self) -> str:
        return "\n".join(json.dumps(r) for r in self.records) + (
            f"\n--- stderr ---\n{self.stderr[-3000:]}" if self.stderr.strip() else "")


def _count_commands(lines: Iterable[str]) -> int:
    return sum(1 for ln in lines if ln.strip() and not ln.strip().startswith("#"))


class ScriptProcess:
    """A running driver fed line by line (for tests that act between commands)."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            env=env, text=True, bufsize=1, start_new_session=True,
        )
        self.records: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._sent = 0
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                rec = {"raw": line}
            with self._cond:
                self.records.append(rec)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def send(self, *lines: str) -> None:
        assert self.proc.stdin is not None
        for ln in lines:
            self.proc.stdin.write(ln + "\n")
            self._sent += _count_commands([ln])
        self.proc.stdin.flush()

    def wait_result(self, n: int, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for r in self.records:
                    if "cmd" in r and r.get("n") == n:
                        return r
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    raise AssertionError(
                        f"no result #{n} (eof={self._eof}):\n{self.transcript().dump()}")
                self._cond.wait(left)

    def call(self, line: str, timeout: float = 60.0) -> dict[str, Any]:
        """Send one command and wait for its result."""
        self.send(line)
        return self.wait_result(self._sent, timeout)

    def sync(self, timeout: float = 60.0) -> None:
        """Wait until every command sent so far has its result."""
        if self._sent:
            self.wait_result(self._sent, timeout)

    def transcript(self) -> Transcript:
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace")
        with self._cond:
            return Transcript(list(self.records), err)

    def finish(self, timeout: float = 60.0) -> Transcript:
        """Close stdin (the driver closes its sessions and exits) and return everything."""
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._reader.join(10)
        t = self.transcript()
        assert self.proc.returncode == 0, f"driver exited {self.proc.returncode}:\n{t.dump()}"
        assert len(t.results) == self._sent, (
            f"{self._sent} commands but {len(t.results)} results:\n{t.dump()}")
        return t

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait(10)

    def __enter__(self) -> ScriptProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        self._stderr.close()


class Driver:
    """A compiled script driver."""

    def __init__(self, argv_prefix: list[str], env: dict[str, str] | None = None) -> None:
        self.argv_prefix = argv_prefix
        self.env = env

    def start(self, connect_string: str) -> ScriptProcess:
        return ScriptProcess([*self.argv_prefix, connect_string], self.env)

    def run(self, connect_string: str, lines: Iterable[str], timeout: float = 90.0) -> Transcript:
        """Run a whole script and return its transcript (the process is always reaped)."""
        with self.start(connect_string) as p:
            p.send(*lines)
            return p.finish(timeout)


# ---------------------------------------------------------------------------------------------
# Building the drivers (once per session)


def _java_classpath() -> list[Path]:
    jars = [JAR_DIR / "zookeeper.jar", JAR_DIR / "zookeeper-jute.jar", JAR_DIR / "slf4j-api.jar"]
    for logger in ("slf4j-nop.jar", "slf4j-simple.jar"):
        if (JAR_DIR / logger).exists():
            jars.append(JAR_DIR / logger)
            break
    return jars


def build_java_driver(tmp_path_factory: pytest.TempPathFactory) -> Driver:
    java, javac = shutil.which("java"), shutil.which("javac")
    jars = _java_classpath()
    if java is None or javac is None:
        pytest.skip("java/javac not installed")
    missing = [str(j) for j in jars if not j.exists()]
    if missing:
        pytest.skip(f"Java ZooKeeper client jars missing: {missing}")
    out = tmp_path_factory.mktemp("java-driver")
    cp = ":".join(str(j) for j in jars)
    proc = subprocess.run(
        [javac, "-encoding", "UTF-8", "-cp", cp, "-d", str(out),
         str(CLIENTS / "java" / "ZkScript.java")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"javac failed:\n{proc.stdout}\n{proc.stderr}"
    return Driver([java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto",
                   "-Xmx256m", "-cp", f"{out}:{cp}", "ZkScript"])


def build_c_driver(tmp_path_factory: pytest.TempPathFactory) -> Driver:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    if not (ZK_INCLUDE / "zookeeper.h").exists():
        pytest.skip("ZooKeeper C headers missing (libzookeeper-mt-dev)")
    out = tmp_path_factory.mktemp("c-driver") / "zkscript"
    proc = subprocess.run(
        [cc, "-O1", "-Wall", "-DTHREADED", f"-I{ZK_INCLUDE}", "-o", str(out),
         str(CLIENTS / "c" / "zkscript.c"), "-lzookeeper_mt", "-lpthread"],
        capture_output=True, text=True, timeout=120,
    )
    if proc.returncode != 0 and "lzookeeper_mt" in proc.stderr:
        pytest.skip(f"libzookeeper_mt not linkable:\n{proc.stderr}")
    assert proc.returncode == 0, f"gcc failed:\n{proc.stdout}\n{proc.stderr}"
    return Driver([str(out)])


# ---------------------------------------------------------------------------------------------
# Stock command-line clients


class ExpectProcess:
    """A CLI fed on stdin whose combined output is matched with regular expressions."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.output = ""
        self._pos = 0
        self._q: queue.Queue[bytes | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            b = self.proc.stdout.read1(65536)  # type: ignore[attr-defined]
            if not b:
                self._q.put(None)
                return
            self._q.put(b)

    def _pump(self, timeout: float) -> bool:
        try:
            b = self._q.get(timeout=timeout)
        except queue.Empty:
            return True
        if b is None:
            self._q.put(None)
            return False
        self.output += b.decode(errors="replace")
        return True

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def expect(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait for ``pattern`` in the output after the previous match; returns the match."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.output, self._pos)
            if m:
                self._pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0 or not self._pump(min(left, 0.2)):
                raise AssertionError(f"{pattern!r} not seen; output so far:\n{self.output}")

    def finish(self, timeout: float = 30.0) -> str:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        finally:
            self.kill()
        while self._pump(0.05):
            if self._q.empty() and self.proc.poll() is not None:
                break
        return self.output

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait(10)

    def __enter__(self) -> ExpectProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def cli_mt(connect_string: str) -> ExpectProcess:
    if not os.access(CLI_MT, os.X_OK):
        pytest.skip(f"{CLI_MT} not installed")
    return ExpectProcess([str(CLI_MT), connect_string])


def zkcli(connect_string: str) -> ExpectProcess:
    if not os.access(ZKCLI, os.X_OK) or shutil.which("java") is None:
        pytest.skip(f"{ZKCLI} not installed")
    return ExpectProcess([str(ZKCLI), "-server", connect_string])


# ---------------------------------------------------------------------------------------------
# A TCP proxy the test can cut


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a server; ``cut()`` resets every open connection and
    ``block()`` makes it refuse (accept-and-reset) new ones until ``unblock()``."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._lsock = socket.create_server(("127.0.0.1", 0))
        self._lsock.settimeout(0.1)
        self.port = int(self._lsock.getsockname()[1])
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket, threading.Event]] = []
        self._threads: list[threading.Thread] = []
        self._blocked = False
        self._stop = threading.Event()
        self.accepted = 0
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    @property
    def connect_string(self) -> str:
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def _reset(s: socket.socket) -> None:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        s.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                c, _ = self._lsock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                blocked = self._blocked
            if blocked:
                self._reset(c)
                continue
            try:
                u = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                self._reset(c)
                continue
            self.accepted += 1
            done = threading.Event()
            t = threading.Thread(target=self._pump, args=(c, u, done), daemon=True)
            with self._lock:
                self._pairs.append((c, u, done))
                self._threads.append(t)
            t.start()

    def _pump(self, c: socket.socket, u: socket.socket, done: threading.Event) -> None:
        """Copy bytes both ways; pass FIN on as FIN (half-close), errors as resets."""
        peer = {c: u, u: c}
        reading = {c: True, u: True}
        graceful = False
        try:
            while not done.is_set():
                live = [s for s in (c, u) if reading[s]]
                if not live:
                    graceful = True
                    break
                readable, _, _ = select.select(live, [], [], 0.05)
                for s in readable:
                    data = s.recv(65536)
                    if data:
                        peer[s].sendall(data)
                    else:
                        reading[s] = False
                        peer[s].shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            if graceful:
                c.close()
                u.close()
            else:
                self._reset(c)
                self._reset(u)
            done.set()

    def cut(self) -> None:
        """Reset every open connection (both legs) and wait until they are gone."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
            threads, self._threads = self._threads, []
        for _, _, done in pairs:
            done.set()
        for t in threads:
            t.join(5)

    def block(self) -> None:
        with self._lock:
            self._blocked = True

    def unblock(self) -> None:
        with self._lock:
            self._blocked = False

    def close(self) -> None:
        self._stop.set()
        self._acceptor.join(5)
        self._lsock.close()
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
