"""Znode paths longer than an LMDB key (511 bytes) on a real server with LMDB storage.

ZooKeeper takes any path that fits in a request (``jute.maxbuffer``). The LMDB store
used to die on the first write of a longer key (``MDB_BAD_VALSIZE``), losing the batch;
here paths of 600, 5,000 and ~100,000 characters, long names under short parents, short
names under long parents, ephemeral and sequential long paths go through create,
setData, getChildren and delete, and survive clean restarts and ``SIGKILL``s.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from tests.integration.kazoo_helpers import FAST_RETRY, IS_ZOOKEEPER
from tests.support.servers import ServerProcess, four_letter_word

pytestmark = pytest.mark.skipif(IS_ZOOKEEPER, reason="tests zkernel's LMDB storage plugin")

L600 = "/" + "a" * 599
L5K = "/" + "b" * 4999
L100K = "/" + "c" * 99_999
SHORT = "/short"
LONG_NAME = "n" * 3000
MULTIBYTE = "/" + "é" * 400  # 801 UTF-8 bytes


def new_client(server: ServerProcess) -> KazooClient:
    zk = KazooClient(hosts=server.connect_string, timeout=20.0,
                     connection_retry=dict(FAST_RETRY), command_retry=dict(FAST_RETRY))
    zk.start(timeout=15)
    return zk


def close(zk: KazooClient) -> None:
    try:
        zk.stop()
    finally:
        zk.close()


class Expected:
    """What the tree must hold: (data, version) per path, and paths that must not exist."""

    def __init__(self) -> None:
        self.nodes: dict[str, tuple[bytes, int]] = {}
        self.gone: set[str] = set()

    def create(self, zk: KazooClient, path: str, data: bytes, **kw: Any) -> str:
        got = zk.create(path, data, **kw)
        assert isinstance(got, str)
        if not kw.get("sequence"):
            assert got == path
        self.nodes[got] = (data, 0)
        self.gone.discard(got)
        return got

    def set(self, zk: KazooClient, path: str, data: bytes) -> None:
        stat = zk.set(path, data, version=self.nodes[path][1])
        assert stat.version == self.nodes[path][1] + 1
        self.nodes[path] = (data, stat.version)

    def delete(self, zk: KazooClient, path: str) -> None:
        zk.delete(path, version=self.nodes[path][1])
        del self.nodes[path]
        self.gone.add(path)

    def children(self, path: str) -> set[str]:
        prefix = "/" if path == "/" else path + "/"
        return {p[len(prefix):] for p in self.nodes
                if p.startswith(prefix) and "/" not in p[len(prefix):]}

    def check(self, zk: KazooClient) -> None:
        for path, (data, version) in self.nodes.items():
            got, stat = zk.get(path)
            assert (got, stat.version) == (data, version), (path[:80], len(path))
            assert set(zk.get_children(path)) == self.children(path), path[:80]
            assert stat.numChildren == len(self.children(path)), path[:80]
        for path in self.gone:
            assert zk.exists(path) is None, path[:80]
        root = set(zk.get_children("/")) - {"zookeeper"}
        assert root == self.children("/")


def build(zk: KazooClient, owner: KazooClient) -> tuple[Expected, set[str]]:
    """The long-path tree; ``owner``'s session owns the ephemerals (returned)."""
    exp = Expected()
    for p in (L600, L5K, L100K, MULTIBYTE):
        exp.create(zk, p, b"data of " + str(len(p)).encode())
        exp.set(zk, p, b"x" * 100)  # the write the old store died on
    exp.create(zk, SHORT, b"")
    exp.create(zk, SHORT + "/" + LONG_NAME, b"long name under a short parent")
    exp.create(zk, SHORT + "/" + "m" * 509, b"child key just over the limit")
    exp.create(zk, L5K + "/x", b"short child of a long parent")
    exp.create(zk, L5K + "/y", b"")
    exp.create(zk, L600 + "/" + "d" * 600, b"long under long")
    exp.create(zk, L600 + "/" + "d" * 600 + "/z", b"deep")
    exp.create(zk, "/" + "m" * 509, b"root child, 510 bytes")
    exp.create(zk, "/" + "m" * 509 + "/c", b"child of a 510-byte parent")
    exp.create(zk, "/" + "m" * 509 + "/" + "q" * 300, b"and a longer one")
    for p in (L600, L5K, L100K):
        exp.set(zk, p, b"second set of " + str(len(p)).encode())
    # Sequential (persistent and ephemeral) long paths.
    seq = [exp.create(zk, L5K + "/seq-" + "s" * 600 + "-", b"seq", sequence=True)
           for _ in range(3)]
    assert [s[-10:] for s in seq] == ["0000000002", "0000000003", "0000000004"]
    ephemerals = {
        exp.create(owner, L600 + "/eph-" + "e" * 700, b"eph", ephemeral=True),
        exp.create(owner, L100K + "/eseq-", b"eph seq", ephemeral=True, sequence=True),
        exp.create(owner, SHORT + "/" + "f" * 1000, b"eph long name", ephemeral=True),
    }
    # Deleted: a long leaf, a long-named child, a sequential one.
    exp.create(zk, L100K + "/" + "g" * 2000, b"to delete")
    exp.delete(zk, L100K + "/" + "g" * 2000)
    exp.delete(zk, seq[1])
    exp.create(zk, "/" + "h" * 700, b"")
    exp.delete(zk, "/" + "h" * 700)
    # A short client-visible list reaches the long children too.
    assert set(zk.get_children(L5K)) == exp.children(L5K)
    return exp, ephemerals


