"""Sessions as leases over gRPC: keep-alive, close, expiry and ephemeral cleanup,
re-attaching from a new channel."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import grpc

from plugins.transport_grpc.v1 import zkernel_pb2 as pb
from tests.integration.test_grpc_support import (
    GClient,
    fails,
    gclient,
    gserver,
    only_zkernel,
    zk_code,
)

pytestmark = only_zkernel
__all__ = ["gclient", "gserver"]  # fixtures

Make = Callable[..., GClient]


def _gone(c: GClient, path: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not c.exists(path).exists:
            return True
        time.sleep(0.05)
    return False


def test_timeout_is_negotiated(gclient: Make) -> None:
    # tickTime=250: sessions get 500..5000 ms.
    assert gclient(timeout_ms=1).timeout_ms == 500
    assert gclient(timeout_ms=999999).timeout_ms == 5000
    assert gclient(timeout_ms=1200).timeout_ms == 1200


def test_close_deletes_ephemerals_and_ends_the_session(gclient: Make) -> None:
    owner, other = gclient(), gclient()
    other.create("/ses-close")
    owner.create("/ses-close/e", mode=pb.EPHEMERAL)
    stream = owner.events()
    owner.close_session()
    assert not other.exists("/ses-close/e").exists  # gone at once, not at expiry
    err = stream.ended()
    assert err is not None and err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert zk_code(err) == -112
    err = fails(lambda: owner.get("/ses-close"))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and zk_code(err) == -112
    owner.token = ""


def test_keepalive_holds_the_lease_then_expiry_deletes_ephemerals(gclient: Make) -> None:
    owner, other = gclient(timeout_ms=600), gclient()
    other.create("/ses-exp")
    owner.create("/ses-exp/e", mode=pb.EPHEMERAL)
    stream = owner.events()

    def pings() -> Iterator[pb.KeepAliveRequest]:
        for _ in range(8):  # 1.6 s, well past the 600 ms timeout
            yield pb.KeepAliveRequest()
            time.sleep(0.2)

    answers = list(owner.sessions.KeepAlive(pings(), metadata=owner.md, timeout=10))
    assert len(answers) == 8 and answers[-1].timeout_ms == 600
    assert answers[-1].header.session_id == owner.session_id
    assert other.exists("/ses-exp/e").exists  # kept alive
    # No more calls: the lease runs out and the ephemeral goes with it.
    assert _gone(other, "/ses-exp/e")
    err = stream.ended()
    assert err is not None and zk_code(err) == -112
    assert zk_code(fails(lambda: owner.get("/ses-exp"))) == -112
    owner.token = ""


def test_any_call_counts_as_a_keepalive(gclient: Make) -> None:
    owner, other = gclient(timeout_ms=600), gclient()
    owner.create("/ses-calls", mode=pb.EPHEMERAL)
    for _ in range(10):
        owner.exists("/ses-calls")
        time.sleep(0.15)
    assert other.exists("/ses-calls").exists


def test_session_survives_a_new_channel_with_its_ephemerals_and_watches(
        gclient: Make) -> None:
    owner, other = gclient(), gclient()
    owner.create("/ses-move", mode=pb.EPHEMERAL)
    owner.get("/ses-move", watch=True)
    owner.reconnect()  # a new TCP connection, same session token
    assert owner.exists("/ses-move").stat.ephemeral_owner == owner.session_id
    stream = owner.events()
    other.set("/ses-move", b"changed")
    assert stream.events(1) == [(pb.NODE_DATA_CHANGED, "/ses-move")]


def test_session_token_survives_a_server_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Sessions are durable (LMDB): after a restart the same token re-attaches, with the
    session's ephemerals, and a wrong password still does not."""
    from tests.integration.test_grpc_support import start_grpc_server

    srv = start_grpc_server(tmp_path)
    c = GClient(srv.grpc_target)
    try:
        c.start(timeout_ms=5000)
        c.create("/restart-e", b"e", pb.EPHEMERAL)
        srv.restart()
        c.reconnect()
        assert c.get("/restart-e").stat.ephemeral_owner == c.session_id
        stream = c.events()
        c.get("/restart-e", watch=True)
        other = GClient(srv.grpc_target)
        other.start()
        other.set("/restart-e", b"x")
        assert stream.events(1) == [(pb.NODE_DATA_CHANGED, "/restart-e")]
        other.close()
        bad = GClient(srv.grpc_target)
        bad.token = c.token.split(":")[0] + ":" + "11" * 16
        assert zk_code(fails(lambda: bad.get("/"))) == -112
        bad.channel.close()
    finally:
        c.close()
        srv.stop()
