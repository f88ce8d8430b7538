"""What a storage plugin provides: the durable log and the recovered tree."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from kernel.tree import DataTree
from kernel.txn import Txn


class StorageError(Exception):
    """A data directory the server must not start on (corrupt, foreign, in use, or of a
    newer format). The message says what is wrong and what to do; nothing is changed."""


class Storage(Protocol):
    """A storage backend (returned by the ``zk_storage`` hook).

    ``blocking`` tells the runtime whether ``append`` does I/O (then it runs in a worker
    thread, one batch at a time, so many proposals share one sync: group commit).
    """

    name: str
    blocking: bool

    def open(self) -> DataTree:
        """Recover and return the tree (with sessions and ``last_zxid``)."""
        ...

    def append(self, txns: Sequence[Txn]) -> None:
        """Make proposals durable, in order; returns only once they are."""
        ...

    def applied(self, txns: Sequence[Txn], tree: DataTree) -> None:
        """Called after ``txns`` were applied to ``tree`` (for storages that persist it)."""
        ...

    def size_bytes(self) -> tuple[int, int]:
        """(data dir bytes, log dir bytes) for the ``dirs`` four-letter word."""
        ...

    def locations(self) -> tuple[str, str]:
        """(data location, log location) as ``conf`` prints them ("" if none)."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...


class ReplicatedStorage(Storage, Protocol):
    """What an ensemble member needs from its storage on top of ``Storage``.

    ``replay_log`` is set to False before ``open``: a logged proposal is not committed
    until Zab says so, so open must not apply the log past the persisted tree.
    """

    replay_log: bool

    def epochs(self) -> tuple[int, int]:
        """(acceptedEpoch, currentEpoch) as last stored."""
        ...

    def set_epochs(self, accepted: int, current: int) -> None:
        """Store both epochs durably before returning."""
        ...

    def log_since(self, zxid: int) -> Iterator[Txn]:
        """The logged transactions after ``zxid`` in order."""
        ...

    def truncate_log(self, zxid: int) -> int:
        """Drop logged transactions after ``zxid`` durably; returns how many."""
        ...

    def install_snapshot(self, tree: DataTree) -> DataTree:
        """Replace tree, sessions and log with ``tree``; return the tree to serve."""
        ...
