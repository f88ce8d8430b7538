"""kazoo against a real server: multi (14) transactions, multiRead (22), lone check (13).

Reference: client-protocol.md §5.4-5.7 (layouts, failed-multi error entries, one zxid per
multi, sub-ops see earlier sub-ops), §13 items 3-4.
"""

from __future__ import annotations

import pytest
from kazoo.exceptions import (
    BadVersionError,
    MarshallingError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    RolledBackError,
    RuntimeInconsistency,
    UnimplementedError,
)
from kazoo.protocol.serialization import CheckVersion, Create, Create2, Delete, GetData, SetData
from kazoo.security import OPEN_ACL_UNSAFE, make_acl

from tests.integration import kazoo_helpers as kh
from tests.integration.kazoo_helpers import EV_CHANGED, EV_CHILD, EV_CREATED


def kinds(results):
    return [type(r).__name__ for r in results]


def test_multi_success(zk, zk2):
    zk.create("/m", b"")
    zk.create("/m/del", b"")
    w = kh.Watcher()
    mark = kh.wire(zk2).mark()
    zk2.exists("/m/a", watch=w)
    zk2.get("/m", watch=w)
    zk2.get_children("/m", watch=w)

    t = zk.transaction()
    t.create("/m/a", b"A")
    t.set_data("/m", b"M")
    t.check("/m/a", 0)
    t.delete("/m/del")
    t.create("/m/s-", b"", sequence=True)
    results = t.commit()
    zxid = zk.last_zxid

    assert results[0] == "/m/a"
    assert results[2:] == [True, True, "/m/s-0000000002"]  # sees the earlier sub-ops
    st_m = results[1]
    assert st_m.version == 1
    assert st_m.mzxid == zxid
    assert st_m.dataLength == 1
    # the setData Stat already reflects the create before it, but not the later ops
    assert st_m.numChildren == 2 and st_m.cversion == 2

    # one transaction, one zxid, one timestamp
    a = zk.exists("/m/a")
    s = zk.exists("/m/s-0000000002")
    m = zk.exists("/m")
    assert a.czxid == s.czxid == m.mzxid == m.pzxid == zxid
    assert a.ctime == s.ctime == m.mtime
    assert (m.cversion, m.numChildren, m.version) == (4, 2, 1)
    assert zk.exists("/m/del") is None
    assert zk.get("/m/a")[0] == b"A"

    # watches fire sub-op by sub-op
    evs = kh.wire(zk2).wait_events(mark, 3)
    assert evs == [(EV_CREATED, "/m/a"), (EV_CHILD, "/m"), (EV_CHANGED, "/m")]
    w.wait(3)


def test_multi_failure_layout_and_rollback(zk, zk2):
    zk.create("/mf", b"")
    zk.create("/mf/x", b"")
    before = zk.exists("/mf")
    mark = kh.wire(zk2).mark()
    zk2.get("/mf", watch=kh.Watcher())
    zk2.get_children("/mf", watch=kh.Watcher())
    zk2.exists("/mf/a", watch=kh.Watcher())
    zk2.exists("/mf/x", watch=kh.Watcher())

    zmark = kh.wire(zk).mark()
    t = zk.transaction()
    t.create("/mf/a", b"A")
    t.set_data("/mf", b"M")
    t.check("/mf/x", 42)
    t.delete("/mf/x")
    t.create("/mf/b", b"B")
    results = t.commit()
    assert kinds(results) == ["RolledBackError", "RolledBackError", "BadVersionError",
                              "RuntimeInconsistency", "RuntimeInconsistency"]
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[2], BadVersionError)
    assert isinstance(results[4], RuntimeInconsistency)
    # the reply header of a failed multi has err 0 (the errors are in the body)
    (reply,) = [f for f in kh.wire(zk).frames[zmark:] if f.xid > 0]
    assert reply.err == 0

    # nothing was applied
    assert zk.exists("/mf/a") is None
    assert zk.exists("/mf/b") is None
    assert zk.exists("/mf/x") is not None
    after = zk.exists("/mf")
    assert (after.version, after.cversion, after.numChildren, after.pzxid, after.mzxid) == (
        before.version, before.cversion, before.numChildren, before.pzxid, before.mzxid)
    assert zk.get("/mf")[0] == b""
    # and no watch fired
    zk2.sync("/")
    assert kh.wire(zk2).events_since(mark) == []


def test_multi_failure_on_first_op(zk):
    t = zk.transaction()
    t.create("/no/such/parent", b"")
    t.create("/mf2", b"")
    t.delete("/mf2")
    assert kinds(t.commit()) == ["NoNodeError", "RuntimeInconsistency", "RuntimeInconsistency"]
    assert zk.exists("/mf2") is None


