"""kazoo against a real server: session handshake, timeouts, resume, close and expiry.

Reference: client-protocol.md §2 (handshake, clamping, resume), §7.4 (session-close
transaction), §10 (expiry). Connection cuts are made with ``kh.TcpProxy`` between the
client and the server; ConnectResponses are read from ``kh.wire(client).connects``.
"""

from __future__ import annotations

import time

import pytest
from kazoo.exceptions import NodeExistsError
from kazoo.protocol.states import EventType, KazooState

from tests.integration import kazoo_helpers as kh
from tests.integration.kazoo_helpers import EV_CHILD, EV_DELETED

EXPIRED = (0, 0, b"\x00" * 16)  # ConnectResponse timeOut, sessionId, passwd for a refusal


def connect_tuple(resp):
    return (resp.time_out, resp.session_id, resp.passwd)


# ---------------------------------------------------------------------------------------
# handshake
# ---------------------------------------------------------------------------------------


def test_connect_response_matches_client_id(zk):
    (resp,) = kh.wire(zk).connects
    sid, passwd = zk.client_id
    assert resp.session_id == sid != 0
    assert resp.passwd == passwd
    assert len(passwd) == 16
    assert resp.time_out == 10000  # within [4000, 40000] for tickTime 2000
    assert resp.read_only is False
    assert resp.protocol_version == 0


def test_negotiated_timeout_clamped_to_2_and_20_ticks(server_factory, clients):
    srv = server_factory(cfg={"tickTime": 1000})
    expected = {1.0: 2000, 100.0: 20000, 7.0: 7000, 2.0: 2000, 20.0: 20000}
    got = {}
    for requested in expected:
        c = clients.new(srv, timeout=requested)
        got[requested] = kh.wire(c).connects[-1].time_out
    assert got == expected


def test_negotiated_timeout_uses_configured_bounds(server_factory, clients):
    srv = server_factory(cfg={"tickTime": 500, "minSessionTimeout": 3000,
                              "maxSessionTimeout": 6000})
    expected = {1.0: 3000, 30.0: 6000, 4.0: 4000}
    got = {}
    for requested in expected:
        c = clients.new(srv, timeout=requested)
        got[requested] = kh.wire(c).connects[-1].time_out
    assert got == expected


def test_sessions_are_distinct(srv, clients):
    ids = {clients.new(srv).client_id[0] for _ in range(4)}
    assert len(ids) == 4
    assert 0 not in ids


def test_pipelined_requests_are_answered_in_order(zk):
    """kazoo drops the connection on any xid mismatch: 300 queued ops must all succeed."""
    zk.create("/pipe", b"")
    results = []
    for i in range(100):
        results.append(zk.create_async(f"/pipe/n{i}", b"x"))
        results.append(zk.get_async("/pipe"))
        results.append(zk.exists_async(f"/pipe/n{i}"))
    values = [r.get(timeout=20) for r in results]
    assert [v for v in values[0::3]] == [f"/pipe/n{i}" for i in range(100)]
    czxids = [v.czxid for v in values[2::3]]
    assert czxids == sorted(czxids) and len(set(czxids)) == 100
    assert KazooState.SUSPENDED not in kh.states(zk)
    replies = [f.zxid for f in kh.wire(zk).frames if f.xid > 0]
    assert replies == sorted(replies)  # reply zxids never go backwards


# ---------------------------------------------------------------------------------------
# close
# ---------------------------------------------------------------------------------------


