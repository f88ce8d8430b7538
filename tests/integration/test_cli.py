"""The operator's entry points: ``zkernel serve`` with a stock zoo.cfg, and clear errors."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.support.servers import REPO, four_letter_word, free_port

STOCK_ZOO_CFG = """\
# The sample configuration Apache ZooKeeper ships (conf/zoo_sample.cfg), ports changed.
tickTime=2000
initLimit=10
syncLimit=5
dataDir={data}
clientPort={port}
#maxClientCnxns=60
#autopurge.snapRetainCount=3
#autopurge.purgeInterval=1
"""


def _wait_serving(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            if "Mode: standalone" in four_letter_word(port, "srvr", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("server did not start")


def _command() -> list[str]:
    exe = shutil.which("zkernel")
    return [exe] if exe else [sys.executable, "-m", "kernel"]


def test_zkernel_serve_runs_a_stock_zoo_cfg_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(STOCK_ZOO_CFG.format(data=tmp_path / "data", port=port))
    proc = subprocess.Popen([*_command(), "serve", "--config", str(cfg)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_serving(port, proc)
        zk = KazooClient(hosts=f"127.0.0.1:{port}")
        zk.start(timeout=10)
        try:
            zk.create("/cli", b"persisted")
        finally:
            zk.stop()
            zk.close()
        # The default storage is LMDB in dataDir.
        assert (tmp_path / "data" / "zkernel-lmdb" / "data.mdb").exists()
        # ruok is not whitelisted by the stock file: only srvr is on by default.
        assert four_letter_word(port, "ruok") == \
            "ruok is not executed because it is not in the whitelist.\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        # Restart on the same data: the znode is still there.
        proc = subprocess.Popen([*_command(), "serve", "--config", str(cfg)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        _wait_serving(port, proc)
        zk = KazooClient(hosts=f"127.0.0.1:{port}")
        zk.start(timeout=10)
        try:
            assert zk.get("/cli")[0] == b"persisted"
        finally:
            zk.stop()
            zk.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def _run(args: list[str], timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kernel", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_bad_config_is_refused_with_a_readable_message(tmp_path: Path) -> None:
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text("tickTime=two seconds\nclientPort=2181\n")
    r = _run(["serve", "--config", str(cfg)])
    assert r.returncode == 2
    assert "configuration error" in r.stderr and "tickTime" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    r = _run(["serve", "--config", str(tmp_path / "nope.cfg")])
    assert r.returncode == 2
    assert "cannot read" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("line", ["kernel.storage=nosuch", "kernel.transports=nosuch"])
def test_unknown_plugin_choice_is_refused(tmp_path: Path, line: str) -> None:
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path}/d\nclientPort={free_port()}\n{line}\n")
    r = _run(["serve", "--config", str(cfg)])
    assert r.returncode == 2
    assert "no " in r.stderr and line.split("=")[0] in r.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        cfg = tmp_path / "zoo.cfg"
        cfg.write_text(f"dataDir={tmp_path}/d\nclientPort={port}\nclientPortAddress=127.0.0.1\n")
        r = _run(["serve", "--config", str(cfg)])
    assert r.returncode == 1
    assert "cannot listen on 127.0.0.1" in r.stderr
    assert "Traceback" not in r.stderr
