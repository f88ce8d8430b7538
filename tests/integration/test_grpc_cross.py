"""gRPC and Jute on one server and one tree: kazoo sees what gRPC clients do, and the
other way round, with the same sessions, watches, ACLs and auth."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.protocol.states import EventType, WatchedEvent
from kazoo.security import make_digest_acl

from plugins.transport_grpc.v1 import zkernel_pb2 as pb
from tests.integration.test_grpc_support import (
    GClient,
    GrpcServer,
    fails,
    gclient,
    gserver,
    only_zkernel,
    zk_code,
)

pytestmark = only_zkernel
__all__ = ["gclient", "gserver"]  # fixtures

Make = Callable[..., GClient]


@pytest.fixture
def kazoo(gserver: GrpcServer) -> Iterator[Callable[..., KazooClient]]:
    made: list[KazooClient] = []

    def make(auth: list[tuple[str, str]] | None = None) -> KazooClient:
        z = KazooClient(gserver.connect_string, timeout=5.0, auth_data=auth)
        made.append(z)
        z.start(timeout=10)
        return z

    yield make
    for z in made:
        z.stop()
        z.close()


def _wait(ev: threading.Event, what: str) -> None:
    assert ev.wait(10), f"timed out waiting for {what}"


def test_ephemeral_over_grpc_is_seen_by_kazoo_and_goes_with_the_session(
        gclient: Make, kazoo: Callable[..., KazooClient]) -> None:
    g = gclient()
    z = kazoo()
    g.create("/x-eph")
    g.create("/x-eph/e", b"hello", pb.EPHEMERAL)
    data, stat = z.get("/x-eph/e")
    assert data == b"hello" and stat.ephemeralOwner == g.session_id
    gone = threading.Event()

    def watcher(event: WatchedEvent) -> None:
        if event.type == EventType.DELETED:
            gone.set()

    assert z.exists("/x-eph/e", watch=watcher) is not None
    g.close_session()
    g.token = ""
    _wait(gone, "kazoo to see the gRPC session's ephemeral deleted")
    assert z.exists("/x-eph/e") is None


def test_grpc_watch_fires_on_a_kazoo_change(gclient: Make,
                                            kazoo: Callable[..., KazooClient]) -> None:
    g = gclient()
    z = kazoo()
    z.create("/x-w1", b"0")
    stream = g.events()
    g.get("/x-w1", watch=True)
    g.children("/x-w1", watch=True)
    g.add_watch("/x-w1", recursive=True)
    z.set("/x-w1", b"1")
    z.create("/x-w1/kid")
    # One event per watcher and change, although two watches cover /x-w1's data.
    assert stream.events(1) == [(pb.NODE_DATA_CHANGED, "/x-w1")]
    assert sorted(stream.events(2)) == [(pb.NODE_CREATED, "/x-w1/kid"),
                                        (pb.NODE_CHILDREN_CHANGED, "/x-w1")]
    assert stream.quiet()


def test_kazoo_watch_fires_on_a_grpc_change(gclient: Make,
                                            kazoo: Callable[..., KazooClient]) -> None:
    g = gclient()
    z = kazoo()
    g.create("/x-w2", b"0")
    seen: list[tuple[str, str]] = []
    fired = threading.Event()

    def watcher(event: WatchedEvent) -> None:
        seen.append((event.type, event.path))
        if len(seen) == 2:
            fired.set()

    z.get("/x-w2", watch=watcher)
    z.get_children("/x-w2", watch=watcher)
    g.set("/x-w2", b"1")
    g.create("/x-w2/kid")
    _wait(fired, "kazoo watches")
    assert sorted(seen) == [(EventType.CHANGED, "/x-w2"), (EventType.CHILD, "/x-w2")]


def test_acls_and_digest_auth_are_the_same_on_both_transports(
        gclient: Make, kazoo: Callable[..., KazooClient]) -> None:
    # Made over Jute with a digest ACL: gRPC needs the same credentials.
    zalice = kazoo(auth=[("digest", "alice:secret")])
    zalice.create("/x-acl-j", b"j", acl=[make_digest_acl("alice", "secret", all=True)])
    anon = gclient()
    err = fails(lambda: anon.get("/x-acl-j"))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and zk_code(err) == -102
    assert gclient(auth=("digest alice:secret",)).get("/x-acl-j").data == b"j"
    anon.sessions.Authenticate(pb.AuthenticateRequest(scheme="digest",
                                                      credentials=b"alice:secret"),
                               metadata=anon.md)
    assert anon.get("/x-acl-j").data == b"j"
    wrong = gclient(auth=("digest alice:wrong",))
    assert zk_code(fails(lambda: wrong.get("/x-acl-j"))) == -102
    # Made over gRPC with the ACL "auth" (the creator's ids): kazoo needs them too.
    galice = gclient(auth=("digest alice:secret",))
    galice.create("/x-acl-g", b"g",
                  acl=[pb.ACL(perms=pb.PERM_ALL, id=pb.Id(scheme="auth", id=""))])
    acl, _ = zalice.get_acls("/x-acl-g")
    assert [(a.perms, a.id.scheme, a.id.id) for a in acl] == \
        [(31, "digest", make_digest_acl("alice", "secret").id.id)]
    with pytest.raises(NoAuthError):
        kazoo().get("/x-acl-g")
    assert zalice.get("/x-acl-g")[0] == b"g"
    z = kazoo()
    z.add_auth("digest", "alice:secret")
    assert z.get("/x-acl-g")[0] == b"g"


def test_a_session_moves_from_grpc_to_jute(gclient: Make, gserver: GrpcServer) -> None:
    """The same session id and password resume over Jute (ZooKeeper's session move):
    the gRPC side's connection is closed and re-attaches on its next call."""
    g = gclient()
    g.create("/x-move", mode=pb.EPHEMERAL)
    sid, password = g.session_id, bytes.fromhex(g.token.split(":")[1])
    z = KazooClient(gserver.connect_string, timeout=5.0)
    z._session_id, z._session_passwd = sid, password  # resume, as a reconnect would
    try:
        z.start(timeout=10)
        assert z.client_id[0] == sid
        assert z.exists("/x-move").ephemeralOwner == sid
        time.sleep(0.1)
        # The gRPC client takes the session back on its next call.
        assert g.exists("/x-move").stat.ephemeral_owner == sid
    finally:
        z.stop()
        z.close()
