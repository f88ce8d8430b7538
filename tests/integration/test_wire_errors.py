"""Path validation and error precedence over raw sockets (protocol reference §6.2, §6.3, §7.1).

Every failed write is a transaction in ZooKeeper (an "error txn"): its reply carries a
fresh zxid.  Each check below also asserts that step.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration import wire
from tests.integration.wire import OP, Reply, WireConn
from tests.support.servers import ServerProcess, server_class

TARGET_ZK = os.environ.get("ZK_TEST_TARGET") == "zookeeper"
READ_ONLY_ACL = [(wire.PERM_READ, "world", "anyone")]
NO_DELETE_ACL = [(wire.PERM_ALL & ~wire.PERM_DELETE, "world", "anyone")]
NO_CREATE_ACL = [(wire.PERM_ALL & ~wire.PERM_CREATE, "world", "anyone")]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = server_class()(tmp_path_factory.mktemp("wire-errors"), {"extendedTypesEnabled": "true"})
    s.start()
    yield s
    s.stop()


class Checker:
    """A session that tracks the server's last zxid across its own requests."""

    def __init__(self, conn: WireConn) -> None:
        self.c = conn
        self.z = conn.ping().zxid

    def write(self, rep: Reply, err: int, what: str) -> Reply:
        assert rep.err == err, f"{what}: err {rep.err}, expected {err}"
        assert rep.zxid == self.z + 1, f"{what}: reply zxid {rep.zxid:#x}, expected " \
                                       f"{self.z + 1:#x} (a failed write consumes a zxid too)"
        if err != 0:
            assert rep.length == 16, f"{what}: error reply must be a bare header"
        self.z = rep.zxid
        return rep

    def read(self, rep: Reply, err: int, what: str) -> Reply:
        assert rep.err == err, f"{what}: err {rep.err}, expected {err}"
        assert rep.zxid == self.z, f"{what}: a read must not consume a zxid"
        return rep


@pytest.fixture
def ck(srv: Any) -> Iterator[Checker]:
    conn = wire.open_session(srv.host, srv.port)
    yield Checker(conn)
    conn.close()


def uniq(ck: Checker, name: str) -> str:
    return f"/{name}-{ck.c.session_id:x}"


INVALID_CHILD_NAMES = [
    ".", "..", "", "a\x01b", "a\x1fb", "\x7f", "a\u0080", "\u009f", "\ud7ff\ue000",
    "\uf8ff", "\ufff0", "\ufffd", "\uffff", "\U0001f600", "x\U00010000", "a/", "a//b",
]


@pytest.mark.parametrize("name", INVALID_CHILD_NAMES, ids=repr)
def test_create_invalid_path_is_bad_arguments(ck: Checker, name: str) -> None:
    parent = uniq(ck, "inv")
    ck.write(ck.c.create(parent), 0, "create parent")
    path = f"{parent}/{name}"
    # "a//b", "a/": the parent ("<p>/a/", "<p>/a") does not exist -> NoNode comes first
    err = wire.NO_NODE if name in ("a//b", "a/") else wire.BAD_ARGUMENTS
    ck.write(ck.c.create(path), err, f"create {path!r}")
    ck.read(ck.c.get_children(parent), 0, "list")


@pytest.mark.parametrize("name", ["..x", "...", "x..", ".x", "é", "\u00a0", "\ufeff",
                                  "\ud7ff", "\uf900", "a b", "\u2028"], ids=repr)
def test_create_unusual_but_valid_names(ck: Checker, name: str) -> None:
    parent = uniq(ck, "ok")
    ck.write(ck.c.create(parent), 0, "create parent")
    rep = ck.write(ck.c.create(f"{parent}/{name}"), 0, f"create {name!r}")
    assert rep.body["path"] == f"{parent}/{name}"
    assert ck.c.get_children(parent).body["children"] == [name]


def test_create_path_shapes(ck: Checker) -> None:
    c = ck.c
    p = uniq(ck, "shape")
    ck.write(c.create("/"), wire.NODE_EXISTS, "create /")
    ck.write(c.create("//x"), wire.BAD_ARGUMENTS, "create //x")
    ck.write(c.create("no-slash"), wire.BAD_ARGUMENTS, "create without a slash")
    ck.write(c.create(""), wire.BAD_ARGUMENTS, "create empty path")
    ck.write(c.create(p + "/"), wire.NO_NODE, "trailing slash, parent missing")
    ck.write(c.create(p + "//x"), wire.NO_NODE, "parent '<p>/' missing")
    ck.write(c.create(p + "/a\x00b"), wire.BAD_ARGUMENTS, "NUL beats NoNode")
    ck.write(c.create(p), 0, "create p")
    ck.write(c.create(p + "/"), wire.BAD_ARGUMENTS, "trailing slash, parent exists")
    ck.write(c.create(p + "/.", flags=2), 0, "sequential '.' + suffix is valid")
    rep = ck.write(c.create(p + "/", flags=2), 0, "sequential '/p/'")
    # the counter counts successful child creations only (the '.' one), not the failures
    assert rep.body["path"] == p + "/0000000001"
    rep = ck.write(c.create(p + "/", flags=3), 0, "ephemeral sequential '/p/'")
    assert rep.body["path"] == p + "/0000000002"
    assert sorted(ck.read(c.get_children(p), 0, "list").body["children"]) == \
        [".0000000000", "0000000001", "0000000002"]


