"""SASL DIGEST-MD5 with stock clients: kazoo (pure-sasl), the Java client, raw frames.

The server is configured as Apache ZooKeeper is: a JAAS file with a ``Server`` section of
DigestLoginModule users (``java.security.auth.login.config``) and
``authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider``.
``ZK_TEST_TARGET=zookeeper`` runs the same tests against Apache ZooKeeper 3.8.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import wire
from tests.support.servers import (
    ApacheZooKeeperServer,
    ServerProcess,
    four_letter_word,
    server_class,
)

kazoo_client = pytest.importorskip("kazoo.client")
pytest.importorskip("puresasl")
from kazoo.exceptions import (  # noqa: E402
    AuthFailedError,
    ConnectionClosedError,
    ConnectionLoss,
    NoAuthError,
    SessionClosedRequireSaslError,
)
from kazoo.protocol.states import KeeperState  # noqa: E402
from kazoo.security import make_acl  # noqa: E402

SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
JAAS_SERVER = """\
// users for DIGEST-MD5, as ZooKeeper reads them
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="adminsecret"
    user_bob="secret"
    user_alice="alicepw";
};
"""
AUTH_FAILED = -115
REQUIRE_SASL = -124


def write_jaas(tmp_path: Path, text: str = JAAS_SERVER) -> Path:
    p = tmp_path / "jaas.conf"
    p.write_text(text)
    return p


def sasl_cfg(tmp_path: Path, **extra: object) -> dict[str, object]:
    """zoo.cfg keys for a SASL server (Apache ZooKeeper also gets them as -D flags)."""
    cfg: dict[str, object] = {"java.security.auth.login.config": str(write_jaas(tmp_path)),
                              "authProvider.1": SASL_PROVIDER}
    cfg.update(extra)
    return cfg


class _ZooKeeperWithProps(ApacheZooKeeperServer):
    """Apache ZooKeeper with every zoo.cfg key of these tests also as a -D property."""

    def command(self, cfg_path: Path) -> list[str]:
        argv = super().command(cfg_path)
        props = []
        for k, v in self.extra_cfg.items():
            name = k if k.startswith(("java.", "zookeeper.")) else "zookeeper." + k
            props.append(f"-D{name}={v}")
        return [argv[0], *props, *argv[1:]]


@pytest.fixture
def sasl_server(server_factory: Callable[..., ServerProcess],
                tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def make(**extra: object) -> ServerProcess:
        cfg = sasl_cfg(tmp_path, **extra)
        if server_class() is not ApacheZooKeeperServer:
            return server_factory(cfg=cfg)
        srv = _ZooKeeperWithProps(tmp_path / f"zk{len(started)}", cfg)
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def kazoo() -> Iterator[Callable[..., Any]]:
    made: list[Any] = []

    def make(srv: ServerProcess, user: str | None = None, password: str = "",
             start: bool = True, **kw: Any) -> Any:
        opts = ({"mechanism": "DIGEST-MD5", "username": user, "password": password}
                if user else None)
        zk = kazoo_client.KazooClient(srv.connect_string, sasl_options=opts,
                                      connection_retry={"max_tries": 0}, **kw)
        made.append(zk)
        if start:
            zk.start(10)
        return zk

    yield make
    for zk in made:
        try:
            zk.stop()
            zk.close()
        except Exception:
            pass


def auth_failed(zk: Any, timeout: float = 10.0) -> bool:
    """kazoo reports CONNECTED before its SASL exchange ends; on AuthFailed it goes
    through AUTH_FAILED to CLOSED (state LOST) and stops: wait for that."""
    from kazoo.protocol.states import KazooState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if zk.client_state in (KeeperState.AUTH_FAILED, KeeperState.CLOSED) \
                and zk.state == KazooState.LOST:
            return True
        time.sleep(0.02)
    return False


def node_count(srv: ServerProcess) -> str:
    """srvr's ``Node count`` (sessions come and go; znodes must not)."""
    return [ln for ln in four_letter_word(srv.port, "srvr").splitlines()
            if ln.startswith("Node count")][0]


