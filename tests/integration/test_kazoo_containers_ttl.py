"""Containers (opcode 19) and TTL nodes (opcode 21) sent through kazoo's connection.

kazoo 2.11 has no API for either, so ``kh.create_container`` / ``kh.create_ttl`` build the
requests (CreateRequest / CreateTTLRequest, reply Create2Response) and ``kh.call`` queues
them on a normal kazoo session. Reference: client-protocol.md §7.5, §6.2 (TTL checks).
"""

from __future__ import annotations

import time

import pytest
from kazoo.exceptions import BadArgumentsError, UnimplementedError
from kazoo.protocol.serialization import Create
from kazoo.security import OPEN_ACL_UNSAFE

from tests.integration import kazoo_helpers as kh
from tests.integration.kazoo_helpers import EV_CHILD, EV_DELETED

REAPER_CFG = {"extendedTypesEnabled": "true", "znode.container.checkIntervalMs": 500}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    holder = kh.SharedServer(tmp_path_factory, REAPER_CFG)
    yield holder
    holder.close()


def gone(client, path):
    return lambda: client.exists(path) is None


def test_create_container_returns_create2_response(zk):
    path, st = kh.call(zk, kh.create_container("/c", b"data"))
    assert path == "/c"
    assert st == zk.exists("/c")
    assert st.czxid == st.mzxid == st.pzxid == zk.last_zxid
    assert (st.version, st.cversion, st.aversion, st.numChildren) == (0, 0, 0, 0)
    assert st.ephemeralOwner == 0  # the container marker is not shown to clients
    assert st.dataLength == 4
    assert zk.get("/c")[0] == b"data"
    # containers may have persistent and ephemeral children
    assert zk.create("/c/p", b"") == "/c/p"
    assert zk.create("/c/e", b"", ephemeral=True) == "/c/e"
    assert zk.create("/c/s-", b"", sequence=True) == "/c/s-0000000002"


def test_container_reaped_once_emptied(zk, srv, clients):
    watcher = clients.new(srv)
    zk.create("/cr", b"")
    kh.call(zk, kh.create_container("/cr/used"))
    zk.create("/cr/used/child", b"")
    kh.call(zk, kh.create_container("/cr/fresh"))  # never had a child: kept
    kh.call(zk, kh.create_container("/cr/busy"))
    zk.create("/cr/busy/child", b"")  # still has a child: kept
    kh.call(zk, kh.raw_create("/cr/plain", flags=4))  # flag 4 via opcode 1: ordinary node
    zk.create("/cr/plain/child", b"")
    zk.delete("/cr/plain/child")
    before = zk.exists("/cr")

    mark = kh.wire(watcher).mark()
    watcher.exists("/cr/used", watch=kh.Watcher())
    watcher.get_children("/cr", watch=kh.Watcher())
    zk.delete("/cr/used/child")
    kh.wait_until(gone(zk, "/cr/used"), timeout=15, msg="container reaped")
    evs = kh.wire(watcher).wait_events(mark, 2)
    assert evs == [(EV_DELETED, "/cr/used"), (EV_CHILD, "/cr")]
    time.sleep(1.2)  # at least two more reaper passes
    for path in ("/cr/fresh", "/cr/busy", "/cr/plain"):
        assert zk.exists(path) is not None, path
    # the reaper's delete updates the parent like any delete
    after = zk.exists("/cr")
    assert after.pzxid > before.pzxid
    assert (after.cversion, after.numChildren) == (before.cversion + 1, before.numChildren - 1)


def test_container_with_ephemeral_child_reaped_after_session_close(zk, srv, clients):
    owner = clients.new(srv)
    kh.call(zk, kh.create_container("/lock"))
    owner.create("/lock/lease-", b"", ephemeral=True, sequence=True)
    owner.stop()
    assert zk.get_children("/lock") == []
    kh.wait_until(gone(zk, "/lock"), timeout=15, msg="container reaped")


