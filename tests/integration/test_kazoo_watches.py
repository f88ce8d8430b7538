"""kazoo against a real server: one-time, persistent and recursive watches (§8, §3.3).

Notifications are checked on the wire (``kh.wire(client)``: every frame kazoo's reader
thread saw, in order) -- kazoo dispatches watch callbacks on another thread, so ordering
against replies can only be asserted there. "No further event" checks use a round trip
on the watching connection (notifications precede any later reply, §3.3).
"""

from __future__ import annotations

import pytest
from kazoo.exceptions import MarshallingError, NoNodeError, NoWatcherError
from kazoo.protocol.states import EventType, KazooState
from kazoo.security import make_acl

from tests.integration import kazoo_helpers as kh
from tests.integration.kazoo_helpers import EV_CHANGED, EV_CHILD, EV_CREATED, EV_DELETED


def flush(client):
    """A round trip: afterwards every notification caused earlier has been read."""
    client.sync("/")


# ---------------------------------------------------------------------------------------
# one-time watches
# ---------------------------------------------------------------------------------------


def test_data_watch_fires_once_on_change(zk, zk2):
    zk.create("/w", b"0")
    w = kh.Watcher()
    mark = kh.wire(zk).mark()
    assert zk.get("/w", watch=w)[0] == b"0"
    zk2.set("/w", b"1")
    ev = w.wait(1)[0]
    assert (ev.type, ev.path, ev.state) == (EventType.CHANGED, "/w", "CONNECTED")
    zk2.set("/w", b"2")
    zk2.delete("/w")
    flush(zk)
    assert kh.wire(zk).events_since(mark) == [(EV_CHANGED, "/w")]
    assert len(w.events) == 1
    # every server notification carries KeeperState SyncConnected (3)
    assert {f.state for f in kh.wire(zk).events()} == {3}


def test_exists_watch_on_missing_node_fires_created(zk, zk2):
    w = kh.Watcher()
    mark = kh.wire(zk).mark()
    assert zk.exists("/later", watch=w) is None
    # the NoNode reply (err -101) still registered the watch
    assert [f.err for f in kh.wire(zk).frames[mark:] if f.xid > 0] == [-101]
    zk2.create("/later", b"x")
    assert w.wait(1)[0].type == EventType.CREATED
    zk2.set("/later", b"y")
    flush(zk)
    assert kh.wire(zk).events_since(mark) == [(EV_CREATED, "/later")]


def test_exists_watch_on_existing_node(zk, zk2):
    zk.create("/ex", b"")
    w = kh.Watcher()
    mark = kh.wire(zk).mark()
    assert zk.exists("/ex", watch=w) is not None
    zk2.set("/ex", b"1")
    w.wait(1)
    assert zk.exists("/ex", watch=w).version == 1
    zk2.delete("/ex")
    w.wait(2)
    assert w.simple() == [(EventType.CHANGED, "/ex"), (EventType.DELETED, "/ex")]
    zk2.create("/ex", b"")  # one-time watch already consumed by the delete
    flush(zk)
    assert kh.wire(zk).events_since(mark) == [(EV_CHANGED, "/ex"), (EV_DELETED, "/ex")]


def test_child_watch_events(zk, zk2):
    zk.create("/p", b"")
    w = kh.Watcher()
    mark = kh.wire(zk).mark()
    assert zk.get_children("/p", watch=w) == []
    zk2.create("/p/a", b"")
    w.wait(1)
    assert sorted(zk.get_children("/p", watch=w)) == ["a"]
    zk2.set("/p/a", b"data changes of a child do not fire child watches")
    zk2.set("/p", b"nor do data changes of the node itself")
    zk2.delete("/p/a")
    w.wait(2)
    assert zk.get_children("/p", watch=w) == []
    zk2.delete("/p")  # the child watcher of a deleted node gets NodeDeleted
    w.wait(3)
    flush(zk)
    assert w.simple() == [(EventType.CHILD, "/p"), (EventType.CHILD, "/p"),
                          (EventType.DELETED, "/p")]
    assert kh.wire(zk).events_since(mark) == [(EV_CHILD, "/p"), (EV_CHILD, "/p"),
                                              (EV_DELETED, "/p")]