def test_multi_failure_on_last_op(zk):
    zk.create("/last", b"")
    t = zk.transaction()
    t.create("/last/a", b"")
    t.create("/last/b", b"")
    t.set_data("/last", b"x")
    t.create("/last/a", b"")
    assert kinds(t.commit()) == ["RolledBackError"] * 3 + ["NodeExistsError"]
    assert zk.get_children("/last") == []
    assert zk.exists("/last").version == 0


def test_sub_ops_see_earlier_sub_ops(zk):
    t = zk.transaction()
    t.create("/chain", b"")
    t.create("/chain/b", b"1")
    t.check("/chain/b", 0)
    t.set_data("/chain/b", b"2")
    t.check("/chain/b", 1)
    t.delete("/chain/b", version=1)
    t.create("/chain/b", b"3")  # re-created within the same multi
    t.delete("/chain/b")
    t.delete("/chain")
    results = t.commit()
    assert results[0:3] == ["/chain", "/chain/b", True]
    assert results[3].version == 1
    assert results[4:] == [True, True, "/chain/b", True, True]
    assert zk.exists("/chain") is None


def test_error_precedence_inside_multi(zk):
    zk.create("/pe/full/kid", b"", makepath=True)
    zk.create("/pe/eph", b"", ephemeral=True)
    zk.create("/pe/noread", b"", acl=[make_acl("world", "anyone", write=True)])
    zk.create("/pe/nocreate", b"", acl=[make_acl("world", "anyone", read=True)])

    def second_op_outcome(add):
        t = zk.transaction()
        t.create("/pe/ok", b"")
        add(t)
        return kinds(t.commit())

    cases = {
        "delete non-empty with bad version": (
            lambda t: t.delete("/pe/full", version=3), "BadVersionError"),
        "delete non-empty": (lambda t: t.delete("/pe/full"), "NotEmptyError"),
        "delete missing": (lambda t: t.delete("/pe/missing"), "NoNodeError"),
        "create existing": (lambda t: t.create("/pe/full", b""), "NodeExistsError"),
        "create under ephemeral": (
            lambda t: t.create("/pe/eph/x", b""), "NoChildrenForEphemeralsError"),
        "create without CREATE": (lambda t: t.create("/pe/nocreate/x", b""), "NoAuthError"),
        "set bad version": (lambda t: t.set_data("/pe/full", b"", version=5), "BadVersionError"),
        "set missing": (lambda t: t.set_data("/pe/missing", b""), "NoNodeError"),
        "check missing": (lambda t: t.check("/pe/missing", 0), "NoNodeError"),
        "check without READ": (lambda t: t.check("/pe/noread", 0), "NoAuthError"),
        "check bad version": (lambda t: t.check("/pe/full", 1), "BadVersionError"),
        "invalid ACL": (lambda t: t.create(
            "/pe/x", b"", acl=[make_acl("world", "x", read=True)]), "InvalidACLError"),
    }
    got = {name: second_op_outcome(add) for name, (add, _) in cases.items()}
    assert got == {name: ["RolledBackError", err] for name, (_, err) in cases.items()}
    assert zk.exists("/pe/ok") is None
    # the check op does not change the version
    t = zk.transaction()
    t.check("/pe/full", 0)
    assert t.commit() == [True]
    assert zk.exists("/pe/full").version == 0


def test_failed_multi_does_not_advance_sequence_counter(zk):
    zk.create("/sq", b"")
    t = zk.transaction()
    t.create("/sq/s-", b"", sequence=True)
    t.create("/sq/x", b"")
    t.check("/sq/missing", 0)
    assert kinds(t.commit()) == ["RolledBackError", "RolledBackError", "NoNodeError"]
    assert zk.create("/sq/s-", b"", sequence=True) == "/sq/s-0000000000"
    assert zk.exists("/sq").cversion == 1


def test_multi_ephemeral_and_sequential_creates(zk):
    zk.create("/me", b"")
    t = zk.transaction()
    t.create("/me/e", b"", ephemeral=True)
    t.create("/me/q-", b"", sequence=True)
    t.create("/me/q-", b"", ephemeral=True, sequence=True)
    assert t.commit() == ["/me/e", "/me/q-0000000001", "/me/q-0000000002"]
    sid = zk.client_id[0]
    assert zk.exists("/me/e").ephemeralOwner == sid
    assert zk.exists("/me/q-0000000001").ephemeralOwner == 0
    assert zk.exists("/me/q-0000000002").ephemeralOwner == sid
    t = zk.transaction()
    t.create("/me/e/child", b"")
    assert kinds(t.commit()) == ["NoChildrenForEphemeralsError"]