@pytest.mark.parametrize("flags", [2, 3, 6], ids=["seq", "eph-seq", "ttl-seq"])
def test_sequential_create_of_trailing_slash(ck: Checker, flags: int) -> None:
    p = uniq(ck, f"slash{flags}")
    ck.write(ck.c.create(p), 0, "create parent")
    if flags == 6:
        rep = ck.write(ck.c.create_ttl(p + "/", 5000, flags=6), 0, "sequential TTL '/p/'")
    else:
        rep = ck.write(ck.c.create(p + "/", b"s", flags=flags), 0, "sequential '/p/'")
    assert rep.body["path"] == p + "/0000000000"
    assert ck.read(ck.c.get_children(p), 0, "list").body["children"] == ["0000000000"]


def test_delete_path_checks(ck: Checker) -> None:
    c = ck.c
    for path in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
        ck.write(c.delete(path), wire.BAD_ARGUMENTS, f"delete reserved {path}")
    ck.write(c.delete("no-slash"), wire.BAD_ARGUMENTS, "delete without slash")
    ck.write(c.delete("/a\x00b"), wire.BAD_ARGUMENTS, "delete with NUL")
    p = uniq(ck, "delpath")
    ck.write(c.create(p), 0, "create")
    # delete does no other path validation: malformed paths simply do not exist
    ck.write(c.delete(p + "/"), wire.NO_NODE, "delete trailing slash")
    ck.write(c.delete(p + "/."), wire.NO_NODE, "delete '.'")
    ck.write(c.delete(p + "//x"), wire.NO_NODE, "delete '//'")
    ck.write(c.delete(p), 0, "delete")


def test_reads_do_not_validate_paths(ck: Checker) -> None:
    c = ck.c
    for path in ("no-slash", "/trailing/", "/a//b", "/.", "/\U0001f600"):
        ck.read(c.get_data(path), wire.NO_NODE, f"getData {path!r}")
        ck.read(c.exists(path), wire.NO_NODE, f"exists {path!r}")
        ck.read(c.get_children(path), wire.NO_NODE, f"getChildren {path!r}")
    ck.read(c.exists("/a\x00b"), wire.BAD_ARGUMENTS, "exists with NUL")
    ck.read(c.get_data("/a\x00b"), wire.NO_NODE, "getData with NUL")
    sync = ck.read(c.call(OP["sync"], wire.path_body("no-slash")), 0, "sync")
    assert sync.body["path"] == "no-slash"