def test_ttl_node_expires_without_children(zk, srv, clients):
    watcher = clients.new(srv)
    t0 = kh.now_ms()
    path, st = kh.call(zk, kh.create_ttl("/t", 1000, b"ttl"))
    assert path == "/t"
    assert st.ephemeralOwner == 0
    assert st == zk.exists("/t")
    assert (st.version, st.dataLength) == (0, 3)
    kh.call(zk, kh.create_ttl("/t-parent", 1000))
    zk.create("/t-parent/kid", b"")  # TTL nodes may have children; then they stay

    mark = kh.wire(watcher).mark()
    watcher.exists("/t", watch=kh.Watcher())
    kh.wait_until(gone(zk, "/t"), timeout=15, msg="ttl node reaped")
    assert kh.now_ms() - t0 >= 1000  # not before its TTL
    assert kh.wire(watcher).wait_events(mark, 1) == [(EV_DELETED, "/t")]
    time.sleep(0.6)
    assert zk.exists("/t-parent") is not None


def test_ttl_refreshed_by_set_data(zk):
    kh.call(zk, kh.create_ttl("/keep", 1500))
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        zk.set("/keep", b"touch")  # moves mtime forward
        time.sleep(0.3)
    assert zk.exists("/keep") is not None
    kh.wait_until(gone(zk, "/keep"), timeout=15, msg="ttl node reaped after updates stop")


def test_sequential_ttl_node(zk):
    zk.create("/sq", b"")
    zk.create("/sq/x", b"")
    path, st = kh.call(zk, kh.create_ttl("/sq/t-", 60_000, flags=6))
    assert path == "/sq/t-0000000001"
    assert st.ephemeralOwner == 0


def test_ttl_argument_checks(zk):
    cases = {
        "ttl 0": kh.create_ttl("/bad", 0),
        "ttl negative": kh.create_ttl("/bad", -5),
        "ttl too large": kh.create_ttl("/bad", 0xFF_FFFF_FFFF + 1),
        "ttl with persistent flag": kh.create_ttl("/bad", 1000, flags=0),
        "ttl with ephemeral flag": kh.create_ttl("/bad", 1000, flags=1),
        "ttl with container flag": kh.create_ttl("/bad", 1000, flags=4),
        "unknown flag": kh.create_ttl("/bad", 1000, flags=7),
    }
    got = {name: kh.error_name(lambda r=r: kh.call(zk, r)) for name, r in cases.items()}
    assert got == {name: "BadArgumentsError" for name in cases}
    assert zk.exists("/bad") is None
    path, _ = kh.call(zk, kh.create_ttl("/max", 0xFF_FFFF_FFFF))
    assert path == "/max"
    # the usual create checks still apply
    with pytest.raises(BadArgumentsError):
        kh.call(zk, kh.create_ttl("/max/", 1000))


@kh.only_zkernel
def test_ttl_opcode_with_non_ttl_flag_and_negative_ttl_is_rejected(zk):
    """ZK 3.8.0 accepts this and then crashes applying it (§6.2); zkernel refuses."""
    with pytest.raises(BadArgumentsError):
        kh.call(zk, kh.create_ttl("/crash", -1, flags=0))
    assert zk.exists("/crash") is None


def test_ttl_needs_extended_types(server_factory, clients):
    srv = server_factory(cfg={"extendedTypesEnabled": "false"})
    zk = clients.new(srv)
    with pytest.raises(UnimplementedError):
        kh.call(zk, kh.create_ttl("/t", 1000))
    kh.wait_until(lambda: zk.connected, msg="connected")
    assert zk.exists("/t") is None
    # containers do not depend on extended types
    assert kh.call(zk, kh.create_container("/c"))[0] == "/c"


def test_container_and_ttl_inside_multi(zk):
    res = kh.call(zk, kh.Multi([
        kh.create_container("/mc"),
        Create("/mc/a", b"", OPEN_ACL_UNSAFE, 0),
        kh.create_ttl("/mt", 60_000),
    ]))
    assert [(r.type, r.err) for r in res] == [(15, 0), (1, 0), (15, 0)]
    assert res[0].value[0] == "/mc"
    assert res[1].value == "/mc/a"
    assert res[2].value[0] == "/mt"
    assert res[0].value[1].czxid == res[2].value[1].czxid  # one zxid for the multi
    assert res[0].value[1].ephemeralOwner == 0
    # the container behaves as one: reaped once emptied
    zk.delete("/mc/a")
    kh.wait_until(gone(zk, "/mc"), timeout=15, msg="container from multi reaped")
