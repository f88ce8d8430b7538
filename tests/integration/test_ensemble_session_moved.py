"""A session that moved to another server: a write still arriving through the server it
left fails the leader's session-owner check (SessionMoved, -118) and, as in ZooKeeper,
that old connection is closed rather than answered, so the write is lost to the client
as ConnectionLoss and nothing is written. Runs against Apache ZooKeeper too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss

from tests.integration.wire import WireConn
from tests.support.ensemble import Ensemble

pytestmark = pytest.mark.ensemble


@pytest.fixture
def ensemble(tmp_path: Path) -> Iterator[Ensemble]:
    ens = Ensemble(3, tmp_path / "ens")
    try:
        ens.start()
        yield ens
    finally:
        ens.close()


@pytest.mark.parametrize("to_leader", [False, True])
def test_writes_through_the_old_server_get_session_moved(ensemble: Ensemble,
                                                         to_leader: bool) -> None:
    ens = ensemble
    leader = ens.leader()
    first = next(i for i in range(3) if i != leader)
    second = leader if to_leader else next(i for i in range(3) if i not in (leader, first))
    old = KazooClient(hosts=ens.connect_string([first]), timeout=10)
    old.start(timeout=30)
    try:
        old.create("/moved-before", b"")
        sid, password = old.client_id
        # The same session resumed on another server (as a client that reconnected
        # elsewhere while its old connection lingers).
        host, port = ens.connect_string([second]).split(":")
        with WireConn(host, int(port)) as new:
            resp = new.handshake(10000, session_id=sid, passwd=password)
            assert resp.session_id == sid
            assert new.create("/moved-after", b"").err == 0
            with pytest.raises(ConnectionLoss):
                old.create("/moved-stale", b"")
            assert new.get_data("/moved-stale").err == -101  # NoNode: nothing written
            assert new.get_data("/moved-after").err == 0
    finally:
        old.stop()
