"""The tree digest over the wire: ``hash`` and the mntr digest keys of a standalone
zkernel (LMDB storage) change with every write and survive a restart and a crash; and
the value is Apache ZooKeeper's: a tree ZooKeeper wrote, imported into zkernel, reports
the digest ZooKeeper's own ``hash`` printed for that zxid."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration import wire
from tests.integration.kazoo_helpers import IS_ZOOKEEPER
from tests.support.servers import (
    REPO,
    ZK_JAR_DIR,
    ApacheZooKeeperServer,
    ServerProcess,
    ZkernelServer,
    four_letter_word,
)

HASH_LINE = re.compile(r"([0-9a-f]+): (-?\d+)")


def hash_lines(srv: ServerProcess) -> list[tuple[int, int]]:
    out = four_letter_word(srv.port, "hash")
    assert out.endswith("\n") or out == "", out
    lines = out.splitlines()
    parsed = []
    for line in lines:
        m = HASH_LINE.fullmatch(line)
        assert m, f"hash line {line!r}"
        parsed.append((int(m.group(1), 16), int(m.group(2))))
    return parsed


def current(srv: ServerProcess) -> tuple[int, int]:
    """(zxid, digest) of the last applied txn, from ``hash``; mntr agrees."""
    zxid, digest = hash_lines(srv)[-1]
    mntr = dict(line.split("\t", 1) for line in
                four_letter_word(srv.port, "mntr").splitlines())
    assert (int(mntr["zk_tree_digest_zxid"]), int(mntr["zk_tree_digest"])) == (zxid, digest)
    return zxid, digest


@pytest.mark.skipif(IS_ZOOKEEPER, reason="zkernel's digest reporting and LMDB restart")
def test_hash_changes_with_writes_and_survives_restart(tmp_path: Path) -> None:
    srv = ZkernelServer(tmp_path / "zk", {"kernel.storage": "lmdb"})
    srv.start()
    try:
        fresh = current(srv)
        c = wire.open_session(srv.host, srv.port)
        after_session = current(srv)
        # A session changes no node: the digest stays, the zxid moves.
        assert after_session[0] > fresh[0] and after_session[1] == fresh[1]
        assert c.create("/d", b"one").err == 0
        created = current(srv)
        assert created[0] > after_session[0] and created[1] != fresh[1]
        assert c.set_data("/d", b"two").err == 0
        changed = current(srv)
        assert changed[1] != created[1]
        for i in range(140):  # cross a multiple of 128: a digest-log entry appears
            assert c.create(f"/d/n{i}", b"x").err == 0
        assert c.close_session().err == 0
        c.close()
        before = current(srv)
        logged = hash_lines(srv)[:-1]
        assert [z for z, _ in logged] == [0x80]
        srv.restart()  # clean stop
        assert current(srv) == before
        srv.kill9()  # and a crash: the log tail is replayed
        srv.start()
        assert current(srv) == before
    finally:
        srv.stop()


@pytest.mark.skipif(IS_ZOOKEEPER, reason="imports into zkernel")
@pytest.mark.skipif(shutil.which("java") is None or not (ZK_JAR_DIR / "zookeeper.jar").exists(),
                    reason="Apache ZooKeeper (Debian zookeeper package) is not installed")
def test_digest_equals_apache_zookeepers(tmp_path: Path) -> None:
    zk = ApacheZooKeeperServer(tmp_path / "apache")
    zk.start(timeout=60)
    try:
        c = wire.open_session(zk.host, zk.port)  # zxid 1
        assert c.create("/app", b"app data").err == 0
        for i in range(100):
            assert c.create(f"/app/n{i}", b"v%d" % i, flags=1 if i % 10 == 0 else 0).err == 0
        for i in range(0, 100, 7):
            assert c.delete(f"/app/n{i}").err == 0
        zxid = int(re.search(r"Zxid: 0x([0-9a-f]+)", four_letter_word(zk.port, "srvr"))[1], 16)
        while zxid < 0x80:
            assert c.create(f"/pad{zxid}", None).err == 0
            zxid += 1
        theirs = hash_lines(zk)
        assert theirs and theirs[-1][0] == 0x80, theirs
    finally:
        zk.kill9()  # the session (and its ephemerals) stays in ZooKeeper's log
    target = tmp_path / "imported"
    out = subprocess.run([sys.executable, "-m", "kernel", "import-zookeeper",
                          str(zk.workdir / "data"), "--data-dir", str(target)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    srv = ZkernelServer(tmp_path / "zkernel", {"dataDir": str(target)})
    srv.start()
    try:
        assert current(srv) == theirs[-1]
    finally:
        srv.stop()
