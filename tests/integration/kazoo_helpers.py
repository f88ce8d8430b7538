"""Shared plumbing for the kazoo-driven integration tests (tests/integration/test_kazoo_*.py).

Everything here talks to a real server process over TCP through kazoo 2.11:

* ``ClientPool`` starts kazoo clients and always stops/closes them;
* ``WireLog`` records, from kazoo's reader thread, every frame header and watch
  notification in wire order, plus every ConnectResponse -- so tests can assert on
  ordering (notification before reply) and on notifications kazoo itself would drop
  (persistent watches, which kazoo 2.11 has no API for);
* raw request classes send opcodes kazoo has no API for (createContainer 19,
  createTTL 21, addWatch 106, checkWatches 17, removeWatches 18, getEphemerals 103,
  getAllChildrenNumber 104, whoAmI 107, multiRead 22, create2 inside multi) through
  kazoo's own request queue (``call``), and unvalidated paths for create/setData;
* ``TcpProxy`` sits between a client and the server so a test can cut a connection
  (session survives) or black-hole a client (session expires);
* ``SharedServer`` gives the tests of one module a common server (they use distinct
  paths); tests that look at global state (root stats, counts, 4lw numbers) still use
  the fresh per-test ``server`` fixture from tests/conftest.py.

The same tests run against Apache ZooKeeper 3.8 (``ZK_TEST_TARGET=zookeeper``) and
zkernel (default); ``IS_ZOOKEEPER`` gates the few assertions where 3.9 (zkernel) and
3.8.0 differ.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from collections import namedtuple
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.serialization import (
    Connect,
    Create,
    Create2,
    GetChildren,
    GetData,
    SetData,
    Watch,
    int_struct,
    long_struct,
    multiheader_struct,
    read_buffer,
    read_string,
    stat_struct,
)
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL, OPEN_ACL_UNSAFE

from tests.support.servers import ServerProcess, server_class

IS_ZOOKEEPER = os.environ.get("ZK_TEST_TARGET") == "zookeeper"
ZK38_DIFFERS = "ZooKeeper 3.8.0 differs here from 3.9 (which zkernel follows)"
only_zkernel = pytest.mark.skipif(IS_ZOOKEEPER, reason=ZK38_DIFFERS)

# Wire constants (client-protocol.md §8.1).
EV_CREATED, EV_DELETED, EV_CHANGED, EV_CHILD = 1, 2, 3, 4
WATCH_XID, PING_XID, AUTH_XID = -1, -2, -4

DEFAULT_TIMEOUT = 10.0


def wait_until(pred: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
               msg: str = "condition") -> Any:
    """Poll ``pred`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {msg}")
        time.sleep(interval)


def error_name(fn: Callable[[], Any]) -> str:
    """Run ``fn``; return the name of the exception it raised, or "ok"."""
    try:
        fn()
    except Exception as e:
        return type(e).__name__
    return "ok"


def now_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------------------
# Wire log
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One server frame as kazoo's reader thread saw it."""

    seq: int
    xid: int
    zxid: int
    err: int
    event_type: int | None = None  # for xid -1 notifications
    path: str | None = None
    state: int | None = None


@dataclass
class WireLog:
    """Records every server->client frame header (and decoded notification) in order."""

    frames: list[Frame] = field(default_factory=list)
    connects: list[Any] = field(default_factory=list)  # kazoo Connect namedtuples
    cond: threading.Condition = field(default_factory=threading.Condition)

    def attach(self, client: KazooClient) -> None:
        conn = client._connection
        orig_read_header = conn._read_header
        orig_invoke = conn._invoke

        def read_header(timeout: float) -> Any:
            header, buf, offset = orig_read_header(timeout)
            ev_type = path = state = None
            if header.xid == WATCH_XID:
                watch, _ = Watch.deserialize(buf, offset)
                ev_type, path, state = watch.type, watch.path, watch.state
            with self.cond:
                self.frames.append(Frame(len(self.frames), header.xid, header.zxid, header.err,
                                         ev_type, path, state))
                self.cond.notify_all()
            return header, buf, offset

        def invoke(timeout: float, request: Any, xid: int | None = None) -> Any:
            result = orig_invoke(timeout, request, xid)
            if isinstance(request, Connect):
                with self.cond:
                    self.connects.append(result[0])
                    self.cond.notify_all()
            return result

        conn._read_header = read_header
        conn._invoke = invoke

    # -- queries ---------------------------------------------------------------------
    def events(self) -> list[Frame]:
        with self.cond:
            return [f for f in self.frames if f.xid == WATCH_XID]

    def event_list(self) -> list[tuple[int, str]]:
        """[(event_type, path), ...] of all notifications so far, in wire order."""
        return [(f.event_type, f.path) for f in self.events()]  # type: ignore[misc]

    def mark(self) -> int:
        """A position; ``events_since(mark)`` returns what arrived afterwards."""
        with self.cond:
            return len(self.frames)

    def events_since(self, mark: int) -> list[tuple[int, str]]:
        with self.cond:
            return [(f.event_type, f.path) for f in self.frames[mark:]  # type: ignore[misc]
                    if f.xid == WATCH_XID]

    def wait_events(self, mark: int, count: int, timeout: float = 10.0) -> list[tuple[int, str]]:
        """Wait until at least ``count`` notifications arrived after ``mark``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                evs = [(f.event_type, f.path) for f in self.frames[mark:]
                       if f.xid == WATCH_XID]
                if len(evs) >= count:
                    return evs  # type: ignore[return-value]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} notifications, got {evs}")
                self.cond.wait(left)

    def index_of_event(self, event_type: int, path: str, start: int = 0) -> int:
        with self.cond:
            for f in self.frames[start:]:
                if f.xid == WATCH_XID and f.event_type == event_type and f.path == path:
                    return f.seq
        raise AssertionError(f"no notification {event_type} {path} in {self.frames[start:]}")

    def index_of_reply(self, zxid: int, start: int = 0) -> int:
        """The first ordinary reply (xid > 0) carrying ``zxid``."""
        with self.cond:
            for f in self.frames[start:]:
                if f.xid > 0 and f.zxid == zxid:
                    return f.seq
        raise AssertionError(f"no reply with zxid {zxid} in {self.frames[start:]}")


def wire(client: KazooClient) -> WireLog:
    log: WireLog = client._test_wire  # type: ignore[attr-defined]
    return log


# --------------------------------------------------------------------------------------
# Servers shared by the tests of one module
# --------------------------------------------------------------------------------------


class SharedServer:
    """One server for all tests of a module that do not depend on a fresh tree.

    Starting a server per test dominates the suite's runtime, so tests that only touch
    their own (distinct) paths share one. ``get()`` replaces the server with a fresh one
    if an earlier test left it dead, so one crash does not fail the rest of the module.
    """

    def __init__(self, tmp_path_factory: Any, cfg: dict[str, object] | None = None) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.cfg = cfg
        self.srv: ServerProcess | None = None
        self.retired: list[ServerProcess] = []

    def get(self) -> ServerProcess:
        if self.srv is not None and self.srv.proc is not None and self.srv.proc.poll() is None:
            return self.srv
        if self.srv is not None:
            self.srv.stop()
            self.retired.append(self.srv)
        self.srv = server_class()(self.tmp_path_factory.mktemp("shared"), self.cfg)
        self.srv.start()
        return self.srv

    def close(self) -> None:
        for srv in [*self.retired, self.srv]:
            if srv is not None:
                srv.stop()


# --------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------

FAST_RETRY = {"max_tries": -1, "delay": 0.05, "backoff": 1.5, "max_delay": 0.5,
              "max_jitter": 0.1}


class ClientPool:
    """Start kazoo clients for a test; ``close()`` stops and closes every one of them."""

    def __init__(self) -> None:
        self.clients: list[KazooClient] = []

    def new(self, target: Any, timeout: float = DEFAULT_TIMEOUT, start: bool = True,
            start_timeout: float = 15.0, **kwargs: Any) -> KazooClient:
        """A kazoo client for ``target`` (a ServerProcess, TcpProxy or host string)."""
        hosts = target if isinstance(target, str) else target.connect_string
        kwargs.setdefault("connection_retry", dict(FAST_RETRY))
        client = KazooClient(hosts=hosts, timeout=timeout, **kwargs)
        log = WireLog()
        log.attach(client)
        client._test_wire = log  # type: ignore[attr-defined]
        client._test_states = []  # type: ignore[attr-defined]
        client.add_listener(client._test_states.append)  # type: ignore[attr-defined]
        self.clients.append(client)
        if start:
            client.start(timeout=start_timeout)
        return client

    def close(self) -> None:
        for client in reversed(self.clients):
            with contextlib.suppress(Exception):
                client.stop()
            with contextlib.suppress(Exception):
                client.close()
        self.clients.clear()


def states(client: KazooClient) -> list[str]:
    """Connection-state changes seen by the client's listener (KazooState strings)."""
    return list(client._test_states)  # type: ignore[attr-defined]


class Watcher:
    """A kazoo watch callable that records the WatchedEvents it receives."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.cond = threading.Condition()

    def __call__(self, event: Any) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait(self, count: int = 1, timeout: float = 10.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.events) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} watch events, got {self.events}")
                self.cond.wait(left)
            return list(self.events)

    def simple(self) -> list[tuple[str, str]]:
        with self.cond:
            return [(e.type, e.path) for e in self.events]


# --------------------------------------------------------------------------------------
# Raw requests through kazoo's queue
# --------------------------------------------------------------------------------------


def call(client: KazooClient, request: Any, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """Send ``request`` (anything with ``type``/``serialize``) and wait for its result."""
    result = client.handler.async_result()
    client._call(request, result)
    return result.get(timeout=timeout)


def _read_stat(buf: bytes, offset: int) -> tuple[ZnodeStat, int]:
    return ZnodeStat._make(stat_struct.unpack_from(buf, offset)), offset + stat_struct.size


def _read_strings(buf: bytes, offset: int) -> tuple[list[str], int]:
    count = int_struct.unpack_from(buf, offset)[0]
    offset += 4
    out: list[str] = []
    for _ in range(max(count, 0)):
        s, offset = read_string(buf, offset)
        out.append(s)
    return out, offset


class BareOp:
    """A request with any opcode and no body (kazoo cannot send opcode 0: it omits a
    falsy type)."""

    def __init__(self, opcode: int) -> None:
        self.type = opcode

    def serialize(self) -> bytes:
        return b""

    def deserialize(self, buf: bytes, offset: int) -> bytes:
        return bytes(buf[offset:])


class RawCreate(namedtuple("RawCreate", "path data acl flags opcode")):
    """create (1) or create2 (15) with any path/flags: kazoo's own API validates paths."""

    @property
    def type(self) -> int:  # type: ignore[override]
        return int(self.opcode)

    def serialize(self) -> bytearray:
        return Create(self.path, self.data, self.acl, self.flags).serialize()

    def deserialize(self, buf: bytes, offset: int) -> Any:
        if self.opcode == 1:
            return read_string(buf, offset)[0]
        return Create2.deserialize(buf, offset)


def raw_create(path: str, data: bytes | None = b"", acl: Any = None, flags: int = 0,
               opcode: int = 1) -> RawCreate:
    return RawCreate(path, data, list(acl or OPEN_ACL_UNSAFE), flags, opcode)


class RawSetData(namedtuple("RawSetData", "path data version")):
    type = 5

    def serialize(self) -> bytearray:
        return SetData(self.path, self.data, self.version).serialize()

    @classmethod
    def deserialize(cls, buf: bytes, offset: int) -> ZnodeStat:
        return _read_stat(buf, offset)[0]


class CreateContainer(namedtuple("CreateContainer", "path data acl flags")):
    """createContainer (19): request = CreateRequest, reply = Create2Response."""

    type = 19

    def serialize(self) -> bytearray:
        return Create(self.path, self.data, self.acl, self.flags).serialize()

    @classmethod
    def deserialize(cls, buf: bytes, offset: int) -> tuple[str, ZnodeStat]:
        return Create2.deserialize(buf, offset)  # type: ignore[no-any-return]


def create_container(path: str, data: bytes = b"", acl: Any = None,
                     flags: int = 4) -> CreateContainer:
    return CreateContainer(path, data, list(acl or OPEN_ACL_UNSAFE), flags)


class CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    """createTTL (21): CreateTTLRequest (CreateRequest + long ttl), reply Create2Response."""

    type = 21

    def serialize(self) -> bytearray:
        b = Create(self.path, self.data, self.acl, self.flags).serialize()
        b.extend(long_struct.pack(self.ttl))
        return b

    @classmethod
    def deserialize(cls, buf: bytes, offset: int) -> tuple[str, ZnodeStat]:
        return Create2.deserialize(buf, offset)  # type: ignore[no-any-return]


def create_ttl(path: str, ttl: int, data: bytes = b"", flags: int = 5,
               acl: Any = None) -> CreateTTL:
    return CreateTTL(path, data, list(acl or OPEN_ACL_UNSAFE), flags, ttl)


class AddWatch(namedtuple("AddWatch", "path mode")):
    """addWatch (106); mode 0 = persistent, 1 = persistent-recursive. Reply: int 0."""

    type = 106

    def serialize(self) -> bytes:
        p = self.path.encode()
        return int_struct.pack(len(p)) + p + int_struct.pack(self.mode)

    @classmethod
    def deserialize(cls, buf: bytes, offset: int) -> int:
        return int(int_struct.unpack_from(buf, offset)[0])


class _PathType(namedtuple("_PathType", "path watcher_type")):
    def serialize(self) -> bytes:
        p = self.path.encode()
        return int_struct.pack(len(p)) + p + int_struct.pack(self.watcher_type)

    @classmethod
    def deserialize(cls, buf: bytes, offset: int) -> bool:
        return True


class CheckWatches(_PathType):
    """checkWatches (17): WatcherType 1 children, 2 data, 3 any, 4/5 persistent (3.9)."""

    type = 17


class RemoveWatches(_PathType):
    """removeWatches (18)."""

    type = 18


class GetEphemerals(namedtuple("GetEphemerals", "prefix")):
    type = 103

    def serialize(self) -> bytes:
        p = self.prefix.encode()
        return int_struct.pack(len(p)) + p

    @classmethod
    def deserialize(cls, buf: bytes, offset: int) -> list[str]:
        return _read_strings(buf, offset)[0]


class GetAllChildrenNumber(namedtuple("GetAllChildrenNumber", "path")):
    type = 104

    def serialize(self) -> bytes:
        p = self.path.encode()
        return int_struct.pack(len(p)) + p

    @classmethod
    def deserialize(cls, buf: bytes, offset: int) -> int:
        return int(int_struct.unpack_from(buf, offset)[0])


class WhoAmI:
    """whoAmI (107): no request body. (Not an empty namedtuple: kazoo skips delivering
    results for falsy request objects.)"""

    type = 107

    def serialize(self) -> bytes:
        return b""

    @classmethod
    def deserialize(cls, buf: bytes, offset: int) -> list[tuple[str, str]]:
        count = int_struct.unpack_from(buf, offset)[0]
        offset += 4
        out = []
        for _ in range(count):
            scheme, offset = read_string(buf, offset)
            user, offset = read_string(buf, offset)
            out.append((scheme, user or ""))
        return out


@dataclass(frozen=True)
class MultiResult:
    """One entry of a MultiResponse: the result header type, err and the decoded record."""

    type: int
    err: int
    value: Any = None


class Multi(namedtuple("Multi", "ops")):
    """multi (14) with any sub-op records; the reply keeps each result's header type.

    (kazoo's own Transaction parser only understands result type 1 for creates.)
    """

    type = 14

    def serialize(self) -> bytearray:
        b = bytearray()
        for op in self.ops:
            b.extend(multiheader_struct.pack(op.type, False, -1))
            b.extend(op.serialize())
        b.extend(multiheader_struct.pack(-1, True, -1))
        return b

    @classmethod
    def deserialize(cls, buf: bytes, offset: int) -> list[MultiResult]:
        results: list[MultiResult] = []
        while True:
            typ, done, err = multiheader_struct.unpack_from(buf, offset)
            offset += multiheader_struct.size
            if done:
                return results
            value: Any = None
            if typ == 1:
                value, offset = read_string(buf, offset)
            elif typ in (15, 19, 21):
                path, offset = read_string(buf, offset)
                stat, offset = _read_stat(buf, offset)
                value = (path, stat)
            elif typ == 5:
                value, offset = _read_stat(buf, offset)
            elif typ == 4:
                data, offset = read_buffer(buf, offset)
                stat, offset = _read_stat(buf, offset)
                value = (data, stat)
            elif typ == 8:
                value, offset = _read_strings(buf, offset)
            elif typ == -1:
                value = int_struct.unpack_from(buf, offset)[0]
                offset += 4
            elif typ not in (2, 13):
                raise ValueError(f"unknown multi result type {typ}")
            results.append(MultiResult(typ, err, value))


class MultiRead(Multi):
    """multiRead (22): getData / getChildren sub-ops, executed independently."""

    type = 22


def read_op_get_data(path: str) -> GetData:
    return GetData(path, False)


def read_op_get_children(path: str) -> GetChildren:
    return GetChildren(path, False)


# --------------------------------------------------------------------------------------
# TCP proxy
# --------------------------------------------------------------------------------------


class TcpProxy:
    """A localhost TCP forwarder in front of a server.

    ``drop()`` closes every proxied connection (the client reconnects through the proxy,
    the session lives on). ``block()`` drops and then refuses to forward new connections
    (they are accepted and closed at once) until ``unblock()``: the client can no longer
    reach the server, so its session expires server-side.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.05)
        self.port = int(self.listener.getsockname()[1])
        self.connect_string = f"127.0.0.1:{self.port}"
        self._blocked = threading.Event()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            if self._blocked.is_set():
                _hard_close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _hard_close(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def block(self) -> None:
        self._blocked.set()
        self.drop()

    def unblock(self) -> None:
        self._blocked.clear()

    def close(self) -> None:
        self._closing.set()
        self.drop()
        with contextlib.suppress(OSError):
            self.listener.close()
        self._thread.join(2)


def _hard_close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.close()


@contextlib.contextmanager
def tcp_proxy(server: Any) -> Iterator[TcpProxy]:
    proxy = TcpProxy(server.host, server.port)
    try:
        yield proxy
    finally:
        proxy.close()


# --------------------------------------------------------------------------------------
# Four-letter words with arguments
# --------------------------------------------------------------------------------------


def send_raw(port: int, payload: bytes, host: str = "127.0.0.1", timeout: float = 5.0) -> bytes:
    """Send raw bytes on a fresh connection and read until the server closes it."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(payload)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks)


def stmk(port: int, mask: int) -> str:
    return send_raw(port, b"stmk" + struct.pack(">q", mask)).decode()


def acl_tuple(acl: ACL) -> tuple[int, str, str]:
    return (acl.perms, acl.id.scheme, acl.id.id)