def test_child_watch_on_root(zk, zk2):
    w = kh.Watcher()
    assert "zookeeper" in zk.get_children("/", watch=w)
    zk2.create("/top", b"")
    assert w.wait(1)[0].path == "/"
    assert w.events[0].type == EventType.CHILD


def test_failed_reads_do_not_register_watches(zk, zk2):
    w = kh.Watcher()
    mark = kh.wire(zk).mark()
    with pytest.raises(NoNodeError):
        zk.get("/nx", watch=w)
    with pytest.raises(NoNodeError):
        zk.get_children("/nx", watch=w)
    with pytest.raises(NoNodeError):
        zk.get_children("/nx", watch=w, include_data=True)
    zk2.create("/nx", b"")
    zk2.create("/nx/c", b"")
    zk2.set("/nx", b"1")
    flush(zk)
    assert kh.wire(zk).events_since(mark) == []
    assert w.events == []


def test_one_event_per_connection_per_trigger(zk, zk2, srv, clients):
    zk.create("/one", b"")
    third = clients.new(srv)
    w1, w2, w3 = kh.Watcher(), kh.Watcher(), kh.Watcher()
    mark = kh.wire(zk).mark()
    mark3 = kh.wire(third).mark()
    zk.get("/one", watch=w1)
    zk.exists("/one", watch=w2)
    third.get("/one", watch=w3)
    zk2.set("/one", b"x")
    w1.wait(1)
    w2.wait(1)
    w3.wait(1)
    flush(zk)
    flush(third)
    # both of zk's data watches are served by a single notification
    assert kh.wire(zk).events_since(mark) == [(EV_CHANGED, "/one")]
    assert kh.wire(third).events_since(mark3) == [(EV_CHANGED, "/one")]


def test_node_created_before_parent_children_changed(zk, zk2):
    zk.create("/o", b"")
    w = kh.Watcher()
    mark = kh.wire(zk).mark()
    zk.exists("/o/c", watch=w)
    zk.get_children("/o", watch=w)
    zk2.create("/o/c", b"")
    w.wait(2)
    assert kh.wire(zk).events_since(mark) == [(EV_CREATED, "/o/c"), (EV_CHILD, "/o")]
    mark = kh.wire(zk).mark()
    zk.exists("/o/c", watch=w)
    zk.get_children("/o", watch=w)
    zk2.delete("/o/c")
    w.wait(4)
    assert kh.wire(zk).events_since(mark) == [(EV_DELETED, "/o/c"), (EV_CHILD, "/o")]


def test_set_acl_sync_and_reads_do_not_fire(zk, zk2):
    zk.create("/quiet", b"")
    zk.create("/quiet/c", b"")
    w = kh.Watcher()
    mark = kh.wire(zk).mark()
    zk.get("/quiet", watch=w)
    zk.get_children("/quiet", watch=w)
    zk2.set_acls("/quiet", [make_acl("world", "anyone", all=True)])
    zk2.sync("/quiet")
    zk2.get("/quiet")
    zk2.get_children("/quiet")
    zk2.exists("/quiet/c")
    flush(zk)
    assert kh.wire(zk).events_since(mark) == []
    zk2.set("/quiet", b"now")
    w.wait(1)
    flush(zk)
    assert kh.wire(zk).events_since(mark) == [(EV_CHANGED, "/quiet")]


def test_deleted_and_recreated_node_fires_only_deleted(zk, zk2):
    zk.create("/re", b"")
    w = kh.Watcher()
    mark = kh.wire(zk).mark()
    zk.get("/re", watch=w)
    zk2.delete("/re")
    zk2.create("/re", b"")
    zk2.set("/re", b"1")
    w.wait(1)
    flush(zk)
    assert kh.wire(zk).events_since(mark) == [(EV_DELETED, "/re")]


# ---------------------------------------------------------------------------------------
# notification vs reply ordering (§3.3)
# ---------------------------------------------------------------------------------------