# -- kazoo, DIGEST-MD5 -----------------------------------------------------------------


def test_kazoo_digest_md5_gives_sasl_id_matched_by_sasl_acls(sasl_server, kazoo) -> None:
    srv = sasl_server()
    bob = kazoo(srv, "bob", "secret")
    bob.create("/bob", b"mine", acl=[make_acl("sasl", "bob", all=True)])
    # CREATOR_ALL_ACL (auth:) expands to the sasl id.
    bob.create("/bob2", b"x", acl=[make_acl("auth", "", all=True)])
    acl, _ = bob.get_acls("/bob2")
    assert [(a.id.scheme, a.id.id, a.perms) for a in acl] == [("sasl", "bob", 31)]
    assert bob.get("/bob")[0] == b"mine"
    alice = kazoo(srv, "alice", "alicepw")
    anon = kazoo(srv)
    for other in (alice, anon):
        with pytest.raises(NoAuthError):
            other.get("/bob")
        with pytest.raises(NoAuthError):
            other.set("/bob2", b"stolen")
    assert bob.get("/bob2")[0] == b"x"


def test_super_user_and_super_password(sasl_server, kazoo, caplog) -> None:
    srv = sasl_server(**{"zookeeper.superUser": "alice",
                         "SASLAuthenticationProvider.superPassword": "override"})
    bob = kazoo(srv, "bob", "secret")
    bob.create("/private", b"p", acl=[make_acl("sasl", "bob", all=True)])
    assert kazoo(srv, "alice", "alicepw").get("/private")[0] == b"p"
    # User "super" takes its password from SASLAuthenticationProvider.superPassword
    # (not the JAAS file), and the id sasl:super matches every sasl ACL entry
    # (ZooKeeper's SASLAuthenticationProvider.matches).
    assert kazoo(srv, "super", "override").get("/private")[0] == b"p"
    with caplog.at_level(logging.WARNING, logger="kazoo.client"):
        assert auth_failed(kazoo(srv, "super", "adminsecret"))
    assert "AUTH_FAILED" in caplog.text
    with pytest.raises(NoAuthError):
        kazoo(srv).get("/private")


@pytest.mark.parametrize("user,password", [("bob", "wrong"), ("mallory", "secret")],
                         ids=["wrong-password", "unknown-user"])
def test_bad_credentials_are_refused_and_nothing_is_written(sasl_server, kazoo, user,
                                                           password, caplog) -> None:
    srv = sasl_server()
    before = node_count(srv)
    zk = kazoo(srv, user, password, start=False)
    with caplog.at_level(logging.WARNING, logger="kazoo.client"):
        zk.start(10)
        assert auth_failed(zk)
    assert "AUTH_FAILED" in caplog.text
    with pytest.raises((AuthFailedError, ConnectionClosedError)):
        zk.create("/should-not-exist", b"")
    zk.stop()
    assert node_count(srv) == before
    good = kazoo(srv, "bob", "secret")
    assert good.exists("/should-not-exist") is None
    good.create("/after", b"")  # the server is unaffected


def test_sasl_acl_is_invalid_without_the_sasl_auth_provider(
        server_factory: Callable[..., ServerProcess], tmp_path: Path, kazoo) -> None:
    from kazoo.exceptions import InvalidACLError

    if server_class() is ApacheZooKeeperServer:
        pytest.skip("needs -D properties: covered by the zkernel run")
    srv = server_factory(cfg={"java.security.auth.login.config": str(write_jaas(tmp_path))})
    bob = kazoo(srv, "bob", "secret")  # the handshake works without the provider
    with pytest.raises(InvalidACLError):
        bob.create("/x", b"", acl=[make_acl("sasl", "bob", all=True)])


# -- enforcement ---------------------------------------------------------------------------


