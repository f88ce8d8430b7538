"""Every zkernel.v1 operation against a real server over gRPC, and the error mapping."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from plugins.transport_grpc.v1 import zkernel_pb2 as pb
from tests.integration.test_grpc_support import (
    GClient,
    GrpcServer,
    fails,
    gclient,
    gserver,
    only_zkernel,
    zk_code,
    zk_detail,
)
from tests.support.servers import REPO

pytestmark = only_zkernel
__all__ = ["gclient", "gserver"]  # fixtures

Make = Callable[..., GClient]
ALL = pb.PERM_ALL


def digest_acl(user: str, password: str, perms: int = ALL) -> pb.ACL:
    import base64
    import hashlib

    h = base64.b64encode(hashlib.sha1(f"{user}:{password}".encode()).digest()).decode()
    return pb.ACL(perms=perms, id=pb.Id(scheme="digest", id=f"{user}:{h}"))


def test_stubs_are_current() -> None:
    """The checked-in stubs are what the pinned grpcio-tools makes from the .proto."""
    r = subprocess.run([sys.executable, "-m", "plugins.transport_grpc.regen", "--check"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_health_and_reflection(gserver: GrpcServer) -> None:
    with grpc.insecure_channel(gserver.grpc_target) as ch:
        h = health_pb2_grpc.HealthStub(ch)
        for name in ("", "zkernel.v1.Nodes", "zkernel.v1.Sessions", "zkernel.v1.Watches"):
            r = h.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert r.status == health_pb2.HealthCheckResponse.SERVING
        rs = reflection_pb2_grpc.ServerReflectionStub(ch)
        answers = list(rs.ServerReflectionInfo(iter([
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="zkernel.v1.Nodes"),
        ]), timeout=5))
        names = {s.name for s in answers[0].list_services_response.service}
        assert {"zkernel.v1.Nodes", "zkernel.v1.Sessions", "zkernel.v1.Watches",
                "grpc.health.v1.Health"} <= names
        assert answers[1].file_descriptor_response.file_descriptor_proto


def test_create_every_mode(gclient: Make) -> None:
    c = gclient()
    r = c.create("/ops-modes", b"p")
    assert r.path == "/ops-modes" and r.stat.version == 0 and r.stat.data_length == 1
    assert r.header.zxid == r.stat.czxid and r.header.session_id == c.session_id
    e = c.create("/ops-modes/e", b"e", pb.EPHEMERAL)
    assert e.stat.ephemeral_owner == c.session_id
    s1 = c.create("/ops-modes/s-", mode=pb.PERSISTENT_SEQUENTIAL)
    s2 = c.create("/ops-modes/s-", mode=pb.EPHEMERAL_SEQUENTIAL)
    assert s1.path == "/ops-modes/s-0000000001"
    assert s2.path == "/ops-modes/s-0000000002" and s2.stat.ephemeral_owner == c.session_id
    k = c.create("/ops-modes/c", mode=pb.CONTAINER)
    assert k.stat.ephemeral_owner == 0
    t = c.create("/ops-modes/t", mode=pb.PERSISTENT_WITH_TTL, ttl_ms=60000)
    assert t.stat.ephemeral_owner == 0
    ts = c.create("/ops-modes/ts-", mode=pb.PERSISTENT_SEQUENTIAL_WITH_TTL, ttl_ms=60000)
    assert ts.path == "/ops-modes/ts-0000000005"
    kids = c.children("/ops-modes")
    assert sorted(kids.children) == ["c", "e", "s-0000000001", "s-0000000002", "t",
                                     "ts-0000000005"]
    assert kids.stat.num_children == 6
    err = fails(lambda: c.create("/ops-modes/t2", mode=pb.PERSISTENT_WITH_TTL, ttl_ms=0))
    assert zk_code(err) == -8 and err.code() == grpc.StatusCode.INVALID_ARGUMENT
    err = fails(lambda: c.create("/ops-modes/e/x"))
    assert zk_code(err) == -108 and err.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_get_set_delete_exists_with_versions(gclient: Make) -> None:
    c = gclient()
    c.create("/ops-crud", b"one")
    g = c.get("/ops-crud")
    assert g.data == b"one" and g.stat.version == 0
    s = c.set("/ops-crud", b"two", version=0)
    assert s.stat.version == 1 and s.stat.mzxid == s.header.zxid
    assert c.set("/ops-crud", b"three").stat.version == 2  # version absent: any
    err = fails(lambda: c.set("/ops-crud", b"x", version=0))
    assert err.code() == grpc.StatusCode.ABORTED and zk_code(err) == -103
    ex = c.exists("/ops-crud")
    assert ex.exists and ex.stat.version == 2 and ex.stat.data_length == 5
    assert not c.exists("/ops-crud-none").exists
    err = fails(lambda: c.delete("/ops-crud", version=1))
    assert zk_code(err) == -103
    c.delete("/ops-crud", version=2)
    err = fails(lambda: c.get("/ops-crud"))
    assert err.code() == grpc.StatusCode.NOT_FOUND and zk_code(err) == -101
    d = zk_detail(err)
    assert d.code == -101 and d.name == "NONODE" and "/ops-crud" in d.message


@pytest.mark.parametrize(("call", "status", "code"), [
    (lambda c: c.get("/ops-err/missing"), grpc.StatusCode.NOT_FOUND, -101),
    (lambda c: c.create("/ops-err"), grpc.StatusCode.ALREADY_EXISTS, -110),
    (lambda c: c.delete("/ops-err"), grpc.StatusCode.FAILED_PRECONDITION, -111),
    (lambda c: c.set("/ops-err", b"", version=7), grpc.StatusCode.ABORTED, -103),
    (lambda c: c.create("bad-path"), grpc.StatusCode.INVALID_ARGUMENT, -8),
    (lambda c: c.create("/ops-err/x", acl=[pb.ACL(perms=31, id=pb.Id(scheme="digest",
                                                                     id="nocolon"))]),
     grpc.StatusCode.INVALID_ARGUMENT, -114),
    (lambda c: c.get("/ops-err/locked"), grpc.StatusCode.PERMISSION_DENIED, -102),
    (lambda c: c.watches.Remove(pb.RemoveWatchRequest(path="/ops-err",
                                                      type=pb.WATCHER_TYPE_DATA),
                                metadata=c.md),
     grpc.StatusCode.NOT_FOUND, -121),
    (lambda c: c.sessions.Authenticate(pb.AuthenticateRequest(scheme="nope",
                                                              credentials=b"x"),
                                       metadata=c.md),
     grpc.StatusCode.UNAUTHENTICATED, -115),
])
def test_error_mapping(gclient: Make, call: Callable[[GClient], object],
                       status: grpc.StatusCode, code: int) -> None:
    c = gclient()
    try:
        c.create("/ops-err")
        c.create("/ops-err/child")
        c.create("/ops-err/locked", acl=[digest_acl("someone", "else")])
    except grpc.RpcError:
        pass  # made by an earlier case
    err = fails(lambda: call(c))
    assert err.code() == status
    assert zk_code(err) == code
    assert zk_detail(err).code == code


def test_session_token_errors(gserver: GrpcServer, gclient: Make) -> None:
    c = gclient(start=False)
    err = fails(lambda: c.get("/"))  # no zk-session at all
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and zk_code(err) == -8
    c.token = "not a token"
    assert zk_code(fails(lambda: c.get("/"))) == -8
    c.token = "0123456789abcdef:" + "00" * 16  # no such session
    err = fails(lambda: c.get("/"))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and zk_code(err) == -112
    good = gclient()
    c.token = good.token.split(":")[0] + ":" + "00" * 16  # wrong password
    assert zk_code(fails(lambda: c.get("/"))) == -112
    assert good.get("/").stat.num_children >= 1  # the real owner is unaffected


def test_acls_and_auth(gclient: Make) -> None:
    alice = gclient(auth=("digest alice:secret",))
    acl = [digest_acl("alice", "secret"), pb.ACL(perms=pb.PERM_READ,
                                                 id=pb.Id(scheme="world", id="anyone"))]
    alice.create("/ops-acl", b"a", acl=acl)
    got = alice.nodes.GetACL(pb.GetACLRequest(path="/ops-acl"), metadata=alice.md)
    assert [(a.perms, a.id.scheme, a.id.id) for a in got.acl] == \
        [(a.perms, a.id.scheme, a.id.id) for a in acl]
    assert got.stat.aversion == 0
    bob = gclient()
    assert bob.get("/ops-acl").data == b"a"  # world may read
    err = fails(lambda: bob.set("/ops-acl", b"b"))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and zk_code(err) == -102
    # Without ADMIN a reader sees digest ids redacted, as over Jute.
    red = bob.nodes.GetACL(pb.GetACLRequest(path="/ops-acl"), metadata=bob.md)
    assert red.acl[0].id.id == "alice:x"
    bob.sessions.Authenticate(pb.AuthenticateRequest(scheme="digest",
                                                     credentials=b"alice:secret"),
                              metadata=bob.md)
    assert bob.set("/ops-acl", b"b").stat.version == 1
    who = bob.sessions.WhoAmI(pb.WhoAmIRequest(), metadata=bob.md)
    assert ("digest", "alice") in {(i.scheme, i.id) for i in who.ids}
    r = alice.nodes.SetACL(pb.SetACLRequest(path="/ops-acl", acl=[acl[0]], version=0),
                           metadata=alice.md)
    assert r.stat.aversion == 1
    assert zk_code(fails(lambda: alice.nodes.SetACL(
        pb.SetACLRequest(path="/ops-acl", acl=[acl[0]], version=0),
        metadata=alice.md))) == -103
    carol = gclient()
    assert zk_code(fails(lambda: carol.get("/ops-acl"))) == -102
    # Credentials at session creation (metadata zk-auth) work like Authenticate.
    dave = gclient(auth=("digest alice:secret",))
    assert dave.get("/ops-acl").data == b"b"
    # ip ACLs match the gRPC peer's address, as they match a Jute client's.
    alice.create("/ops-acl-ip", b"ip", acl=[
        pb.ACL(perms=pb.PERM_READ, id=pb.Id(scheme="ip", id="127.0.0.0/8")),
        pb.ACL(perms=pb.PERM_ALL, id=pb.Id(scheme="digest", id=acl[0].id.id))])
    assert carol.get("/ops-acl-ip").data == b"ip"
    alice.create("/ops-acl-ip10", b"ip", acl=[
        pb.ACL(perms=pb.PERM_READ, id=pb.Id(scheme="ip", id="10.0.0.1"))])
    assert zk_code(fails(lambda: carol.get("/ops-acl-ip10"))) == -102
    # A refused credential at creation fails the call and leaves no session behind.
    eve = gclient(start=False)
    err = fails(lambda: eve.start(auth=("nosuchscheme x",)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and zk_code(err) == -115


def test_sync_ephemerals_and_counts(gclient: Make) -> None:
    c = gclient()
    c.create("/ops-misc")
    c.create("/ops-misc/a")
    c.create("/ops-misc/a/b")
    c.create("/ops-misc/e1", mode=pb.EPHEMERAL)
    c.create("/ops-misc/a/e2", mode=pb.EPHEMERAL)
    s = c.nodes.Sync(pb.SyncRequest(path="/ops-misc"), metadata=c.md)
    assert s.path == "/ops-misc" and s.header.zxid >= 1
    n = c.nodes.CountDescendants(pb.CountDescendantsRequest(path="/ops-misc"), metadata=c.md)
    assert n.count == 4
    e = c.nodes.GetEphemerals(pb.GetEphemeralsRequest(prefix="/ops-misc/a"), metadata=c.md)
    assert list(e.paths) == ["/ops-misc/a/e2"]
    e = c.nodes.GetEphemerals(pb.GetEphemeralsRequest(), metadata=c.md)
    assert list(e.paths) == ["/ops-misc/a/e2", "/ops-misc/e1"]


def test_multi_and_multi_read(gclient: Make) -> None:
    c = gclient()
    c.create("/ops-multi", b"0")
    ok = c.nodes.Multi(pb.MultiRequest(ops=[
        pb.Op(create=pb.CreateRequest(path="/ops-multi/a", data=b"a")),
        pb.Op(create=pb.CreateRequest(path="/ops-multi/s-", mode=pb.PERSISTENT_SEQUENTIAL)),
        pb.Op(set=pb.SetRequest(path="/ops-multi", data=b"1", version=0)),
        pb.Op(check=pb.CheckRequest(path="/ops-multi/a", version=0)),
        pb.Op(delete=pb.DeleteRequest(path="/ops-multi/a")),
    ]), metadata=c.md)
    kinds = [r.WhichOneof("result") for r in ok.results]
    assert kinds == ["create", "create", "set", "check", "delete"]
    assert ok.results[1].create.path == "/ops-multi/s-0000000001"
    assert ok.results[0].create.stat.czxid == ok.header.zxid
    assert ok.results[2].set.stat.version == 1
    err = fails(lambda: c.nodes.Multi(pb.MultiRequest(ops=[
        pb.Op(create=pb.CreateRequest(path="/ops-multi/b")),
        pb.Op(check=pb.CheckRequest(path="/ops-multi", version=0)),
        pb.Op(delete=pb.DeleteRequest(path="/ops-multi")),
    ]), metadata=c.md))
    assert err.code() == grpc.StatusCode.ABORTED and zk_code(err) == -103
    d = zk_detail(err)
    assert d.op_index == 1 and list(d.op_codes) == [0, -103, -2]
    assert not c.exists("/ops-multi/b").exists  # nothing applied
    assert zk_code(fails(lambda: c.nodes.Multi(pb.MultiRequest(ops=[pb.Op()]),
                                               metadata=c.md))) == -8
    rd = c.nodes.MultiRead(pb.MultiReadRequest(ops=[
        pb.ReadOp(get="/ops-multi"), pb.ReadOp(children="/ops-multi"),
        pb.ReadOp(get="/ops-multi/none"),
    ]), metadata=c.md)
    assert rd.results[0].get.data == b"1" and rd.results[0].get.stat.version == 1
    assert list(rd.results[1].children.children) == ["s-0000000001"]
    assert rd.results[2].error == -101


def test_message_size_is_jute_maxbuffer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.integration.test_grpc_support import start_grpc_server

    srv = start_grpc_server(tmp_path, {"jute.maxbuffer": 4096})
    c = GClient(srv.grpc_target)
    try:
        c.start()
        c.create("/big", b"x" * 3000)
        err = fails(lambda: c.create("/big2", b"x" * 5000))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert c.get("/big").stat.data_length == 3000
    finally:
        c.close()
        srv.stop()