def wait_connected(zk: KazooClient, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not zk.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert zk.connected


def stop(server: ServerProcess, how: str) -> None:
    if how == "kill9":
        server.kill9()
    else:
        server.stop()


@pytest.mark.parametrize("first,second", [("clean", "kill9"), ("kill9", "clean")])
def test_long_paths_survive_restarts(server_factory: Any, first: str, second: str) -> None:
    server = server_factory()
    zk = new_client(server)
    owner = new_client(server)
    other = new_client(server)
    try:
        exp, ephemerals = build(zk, owner)
        # Another session's long ephemeral goes away with its session.
        p = exp.create(other, L600 + "/gone-" + "o" * 800, b"", ephemeral=True)
        close(other)
        exp.nodes.pop(p)
        exp.gone.add(p)
        exp.check(zk)
        for e in ephemerals:
            assert zk.exists(e).ephemeralOwner == owner.client_id[0]
        assert server.proc is not None and server.proc.poll() is None
    finally:
        close(zk)
    # The owner's session stays open across the restart: its ephemerals must survive.
    stop(server, first)
    server.start()
    wait_connected(owner)
    zk = new_client(server)
    try:
        exp.check(zk)
        for e in ephemerals:
            assert zk.exists(e).ephemeralOwner == owner.client_id[0]
        # More writes on the reopened store, then the owner's session closes.
        exp.set(zk, L100K, b"after restart")
        exp.delete(zk, L5K + "/x")
        exp.create(zk, L5K + "/" + "w" * 900, b"new after restart")
        exp.delete(zk, SHORT + "/" + LONG_NAME)
        close(owner)
        for e in ephemerals:
            exp.nodes.pop(e)
            exp.gone.add(e)
        exp.check(zk)
    finally:
        close(zk)
    stop(server, second)
    server.start()
    zk = new_client(server)
    try:
        exp.check(zk)
        assert "Mode: standalone" in four_letter_word(server.port, "srvr")
    finally:
        close(zk)


def test_setdata_on_a_1000_character_path_keeps_the_server_up(server_factory: Any) -> None:
    """The colleague's reproduction: create (only in the log), then setData (the next
    batch writes the node record) killed the process."""
    server = server_factory()
    zk = new_client(server)
    path = "/" + "p" * 999
    try:
        zk.create(path, b"v1")
        zk.set(path, b"v2")
        zk.create("/next", b"")  # one more batch
        assert zk.get(path)[0] == b"v2"
        assert server.proc is not None and server.proc.poll() is None
    finally:
        close(zk)
    server.stop()
    server.start()
    zk = new_client(server)
    try:
        data, stat = zk.get(path)
        assert (data, stat.version) == (b"v2", 1)
        zk.delete(path)
        with pytest.raises(NoNodeError):
            zk.get(path)
    finally:
        close(zk)
