"""Durable storage in LMDB: the transaction log, the znode tree, sessions and metadata.

Layout (one environment, or two when ``dataLogDir`` differs from ``dataDir``):

* ``log``: zxid (8 bytes, big-endian) → encoded Txn. A proposal is durable here before
  the server ACKs it.
* ``nodes``: path → node record (stat fields, number of children, data, ACL);
  ``children``: parent path + NUL + child name → empty, so a node's children are one
  key range; ``owners``: path → ephemeralOwner of every ephemeral, container and TTL
  node (the indexes the server needs whole, read at open); ``sessions``: session id →
  timeout + password; ``meta``: format version, ``last_applied`` zxid, node count and
  approximate data size, the tree digest at ``last_applied`` (``digest``), log identity.
* Path keys come from ``keys``: a path (or parent + child name) too long for an LMDB
  key (511 bytes) is keyed by a digest, and its record carries the path (the child
  name, in ``children``). This is format 3; format 2 differs only in having no such
  keys (it could not store them), so a format-2 environment is opened as it is and
  its format marker upgraded.

Open reads only the root, the ``owners`` index and the sessions, then applies the
committed log tail past ``last_applied``: nodes are read on first use into a bounded
cache (``nodes.LmdbNodes``), so restart time and memory do not grow with the tree.

Group commit: ``append`` writes one batch of proposals, plus the tree changes applied
since the previous batch, in one LMDB write transaction followed by one ``fsync``
(``forceSync=no`` skips it). The tree therefore lags the log by at most one batch; on
start the log tail after ``last_applied`` is applied again (apply is idempotent by zxid),
so a crash at any instant recovers to exactly the acknowledged writes.

LMDB keeps no checksums, so a clean shutdown leaves a seal (``clean-shutdown``: the data
file's inode, size, mtime and ctime). When the next start finds a seal that no longer
matches, the file was changed while the server was down and every record is checked
before anything is served or written; after a crash (no seal) LMDB's own commit
protocol is trusted and nothing is scanned.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import lmdb

from kernel.api import ACL, DataTree, StorageError, Txn
from kernel.digest import compute_digest, node_digest
from kernel.errors import ProtocolError
from kernel.protocol import OWNER_CONTAINER, OWNER_SESSION, owner_kind
from kernel.tree import SessionRecord
from kernel.txn_codec import decode_txn, encode_txn
from plugins.storage_lmdb.keys import (
    MAX_KEY,
    child_entry,
    iter_entries,
    node_key,
    split_child_entry,
    wrap_value,
)
from plugins.storage_lmdb.nodes import (
    LazyChildren,
    LmdbNodes,
    decode_node,
    encode_node,
)

if TYPE_CHECKING:
    from lmdb import _Database

log = logging.getLogger(__name__)

FORMAT = b"zkernel-lmdb-3"
# Format 3 without its long (digest) keys: read as it is; open() upgrades the marker,
# since from then on a path longer than an LMDB key may be written.
UPGRADABLE_FORMATS = (b"zkernel-lmdb-2",)
# Written by earlier builds: every node loaded at open, no children/owners indexes.
OLD_FORMATS = (b"zkernel-lmdb-1",)
ENV_DIR = "zkernel-lmdb"
LOCK_FILE = "zkernel.lock"
SEAL_FILE = "clean-shutdown"
# About 150 MB of decoded znodes with 100-byte values (~600 bytes each in CPython).
DEFAULT_CACHE_NODES = 250_000
_LMDB_MAGIC = 0xBEEFC0DE


def _check_not_truncated(data_file: Path) -> None:
    """Refuse an LMDB file shorter than the pages its newest meta page says are in use
    (LMDB would fault on them with SIGBUS instead of reporting an error)."""
    try:
        size = data_file.stat().st_size
        with open(data_file, "rb") as f:
            head = f.read(2 * 65536)
    except FileNotFoundError:
        return
    if size == 0:
        raise StorageError(f"{data_file} is empty (truncated?)")
    psize = os.sysconf("SC_PAGE_SIZE")
    best: tuple[int, int] | None = None  # (txnid, last_pg)
    for off in (16, psize + 16):
        meta = head[off:off + 136]
        if len(meta) < 136 or struct.unpack_from("<I", meta, 0)[0] != _LMDB_MAGIC:
            continue
        last_pg, txnid = struct.unpack_from("<QQ", meta, 24 + 96)
        if best is None or txnid > best[0]:
            best = (txnid, last_pg)
    if best is None:
        raise StorageError(f"{data_file} is not an LMDB file (no valid meta page)")
    if size < (best[1] + 1) * psize:
        raise StorageError(f"{data_file} is truncated: {size} bytes, but its last "
                           f"transaction uses {(best[1] + 1) * psize}")
_Z = struct.Struct(">Q")
_SESSION = struct.Struct(">i")
_OWNER = struct.Struct(">q")
_COUNTS = struct.Struct(">qq")  # node count (root alias included), approximate data size
_DIGEST = struct.Struct(">Q")  # kernel.digest's tree digest at last_applied (unsigned)


class SyncSnapshot:
    """A SNAP stream: use as a context manager; iterate ``nodes()`` and ``sessions()``."""

    def __init__(self, env: lmdb.Environment, meta: _Database, nodes_db: _Database,
                 sessions_db: _Database) -> None:
        self._txn = env.begin()
        self._nodes_db = nodes_db
        self._sessions_db = sessions_db
        raw = self._txn.get(b"last_applied", db=meta)
        self.zxid = _Z.unpack(bytes(raw))[0] if raw else 0
        raw = self._txn.get(b"digest", db=meta)
        #: The tree digest at ``zxid`` (None if this environment never stored one).
        self.digest: int | None = _DIGEST.unpack(bytes(raw))[0] if raw else None

    def nodes(self) -> Iterator[tuple[str, bytes]]:
        """(path, encoded node record) for every persisted znode, in key order (paths
        too long for a key first)."""
        try:
            yield from iter_entries(self._txn, self._nodes_db)
        except (ProtocolError, UnicodeDecodeError) as e:
            raise StorageError(f"corrupt node record: {e}") from None

    def sessions(self) -> Iterator[tuple[int, int, bytes]]:
        """(session id, timeout, password) of every persisted session."""
        for k, v in self._txn.cursor(db=self._sessions_db):
            sid = _Z.unpack(bytes(k))[0]
            vb = bytes(v)
            yield (sid - (1 << 64) if sid >= 1 << 63 else sid,
                   _SESSION.unpack_from(vb)[0], vb[4:])

    def close(self) -> None:
        self._txn.abort()

    def __enter__(self) -> SyncSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _zkey(zxid: int) -> bytes:
    return _Z.pack(zxid)


class LmdbStorage:
    """The default storage backend.

    ``cache_nodes`` bounds how many decoded znodes stay in memory (0: no bound); the
    rest of the tree is read from LMDB on demand.
    """

    name = "lmdb"
    blocking = True

    def __init__(self, data_dir: Path, log_dir: Path | None = None, force_sync: bool = True,
                 map_size: int = 1 << 36, retain_txns: int = 100_000,
                 cache_nodes: int = DEFAULT_CACHE_NODES) -> None:
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir) if log_dir is not None else self.data_dir
        self.force_sync = force_sync
        self.map_size = map_size
        self.retain_txns = max(0, retain_txns)
        self.cache_nodes = max(0, cache_nodes)
        self._lock = threading.Lock()
        self._pending_tree: list[tuple[str, bytes | None, bool, int]] = []
        self._pending_sessions: list[tuple[bytes, bytes | None]] = []
        self._pending_applied = 0
        self._pending_gen = 0
        self._pending_counts: bytes | None = None
        self._pending_digest: bytes | None = None
        self._digest_was_stored = True
        # The first write that failed: nothing is written after it (see append).
        self._write_failed: BaseException | None = None
        self._persisted_applied = 0
        self._first_log_zxid = 0
        # Standalone: a logged txn is committed, so open replays the log past the tree.
        # In an ensemble a logged proposal may never commit: Zab decides (False).
        self.replay_log = True
        self._acl_bytes: dict[tuple[ACL, ...], bytes] = {}
        self._nodes: LmdbNodes | None = None
        self.env: lmdb.Environment | None = None
        self.log_env: lmdb.Environment | None = None
        self._lock_fds: list[int] = []

    # -- opening ------------------------------------------------------------------------

    def _lock_dir(self, path: Path) -> None:
        """One server per data directory: an exclusive, non-blocking flock."""
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StorageError(f"{path} is in use by another zkernel process") from None
        self._lock_fds.append(fd)

    def _open_env(self, base: Path, create: bool) -> lmdb.Environment:
        path = base / ENV_DIR
        if not path.exists():
            if not create:
                raise StorageError(f"{path} is missing")
            path.mkdir(parents=True)
        elif not (path / "data.mdb").exists() and any(p.name != LOCK_FILE
                                                       for p in path.iterdir()):
            raise StorageError(f"{path} exists but holds no zkernel LMDB environment")
        self._lock_dir(path)
        _check_not_truncated(path / "data.mdb")
        try:
            # sync=False: we fsync explicitly once per batch (group commit), and only
            # when forceSync is on.
            return lmdb.open(str(path), map_size=self.map_size, max_dbs=16, sync=False,
                             metasync=False, readahead=False, lock=True)
        except lmdb.Error as e:
            raise StorageError(f"cannot open LMDB environment {path}: {e}") from None

    def open(self) -> DataTree:
        base = self.data_dir
        if (base / "version-2").is_dir() and not (base / ENV_DIR).exists():
            raise StorageError(
                f"{base} is an Apache ZooKeeper data directory; import it first with "
                f"`zkernel import-zookeeper {base} --data-dir NEW_DIR`")
        fresh = not (base / ENV_DIR / "data.mdb").exists()
        self.env = self._open_env(base, create=True)
        separate = self.log_dir.resolve() != base.resolve()
        self.log_env = self._open_env(self.log_dir, create=True) if separate else self.env
        # Nothing is written before the seals are checked and the format is known.
        self._check_seal(base, self.env, self._verify_data)
        if separate:
            self._check_seal(self.log_dir, self.log_env, self._verify_log)
        env = self.env
        if env.max_key_size() < MAX_KEY:
            raise StorageError(f"this LMDB library takes keys of {env.max_key_size()} "
                               f"bytes at most; zkernel's storage format needs {MAX_KEY}")
        try:
            initialize, upgrade = self._check_format(fresh)
            self.meta = env.open_db(b"meta")
            self.nodes_db = env.open_db(b"nodes")
            self.children_db = env.open_db(b"children")
            self.owners_db = env.open_db(b"owners")
            self.sessions_db = env.open_db(b"sessions")
            self.log_db = self.log_env.open_db(b"log")
        except lmdb.Error as e:
            raise StorageError(f"{base}: LMDB reports corruption: {e}") from None
        if upgrade is not None:
            # Before anything else is written: an older build must not read long keys.
            with env.begin(write=True) as w:
                w.put(b"format", FORMAT, db=self.meta)
            env.sync(True)
            log.info("%s: storage format %s upgraded to %s (same layout; paths longer "
                     "than %d bytes are now stored)", base, upgrade.decode(),
                     FORMAT.decode(), MAX_KEY)
        self._check_log_identity(separate)
        if initialize:
            with env.begin(write=True) as w:
                w.put(b"format", FORMAT, db=self.meta)
                self._write_full_tree(w, DataTree(), 0)
        try:
            tree = self._load_tree()
        except lmdb.Error as e:
            raise StorageError(f"{base}: LMDB reports corruption: {e}") from None
        if tree.dirty or not self._digest_was_stored:
            # Persist what the replay changed now, before anything newer is logged:
            # last_applied must never cover changes the node records do not hold.
            self.applied([], tree)
            self.append([])
        return tree

    def _check_format(self, fresh: bool) -> tuple[bool, bytes | None]:
        """Refuse a foreign or older environment: (True if it needs initialising, the
        format it is in if open() must upgrade the marker)."""
        assert self.env is not None
        try:
            meta = self.env.open_db(b"meta", create=False)
        except lmdb.NotFoundError:
            meta = None
        fmt = None
        if meta is not None:
            with self.env.begin() as r:
                fmt = r.get(b"format", db=meta)
        if fmt is None:
            if not fresh:
                try:
                    nodes = self.env.open_db(b"nodes", create=False)
                except lmdb.NotFoundError:
                    nodes = None
                if nodes is not None:
                    with self.env.begin() as r:
                        if r.stat(nodes)["entries"]:
                            raise StorageError(
                                f"{self.data_dir}: LMDB environment without a zkernel "
                                f"format marker; refusing to touch it")
            return True, None
        if fmt in OLD_FORMATS:
            raise StorageError(
                f"{self.data_dir}: storage format {fmt.decode()} was written by an earlier "
                f"zkernel build; this build reads {FORMAT.decode()} (nodes are read from "
                f"LMDB on demand and need index tables the old format lacks) and does not "
                f"convert it. Serve it with the build that wrote it, or start from a new "
                f"dataDir (an Apache ZooKeeper data dir can be imported with `zkernel "
                f"import-zookeeper`). Nothing was changed.")
        if fmt in UPGRADABLE_FORMATS:
            return False, bytes(fmt)
        if fmt != FORMAT:
            raise StorageError(f"{self.data_dir}: unsupported storage format {fmt!r} "
                               f"(this zkernel reads {FORMAT!r})")
        return False, None

    def _check_log_identity(self, separate: bool) -> None:
        """The log belongs to this dataDir: refuse a dataLogDir that changed since the
        log was written (starting on a fresh log would drop the unapplied tail)."""
        assert self.env is not None and self.log_env is not None
        log_meta = self.log_env.open_db(b"log_meta")
        dt = self.env.begin(write=True)
        lt = self.log_env.begin(write=True) if separate else dt
        try:
            want = dt.get(b"log_id", db=self.meta)
            have = lt.get(b"log_id", db=log_meta)
            where = dt.get(b"log_dir", db=self.meta)
            if want is None and have is None:
                log_id = os.urandom(16)
                dt.put(b"log_id", log_id, db=self.meta)
                dt.put(b"log_dir", str(self.log_dir.resolve()).encode(), db=self.meta)
                lt.put(b"log_id", log_id, db=log_meta)
            elif want != have:
                old = where.decode() if where else "another directory"
                raise StorageError(
                    f"the transaction log of {self.data_dir} was written in {old}, but "
                    f"dataLogDir now points to {self.log_dir}: restore the old dataLogDir "
                    f"setting (or move that log back) so no acknowledged write is lost")
        except BaseException:
            if lt is not dt:
                lt.abort()
            dt.abort()
            raise
        if lt is not dt:
            lt.commit()
        dt.commit()

    # -- the clean-shutdown seal --------------------------------------------------------

    @staticmethod
    def _seal_of(env_dir: Path) -> str:
        st = os.stat(env_dir / "data.mdb")
        return f"{st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}\n"

    def _write_seal(self, base: Path) -> None:
        env_dir = base / ENV_DIR
        try:
            tmp = env_dir / (SEAL_FILE + ".tmp")
            tmp.write_text(self._seal_of(env_dir))
            os.replace(tmp, env_dir / SEAL_FILE)
        except OSError as e:  # only costs a full check at the next start
            log.warning("cannot write %s: %s", env_dir / SEAL_FILE, e)

    def _check_seal(self, base: Path, env: lmdb.Environment,
                    verify: Callable[[lmdb.Environment], None]) -> None:
        """A data file changed since the clean shutdown that sealed it is checked whole
        (structure and every record) before it is used; the seal goes once it holds."""
        env_dir = base / ENV_DIR
        seal = env_dir / SEAL_FILE
        try:
            sealed = seal.read_text()
        except FileNotFoundError:
            return
        if sealed != self._seal_of(env_dir):
            log.warning("%s changed since the server last stopped; checking every record "
                        "before serving", env_dir / "data.mdb")
            self._verify_structure(env_dir)
            try:
                verify(env)
            except (lmdb.Error, ProtocolError, struct.error, UnicodeError) as e:
                raise StorageError(f"{env_dir / 'data.mdb'} is corrupt: {e}") from None
        seal.unlink()

    @staticmethod
    def _verify_structure(env_dir: Path) -> None:
        try:
            from lmdb.verify import VerifyError, verify  # py-lmdb >= 2: a pure-Python walker
        except ImportError:
            return
        try:
            problems = verify(str(env_dir))
        except (VerifyError, OSError) as e:
            raise StorageError(f"{env_dir / 'data.mdb'} is corrupt: {e}") from None
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise StorageError(f"{env_dir / 'data.mdb'} is corrupt: "
                               f"{'; '.join(problems[:3])}{more}")

    def _verify_data(self, env: lmdb.Environment) -> None:
        """Decode every record of the tree environment (and its log, if it is there)."""
        with env.begin() as r:
            names = {bytes(k) for k in r.cursor().iternext(values=False)}
            acl_cache: dict[bytes, tuple[ACL, ...]] = {}
            digest = 0
            if b"nodes" in names:
                for path, v in iter_entries(r, env.open_db(b"nodes", txn=r, create=False)):
                    digest += node_digest(path, decode_node(v, acl_cache)[0])
            if b"meta" in names:
                raw = r.get(b"digest", db=env.open_db(b"meta", txn=r, create=False))
                # The node records and the digest are written in the same transaction.
                if raw is not None and _DIGEST.unpack(raw)[0] != digest & ((1 << 64) - 1):
                    raise ProtocolError("the tree digest does not match the node records")
            if b"children" in names:
                for k, v in r.cursor(db=env.open_db(b"children", txn=r, create=False)):
                    split_child_entry(k, v)
            if b"owners" in names:
                for _path, v in iter_entries(r, env.open_db(b"owners", txn=r,
                                                            create=False)):
                    _OWNER.unpack(v)
            if b"sessions" in names:
                for _k, v in r.cursor(db=env.open_db(b"sessions", txn=r, create=False)):
                    _SESSION.unpack_from(v)
        self._verify_log(env)

    @staticmethod
    def _verify_log(env: lmdb.Environment) -> None:
        with env.begin() as r:
            names = {bytes(k) for k in r.cursor().iternext(values=False)}
            if b"log" in names:
                for _k, v in r.cursor(db=env.open_db(b"log", txn=r, create=False)):
                    decode_txn(v)

    # -- loading ------------------------------------------------------------------------

    def _load_tree(self) -> DataTree:
        """The persisted tree plus the log tail. ``_digest_was_stored`` tells whether
        the tree digest came from ``meta`` (else it was computed from the records)."""
        assert self.env is not None and self.log_env is not None
        with self.env.begin() as txn:
            last_applied = _Z.unpack(txn.get(b"last_applied", db=self.meta))[0]
            count, data_size = _COUNTS.unpack(txn.get(b"counts", db=self.meta))
            raw_digest = txn.get(b"digest", db=self.meta)
            self._digest_was_stored = raw_digest is not None
            if raw_digest is not None:
                digest = _DIGEST.unpack(raw_digest)[0]
            else:
                # Written by a build that kept no digest: one pass over the records,
                # bypassing the node cache; open() stores the result.
                digest = self._scan_digest(txn)
            raw_root = txn.get(node_key("/"), db=self.nodes_db)
            if raw_root is None:
                raise StorageError(f"{self.data_dir}: the root node record is missing")
            try:
                root, nch = decode_node(raw_root, {})
            except (ProtocolError, struct.error) as e:
                raise StorageError(f"{self.data_dir}: corrupt root record: {e}") from None
            nodes = LmdbNodes(self.env, self.nodes_db, self.children_db, root, count,
                              self.cache_nodes)
            root.children = LazyChildren(nodes, "/", nch)
            tree = DataTree(nodes, data_size, digest)
            for k, v in txn.cursor(db=self.sessions_db):
                sid = _Z.unpack(k)[0]
                sid = sid - (1 << 64) if sid >= 1 << 63 else sid
                tree.sessions[sid] = SessionRecord(_SESSION.unpack_from(v)[0], v[4:])
            # The indexes the server needs whole: ephemerals per session, containers and
            # TTL nodes (for the reaper). Small next to the tree.
            try:
                for path, v in iter_entries(txn, self.owners_db):
                    owner = _OWNER.unpack(v)[0]
                    kind = owner_kind(owner)
                    if kind == OWNER_SESSION:
                        tree.ephemerals.setdefault(owner, set()).add(path)
                    elif kind == OWNER_CONTAINER:
                        tree.containers.add(path)
                    else:
                        tree.ttls.add(path)
            except (UnicodeDecodeError, struct.error, ProtocolError) as e:
                raise StorageError(f"{self.data_dir}: corrupt owners index: {e}") from None
        tree.last_zxid = last_applied
        self._persisted_applied = last_applied
        tree.track_changes()
        nodes.attach(tree)
        self._nodes = nodes
        # Replay the durable log past the tree (at most one batch after a crash).
        replayed = 0
        with self.log_env.begin(buffers=True) as txn:
            cur = txn.cursor(db=self.log_db)
            if cur.first():
                self._first_log_zxid = _Z.unpack(bytes(cur.key()))[0]
            if self.replay_log and cur.set_range(_zkey(last_applied + 1)):
                for _k, v in cur:
                    try:
                        t = decode_txn(v)
                    except ProtocolError as e:
                        raise StorageError(f"{self.log_dir}: corrupt log entry: {e}") from None
                    tree.apply(t)
                    replayed += 1
        log.info("opened %s: %d znodes, %d sessions, last zxid %#x (%d txns replayed)",
                 self.data_dir, tree.node_count() - 1, len(tree.sessions), tree.last_zxid,
                 replayed)
        return tree

    def _scan_digest(self, txn: lmdb.Transaction) -> int:
        acl_cache: dict[bytes, tuple[ACL, ...]] = {}
        digest = 0
        try:
            for path, v in iter_entries(txn, self.nodes_db):
                digest += node_digest(path, decode_node(v, acl_cache)[0])
        except (ProtocolError, struct.error, UnicodeDecodeError) as e:
            raise StorageError(f"{self.data_dir}: corrupt node record: {e}") from None
        return digest & ((1 << 64) - 1)

    # -- the write path -----------------------------------------------------------------

    def append(self, txns: Sequence[Txn]) -> None:
        """Worker thread: log the batch and the previous batch's tree changes; fsync."""
        assert self.env is not None and self.log_env is not None
        if self._write_failed is not None:
            raise StorageError(f"{self.data_dir}: no more writes after a failed one "
                               f"({self._write_failed!r}); restart to recover from the log")
        try:
            self._append(txns)
        except BaseException as e:
            # The tree changes taken for the failed transaction are gone from memory:
            # anything committed after them (a newer last_applied, at close) would claim
            # changes LMDB does not hold. Stop writing; the next open applies the log
            # past the last_applied that LMDB really has.
            self._write_failed = e
            raise

    def _append(self, txns: Sequence[Txn]) -> None:
        assert self.env is not None and self.log_env is not None
        with self._lock:
            tree_changes, self._pending_tree = self._pending_tree, []
            session_changes, self._pending_sessions = self._pending_sessions, []
            applied = self._pending_applied
            gen = self._pending_gen
            counts, self._pending_counts = self._pending_counts, None
            digest, self._pending_digest = self._pending_digest, None
        entries = [(_zkey(t.zxid), encode_txn(t)) for t in txns]
        if self.log_env is self.env:
            with self.env.begin(write=True) as w:
                self._write_log(w, entries)
                self._write_tree(w, tree_changes, session_changes, applied, counts, digest)
            self._committed(gen)
            if self.force_sync:
                self.env.sync(True)
        else:
            with self.log_env.begin(write=True) as w:
                self._write_log(w, entries)
            if self.force_sync:
                self.log_env.sync(True)
            if (tree_changes or session_changes or digest is not None
                    or applied > self._persisted_applied):
                with self.env.begin(write=True) as w:
                    self._write_tree(w, tree_changes, session_changes, applied, counts,
                                     digest)
            self._committed(gen)

    def _committed(self, gen: int) -> None:
        # Committed (visible to new read transactions): the cache may now drop these
        # nodes and read them back from LMDB.
        if self._nodes is not None:
            self._nodes.committed(gen)

    def _write_log(self, w: lmdb.Transaction, entries: list[tuple[bytes, bytes]]) -> None:
        put = w.put
        db = self.log_db
        for k, v in entries:
            if not put(k, v, db=db, append=True):
                raise StorageError(f"log entry {k.hex()} is not after the log's last "
                                   f"entry: the log was changed by someone else")
        if self._first_log_zxid == 0 and entries:
            self._first_log_zxid = _Z.unpack(entries[0][0])[0]
        # Retention (the role of snapCount/autopurge): keep the newest retain_txns
        # entries for learner DIFF sync; purge a bounded number per batch.
        if self.retain_txns and self._persisted_applied - self._first_log_zxid > \
                self.retain_txns + 1000:
            cur = w.cursor(db=db)
            limit = self._persisted_applied - self.retain_txns
            n = 0
            if cur.first():
                while n < 2000 and _Z.unpack(cur.key())[0] < limit:
                    if not cur.delete():
                        break
                    n += 1
            self._first_log_zxid = _Z.unpack(cur.key())[0] if cur.key() else limit

    def _write_tree(self, w: lmdb.Transaction,
                    tree_changes: list[tuple[str, bytes | None, bool, int]],
                    session_changes: list[tuple[bytes, bytes | None]], applied: int,
                    counts: bytes | None, digest: bytes | None = None) -> None:
        nodes, children, owners = self.nodes_db, self.children_db, self.owners_db
        put, delete = w.put, w.delete
        for path, v, created, owner in tree_changes:
            k = node_key(path)
            if v is None:
                delete(k, db=nodes)
                delete(child_entry(path)[0], db=children)
                delete(k, db=owners)
            else:
                put(k, wrap_value(k, path, v), db=nodes)
                if created:
                    # The indexes change only when a node appears (a path deleted and
                    # created again may have had another owner).
                    if path != "/":
                        ck, cv = child_entry(path)
                        put(ck, cv, db=children)
                    if owner:
                        put(k, wrap_value(k, path, _OWNER.pack(owner)), db=owners)
                    else:
                        delete(k, db=owners)
        for k, sv in session_changes:
            if sv is None:
                delete(k, db=self.sessions_db)
            else:
                put(k, sv, db=self.sessions_db)
        if counts is not None:
            put(b"counts", counts, db=self.meta)
        if digest is not None:
            put(b"digest", digest, db=self.meta)
        if applied > self._persisted_applied:
            put(b"last_applied", _zkey(applied), db=self.meta)
            self._persisted_applied = applied

    def applied(self, txns: Sequence[Txn], tree: DataTree) -> None:
        """Event loop: snapshot the changed records; the next append persists them."""
        assert self._nodes is not None
        gen, changes = self._nodes.take_changes(self._acl_bytes)
        sessions: list[tuple[bytes, bytes | None]] = []
        if tree.dirty_sessions:
            for sid in tree.dirty_sessions:
                rec = tree.sessions.get(sid)
                sessions.append((_zkey(sid & ((1 << 64) - 1)),
                                 _SESSION.pack(rec.timeout) + rec.password
                                 if rec is not None else None))
            tree.dirty_sessions.clear()
        counts = _COUNTS.pack(tree.node_count(), tree.approximate_data_size())
        digest = _DIGEST.pack(tree.digest)
        with self._lock:
            self._pending_tree.extend(changes)
            self._pending_sessions.extend(sessions)
            self._pending_applied = tree.last_zxid
            self._pending_gen = gen
            self._pending_counts = counts
            self._pending_digest = digest

    # -- whole trees ----------------------------------------------------------------------

    def _write_full_tree(self, w: lmdb.Transaction, tree: DataTree, last_zxid: int) -> None:
        """Replace the tree, sessions and counters with ``tree`` (a plain, dict-backed
        DataTree) in the write transaction ``w``."""
        for db in (self.nodes_db, self.children_db, self.owners_db, self.sessions_db):
            w.drop(db, delete=False)
        acl_bytes: dict[tuple[ACL, ...], bytes] = {}
        count = 1  # the root alias ""
        size = 0
        root = tree.nodes["/"]
        size += len(root.data) if root.data else 0  # counted under the alias too
        put = w.put
        # In key order: LMDB appends to the last page instead of searching the B-tree.
        for k, path in sorted((node_key(p), p) for p, _ in tree.walk()):
            node = tree.nodes[path]
            put(k, wrap_value(k, path, encode_node(node, acl_bytes)), db=self.nodes_db)
            if path != "/":
                ck, cv = child_entry(path)
                put(ck, cv, db=self.children_db)
            if node.owner:
                put(k, wrap_value(k, path, _OWNER.pack(node.owner)), db=self.owners_db)
            count += 1
            size += len(path) + (len(node.data) if node.data else 0)
        for sid, rec in tree.sessions.items():
            put(_zkey(sid & ((1 << 64) - 1)), _SESSION.pack(rec.timeout) + rec.password,
                db=self.sessions_db)
        put(b"counts", _COUNTS.pack(count, size), db=self.meta)
        put(b"digest", _DIGEST.pack(compute_digest(tree)), db=self.meta)
        put(b"last_applied", _zkey(last_zxid), db=self.meta)

    def write_imported(self, tree: DataTree) -> None:
        """Write a whole tree (from ``zkernel import-zookeeper``) into a new environment.

        Refuses a data dir that already holds a zkernel environment with data."""
        if (self.data_dir / ENV_DIR / "data.mdb").exists():
            probe = LmdbStorage(self.data_dir, self.log_dir, force_sync=False)
            existing = probe.open()
            count = existing.node_count() - 1
            last = existing.last_zxid
            probe.close()
            if count > 4 or last:
                raise StorageError(f"{self.data_dir} already holds a zkernel data directory "
                                   f"({count} znodes, last zxid {last:#x}); refusing to "
                                   f"overwrite it")
        self.open()
        assert self.env is not None
        with self.env.begin(write=True) as w:
            self._write_full_tree(w, tree, tree.last_zxid)
        self.env.sync(True)
        self._persisted_applied = tree.last_zxid
        self.close()

    # -- the rest -----------------------------------------------------------------------

    # -- Zab epochs -----------------------------------------------------------------------

    def epochs(self) -> tuple[int, int]:
        """(acceptedEpoch, currentEpoch) as last stored; (0, 0) on a new data dir."""
        assert self.env is not None
        with self.env.begin() as r:
            a = r.get(b"accepted_epoch", db=self.meta)
            c = r.get(b"current_epoch", db=self.meta)
        return (_Z.unpack(a)[0] if a else 0, _Z.unpack(c)[0] if c else 0)

    def set_epochs(self, accepted: int, current: int) -> None:
        """Store both epochs durably before returning (Zab requires it before it
        acknowledges a new epoch)."""
        assert self.env is not None
        with self.env.begin(write=True) as w:
            w.put(b"accepted_epoch", _zkey(accepted), db=self.meta)
            w.put(b"current_epoch", _zkey(current), db=self.meta)
        self.env.sync(True)

    # -- learner sync streams (for the ensemble) ----------------------------------------

    def install_snapshot(self, tree: DataTree) -> DataTree:
        """Replace the tree, the sessions and the log with ``tree`` (a snapshot from the
        leader, dict-backed); returns the tree as this storage serves it from now on."""
        assert self.env is not None and self.log_env is not None
        with self._lock:
            self._pending_tree = []
            self._pending_sessions = []
            self._pending_counts = None
            self._pending_digest = None
            self._pending_applied = 0
        if self._nodes is not None:
            self._nodes.release()
            self._nodes = None
        with self.log_env.begin(write=True) as w:
            w.drop(self.log_db, delete=False)
        with self.env.begin(write=True) as w:
            self._write_full_tree(w, tree, tree.last_zxid)
        self.log_env.sync(True)
        self.env.sync(True)
        self._persisted_applied = tree.last_zxid
        self._first_log_zxid = 0
        return self._load_tree()

    def sync_snapshot(self) -> SyncSnapshot:
        """A consistent read of the whole persisted tree (SNAP): the node records, the
        sessions and the zxid they reflect, all from one LMDB read transaction. Stream
        ``log_since(snapshot.zxid)`` after it to reach the newest state (DIFF)."""
        assert self.env is not None
        return SyncSnapshot(self.env, self.meta, self.nodes_db, self.sessions_db)

    def log_since(self, zxid: int) -> Iterator[Txn]:
        """The logged transactions after ``zxid``, in order (DIFF). Raises StorageError
        when the log no longer reaches back to ``zxid`` (the learner needs a SNAP)."""
        assert self.log_env is not None
        with self.log_env.begin(buffers=True) as txn:
            cur = txn.cursor(db=self.log_db)
            if cur.first():
                first = _Z.unpack(bytes(cur.key()))[0]
                if zxid + 1 < first:
                    raise StorageError(f"log starts at {first:#x}; cannot DIFF from "
                                       f"{zxid:#x}")
            if not cur.set_range(_zkey(zxid + 1)):
                return
            for _k, v in cur:
                yield decode_txn(v)

    def recent_log(self, limit: int) -> tuple[int, list[Txn]]:
        """The newest ``limit`` logged transactions (oldest first) and the zxid of the
        entry just before them (the history a restarted leader can DIFF from)."""
        assert self.log_env is not None
        keys: list[bytes] = []
        base = -1
        with self.log_env.begin() as txn:
            cur = txn.cursor(db=self.log_db)
            if cur.last():
                keys.append(cur.key())
                while len(keys) < limit and cur.prev():
                    keys.append(cur.key())
                if len(keys) == limit and cur.prev():
                    base = _Z.unpack(cur.key())[0]
            entries = [decode_txn(txn.get(k, db=self.log_db)) for k in reversed(keys)]
        if base < 0:
            if not entries:
                return self._persisted_applied, []
            # Nothing before the oldest entry: it starts the history.
            base = entries[0].zxid
            entries = entries[1:]
        return base, entries

    def truncate_log(self, zxid: int) -> int:
        """Drop logged proposals after ``zxid`` (TRUNC); returns how many. Applied
        transactions cannot be truncated: that raises StorageError."""
        assert self.log_env is not None
        if zxid < self._persisted_applied:
            raise StorageError(f"cannot truncate to {zxid:#x}: transactions up to "
                               f"{self._persisted_applied:#x} are applied")
        n = 0
        with self.log_env.begin(write=True) as w:
            cur = w.cursor(db=self.log_db)
            if cur.set_range(_zkey(zxid + 1)):
                while cur.key() and cur.delete():
                    n += 1
        if self.force_sync:
            self.log_env.sync(True)
        return n

    def size_bytes(self) -> tuple[int, int]:
        def size(p: Path) -> int:
            try:
                return sum(f.stat().st_size for f in (p / ENV_DIR).iterdir())
            except OSError:
                return 0
        return size(self.data_dir), size(self.log_dir)

    def locations(self) -> tuple[str, str]:
        return str(self.data_dir / ENV_DIR), str(self.log_dir / ENV_DIR)

    def close(self) -> None:
        if self.env is None:
            return
        with self._lock:
            pending = bool(self._pending_tree or self._pending_sessions or
                           self._pending_applied > self._persisted_applied)
        if pending and self._write_failed is None:
            self.append([])
        if self._nodes is not None:
            self._nodes.release()
        self.env.sync(True)
        separate = self.log_env is not None and self.log_env is not self.env
        if self.log_env is not None and separate:
            self.log_env.sync(True)
            self.log_env.close()
        self.env.close()
        self.env = None
        # Sealed only now that nothing writes to the files any more.
        self._write_seal(self.data_dir)
        if separate:
            self._write_seal(self.log_dir)
        for fd in self._lock_fds:
            os.close(fd)
        self._lock_fds.clear()
