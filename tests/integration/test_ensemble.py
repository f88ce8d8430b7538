"""Process tests of replicated ensembles on loopback (issue #5, "What must show").

3- and 5-server ensembles of real server processes (zkernel, or Apache ZooKeeper 3.8 with
``ZK_TEST_TARGET=zookeeper``) under a bounded kazoo write load: SIGKILL the leader,
SIGSTOP/SIGCONT a follower, isolate the leader behind cut TCP proxies and heal.  After
every scenario each acknowledged write is on every server (read after ``sync`` through a
client of that server alone) and all servers report the same tree digest at the same zxid.
A kazoo client with the whole ensemble in its connect string rides through a leader
failover with its session and ephemeral intact.

Select with ``-m ensemble``; the harness is tests/support/ensemble.py.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.protocol.states import KazooState

from tests.support.ensemble import (
    Ensemble,
    WriteLoad,
    assert_writes_everywhere,
    check_digests_with_client,
    digests_from_mntr,
    kazoo_client,
    parse_hash,
    parse_mntr,
    parse_mode,
    parse_zxid,
)
from tests.support.proxy import ProxyHub

pytestmark = [pytest.mark.ensemble, pytest.mark.timeout(180)]

#: How long a new leader may take to serve a write after the old one is SIGKILLed:
#: "a few election timeouts" (the tests run with tickTime 250 ms, initLimit 10, syncLimit
#: 5), with room for a loaded 2-core machine.
FAILOVER_BOUND_S = 10.0


def _report(msg: str) -> None:
    """Measurements (see them with ``-s`` or ``-rP``)."""
    print(msg, flush=True)


@pytest.fixture
def make_ensemble(tmp_path: Path) -> Iterator[Callable[..., Ensemble]]:
    """``make_ensemble(3)`` starts an ensemble; every one is torn down after the test,
    pass or fail (``ZK_ENSEMBLE_KEEP=1`` keeps the data dirs and logs)."""
    made: list[Ensemble] = []
    keep = os.environ.get("ZK_ENSEMBLE_KEEP") == "1"

    def make(size: int, **kw: Any) -> Ensemble:
        ens = Ensemble(size, tmp_path / f"ensemble{len(made)}", keep=keep, **kw)
        made.append(ens)
        return ens.start()

    yield make
    for ens in made:
        ens.close()


def _verify(ens: Ensemble, load: WriteLoad) -> None:
    """No acknowledged write lost; same digest at the same zxid everywhere."""
    acked = load.acked_names()
    assert acked, "the load never got a write acknowledged"
    n = assert_writes_everywhere(ens, load.root, acked)
    zxid, digest = check_digests_with_client(ens)
    _report(f"  verified: {len(acked)} acknowledged writes ({n} znodes) on all "
            f"{len(ens.running())} servers; digest {digest} at zxid {zxid:#x}; "
            f"unknown-outcome writes: {load.errors or 0}")


# --------------------------------------------------------------------------- parsing
def test_parse_hash_formats() -> None:
    zk = "100000080: 8243175423\n100000100: -52\n"
    assert parse_hash(zk) == {0x100000080: "8243175423", 0x100000100: "-52"}
    assert parse_hash("7f3a9c0d12ee 0x200000005\n") == {0x200000005: "7f3a9c0d12ee"}
    assert parse_hash("8243175423 200000005\n") == {0x200000005: "8243175423"}
    assert parse_hash("zxid=0x200000005 digest=1234\n") == {0x200000005: "1234"}
    assert parse_hash("digest: 99 zxid: 0x7\n") == {7: "99"}
    assert parse_hash("") == {}
    mntr = parse_mntr("zk_server_state\tfollower\nzk_tree_digest\t-12\n"
                      "zk_tree_digest_zxid\t4294967301\n")
    assert digests_from_mntr(mntr) == {0x100000005: "-12"}
    srvr = "Zookeeper version: x\nZxid: 0x10000001f\nMode: follower\nNode count: 5\n"
    assert parse_mode(srvr) == "follower" and parse_zxid(srvr) == 0x10000001F
    assert parse_mode("This ZooKeeper instance is not currently serving requests\n") is None


def test_link_proxy_cut_and_heal() -> None:
    """A cut link closes its connections and resets new ones until healed."""
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        lsock.settimeout(5)
        hub = ProxyHub()
        try:
            proxy = hub.add("test", lsock.getsockname()[1])
            c = socket.create_connection(("127.0.0.1", proxy.listen_port), timeout=5)
            s, _ = lsock.accept()
            s.settimeout(5)
            c.sendall(b"ping")
            assert s.recv(4) == b"ping"
            s.sendall(b"pong")
            assert c.recv(4) == b"pong"
            proxy.cut()
            with pytest.raises(OSError):  # reset, or EOF turned into an error below
                if c.recv(4) == b"":
                    raise ConnectionResetError("closed")
            c.close()
            s.close()
            with pytest.raises(OSError):  # the reset may already fail the connect
                with socket.create_connection(("127.0.0.1", proxy.listen_port), 5) as c2:
                    if c2.recv(4) == b"":
                        raise ConnectionResetError("closed")
            proxy.heal()
            c3 = socket.create_connection(("127.0.0.1", proxy.listen_port), timeout=5)
            s3, _ = lsock.accept()
            c3.sendall(b"again")
            assert s3.recv(5) == b"again"
            c3.close()
            s3.close()
        finally:
            hub.close()


# --------------------------------------------------------------------------- scenarios
@pytest.mark.parametrize("size", [3, 5])
def test_sigkill_leader_under_load(make_ensemble: Callable[..., Ensemble], size: int) -> None:
    ens = make_ensemble(size)
    old = ens.leader()
    with WriteLoad(ens, writers=3) as load:
        load.wait_acks(100)
        t_kill = ens.kill(old)
        new = ens.leader(timeout=30, among=[i for i in range(size) if i != old])
        t_leader = time.monotonic() - t_kill
        failover = load.first_ack_after(t_kill, timeout=30)
        _report(f"[{ens.kind} x{size}] SIGKILL leader {old}: new leader {new} reported in "
                f"{t_leader:.2f}s, first write sent after the kill acknowledged "
                f"{failover:.2f}s after it")
        assert failover < FAILOVER_BOUND_S
        load.wait_acks(100)
        ens.launch(old)
        ens.wait_member_serving(old, timeout=60)
        assert ens.mode(old) == "follower"
        load.wait_acks(50)
    ens.wait_serving(30)
    _verify(ens, load)


def test_sigstop_follower_then_sigcont(make_ensemble: Callable[..., Ensemble]) -> None:
    ens = make_ensemble(3)
    follower = ens.followers()[0]
    tick = float(str(ens.timers["tickTime"])) / 1000
    sync_limit = int(str(ens.timers["syncLimit"]))
    with WriteLoad(ens, writers=3) as load:
        load.wait_acks(100)
        ens.stop(follower)
        t_stop = time.monotonic()
        # The quorum (leader + the other follower) keeps committing while it is frozen.
        waited = load.wait_acks(50, after=t_stop + 0.5, timeout=30)
        # Stay frozen past syncLimit so the leader drops it and it must resync.
        time.sleep(max(0.0, 2 * sync_limit * tick - (time.monotonic() - t_stop)))
        ens.cont(follower)
        ens.wait_member_serving(follower, timeout=60)
        _report(f"[{ens.kind} x3] SIGSTOP follower {follower} for "
                f"{time.monotonic() - t_stop:.1f}s: writes kept flowing "
                f"(50 acks in {waited:.2f}s); it serves again after SIGCONT")
        load.wait_acks(50)
    ens.wait_serving(30)
    _verify(ens, load)


def test_isolated_leader_steps_down_and_rejoins(
        make_ensemble: Callable[..., Ensemble]) -> None:
    size = 5
    ens = make_ensemble(size)
    old = ens.leader()
    rest = [i for i in range(size) if i != old]
    with WriteLoad(ens, writers=3) as load:
        load.wait_acks(100)
        ens.isolate(old)
        t_cut = time.monotonic()
        new = ens.leader(timeout=30, among=rest)
        t_new = time.monotonic() - t_cut
        failover = load.first_ack_after(t_cut, timeout=30)
        ens.wait_not_serving(old, timeout=30)
        stepped_down = time.monotonic() - t_cut
        _report(f"[{ens.kind} x{size}] leader {old} isolated: majority leader {new} "
                f"in {t_new:.2f}s, first write after the cut acknowledged in "
                f"{failover:.2f}s, old leader stopped serving within {stepped_down:.2f}s")
        assert failover < FAILOVER_BOUND_S
        assert new != old
        # The isolated server stays out of service while the majority keeps writing.
        load.wait_acks(100)
        assert ens.mode(old) is None, "the isolated old leader serves again"
        ens.heal()
        t_heal = time.monotonic()
        mode = ens.wait_member_serving(old, timeout=60)
        _report(f"  healed: server {old} rejoined as {mode} in "
                f"{time.monotonic() - t_heal:.2f}s")
        assert mode == "follower"
        load.wait_acks(50)
    ens.wait_serving(30)
    assert ens.leader() == new
    _verify(ens, load)


def test_minority_partition_keeps_quorum_serving(
        make_ensemble: Callable[..., Ensemble]) -> None:
    """3 servers: cut one follower off; the other two keep serving; heal and it catches up."""
    ens = make_ensemble(3)
    leader = ens.leader()
    follower = ens.followers()[0]
    with WriteLoad(ens, writers=3) as load:
        load.wait_acks(100)
        ens.isolate(follower)
        t_cut = time.monotonic()
        ens.wait_not_serving(follower, timeout=30)
        load.wait_acks(100, after=t_cut, timeout=30)
        assert ens.leader(among=[i for i in range(3) if i != follower]) == leader
        ens.heal()
        ens.wait_member_serving(follower, timeout=60)
        load.wait_acks(50)
    ens.wait_serving(30)
    _verify(ens, load)


def test_kazoo_session_rides_through_leader_failover(
        make_ensemble: Callable[..., Ensemble]) -> None:
    ens = make_ensemble(3)
    old = ens.leader()
    # Connected to the leader first (the host list starts with it), so the session has to
    # move to another server when the leader dies.
    order = [old] + [i for i in range(3) if i != old]
    zk = kazoo_client(ens.connect_string(order), timeout=10.0)
    states: list[str] = []
    lost = threading.Event()

    def listener(state: str) -> None:
        states.append(state)
        if state == KazooState.LOST:
            lost.set()

    zk.add_listener(listener)
    zk.start(timeout=20)
    try:
        session_id = zk.client_id[0]
        zk.ensure_path("/ride")
        eph = zk.create("/ride/eph", b"mine", ephemeral=True)
        t_kill = ens.kill(old)
        ens.leader(timeout=30, among=[i for i in range(3) if i != old])
        # The first write through the same client after the failover.
        deadline = time.monotonic() + 30
        while True:
            try:
                zk.create("/ride/after-", b"", sequence=True)
                break
            except Exception:  # noqa: BLE001 - connection loss while it moves over
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        took = time.monotonic() - t_kill
        _report(f"[{ens.kind} x3] client session {session_id:#x} moved off the killed "
                f"leader; first write {took:.2f}s after SIGKILL; states {states}")
        assert not lost.is_set(), f"session lost: {states}"
        assert zk.client_id[0] == session_id
        stat = zk.exists(eph)
        assert stat is not None and stat.ephemeralOwner == session_id
        assert zk.get(eph)[0] == b"mine"
        # Every surviving server agrees the ephemeral is there (and owned by the session).
        for i in ens.running():
            other = kazoo_client(ens.members[i].connect_string)
            other.start(timeout=20)
            try:
                other.sync("/ride")
                st = other.exists(eph)
                assert st is not None and st.ephemeralOwner == session_id, f"server {i}"
            finally:
                other.stop()
                other.close()
        ens.launch(old)
        ens.wait_member_serving(old, timeout=60)
        zk.sync("/ride")
        assert zk.exists(eph) is not None
        check_digests_with_client(ens)
        assert not lost.is_set(), f"session lost: {states}"
    finally:
        zk.stop()  # (kazoo reports LOST for its own close)
        zk.close()