def test_notification_precedes_reply_of_own_write(zk):
    log = kh.wire(zk)
    zk.create("/own", b"0")
    w = kh.Watcher()

    start = log.mark()
    zk.get("/own", watch=w)
    st = zk.set("/own", b"1")
    assert log.index_of_event(EV_CHANGED, "/own", start) < log.index_of_reply(st.mzxid, start)

    start = log.mark()
    zk.exists("/own2", watch=w)
    _, st2 = zk.create("/own2", b"", include_data=True)
    assert log.index_of_event(EV_CREATED, "/own2", start) < log.index_of_reply(st2.czxid, start)

    start = log.mark()
    zk.get_children("/own", watch=w)
    _, st3 = zk.create("/own/c", b"", include_data=True)
    assert log.index_of_event(EV_CHILD, "/own", start) < log.index_of_reply(st3.czxid, start)

    start = log.mark()
    zk.exists("/own2", watch=w)
    zk.delete("/own2")
    delete_zxid = zk.last_zxid
    assert log.index_of_event(EV_DELETED, "/own2", start) < log.index_of_reply(delete_zxid,
                                                                               start)
    assert len(w.wait(4)) == 4


def test_notification_precedes_later_read_of_other_sessions_write(zk, zk2):
    log = kh.wire(zk)
    zk.create("/x", b"old")
    start = log.mark()
    zk.get("/x", watch=kh.Watcher())
    zk2.set("/x", b"new")
    get_mark = log.mark()
    data, st = zk.get("/x")
    assert data == b"new"
    # the event was on the wire no later than the reply that reveals the change
    ev = log.index_of_event(EV_CHANGED, "/x", start)
    replies = [f.seq for f in log.frames[get_mark:] if f.xid > 0]
    assert replies and ev < replies[0]


@kh.only_zkernel
def test_notification_zxid_is_the_transaction_zxid(zk, zk2):
    """3.9 (ZOOKEEPER-4655): the notification header carries the firing txn's zxid
    (3.8 sends -1)."""
    zk.create("/nz", b"")
    mark = kh.wire(zk).mark()
    zk.get("/nz", watch=kh.Watcher())
    st = zk2.set("/nz", b"1")
    kh.wire(zk).wait_events(mark, 1)
    (frame,) = [f for f in kh.wire(zk).frames[mark:] if f.xid == kh.WATCH_XID]
    assert frame.zxid == st.mzxid


# ---------------------------------------------------------------------------------------
# watches belong to the connection
# ---------------------------------------------------------------------------------------


def test_watches_are_dropped_with_the_connection(srv, clients, zk2):
    with kh.tcp_proxy(srv) as proxy:
        a = clients.new(proxy)
        sid = a.client_id[0]
        a.create("/cw", b"")
        w = kh.Watcher()
        a.get("/cw", watch=w)
        a.exists("/cw-missing", watch=w)
        a.get_children("/cw", watch=w)
        proxy.drop()
        kh.wait_until(lambda: KazooState.SUSPENDED in kh.states(a), msg="suspended")
        kh.wait_until(lambda: a.state == KazooState.CONNECTED, msg="reconnected")
        assert a.client_id[0] == sid
        # kazoo itself fires NONE to every watcher on connection loss (no setWatches)
        assert {e.type for e in w.wait(3)} == {EventType.NONE}
        mark = kh.wire(a).mark()
        zk2.set("/cw", b"1")
        zk2.create("/cw-missing", b"")
        zk2.create("/cw/c", b"")
        flush(a)
        assert kh.wire(a).events_since(mark) == []


# ---------------------------------------------------------------------------------------
# persistent / persistent-recursive watches (addWatch 106, §8.2-8.5)
# ---------------------------------------------------------------------------------------


def test_persistent_watch(zk, zk2):
    log = kh.wire(zk)
    mark = log.mark()
    # the node need not exist; the success body is an int 0
    assert kh.call(zk, kh.AddWatch("/pw", 0)) == 0
    zk2.create("/pw", b"")
    zk2.set("/pw", b"1")
    zk2.set("/pw", b"2")
    zk2.create("/pw/c", b"")
    zk2.create("/pw/c/g", b"")  # grandchildren are not reported
    zk2.set("/pw/c", b"child data is not reported")
    zk2.delete("/pw/c/g")
    zk2.delete("/pw/c")
    zk2.delete("/pw")
    zk2.create("/pw", b"")  # still registered after the node's deletion
    flush(zk)
    assert log.events_since(mark) == [
        (EV_CREATED, "/pw"), (EV_CHANGED, "/pw"), (EV_CHANGED, "/pw"), (EV_CHILD, "/pw"),
        (EV_CHILD, "/pw"), (EV_DELETED, "/pw"), (EV_CREATED, "/pw"),
    ]