def test_create_precedence(srv: Any, ck: Checker) -> None:
    c = ck.c
    p = uniq(ck, "cprec")
    missing = p + "/missing/x"
    # 1. unknown CreateMode beats everything else
    ck.write(c.create(missing + "/.", flags=7), wire.BAD_ARGUMENTS, "flags 7")
    ck.write(c.create(missing, flags=-1), wire.BAD_ARGUMENTS, "flags -1")
    # 3. TTL flag without a ttl (opcodes 1/15/19) is BadArguments, before NoNode
    for op in (OP["create"], OP["create2"], OP["createContainer"]):
        ck.write(c.create(missing, flags=5, op=op), wire.BAD_ARGUMENTS, f"TTL flag op {op}")
    # 4. NUL in the path / no slash, before NoNode
    ck.write(c.create(p + "/missing/a\x00"), wire.BAD_ARGUMENTS, "NUL")
    # 5. invalid ACL before NoNode
    ck.write(c.create(missing, acl=[]), wire.INVALID_ACL, "empty ACL")
    ck.write(c.create(missing, acl=[(31, "world", "nobody")]), wire.INVALID_ACL, "world:nobody")
    ck.write(c.create(missing, acl=[(31, "digest", "nocolon")]), wire.INVALID_ACL, "digest id")
    ck.write(c.create(missing, acl=[(31, "auth", "")]), wire.INVALID_ACL, "auth, no identity")
    ck.write(c.create(missing, acl=[(31, "bogus", "x")]), wire.INVALID_ACL, "unknown scheme")
    # 6. missing parent
    ck.write(c.create(missing), wire.NO_NODE, "missing parent")
    # 7. no CREATE permission on the parent beats path validation and NodeExists
    ck.write(c.create(p, acl=NO_CREATE_ACL), 0, "create read-only parent")
    with wire.open_session(srv.host, srv.port) as admin:
        # children made by ... nobody can: make one by relaxing and restoring the ACL
        assert admin.set_acl(p, wire.OPEN_ACL).err == 0
        assert admin.create(p + "/kid").err == 0
        assert admin.set_acl(p, NO_CREATE_ACL).err == 0
        ck.z = admin.ping().zxid
        admin.close_session()
        ck.z += 1
    ck.write(c.create(p + "/."), wire.NO_AUTH, "NoAuth before BadArguments")
    ck.write(c.create(p + "/kid"), wire.NO_AUTH, "NoAuth before NodeExists")
    ck.write(c.create(p + "/new", flags=1), wire.NO_AUTH, "NoAuth")
    # 9./10./11. path validation, then NodeExists, then NoChildrenForEphemerals
    e = uniq(ck, "cprec-eph")
    ck.write(c.create(e, flags=1), 0, "ephemeral parent")
    ck.write(c.create(e + "/."), wire.BAD_ARGUMENTS, "BadArguments before -108")
    ck.write(c.create(e), wire.NODE_EXISTS, "NodeExists")
    ck.write(c.create(e + "/x"), wire.NO_CHILDREN_FOR_EPHEMERALS, "child of ephemeral")
    ck.write(c.create(e + "/s", flags=2), wire.NO_CHILDREN_FOR_EPHEMERALS, "seq child")
    # flag 4 with opcode 1 is an ordinary persistent node
    rep = ck.write(c.create(uniq(ck, "flag4"), flags=4), 0, "flag 4, opcode 1")
    assert ck.read(c.exists(rep.body["path"]), 0, "exists").body["stat"].ephemeralOwner == 0


def test_create_ttl_precedence(ck: Checker) -> None:
    c = ck.c
    p = uniq(ck, "ttl")
    ck.write(c.create_ttl(p + "/missing/x", 0), wire.BAD_ARGUMENTS, "ttl 0, before NoNode")
    ck.write(c.create_ttl(p, 0), wire.BAD_ARGUMENTS, "ttl 0")
    ck.write(c.create_ttl(p, -5), wire.BAD_ARGUMENTS, "ttl -5")
    ck.write(c.create_ttl(p, 0x10000000000), wire.BAD_ARGUMENTS, "ttl > 0xFFFFFFFFFF")
    ck.write(c.create_ttl(p, 100, flags=0), wire.BAD_ARGUMENTS, "non-TTL flag, ttl 100")
    ck.write(c.create_ttl(p, 100, flags=1), wire.BAD_ARGUMENTS, "ephemeral flag, ttl 100")
    ck.write(c.create_ttl(p, 100, flags=4), wire.BAD_ARGUMENTS, "container flag, ttl 100")
    ck.write(c.create_ttl(p, 100, flags=7), wire.BAD_ARGUMENTS, "flag 7")
    if not TARGET_ZK:
        # crashes Apache ZooKeeper 3.8 (the reference, §6.2 step 3): zkernel refuses it
        ck.write(c.create_ttl(p, -1, flags=0), wire.BAD_ARGUMENTS, "non-TTL flag, ttl -1")
    ck.write(c.create_ttl(p + "/missing/x", 100), wire.NO_NODE, "valid ttl, missing parent")
    rep = ck.write(c.create_ttl(p, 0xFFFFFFFFFF), 0, "ttl at the maximum")
    assert rep.body["path"] == p and rep.body["stat"].ephemeralOwner == 0


def test_create_ttl_disabled_is_unimplemented(server_factory: Any) -> None:
    srv = server_factory(cfg={"extendedTypesEnabled": "false"})
    with wire.open_session(srv.host, srv.port) as c:
        ck = Checker(c)
        # TTL flags: Unimplemented (step 2) before the TTL check and NoNode
        ck.write(c.create_ttl("/missing/x", 100), wire.UNIMPLEMENTED, "createTTL disabled")
        ck.write(c.create_ttl("/t", 0, flags=6), wire.UNIMPLEMENTED, "seq TTL disabled")
        ck.write(c.create("/t", flags=5), wire.UNIMPLEMENTED, "TTL flag, opcode 1, disabled")
        # the bad flag check still comes first
        ck.write(c.create_ttl("/t", 100, flags=9), wire.BAD_ARGUMENTS, "flag 9")
        assert c.ping().err == 0  # Unimplemented here does not close the connection
        c.close_session()


