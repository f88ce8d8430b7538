"""SASL GSSAPI (Kerberos V5) end to end against a real MIT KDC started by the test.

Realm ZK.TEST on 127.0.0.1 (tests/support/kdc.py); the server's JAAS ``Server`` section
names its keytab and principal ``zookeeper/127.0.0.1@ZK.TEST`` with Krb5LoginModule, as
for Apache ZooKeeper. Clients: kazoo (pure-sasl + pykerberos) and the stock Java client
(Krb5LoginModule in a JAAS ``Client`` section). Skipped, with the reason, only when the
Debian packages krb5-kdc / krb5-admin-server / krb5-user or the Python modules are absent.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import wire
from tests.support.kdc import KDC, missing_tools
from tests.support.servers import ApacheZooKeeperServer, ServerProcess, server_class

if missing_tools():
    pytest.skip(f"Kerberos tools missing: {missing_tools()} (apt-get install krb5-kdc "
                f"krb5-admin-server krb5-user)", allow_module_level=True)
pytest.importorskip("gssapi", reason="python-gssapi (pip install gssapi) needed by the server")
pytest.importorskip("kerberos", reason="pykerberos (pip install kerberos) needed by kazoo GSSAPI")
kazoo_client = pytest.importorskip("kazoo.client")
if server_class() is ApacheZooKeeperServer:
    pytest.skip("the Kerberos tests target zkernel", allow_module_level=True)

from kazoo.exceptions import NoAuthError  # noqa: E402
from kazoo.protocol.states import KazooState, KeeperState  # noqa: E402
from kazoo.security import make_acl  # noqa: E402

SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
SERVICE = "zookeeper/127.0.0.1"


class Realm:
    """The KDC plus the principals, keytabs and ticket caches the tests use."""

    def __init__(self, kdc: KDC, d: Path) -> None:
        self.kdc = kdc
        self.dir = d
        self.service = kdc.add_principal(SERVICE)
        self.server_keytab = kdc.keytab(self.service, d / "server.keytab")
        # The Java client's Kerberos canonicalizes 127.0.0.1 to localhost: a server
        # configured as zookeeper/localhost serves it (same keytab, two principals).
        self.service_localhost = kdc.add_principal("zookeeper/localhost")
        kdc.keytab(self.service_localhost, self.server_keytab)
        self.caches: dict[str, Path] = {}
        for name in ("alice", "zkcli/127.0.0.1"):
            full = kdc.add_principal(name)
            kt = kdc.keytab(full, d / (name.replace("/", "_") + ".keytab"))
            cc = d / ("cc_" + name.replace("/", "_"))
            kdc.kinit(full, cc, keytab=kt)
            self.caches[name] = cc
        self.keytabs = {n: d / (n.replace("/", "_") + ".keytab") for n in self.caches}

    def jaas(self, principal: str | None = None) -> Path:
        p = self.dir / "jaas-server.conf"
        p.write_text(f"""\