def test_persistent_recursive_watch(zk, zk2):
    log = kh.wire(zk)
    zk.create("/r", b"")
    mark = log.mark()
    assert kh.call(zk, kh.AddWatch("/r", 1)) == 0
    zk2.create("/r/a", b"")
    zk2.create("/r/a/b", b"")
    zk2.set("/r/a/b", b"1")
    zk2.set("/r", b"1")
    zk2.delete("/r/a/b")
    zk2.delete("/r/a")
    zk2.create("/other", b"")  # outside the subtree
    flush(zk)
    # never NodeChildrenChanged for a recursive watcher
    assert log.events_since(mark) == [
        (EV_CREATED, "/r/a"), (EV_CREATED, "/r/a/b"), (EV_CHANGED, "/r/a/b"),
        (EV_CHANGED, "/r"), (EV_DELETED, "/r/a/b"), (EV_DELETED, "/r/a"),
    ]


def test_recursive_and_persistent_watches_combined(zk, zk2):
    """The sequence observed on 3.8.0 in client-protocol.md §8.3."""
    log = kh.wire(zk)
    zk.create("/pr", b"")
    assert kh.call(zk, kh.AddWatch("/pr", 1)) == 0
    assert kh.call(zk, kh.AddWatch("/pr/x", 0)) == 0
    mark = log.mark()
    zk2.create("/pr/x", b"")
    flush(zk)
    assert log.events_since(mark) == [(EV_CREATED, "/pr/x")]
    mark = log.mark()
    zk2.create("/pr/x/y", b"")
    flush(zk)
    assert log.events_since(mark) == [(EV_CREATED, "/pr/x/y"), (EV_CHILD, "/pr/x")]
    mark = log.mark()
    zk2.set("/pr/x/y", b"1")
    zk2.set("/pr/x/y", b"2")
    flush(zk)
    assert log.events_since(mark) == [(EV_CHANGED, "/pr/x/y"), (EV_CHANGED, "/pr/x/y")]
    mark = log.mark()
    zk2.delete("/pr/x/y")
    flush(zk)
    assert log.events_since(mark) == [(EV_DELETED, "/pr/x/y"), (EV_CHILD, "/pr/x")]


def test_one_time_then_persistent_watch_fire_once_per_trigger(zk, zk2):
    zk.create("/mix", b"")
    w = kh.Watcher()
    zk.get("/mix", watch=w)
    assert kh.call(zk, kh.AddWatch("/mix", 0)) == 0
    mark = kh.wire(zk).mark()
    zk2.set("/mix", b"1")
    zk2.set("/mix", b"2")
    w.wait(1)
    flush(zk)
    # one notification per trigger; the persistent watch survives
    assert kh.wire(zk).events_since(mark) == [(EV_CHANGED, "/mix"), (EV_CHANGED, "/mix")]
    assert len(w.events) == 1


@kh.only_zkernel
def test_persistent_then_one_time_watch_coexist(zk, zk2):
    """3.9 (ZOOKEEPER-4466): a later STANDARD registration no longer replaces an earlier
    PERSISTENT one on the same path and connection (3.8 drops the persistent mode)."""
    zk.create("/mix2", b"")
    assert kh.call(zk, kh.AddWatch("/mix2", 0)) == 0
    w = kh.Watcher()
    zk.get("/mix2", watch=w)
    mark = kh.wire(zk).mark()
    zk2.set("/mix2", b"1")
    zk2.set("/mix2", b"2")
    w.wait(1)
    flush(zk)
    assert kh.wire(zk).events_since(mark) == [(EV_CHANGED, "/mix2"), (EV_CHANGED, "/mix2")]
    assert len(w.events) == 1


def test_add_watch_with_bad_mode_is_a_marshalling_error(zk):
    with pytest.raises(MarshallingError):
        kh.call(zk, kh.AddWatch("/bad-mode", 2))


# ---------------------------------------------------------------------------------------
# checkWatches (17) / removeWatches (18)
# ---------------------------------------------------------------------------------------


