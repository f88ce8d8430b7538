"""Start real servers (zkernel, or Apache ZooKeeper for comparison) as processes.

Every test talks to a real process over TCP. ``ZK_TEST_TARGET=zookeeper`` points the
same tests at a real Apache ZooKeeper 3.8 (Debian ``zookeeper`` package), which is how
expected answers are checked against the reference implementation.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ZK_JAR_DIR = Path("/usr/share/java")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def four_letter_word(port: int, word: str, host: str = "127.0.0.1", timeout: float = 5.0) -> str:
    """Send a four-letter word and return the whole answer."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode()


class ServerProcess:
    """A server process on 127.0.0.1 with its own data dir; stop() always kills it."""

    kind = "abstract"

    def __init__(self, workdir: Path, cfg: Mapping[str, object] | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.extra_cfg = dict(cfg or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "server.log"

    @property
    def connect_string(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def config_lines(self) -> dict[str, object]:
        cfg: dict[str, object] = {
            "tickTime": 2000,
            "dataDir": str(self.workdir / "data"),
            "clientPort": self.port,
            "clientPortAddress": "127.0.0.1",
            "maxClientCnxns": 0,
            "4lw.commands.whitelist": "*",
            # Both kinds of server run with TTL nodes enabled unless a test says otherwise.
            "extendedTypesEnabled": "true",
        }
        cfg.update(self.extra_cfg)
        return cfg

    def write_config(self) -> Path:
        path = self.workdir / "zoo.cfg"
        path.write_text("".join(f"{k}={v}\n" for k, v in self.config_lines().items()))
        return path

    def command(self, cfg_path: Path) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self, timeout: float = 30.0) -> ServerProcess:
        cfg_path = self.write_config()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(cfg_path),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=self.env(),
            start_new_session=True,
        )
        log.close()
        self.wait_serving(timeout)
        return self

    def wait_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_err: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if "Mode:" in four_letter_word(self.port, "srvr", timeout=1.0):
                    return
            except OSError as e:
                last_err = e
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.kind} not serving after {timeout}s ({last_err}):\n"
                           f"{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def kill9(self) -> None:
        """SIGKILL the server and reap it (a crash, as far as the server can tell)."""
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.signal(signal.SIGTERM)
            self.proc.wait(10)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            self.kill9()

    def restart(self, timeout: float = 30.0) -> ServerProcess:
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ZkernelServer(ServerProcess):
    """``python -m kernel serve --config zoo.cfg``, the way an operator runs it."""

    kind = "zkernel"

    def command(self, cfg_path: Path) -> list[str]:
        return [sys.executable, "-m", "kernel", "serve", "--config", str(cfg_path)]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        return env


class ApacheZooKeeperServer(ServerProcess):
    """A real Apache ZooKeeper 3.8 from Debian's package, standalone, for comparison."""

    kind = "zookeeper"

    def config_lines(self) -> dict[str, object]:
        cfg = super().config_lines()
        cfg.setdefault("admin.enableServer", "false")
        # Apache ZooKeeper reads a few keys only as system properties; mirror zkernel's
        # zoo.cfg spelling into -D flags in command().
        return cfg

    def command(self, cfg_path: Path) -> list[str]:
        java = shutil.which("java")
        if java is None or not (ZK_JAR_DIR / "zookeeper.jar").exists():
            raise RuntimeError("Apache ZooKeeper is not installed (apt-get install zookeeper)")
        jars = ["zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar", "slf4j-simple.jar",
                "netty-all.jar", "commons-cli.jar", "jline.jar"]
        cp = ":".join(str(ZK_JAR_DIR / j) for j in jars if (ZK_JAR_DIR / j).exists())
        props = []
        for key, prop in (("superDigest", "zookeeper.DigestAuthenticationProvider.superDigest"),
                          ("znode.container.checkIntervalMs", "znode.container.checkIntervalMs"),
                          ("znode.container.maxPerMinute", "znode.container.maxPerMinute"),
                          ("znode.container.maxNeverUsedIntervalMs",
                           "znode.container.maxNeverUsedIntervalMs"),
                          ("skipACL", "zookeeper.skipACL")):
            if key in self.extra_cfg:
                props.append(f"-D{prop}={self.extra_cfg[key]}")
        return [java, "-Xmx512m", *props, "-cp", cp,
                "org.apache.zookeeper.server.ZooKeeperServerMain", str(cfg_path)]


def server_class() -> type[ServerProcess]:
    """The server kind the suite targets (``ZK_TEST_TARGET``, default zkernel)."""
    target = os.environ.get("ZK_TEST_TARGET", "zkernel")
    if target == "zookeeper":
        return ApacheZooKeeperServer
    return ZkernelServer