def test_close_deletes_ephemerals_and_notifies_watchers(server, clients):
    a = clients.new(server)
    b = clients.new(server)
    a.create("/p", b"")
    eph_czxid = a.create("/e", b"", ephemeral=True, include_data=True)[1].czxid
    a.create("/p/e2", b"", ephemeral=True)
    seq = a.create("/p/s-", b"", ephemeral=True, sequence=True)
    p_before = b.exists("/p")
    w = kh.Watcher()
    mark = kh.wire(b).mark()
    assert b.exists("/e", watch=w) is not None
    b.get("/p/e2", watch=w)
    assert sorted(b.get_children("/p", watch=w)) == ["e2", seq.rsplit("/", 1)[1]]

    a.stop()
    # the close transaction was applied before its reply: gone at once
    assert b.exists("/e") is None
    assert b.get_children("/p") == []
    assert b.exists("/p") is not None  # persistent nodes stay
    evs = kh.wire(b).wait_events(mark, 3)
    assert sorted(evs) == sorted([(EV_DELETED, "/e"), (EV_DELETED, "/p/e2"),
                                  (EV_CHILD, "/p")])
    assert {e.type for e in w.wait(3)} == {EventType.DELETED, EventType.CHILD}

    # one transaction (one zxid) deleted all ephemerals and updated both parents
    p_after = b.exists("/p")
    root = b.exists("/")
    assert p_after.pzxid == root.pzxid > eph_czxid
    assert p_after.cversion == p_before.cversion + 2
    assert p_after.numChildren == 0
    assert p_after.mzxid == p_before.mzxid


def test_closed_session_cannot_be_resumed(srv, clients):
    a = clients.new(srv)
    sid, passwd = a.client_id
    a.create("/gone", b"", ephemeral=True)
    a.stop()
    c = clients.new(srv, client_id=(sid, passwd))
    assert connect_tuple(kh.wire(c).connects[0]) == EXPIRED
    # kazoo then starts a brand-new session
    assert c.client_id[0] not in (0, sid)
    assert c.exists("/gone") is None


# ---------------------------------------------------------------------------------------
# resume
# ---------------------------------------------------------------------------------------


def test_dropped_connection_resumes_same_session(srv, clients):
    b = clients.new(srv)
    with kh.tcp_proxy(srv) as proxy:
        a = clients.new(proxy)
        sid, passwd = a.client_id
        a.create("/keep", b"", ephemeral=True)
        proxy.drop()
        kh.wait_until(lambda: len(kh.wire(a).connects) >= 2 and a.connected,
                      msg="reconnect through the proxy")
        resp = kh.wire(a).connects[-1]
        assert (resp.session_id, resp.passwd) == (sid, passwd)
        assert resp.time_out == 10000
        assert a.client_id == (sid, passwd)
        assert KazooState.LOST not in kh.states(a)
        assert kh.states(a)[-2:] == [KazooState.SUSPENDED, KazooState.CONNECTED]
        assert b.exists("/keep").ephemeralOwner == sid
        # the resumed session still owns it
        with pytest.raises(NodeExistsError):
            a.create("/keep", b"", ephemeral=True)
        a.delete("/keep")
        assert b.exists("/keep") is None


def test_resume_with_client_id_keeps_ephemerals(srv, clients):
    watcher_client = clients.new(srv)
    with kh.tcp_proxy(srv) as proxy:
        a = clients.new(proxy)
        sid, passwd = a.client_id
        a.create("/mine", b"", ephemeral=True)
        proxy.block()  # a is cut off; its session lives on server-side
        kh.wait_until(lambda: not a.connected, msg="a disconnected")
        b = clients.new(srv, client_id=(sid, passwd))
        resp = kh.wire(b).connects[0]
        assert (resp.session_id, resp.passwd) == (sid, passwd)
        assert resp.time_out > 0
        assert b.client_id == (sid, passwd)
        assert b.exists("/mine").ephemeralOwner == sid
        assert b.create("/mine2", b"", ephemeral=True, include_data=True)[1].ephemeralOwner == sid
        a.stop()  # cannot reach the server: no closeSession is sent
        assert b.exists("/mine") is not None
        w = kh.Watcher()
        watcher_client.exists("/mine", watch=w)
        b.stop()  # closes the (shared) session
        assert watcher_client.exists("/mine") is None
        assert watcher_client.exists("/mine2") is None
        assert w.wait(1)[0].type == EventType.DELETED


