"""In-memory storage: no disk, nothing survives a restart (tests, ephemeral deployments).

Select it with ``kernel.storage=memory`` in zoo.cfg.
"""

from __future__ import annotations

from collections.abc import Sequence

from kernel.api import DataTree, ServerConfig, Txn, hookimpl


class MemoryStorage:
    """A storage backend whose log is discarded: durable as soon as it is written."""

    name = "memory"
    blocking = False

    def open(self) -> DataTree:
        return DataTree()

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