Server {{
    com.sun.security.auth.module.Krb5LoginModule required
    useKeyTab=true
    keyTab="{self.server_keytab}"
    storeKey=true
    useTicketCache=false
    principal="{principal or self.service}";
}};
""")
        return p


@pytest.fixture(scope="module")
def realm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Realm]:
    d = tmp_path_factory.mktemp("kdc")
    kdc = KDC(d).start()
    try:
        yield Realm(kdc, d)
    finally:
        kdc.stop()


@pytest.fixture
def krb_env(realm: Realm, monkeypatch: pytest.MonkeyPatch) -> Realm:
    for k, v in realm.kdc.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{realm.caches['alice']}")
    return realm


@pytest.fixture
def krb_server(krb_env: Realm, server_factory: Callable[..., ServerProcess]
               ) -> Callable[..., ServerProcess]:
    def make(principal: str | None = None, **extra: object) -> ServerProcess:
        cfg: dict[str, object] = {
            "java.security.auth.login.config": str(krb_env.jaas(principal)),
            "java.security.krb5.conf": str(krb_env.kdc.krb5_conf),
            "authProvider.1": SASL_PROVIDER,
        }
        cfg.update(extra)
        return server_factory(cfg=cfg)
    return make


@pytest.fixture
def gss_client(krb_env: Realm, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    made: list[Any] = []

    def make(srv: ServerProcess, who: str | None = "alice", wait: bool = True) -> Any:
        if who is not None:
            monkeypatch.setenv("KRB5CCNAME", f"FILE:{krb_env.caches[who]}")
        zk = kazoo_client.KazooClient(
            srv.connect_string, connection_retry={"max_tries": 0},
            sasl_options={"mechanism": "GSSAPI", "service": "zookeeper"} if who else None)
        made.append(zk)
        zk.start(15)
        if wait and who:
            zk.exists("/")  # the request queue is served once SASL has finished
        return zk

    yield make
    for zk in made:
        try:
            zk.stop()
            zk.close()
        except Exception:
            pass


def test_kazoo_gssapi_id_keeps_host_and_realm(krb_server, gss_client) -> None:
    srv = krb_server()
    alice = gss_client(srv, "alice")
    alice.create("/k", b"kerberos", acl=[make_acl("sasl", "alice@ZK.TEST", all=True)])
    alice.create("/k2", b"", acl=[make_acl("auth", "", all=True)])
    acl, _ = alice.get_acls("/k2")
    assert [(a.id.scheme, a.id.id) for a in acl] == [("sasl", "alice@ZK.TEST")]
    assert alice.get("/k")[0] == b"kerberos"
    host = gss_client(srv, "zkcli/127.0.0.1")
    with pytest.raises(NoAuthError):
        host.get("/k")
    host.create("/h", b"", acl=[make_acl("auth", "", all=True)])
    acl, _ = host.get_acls("/h")
    assert [(a.id.scheme, a.id.id) for a in acl] == [("sasl", "zkcli/127.0.0.1@ZK.TEST")]


def test_remove_host_and_realm_from_principal(krb_server, gss_client) -> None:
    srv = krb_server(**{"kerberos.removeHostFromPrincipal": "true",
                        "kerberos.removeRealmFromPrincipal": "true",
                        "zookeeper.superUser": "alice"})
    host = gss_client(srv, "zkcli/127.0.0.1")
    host.create("/h", b"x", acl=[make_acl("auth", "", all=True)])
    acl, _ = host.get_acls("/h")
    assert [(a.id.scheme, a.id.id) for a in acl] == [("sasl", "zkcli")]
    # alice (super user by her canonical id) reads anything.
    assert gss_client(srv, "alice").get("/h")[0] == b"x"
    with pytest.raises(NoAuthError):
        gss_client(srv, None).get("/h")


def _raw_sasl(srv: ServerProcess, tokens: list[bytes]) -> list[tuple[int, int]]:
    """Send SASL tokens on a fresh connection; (xid, err) of each reply until closed."""
    out: list[tuple[int, int]] = []
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(wire.frame(wire.connect_request()))
        f = s.makefile("rb")
        n = struct.unpack(">i", f.read(4))[0]
        f.read(n)
        for i, tok in enumerate(tokens, 1):
            s.sendall(wire.frame(wire.header(i, wire.OP["sasl"])
                                 + wire.Writer().buffer(tok).bytes()))
            head = f.read(4)
            if len(head) < 4:
                break
            body = f.read(struct.unpack(">i", head)[0])
            xid, _z, err = struct.unpack(">iqi", body[:16])
            out.append((xid, err))
            if err:
                assert f.read(1) == b""  # closed after the error
                break
    return out


def test_garbage_gss_tokens_are_auth_failed(krb_server, gss_client) -> None:
    srv = krb_server()
    # An ASN.1-looking GSS token that is not Kerberos, and random bytes.
    assert _raw_sasl(srv, [b"\x60\x0b\x06\x09" + b"\x2a" * 9]) == [(1, -115)]
    assert _raw_sasl(srv, [b"\x01\x02\x03garbage" * 20]) == [(1, -115)]
    assert gss_client(srv, "alice").exists("/") is not None  # server unaffected


def test_ticket_for_a_rotated_service_key_is_refused(krb_env: Realm, krb_server, gss_client,
                                                     caplog) -> None:
    """The server's keytab no longer holds the key the client's ticket is sealed with
    (as after a key rotation, or a ticket from the wrong KDC): AuthFailed, nothing
    written; a client with a ticket for the current key then succeeds."""
    kdc = krb_env.kdc
    # A ticket cache of its own: no service ticket cached by the other tests.
    cc = krb_env.dir / "cc_alice_rotated"
    kdc.kinit(f"alice@{kdc.realm}", cc, keytab=krb_env.keytabs["alice"])
    krb_env.caches["alice"] = cc
    original = krb_env.server_keytab
    stale = krb_env.dir / "stale.keytab"
    stale.write_bytes(original.read_bytes())
    kdc._run("kadmin.local", "-q", f"cpw -randkey {krb_env.service}")
    kdc.keytab(krb_env.service, original)  # adds the new key version
    krb_env.server_keytab = stale
    try:
        srv = krb_server()
        with caplog.at_level(logging.WARNING, logger="kazoo.client"):
            zk = gss_client(srv, "alice", wait=False)
            deadline = time.monotonic() + 10
            while zk.state != KazooState.LOST and time.monotonic() < deadline:
                time.sleep(0.02)
        assert zk.state == KazooState.LOST
        assert zk.client_state in (KeeperState.AUTH_FAILED, KeeperState.CLOSED)
        assert "AUTH_FAILED" in caplog.text
        assert "failed to SASL authenticate" in srv.log_tail(20)
    finally:
        krb_env.server_keytab = original
    srv2 = krb_server()
    assert gss_client(srv2, "alice").get_children("/") == ["zookeeper"]


def test_principal_missing_from_keytab_stops_the_server_with_a_clear_error(
        krb_server) -> None:
    with pytest.raises(RuntimeError, match="cannot acquire Kerberos credentials"):
        krb_server(principal="zookeeper/127.0.0.1@WRONG.REALM")


@pytest.fixture(scope="module")
def java_driver(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.integration.client_drivers import build_java_driver

    return build_java_driver(tmp_path_factory)


@pytest.mark.java
def test_java_client_gssapi(krb_env: Realm, krb_server, java_driver) -> None:
    from tests.integration.client_drivers import Driver

    srv = krb_server(principal=krb_env.service_localhost)
    jaas = krb_env.dir / "jaas-client.conf"
    jaas.write_text(f"""\
Client {{
    com.sun.security.auth.module.Krb5LoginModule required
    useKeyTab=true
    keyTab="{krb_env.keytabs['alice']}"
    storeKey=true
    useTicketCache=false
    principal="alice@ZK.TEST";
}};
""")
    java, *rest = java_driver.argv_prefix
    driver = Driver([java, f"-Djava.security.auth.login.config={jaas}",
                     f"-Djava.security.krb5.conf={krb_env.kdc.krb5_conf}",
                     "-Dzookeeper.sasl.client=true", *rest])
    t = driver.run(srv.connect_string, [
        "c: connect s1",
        "w: wait_state s1 SaslAuthenticated",
        "who: whoami",
        "mk: create /jk x P acl=sasl:alice@ZK.TEST:cdrwa",
        "g: get /jk",
        "close",
    ])
    assert t.ok("who")["identities"] == [["ip", "127.0.0.1"], ["sasl", "alice@ZK.TEST"]], \
        t.dump()
    assert t.ok("g")
