"""The gRPC port over TLS (``grpc.ssl=true``) with the client port's ``ssl.*`` keys.

As on ``secureClientPort``: the server presents its certificate, ``ssl.clientAuth=need``
requires a client certificate from the trusted CA, and that certificate's subject
becomes the session's ``x509`` id, so x509 ACLs apply to gRPC and Jute clients alike.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from plugins.transport_grpc.v1 import zkernel_pb2 as pb
from plugins.transport_grpc.v1 import zkernel_pb2_grpc as pbg
from tests.integration.test_grpc_support import GrpcServer, only_zkernel, zk_code
from tests.support.certs import CertFactory, Issued
from tests.support.servers import ZkernelServer

pytestmark = only_zkernel

CLIENT_DN = "CN=client,O=zkernel-test,C=DE"
TIMEOUT = 10.0


class _Pki:
    def __init__(self, d: Path) -> None:
        self.ca = CertFactory(d / "ca")
        self.server = self.ca.issue("server", "localhost", server=True)
        self.client = self.ca.issue("client", "client")
        self.rogue = CertFactory(d / "rogue", "rogue CA").issue("rogue", "client")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> _Pki:
    return _Pki(tmp_path_factory.mktemp("grpc-pki"))


@pytest.fixture(scope="module")
def server(pki: _Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    srv = GrpcServer(tmp_path_factory.mktemp("grpc-tls"), {
        "grpc.ssl": "true",
        "ssl.keyStore.location": pki.server.keystore_pem,
        "ssl.trustStore.location": pki.ca.ca_pem,
        "ssl.clientAuth": "need",
    })
    ZkernelServer.start(srv)  # the gRPC health probe of GrpcServer.start is plaintext
    try:
        yield srv
    finally:
        srv.stop()


def _channel(srv: GrpcServer, ca: Path, cert: Issued | None) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=cert.key_pem.read_bytes() if cert else None,
        certificate_chain=cert.cert_pem.read_bytes() if cert else None)
    return grpc.secure_channel(srv.grpc_target, creds,
                               options=[("grpc.ssl_target_name_override", "localhost")])


def _create_session(ch: grpc.Channel) -> str:
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            r = pbg.SessionsStub(ch).Create(pb.CreateSessionRequest(timeout_ms=5000),
                                            timeout=TIMEOUT)
            return str(r.token)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_client_certificate_is_the_sessions_x509_id(server: GrpcServer, pki: _Pki) -> None:
    with _channel(server, pki.ca.ca_pem, pki.client) as ch:
        md = (("zk-session", _create_session(ch)),)
        who = pbg.SessionsStub(ch).WhoAmI(pb.WhoAmIRequest(), metadata=md, timeout=TIMEOUT)
        assert ("x509", CLIENT_DN) in {(i.scheme, i.id) for i in who.ids}
        nodes = pbg.NodesStub(ch)
        acl = [pb.ACL(perms=31, id=pb.Id(scheme="x509", id=CLIENT_DN))]
        nodes.Create(pb.CreateRequest(path="/grpc-x509", data=b"mine", acl=acl),
                     metadata=md, timeout=TIMEOUT)
        got = nodes.Get(pb.GetRequest(path="/grpc-x509"), metadata=md, timeout=TIMEOUT)
        assert got.data == b"mine"


def test_a_plaintext_client_gets_nothing(server: GrpcServer) -> None:
    with grpc.insecure_channel(server.grpc_target) as ch, pytest.raises(grpc.RpcError) as e:
        pbg.SessionsStub(ch).Create(pb.CreateSessionRequest(timeout_ms=5000), timeout=3)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("who", ["none", "rogue"])
def test_need_refuses_missing_and_untrusted_certificates(server: GrpcServer, pki: _Pki,
                                                         who: str) -> None:
    cert = None if who == "none" else pki.rogue
    with _channel(server, pki.ca.ca_pem, cert) as ch, pytest.raises(grpc.RpcError) as e:
        pbg.SessionsStub(ch).Create(pb.CreateSessionRequest(timeout_ms=5000), timeout=3)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert zk_code(e.value) is None  # refused in the handshake, before any call