# kazoo lets SessionClosedRequireSaslError escape its connection thread (it does so
# against Apache ZooKeeper too): the client stops, which is what this test needs.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_session_require_client_sasl_auth(sasl_server, kazoo) -> None:
    srv = sasl_server(sessionRequireClientSASLAuth="true")
    before = node_count(srv)
    anon = kazoo(srv)
    with pytest.raises((SessionClosedRequireSaslError, ConnectionLoss)):
        anon.create("/anon", b"")
    bad = kazoo(srv, "bob", "wrong", start=False)
    bad.start(10)
    assert auth_failed(bad)
    assert node_count(srv) == before
    bob = kazoo(srv, "bob", "secret")
    bob.create("/ok", b"")
    assert bob.exists("/anon") is None


def test_skipping_sasl_gets_session_closed_require_sasl_auth(sasl_server) -> None:
    """Raw frames: the first request of an unauthenticated session is answered -124
    and the connection is closed (ZooKeeper's AuthenticationHelper)."""
    srv = sasl_server(**{"enforce.auth.enabled": "true", "enforce.auth.schemes": "sasl"})
    with RawClient(srv) as c:
        c.request(1, wire.OP["create"], wire.create_body("/anon", b"x"))
        xid, _zxid, err, _ = c.reply()
        assert (xid, err) == (1, REQUIRE_SASL)
        assert c.closed()
    with RawClient(srv) as c:
        assert c.digest_login("bob", "secret")
        c.request(5, wire.OP["create"], wire.create_body("/authed", b"x"))
        assert c.reply()[2] == 0


def test_enforce_auth_accepts_digest_when_listed(sasl_server, kazoo) -> None:
    srv = sasl_server(**{"enforce.auth.enabled": "true",
                         "enforce.auth.schemes": "sasl,digest"})
    zk = kazoo(srv, auth_data=[("digest", "carol:pw")])
    zk.create("/carol", b"")
    assert kazoo(srv, "bob", "secret").exists("/carol") is not None


# -- garbage and protocol violations (raw frames) -----------------------------------------


