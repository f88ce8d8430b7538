"""The stock Java client (org.apache.zookeeper.ZooKeeper 3.8, Debian) against the server.

Each test starts one server (``server`` / ``server_factory``) and runs one JVM with the script
driver ``tests/clients/java/ZkScript.java`` (see ``client_drivers`` for the script language).
``ZK_TEST_TARGET=zookeeper`` runs the same assertions against Apache ZooKeeper 3.8; where
zkernel follows ZooKeeper 3.9 instead, the expectation branches on ``TARGET_IS_ZOOKEEPER``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration import client_drivers as cd
from tests.integration.client_drivers import (
    BAD_ARGUMENTS,
    BAD_VERSION,
    INVALID_ACL,
    NO_AUTH,
    NO_CHILDREN_FOR_EPHEMERALS,
    NO_NODE,
    NO_WATCHER,
    NODE_EXISTS,
    NOT_EMPTY,
    RUNTIME_INCONSISTENCY,
    TARGET_IS_ZOOKEEPER,
    UNIMPLEMENTED,
    Driver,
    TcpProxy,
    digest,
)
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.java

ZERO_STAT_FIELDS = ("czxid", "mzxid", "ctime", "mtime", "version", "aversion",
                    "ephemeralOwner", "dataLength", "pzxid")


@pytest.fixture(scope="session")
def java(tmp_path_factory: pytest.TempPathFactory) -> Driver:
    """ZkScript.java compiled once per test session."""
    return cd.build_java_driver(tmp_path_factory)


def test_create_modes_stats_and_sequence_numbers(java: Driver, server: ServerProcess) -> None:
    t = java.run(server.connect_string, [
        "connect a",
        "sess: session",
        "root0: exists /",
        "zk0: exists /zookeeper",
        "cnt0: count /",
        "p: create2 /p pdata P",
        "e: create2 /p/e ~ E",
        "ps: create2 /p/ps- \"\" PS",
        "es: create2 /p/es- x ES",
        "c: create2 /p/c cdata C",
        "t: create2 /p/t tdata TTL ttl=60000",
        "ts: create2 /p/ts- tsdata STTL ttl=60000",
        "plain: create /p/plain x P",
        "ls_before: ls2 /p",
        "del: delete /p/plain",
        "p_after: exists /p",
        "q: create /p/q- ~ PS",
        "ls_after: ls /p",
        "get_null: get /p/e",
        "get_empty: get /p/ps-0000000001",
        "cnt_root: count /",
        "cnt_p: count /p",
        "cnt_leaf: count /p/e",
        "root1: exists /",
    ])
    t.all_ok()
    sid = t.ok("sess")["session_id"]
    assert sid != 0

    # Fresh tree: / and /zookeeper were never "created", hence negative cversions (§7.3).
    root0 = t.ok("root0")["stat"]
    assert all(root0[f] == 0 for f in ZERO_STAT_FIELDS)
    assert (root0["cversion"], root0["numChildren"]) == (-1, 1)
    zk0 = t.ok("zk0")["stat"]
    assert (zk0["cversion"], zk0["numChildren"]) == (-2, 2)
    assert t.ok("cnt0")["count"] == 3

    p = t.ok("p")
    assert p["path"] == "/p"
    st = p["stat"]
    assert st["czxid"] > 0 and st["czxid"] == st["mzxid"] == st["pzxid"]
    assert st["ctime"] > 0 and st["ctime"] == st["mtime"]
    assert (st["version"], st["cversion"], st["aversion"]) == (0, 0, 0)
    assert (st["ephemeralOwner"], st["dataLength"], st["numChildren"]) == (0, 5, 0)

    expected = [  # label, path, ephemeralOwner, dataLength
        ("e", "/p/e", sid, 0),
        ("ps", "/p/ps-0000000001", 0, 0),
        ("es", "/p/es-0000000002", sid, 1),
        ("c", "/p/c", 0, 5),
        ("t", "/p/t", 0, 5),
        ("ts", "/p/ts-0000000005", 0, 6),
    ]
    zxid = st["czxid"]
    for label, path, owner, length in expected:
        r = t.ok(label)
        zxid += 1
        assert r["path"] == path, label
        s = r["stat"]
        assert s["czxid"] == s["mzxid"] == s["pzxid"] == zxid, (label, s)
        assert s["ephemeralOwner"] == owner, (label, s)
        assert s["dataLength"] == length, (label, s)
        assert (s["version"], s["cversion"], s["aversion"], s["numChildren"]) == (0, 0, 0, 0)

    plain = t.ok("plain")
    assert plain["path"] == "/p/plain" and "stat" not in plain  # opcode 1: path only

    before = t.ok("ls_before")
    assert before["children"] == ["c", "e", "es-0000000002", "plain", "ps-0000000001", "t",
                                  "ts-0000000005"]
    bst = before["stat"]
    assert (bst["cversion"], bst["numChildren"], bst["version"]) == (7, 7, 0)
    assert bst["mzxid"] == st["czxid"]  # children do not touch the parent's mzxid
    assert bst["pzxid"] == zxid + 1  # the /p/plain create

    after = t.ok("p_after")["stat"]
    assert (after["cversion"], after["numChildren"]) == (8, 6)
    assert after["pzxid"] == zxid + 2  # the delete
    # Suffix = number of creates ever made under /p (7), not cversion (8) nor numChildren (6).
    assert t.ok("q")["path"] == "/p/q-0000000007"
    assert t.ok("ls_after")["children"] == ["c", "e", "es-0000000002", "ps-0000000001",
                                            "q-0000000007", "t", "ts-0000000005"]

    # Null data stays null, empty stays empty.
    assert t.ok("get_null")["data"] is None
    assert t.ok("get_null")["stat"]["dataLength"] == 0
    assert t.ok("get_empty")["data"] == ""

    assert t.ok("cnt_root")["count"] == 3 + 1 + 7
    assert t.ok("cnt_p")["count"] == 7
    assert t.ok("cnt_leaf")["count"] == 0
    root1 = t.ok("root1")["stat"]
    assert (root1["cversion"], root1["numChildren"]) == (0, 2)


def test_error_codes(java: Driver, server: ServerProcess) -> None:
    t = java.run(server.connect_string, [
        "connect a",
        "create /e x P",
        "create /e/eph x E",
        "create /e/full x P",
        "create /e/full/kid x P",
        "get_missing: get /missing",
        "exists_missing: exists /missing",
        "ls_missing: ls /missing",
        "set_missing: set /missing x",
        "delete_missing: delete /e/missing",
        "create_no_parent: create /missing/child x P",
        "create_dup: create /e x P",
        "create_root: create / x P",
        "not_empty: delete /e/full",
        "badver_nonempty: delete /e/full 5",
        "badver_set: set /e/full x 3",
        "badver_delete: delete /e/full/kid 1",
        "eph_parent: create /e/eph/child x P",
        "eph_parent_seq: create /e/eph/s- x PS",
        "acl_world: create /e/bad x P acl=world:nobody:r",
        "acl_auth: create /e/bad x P acl=creator",
        "acl_digest: create /e/bad x P acl=digest:alice:r",
        "acl_unknown_scheme: create /e/bad x P acl=nosuch:x:r",
        "setacl_missing: setacl /missing world:nobody:r",
        "delete_zookeeper: delete /zookeeper",
        "delete_quota: delete /zookeeper/quota",
        "delete_root: delete /",
        "set_ok: set /e/full y 0",
        "left: ls /e",
    ])
    assert t.err("get_missing") == NO_NODE
    assert t.err("exists_missing") == NO_NODE
    assert t.err("ls_missing") == NO_NODE
    assert t.err("set_missing") == NO_NODE
    assert t.err("delete_missing") == NO_NODE
    assert t.err("create_no_parent") == NO_NODE
    assert t.err("create_dup") == NODE_EXISTS
    assert t.err("create_root") == NODE_EXISTS
    assert t.err("not_empty") == NOT_EMPTY
    assert t.err("badver_nonempty") == BAD_VERSION  # version is checked before emptiness
    assert t.err("badver_set") == BAD_VERSION
    assert t.err("badver_delete") == BAD_VERSION
    assert t.err("eph_parent") == NO_CHILDREN_FOR_EPHEMERALS
    assert t.err("eph_parent_seq") == NO_CHILDREN_FOR_EPHEMERALS
    assert t.err("acl_world") == INVALID_ACL
    assert t.err("acl_auth") == INVALID_ACL  # "auth" ACL without any authenticated identity
    assert t.err("acl_digest") == INVALID_ACL
    assert t.err("acl_unknown_scheme") == INVALID_ACL
    assert t.err("setacl_missing") == INVALID_ACL  # the ACL is validated before existence
    assert t.err("delete_zookeeper") == BAD_ARGUMENTS
    assert t.err("delete_quota") == BAD_ARGUMENTS
    assert t.err("delete_root") == BAD_ARGUMENTS
    assert t.ok("set_ok")["stat"]["version"] == 1
    assert t.ok("left")["children"] == ["eph", "full"]


def test_one_shot_watches_and_event_order(java: Driver, server: ServerProcess) -> None:
    t = java.run(server.connect_string, [
        "connect a",
        "x_missing: exists /w watch",
        "mk: create /w one P",
        "g: get /w watch",
        "s1: set /w two",
        "s2: set /w three",
        "l: ls /w watch",
        "k1: create /w/k1 x P",
        "k2: create /w/k2 x P",
        "x2: exists /w watch",
        "l2: ls /w watch",
        "gk1: get /w/k1 watch",
        "dk1: delete /w/k1",
        "s3: set /w four",
        "g_missing: get /w/none watch",
        "mk_none: create /w/none x P",
        # data + child watcher (named) on one node: one NodeDeleted delivered to each watcher
        "xk2: exists /w/k2 watch=wd",
        "lk2: ls /w/k2 watch=wc",
        "dk2: delete /w/k2",
        # the same watcher through exists and getData: a single event
        "xx: exists /w watch",
        "gg: get /w watch",
        "s4: set /w five",
        # cross-session: b changes, a is told
        "connect b",
        "@a ls /w watch",
        "@a get /w/none watch",
        "@b del_none: delete /w/none",
        "@a wait_event a NodeDeleted /w/none",
        "@a wait_event a NodeChildrenChanged /w",
        "@a barrier: sync /",
    ])
    t.all_ok()
    assert t.err("x_missing") == NO_NODE
    assert t.err("g_missing") == NO_NODE
    assert t.event_list("a") == [
        ("NodeCreated", "/w"),
        ("NodeDataChanged", "/w"),
        ("NodeChildrenChanged", "/w"),
        ("NodeDeleted", "/w/k1"),
        ("NodeChildrenChanged", "/w"),
        ("NodeDataChanged", "/w"),
        ("NodeDeleted", "/w/k2"),
        ("NodeDeleted", "/w/k2"),
        ("NodeDataChanged", "/w"),
        ("NodeDeleted", "/w/none"),
        ("NodeChildrenChanged", "/w"),
    ]
    assert t.event_list("b") == []
    # A notification precedes the reply of the write that fired it (same connection).
    for event, path, label in [("NodeCreated", "/w", "mk"), ("NodeDataChanged", "/w", "s1"),
                               ("NodeChildrenChanged", "/w", "k1"),
                               ("NodeDeleted", "/w/k1", "dk1")]:
        assert t.event_index("a", event, path) < t.index(label), (event, path)
    # Delete: NodeDeleted (the node's watchers) before the parent's NodeChildrenChanged.
    recs = t.records
    i_dk1 = t.index("dk1")
    assert [(r["event"], r["path"]) for r in recs[i_dk1 - 2:i_dk1]] == [
        ("NodeDeleted", "/w/k1"), ("NodeChildrenChanged", "/w")]
    # Both named watchers of /w/k2 got exactly one NodeDeleted each.
    deleted_k2 = [e["w"] for e in t.events("a") if e["path"] == "/w/k2"]
    assert sorted(deleted_k2) == ["wc", "wd"]
    # One-shot: the second set, the second child and the getData-on-missing watch fired nothing.
    assert t.events_between("s1", "s2") == []
    assert t.events_between("k1", "k2") == []
    assert t.events_between("g_missing", "mk_none") == []


def test_persistent_and_recursive_watches(java: Driver, server: ServerProcess) -> None:
    t = java.run(server.connect_string, [
        "connect a",
        "connect b",
        "@a aw: addwatch /pw PERSISTENT",
        "@a ar: addwatch /pr PERSISTENT_RECURSIVE",
        "@b create /pw x P",
        "@b set /pw y",
        "@b set /pw z",
        "@b create /pw/c x P",
        "@b create /pw/c/g x P",
        "@b set /pw/c y",
        "@b delete /pw/c/g",
        "@b delete /pw/c",
        "@b delete /pw",
        "@b create /pw again P",
        "@b create /pr x P",
        "@b create /pr/x x P",
        "@b create /pr/x/y x P",
        "@b set /pr/x/y 1",
        "@b set /pr/x/y 2",
        "@b delete /pr/x/y",
        "@b setacl /pr/x world:anyone:cdrwa",
        "@b sync /",
        "@a barrier1: sync /",
        "@a rm_pw: removeallwatches /pw any",
        "@a rm_pr: removeallwatches /pr any",
        "@a rm_again: removeallwatches /pw any",
        "@b set /pw after",
        "@b create /pr/late x P",
        "@b sync /",
        "@a barrier2: sync /",
    ])
    t.all_ok()
    assert t.err("rm_again") == NO_WATCHER
    persistent = [
        ("NodeCreated", "/pw"),
        ("NodeDataChanged", "/pw"),
        ("NodeDataChanged", "/pw"),
        ("NodeChildrenChanged", "/pw"),  # /pw/c created
        ("NodeChildrenChanged", "/pw"),  # /pw/c deleted; nothing for the grandchild
        ("NodeDeleted", "/pw"),
        ("NodeCreated", "/pw"),  # a persistent watch survives the node's deletion
    ]
    recursive = [
        ("NodeCreated", "/pr"),
        ("NodeCreated", "/pr/x"),
        ("NodeCreated", "/pr/x/y"),  # no NodeChildrenChanged for recursive watchers
        ("NodeDataChanged", "/pr/x/y"),
        ("NodeDataChanged", "/pr/x/y"),
        ("NodeDeleted", "/pr/x/y"),
    ]
    removed = [("PersistentWatchRemoved", "/pw"), ("PersistentWatchRemoved", "/pr")]
    assert t.event_list("a") == persistent + recursive + removed
    # Everything up to the barrier arrived before its reply; nothing after removal.
    i1 = t.index("barrier1")
    assert [(r["event"], r["path"]) for r in t.records[:i1] if r.get("event")
            and "cmd" not in r and r["event"] != "None"] == persistent + recursive


def test_remove_watches(java: Driver, server: ServerProcess) -> None:
    t = java.run(server.connect_string, [
        "connect a",
        "connect b",
        "@a create /rw x P",
        "@a g1: get /rw watch=w1",
        "@a l2: ls /rw watch=w2",
        "@a x3: exists /rw watch=w3",
        # removeWatches(path, watcher, Data) -> checkWatches; DataWatchRemoved for w1 only
        "@a rm_w1: removewatches /rw w1 data",
        "@a rm_w1_again: removewatches /rw w1 data",
        # removeAllWatches(path, Children) -> removeWatches opcode; ChildWatchRemoved for w2
        "@a rm_children: removeallwatches /rw children",
        "@a rm_children_again: removeallwatches /rw children",
        "@a rm_none: removeallwatches /nowatch any",
        "@b create /rw/k x P",
        "@b set /rw y",
        "@b sync /",
        "@a barrier: sync /",
        "@a rm_any: removeallwatches /rw any",
    ])
    t.all_ok()
    assert t.err("rm_w1_again") == NO_WATCHER
    assert t.err("rm_children_again") == NO_WATCHER
    assert t.err("rm_none") == NO_WATCHER
    assert t.err("rm_any") == NO_WATCHER  # w3 was consumed by the set
    assert [(e["event"], e["path"], e["w"]) for e in t.events("a")] == [
        ("DataWatchRemoved", "/rw", "w1"),
        ("ChildWatchRemoved", "/rw", "w2"),
        ("NodeDataChanged", "/rw", "w3"),  # only the exists watcher is left
    ]


def test_multi_and_multiread(java: Driver, server: ServerProcess) -> None:
    t = java.run(server.connect_string, [
        "connect a",
        "sess: session",
        "create /m x P",
        "ok: multi create /m/a A P | create /m/s- ~ PS | create /m/e x ES | create /m/c ~ C"
        " | create /m/t ~ TTL ttl=60000 | set /m/a A2 0 | check /m/a 1 | delete /m/a 1",
        "after_ok: ls2 /m",
        "xw: exists /m/x watch",
        "fail_badversion: multi create /m/x ~ P | set /m/c q 5 | delete /m/t",
        "fail_nonode: multi check /m/c 0 | delete /m/missing | create /m/y x P",
        "fail_exists: multi create /m/c x P",
        "x_after: exists /m/x",
        "c_after: get /m/c",
        "t_after: exists /m/t",
        "y_after: exists /m/y",
        "read: multi get /m/c | ls /m | get /m/missing | ls /m/missing",
        "read_ok: multi get /m/t | ls /m/c",
        "barrier: sync /",
    ])
    sid = t.ok("sess")["session_id"]
    r = t.ok("ok")["results"]
    assert [x["type"] for x in r] == [1, 1, 1, 15, 15, 5, 13, 2]
    assert [x.get("path") for x in r[:5]] == ["/m/a", "/m/s-0000000001", "/m/e0000000002",
                                              "/m/c", "/m/t"]
    assert [x["stat"] for x in r[:3]] == [None, None, None]  # type-1 results carry no Stat
    zxid = r[3]["stat"]["czxid"]
    assert r[4]["stat"]["czxid"] == zxid  # one transaction, one zxid for all sub-ops
    assert (r[5]["stat"]["mzxid"], r[5]["stat"]["version"]) == (zxid, 1)
    assert r[3]["stat"]["ephemeralOwner"] == 0 and r[4]["stat"]["ephemeralOwner"] == 0
    after = t.ok("after_ok")
    assert after["children"] == ["c", "e0000000002", "s-0000000001", "t"]
    assert (after["stat"]["cversion"], after["stat"]["numChildren"]) == (6, 4)
    assert after["stat"]["pzxid"] == zxid

    def layout(label: str) -> list[tuple[int, int]]:
        return [(x["type"], x["err"]) for x in t[label]["results"]]

    assert t.err("fail_badversion") == BAD_VERSION
    assert layout("fail_badversion") == [(-1, 0), (-1, BAD_VERSION), (-1, RUNTIME_INCONSISTENCY)]
    assert t.err("fail_nonode") == NO_NODE
    assert layout("fail_nonode") == [(-1, 0), (-1, NO_NODE), (-1, RUNTIME_INCONSISTENCY)]
    assert t.err("fail_exists") == NODE_EXISTS
    assert layout("fail_exists") == [(-1, NODE_EXISTS)]
    # Nothing of a failed multi is applied, and it fires no watch.
    assert t.err("x_after") == NO_NODE
    assert t.err("y_after") == NO_NODE
    c_after = t.ok("c_after")
    assert c_after["data"] is None and c_after["stat"]["version"] == 0
    t.ok("t_after")
    assert t.event_list("a") == []

    # multiRead: independent sub-ops; a failing read yields an error entry in its slot.
    assert t.err("read") == NO_NODE
    rd = t["read"]["results"]
    assert [x["type"] for x in rd] == [4, 8, -1, -1]
    assert rd[0]["data"] is None and rd[0]["stat"]["czxid"] == zxid
    assert rd[1]["children"] == ["c", "e0000000002", "s-0000000001", "t"]
    assert [rd[2]["err"], rd[3]["err"]] == [NO_NODE, NO_NODE]
    rok = t.ok("read_ok")["results"]
    assert [x["type"] for x in rok] == [4, 8]
    assert rok[0]["data"] is None and rok[1]["children"] == []
    assert t.ok("barrier")
    _ = sid


def test_acls_digest_auth_super_and_whoami(
        java: Driver, server_factory: Callable[..., ServerProcess]) -> None:
    alice = digest("alice", "secret")
    assert alice == "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="  # value observed on ZooKeeper 3.8.0
    bob = digest("bob", "pw")
    srv = server_factory(cfg={"superDigest": digest("super", "superpw")})
    t = java.run(srv.connect_string, [
        "connect owner",
        "who0: whoami",
        "addauth digest alice:secret",
        "who1: whoami",
        f"mk_sec: create /sec s P acl=digest:{alice}:cdrwa,world:anyone:r",
        "mk_priv: create /priv p P acl=creator",
        "mk_kid: create /priv/kid k P acl=creator",
        f"mk_locked: create /locked l P acl=digest:{bob}:cdrwa",
        "acl_priv: getacl /priv",
        "o_locked: get /locked",
        "connect anon",
        "a_get_sec: get /sec",
        "a_set_sec: set /sec x",
        "a_acl_sec: getacl /sec",
        "a_get_priv: get /priv",
        "a_ls_priv: ls /priv",
        "a_count_priv: count /priv",
        "a_exists_priv: exists /priv",
        "a_acl_priv: getacl /priv",
        "a_create_under: create /priv/x x P",
        "a_delete_kid: delete /priv/kid",
        "a_setacl: setacl /priv open",
        "a_check: multi check /priv 0",
        "a_read: multi get /priv | get /sec",
        "addauth digest alice:wrong",
        "a_who_wrong: whoami",
        "a_get_wrong: get /priv",
        "addauth digest alice:secret",
        "a_get_ok: get /priv",
        "a_who_two: whoami",
        "use owner",
        "sa_bad: setacl /priv world:anyone:r 3",
        f"sa: setacl /priv digest:{alice}:cdrwa,world:anyone:r 0",
        "acl_after: getacl /priv",
        "connect su",
        "addauth digest super:superpw",
        "su_get: get /locked",
        "su_set: set /locked changed",
        "su_acl: getacl /locked",
    ])
    t.all_ok()
    assert t.ok("who0")["identities"] == [["ip", "127.0.0.1"]]
    assert t.ok("who1")["identities"] == [["digest", "alice"], ["ip", "127.0.0.1"]]
    priv_acl = t.ok("acl_priv")
    assert priv_acl["acl"] == [[31, "digest", alice]]  # "auth" expanded to the caller's identity
    assert priv_acl["stat"]["aversion"] == 0
    assert t.err("o_locked") == NO_AUTH

    assert t.ok("a_get_sec")["data"] == "s"
    assert t.err("a_set_sec") == NO_AUTH
    # READ without ADMIN: digest ids are redacted to user:x.
    assert t.ok("a_acl_sec")["acl"] == [[31, "digest", "alice:x"], [1, "world", "anyone"]]
    for label in ("a_get_priv", "a_ls_priv", "a_count_priv", "a_acl_priv", "a_create_under",
                  "a_delete_kid", "a_setacl", "a_check"):
        assert t.err(label) == NO_AUTH, label
    if TARGET_IS_ZOOKEEPER:  # 3.8.0 does not check READ for exists
        assert t.ok("a_exists_priv")["stat"]["numChildren"] == 1
    else:  # 3.9 (and 3.8.4+): exists needs READ on an existing node
        assert t.err("a_exists_priv") == NO_AUTH
    assert [(x["type"], x.get("err")) for x in t["a_check"]["results"]] == [(-1, NO_AUTH)]
    assert t.err("a_read") == NO_AUTH
    rd = t["a_read"]["results"]
    assert (rd[0]["type"], rd[0]["err"]) == (-1, NO_AUTH)
    assert (rd[1]["type"], rd[1]["data"]) == (4, "s")
    assert t.ok("a_who_wrong")["identities"] == [["digest", "alice"], ["ip", "127.0.0.1"]]
    assert t.err("a_get_wrong") == NO_AUTH
    assert t.ok("a_get_ok")["data"] == "p"
    assert t.ok("a_who_two")["identities"] == [["digest", "alice"], ["digest", "alice"],
                                                ["ip", "127.0.0.1"]]

    assert t.err("sa_bad") == BAD_VERSION
    assert t.ok("sa")["stat"]["aversion"] == 1
    after = t.ok("acl_after")
    assert after["acl"] == [[31, "digest", alice], [1, "world", "anyone"]]
    assert (after["stat"]["aversion"], after["stat"]["version"]) == (1, 0)

    assert t.ok("su_get")["data"] == "l"
    assert t.ok("su_set")["stat"]["version"] == 1
    assert t.ok("su_acl")["acl"] == [[31, "digest", bob]]


def test_ephemerals_getephemerals_and_session_close(java: Driver, server: ServerProcess) -> None:
    t = java.run(server.connect_string, [
        "connect a",
        "sa: session",
        "connect b",
        "@a create /eph x P",
        "@a e1: create2 /eph/e1 x E",
        "@a e2: create /eph/s- x ES",
        "@a create /eph/p x P",
        "@a create /other x P",
        "@a e3: create /other/e3 x E",
        "@b e4: create /eph/b x E",
        "@a eall: ephemerals",
        "@a eroot: ephemerals /",
        "@a epre: ephemerals /eph",
        "@a epre_partial: ephemerals /oth",
        "@a enone: ephemerals /nothing",
        "@b eb: ephemerals",
        "@a cnt: count /eph",
        "@a cnt_root: count /",
        "@b lw: ls /eph watch",
        "@b xw: exists /eph/e1 watch",
        "@b xw3: exists /other/e3 watch",
        "@a close",
        "@b wait_event b NodeDeleted /eph/e1",
        "@b wait_event b NodeChildrenChanged /eph",
        "@b wait_event b NodeDeleted /other/e3",
        "@b after: ls2 /eph",
        "@b gone: exists /eph/e1",
        "@b eb2: ephemerals",
    ])
    t.all_ok()
    sid = t.ok("sa")["session_id"]
    assert t.ok("e1")["stat"]["ephemeralOwner"] == sid
    assert t.ok("e2")["path"] == "/eph/s-0000000001"
    assert t.ok("eall")["paths"] == ["/eph/e1", "/eph/s-0000000001", "/other/e3"]
    assert t.ok("eroot")["paths"] == ["/eph/e1", "/eph/s-0000000001", "/other/e3"]
    assert t.ok("epre")["paths"] == ["/eph/e1", "/eph/s-0000000001"]
    assert t.ok("epre_partial")["paths"] == ["/other/e3"]  # plain string prefix
    assert t.ok("enone")["paths"] == []
    assert t.ok("eb")["paths"] == ["/eph/b"]
    assert t.ok("cnt")["count"] == 4
    assert t.ok("cnt_root")["count"] == 3 + 5 + 2
    assert sorted(t.event_list("b")) == [("NodeChildrenChanged", "/eph"),
                                         ("NodeDeleted", "/eph/e1"),
                                         ("NodeDeleted", "/other/e3")]
    after = t.ok("after")
    assert after["children"] == ["b", "p"]
    assert (after["stat"]["cversion"], after["stat"]["numChildren"]) == (6, 2)
    assert after["stat"]["pzxid"] > t.ok("e1")["stat"]["czxid"]
    assert t.err("gone") == NO_NODE
    assert t.ok("eb2")["paths"] == ["/eph/b"]


def test_session_resume_wrong_password_and_expiry(java: Driver, server: ServerProcess) -> None:
    with TcpProxy(server.host, server.port) as proxy, java.start(server.connect_string) as p:
        assert p.call(f"connect a cs={proxy.connect_string} timeout=20000")["ok"]
        sa = p.call("session")
        assert p.call("create /s x P")["ok"]
        assert p.call("create /s/e x E")["ok"]
        proxy.block()
        proxy.cut()
        assert p.call("wait_state a Disconnected")["ok"]
        # Resume a's session on a direct connection with the right id + password.
        b = p.call("connect b session=a")
        assert b["ok"] and b["session_id"] == sa["session_id"]
        sb = p.call("session")
        assert sb["passwd"] == sa["passwd"]
        assert p.call("ephemerals")["paths"] == ["/s/e"]
        assert p.call("get /s/e")["stat"]["ephemeralOwner"] == sa["session_id"]
        # Wrong password: expired for the new client; the live connection is kicked first.
        bad = p.call("bad: connect c session=b badpw")
        assert (bad["ok"], bad["err"], bad["state"]) == (False, "EXPIRED", "Expired")
        assert p.call("wait_state b Disconnected")["ok"]
        assert p.call("wait_state b SyncConnected")["ok"]
        assert p.call("@b exists /s/e")["ok"]
        # A session id the server never issued.
        unknown = p.call("unknown: connect d sid=0badc0de12345678")
        assert (unknown["ok"], unknown["err"]) == (False, "EXPIRED")
        # Closing through b ends a's session: its ephemeral goes away.
        assert p.call("@b close")["ok"]
        assert p.call("connect e")["ok"]
        assert p.call("gone: exists /s/e")["code"] == NO_NODE
        # a comes back to a closed session -> Expired.
        proxy.unblock()
        assert p.call("wait_state a Expired 20000")["ok"]
        t = p.finish()
    t.all_ok()


def test_watches_restored_after_reconnect_through_proxy(java: Driver,
                                                        server: ServerProcess) -> None:
    with TcpProxy(server.host, server.port) as proxy, java.start(server.connect_string) as p:
        p.send(
            "connect w",
            f"connect c cs={proxy.connect_string} timeout=20000",
            "@w create /sw v0 P",
            "@w create /sw/k x P",
            "@w create /gone x P",
            "@w create /pw x P",
            "@c get /sw watch",
            "@c ls /sw watch",
            "@c exists /appear watch",
            "@c get /gone watch",
            "@c get /sw/k watch",
            "@c addwatch /pw PERSISTENT",
            "@c addwatch /rec PERSISTENT_RECURSIVE",
        )
        p.sync()
        proxy.block()
        proxy.cut()
        assert p.call("wait_state c Disconnected")["ok"]
        p.send(
            "@w set /sw v1",
            "@w create /appear x P",
            "@w create /sw/k2 x P",
            "@w delete /gone",
            "@w set /pw changed-while-away",
            "@w create /rec x P",
        )
        p.sync()
        reconnect_mark = len(p.records)
        proxy.unblock()
        assert p.call("wait_state c SyncConnected 20000")["ok"]
        p.send(
            "@c wait_event c NodeDataChanged /sw",
            "@c wait_event c NodeCreated /appear",
            "@c wait_event c NodeChildrenChanged /sw",
            "@c wait_event c NodeDeleted /gone",
            # still-registered watches were restored: they fire on the next change
            "@w set /sw/k y",
            "@w set /pw again",
            "@w create /rec/child x P",
            "@c wait_event c NodeDataChanged /sw/k",
            "@c wait_event c NodeDataChanged /pw",
            "@c wait_event c NodeCreated /rec/child",
            # one-shot watches delivered by setWatches are gone
            "@w set /sw v2",
            "@w create /appear/x x P",
            "@c barrier: sync /",
        )
        t = p.finish()
    assert proxy.accepted >= 2
    waits = [r for r in t.results if r["cmd"] == "wait_event"]
    assert all(r["ok"] for r in waits), t.dump()
    before = [(e["event"], e["path"]) for e in t.records[:reconnect_mark]
              if e.get("s") == "c" and "cmd" not in e and e["event"] != "None"]
    assert before == []
    after = [(e["event"], e["path"], e["state"]) for e in t.records[reconnect_mark:]
             if e.get("s") == "c" and "cmd" not in e]
    # SyncConnected first, then the missed events (the final Closed is not a watch event)
    assert after[0] == ("None", None, "SyncConnected")
    after = [(ev, path) for ev, path, _ in after[1:] if ev != "None"]
    assert sorted(after) == sorted([
        ("NodeDataChanged", "/sw"),
        ("NodeCreated", "/appear"),
        ("NodeChildrenChanged", "/sw"),
        ("NodeDeleted", "/gone"),
        ("NodeDataChanged", "/sw/k"),
        ("NodeDataChanged", "/pw"),
        ("NodeCreated", "/rec/child"),
    ])
    # The four missed events came before anything triggered after the reconnect.
    assert sorted(after[:4]) == sorted([("NodeDataChanged", "/sw"), ("NodeCreated", "/appear"),
                                         ("NodeChildrenChanged", "/sw"),
                                         ("NodeDeleted", "/gone")])


def test_container_and_ttl_nodes_are_reaped(
        java: Driver, server_factory: Callable[..., ServerProcess]) -> None:
    srv = server_factory(cfg={"znode.container.checkIntervalMs": 200,
                              "extendedTypesEnabled": "true"})
    t = java.run(srv.connect_string, [
        "connect a",
        "ls / watch",
        "create /ttl x TTL ttl=500",
        "exists /ttl watch",
        "create /ct x C",
        "create /ct/k x P",
        "exists /ct watch",
        "create /never x C",
        "create /ttlkid x TTL ttl=500",
        "create /ttlkid/k x P",
        # twins: /ttlset gets a setData (refreshing its mtime), /ttlstale does not
        "create /ttlset x TTL ttl=2000",
        "create /ttlstale x TTL ttl=2000",
        "exists /ttlstale watch",
        "delete /ct/k",
        "reaped_ttl: wait_event a NodeDeleted /ttl 15000",
        "wait_event a NodeChildrenChanged / 15000",
        "reaped_ct: wait_event a NodeDeleted /ct 15000",
        "refresh: set /ttlset refreshed",
        "reaped_stale: wait_event a NodeDeleted /ttlstale 15000",
        "ttlset: exists /ttlset",
        "never: exists /never",
        "ttlkid: exists /ttlkid",
        "ct: exists /ct",
        "ttl: exists /ttl",
        "children: ls /",
    ])
    t.all_ok()
    t.ok("reaped_ct")
    t.ok("reaped_ttl")
    t.ok("reaped_stale")
    assert t.ok("ttlset")["stat"]["version"] == 1  # setData refreshed its mtime: still alive
    assert t.ok("never")["stat"]["ephemeralOwner"] == 0  # never had a child: stays
    assert t.ok("ttlkid")["stat"]["numChildren"] == 1  # has a child: stays
    assert t.err("ct") == NO_NODE
    assert t.err("ttl") == NO_NODE
    assert t.ok("children")["children"] == ["never", "ttlkid", "ttlset", "zookeeper"]


def test_ttl_create_rejected_when_extended_types_disabled(
        java: Driver, server_factory: Callable[..., ServerProcess]) -> None:
    srv = server_factory(cfg={"extendedTypesEnabled": "false"})
    t = java.run(srv.connect_string, [
        "connect a",
        "ttl: create /ttl x TTL ttl=5000",
        "after: exists /ttl",
        "container: create2 /c x C",
    ])
    assert t.err("ttl") == UNIMPLEMENTED
    assert t.err("after") == NO_NODE
    assert t.ok("container")["path"] == "/c"


def test_zkcli_sh_session(server: ServerProcess) -> None:
    with cd.zkcli(server.connect_string) as cli:
        cli.expect(r"state:SyncConnected type:None", timeout=60)
        cli.send("create /zc hello")
        cli.expect(r"^Created /zc$")
        cli.send("get /zc")
        cli.expect(r"^hello$")
        cli.send("set /zc world")
        cli.send("get -s /zc")
        cli.expect(r"^world$")
        m = cli.expect(r"dataVersion = (\d+)\s+aclVersion = (\d+)\s+ephemeralOwner = (0x[0-9a-f]+)"
                       r"\s+dataLength = (\d+)\s+numChildren = (\d+)")
        assert m.groups() == ("1", "0", "0x0", "5", "0")
        cli.send("create -e /zc/eph x")
        cli.expect(r"^Created /zc/eph$")
        cli.send("create -s /zc/seq- x")
        cli.expect(r"^Created /zc/seq-0000000001$")
        cli.send("getEphemerals")
        cli.expect(r"^\[/zc/eph\]$")
        cli.send("delete /zc")
        cli.expect(r"^Node not empty: /zc$")
        cli.send("getAllChildrenNumber /")
        cli.expect(r"^6$")
        cli.send("deleteall /zc")
        cli.send("ls /")
        cli.expect(r"^\[zookeeper\]$")
        cli.send("stat /nope")
        cli.expect(r"^Node does not exist: /nope$")
        cli.send("whoami")
        cli.expect(r"^ip: 127\.0\.0\.1$")
        cli.send("quit")
        cli.finish()