def test_delete_precedence(srv: Any, ck: Checker) -> None:
    c = ck.c
    p = uniq(ck, "dprec")
    ck.write(c.delete(p + "/missing/x"), wire.NO_NODE, "missing parent")
    ck.write(c.create(p), 0, "create p")
    ck.write(c.create(p + "/nd", acl=NO_DELETE_ACL), 0, "no-DELETE parent")
    ck.write(c.create(p + "/nd/kid"), 0, "child of no-DELETE parent")
    # NoAuth on the parent even when the node itself does not exist
    ck.write(c.delete(p + "/nd/missing"), wire.NO_AUTH, "NoAuth before NoNode")
    ck.write(c.delete(p + "/nd/kid", 99), wire.NO_AUTH, "NoAuth before BadVersion")
    ck.write(c.delete(p + "/gone"), wire.NO_NODE, "missing node")
    ck.write(c.create(p + "/ne"), 0, "create ne")
    ck.write(c.create(p + "/ne/kid"), 0, "create ne/kid")
    ck.write(c.delete(p + "/ne", 5), wire.BAD_VERSION, "BadVersion before NotEmpty")
    ck.write(c.delete(p + "/ne"), wire.NOT_EMPTY, "NotEmpty")
    ck.write(c.delete(p + "/ne", 0), wire.NOT_EMPTY, "right version, NotEmpty")
    ck.write(c.delete(p + "/ne/kid", 0), 0, "delete with the right version")
    ck.write(c.delete(p + "/ne", -1), 0, "delete any version")


def test_set_data_precedence(ck: Checker) -> None:
    c = ck.c
    p = uniq(ck, "sprec")
    ck.write(c.set_data(p + "/missing/.", b"x"), wire.BAD_ARGUMENTS, "invalid path first")
    ck.write(c.set_data(p + "/", b"x"), wire.BAD_ARGUMENTS, "trailing slash")
    ck.write(c.set_data(p, b"x"), wire.NO_NODE, "missing")
    ck.write(c.create(p, acl=READ_ONLY_ACL), 0, "read-only node")
    ck.write(c.set_data(p, b"x", 7), wire.NO_AUTH, "NoAuth before BadVersion")
    ck.write(c.set_data("/zookeeper/config", b"x"), wire.NO_AUTH, "config is read-only")
    q = uniq(ck, "sprec-ok")
    ck.write(c.create(q), 0, "create")
    ck.write(c.set_data(q, b"x", 1), wire.BAD_VERSION, "BadVersion")
    rep = ck.write(c.set_data(q, b"x", 0), 0, "right version")
    assert rep.body["stat"].version == 1 and rep.body["stat"].mzxid == rep.zxid


def test_set_acl_precedence(ck: Checker) -> None:
    c = ck.c
    p = uniq(ck, "aprec")
    ck.write(c.set_acl(p + "/.", wire.OPEN_ACL), wire.BAD_ARGUMENTS, "invalid path")
    ck.write(c.set_acl(p, []), wire.INVALID_ACL, "InvalidACL before NoNode")
    ck.write(c.set_acl(p, [(31, "auth", "")]), wire.INVALID_ACL, "auth without identity")
    ck.write(c.set_acl(p, wire.OPEN_ACL), wire.NO_NODE, "missing")
    ck.write(c.create(p, acl=READ_ONLY_ACL), 0, "read-only node")
    ck.write(c.set_acl(p, wire.OPEN_ACL, 9), wire.NO_AUTH, "NoAuth before BadVersion")
    q = uniq(ck, "aprec-ok")
    ck.write(c.create(q), 0, "create")
    ck.write(c.set_acl(q, READ_ONLY_ACL, 1), wire.BAD_VERSION, "BadVersion (aversion)")
    rep = ck.write(c.set_acl(q, READ_ONLY_ACL + READ_ONLY_ACL, 0), 0, "right aversion")
    assert rep.body["stat"].aversion == 1 and rep.body["stat"].mzxid != rep.zxid
    # duplicates were removed
    assert ck.read(c.get_acl(q), 0, "getACL").body["acl"] == READ_ONLY_ACL


def test_read_no_auth_does_not_consume_zxid(ck: Checker) -> None:
    c = ck.c
    p = uniq(ck, "rnoauth")
    ck.write(c.create(p, b"s", acl=[(wire.PERM_ALL, "digest", "u:x")]), 0, "protected")
    ck.read(c.get_data(p), wire.NO_AUTH, "getData")
    ck.read(c.get_children(p), wire.NO_AUTH, "getChildren")
    ck.read(c.get_acl(p), wire.NO_AUTH, "getACL")
    ck.read(c.call(OP["getAllChildrenNumber"], wire.path_body(p)), wire.NO_AUTH, "count")
    # exists needs READ since 3.8.4/3.9.2 (zkernel); 3.8.0 answers with the Stat
    ck.read(c.exists(p), 0 if TARGET_ZK else wire.NO_AUTH, "exists")
