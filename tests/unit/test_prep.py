"""Prep: requests → Txn bodies with ZooKeeper's error precedence (§6.2), the sequential
counter (§7.3) including writes still in flight, multi (§5.6) and session close."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from kernel.acl import OPEN_ACL_UNSAFE, ACLChecker, IPAuthProvider
from kernel.errors import (
    BadArguments,
    BadVersion,
    InvalidACL,
    NoAuth,
    NoChildrenForEphemerals,
    NodeExists,
    NoNode,
    NotEmpty,
    ReconfigDisabled,
    RuntimeInconsistency,
    Unimplemented,
)
from kernel.prep import Prep
from kernel.protocol import CONTAINER_EPHEMERAL_OWNER, MAX_TTL, OpCode
from kernel.records import (
    ACL,
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    Id,
    MultiRequest,
    ReconfigRequest,
    SetACLRequest,
    SetDataRequest,
)
from kernel.tree import DataTree, ttl_owner
from kernel.txn import (
    CheckTxn,
    CloseSessionTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    Txn,
    TxnBody,
)
from plugins.auth_digest import DigestAuthProvider, digest_id

SID = 0x100000000000001
OTHER = 0x100000000000002
OPEN = list(OPEN_ACL_UNSAFE)
ALICE = Id("digest", digest_id("alice:secret"))
SUPER = Id("super", "")

E_BADARGS = BadArguments.code
E_UNIMPL = Unimplemented.code
E_INVALID_ACL = InvalidACL.code
E_NONODE = NoNode.code
E_NOAUTH = NoAuth.code
E_BADVERSION = BadVersion.code
E_EXISTS = NodeExists.code
E_NOTEMPTY = NotEmpty.code
E_EPHEMERAL = NoChildrenForEphemerals.code


class P:
    """A Prep over a tree with a zxid counter; ``apply`` commits like the kernel does."""

    def __init__(self, extended_types: bool = False) -> None:
        self.tree = DataTree()
        checker = ACLChecker({"ip": IPAuthProvider(), "digest": DigestAuthProvider()})
        self.prep = Prep(self.tree, checker, extended_types=extended_types)
        self.zxid = 0

    def fixture(self, path: str, owner: int = 0, acl: Sequence[ACL] = OPEN,
                data: bytes = b"") -> None:
        """Put a node straight into the tree (bypassing prep)."""
        self.zxid += 1
        parent = self.tree.nodes[path.rsplit("/", 1)[0] or "/"]
        self.tree.apply(Txn(self.zxid, SID, 0, 1000, OpCode.CREATE,
                            CreateTxn(path, data, tuple(acl), owner, parent.c + 1)))

    def prepare(self, op: int, rec: object, ids: Sequence[Id] = (), sid: int = SID) -> TxnBody:
        self.zxid += 1
        return self.prep.prepare(op, rec, sid, list(ids), self.zxid)

    def apply(self, body: TxnBody, zxid: int | None = None) -> None:
        z = self.zxid if zxid is None else zxid
        self.tree.apply(Txn(z, SID, 0, 2000, OpCode.MULTI, body))
        self.prep.applied(z)

    def run(self, op: int, rec: object, ids: Sequence[Id] = (), sid: int = SID) -> TxnBody:
        body = self.prepare(op, rec, ids, sid)
        self.apply(body)
        return body


def create(path: str, flags: int = 0, acl: list[ACL] | None = None, data: bytes = b"x",
           ttl: int = -1) -> CreateRequest:
    return CreateRequest(path, data, OPEN if acl is None else acl, flags, ttl)


def err(body: TxnBody) -> int:
    assert isinstance(body, ErrorTxn), f"expected an error, got {body!r}"
    return body.err


@pytest.fixture
def p() -> P:
    """/p, /e (ephemeral of SID) with a child /e/c, /ro (world READ only) with /ro/x,
    /sec (alice only), /full with /full/k, /c (container), /t (TTL), /m/x."""
    s = P(extended_types=True)
    s.fixture("/p")
    s.fixture("/e", owner=SID)
    s.fixture("/e/c")  # impossible through prep; shows NodeExists beats -108
    s.fixture("/ro")
    s.fixture("/ro/x")
    s.tree.nodes["/ro"].acl = (ACL(1, "world", "anyone"),)
    s.fixture("/sec", acl=[ACL(31, "digest", ALICE.id)])
    s.fixture("/full")
    s.fixture("/full/k")
    s.fixture("/c", owner=CONTAINER_EPHEMERAL_OWNER)
    s.fixture("/t", owner=ttl_owner(60000))
    s.fixture("/m")
    s.fixture("/m/x")
    return s


# ------------------------------------------------------------------ create precedence


@pytest.mark.parametrize("extended, op, rec, code", [
    # 1. unknown flags first — even before the TTL/extended-types check
    (False, OpCode.CREATE_TTL, create("noslash", flags=7, acl=[], ttl=5), E_BADARGS),
    (True, OpCode.CREATE, create("noslash", flags=-1, acl=[]), E_BADARGS),
    # 2. TTL without extended types → Unimplemented, before path/ACL checks
    (False, OpCode.CREATE, create("noslash", flags=5, acl=[]), E_UNIMPL),
    (False, OpCode.CREATE_TTL, create("noslash", flags=0, acl=[], ttl=100), E_UNIMPL),
    (False, OpCode.CREATE_TTL, create("/p/t", flags=5, ttl=100), E_UNIMPL),
    # 3. TTL consistency → BadArguments (before ACL)
    (True, OpCode.CREATE, create("/p/t", flags=5, acl=[]), E_BADARGS),
    (True, OpCode.CREATE2, create("/p/t", flags=6, acl=[]), E_BADARGS),
    (True, OpCode.CREATE_CONTAINER, create("/p/t", flags=5), E_BADARGS),
    (True, OpCode.CREATE_TTL, create("/p/t", flags=5, ttl=0, acl=[]), E_BADARGS),
    (True, OpCode.CREATE_TTL, create("/p/t", flags=5, ttl=-5), E_BADARGS),
    (True, OpCode.CREATE_TTL, create("/p/t", flags=5, ttl=MAX_TTL + 1), E_BADARGS),
    (True, OpCode.CREATE_TTL, create("/p/t", flags=0, ttl=100), E_BADARGS),
    (True, OpCode.CREATE_TTL, create("/p/t", flags=0, ttl=-1), E_BADARGS),
    # 4. no slash / NUL → BadArguments, before the ACL
    (True, OpCode.CREATE, create("noslash", acl=[]), E_BADARGS),
    (True, OpCode.CREATE, create("/p/a\0b", acl=[]), E_BADARGS),
    # 5. invalid ACL → InvalidACL, before the parent lookup
    (True, OpCode.CREATE, create("/nope/x", acl=[]), E_INVALID_ACL),
    (True, OpCode.CREATE, CreateRequest("/nope/x", b"", None, 0), E_INVALID_ACL),
    (True, OpCode.CREATE, create("/nope/x", acl=[ACL(31, "world", "bob")]), E_INVALID_ACL),
    (True, OpCode.CREATE, create("/nope/x", acl=[ACL(31, "foo", "bar")]), E_INVALID_ACL),
    (True, OpCode.CREATE, create("/nope/x", acl=[ACL(31, "auth", "")]), E_INVALID_ACL),
    (True, OpCode.CREATE, create("/nope/x", acl=[ACL(31, "digest", "alice")]), E_INVALID_ACL),
    (True, OpCode.CREATE, create("/nope/x", acl=[ACL(31, "digest", "a:b:c")]), E_INVALID_ACL),
    (True, OpCode.CREATE, create("/nope/x", acl=[ACL(31, "ip", "not-an-ip")]), E_INVALID_ACL),
    # 6. parent missing → NoNode (before path validation of the final path)
    (True, OpCode.CREATE, create("/nope/x"), E_NONODE),
    (True, OpCode.CREATE, create("/a/"), E_NONODE),
    (True, OpCode.CREATE, create("/p//x"), E_NONODE),
    (True, OpCode.CREATE, create("/nope/."), E_NONODE),
    # 7. no CREATE on the parent → NoAuth, before path validation and existence
    (True, OpCode.CREATE, create("/ro/x"), E_NOAUTH),
    (True, OpCode.CREATE, create("/ro/."), E_NOAUTH),
    (True, OpCode.CREATE, create("/sec/x"), E_NOAUTH),
    # 9. full path validation of the final path → BadArguments
    (True, OpCode.CREATE, create("/p/."), E_BADARGS),
    (True, OpCode.CREATE, create("/p/.."), E_BADARGS),
    (True, OpCode.CREATE, create("/p/a\x01"), E_BADARGS),
    (True, OpCode.CREATE, create("/p/a\x7f"), E_BADARGS),
    (True, OpCode.CREATE, create("/p/\U0001F600"), E_BADARGS),
    (True, OpCode.CREATE, create("/p/\ue000"), E_BADARGS),
    (True, OpCode.CREATE, create("/p/\ufff0"), E_BADARGS),
    (True, OpCode.CREATE, create("/e/."), E_BADARGS),  # before NoChildrenForEphemerals
    # 10. exists → NodeExists, before the ephemeral-parent check
    (True, OpCode.CREATE, create("/"), E_EXISTS),
    (True, OpCode.CREATE, create("/p"), E_EXISTS),
    (True, OpCode.CREATE, create("/e/c"), E_EXISTS),
    (True, OpCode.CREATE, create("/zookeeper"), E_EXISTS),
    # 11. ephemeral parent
    (True, OpCode.CREATE, create("/e/x"), E_EPHEMERAL),
    (True, OpCode.CREATE_CONTAINER, create("/e/x", flags=4), E_EPHEMERAL),
])
def test_create_error_precedence(p: P, extended: bool, op: int, rec: CreateRequest,
                                 code: int) -> None:
    p.prep.extended_types = extended
    assert err(p.prepare(op, rec)) == code


@pytest.mark.parametrize("path", ["/p/..x", "/p/...", "/p/é", "/p/a b", "/c/x", "/t/x",
                                  "/zookeeper/mine"])
def test_create_accepts(p: P, path: str) -> None:
    body = p.prepare(OpCode.CREATE, create(path))
    assert body == CreateTxn(path, b"x", OPEN_ACL_UNSAFE, 0,
                             p.tree.nodes[path.rsplit("/", 1)[0]].c + 1)


def test_create_with_digest_identity_and_super(p: P) -> None:
    assert isinstance(p.prepare(OpCode.CREATE, create("/sec/a"), ids=[ALICE]), CreateTxn)
    assert isinstance(p.prepare(OpCode.CREATE, create("/ro/y"), ids=[SUPER]), CreateTxn)


def test_create_owner_by_mode_and_opcode(p: P) -> None:
    def owner(op: int, rec: CreateRequest) -> int:
        body = p.prepare(op, rec)
        assert isinstance(body, CreateTxn), body
        return body.owner

    assert owner(OpCode.CREATE, create("/p/a", flags=0)) == 0
    assert owner(OpCode.CREATE, create("/p/b", flags=1)) == SID
    assert owner(OpCode.CREATE, create("/p/c", flags=4)) == 0  # flag 4 w/o opcode 19
    assert owner(OpCode.CREATE_CONTAINER, create("/p/d", flags=4)) == CONTAINER_EPHEMERAL_OWNER
    assert owner(OpCode.CREATE_CONTAINER, create("/p/e", flags=0)) == CONTAINER_EPHEMERAL_OWNER
    assert owner(OpCode.CREATE_TTL, create("/p/f", flags=5, ttl=1500)) == ttl_owner(1500)
    assert owner(OpCode.CREATE_TTL, create("/p/g", flags=5, ttl=MAX_TTL)) == ttl_owner(MAX_TTL)


def test_create_container_opcode_wins_over_ephemeral_flag(p: P) -> None:
    body = p.prepare(OpCode.CREATE_CONTAINER, create("/p/ce", flags=1))
    assert isinstance(body, CreateTxn)
    assert body.owner == CONTAINER_EPHEMERAL_OWNER


def test_create_acl_is_deduplicated_and_auth_expanded(p: P) -> None:
    acl = [ACL(31, "world", "anyone"), ACL(31, "world", "anyone"), ACL(1, "auth", "")]
    body = p.prepare(OpCode.CREATE, create("/p/a", acl=acl), ids=[Id("ip", "1.2.3.4"), ALICE])
    assert isinstance(body, CreateTxn)
    assert body.acl == (ACL(31, "world", "anyone"), ACL(1, "digest", ALICE.id))


# --------------------------------------------------------------- sequential counter


def test_sequential_suffix_on_fresh_root() -> None:
    s = P()
    b = s.prepare(OpCode.CREATE, create("/s-", flags=2))
    assert isinstance(b, CreateTxn)
    assert (b.path, b.parent_c) == ("/s-0000000000", 1)


def test_sequential_suffix_with_in_flight_creates() -> None:
    s = P()
    s.run(OpCode.CREATE, create("/q"))
    first = s.prepare(OpCode.CREATE, create("/q/n-", flags=2))
    second = s.prepare(OpCode.CREATE, create("/q/n-", flags=3))  # nothing applied yet
    assert isinstance(first, CreateTxn) and isinstance(second, CreateTxn)
    assert (first.path, second.path) == ("/q/n-0000000000", "/q/n-0000000001")
    assert (first.parent_c, second.parent_c) == (1, 2)
    assert second.owner == SID


def test_same_path_twice_in_flight_is_node_exists() -> None:
    s = P()
    assert isinstance(s.prepare(OpCode.CREATE, create("/dup")), CreateTxn)
    assert err(s.prepare(OpCode.CREATE, create("/dup"))) == E_EXISTS


def test_sequential_counter_counts_all_creates_not_deletes() -> None:
    # §7.3: /p after three creates and one delete → next suffix 3.
    s = P()
    s.run(OpCode.CREATE, create("/p"))
    for name in "abc":
        s.run(OpCode.CREATE, create(f"/p/{name}"))
    s.run(OpCode.DELETE, DeleteRequest("/p/b"))
    assert s.tree.nodes["/p"].stat().cversion == 4
    b = s.prepare(OpCode.CREATE, create("/p/q-", flags=2))
    assert isinstance(b, CreateTxn) and b.path == "/p/q-0000000003"


def test_failed_create_does_not_advance_counter() -> None:
    s = P()
    s.run(OpCode.CREATE, create("/p"))
    s.run(OpCode.CREATE, create("/p/a"))
    assert err(s.prepare(OpCode.CREATE, create("/p/a"))) == E_EXISTS
    assert err(s.prepare(OpCode.CREATE, create("/p/b", acl=[]))) == E_INVALID_ACL
    b = s.prepare(OpCode.CREATE, create("/p/s", flags=2))
    assert isinstance(b, CreateTxn) and b.path == "/p/s0000000001"


def test_sequential_trailing_slash_is_allowed() -> None:
    s = P()
    s.run(OpCode.CREATE, create("/p"))
    b = s.prepare(OpCode.CREATE, create("/p/", flags=2))
    assert isinstance(b, CreateTxn) and b.path == "/p/0000000000"


def test_sequential_counter_exhausted_is_refused(p: P) -> None:
    p.tree.nodes["/p"].c = 2**31 - 1
    assert err(p.prepare(OpCode.CREATE, create("/p/s-", flags=2))) == E_BADARGS


def test_delete_then_create_in_flight(p: P) -> None:
    assert isinstance(p.prepare(OpCode.DELETE, DeleteRequest("/m/x")), DeleteTxn)
    assert err(p.prepare(OpCode.SET_DATA, SetDataRequest("/m/x", b"", -1))) == E_NONODE
    assert isinstance(p.prepare(OpCode.CREATE, create("/m/x")), CreateTxn)
    assert err(p.prepare(OpCode.CREATE, create("/m/x"))) == E_EXISTS


# ------------------------------------------------------------------ delete precedence


@pytest.mark.parametrize("path, version, code", [
    ("/", -1, E_BADARGS),
    ("/zookeeper", -1, E_BADARGS),
    ("/zookeeper/quota", -1, E_BADARGS),
    ("/zookeeper/config", -1, E_BADARGS),
    ("noslash", -1, E_BADARGS),
    ("/p\0", -1, E_BADARGS),
    ("/nope/x", -1, E_NONODE),          # parent missing
    ("/ro/missing", -1, E_NOAUTH),      # NoAuth on the parent even if the node is missing
    ("/ro/x", 5, E_NOAUTH),
    ("/p/missing", -1, E_NONODE),
    ("/p/.", -1, E_NONODE),             # no full path validation on delete
    ("/full", 5, E_BADVERSION),         # BadVersion before NotEmpty
    ("/full", -1, E_NOTEMPTY),
    ("/full", 0, E_NOTEMPTY),
])
def test_delete_error_precedence(p: P, path: str, version: int, code: int) -> None:
    assert err(p.prepare(OpCode.DELETE, DeleteRequest(path, version))) == code


def test_delete_accepts(p: P) -> None:
    assert p.prepare(OpCode.DELETE, DeleteRequest("/p", 0)) == DeleteTxn("/p")
    assert p.prepare(OpCode.DELETE, DeleteRequest("/m/x", -1)) == DeleteTxn("/m/x")
    # /m/x is gone in flight: /m is now empty.
    assert p.prepare(OpCode.DELETE, DeleteRequest("/m", -1)) == DeleteTxn("/m")


def test_delete_container_checks(p: P) -> None:
    assert err(p.prepare(OpCode.DELETE_CONTAINER, DeleteRequest("/p"))) == E_BADVERSION
    assert err(p.prepare(OpCode.DELETE_CONTAINER, DeleteRequest("/nope"))) == E_NONODE
    p.fixture("/c/k")
    assert err(p.prepare(OpCode.DELETE_CONTAINER, DeleteRequest("/c"))) == E_NOTEMPTY
    assert p.prepare(OpCode.DELETE_CONTAINER, DeleteRequest("/t")) == DeleteTxn("/t")


# ------------------------------------------------------------ setData / setACL / check


@pytest.mark.parametrize("path, version, ids, code", [
    ("/p/.", -1, (), E_BADARGS),        # validation before existence
    ("noslash", -1, (), E_BADARGS),
    ("/p/", -1, (), E_BADARGS),
    ("/missing", -1, (), E_NONODE),
    ("/sec", 99, (), E_NOAUTH),          # NoAuth wins over BadVersion
    ("/zookeeper/config", -1, (), E_NOAUTH),
    ("/p", 3, (), E_BADVERSION),
    ("/sec", 99, (ALICE,), E_BADVERSION),
])
def test_set_data_error_precedence(p: P, path: str, version: int, ids: tuple[Id, ...],
                                   code: int) -> None:
    assert err(p.prepare(OpCode.SET_DATA, SetDataRequest(path, b"v", version), ids)) == code


def test_set_data_versions_in_flight(p: P) -> None:
    assert p.prepare(OpCode.SET_DATA, SetDataRequest("/p", b"1", 0)) == \
        SetDataTxn("/p", b"1", 1)
    assert err(p.prepare(OpCode.SET_DATA, SetDataRequest("/p", b"2", 0))) == E_BADVERSION
    assert p.prepare(OpCode.SET_DATA, SetDataRequest("/p", b"2", 1)) == \
        SetDataTxn("/p", b"2", 2)
    assert p.prepare(OpCode.SET_DATA, SetDataRequest("/p", None, -1)) == \
        SetDataTxn("/p", None, 3)


def test_set_data_version_wraps(p: P) -> None:
    p.tree.nodes["/p"].version = 2**31 - 1
    assert p.prepare(OpCode.SET_DATA, SetDataRequest("/p", b"", 2**31 - 1)) == \
        SetDataTxn("/p", b"", -(2**31))


@pytest.mark.parametrize("path, acl, version, ids, code", [
    ("/p/.", [], -1, (), E_BADARGS),
    ("/missing", [], -1, (), E_INVALID_ACL),    # InvalidACL before existence
    ("/missing", None, -1, (), E_INVALID_ACL),
    ("/missing", OPEN, -1, (), E_NONODE),
    ("/sec", OPEN, 42, (), E_NOAUTH),           # needs ADMIN; NoAuth before BadVersion
    ("/ro", OPEN, -1, (), E_NOAUTH),
    ("/p", OPEN, 1, (), E_BADVERSION),
    ("/sec", OPEN, 1, (ALICE,), E_BADVERSION),
])
def test_set_acl_error_precedence(p: P, path: str, acl: list[ACL] | None, version: int,
                                  ids: tuple[Id, ...], code: int) -> None:
    assert err(p.prepare(OpCode.SET_ACL, SetACLRequest(path, acl, version), ids)) == code


def test_set_acl_version_is_the_aversion(p: P) -> None:
    p.run(OpCode.SET_DATA, SetDataRequest("/p", b"", -1))  # version 1, aversion 0
    assert err(p.prepare(OpCode.SET_ACL, SetACLRequest("/p", OPEN, 1))) == E_BADVERSION
    acl = [ACL(1, "world", "anyone"), ACL(1, "world", "anyone")]
    assert p.prepare(OpCode.SET_ACL, SetACLRequest("/p", acl, 0)) == \
        SetACLTxn("/p", (ACL(1, "world", "anyone"),), 1)
    # In flight: the next setACL sees aversion 1 and the new (READ-only) ACL.
    assert err(p.prepare(OpCode.SET_ACL, SetACLRequest("/p", OPEN, 1))) == E_NOAUTH


def _multi_errs(body: TxnBody) -> list[int] | None:
    assert isinstance(body, MultiTxn)
    if all(isinstance(b, ErrorTxn) for _, b in body.ops) and body.ops:
        assert all(op == OpCode.ERROR for op, _ in body.ops)
        return [b.err for _, b in body.ops]  # type: ignore[union-attr]
    return None


@pytest.mark.parametrize("path, version, ids, code", [
    ("/p/.", -1, (), E_BADARGS),
    ("/missing", -1, (), E_NONODE),
    ("/sec", 7, (), E_NOAUTH),   # needs READ
    ("/p", 3, (), E_BADVERSION),
])
def test_check_error_precedence(p: P, path: str, version: int, ids: tuple[Id, ...],
                                code: int) -> None:
    body = p.prepare(OpCode.MULTI, MultiRequest([(OpCode.CHECK,
                                                  CheckVersionRequest(path, version))]), ids)
    assert _multi_errs(body) == [code]


def test_check_accepts(p: P) -> None:
    body = p.prepare(OpCode.MULTI, MultiRequest([
        (OpCode.CHECK, CheckVersionRequest("/p", 0)),
        (OpCode.CHECK, CheckVersionRequest("/p", -1)),
        (OpCode.CHECK, CheckVersionRequest("/sec", 0)),
    ]), [ALICE])
    assert body == MultiTxn(((OpCode.CHECK, CheckTxn("/p")), (OpCode.CHECK, CheckTxn("/p")),
                             (OpCode.CHECK, CheckTxn("/sec"))))
    assert p.prep.outstanding.changes == {}


def test_reconfig_disabled(p: P) -> None:
    assert err(p.prepare(OpCode.RECONFIG, ReconfigRequest(None, None, "", -1))) == \
        ReconfigDisabled.code


# ------------------------------------------------------------------------------ multi


def test_failed_multi_layout_and_no_in_flight_changes(p: P) -> None:
    # kazoo_multi_failure: create, setData, check (bad version), delete, create
    # → [0, 0, -103, -2, -2]
    changes_before = dict(p.prep.outstanding.changes)
    c_before = p.tree.nodes["/m"].c
    req = MultiRequest([
        (OpCode.CREATE, create("/m/a")),
        (OpCode.SET_DATA, SetDataRequest("/m", b"M", -1)),
        (OpCode.CHECK, CheckVersionRequest("/m/x", 42)),
        (OpCode.DELETE, DeleteRequest("/m/x", -1)),
        (OpCode.CREATE, create("/m/b")),
    ])
    body = p.prepare(OpCode.MULTI, req)
    assert _multi_errs(body) == [0, 0, E_BADVERSION, RuntimeInconsistency.code,
                                 RuntimeInconsistency.code]
    assert p.prep.outstanding.changes == changes_before
    assert list(p.prep._by_zxid) == []
    # Nothing of the failed multi is visible to later requests.
    assert p.prepare(OpCode.SET_DATA, SetDataRequest("/m", b"", 0)) == SetDataTxn("/m", b"", 1)
    b = p.prepare(OpCode.CREATE, create("/m/a"))
    assert isinstance(b, CreateTxn) and b.parent_c == c_before + 1
    assert isinstance(p.prepare(OpCode.DELETE, DeleteRequest("/m/x", 0)), DeleteTxn)


def test_failed_multi_first_op(p: P) -> None:
    body = p.prepare(OpCode.MULTI, MultiRequest([
        (OpCode.DELETE, DeleteRequest("/nope/x", -1)),
        (OpCode.CREATE, create("/m/a")),
        (OpCode.CHECK, CheckVersionRequest("/m", 0)),
    ]))
    assert _multi_errs(body) == [E_NONODE, -2, -2]


def test_failed_multi_last_op(p: P) -> None:
    body = p.prepare(OpCode.MULTI, MultiRequest([
        (OpCode.CREATE, create("/m/a")),
        (OpCode.CREATE, create("/m/a")),
    ]))
    assert _multi_errs(body) == [0, E_EXISTS]


def test_multi_sub_ops_see_earlier_sub_ops(p: P) -> None:
    req = MultiRequest([
        (OpCode.CREATE, create("/m/n")),
        (OpCode.CREATE2, create("/m/n/k")),
        (OpCode.CREATE, create("/m/n/s-", flags=2)),
        (OpCode.CREATE, create("/m/n/s-", flags=2)),
        (OpCode.SET_DATA, SetDataRequest("/m/n", b"v", 0)),
        (OpCode.CHECK, CheckVersionRequest("/m/n", 1)),
        (OpCode.DELETE, DeleteRequest("/m/n/k", 0)),
    ])
    body = p.prepare(OpCode.MULTI, req)
    assert isinstance(body, MultiTxn)
    ops = [op for op, _ in body.ops]
    assert ops == [1, 15, 1, 1, 5, 13, 2]
    paths = [b.path for _, b in body.ops if isinstance(b, CreateTxn)]
    # /m/n's counter: k → 1, the sequentials get suffixes 1 and 2.
    assert paths == ["/m/n", "/m/n/k", "/m/n/s-0000000001", "/m/n/s-0000000002"]
    assert body.ops[4][1] == SetDataTxn("/m/n", b"v", 1)
    # The successful multi is in flight: /m/n is not empty and exists.
    assert err(p.prepare(OpCode.DELETE, DeleteRequest("/m/n", -1))) == E_NOTEMPTY
    p.apply(body, zxid=p.zxid - 1)
    assert p.tree.nodes["/m/n"].children == {"s-0000000001", "s-0000000002"}


def test_empty_multi(p: P) -> None:
    assert p.prepare(OpCode.MULTI, MultiRequest([])) == MultiTxn(())


# ------------------------------------------------------------------- applied / overlay


def test_applied_forgets_overlay_entries_up_to_zxid() -> None:
    s = P()
    b1 = s.prepare(OpCode.CREATE, create("/a"))   # zxid 1
    b2 = s.prepare(OpCode.CREATE, create("/b"))   # zxid 2
    ch = s.prep.outstanding.changes
    assert set(ch) == {"/", "/a", "/b"}
    s.tree.apply(Txn(1, SID, 0, 0, OpCode.CREATE, b1))
    s.prep.applied(1)
    # "/" was last touched by zxid 2: kept; "/a" forgotten (the tree has it now).
    assert set(ch) == {"/", "/b"}
    assert ch["/"].zxid == 2
    s.tree.apply(Txn(2, SID, 0, 0, OpCode.CREATE, b2))
    s.prep.applied(2)
    assert ch == {}
    # With the overlay empty, prep reads the tree: counter 2 → suffix 2.
    b3 = s.prepare(OpCode.CREATE, create("/s", flags=2))
    assert isinstance(b3, CreateTxn) and b3.path == "/s0000000002"


def test_error_txn_leaves_no_in_flight_change(p: P) -> None:
    assert err(p.prepare(OpCode.CREATE, create("/nope/x"))) == E_NONODE
    assert p.prep.outstanding.changes == {}
    assert list(p.prep._by_zxid) == []


# ----------------------------------------------------------------------- close session


def test_close_session_counts_pending_ephemerals_as_deleted() -> None:
    s = P()
    s.run(OpCode.CREATE, create("/q"))
    s.run(OpCode.CREATE, create("/q/applied", flags=1))            # in the tree
    eph = s.prepare(OpCode.CREATE, create("/q/inflight", flags=1))  # not applied yet
    other = s.prepare(OpCode.CREATE, create("/q/other", flags=1), sid=OTHER)
    assert isinstance(eph, CreateTxn) and isinstance(other, CreateTxn)
    s.zxid += 1
    assert s.prep.close_session(SID, s.zxid) == CloseSessionTxn()
    # Both of SID's ephemerals now count as deleted: they can be created again...
    assert isinstance(s.prepare(OpCode.CREATE, create("/q/applied"), sid=OTHER), CreateTxn)
    assert isinstance(s.prepare(OpCode.CREATE, create("/q/inflight"), sid=OTHER), CreateTxn)
    # ... while another session's ephemeral is untouched.
    assert err(s.prepare(OpCode.CREATE, create("/q/other"), sid=OTHER)) == E_EXISTS


def test_close_session_frees_the_parent_for_delete() -> None:
    s = P()
    s.run(OpCode.CREATE, create("/q"))
    s.run(OpCode.CREATE, create("/q/e1", flags=1))
    assert isinstance(s.prepare(OpCode.CREATE, create("/q/e2", flags=3)), CreateTxn)
    assert err(s.prepare(OpCode.DELETE, DeleteRequest("/q"), sid=OTHER)) == E_NOTEMPTY
    s.zxid += 1
    s.prep.close_session(SID, s.zxid)
    assert s.prepare(OpCode.DELETE, DeleteRequest("/q"), sid=OTHER) == DeleteTxn("/q")


def test_close_session_then_apply_everything() -> None:
    s = P()
    s.run(OpCode.CREATE, create("/q"))
    z_create = s.zxid + 1
    eph = s.prepare(OpCode.CREATE, create("/q/e", flags=1))
    s.zxid += 1
    z_close = s.zxid
    close = s.prep.close_session(SID, z_close)
    s.apply(eph, zxid=z_create)
    assert "/q/e" in s.tree.nodes
    s.tree.apply(Txn(z_close, SID, 0, 0, OpCode.CLOSE_SESSION, close))
    s.prep.applied(z_close)
    assert "/q/e" not in s.tree.nodes
    assert s.prep.outstanding.changes == {}
    assert s.tree.nodes["/q"].stat().numChildren == 0
