"""Durable storage in LMDB (``kernel.storage=lmdb``): log, tree, sessions, metadata.

``dataDir`` holds the environment (``dataDir/zkernel-lmdb``); ``dataLogDir``, when set
to another directory, holds the transaction log in an environment of its own, as
ZooKeeper lets the log live on its own disk. ``forceSync=no`` skips the fsync.
``snapCount`` sets how many recent transactions the log retains for learner sync;
retention runs continuously (each batch purges a bounded number of older entries), so
``autopurge.snapRetainCount`` and ``autopurge.purgeInterval`` are accepted and have
nothing left to do: there are no snapshot files to keep or purge (the tree is updated
in place), and freed LMDB pages are reused, so disk use stays bounded under churn.

For learner sync the store offers ``sync_snapshot()`` (SNAP: one consistent read
transaction over the persisted tree and sessions, with the zxid it reflects),
``log_since(zxid)`` (DIFF) and ``truncate_log(zxid)`` (TRUNC), and keeps Zab's
``acceptedEpoch`` / ``currentEpoch`` durably (``epochs()``, ``set_epochs()``).

The tree is not loaded at start: znodes are read from LMDB on first use and kept in a
cache of at most ``kernel.lmdb.cacheNodes`` znodes (default 250,000; 0 = no limit).
Beyond it the oldest clean znodes are dropped (never one whose latest state is not yet
committed to LMDB) and read back when used again (a few microseconds). Restart time
does not depend on the tree's size; the server's own memory is about cacheNodes x
(600 bytes + the data size), plus LMDB's memory-mapped pages (file-backed page cache).

Paths of any length ZooKeeper accepts are stored: one longer than an LMDB key (511
bytes) is keyed by its digest, with the path kept in the record (``keys``; storage
format ``zkernel-lmdb-3``, which opens and upgrades a ``zkernel-lmdb-2`` environment).
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
    from plugins.storage_lmdb.store import DEFAULT_CACHE_NODES, LmdbStorage

    if config.data_dir is None:
        raise ConfigError("dataDir is required for kernel.storage=lmdb")
    force = (config.get("forceSync") or "yes").strip().lower() not in ("no", "false", "0")
    retain = int(config.get("snapCount") or 100_000)
    raw = (config.get("kernel.lmdb.cacheNodes") or "").strip()
    try:
        cache = int(raw) if raw else DEFAULT_CACHE_NODES
    except ValueError:
        raise ConfigError(
            f"kernel.lmdb.cacheNodes must be a number of znodes, not {raw!r}") from None
    if cache < 0:
        raise ConfigError("kernel.lmdb.cacheNodes must be >= 0 (0: no limit)")
    return LmdbStorage(config.data_dir, config.data_log_dir, force_sync=force,
                       retain_txns=retain, cache_nodes=cache)


class ImportZooKeeperCommand:
    """``zkernel import-zookeeper SOURCE --data-dir TARGET``."""

    name = "import-zookeeper"
    help = ("read an Apache ZooKeeper 3.x data directory (latest valid snapshot + the "
            "transaction logs after it, CRC-checked) into a new zkernel data directory")

    def configure(self, parser: Any) -> None:
        parser.add_argument("source", help="ZooKeeper dataDir (or its version-2 directory)")
        parser.add_argument("--data-log-dir", help="ZooKeeper dataLogDir, if separate")
        parser.add_argument("--data-dir", required=True,
                            help="zkernel dataDir to create (must not hold data yet)")

    def run(self, args: Any) -> int:
        import sys
        from pathlib import Path

        from plugins.storage_lmdb.store import LmdbStorage, StorageError
        from plugins.storage_lmdb.zk_import import ZooKeeperDataError, read_zookeeper_datadir

        try:
            result = read_zookeeper_datadir(
                Path(args.source), Path(args.data_log_dir) if args.data_log_dir else None)
            LmdbStorage(Path(args.data_dir)).write_imported(result.tree)
        except (ZooKeeperDataError, StorageError, OSError) as e:
            print(f"zkernel import-zookeeper: {e}", file=sys.stderr)
            return 1
        print(f"imported {result.znode_count} znodes and {result.session_count} sessions "
              f"up to zxid {result.last_zxid:#x} into {args.data_dir}")
        return 0


@hookimpl
def zk_cli_commands() -> list[Any]:
    """The ZooKeeper data-directory importer."""
    return [ImportZooKeeperCommand()]
