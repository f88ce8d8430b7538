"""In-memory storage: no disk, nothing survives a restart (tests, ephemeral deployments).

Select it with ``kernel.storage=memory`` in zoo.cfg.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from kernel.api import DataTree, ServerConfig, Txn, hookimpl


class MemoryStorage:
    """A storage backend whose log is discarded: durable as soon as it is written."""

    name = "memory"
    blocking = False

    def __init__(self) -> None:
        self.replay_log = True
        self._epochs = (0, 0)

    def open(self) -> DataTree:
        return DataTree()

    # In an ensemble: nothing here survives a restart, so a restarted memory server
    # rejoins empty and is brought up to date by a snapshot from the leader.

    def epochs(self) -> tuple[int, int]:
        return self._epochs

    def set_epochs(self, accepted: int, current: int) -> None:
        self._epochs = (accepted, current)

    def log_since(self, zxid: int) -> Iterator[Txn]:
        return iter(())

    def truncate_log(self, zxid: int) -> int:
        return 0

    def install_snapshot(self, tree: DataTree) -> DataTree:
        return tree

    def append(self, txns: Sequence[Txn]) -> None:
        return None

    def applied(self, txns: Sequence[Txn], tree: DataTree) -> None:
        return None

    def size_bytes(self) -> tuple[int, int]:
        return 0, 0

    def locations(self) -> tuple[str, str]:
        return "", ""

    def close(self) -> None:
        return None


@hookimpl
def zk_storage(config: ServerConfig) -> MemoryStorage | None:
    """Provide the memory backend when ``kernel.storage=memory``."""
    if config.storage == "memory":
        return MemoryStorage()
    return None
