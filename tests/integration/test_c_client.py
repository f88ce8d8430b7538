"""The stock C client (libzookeeper_mt 3.8, Debian) against the server.

Most tests run ``tests/clients/c/zkscript.c`` (compiled once per session; see
``client_drivers`` for its script language); one drives the stock ``cli_mt`` shell.
``ZK_TEST_TARGET=zookeeper`` runs the same assertions against Apache ZooKeeper 3.8.
"""

from __future__ import annotations

import re
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
    Driver,
    TcpProxy,
    digest,
)
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.cclient

AUTH_FAILED = -115


@pytest.fixture(scope="session")
def cdriver(tmp_path_factory: pytest.TempPathFactory) -> Driver:
    """zkscript.c compiled once per test session."""
    return cd.build_c_driver(tmp_path_factory)


def test_create_modes_stats_and_sequence_numbers(cdriver: Driver, server: ServerProcess) -> None:
    t = cdriver.run(server.connect_string, [
        "connect a",
        "sess: session",
        "root0: exists /",
        "p: create2 /p pdata P",
        "e: create2 /p/e ~ E",
        "ps: create2 /p/ps- \"\" PS",
        "es: create2 /p/es- x ES",
        "c: create2 /p/c cdata C",
        "t: create2 /p/t tdata TTL ttl=60000",
        "ts: create2 /p/ts- tsdata STTL ttl=60000",
        "plain: create /p/plain x P",
        "plain_c: create /p/c2 x C",
        "plain_t: create /p/t2 x TTL ttl=60000",
        "bad_flags: create /p/bad x 7",
        "client_ttl: create /p/bad x TTL",
        "dup: create /p/plain x P",
        "no_parent: create /nope/x x P",
        "eph_parent: create /p/e/x x P",
        "ls: ls2 /p",
        "get_null: get /p/e",
        "get_empty: get /p/ps-0000000001",
        "seq: create /p/q- ~ PS",
        "del_nonempty: delete /p",
        "del_badversion: delete /p/plain 3",
        "del: delete /p/plain 0",
        "p_after: exists /p",
        "sync: sync /p",
        "root1: exists /",
    ])
    t.all_ok()
    sid = t.ok("sess")["session_id"]
    root0 = t.ok("root0")["stat"]
    assert (root0["cversion"], root0["numChildren"], root0["czxid"], root0["pzxid"]) == (-1, 1,
                                                                                          0, 0)
    p = t.ok("p")["stat"]
    assert p["czxid"] > 0 and p["czxid"] == p["mzxid"] == p["pzxid"]
    assert (p["version"], p["cversion"], p["ephemeralOwner"], p["dataLength"]) == (0, 0, 0, 5)
    expected = [  # label, path, ephemeralOwner, dataLength
        ("e", "/p/e", sid, 0),
        ("ps", "/p/ps-0000000001", 0, 0),
        ("es", "/p/es-0000000002", sid, 1),
        ("c", "/p/c", 0, 5),
        ("t", "/p/t", 0, 5),
        ("ts", "/p/ts-0000000005", 0, 6),
    ]
    zxid = p["czxid"]
    for label, path, owner, length in expected:
        r = t.ok(label)
        zxid += 1
        assert r["path"] == path, label
        s = r["stat"]
        assert s["czxid"] == s["mzxid"] == s["pzxid"] == zxid, (label, s)
        assert (s["ephemeralOwner"], s["dataLength"]) == (owner, length), (label, s)
        assert (s["version"], s["cversion"], s["aversion"], s["numChildren"]) == (0, 0, 0, 0)
    for label, path in [("plain", "/p/plain"), ("plain_c", "/p/c2"), ("plain_t", "/p/t2")]:
        r = t.ok(label)
        assert r["path"] == path and "stat" not in r
    assert t.err("bad_flags") == BAD_ARGUMENTS and "client" not in t["bad_flags"]
    assert t["client_ttl"]["client"] is True  # the C library itself refuses a TTL mode w/o ttl
    assert t.err("dup") == NODE_EXISTS
    assert t.err("no_parent") == NO_NODE
    assert t.err("eph_parent") == NO_CHILDREN_FOR_EPHEMERALS
    ls = t.ok("ls")
    assert ls["children"] == ["c", "c2", "e", "es-0000000002", "plain", "ps-0000000001", "t",
                              "t2", "ts-0000000005"]
    assert (ls["stat"]["cversion"], ls["stat"]["numChildren"]) == (9, 9)
    assert ls["stat"]["mzxid"] == p["czxid"]
    assert t.ok("get_null")["data"] is None
    assert t.ok("get_empty")["data"] == ""
    assert t.ok("seq")["path"] == "/p/q-0000000009"
    assert t.err("del_nonempty") == NOT_EMPTY
    assert t.err("del_badversion") == BAD_VERSION
    after = t.ok("p_after")["stat"]
    assert (after["cversion"], after["numChildren"]) == (2 * 10 - 9, 9)
    assert t.ok("sync")["path"] == "/p"
    root1 = t.ok("root1")["stat"]
    assert (root1["cversion"], root1["numChildren"]) == (0, 2)


