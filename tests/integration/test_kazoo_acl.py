"""kazoo against a real server: ACL schemes, permission checks, auth, super user (§9).

Reference: client-protocol.md §9 (schemes, fix-up, check algorithm, getACL redaction),
§6.2 (precedence of NoAuth against other errors), §3.4 (auth packets).
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from kazoo.exceptions import (
    AuthFailedError,
    BadVersionError,
    InvalidACLError,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
)
from kazoo.protocol.states import KazooState, KeeperState
from kazoo.security import (
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)

from tests.integration import kazoo_helpers as kh


@pytest.fixture
def anon(srv, clients):
    return clients.new(srv)


def digest_id(user, password):
    raw = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(raw).decode()}"


def acls_of(client, path):
    return [kh.acl_tuple(a) for a in client.get_acls(path)[0]]


def test_digest_id_format():
    # the known vector from client-protocol.md §9.2, and kazoo agrees with our helper
    assert digest_id("alice", "secret") == "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="
    assert make_digest_acl_credential("alice", "secret") == digest_id("alice", "secret")


# ---------------------------------------------------------------------------------------
# world
# ---------------------------------------------------------------------------------------


def test_world_read_only_node(zk):
    zk.create("/ro", b"data", acl=READ_ACL_UNSAFE)
    assert zk.get("/ro")[0] == b"data"
    assert acls_of(zk, "/ro") == [(1, "world", "anyone")]
    assert zk.get_children("/ro") == []
    with pytest.raises(NoAuthError):
        zk.set("/ro", b"x")
    with pytest.raises(NoAuthError):
        zk.create("/ro/child", b"")
    with pytest.raises(NoAuthError):
        zk.set_acls("/ro", OPEN_ACL_UNSAFE)
    # NoAuth wins over BadVersion for setData and setACL
    with pytest.raises(NoAuthError):
        zk.set("/ro", b"x", version=42)
    with pytest.raises(NoAuthError):
        zk.set_acls("/ro", OPEN_ACL_UNSAFE, version=42)
    # deleting the node itself needs DELETE on the parent (/), which is open
    zk.delete("/ro")
    assert zk.exists("/ro") is None


def test_each_permission_bit(zk):
    zk.create("/perm", b"")
    cases = {
        "r": make_acl("world", "anyone", read=True),
        "w": make_acl("world", "anyone", write=True),
        "c": make_acl("world", "anyone", create=True),
        "d": make_acl("world", "anyone", delete=True),
        "a": make_acl("world", "anyone", admin=True),
    }
    for name, acl in cases.items():
        zk.create(f"/perm/{name}", b"", acl=[acl])
        zk.create(f"/perm/{name}-kid", b"")  # victims for the delete checks

    def outcome(name):
        p = f"/perm/{name}"
        results = {}
        results["get"] = kh.error_name(lambda: zk.get(p))
        results["children"] = kh.error_name(lambda: zk.get_children(p))
        results["set"] = kh.error_name(lambda: zk.set(p, b"x"))
        results["create"] = kh.error_name(lambda: zk.create(p + "/x", b""))
        results["getacl"] = kh.error_name(lambda: zk.get_acls(p))
        results["setacl"] = kh.error_name(lambda: zk.set_acls(p, [cases[name]]))
        return results

    ok, no = "ok", "NoAuthError"
    expected = {
        "r": dict(get=ok, children=ok, set=no, create=no, getacl=ok, setacl=no),
        "w": dict(get=no, children=no, set=ok, create=no, getacl=no, setacl=no),
        "c": dict(get=no, children=no, set=no, create=ok, getacl=no, setacl=no),
        "d": dict(get=no, children=no, set=no, create=no, getacl=no, setacl=no),
        "a": dict(get=no, children=no, set=no, create=no, getacl=ok, setacl=ok),
    }
    assert {name: outcome(name) for name in cases} == expected


def test_delete_needs_delete_on_parent_not_on_node(zk):
    zk.create("/nd", b"", acl=[make_acl("world", "anyone", read=True, create=True)])
    zk.create("/nd/child", b"")
    with pytest.raises(NoAuthError):
        zk.delete("/nd/child")
    # NoAuth on the parent comes before NoNode for the node itself
    with pytest.raises(NoAuthError):
        zk.delete("/nd/missing")
    # a missing parent is NoNode
    with pytest.raises(NoNodeError):
        zk.delete("/nd-missing/child")
    # the node's own ACL does not matter for its deletion
    zk.create("/od", b"")
    zk.create("/od/locked", b"", acl=[make_acl("world", "anyone", read=True)])
    zk.delete("/od/locked")
    assert zk.exists("/od/locked") is None


def test_create_needs_create_on_parent_before_node_exists(zk):
    zk.create("/nc", b"")
    zk.create("/nc/existing", b"")
    zk.set_acls("/nc", [make_acl("world", "anyone", read=True)])
    with pytest.raises(NoAuthError):
        zk.create("/nc/new", b"")
    # the CREATE check happens before the existence check
    with pytest.raises(NoAuthError):
        zk.create("/nc/existing", b"")
    # but a missing parent is reported first
    with pytest.raises(NoNodeError):
        zk.create("/nc/missing/x", b"")


def test_reads_without_read_permission(zk):
    zk.create("/nr", b"secret", acl=[make_acl("world", "anyone", write=True)])
    zk.create("/nr-parent", b"")
    zk.create("/nr-parent/kid", b"")
    zk.set_acls("/nr-parent", [make_acl("world", "anyone", write=True, admin=True)])
    w = kh.Watcher()
    mark = kh.wire(zk).mark()
    with pytest.raises(NoAuthError):
        zk.get("/nr", watch=w)
    with pytest.raises(NoAuthError):
        zk.get_children("/nr-parent", watch=w)
    with pytest.raises(NoAuthError):
        zk.get_children("/nr-parent", include_data=True)
    with pytest.raises(NoAuthError):
        zk.get_acls("/nr")
    # no watch was registered by the refused reads
    zk.set("/nr", b"changed")
    zk.set_acls("/nr-parent", OPEN_ACL_UNSAFE)
    zk.create("/nr-parent/kid2", b"")
    zk.sync("/")
    assert kh.wire(zk).events_since(mark) == []
    # a missing node below an unreadable parent is simply missing
    assert zk.exists("/nr/x") is None


def test_exists_without_read_permission(zk):
    zk.create("/nx", b"", acl=[make_acl("world", "anyone", write=True)])
    if kh.IS_ZOOKEEPER:
        pytest.skip("3.8.0 returns the Stat; 3.8.4+/3.9.2+ answer NoAuth (zkernel)")
    with pytest.raises(NoAuthError):
        zk.exists("/nx")


# ---------------------------------------------------------------------------------------
# ACL validation and getACL
# ---------------------------------------------------------------------------------------


def test_invalid_acls(zk):
    zk.create("/ia", b"")
    bad = {
        "world:somebody": [make_acl("world", "somebody", read=True)],
        "digest without colon": [make_acl("digest", "alice", read=True)],
        "digest with two colons": [make_acl("digest", "a:b:c", read=True)],
        "digest empty hash": [make_acl("digest", "alice:", read=True)],
        "unknown scheme": [make_acl("nosuch", "x", read=True)],
        "sasl not configured": [make_acl("sasl", "bob", read=True)],
        "ip garbage": [make_acl("ip", "not-an-ip", read=True)],
        "auth without identity": CREATOR_ALL_ACL,
        "one bad among good": [make_acl("world", "anyone", read=True),
                               make_acl("world", "nobody", read=True)],
    }
    create = {k: kh.error_name(lambda a=a: zk.create("/ia/x", b"", acl=a)) for k, a in bad.items()}
    setacl = {k: kh.error_name(lambda a=a: zk.set_acls("/ia", a)) for k, a in bad.items()}
    assert create == {k: "InvalidACLError" for k in bad}
    assert setacl == {k: "InvalidACLError" for k in bad}
    assert zk.exists("/ia/x") is None
    assert zk.exists("/ia").aversion == 0
    # an empty list is invalid (kazoo substitutes its default for [] on create, so raw)
    with pytest.raises(InvalidACLError):
        kh.call(zk, kh.RawCreate("/ia/y", b"", [], 0, 1))
    with pytest.raises(InvalidACLError):
        zk.set_acls("/ia", [])
    # the ACL is validated before the node is looked up
    with pytest.raises(InvalidACLError):
        zk.set_acls("/ia-missing", [])
    with pytest.raises(NoNodeError):
        zk.set_acls("/ia-missing", OPEN_ACL_UNSAFE)


def test_set_acl_versions(zk):
    _, st0 = zk.create("/sa", b"v", include_data=True)
    with pytest.raises(BadVersionError):
        zk.set_acls("/sa", READ_ACL_UNSAFE + OPEN_ACL_UNSAFE, version=9)
    st1 = zk.set_acls("/sa", [make_acl("world", "anyone", read=True, admin=True)], version=0)
    assert st1.aversion == 1
    # setACL changes neither mzxid nor version nor the parent
    assert (st1.mzxid, st1.version, st1.czxid, st1.cversion) == (
        st0.mzxid, st0.version, st0.czxid, st0.cversion)
    acls, st = zk.get_acls("/sa")
    assert [kh.acl_tuple(a) for a in acls] == [(17, "world", "anyone")]
    assert st == st1
    assert zk.set_acls("/sa", OPEN_ACL_UNSAFE, version=-1).aversion == 2
    with pytest.raises(BadVersionError):
        zk.set_acls("/sa", OPEN_ACL_UNSAFE, version=1)
    assert zk.exists("/sa").aversion == 2


def test_duplicate_acl_entries_are_removed(zk):
    acl = [make_acl("world", "anyone", read=True), make_acl("world", "anyone", read=True),
           make_acl("world", "anyone", all=True)]
    zk.create("/dup", b"", acl=acl)
    assert acls_of(zk, "/dup") == [(1, "world", "anyone"), (31, "world", "anyone")]


def test_get_acl_redacts_digest_without_admin(zk, srv, clients):
    admin = clients.new(srv, auth_data=[("digest", "alice:secret")])
    acl = [make_acl("world", "anyone", read=True), make_digest_acl("alice", "secret", all=True)]
    admin.create("/red", b"", acl=acl)
    full = [(1, "world", "anyone"), (31, "digest", digest_id("alice", "secret"))]
    assert acls_of(admin, "/red") == full
    # READ without ADMIN: digest ids are shown as user:x
    assert acls_of(zk, "/red") == [(1, "world", "anyone"), (31, "digest", "alice:x")]
    # ADMIN alone is enough for getACL, and then nothing is hidden
    admin.create("/adm", b"", acl=[make_acl("world", "anyone", admin=True),
                                   make_digest_acl("bob", "pw", read=True)])
    assert acls_of(zk, "/adm") == [(16, "world", "anyone"),
                                   (1, "digest", digest_id("bob", "pw"))]


# ---------------------------------------------------------------------------------------
# digest and auth schemes
# ---------------------------------------------------------------------------------------


def test_digest_auth(zk, srv, clients):
    zk.add_auth("digest", "user:secret")
    zk.create("/secret", b"top", acl=[make_digest_acl("user", "secret", all=True)])
    assert zk.get("/secret")[0] == b"top"

    b = clients.new(srv)
    with pytest.raises(NoAuthError):
        b.get("/secret")
    with pytest.raises(NoAuthError):
        b.get_acls("/secret")
    # a wrong password is accepted by addauth but grants nothing
    assert b.add_auth("digest", "user:wrong") is True
    with pytest.raises(NoAuthError):
        b.get("/secret")
    # identities accumulate on the connection
    b.add_auth("digest", "user:secret")
    assert b.get("/secret")[0] == b"top"

    # credentials passed at construction are sent right after the handshake
    c = clients.new(srv, auth_data=[("digest", "user:secret")])
    assert c.get("/secret")[0] == b"top"
    c.set("/secret", b"new")
    assert zk.get("/secret")[0] == b"new"


def test_digest_auth_is_replayed_after_reconnect(srv, clients):
    with kh.tcp_proxy(srv) as proxy:
        a = clients.new(proxy)
        a.add_auth("digest", "user:secret")
        a.create("/replay", b"r", acl=[make_digest_acl("user", "secret", all=True)])
        proxy.drop()
        kh.wait_until(lambda: len(kh.wire(a).connects) >= 2 and a.connected, msg="reconnect")
        assert a.get("/replay")[0] == b"r"


def test_auth_scheme_expands_to_callers_identities(srv, clients, anon):
    one = clients.new(srv, auth_data=[("digest", "alice:pw")])
    one.create("/cr", b"", acl=CREATOR_ALL_ACL)
    assert acls_of(one, "/cr") == [(31, "digest", digest_id("alice", "pw"))]

    two = clients.new(srv)
    two.add_auth("digest", "alice:pw")
    two.add_auth("digest", "bob:pw2")
    two.create("/cr2", b"", acl=[make_acl("auth", "", read=True, admin=True)])
    assert sorted(acls_of(two, "/cr2")) == sorted(
        [(17, "digest", digest_id("alice", "pw")), (17, "digest", digest_id("bob", "pw2"))])

    # an anonymous client has only an ip identity, which 'auth' does not use
    with pytest.raises(InvalidACLError):
        anon.create("/cr3", b"", acl=CREATOR_ALL_ACL)
    with pytest.raises(NoAuthError):
        anon.get("/cr")
    with pytest.raises(InvalidACLError):
        anon.set_acls("/cr", CREATOR_ALL_ACL)


def test_auth_failed_for_unknown_scheme(srv, clients, anon):
    z = clients.new(srv)
    sid = z.client_id[0]
    z.create("/af", b"")
    with pytest.raises(AuthFailedError):
        z.add_auth("nosuchscheme", "whatever")
    kh.wait_until(lambda: KazooState.LOST in kh.states(z), msg="client gives up")
    kh.wait_until(lambda: not z.connected and z.client_state in (
        KeeperState.AUTH_FAILED, KeeperState.CLOSED), msg="client stopped")
    # every auth reply carried AuthFailed(-115)
    auth_errs = [f.err for f in kh.wire(z).frames if f.xid == kh.AUTH_XID]
    assert auth_errs and set(auth_errs) == {-115}
    # the server is fine and the other session unaffected; the session itself was not
    # closed by the failed auth
    assert anon.get("/af")[0] == b""
    assert anon.create("/af/x", b"") == "/af/x"
    assert sid != 0


def test_who_am_i(srv, clients, anon):
    assert kh.call(anon, kh.WhoAmI()) == [("ip", "127.0.0.1")]
    a = clients.new(srv, auth_data=[("digest", "alice:secret")])
    assert sorted(kh.call(a, kh.WhoAmI())) == [("digest", "alice"), ("ip", "127.0.0.1")]
    a.add_auth("digest", "nocolon")  # digest auth never fails
    assert sorted(kh.call(a, kh.WhoAmI())) == [
        ("digest", "alice"), ("digest", "nocolon"), ("ip", "127.0.0.1")]


# ---------------------------------------------------------------------------------------
# ip scheme
# ---------------------------------------------------------------------------------------


def test_ip_acls(zk):
    ok_ids = ["127.0.0.1", "127.0.0.0/8", "127.0.0.1/32", "0.0.0.0/0"]
    denied_ids = ["10.0.0.1", "10.0.0.0/8", "127.0.0.2", "127.0.0.0/32"]
    if not kh.IS_ZOOKEEPER:
        denied_ids += ["::1", "::/0"]  # IPv6 ids are valid in 3.9 but never match IPv4
    for i, ident in enumerate(ok_ids + denied_ids):
        zk.create(f"/ip{i}", b"v", acl=[make_acl("ip", ident, all=True)])
    got = {ident: kh.error_name(lambda i=i: zk.get(f"/ip{i}"))
           for i, ident in enumerate(ok_ids + denied_ids)}
    assert got == {**{i: "ok" for i in ok_ids}, **{i: "NoAuthError" for i in denied_ids}}
    # an ip entry grants only its own bits
    zk.create("/ipr", b"", acl=[make_acl("ip", "127.0.0.1", read=True)])
    assert zk.get("/ipr")[0] == b""
    with pytest.raises(NoAuthError):
        zk.set("/ipr", b"x")


# ---------------------------------------------------------------------------------------
# super user and skipACL
# ---------------------------------------------------------------------------------------


def test_super_digest_bypasses_acls(server_factory, clients):
    srv = server_factory(cfg={"superDigest": digest_id("super", "pw")})
    owner = clients.new(srv, auth_data=[("digest", "alice:secret")])
    owner.create("/locked", b"l", acl=[make_digest_acl("alice", "secret", read=True)])
    owner.create("/locked2/kid", b"", makepath=True)
    owner.set_acls("/locked2", [make_digest_acl("alice", "secret", read=True)])
    anon = clients.new(srv)
    with pytest.raises(NoAuthError):
        anon.get("/locked")

    su = clients.new(srv, auth_data=[("digest", "super:pw")])
    assert su.get("/locked")[0] == b"l"
    assert su.set("/locked", b"by super").version == 1
    assert su.create("/locked/child", b"") == "/locked/child"
    su.delete("/locked/child")
    assert su.set_acls("/locked", OPEN_ACL_UNSAFE).aversion == 1
    su.delete("/locked2/kid")
    assert anon.get("/locked")[0] == b"by super"
    # super sees full digest ids even without ADMIN in the ACL
    assert acls_of(su, "/locked2") == [(1, "digest", digest_id("alice", "secret"))]
    # and may write /zookeeper/config
    assert su.set("/zookeeper/config", b"").version == 1

    assert sorted(kh.call(su, kh.WhoAmI())) == [
        ("digest", "super"), ("ip", "127.0.0.1"), ("super", "")]

    # a wrong super password is just another digest identity
    fake = clients.new(srv, auth_data=[("digest", "super:wrong")])
    with pytest.raises(NoAuthError):
        fake.get("/locked2")


def test_skip_acl(server_factory, clients):
    srv = server_factory(cfg={"skipACL": "yes"})
    owner = clients.new(srv, auth_data=[("digest", "alice:secret")])
    owner.create("/s", b"s", acl=[make_digest_acl("alice", "secret", read=True)])
    anon = clients.new(srv)
    assert anon.get("/s")[0] == b"s"
    assert anon.set("/s", b"x").version == 1
    anon.create("/s/c", b"")
    with pytest.raises(NodeExistsError):
        anon.create("/s/c", b"")
    # ACLs are still validated and stored
    with pytest.raises(InvalidACLError):
        anon.create("/bad", b"", acl=[make_acl("world", "nobody", read=True)])
    assert acls_of(anon, "/s") == [(1, "digest", digest_id("alice", "secret"))]
