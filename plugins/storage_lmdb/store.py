"""Durable storage in LMDB: the transaction log, the znode tree, sessions and metadata.

Layout (one environment, or two when ``dataLogDir`` differs from ``dataDir``):

* ``log``: zxid (8 bytes, big-endian) → encoded Txn. A proposal is durable here before
  the server ACKs it.
* ``nodes``: path → node record; ``sessions``: session id → timeout + password;
  ``meta``: format version, ``last_applied`` zxid, epochs.

Group commit: ``append`` writes one batch of proposals, plus the tree changes applied
since the previous batch, in one LMDB write transaction followed by one ``fsync``
(``forceSync=no`` skips it). The tree therefore lags the log by at most one batch; on
start the log tail after ``last_applied`` is applied again (apply is idempotent by zxid),
so a crash at any instant recovers to exactly the acknowledged writes.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

import lmdb

from kernel.api import ACL, DataTree, Node, StorageError, Txn
from kernel.errors import ProtocolError
from kernel.jute import Reader, Writer
from kernel.tree import SessionRecord
from kernel.txn_codec import decode_txn, encode_txn

log = logging.getLogger(__name__)

FORMAT = b"zkernel-lmdb-1"
ENV_DIR = "zkernel-lmdb"
LOCK_FILE = "zkernel.lock"
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


def _zkey(zxid: int) -> bytes:
    return _Z.pack(zxid)


def encode_node(node: Node) -> bytes:
    w = Writer()
    w.buffer(node.data)
    w.int(len(node.acl))
    for a in node.acl:
        w.int(a.perms).ustring(a.scheme).ustring(a.id)
    w.long(node.czxid).long(node.mzxid).long(node.ctime).long(node.mtime)
    w.int(node.version).int(node.c).int(node.aversion).long(node.owner).long(node.pzxid)
    return w.getvalue()


def decode_node(raw: bytes | memoryview, acl_cache: dict[bytes, tuple[ACL, ...]]) -> Node:
    r = Reader(raw, max_len=1 << 30)
    data = r.buffer()
    start = r.pos
    n = r.int()
    acl_list = [ACL(r.int(), r.string(), r.string()) for _ in range(n)]
    key = bytes(raw[start:r.pos])
    acl = acl_cache.get(key)
    if acl is None:
        acl = acl_cache[key] = tuple(acl_list)
    node = Node(data, acl, 0, 0, 0)
    node.czxid, node.mzxid, node.ctime, node.mtime = r.long(), r.long(), r.long(), r.long()
    node.version, node.c, node.aversion = r.int(), r.int(), r.int()
    node.owner, node.pzxid = r.long(), r.long()
    return node


class LmdbStorage:
    """The default storage backend."""

    name = "lmdb"
    blocking = True

    def __init__(self, data_dir: Path, log_dir: Path | None = None, force_sync: bool = True,
                 map_size: int = 1 << 36, retain_txns: int = 100_000) -> None:
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir) if log_dir is not None else self.data_dir
        self.force_sync = force_sync
        self.map_size = map_size
        self.retain_txns = max(0, retain_txns)
        self._lock = threading.Lock()
        self._pending_tree: list[tuple[bytes, bytes | None]] = []
        self._pending_sessions: list[tuple[bytes, bytes | None]] = []
        self._pending_applied = 0
        self._persisted_applied = 0
        self._first_log_zxid = 0
        self._tree: DataTree | None = None
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
            return lmdb.open(str(path), map_size=self.map_size, max_dbs=8, sync=False,
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
        env = self.env
        self.meta = env.open_db(b"meta")
        self.nodes = env.open_db(b"nodes")
        self.sessions_db = env.open_db(b"sessions")
        self.log_db = self.log_env.open_db(b"log")
        self._check_log_identity(separate)
        with env.begin(write=True) as txn:
            fmt = txn.get(b"format", db=self.meta)
            if fmt is None:
                if not fresh and txn.stat(self.nodes)["entries"]:
                    raise StorageError(f"{base}: LMDB environment without a zkernel format "
                                       f"marker; refusing to touch it")
                txn.put(b"format", FORMAT, db=self.meta)
                txn.put(b"last_applied", _zkey(0), db=self.meta)
            elif fmt != FORMAT:
                raise StorageError(f"{base}: unsupported storage format {fmt!r} "
                                   f"(this zkernel reads {FORMAT!r})")
        try:
            tree = self._load_tree()
        except lmdb.Error as e:
            raise StorageError(f"{base}: LMDB reports corruption: {e}") from None
        self._tree = tree
        if tree.dirty:
            # Persist what the replay changed now, before anything newer is logged:
            # last_applied must never cover changes the node records do not hold.
            self.applied([], tree)
            self.append([])
        return tree

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

    def _load_tree(self) -> DataTree:
        assert self.env is not None and self.log_env is not None
        tree = DataTree()
        acl_cache: dict[bytes, tuple[ACL, ...]] = {}
        nodes = tree.nodes
        with self.env.begin(buffers=True) as txn:
            last_applied = _Z.unpack(bytes(txn.get(b"last_applied", db=self.meta)))[0]
            cur = txn.cursor(db=self.nodes)
            try:
                for k, v in cur:
                    nodes[bytes(k).decode("utf-8")] = decode_node(v, acl_cache)
            except (ProtocolError, UnicodeDecodeError, lmdb.Error) as e:
                raise StorageError(f"{self.data_dir}: corrupt node record: {e}") from None
            for k, v in txn.cursor(db=self.sessions_db):
                sid = _Z.unpack(bytes(k))[0]
                sid = sid - (1 << 64) if sid >= 1 << 63 else sid
                vb = bytes(v)
                tree.sessions[sid] = SessionRecord(_SESSION.unpack_from(vb)[0], vb[4:])
        tree.link_root_alias()
        # Derived indexes: children, ephemerals, containers, TTL nodes.
        for path, node in nodes.items():
            if path == "/" or path == "":
                continue
            i = path.rfind("/")
            parent = nodes.get(path[:i] or "/")
            if parent is None:
                raise StorageError(f"{self.data_dir}: node {path} has no parent")
            parent.children.add(path[i + 1:])
            if node.owner:
                if node.is_ephemeral:
                    tree.ephemerals.setdefault(node.owner, set()).add(path)
                elif node.is_container:
                    tree.containers.add(path)
                else:
                    tree.ttls.add(path)
        tree.last_zxid = last_applied
        self._persisted_applied = last_applied
        tree.track_changes()
        # Replay the durable log past the tree (at most one batch after a crash).
        replayed = 0
        with self.log_env.begin(buffers=True) as txn:
            cur = txn.cursor(db=self.log_db)
            if cur.first():
                self._first_log_zxid = _Z.unpack(bytes(cur.key()))[0]
            if cur.set_range(_zkey(last_applied + 1)):
                for _k, v in cur:
                    try:
                        t = decode_txn(v)
                    except ProtocolError as e:
                        raise StorageError(f"{self.log_dir}: corrupt log entry: {e}") from None
                    tree.apply(t)
                    replayed += 1
        log.info("opened %s: %d znodes, %d sessions, last zxid %#x (%d txns replayed)",
                 self.data_dir, len(nodes), len(tree.sessions), tree.last_zxid, replayed)
        return tree

    # -- the write path -----------------------------------------------------------------

    def append(self, txns: Sequence[Txn]) -> None:
        """Worker thread: log the batch and the previous batch's tree changes; fsync."""
        assert self.env is not None and self.log_env is not None
        with self._lock:
            tree_changes, self._pending_tree = self._pending_tree, []
            session_changes, self._pending_sessions = self._pending_sessions, []
            applied = self._pending_applied
        entries = [(_zkey(t.zxid), encode_txn(t)) for t in txns]
        if self.log_env is self.env:
            with self.env.begin(write=True) as w:
                self._write_log(w, entries)
                self._write_tree(w, tree_changes, session_changes, applied)
            if self.force_sync:
                self.env.sync(True)
        else:
            with self.log_env.begin(write=True) as w:
                self._write_log(w, entries)
            if self.force_sync:
                self.log_env.sync(True)
            if tree_changes or session_changes or applied > self._persisted_applied:
                with self.env.begin(write=True) as w:
                    self._write_tree(w, tree_changes, session_changes, applied)

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

    def _write_tree(self, w: lmdb.Transaction, tree_changes: list[tuple[bytes, bytes | None]],
                    session_changes: list[tuple[bytes, bytes | None]], applied: int) -> None:
        for k, v in tree_changes:
            if v is None:
                w.delete(k, db=self.nodes)
            else:
                w.put(k, v, db=self.nodes)
        for k, v in session_changes:
            if v is None:
                w.delete(k, db=self.sessions_db)
            else:
                w.put(k, v, db=self.sessions_db)
        if applied > self._persisted_applied:
            w.put(b"last_applied", _zkey(applied), db=self.meta)
            self._persisted_applied = applied

    def applied(self, txns: Sequence[Txn], tree: DataTree) -> None:
        """Event loop: snapshot the changed records; the next append persists them."""
        dirty = tree.dirty
        changes: list[tuple[bytes, bytes | None]] = []
        if dirty:
            nodes = tree.nodes
            for path in dirty:
                node = nodes.get(path)
                changes.append((path.encode("utf-8"),
                                encode_node(node) if node is not None else None))
            dirty.clear()
        sessions: list[tuple[bytes, bytes | None]] = []
        if tree.dirty_sessions:
            for sid in tree.dirty_sessions:
                rec = tree.sessions.get(sid)
                sessions.append((_zkey(sid & ((1 << 64) - 1)),
                                 _SESSION.pack(rec.timeout) + rec.password
                                 if rec is not None else None))
            tree.dirty_sessions.clear()
        with self._lock:
            self._pending_tree.extend(changes)
            self._pending_sessions.extend(sessions)
            self._pending_applied = tree.last_zxid

    # -- import ---------------------------------------------------------------------------

    def write_imported(self, tree: DataTree) -> None:
        """Write a whole tree (from ``zkernel import-zookeeper``) into a new environment.

        Refuses a data dir that already holds a zkernel environment with data."""
        if (self.data_dir / ENV_DIR / "data.mdb").exists():
            probe = LmdbStorage(self.data_dir, self.log_dir, force_sync=False)
            existing = probe.open()
            count = sum(1 for _ in existing.walk())
            last = existing.last_zxid
            probe.close()
            if count > 4 or last:
                raise StorageError(f"{self.data_dir} already holds a zkernel data directory "
                                   f"({count} znodes, last zxid {last:#x}); refusing to "
                                   f"overwrite it")
        self.open()
        assert self.env is not None
        with self.env.begin(write=True) as w:
            for path, node in tree.walk():
                w.put(path.encode("utf-8"), encode_node(node), db=self.nodes)
            for sid, rec in tree.sessions.items():
                w.put(_zkey(sid & ((1 << 64) - 1)), _SESSION.pack(rec.timeout) + rec.password,
                      db=self.sessions_db)
            w.put(b"last_applied", _zkey(tree.last_zxid), db=self.meta)
        self.env.sync(True)
        self._persisted_applied = tree.last_zxid
        self.close()

    # -- the rest -----------------------------------------------------------------------

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
        if pending:
            self.append([])
        self.env.sync(True)
        if self.log_env is not None and self.log_env is not self.env:
            self.log_env.sync(True)
            self.log_env.close()
        self.env.close()
        self.env = None
        for fd in self._lock_fds:
            os.close(fd)
        self._lock_fds.clear()