def test_watches_one_shot_order_and_sessions(cdriver: Driver, server: ServerProcess) -> None:
    t = cdriver.run(server.connect_string, [
        "connect a",
        "x_missing: exists /w watch",
        "mk: create /w one P",
        "g: get /w watch",
        "s1: set /w two",
        "s2: set /w three",
        "l: ls2 /w watch",
        "k1: create /w/k1 x P",
        "k2: create /w/k2 x P",
        "xk: exists /w/k2 watch=wd",
        "lk: ls /w/k2 watch=wc",
        "dk: delete /w/k2",
        "g_missing: get /w/none watch",
        "mk_none: create /w/none x P",
        "connect b",
        "@a gn: get /w watch=named",
        "@a ln: ls /w watch=lw",
        "@b set /w four",
        "@a wait_event a NodeDataChanged /w",
        "@a rm: removeallwatches /w children",
        "@a rm_again: removeallwatches /w any",
        "@b create /w/k3 x P",
        "@b sync /",
        "@a barrier: sync /",
    ])
    t.all_ok()
    assert t.err("x_missing") == NO_NODE
    assert t.err("g_missing") == NO_NODE
    assert t.err("rm_again") == NO_WATCHER
    events = [(e["event"], e["path"], e["w"]) for e in t.events("a")]
    assert events[:3] == [
        ("NodeCreated", "/w", "default"),
        ("NodeDataChanged", "/w", "default"),
        ("NodeChildrenChanged", "/w", "default"),
    ]
    # one NodeDeleted, delivered to the data and the child watcher (in the client's order)
    assert sorted(events[3:5]) == [("NodeDeleted", "/w/k2", "wc"), ("NodeDeleted", "/w/k2", "wd")]
    assert events[5] == ("NodeDataChanged", "/w", "named")
    # after removing the child watch, creating /w/k3 reaches nobody
    assert events[6:] == []
    for event, path, label in [("NodeCreated", "/w", "mk"), ("NodeDataChanged", "/w", "s1"),
                               ("NodeChildrenChanged", "/w", "k1")]:
        assert t.event_index("a", event, path) < t.index(label)
    assert t.events_between("s1", "s2") == []
    assert t.events_between("k1", "k2") == []
    assert t.events_between("g_missing", "mk_none") == []
    assert t.event_list("b") == []


def test_acls_and_auth(cdriver: Driver, server: ServerProcess) -> None:
    alice = digest("alice", "secret")
    t = cdriver.run(server.connect_string, [
        "connect owner",
        "auth: addauth digest alice:secret",
        f"mk: create /sec s P acl=digest:{alice}:cdrwa,world:anyone:r",
        "mkp: create /priv p P acl=creator",
        "acl: getacl /priv",
        "connect anon",
        "a_get: get /priv",
        "a_ls: ls /priv",
        "a_set: set /sec x",
        "a_create: create /priv/x x P",
        "a_acl_sec: getacl /sec",
        "a_acl_priv: getacl /priv",
        "a_exists: exists /priv",
        "a_inv_world: create /x x P acl=world:nobody:r",
        "a_inv_creator: create /x x P acl=creator",
        "a_inv_digest: create /x x P acl=digest:bob:r",
        "a_auth: addauth digest alice:secret",
        "a_get2: get /priv",
        "sa_bad: setacl /priv world:anyone:r 5",
        "sa: setacl /priv world:anyone:r 0",
        "after: getacl /priv",
        "connect third",
        "bad_scheme: addauth nosuchscheme whatever",
        "wait_state third AuthFailed",
    ])
    t.all_ok()
    assert t.ok("acl")["acl"] == [[31, "digest", alice]]
    for label in ("a_get", "a_ls", "a_set", "a_create", "a_acl_priv"):
        assert t.err(label) == NO_AUTH, label
    assert t.ok("a_acl_sec")["acl"] == [[31, "digest", "alice:x"], [1, "world", "anyone"]]
    if TARGET_IS_ZOOKEEPER:
        assert t.ok("a_exists")["stat"]["dataLength"] == 1
    else:
        assert t.err("a_exists") == NO_AUTH
    for label in ("a_inv_world", "a_inv_creator", "a_inv_digest"):
        assert t.err(label) == INVALID_ACL, label
    assert t.ok("a_get2")["data"] == "p"
    assert t.err("sa_bad") == BAD_VERSION
    after = t.ok("after")
    assert after["acl"] == [[1, "world", "anyone"]]
    assert (after["stat"]["aversion"], after["stat"]["version"]) == (1, 0)
    assert t.err("bad_scheme") == AUTH_FAILED


