"""Plumbing for the gRPC integration tests (tests/integration/test_grpc_*.py); no tests.

* ``start_grpc_server`` starts a real zkernel process with both transports (Jute on
  ``clientPort``, gRPC on ``grpcPort``) and waits until grpc.health.v1 says SERVING;
* ``GClient`` is a gRPC client of one session built from the checked-in Python stubs,
  with a few shorthands, and ``EventStream`` reads a session's watch events in a
  background thread so tests can wait for them with a timeout;
* ``zk_code`` / ``zk_detail`` read the ZooKeeper error of a failed call.

Only zkernel speaks gRPC: under ``ZK_TEST_TARGET=zookeeper`` these tests are skipped.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from plugins.transport_grpc.v1 import zkernel_pb2 as pb
from plugins.transport_grpc.v1 import zkernel_pb2_grpc as pbg
from tests.support.servers import ZkernelServer, free_port

IS_ZOOKEEPER = os.environ.get("ZK_TEST_TARGET") == "zookeeper"
only_zkernel = pytest.mark.skipif(IS_ZOOKEEPER, reason="gRPC is zkernel's own API")

TIMEOUT = 10.0


class GrpcServer(ZkernelServer):
    """A zkernel process with the Jute and the gRPC transports."""

    def __init__(self, workdir: Path, cfg: dict[str, object] | None = None) -> None:
        self.grpc_port = free_port()
        merged: dict[str, object] = {"kernel.transports": "jute,grpc",
                                     "grpcPort": self.grpc_port, "tickTime": 250}
        merged.update(cfg or {})
        super().__init__(workdir, merged)

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout: float = 30.0) -> GrpcServer:
        super().start(timeout)
        wait_healthy(self.grpc_target, timeout)
        return self


def wait_healthy(target: str, timeout: float = 30.0) -> None:
    """Until grpc.health.v1 reports the server SERVING."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while True:
            try:
                r = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gRPC not serving on {target} after {timeout}s")
            time.sleep(0.05)


def start_grpc_server(workdir: Path, cfg: dict[str, object] | None = None) -> GrpcServer:
    """A started server; the caller stops it."""
    return GrpcServer(workdir, cfg).start()


def zk_code(e: grpc.RpcError) -> int | None:
    """The ZooKeeper error code of a failed call (trailer ``zk-error-code``)."""
    assert isinstance(e, grpc.Call)
    for k, v in e.trailing_metadata() or ():
        if k == "zk-error-code":
            return int(v)
    return None


def zk_detail(e: grpc.RpcError) -> pb.ErrorDetail:
    """The ErrorDetail of a failed call (trailer ``zk-error-bin``)."""
    assert isinstance(e, grpc.Call)
    for k, v in e.trailing_metadata() or ():
        if k == "zk-error-bin":
            return pb.ErrorDetail.FromString(v)
    raise AssertionError("no zk-error-bin trailer")


def fails(fn: Callable[[], Any]) -> grpc.RpcError:
    """Run a call that must fail; return its error."""
    try:
        fn()
    except grpc.RpcError as e:
        return e
    raise AssertionError("the call succeeded")