def test_empty_multi(zk):
    assert zk.transaction().commit() == []
    assert kh.call(zk, kh.Multi([])) == []


def test_create_result_type_echoes_request_type(zk):
    """type-1 creates must get type-1 results (kazoo's parser knows nothing else)."""
    zk.create("/ty", b"")
    res = kh.call(zk, kh.Multi([Create("/ty/a", b"", OPEN_ACL_UNSAFE, 0),
                                SetData("/ty", b"x", -1),
                                Delete("/ty/a", -1),
                                CheckVersion("/ty", 1)]))
    assert [(r.type, r.err) for r in res] == [(1, 0), (5, 0), (2, 0), (13, 0)]
    assert res[0].value == "/ty/a"
    assert res[1].value.version == 1


def test_create2_inside_multi(zk):
    res = kh.call(zk, kh.Multi([Create2("/c2", b"abc", OPEN_ACL_UNSAFE, 0)]))
    assert len(res) == 1
    assert zk.get("/c2")[0] == b"abc"
    if kh.IS_ZOOKEEPER:
        return  # 3.8 downgrades the result to type 1 (ZOOKEEPER-4026)
    assert res[0].type == 15
    path, st = res[0].value
    assert path == "/c2"
    assert st == zk.exists("/c2")
    assert st.dataLength == 3


def test_failed_multi_raw_layout(zk):
    """Each failed entry is MultiHeader{-1, false, E} + ErrorResponse{E}."""
    res = kh.call(zk, kh.Multi([Create("/rl", b"", OPEN_ACL_UNSAFE, 0),
                                CheckVersion("/rl", 3),
                                Delete("/rl", -1)]))
    assert [(r.type, r.err, r.value) for r in res] == [(-1, 0, 0), (-1, -103, -103),
                                                      (-1, -2, -2)]


def test_multi_read(zk):
    zk.create("/mr", b"root")
    zk.create("/mr/a", b"A")
    zk.create("/mr/b", b"")
    zk.create("/mr/secret", b"s", acl=[make_acl("world", "anyone", write=True)])
    res = kh.call(zk, kh.MultiRead([GetData("/mr/a", False), kh.read_op_get_children("/mr"),
                                    GetData("/mr/missing", False), GetData("/mr/secret", False),
                                    GetData("/mr", False)]))
    assert [(r.type, r.err) for r in res] == [(4, 0), (8, 0), (-1, -101), (-1, -102), (4, 0)]
    assert res[0].value[0] == b"A"
    assert res[0].value[1] == zk.exists("/mr/a")
    assert sorted(res[1].value) == ["a", "b", "secret"]
    assert res[4].value[0] == b"root"


def test_mixed_read_write_multi_is_rejected(zk):
    with pytest.raises(MarshallingError):
        kh.call(zk, kh.Multi([Create("/mix", b"", OPEN_ACL_UNSAFE, 0),
                              GetData("/", False)]))
    assert zk.exists("/mix") is None


@kh.only_zkernel
def test_check_outside_multi_is_unimplemented(zk):
    """(3.8.0 hits a NullPointerException serializing the reply and never answers.)"""
    sid = zk.client_id[0]
    zk.create("/chk", b"")
    with pytest.raises(UnimplementedError):
        kh.call(zk, CheckVersion("/chk", 0))
    # the server also closes the connection; kazoo resumes the session
    kh.wait_until(lambda: len(kh.wire(zk).connects) >= 2 and zk.connected, msg="reconnect")
    assert zk.client_id[0] == sid
    assert zk.exists("/chk") is not None


def test_kazoo_error_classes_for_failed_transactions(zk):
    zk.create("/k", b"")
    zk.create("/k/e", b"", ephemeral=True)
    t = zk.transaction()
    t.create("/k/e/x", b"")
    (res,) = t.commit()
    assert isinstance(res, NoChildrenForEphemeralsError)
    t = zk.transaction()
    t.create("/k", b"")
    assert isinstance(t.commit()[0], NodeExistsError)
    t = zk.transaction()
    t.delete("/k/none")
    assert isinstance(t.commit()[0], NoNodeError)
    zk.create("/k/ro", b"", acl=[make_acl("world", "anyone", read=True)])
    t = zk.transaction()
    t.set_data("/k/ro", b"x")
    assert isinstance(t.commit()[0], NoAuthError)