def test_multi_results(cdriver: Driver, server: ServerProcess) -> None:
    t = cdriver.run(server.connect_string, [
        "connect a",
        "create /m x P",
        "xw: exists /m/x watch",
        "ok: multi create /m/a A P | create /m/s- ~ PS | set /m/a A2 0 | check /m/a 1"
        " | delete /m/a 1 | create /m/e x ES",
        "fail: multi create /m/x ~ P | set /m/s-0000000001 q 5 | delete /m/missing",
        "fail_first: multi delete /m/missing | create /m/x ~ P",
        "after: ls2 /m",
        "x_after: exists /m/x",
        "barrier: sync /",
    ])
    t.all_ok()
    ok = t.ok("ok")["results"]
    assert [r["err"] for r in ok] == [0] * 6
    assert ok[0]["path"] == "/m/a"
    assert ok[1]["path"] == "/m/s-0000000001"
    assert ok[2]["stat"]["version"] == 1
    assert ok[5]["path"] == "/m/e0000000002"
    assert t.err("fail") == BAD_VERSION
    assert [r["err"] for r in t["fail"]["results"]] == [0, BAD_VERSION, RUNTIME_INCONSISTENCY]
    assert t.err("fail_first") == NO_NODE
    assert [r["err"] for r in t["fail_first"]["results"]] == [NO_NODE, RUNTIME_INCONSISTENCY]
    after = t.ok("after")
    assert after["children"] == ["e0000000002", "s-0000000001"]
    assert (after["stat"]["cversion"], after["stat"]["numChildren"]) == (4, 2)
    assert t.err("x_after") == NO_NODE
    assert t.event_list("a") == []  # a failed multi fires nothing


def test_reconnect_setwatches_and_wrong_password(cdriver: Driver, server: ServerProcess) -> None:
    with TcpProxy(server.host, server.port) as proxy, cdriver.start(server.connect_string) as p:
        assert p.call("connect w")["ok"]
        assert p.call(f"connect c cs={proxy.connect_string} timeout=20000")["ok"]
        sid = p.call("session")["session_id"]
        p.send(
            "@w create /sw v0 P",
            "@c create /sw/e x E",
            "@c get /sw watch",
            "@c ls /sw watch",
            "@c exists /appear watch",
            "@c get /sw/e watch",
        )
        p.sync()
        proxy.block()
        proxy.cut()
        assert p.call("wait_state c Connecting")["ok"]
        p.send(
            "@w set /sw v1",
            "@w create /appear x P",
            "@w create /sw/k2 x P",
        )
        p.sync()
        mark = len(p.records)
        proxy.unblock()
        assert p.call("wait_state c Connected 20000")["ok"]
        for ev, path in [("NodeDataChanged", "/sw"), ("NodeCreated", "/appear"),
                         ("NodeChildrenChanged", "/sw")]:
            assert p.call(f"wait_event c {ev} {path}")["ok"], (ev, path)
        # the ephemeral survived the disconnect; its restored data watch still works
        eph = p.call("@c get /sw/e")
        assert eph["stat"]["ephemeralOwner"] == sid
        assert p.call("@w set /sw/e changed")["ok"]
        assert p.call("wait_event c NodeDataChanged /sw/e")["ok"]
        # one-shot: already delivered on reconnect
        assert p.call("@w set /sw v2")["ok"]
        assert p.call("@c sync /")["ok"]
        # wrong password: Expired for the newcomer, the live connection is kicked and resumes
        bad = p.call("connect d session=c badpw")
        assert (bad["ok"], bad["err"]) == (False, "EXPIRED")
        assert p.call("wait_state c Connected 20000")["ok"]
        assert p.call("@c exists /sw/e")["ok"]
        assert p.call("@c close")["ok"]
        gone = p.call("@w exists /sw/e")
        assert gone["code"] == NO_NODE
        t = p.finish()
    after = [(e["event"], e["path"]) for e in t.records[mark:]
             if e.get("s") == "c" and "cmd" not in e and e["event"] != "None"]
    assert sorted(after) == sorted([("NodeDataChanged", "/sw"), ("NodeCreated", "/appear"),
                                    ("NodeChildrenChanged", "/sw"), ("NodeDataChanged", "/sw/e")])


