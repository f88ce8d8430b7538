"""Read-only mode (``readonlymode.enabled``): a server cut off from its quorum keeps
answering reads for clients that accept a read-only server, refuses writes with
NotReadOnly, refuses clients that do not accept read-only service, and returns to
normal service when it rejoins.

zkernel only: against Apache ZooKeeper 3.8 (``-Dreadonlymode.enabled=true``) the
server does go read-only, but kazoo fails to parse its read-only connect response
("invalid server response", a 16-byte buffer), so this client cannot check it there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KeeperState

from tests.support.ensemble import Ensemble, target_kind

pytestmark = [pytest.mark.ensemble,
              pytest.mark.skipif(target_kind() != "zkernel",
                                 reason="kazoo cannot parse ZooKeeper's read-only connect "
                                        "response")]


@pytest.fixture
def ensemble(tmp_path: Path) -> Iterator[Ensemble]:
    ens = Ensemble(3, tmp_path / "ens", cfg={"readonlymode.enabled": "true"},
                   jvm_flags=("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                              "-Dreadonlymode.enabled=true"))
    try:
        ens.start()
        yield ens
    finally:
        ens.close()


def _wait_word(ens: Ensemble, i: int, word: str, want: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            last = ens.four_letter_word(i, word).strip()
        except OSError:
            last = "(no answer)"
        if last == want:
            return
        time.sleep(0.1)
    raise AssertionError(f"server {i}: {word} says {last!r}, not {want!r}")


def test_a_cut_off_server_serves_reads_only_until_it_rejoins(ensemble: Ensemble) -> None:
    ens = ensemble
    leader = ens.leader()
    lone = next(i for i in range(3) if i != leader)
    writer = KazooClient(hosts=ens.connect_string([leader]), timeout=10)
    writer.start(timeout=30)
    try:
        writer.create("/ro", b"before")
        writer.sync("/ro")
    finally:
        writer.stop()
    ens.isolate(lone)
    _wait_word(ens, lone, "isro", "ro", timeout=30)

    reader = KazooClient(hosts=ens.connect_string([lone]), timeout=10, read_only=True)
    states: list[str] = []
    reader.add_listener(lambda s: states.append(str(s)))
    reader.start(timeout=30)
    try:
        assert reader.client_state == KeeperState.CONNECTED_RO
        assert reader.get("/ro")[0] == b"before"
        with pytest.raises(NotReadOnlyCallError):
            reader.create("/ro-write", b"")
        with pytest.raises(NotReadOnlyCallError):
            reader.set("/ro", b"after")
        # A client that does not accept read-only service is not served.
        rw = KazooClient(hosts=ens.connect_string([lone]), timeout=3)
        with pytest.raises(KazooTimeoutError):
            rw.start(timeout=4)
        rw.stop()
    finally:
        reader.stop()
    ens.heal()
    _wait_word(ens, lone, "isro", "rw", timeout=60)
    ens.wait_member_serving(lone, timeout=60)
    again = KazooClient(hosts=ens.connect_string([lone]), timeout=10)
    again.start(timeout=30)
    try:
        again.create("/ro-after", b"")
        assert again.get("/ro")[0] == b"before"
    finally:
        again.stop()
