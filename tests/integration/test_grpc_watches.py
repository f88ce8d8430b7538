"""Watches over gRPC: one-time, persistent and recursive watches on the session's event
stream; resumption from a zxid; the bounded event log under a flood."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest

from plugins.transport_grpc.v1 import zkernel_pb2 as pb
from tests.integration.test_grpc_support import (
    GClient,
    GrpcServer,
    fails,
    gclient,
    gserver,
    only_zkernel,
    start_grpc_server,
    zk_code,
)

pytestmark = only_zkernel
__all__ = ["gclient", "gserver"]  # fixtures

Make = Callable[..., GClient]
CREATED, DELETED, CHANGED, CHILD = (pb.NODE_CREATED, pb.NODE_DELETED, pb.NODE_DATA_CHANGED,
                                    pb.NODE_CHILDREN_CHANGED)


def test_one_time_watches_fire_once(gclient: Make) -> None:
    w, other = gclient(), gclient()
    other.create("/w1")
    other.create("/w1/d", b"0")
    stream = w.events()
    w.get("/w1/d", watch=True)
    assert not w.exists("/w1/new", watch=True).exists
    w.children("/w1", watch=True)
    other.set("/w1/d", b"1")
    msg = stream.next()
    assert [(e.type, e.path) for e in msg.events] == [(CHANGED, "/w1/d")]
    assert msg.zxid == msg.events[0].zxid > 0
    other.set("/w1/d", b"2")  # the data watch is used up
    other.create("/w1/new")
    # One transaction, two events (creation watch + child watch), one message.
    msg = stream.next()
    assert sorted((e.type, e.path) for e in msg.events) == [(CREATED, "/w1/new"),
                                                           (CHILD, "/w1")]
    assert {e.zxid for e in msg.events} == {msg.zxid}
    other.delete("/w1/new")
    assert stream.quiet()


def test_delete_fires_data_and_child_watches(gclient: Make) -> None:
    w, other = gclient(), gclient()
    other.create("/w2")
    other.create("/w2/x")
    stream = w.events()
    w.get("/w2/x", watch=True)
    w.children("/w2/x", watch=True)
    w.children("/w2", watch=True)
    other.delete("/w2/x")
    got = sorted(stream.events(2))
    assert got == [(DELETED, "/w2/x"), (CHILD, "/w2")]


def test_persistent_and_recursive_watches(gclient: Make) -> None:
    w, other = gclient(), gclient()
    other.create("/w3")
    other.create("/w3/a")
    stream = w.events()
    w.add_watch("/w3")
    w.add_watch("/w3/a", recursive=True)
    w.watches.Check(pb.CheckWatchRequest(path="/w3", type=pb.WATCHER_TYPE_PERSISTENT),
                    metadata=w.md)
    w.watches.Check(pb.CheckWatchRequest(path="/w3/a",
                                         type=pb.WATCHER_TYPE_PERSISTENT_RECURSIVE),
                    metadata=w.md)
    other.set("/w3", b"1")
    other.set("/w3", b"2")  # persistent: fires again
    other.create("/w3/b")
    other.create("/w3/a/deep")  # recursive: creations below, no child events
    other.set("/w3/a/deep", b"x")
    assert stream.events(5) == [(CHANGED, "/w3"), (CHANGED, "/w3"), (CHILD, "/w3"),
                                (CREATED, "/w3/a/deep"), (CHANGED, "/w3/a/deep")]
    w.watches.Remove(pb.RemoveWatchRequest(path="/w3", type=pb.WATCHER_TYPE_ANY),
                     metadata=w.md)
    err = fails(lambda: w.watches.Check(
        pb.CheckWatchRequest(path="/w3", type=pb.WATCHER_TYPE_PERSISTENT), metadata=w.md))
    assert err.code() == grpc.StatusCode.NOT_FOUND and zk_code(err) == -121
    other.set("/w3", b"3")
    other.delete("/w3/a/deep")
    assert stream.events(1) == [(DELETED, "/w3/a/deep")]
    assert stream.quiet()


def test_events_before_a_stream_opens_are_kept(gclient: Make) -> None:
    w, other = gclient(), gclient()
    other.create("/w4", b"0")
    w.get("/w4", watch=True)
    other.set("/w4", b"1")  # fires while no stream is open
    assert w.events().events(1) == [(CHANGED, "/w4")]


def test_resume_after_reconnect_from_a_zxid(gclient: Make) -> None:
    w, other = gclient(), gclient()
    other.create("/w5", b"0")
    w.add_watch("/w5")
    first = w.events()
    other.set("/w5", b"1")
    m1 = first.next()
    first.cancel()
    z2 = other.set("/w5", b"2").header.zxid
    z3 = other.set("/w5", b"3").header.zxid
    w.reconnect()  # a new TCP connection; the session and its watches stay
    resumed = w.events(after_zxid=m1.zxid)
    assert [resumed.next().zxid, resumed.next().zxid] == [z2, z3]
    assert resumed.quiet()
    # Resuming from an older zxid replays what the server still retains.
    again = w.events(after_zxid=m1.zxid - 1)
    assert [again.next().zxid for _ in range(3)] == [m1.zxid, z2, z3]
    # Live events go to every open stream.
    z4 = other.set("/w5", b"4").header.zxid
    assert resumed.next().zxid == z4 and again.next().zxid == z4


@pytest.fixture(scope="module")
def small_log_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    # memory storage: the flood uses long paths, which the LMDB backend cannot store
    # beyond its 511-byte key limit.
    srv = start_grpc_server(tmp_path_factory.mktemp("grpc-flood"),
                            {"grpc.maxSessionEvents": 20, "kernel.storage": "memory"})
    yield srv
    srv.stop()


def test_flood_without_a_stream_is_bounded_then_out_of_range(
        small_log_server: GrpcServer) -> None:
    w, other = GClient(small_log_server.grpc_target), GClient(small_log_server.grpc_target)
    try:
        w.start()
        other.start()
        other.create("/f1")
        w.add_watch("/f1")
        for i in range(50):
            other.set("/f1", str(i).encode())
        err = w.events().ended()
        assert err is not None and err.code() == grpc.StatusCode.OUT_OF_RANGE
        # The 20 newest events are retained: resuming inside them works...
        last = w.get("/f1").header.zxid
        tail = w.events(after_zxid=last - 5)
        assert [tail.next().zxid for _ in range(5)] == list(range(last - 4, last + 1))
        # ...from before them it cannot.
        err = w.events(after_zxid=last - 30).ended()
        assert err is not None and err.code() == grpc.StatusCode.OUT_OF_RANGE
        # Recovery: re-read, then stream from that read's zxid.
        fresh = w.events(after_zxid=last)
        other.set("/f1", b"after")
        assert fresh.events(1) == [(CHANGED, "/f1")]
    finally:
        w.close()
        other.close()


def test_slow_stream_ends_with_resource_exhausted(small_log_server: GrpcServer) -> None:
    target = small_log_server.grpc_target
    # A reader that does not read, on a channel without BDP probing so that the
    # HTTP/2 window stays small and the server's writes block.
    w = GClient(target, options=[("grpc.http2.bdp_probe", 0)])
    other = GClient(target)
    try:
        w.start()
        other.start()
        path = "/f2-" + "x" * 3000
        other.create(path)
        w.add_watch(path)
        call = w.watches.Events(pb.EventsRequest(), metadata=w.md)
        other.set(path, b"first")
        next(call)
        for _ in range(300):
            other.set(path, b"flood")
        got = 0
        with pytest.raises(grpc.RpcError) as info:
            for _ in call:
                got += 1
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert got < 300
        # The session and its watch are fine: resume from a fresh read.
        last = w.get(path).header.zxid
        fresh = w.events(after_zxid=last)
        other.set(path, b"again")
        assert fresh.events(1) == [(CHANGED, path)]
    finally:
        w.close()
        other.close()


def test_event_log_bound_unit() -> None:
    """The log itself: never more than max_events, drops tracked for resumption."""
    import asyncio

    from plugins.transport_grpc.connection import GrpcConnection

    class FakeTransport:
        kernel = None

    async def run() -> None:
        conn = GrpcConnection(FakeTransport(), "127.0.0.1", 3)  # type: ignore[arg-type]
        for z in range(1, 11):
            conn.notify(3, "/p", z)
            conn.notify(4, "/q", z)  # two events per zxid
        assert len(conn.events) == 3
        # Kept: the second event of zxid 9 and both of zxid 10.
        assert conn.first_seq == 17 and conn.dropped_zxid == 9
        assert conn.start(0) is None  # undelivered events were dropped
        assert conn.start(8) is None  # an event of zxid 9 is gone
        assert conn.start(9) == 18
        assert [e.zxid for e in conn.take(18)] == [10, 10]
        assert conn.take(20) == []

    asyncio.run(run())