def test_ttl_rejected_without_extended_types(
        cdriver: Driver, server_factory: Callable[..., ServerProcess]) -> None:
    srv = server_factory(cfg={"extendedTypesEnabled": "false"})
    t = cdriver.run(srv.connect_string, [
        "connect a",
        "ttl: create2 /ttl x TTL ttl=5000",
        "after: exists /ttl",
        "ok: create2 /c x C",
    ])
    assert t.err("ttl") == -6
    assert t.err("after") == NO_NODE
    assert t.ok("ok")["path"] == "/c"


def test_cli_mt_create_ls_get_set_delete(server: ServerProcess) -> None:
    with cd.cli_mt(server.connect_string) as cli:
        cli.expect(r"Watcher SESSION_EVENT state = CONNECTED_STATE")
        sid = int(cli.expect(r"Got a new session id: 0x([0-9a-f]+)").group(1), 16)
        cli.send("create /cm")
        cli.expect(r"\[/cm\]: rc = 0\s+name = /cm\b")
        cli.send("create +e /cm/e")
        cli.expect(r"\[/cm/e\]: rc = 0\s+name = /cm/e\b")
        cli.send("create +s /cm/s-")
        cli.expect(r"\[/cm/s-\]: rc = 0\s+name = /cm/s-0000000001\b")
        cli.send("create2 +e /cm/e2")
        m = cli.expect(r"\[/cm/e2\]: rc = 0\s+name = /cm/e2\s+ctime = .*?\s+czxid=([0-9a-f]+)\s+"
                       r"mtime=.*?\s+mzxid=([0-9a-f]+)\s+version=0\s+aversion=0\s+"
                       r"ephemeralOwner = ([0-9a-f]+)")
        assert m.group(1) == m.group(2)
        assert int(m.group(3), 16) == sid
        cli.send("create /cm")
        cli.expect(r"\[/cm\]: rc = -110")
        cli.send("ls /cm")
        m = cli.expect(r"^/cm: rc = 0\n((?:\t.*\n)*)time = ")
        assert sorted(re.findall(r"\t(\S+)", m.group(1))) == ["e", "e2", "s-0000000001"]
        cli.send("get /cm")
        cli.expect(r"^/cm: rc = 0\n value_len = 3\nnew\nStat:")
        cli.send("set /cm hello")  # the get above left a data watch: its event comes first
        cli.expect(r"Watcher CHANGED_EVENT state = CONNECTED_STATE for path /cm\n"
                   r"(?:.*\n)*?/cm: rc = 0 Stat:")
        cli.expect(r"version=1\s+aversion=0")
        cli.send("get /cm")
        cli.expect(r"^/cm: rc = 0\n value_len = 5\nhello\nStat:")
        cli.send("exists /nope")
        cli.expect(r"Error -101 for /nope")
        cli.send("delete /cm")
        cli.expect(r"^/cm: rc = -111$")
        for child in ("e", "e2", "s-0000000001"):
            cli.send(f"delete /cm/{child}")
            cli.expect(rf"^/cm/{child}: rc = 0$")
        cli.send("delete /cm")
        cli.expect(r"^/cm: rc = 0$")
        cli.send("get /cm")
        cli.expect(r"^/cm: rc = -101$")
        cli.send("sync /")
        cli.expect(r"\[/\]: rc = 0\s+name = /$")
        cli.send("quit")
        cli.expect(r"Quitting\.\.\.")
        cli.finish()