class RawClient:
    """A raw connection that logs in with DIGEST-MD5 by hand."""

    def __init__(self, srv: ServerProcess) -> None:
        self.sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        self.sock.sendall(wire.frame(wire.connect_request()))
        self._frame()  # ConnectResponse

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def _frame(self) -> bytes:
        n = struct.unpack(">i", self._read(4))[0]
        return self._read(n)

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            b = self.sock.recv(n - len(out))
            if not b:
                raise wire.ConnectionClosed()
            out += b
        return out

    def request(self, xid: int, op: int, body: bytes) -> None:
        self.sock.sendall(wire.frame(wire.header(xid, op) + body))

    def sasl(self, xid: int, token: bytes | None) -> None:
        self.request(xid, wire.OP["sasl"], wire.Writer().buffer(token).bytes())

    def reply(self) -> tuple[int, int, int, bytes]:
        f = self._frame()
        xid, zxid, err = struct.unpack(">iqi", f[:16])
        return xid, zxid, err, f[16:]

    def closed(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            return True

    def challenge(self) -> dict[str, str]:
        self.sasl(1, b"")
        xid, _, err, body = self.reply()
        assert (xid, err) == (1, 0)
        token = wire.Reader(body).buffer() or b""
        return dict(kv.split("=", 1) for kv in token.decode().replace('"', "").split(","))

    def digest_response(self, ch: dict[str, str], user: str, password: str,
                        realm: str | None = None, uri: str = "zookeeper/zk-sasl-md5") -> bytes:
        realm = ch["realm"] if realm is None else realm
        cnonce, nc, qop = "abcdef0123", "00000001", "auth"

        def h(b: bytes) -> bytes:
            return hashlib.md5(b).digest()

        a1 = (h(f"{user}:{realm}:{password}".encode()) + f":{ch['nonce']}:{cnonce}".encode())
        ha1 = h(a1).hex()
        ha2 = h(f"AUTHENTICATE:{uri}".encode()).hex()
        resp = h(f"{ha1}:{ch['nonce']}:{nc}:{cnonce}:{qop}:{ha2}".encode()).hex()
        return (f'username="{user}",realm="{realm}",nonce="{ch["nonce"]}",cnonce="{cnonce}",'
                f'nc={nc},qop={qop},digest-uri="{uri}",response={resp}').encode()

    def digest_login(self, user: str, password: str, **kw: str) -> bool:
        ch = self.challenge()
        self.sasl(2, self.digest_response(ch, user, password, **kw))
        xid, _, err, body = self.reply()
        assert xid == 2
        return err == 0


def test_garbage_first_token(sasl_server) -> None:
    """A short initial token is ignored (the challenge comes back, as from ZooKeeper's
    DIGEST-MD5 server); one over RFC 2831's 4096 bytes is AuthFailed and closes."""
    srv = sasl_server()
    with RawClient(srv) as c:
        c.sasl(1, b"\x00\xffgarbage")
        xid, _, err, body = c.reply()
        assert (xid, err) == (1, 0)
        assert b"nonce=" in (wire.Reader(body).buffer() or b"")
        c.sasl(2, b"\x00\xffgarbage")
        assert c.reply()[:3:2] == (2, AUTH_FAILED)
        assert c.closed()
    with RawClient(srv) as c:
        c.sasl(1, b"x" * 5000)
        assert c.reply()[:3:2] == (1, AUTH_FAILED)
        assert c.closed()
    with RawClient(srv) as c:
        assert c.digest_login("bob", "secret")


@pytest.mark.parametrize("second", [b"", b"username=bob", b"garbage,,=\"", b"\x80\x81"],
                         ids=["empty", "incomplete", "unparsable", "not-utf8"])
def test_garbage_response_is_auth_failed_and_closes(sasl_server, second: bytes) -> None:
    srv = sasl_server()
    with RawClient(srv) as c:
        c.challenge()
        c.sasl(2, second)
        assert c.reply()[:3:2] == (2, AUTH_FAILED)
        assert c.closed()


def test_wrong_realm_and_wrong_digest_uri_are_refused(sasl_server) -> None:
    srv = sasl_server()
    with RawClient(srv) as c:
        assert not c.digest_login("bob", "secret", realm="OTHER.REALM")
        assert c.closed()
    with RawClient(srv) as c:
        assert not c.digest_login("bob", "secret", uri="zookeeper/elsewhere")
    with RawClient(srv) as c:
        assert c.digest_login("bob", "secret")
        c.request(3, wire.OP["whoAmI"], b"")
        xid, _, err, body = c.reply()
        assert (xid, err) == (3, 0)
        r = wire.Reader(body)
        ids = sorted((r.ustring(), r.ustring()) for _ in range(r.int()))
        assert ids == [("ip", "127.0.0.1"), ("sasl", "bob")]


# -- the stock Java client ----------------------------------------------------------------


@pytest.fixture(scope="module")
def java_sasl_driver(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.integration.client_drivers import build_java_driver

    return build_java_driver(tmp_path_factory)


def _java(driver: Any, tmp_path: Path, user: str, password: str) -> Any:
    from tests.integration.client_drivers import Driver

    jaas = tmp_path / f"client-{user}-{password}.conf"
    jaas.write_text("Client {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n"
                    f'  username="{user}"\n  password="{password}";\n}};\n')
    java, *rest = driver.argv_prefix
    return Driver([java, f"-Djava.security.auth.login.config={jaas}",
                   "-Dzookeeper.sasl.client=true", *rest])


@pytest.mark.java
def test_java_client_digest_md5(sasl_server, java_sasl_driver, tmp_path: Path) -> None:
    srv = sasl_server()
    t = _java(java_sasl_driver, tmp_path, "bob", "secret").run(srv.connect_string, [
        "c: connect s1",
        "w: wait_state s1 SaslAuthenticated",
        "who: whoami",
        "mk: create /j data P acl=sasl:bob:cdrwa",
        "g: get /j",
        "acl: getacl /j",
        "close",
    ])
    assert t.ok("who")["identities"] == [["ip", "127.0.0.1"], ["sasl", "bob"]], t.dump()
    assert t.ok("g")
    t2 = _java(java_sasl_driver, tmp_path, "alice", "alicepw").run(srv.connect_string, [
        "c: connect s1",
        "w: wait_state s1 SaslAuthenticated",
        "g: get /j",
        "close",
    ])
    assert t2.err("g") == wire.NO_AUTH, t2.dump()


@pytest.mark.java
def test_java_client_wrong_password_gets_auth_failed(sasl_server, java_sasl_driver,
                                                     tmp_path: Path) -> None:
    srv = sasl_server()
    before = node_count(srv)
    t = _java(java_sasl_driver, tmp_path, "bob", "nope").run(srv.connect_string, [
        "c: connect s1",
        "w: wait_state s1 AuthFailed",
        "mk: create /nope x P",
    ])
    assert t.ok("w"), t.dump()
    assert t.err("mk") == AUTH_FAILED, t.dump()
    assert node_count(srv) == before


# -- configuration -------------------------------------------------------------------------


def test_jaas_file_parsing() -> None:
    from plugins.auth_sasl.jaas import DIGEST_MODULE, KRB5_MODULE, JaasError, parse_jaas

    sections = parse_jaas("""
        /* block comment with a } brace */
        Server {
            org.apache.zookeeper.server.auth.DigestLoginModule required
            user_bob="se;cr\\"et" // trailing comment
            user_x=plain;
            com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true
            keyTab="/k/zk.keytab" principal="zookeeper/h@R";
        };
        Client { org.apache.zookeeper.server.auth.DigestLoginModule required username="u"; };
    """)
    server = sections["Server"]
    assert [m.name for m in server] == [DIGEST_MODULE, KRB5_MODULE]
    assert server[0].options == {"user_bob": 'se;cr"et', "user_x": "plain"}
    assert server[1].options["principal"] == "zookeeper/h@R"
    assert sections["Client"][0].options == {"username": "u"}
    for bad in ("Server { mod required a=b }", "Server { mod a=b; };", "Server mod"):
        with pytest.raises(JaasError):
            parse_jaas(bad)


@pytest.mark.parametrize("principal,host,realm,expected", [
    ("bob", False, False, "bob"),
    ("alice@EX.COM", False, False, "alice@EX.COM"),
    ("alice@EX.COM", False, True, "alice"),
    ("zk/h.ex.com@EX.COM", False, False, "zk/h.ex.com@EX.COM"),
    ("zk/h.ex.com@EX.COM", True, False, "zk@EX.COM"),
    ("zk/h.ex.com@EX.COM", True, True, "zk"),
    ("carol@OTHER.ORG", True, True, "carol@OTHER.ORG"),  # no rule for a foreign realm
])
def test_kerberos_name_to_sasl_id(principal: str, host: bool, realm: bool,
                                  expected: str) -> None:
    from plugins.auth_sasl.kerberos_name import sasl_id

    assert sasl_id(principal, principal, "EX.COM", host, realm) == expected


@pytest.mark.parametrize("cfg,message", [
    ({"enforce.auth.enabled": "true"}, "enforce.auth.schemes must be configured"),
    ({"enforce.auth.enabled": "true", "enforce.auth.schemes": "kerberos"},
     "scheme kerberos is not available"),
])
def test_enforce_auth_misconfiguration_stops_the_server(
        server_factory: Callable[..., ServerProcess], cfg: dict[str, str],
        message: str) -> None:
    if server_class() is ApacheZooKeeperServer:
        pytest.skip("zkernel's start-up error text")
    with pytest.raises(RuntimeError, match=message):
        server_factory(cfg=cfg)


def test_missing_jaas_file_stops_the_server(
        server_factory: Callable[..., ServerProcess], tmp_path: Path) -> None:
    if server_class() is ApacheZooKeeperServer:
        pytest.skip("zkernel's start-up error text")
    with pytest.raises(RuntimeError, match="cannot read JAAS file"):
        server_factory(cfg={"java.security.auth.login.config": str(tmp_path / "nope.conf")})
