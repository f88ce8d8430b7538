"""TLS on the client port (secureClientPort, the ssl.* keys) and x509 auth, with kazoo,
raw TLS sockets and (test_tls_java.py) the stock Java client over Netty.

Certificates are made by the tests (tests/support/certs.py) in a temp dir. Each server
listens on clientPort and secureClientPort side by side. ``ZK_TEST_TARGET=zookeeper`` runs
the same tests against Apache ZooKeeper 3.8 (Netty factory, X509AuthenticationProvider).
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.security import ACL, Id

from tests.integration import wire
from tests.integration.kazoo_helpers import wait_until
from tests.support.certs import PASSWORD, CertFactory, Issued
from tests.support.servers import (
    REPO,
    ZK_JAR_DIR,
    ApacheZooKeeperServer,
    ServerProcess,
    four_letter_word,
    free_port,
    server_class,
)

CLIENT_DN = "CN=client,O=zkernel-test,C=DE"
ADMIN_DN = "CN=admin,O=zkernel-test,C=DE"
# Netty's own jars (Debian libnetty-java; netty-all.jar holds no classes): the Java
# client's ClientCnxnSocketNetty and Apache ZooKeeper's NettyServerCnxnFactory need them.
NETTY_JARS = ["netty-buffer.jar", "netty-codec.jar", "netty-common.jar", "netty-handler.jar",
              "netty-resolver.jar", "netty-transport.jar",
              "netty-transport-native-unix-common.jar", "netty-transport-native-epoll.jar"]


class NettyZooKeeperServer(ApacheZooKeeperServer):
    """Apache ZooKeeper with Netty on its classpath (TLS needs NettyServerCnxnFactory)."""

    def command(self, cfg_path: Path) -> list[str]:
        cmd = super().command(cfg_path)
        at = cmd.index("-cp") + 1
        cmd[at] += ":" + ":".join(str(ZK_JAR_DIR / j) for j in NETTY_JARS)
        return cmd


class Pki:
    """The CA, the server's and the clients' certificates of a test module."""

    def __init__(self, d: Path) -> None:
        self.dir = d
        self.ca = CertFactory(d / "ca")
        self.server = self.ca.issue("server", "localhost", server=True)
        self.client = self.ca.issue("client", "client")
        self.admin = self.ca.issue("admin", "admin")
        self.expired = self.ca.issue("expired", "expired", expired=True)
        self.rogue_ca = CertFactory(d / "rogue", "rogue CA")
        self.rogue = self.rogue_ca.issue("rogue", "client")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def tls_cfg(pki: Pki, client_auth: str, **extra: object) -> dict[str, object]:
    cfg: dict[str, object] = {
        "secureClientPort": free_port(),
        "ssl.keyStore.location": pki.server.keystore_pem,
        "ssl.trustStore.location": pki.ca.ca_pem,
        "ssl.clientAuth": client_auth,
        "X509AuthenticationProvider.superUser": ADMIN_DN,
        # What Apache ZooKeeper needs for the same (zkernel ignores these two).
        "serverCnxnFactory": "org.apache.zookeeper.server.NettyServerCnxnFactory",
        "authProvider.x509": "org.apache.zookeeper.server.auth.X509AuthenticationProvider",
    }
    cfg.update(extra)
    return cfg


def start_server(workdir: Path, cfg: dict[str, object]) -> ServerProcess:
    cls = server_class()
    srv = (NettyZooKeeperServer if cls is ApacheZooKeeperServer else cls)(workdir, cfg)
    srv.start()
    return srv


@pytest.fixture(scope="module")
def want(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """ssl.clientAuth=want: certificates optional, verified when presented."""
    srv = start_server(tmp_path_factory.mktemp("want"), tls_cfg(pki, "want"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def need(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """ssl.clientAuth=need (ZooKeeper's default), short handshake timeout."""
    srv = start_server(tmp_path_factory.mktemp("need"), tls_cfg(
        pki, "need", **{"ssl.handshakeDetectionTimeoutMillis": 1000}))
    yield srv
    srv.stop()


def secure_port(srv: ServerProcess) -> int:
    return int(srv.extra_cfg["secureClientPort"])  # type: ignore[call-overload]


def kazoo_tls(srv: ServerProcess, pki: Pki, cert: Issued | None = None,
              ca: Path | None = None, start: bool = True) -> KazooClient:
    kw: dict[str, Any] = {}
    if cert is not None:
        kw.update(certfile=str(cert.cert_pem), keyfile=str(cert.key_pem))
    zk = KazooClient(f"127.0.0.1:{secure_port(srv)}", use_ssl=True, verify_certs=True,
                     ca=str(ca or pki.ca.ca_pem), timeout=10, **kw)
    if start:
        zk.start(timeout=10)
    return zk


def zxid(srv: ServerProcess) -> str:
    for line in four_letter_word(srv.port, "srvr").splitlines():
        if line.startswith("Zxid:"):
            return line
    raise AssertionError("no Zxid in srvr")


def handshake(port: int, pki: Pki, cert: Issued | None = None,
              ca: Path | None = None) -> ssl.SSLSocket | str:
    """A TLS 1.2 handshake to the port (server verified); the socket, or the error."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(ca or pki.ca.ca_pem))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert_pem), str(cert.key_pem))
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    except (ssl.SSLError, OSError) as e:
        raw.close()
        return f"{type(e).__name__}: {e}"
    return s


def connect_session(s: socket.socket) -> bytes:
    """Send a ConnectRequest and return whatever comes back (b"" = closed)."""
    s.sendall(wire.frame(wire.connect_request()))
    try:
        return s.recv(4096)
    except (ssl.SSLError, OSError):
        return b""


def refused(port: int, pki: Pki, cert: Issued | None, ca: Path | None = None) -> bool:
    """True if the TLS port gives this client no session."""
    r = handshake(port, pki, cert, ca)
    if isinstance(r, str):
        return True
    with r:
        # TLS 1.3 reports a rejected client certificate only on the first read.
        return connect_session(r) == b""


# -- both ports, kazoo ---------------------------------------------------------------------


def test_plain_and_tls_ports_side_by_side(want: ServerProcess, pki: Pki) -> None:
    plain = KazooClient(want.connect_string)
    plain.start(timeout=10)
    tls = kazoo_tls(want, pki)
    try:
        plain.create("/side-by-side", b"from plain")
        assert tls.get("/side-by-side")[0] == b"from plain"
        tls.set("/side-by-side", b"from tls")
        assert plain.get("/side-by-side")[0] == b"from tls"
        # The same four-letter words answer on the TLS port, over TLS.
        s = handshake(secure_port(want), pki)
        assert not isinstance(s, str), s
        with s:
            s.sendall(b"ruok")
            assert s.recv(100) == b"imok"
        conf = four_letter_word(want.port, "conf")
        assert f"secureClientPort={secure_port(want)}" in conf
    finally:
        plain.stop()
        tls.stop()


def test_x509_ids_and_acls(want: ServerProcess, pki: Pki) -> None:
    owner = kazoo_tls(want, pki, pki.client)
    anon = kazoo_tls(want, pki)
    plain = KazooClient(want.connect_string)
    plain.start(timeout=10)
    admin = kazoo_tls(want, pki, pki.admin)
    try:
        owner.create("/x509-node", b"secret", acl=[ACL(31, Id("x509", CLIENT_DN))])
        assert owner.get("/x509-node")[0] == b"secret"
        # The 'auth' pseudo-scheme expands to the certificate's id.
        owner.create("/x509-creator", b"c", acl=[ACL(31, Id("auth", ""))])
        acls, _ = owner.get_acls("/x509-creator")
        assert [(a.id.scheme, a.id.id) for a in acls] == [("x509", CLIENT_DN)]
        for other in (anon, plain):
            with pytest.raises(NoAuthError):
                other.get("/x509-node")
        # X509AuthenticationProvider.superUser passes every ACL.
        assert admin.get("/x509-node")[0] == b"secret"
        admin.set("/x509-node", b"changed by admin")
        assert owner.get("/x509-node")[0] == b"changed by admin"
    finally:
        for c in (owner, anon, plain, admin):
            c.stop()


def test_client_without_certificate_gets_no_x509_id_on_want(want: ServerProcess,
                                                            pki: Pki) -> None:
    zk = kazoo_tls(want, pki)
    try:
        zk.create("/want-anon", b"", acl=[ACL(31, Id("x509", CLIENT_DN))])
        with pytest.raises(NoAuthError):
            zk.get("/want-anon")
    finally:
        zk.stop()


def test_client_auth_need(need: ServerProcess, pki: Pki) -> None:
    before = zxid(need)
    assert refused(secure_port(need), pki, None)
    zk = kazoo_tls(need, pki, pki.client)
    try:
        zk.create("/need", b"ok", acl=[ACL(31, Id("x509", CLIENT_DN))])
        assert zk.get("/need")[0] == b"ok"
    finally:
        zk.stop()
    assert zxid(need) != before


def test_client_auth_none(pki: Pki, tmp_path: Path) -> None:
    srv = start_server(tmp_path / "none", tls_cfg(pki, "none"))
    try:
        zk = kazoo_tls(srv, pki, pki.client)  # the certificate is never asked for
        try:
            zk.create("/none", b"", acl=[ACL(31, Id("x509", CLIENT_DN))])
            with pytest.raises(NoAuthError):
                zk.get("/none")
        finally:
            zk.stop()
        # An untrusted client certificate is not even looked at.
        r = handshake(secure_port(srv), pki, pki.rogue)
        assert not isinstance(r, str), r
        r.close()
    finally:
        srv.stop()


# -- refused clients: the server unaffected, nothing written ---------------------------------


@pytest.mark.parametrize("who", ["expired", "untrusted"])
def test_bad_client_certificates_refused(need: ServerProcess, want: ServerProcess,
                                         pki: Pki, who: str) -> None:
    cert = pki.expired if who == "expired" else pki.rogue
    for srv in (need, want):  # 'want' verifies a certificate once one is presented
        before = zxid(srv)
        assert refused(secure_port(srv), pki, cert), f"{who} accepted by {srv.extra_cfg}"
        assert zxid(srv) == before
        zk = kazoo_tls(srv, pki, pki.client)
        assert zk.exists("/")
        zk.stop()


def test_untrusted_server_certificate_fails_on_the_client(need: ServerProcess,
                                                          pki: Pki) -> None:
    r = handshake(secure_port(need), pki, pki.client, ca=pki.rogue_ca.ca_pem)
    assert isinstance(r, str) and "CERTIFICATE_VERIFY_FAILED" in r


def test_plaintext_client_and_garbage_on_tls_port(need: ServerProcess, pki: Pki) -> None:
    port = secure_port(need)
    before = zxid(need)
    # A plaintext ZooKeeper client: its ConnectRequest is not a TLS record.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(wire.frame(wire.connect_request()))
        assert _read_until_closed(s) == b""
    # A plaintext kazoo client never gets a session.
    zk = KazooClient(f"127.0.0.1:{port}", timeout=2)
    with pytest.raises(KazooTimeoutError):
        zk.start(timeout=2)
    zk.stop()
    zk.close()
    # Garbage in place of a ClientHello, and a ClientHello cut short then garbage.
    for junk in (b"\x16\x03\x01\x00\x05hello" + bytes(range(256)) * 4,
                 b"GET / HTTP/1.1\r\n\r\n", bytes(4096)):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(junk)
            assert _read_until_closed(s) == b""
    if server_class().kind == "zkernel":
        # Silence: dropped after the handshake timeout (1 s here; Apache ZooKeeper: 10 s,
        # Netty's default, not configurable).
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            _read_until_closed(s)
        assert time.monotonic() - t0 < 8
    assert zxid(need) == before
    zk = kazoo_tls(need, pki, pki.client)
    assert zk.exists("/")
    zk.stop()


def _read_until_closed(s: socket.socket) -> bytes:
    """Read until EOF; returns what arrived that is not a TLS alert/handshake record."""
    data = b""
    try:
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
    except OSError:
        pass
    # A TLS alert (0x15) or nothing: no ZooKeeper reply.
    return b"" if not data or data[0] in (0x15, 0x16) else data


# -- stores: PKCS12, reload, config errors ---------------------------------------------------


def test_pkcs12_key_and_trust_stores(pki: Pki, tmp_path: Path) -> None:
    cfg: dict[str, object] = {
        "ssl.keyStore.location": pki.server.keystore_p12,
        "ssl.keyStore.password": PASSWORD,
        "ssl.keyStore.type": "PKCS12",
    }
    if server_class().kind == "zkernel":
        # (Java reads a PKCS12 of bare certificates only with its own trust attribute,
        # which the cryptography package does not write.)
        cfg.update({"ssl.trustStore.location": pki.ca.truststore_p12,
                    "ssl.trustStore.password": PASSWORD})
    srv = start_server(tmp_path / "p12", tls_cfg(pki, "need", **cfg))
    try:
        zk = kazoo_tls(srv, pki, pki.client)
        try:
            zk.create("/p12", b"", acl=[ACL(31, Id("x509", CLIENT_DN))])
            assert zk.exists("/p12")
        finally:
            zk.stop()
        assert refused(secure_port(srv), pki, pki.rogue)
    finally:
        srv.stop()


def _served_serial(port: int, ca: Path, cert: Issued) -> int:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(ca))
    ctx.load_cert_chain(str(cert.cert_pem), str(cert.key_pem))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        # An IP address as server_hostname: no SNI is sent, as stock clients do.
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            der = s.getpeercert(binary_form=True)
            assert der is not None
            return x509.load_der_x509_certificate(der).serial_number


@pytest.mark.skipif(server_class().kind != "zkernel",
                    reason="client.certReload is new in ZooKeeper 3.8.1 (Debian has 3.8.0)")
def test_certificate_reload_without_restart(pki: Pki, tmp_path: Path) -> None:
    store = tmp_path / "stores"
    store.mkdir()
    ks, ts = store / "server.pem", store / "trust.pem"
    shutil.copy(pki.server.keystore_pem, ks)
    shutil.copy(pki.ca.ca_pem, ts)
    srv = start_server(tmp_path / "reload", tls_cfg(pki, "need", **{
        "ssl.keyStore.location": ks, "ssl.trustStore.location": ts,
        "client.certReload": "true"}))
    try:
        port = secure_port(srv)
        old = _served_serial(port, pki.ca.ca_pem, pki.client)
        assert refused(port, pki, pki.rogue)
        # Rotate: a new server certificate from a new CA, and trust the new CA.
        new_ca = CertFactory(tmp_path / "newca", "new CA")
        new_server = new_ca.issue("server2", "localhost", server=True)
        new_client = new_ca.issue("client2", "client")
        shutil.copy(new_server.keystore_pem, ks)
        shutil.copy(new_ca.ca_pem, ts)
        wait_until(lambda: _try_serial(port, new_ca.ca_pem, new_client) not in (None, old),
                   timeout=10)
        assert refused(port, pki, pki.client, ca=new_ca.ca_pem)  # old CA no longer trusted
        assert not refused(port, pki, new_client, ca=new_ca.ca_pem)
        # A broken store keeps the current certificates.
        ks.write_text("not a key store\n")
        time.sleep(1.5)
        assert (_served_serial(port, new_ca.ca_pem, new_client)
                == new_server.cert.serial_number)
        assert "reload failed" in srv.log_path.read_text()
    finally:
        srv.stop()


def _try_serial(port: int, ca: Path, cert: Issued) -> int | None:
    try:
        return _served_serial(port, ca, cert)
    except (ssl.SSLError, OSError):
        return None


@pytest.mark.skipif(server_class().kind != "zkernel", reason="zkernel's config errors")
@pytest.mark.parametrize("extra,message", [
    ({"ssl.keyStore.type": "JKS"}, "JKS stores are not supported"),
    ({"ssl.clientAuth": "maybe"}, "ssl.clientAuth must be none, want or need"),
    ({"ssl.enabledProtocols": "SSLv3"}, "unknown protocol"),
    ({"ssl.keyStore.location": "/nonexistent/ks.pem"}, "cannot read /nonexistent/ks.pem"),
    ({"ssl.keyStore.location": "/tmp/ks.bin"}, "unable to detect the store type"),
    ({"ssl.ciphersuites": "TLS_NO_SUCH_CIPHER"}, "ssl.ciphersuites"),
])
def test_bad_tls_config_is_a_readable_error(pki: Pki, tmp_path: Path,
                                            extra: dict[str, str], message: str) -> None:
    cfg = {"dataDir": tmp_path / "data", "clientPort": free_port(),
           "clientPortAddress": "127.0.0.1", "kernel.storage": "memory",
           **tls_cfg(pki, "need", **extra)}
    path = tmp_path / "zoo.cfg"
    path.write_text("".join(f"{k}={v}\n" for k, v in cfg.items()))
    env = {"PYTHONPATH": str(REPO)}
    p = subprocess.run([sys.executable, "-m", "kernel", "serve", "--config", str(path)],
                       capture_output=True, text=True, timeout=30, env=env)
    assert p.returncode != 0
    assert message in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.skipif(server_class().kind != "zkernel", reason="zkernel's TLS protocol keys")
def test_protocols_and_ciphers(pki: Pki, tmp_path: Path) -> None:
    srv = start_server(tmp_path / "proto", tls_cfg(pki, "want", **{
        "ssl.enabledProtocols": "TLSv1.2",
        "ssl.ciphersuites": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    }))
    try:
        s = handshake(secure_port(srv), pki)
        assert not isinstance(s, str), s
        with s:
            assert s.version() == "TLSv1.2"
            cipher = s.cipher()
            assert cipher is not None and cipher[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(str(pki.ca.ca_pem))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        with socket.create_connection(("127.0.0.1", secure_port(srv)), timeout=5) as raw:
            with pytest.raises(ssl.SSLError):
                ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    finally:
        srv.stop()


def tricky_subjects() -> list[tuple[x509.Name, str]]:
    """Subjects and their RFC 2253 names as Java's X500Principal.getName() writes them
    (checked against Java by test_tls_java.py)."""
    from cryptography.x509.name import _ASN1Type
    from cryptography.x509.oid import NameOID as N

    a, rdn = x509.NameAttribute, x509.RelativeDistinguishedName
    return [
        (x509.Name([a(N.COUNTRY_NAME, "DE"), a(N.ORGANIZATION_NAME, "Acme, Inc."),
                    a(N.COMMON_NAME, "a+b=c")]),
         r"CN=a\+b\=c,O=Acme\, Inc.,C=DE"),
        (x509.Name([a(N.COMMON_NAME, " lead#trail "), a(N.EMAIL_ADDRESS, "x@example.com")]),
         r"1.2.840.113549.1.9.1=#160d78406578616d706c652e636f6d,CN=\ lead\#trail\ "),
        (x509.Name([rdn([a(N.COMMON_NAME, "multi"), a(N.ORGANIZATIONAL_UNIT_NAME, "ou1")]),
                    rdn([a(N.SERIAL_NUMBER, "1234")]), rdn([a(N.DOMAIN_COMPONENT, "example")])]),
         "DC=example,2.5.4.5=#130431323334,OU=ou1+CN=multi"),
        (x509.Name([a(N.COMMON_NAME, 'Grüße "q" <x>;y\\z'), a(N.TITLE, "Dr"),
                    a(N.USER_ID, "u1"), a(N.STATE_OR_PROVINCE_NAME, "BY"),
                    a(N.LOCALITY_NAME, "M"), a(N.STREET_ADDRESS, "Main 1")]),
         r'STREET=Main 1,L=M,ST=BY,UID=u1,2.5.4.12=#0c024472,CN=Grüße \"q\" \<x\>\;y\\z'),
        (x509.Name([a(N.COMMON_NAME, "#hash"),
                    a(N.GIVEN_NAME, "Über", _type=_ASN1Type.BMPString)]),
         r"2.5.4.42=#1e0800dc006200650072,CN=\#hash"),
    ]


def test_rfc2253_names(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from plugins.auth_x509 import X509AuthProvider, rfc2253_name

    factory = CertFactory(tmp_path / "ca")
    provider = X509AuthProvider()
    for i, (subject, expected) in enumerate(tricky_subjects()):
        der = factory.issue(f"c{i}", subject).cert.public_bytes(serialization.Encoding.DER)
        assert rfc2253_name(der) == expected
        assert provider.is_valid(expected)
    assert not provider.is_valid("not a dn")
    assert not provider.is_valid("CN=a,bogus")


@pytest.mark.skipif(server_class().kind != "zkernel", reason="zkernel's log")
def test_tls_only_server_and_skip_acl_warning(pki: Pki, tmp_path: Path) -> None:
    """secureClientPort without clientPort: TLS only. skipACL is warned about."""
    port = free_port()
    cfg = {"dataDir": tmp_path / "data", "clientPortAddress": "127.0.0.1",
           "kernel.storage": "memory", "skipACL": "yes", **tls_cfg(pki, "none")}
    cfg["secureClientPort"] = port
    path = tmp_path / "zoo.cfg"
    path.write_text("".join(f"{k}={v}\n" for k, v in cfg.items()))
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "kernel", "serve", "--config",
                                 str(path)], stdout=out, stderr=subprocess.STDOUT,
                                env={"PYTHONPATH": str(REPO)}, start_new_session=True)
    try:
        wait_until(lambda: "over TLS" in log.read_text(), timeout=20)
        zk = KazooClient(f"127.0.0.1:{port}", use_ssl=True, verify_certs=True,
                         ca=str(pki.ca.ca_pem))
        zk.start(timeout=10)
        try:
            zk.create("/skip", b"", acl=[ACL(31, Id("x509", CLIENT_DN))])
            assert zk.get("/skip")[0] == b""  # skipACL: the ACL is not checked
        finally:
            zk.stop()
        text = log.read_text()
        assert "WARNING" in text and "skipACL" in text
        assert "serving the ZooKeeper client protocol on" not in text  # no plain port
    finally:
        proc.terminate()
        proc.wait(10)