class EventStream:
    """Watches.Events read in a background thread."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.q: queue.Queue[Any] = queue.Queue()
        self.error: grpc.RpcError | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        try:
            for msg in self.call:
                self.q.put(msg)
        except grpc.RpcError as e:
            self.error = e
        finally:
            self.done.set()

    def next(self, timeout: float = TIMEOUT) -> pb.EventsResponse:
        """The next message (all events of one zxid)."""
        try:
            msg: pb.EventsResponse = self.q.get(timeout=timeout)
            return msg
        except queue.Empty:
            raise AssertionError(f"no watch event within {timeout}s "
                                 f"(stream error: {self.error})") from None

    def events(self, n: int, timeout: float = TIMEOUT) -> list[tuple[int, str]]:
        """The next ``n`` events as (type, path)."""
        out: list[tuple[int, str]] = []
        while len(out) < n:
            out.extend((e.type, e.path) for e in self.next(timeout).events)
        return out

    def quiet(self, wait: float = 0.3) -> bool:
        """True if no message arrives within ``wait`` seconds."""
        try:
            self.q.get(timeout=wait)
        except queue.Empty:
            return True
        return False

    def ended(self, timeout: float = TIMEOUT) -> grpc.RpcError | None:
        """Wait for the stream to end; its error, if any."""
        assert self.done.wait(timeout), "the event stream did not end"
        return self.error

    def cancel(self) -> None:
        self.call.cancel()
        self.done.wait(TIMEOUT)


class GClient:
    """A gRPC client of one zkernel session (stubs plus shorthands)."""

    def __init__(self, target: str, options: list[tuple[str, Any]] | None = None) -> None:
        self.target = target
        self.options = options or []
        self.channel = grpc.insecure_channel(target, options=self.options)
        self.sessions = pbg.SessionsStub(self.channel)
        self.nodes = pbg.NodesStub(self.channel)
        self.watches = pbg.WatchesStub(self.channel)
        self.token = ""
        self.session_id = 0
        self.timeout_ms = 0
        self.streams: list[EventStream] = []

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        return (("zk-session", self.token),)

    def start(self, timeout_ms: int = 5000,
              auth: tuple[str, ...] = ()) -> pb.CreateSessionResponse:
        md = tuple(("zk-auth", a) for a in auth)
        r: pb.CreateSessionResponse = self.sessions.Create(
            pb.CreateSessionRequest(timeout_ms=timeout_ms), metadata=md, timeout=TIMEOUT)
        self.token, self.session_id, self.timeout_ms = r.token, r.session_id, r.timeout_ms
        return r

    def reconnect(self) -> None:
        """A new channel (new TCP connection) for the same session."""
        self.channel.close()
        self.channel = grpc.insecure_channel(self.target, options=self.options)
        self.sessions = pbg.SessionsStub(self.channel)
        self.nodes = pbg.NodesStub(self.channel)
        self.watches = pbg.WatchesStub(self.channel)

    # shorthands (a failing call raises grpc.RpcError)
    def create(self, path: str, data: bytes = b"", mode: int = pb.PERSISTENT,
               acl: list[pb.ACL] | None = None, ttl_ms: int = 0) -> pb.CreateResponse:
        r: pb.CreateResponse = self.nodes.Create(
            pb.CreateRequest(path=path, data=data, mode=mode, acl=acl or [], ttl_ms=ttl_ms),
            metadata=self.md, timeout=TIMEOUT)
        return r

    def get(self, path: str, watch: bool = False) -> pb.GetResponse:
        r: pb.GetResponse = self.nodes.Get(pb.GetRequest(path=path, watch=watch),
                                           metadata=self.md, timeout=TIMEOUT)
        return r

    def set(self, path: str, data: bytes, version: int | None = None) -> pb.SetResponse:
        req = pb.SetRequest(path=path, data=data)
        if version is not None:
            req.version = version
        r: pb.SetResponse = self.nodes.Set(req, metadata=self.md, timeout=TIMEOUT)
        return r

    def delete(self, path: str, version: int | None = None) -> pb.DeleteResponse:
        req = pb.DeleteRequest(path=path)
        if version is not None:
            req.version = version
        r: pb.DeleteResponse = self.nodes.Delete(req, metadata=self.md, timeout=TIMEOUT)
        return r

    def exists(self, path: str, watch: bool = False) -> pb.ExistsResponse:
        r: pb.ExistsResponse = self.nodes.Exists(pb.ExistsRequest(path=path, watch=watch),
                                                 metadata=self.md, timeout=TIMEOUT)
        return r

    def children(self, path: str, watch: bool = False) -> pb.ChildrenResponse:
        r: pb.ChildrenResponse = self.nodes.Children(
            pb.ChildrenRequest(path=path, watch=watch), metadata=self.md, timeout=TIMEOUT)
        return r

    def add_watch(self, path: str, recursive: bool = False) -> None:
        mode = (pb.ADD_WATCH_MODE_PERSISTENT_RECURSIVE if recursive
                else pb.ADD_WATCH_MODE_PERSISTENT)
        self.watches.Add(pb.AddWatchRequest(path=path, mode=mode), metadata=self.md,
                         timeout=TIMEOUT)

    def events(self, after_zxid: int = 0) -> EventStream:
        s = EventStream(self.watches.Events(pb.EventsRequest(after_zxid=after_zxid),
                                            metadata=self.md))
        self.streams.append(s)
        return s

    def close_session(self) -> None:
        self.sessions.End(pb.EndSessionRequest(), metadata=self.md, timeout=TIMEOUT)

    def close(self) -> None:
        for s in self.streams:
            s.call.cancel()
        if self.token:
            try:
                self.close_session()
            except grpc.RpcError:
                pass
        self.channel.close()


@pytest.fixture(scope="module")
def gserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    """One server per module with both transports (tests use distinct paths)."""
    if IS_ZOOKEEPER:
        pytest.skip("gRPC is zkernel's own API")
    srv = GrpcServer(tmp_path_factory.mktemp("grpc"))
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def gclient(gserver: GrpcServer) -> Iterator[Callable[..., GClient]]:
    """Make gRPC clients with a started session: ``gclient(timeout_ms=..., auth=...)``."""
    made: list[GClient] = []

    def make(target: str | None = None, start: bool = True, **kw: Any) -> GClient:
        c = GClient(target or gserver.grpc_target)
        made.append(c)
        if start:
            c.start(**kw)
        return c

    yield make
    for c in made:
        c.close()
