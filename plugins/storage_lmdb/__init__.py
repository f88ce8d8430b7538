"""Durable storage in LMDB (``kernel.storage=lmdb``): log, tree, sessions, metadata.

``dataDir`` holds the environment (``dataDir/zkernel-lmdb``); ``dataLogDir``, when set
to another directory, holds the transaction log in an environment of its own, as
ZooKeeper lets the log live on its own disk. ``forceSync=no`` skips the fsync.
``snapCount`` sets how many recent transactions the log retains for learner sync.
"""

from __future__ import annotations

from typing import Any

from kernel.api import ServerConfig, hookimpl
from kernel.config import ConfigError


@hookimpl
def zk_storage(config: ServerConfig) -> Any:
    """The LMDB backend when ``kernel.storage=lmdb``."""
    if config.storage != "lmdb":
        return None
    from plugins.storage_lmdb.store import LmdbStorage

    if config.data_dir is None:
        raise ConfigError("dataDir is required for kernel.storage=lmdb")
    force = (config.get("forceSync") or "yes").strip().lower() not in ("no", "false", "0")
    retain = int(config.get("snapCount") or 100_000)
    return LmdbStorage(config.data_dir, config.data_log_dir, force_sync=force,
                       retain_txns=retain)