def test_wrong_password_is_refused_as_expired(srv, clients):
    a = clients.new(srv)
    sid, passwd = a.client_id
    a.create("/owned", b"", ephemeral=True)
    bad = passwd[:-1] + bytes([passwd[-1] ^ 0xFF])
    b = clients.new(srv, client_id=(sid, bad))
    assert connect_tuple(kh.wire(b).connects[0]) == EXPIRED
    assert b.client_id[0] not in (0, sid)  # kazoo started a new session
    # the real session is intact (a may have been kicked off and reconnected)
    kh.wait_until(lambda: a.connected, msg="a connected")
    assert a.client_id[0] == sid
    assert b.exists("/owned").ephemeralOwner == sid
    assert a.exists("/owned") is not None


def test_resume_attempt_closes_the_live_connection_first(srv, clients):
    """ZK closes any connection bound to the session before checking the password."""
    a = clients.new(srv)
    sid, passwd = a.client_id
    bad = bytes(16) if passwd != bytes(16) else b"\x01" * 16
    clients.new(srv, client_id=(sid, bad))
    kh.wait_until(lambda: KazooState.SUSPENDED in kh.states(a), msg="a kicked off")
    kh.wait_until(lambda: a.connected, msg="a reconnected")
    assert a.client_id[0] == sid
    assert kh.wire(a).connects[-1].session_id == sid


# ---------------------------------------------------------------------------------------
# expiry (small tickTime keeps this fast)
# ---------------------------------------------------------------------------------------


def test_idle_session_is_kept_alive_by_pings(server_factory, clients):
    srv = server_factory(cfg={"tickTime": 200})  # timeouts 400..4000 ms
    a = clients.new(srv, timeout=1.0)
    assert kh.wire(a).connects[0].time_out == 1000
    b = clients.new(srv)
    a.create("/alive", b"", ephemeral=True)
    time.sleep(2.5)
    assert a.connected
    assert kh.states(a) == [KazooState.CONNECTED]
    assert b.exists("/alive").ephemeralOwner == a.client_id[0]
    pings = [f for f in kh.wire(a).frames if f.xid == kh.PING_XID]
    assert len(pings) >= 3
    assert all(f.err == 0 for f in pings)


def test_session_expiry_deletes_ephemerals_and_refuses_resume(server_factory, clients):
    srv = server_factory(cfg={"tickTime": 200})  # timeouts 400..4000 ms
    b = clients.new(srv)
    with kh.tcp_proxy(srv) as proxy:
        a = clients.new(proxy, timeout=2.0)
        assert kh.wire(a).connects[0].time_out == 2000
        sid, passwd = a.client_id
        a.create("/p", b"")
        a.create("/p/eph", b"", ephemeral=True)
        a.create("/eph", b"", ephemeral=True)
        mark = kh.wire(b).mark()
        b.exists("/eph", watch=kh.Watcher())
        b.get_children("/p", watch=kh.Watcher())
        proxy.block()
        t0 = time.monotonic()
        time.sleep(0.3)
        # a closed socket alone does not end the session
        assert b.exists("/eph").ephemeralOwner == sid
        evs = kh.wire(b).wait_events(mark, 2, timeout=15)
        elapsed = time.monotonic() - t0
        assert sorted(evs) == sorted([(EV_DELETED, "/eph"), (EV_CHILD, "/p")])
        # last ping at most ~0.67 s before the cut; expiry between timeout and
        # timeout + tickTime after it
        assert 1.2 <= elapsed <= 8.0, elapsed
        assert b.exists("/p/eph") is None
        assert b.exists("/p") is not None

        proxy.unblock()
        kh.wait_until(lambda: KazooState.LOST in kh.states(a), timeout=15,
                      msg="a learns its session expired")
        assert EXPIRED in [connect_tuple(r) for r in kh.wire(a).connects]
        kh.wait_until(lambda: a.connected, timeout=15, msg="a has a new session")
        assert a.client_id[0] != sid
        assert a.create("/eph", b"", ephemeral=True) == "/eph"

    # a direct resume attempt with the old credentials is refused too
    c = clients.new(srv, client_id=(sid, passwd))
    assert connect_tuple(kh.wire(c).connects[0]) == EXPIRED
