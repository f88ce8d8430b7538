"""Messages between a follower's kernel and the leader's kernel.

A follower serves reads itself and forwards everything that changes state (writes,
session creation and close, ``sync``) to the leader, which runs prep and proposes
the transaction; the follower answers its client when the transaction commits locally.
The follower also reports which of its clients' sessions are alive, so that the leader
alone decides expiry.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernel.records import Id


@dataclass(frozen=True, slots=True)
class Forward:
    """A state-changing request of session ``session_id`` (``op`` with ``request``, a
    kernel.records request; for createSession a ``(timeout, password)`` tuple; for an
    undecodable write ``err`` is set and ``request`` is None)."""

    session_id: int
    cxid: int
    op: int
    request: object
    ids: list[Id]
    err: int = 0


@dataclass(frozen=True, slots=True)
class ForwardSync:
    """``sync`` of session ``session_id``: answer once everything proposed before it
    is committed."""

    session_id: int
    cxid: int


@dataclass(frozen=True, slots=True)
class SyncDone:
    """Leader → follower: the sync may be answered once ``zxid`` is applied there."""

    session_id: int
    cxid: int
    zxid: int


@dataclass(frozen=True, slots=True)
class Touch:
    """Follower → leader: these sessions ``(id, timeout)`` have live clients here."""

    sessions: list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Owned:
    """Follower → leader: a client resumed session ``session_id`` here; its requests
    now come through this server, and any still arriving through another server are
    answered SessionMoved (as ZooKeeper's session owner check does)."""

    session_id: int


KernelMessage = Forward | ForwardSync | SyncDone | Touch | Owned