def test_check_and_remove_watches(zk, zk2):
    zk.create("/cr", b"")
    zk.get("/cr", watch=kh.Watcher())
    zk.get_children("/cr", watch=kh.Watcher())
    zk.exists("/cr-missing", watch=kh.Watcher())
    for wtype in (1, 2, 3):
        assert kh.call(zk, kh.CheckWatches("/cr", wtype)) is True
    # an exists watch on a missing node is a data watch
    assert kh.call(zk, kh.CheckWatches("/cr-missing", 2)) is True
    with pytest.raises(NoWatcherError):
        kh.call(zk, kh.CheckWatches("/cr-missing", 1))
    with pytest.raises(NoWatcherError):
        kh.call(zk, kh.CheckWatches("/nowatch", 3))
    with pytest.raises(NoWatcherError):
        kh.call(zk, kh.RemoveWatches("/nowatch", 3))
    # another session's watches are not visible (3.8.0's WatchManager.containsWatcher
    # answers for any connection watching the path; fixed in 3.9)
    if not kh.IS_ZOOKEEPER:
        with pytest.raises(NoWatcherError):
            kh.call(zk2, kh.CheckWatches("/cr", 3))
    with pytest.raises(NoWatcherError):
        kh.call(zk2, kh.RemoveWatches("/cr", 3))

    # remove the data watch only: the child watch still fires
    assert kh.call(zk, kh.RemoveWatches("/cr", 2)) is True
    with pytest.raises(NoWatcherError):
        kh.call(zk, kh.CheckWatches("/cr", 2))
    assert kh.call(zk, kh.CheckWatches("/cr", 1)) is True
    mark = kh.wire(zk).mark()
    zk2.set("/cr", b"1")
    zk2.create("/cr/c", b"")
    flush(zk)
    assert kh.wire(zk).events_since(mark) == [(EV_CHILD, "/cr")]

    # 'any' removes both tables
    zk.get("/cr", watch=kh.Watcher())
    zk.get_children("/cr", watch=kh.Watcher())
    assert kh.call(zk, kh.RemoveWatches("/cr", 3)) is True
    with pytest.raises(NoWatcherError):
        kh.call(zk, kh.CheckWatches("/cr", 3))
    mark = kh.wire(zk).mark()
    zk2.set("/cr", b"2")
    zk2.delete("/cr/c")
    flush(zk)
    assert kh.wire(zk).events_since(mark) == []


def test_check_watches_with_bad_type_is_a_marshalling_error(zk):
    zk.create("/bt", b"")
    zk.get("/bt", watch=kh.Watcher())
    with pytest.raises(MarshallingError):
        kh.call(zk, kh.CheckWatches("/bt", 9))


@kh.only_zkernel
def test_check_and_remove_persistent_watch_types(zk, zk2):
    """WatcherType 4 (Persistent) / 5 (PersistentRecursive) exist only since 3.9."""
    zk.create("/pt", b"")
    assert kh.call(zk, kh.AddWatch("/pt", 0)) == 0
    assert kh.call(zk, kh.AddWatch("/ptr", 1)) == 0
    assert kh.call(zk, kh.CheckWatches("/pt", 4)) is True
    with pytest.raises(NoWatcherError):
        kh.call(zk, kh.CheckWatches("/pt", 5))
    with pytest.raises(NoWatcherError):
        kh.call(zk, kh.CheckWatches("/pt", 2))  # persistent is not STANDARD
    assert kh.call(zk, kh.CheckWatches("/ptr", 5)) is True
    with pytest.raises(NoWatcherError):
        kh.call(zk, kh.CheckWatches("/ptr", 4))
    assert kh.call(zk, kh.CheckWatches("/ptr", 3)) is True
    assert kh.call(zk, kh.RemoveWatches("/pt", 4)) is True
    assert kh.call(zk, kh.RemoveWatches("/ptr", 5)) is True
    with pytest.raises(NoWatcherError):
        kh.call(zk, kh.CheckWatches("/pt", 3))
    mark = kh.wire(zk).mark()
    zk2.set("/pt", b"1")
    zk2.create("/pt/c", b"")
    zk2.create("/ptr", b"")
    flush(zk)
    assert kh.wire(zk).events_since(mark) == []
