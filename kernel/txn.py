"""Transactions: the deterministic, replicated form of every state change.

The leader's prep stage turns a request into a ``Txn`` that carries everything
non-deterministic (zxid, time, sequential suffix, parent counter, session password);
every replica applies the same Txns in zxid order and reaches the same tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kernel.records import ACL


@dataclass(slots=True, frozen=True)
class CreateTxn:
    """Create ``path``. ``owner`` is the stored ephemeralOwner (session id, or the
    container/TTL marker); ``parent_c`` is the parent's creation counter after it."""

    path: str
    data: bytes | None
    acl: tuple[ACL, ...]
    owner: int
    parent_c: int


@dataclass(slots=True, frozen=True)
class DeleteTxn:
    """Delete ``path`` (explicit delete, deleteContainer or reaping)."""

    path: str


@dataclass(slots=True, frozen=True)
class SetDataTxn:
    """Replace the data of ``path``; ``version`` is the node's new version."""

    path: str
    data: bytes | None
    version: int


@dataclass(slots=True, frozen=True)
class SetACLTxn:
    """Replace the ACL of ``path``; ``aversion`` is the node's new aversion."""

    path: str
    acl: tuple[ACL, ...]
    aversion: int


@dataclass(slots=True, frozen=True)
class CheckTxn:
    """A successful version check inside a multi (changes nothing)."""

    path: str


@dataclass(slots=True, frozen=True)
class ErrorTxn:
    """A write that failed validation: consumes a zxid, changes nothing."""

    err: int


@dataclass(slots=True, frozen=True)
class CreateSessionTxn:
    """A new session with its negotiated timeout and password."""

    timeout: int
    password: bytes


@dataclass(slots=True, frozen=True)
class CloseSessionTxn:
    """End a session and delete its ephemerals (found at apply time, sorted)."""


@dataclass(slots=True, frozen=True)
class MultiTxn:
    """The sub-transactions of a multi, all under one zxid. A failed multi holds one
    ErrorTxn per sub-op (0 before the failure, the error, then -2)."""

    ops: tuple[tuple[int, object], ...]


TxnBody = (CreateTxn | DeleteTxn | SetDataTxn | SetACLTxn | CheckTxn | ErrorTxn
           | CreateSessionTxn | CloseSessionTxn | MultiTxn)


@dataclass(slots=True)
class Txn:
    """A transaction header plus body. ``op`` is the request opcode that produced it."""

    zxid: int
    session_id: int
    cxid: int
    time: int
    op: int
    body: TxnBody
    # Filled by apply for the reply; not replicated.
    result: object = field(default=None, compare=False)
    # The encoded form, once known (decoded from a peer, or encoded once): the log and
    # the peer links write these bytes instead of encoding the txn again.
    raw: bytes | None = field(default=None, compare=False, repr=False)
