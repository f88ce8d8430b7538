"""What a storage plugin provides: the durable log and the recovered tree."""

from __future__ import annotations

from collections.abc import Sequence
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
