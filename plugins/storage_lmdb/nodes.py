"""The znode tree read lazily from LMDB: a bounded cache in front of the ``nodes`` DB.

``LmdbNodes`` is the ``NodeStore`` the LMDB backend gives its ``DataTree``. A lookup
that misses the cache reads the node record in a read transaction and keeps the decoded
``Node``; a node's children are listed from the ``children`` DB only when someone
iterates them (the record carries their number, so a Stat needs no names). When the
cache grows past its limit, the oldest clean nodes are dropped: never one whose path is
dirty in the tree, nor one whose latest state the store has not committed to LMDB yet
(tracked per path by the generation of the ``applied`` snapshot that carried it).

Keys come from ``keys`` (a path too long for an LMDB key is stored under a digest with
the path in the record); this module reads paths and child names back through it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, MutableSet
from typing import TYPE_CHECKING

import lmdb

from kernel.api import ACL, Node, NodeStore, StorageError
from kernel.errors import ProtocolError
from kernel.jute import Reader, Writer
from plugins.storage_lmdb.keys import (
    child_name,
    child_prefixes,
    descendants_prefix,
    iter_long_paths,
    iter_paths,
    node_key,
    unwrap_value,
)

if TYPE_CHECKING:
    from lmdb import _Database

    from kernel.api import DataTree

# czxid mzxid ctime mtime | version c aversion | owner pzxid | numChildren, data length
# (-1: null), ACL block length; then the data, then the ACL block (Jute: count, entries).
_HEAD = struct.Struct(">qqqqiiiqqiiI")
_HEAD_SIZE = _HEAD.size
_new_node = Node.__new__

# Unloaded children sets remember at most this many adds/removes before they load.
_MAX_DELTA = 4096


def encode_acl(acl: tuple[ACL, ...]) -> bytes:
    w = Writer()
    w.int(len(acl))
    for a in acl:
        w.int(a.perms).ustring(a.scheme).ustring(a.id)
    return w.getvalue()


def encode_node(node: Node, acl_bytes: dict[tuple[ACL, ...], bytes]) -> bytes:
    """The node record; ``acl_bytes`` caches ACL encodings (ACL tuples are shared)."""
    acl = acl_bytes.get(node.acl)
    if acl is None:
        acl = acl_bytes[node.acl] = encode_acl(node.acl)
    data = node.data
    head = _HEAD.pack(node.czxid, node.mzxid, node.ctime, node.mtime, node.version, node.c,
                      node.aversion, node.owner, node.pzxid, len(node.children),
                      -1 if data is None else len(data), len(acl))
    return b"".join((head, data or b"", acl))


def decode_acl(raw: bytes) -> tuple[ACL, ...]:
    r = Reader(raw)
    acl = tuple(ACL(r.int(), r.string(), r.string()) for _ in range(r.int()))
    if r.remaining():
        raise ProtocolError("trailing bytes after the ACL")
    return acl


def decode_node(raw: bytes, acl_cache: dict[bytes, tuple[ACL, ...]]) -> tuple[Node, int]:
    """(node without children, its number of children). Raises ProtocolError or
    struct.error on a malformed record."""
    (czxid, mzxid, ctime, mtime, version, c, aversion, owner, pzxid, nch, dlen,
     alen) = _HEAD.unpack_from(raw)
    pos = _HEAD_SIZE
    if dlen < 0:
        data = None
    else:
        data = raw[pos:pos + dlen]
        pos += dlen
    ab = raw[pos:]
    if len(ab) != alen or nch < 0:
        raise ProtocolError(f"malformed node record ({len(raw)} bytes)")
    acl = acl_cache.get(ab)
    if acl is None:
        acl = acl_cache[ab] = decode_acl(ab)
    node = _new_node(Node)
    node.data = data
    node.acl = acl
    node.czxid = czxid
    node.mzxid = mzxid
    node.ctime = ctime
    node.mtime = mtime
    node.version = version
    node.c = c
    node.aversion = aversion
    node.owner = owner
    node.pzxid = pzxid
    node._stat = None
    return node, nch


class LazyChildren(MutableSet[str]):
    """A node's child names, listed from LMDB on first iteration or membership test.

    Until then it holds only the count and the names added or removed since the node
    was read (the tree adds only absent names and removes only present ones, so the
    count stays exact without the names)."""

    __slots__ = ("_store", "_path", "_n", "_names", "_delta")

    def __init__(self, store: LmdbNodes, path: str, n: int) -> None:
        self._store = store
        self._path = path
        self._n = n
        self._names: set[str] | None = None
        self._delta: dict[str, bool] | None = None

    def _load(self) -> set[str]:
        names = self._names
        if names is None:
            # The count is exact, so a leaf needs no look into LMDB.
            names = self._store.child_names(self._path) if self._n else set()
            if self._delta:
                for name, present in self._delta.items():
                    if present:
                        names.add(name)
                    else:
                        names.discard(name)
            self._delta = None
            self._names = names
            self._n = len(names)
        return names

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def add(self, name: str) -> None:
        names = self._names
        if names is not None:
            if name not in names:
                names.add(name)
                self._n += 1
            return
        if self._n == 0:
            self._names = {name}
            self._n = 1
            self._delta = None
            return
        delta = self._delta
        if delta is None:
            delta = self._delta = {}
        delta[name] = True
        self._n += 1
        if len(delta) > _MAX_DELTA:
            self._load()

    def discard(self, name: str) -> None:
        names = self._names
        if names is not None:
            if name in names:
                names.discard(name)
                self._n -= 1
            return
        delta = self._delta
        if delta is None:
            delta = self._delta = {}
        delta[name] = False
        self._n -= 1
        if len(delta) > _MAX_DELTA:
            self._load()

    def __repr__(self) -> str:
        return f"LazyChildren({self._path!r}, n={self._n}, loaded={self._names is not None})"


class LmdbNodes(NodeStore):
    """The tree's nodes: a cache of decoded nodes over the ``nodes``/``children`` DBs.

    Used from the event loop only, except ``committed`` (called by the writer thread).
    ``capacity`` bounds the cached nodes (0: unbounded); the root is always cached.
    """

    def __init__(self, env: lmdb.Environment, nodes_db: _Database, children_db: _Database,
                 root: Node, count: int, capacity: int) -> None:
        self._env = env
        self._db = nodes_db
        self._children_db = children_db
        self._acl_cache: dict[bytes, tuple[ACL, ...]] = {}
        self._cache: dict[str, Node] = {"/": root, "": root}
        self._count = count
        self.capacity = capacity
        # Paths inserted since the last snapshot (their children/owner index entries
        # must be written), and per path the generation of the newest snapshot that
        # carried it and is not known to be committed yet.
        self._created: set[str] = set()
        self._deleted: set[str] = set()
        self._unsaved: dict[str, int] = {}
        self._gen = 0
        self._committed_gen = 0
        self._dirty: set[str] = set()
        # One read transaction serves lookups until a commit makes it stale (renewing per
        # batch bounds how long it pins old pages, so LMDB can reuse freed ones).
        self._rtxn: lmdb.Transaction | None = None
        self._rtxn_gen = -1
        self.loads = 0
        self.evictions = 0

    def attach(self, tree: DataTree) -> None:
        """Follow ``tree.dirty`` (call after ``tree.track_changes()``)."""
        assert tree.dirty is not None
        self._dirty = tree.dirty

    # -- lookups ---------------------------------------------------------------------

    def get(self, path: str, default: Node | None = None) -> Node | None:  # type: ignore[override]
        node = self._cache.get(path)
        if node is not None:
            return node
        node = self._load(path)
        return default if node is None else node

    def __getitem__(self, path: str) -> Node:
        node = self.get(path)
        if node is None:
            raise KeyError(path)
        return node

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self.get(path) is not None

    def __len__(self) -> int:
        return self._count

    def _txn(self) -> lmdb.Transaction:
        txn = self._rtxn
        gen = self._committed_gen
        if txn is None or self._rtxn_gen != gen:
            if txn is not None:
                txn.abort()
            txn = self._rtxn = self._env.begin()
            self._rtxn_gen = gen
        return txn

    def release(self) -> None:
        """End the read transaction (so it does not pin pages LMDB could reuse)."""
        if self._rtxn is not None:
            self._rtxn.abort()
            self._rtxn = None

    def _pending(self, path: str) -> bool:
        """LMDB does not hold the latest state of ``path`` yet: keep its node cached."""
        if path in self._dirty:
            return True
        g = self._unsaved.get(path)
        return g is not None and g > self._committed_gen

    def _gone(self, path: str) -> bool:
        """``path`` was deleted and LMDB does not know yet (an unsaved path that still
        exists is always cached, so one that is not cached is deleted)."""
        if path in self._deleted:
            return True
        g = self._unsaved.get(path)
        return g is not None and g > self._committed_gen

    def _load(self, path: str) -> Node | None:
        if self._gone(path):
            return None
        try:
            key = node_key(path)
            raw = self._txn().get(key, db=self._db)
            if raw is None:
                return None
            stored, record = unwrap_value(key, bytes(raw))
            if stored != path:
                raise ProtocolError(f"the record holds {stored[:80]!r}")
            node, nch = decode_node(record, self._acl_cache)
        except (ProtocolError, struct.error, UnicodeError, lmdb.Error) as e:
            raise StorageError(f"corrupt node record for {path!r}: {e}") from None
        node.children = LazyChildren(self, path, nch)
        cache = self._cache
        cache[path] = node
        self.loads += 1
        if self.capacity and len(cache) > self.capacity:
            self._evict(path)
        return node

    def child_names(self, path: str) -> set[str]:
        """The children of ``path`` as committed to LMDB (both key forms, in every group
        of ``path``: see ``keys``)."""
        out: set[str] = set()
        cur = self._txn().cursor(db=self._children_db)
        try:
            for prefix in child_prefixes(path):
                n = len(prefix)
                if not cur.set_range(prefix):
                    continue
                for k, v in cur:
                    if not k.startswith(prefix):
                        break
                    out.add(child_name(bytes(k[n:]), bytes(v)))
        except (ProtocolError, UnicodeError) as e:
            raise StorageError(f"corrupt children index under {path!r}: {e}") from None
        return out

    # -- changes -----------------------------------------------------------------------

    def __setitem__(self, path: str, node: Node) -> None:
        """Create ``path`` (the tree has checked that it does not exist)."""
        cache = self._cache
        if path == "":
            cache[""] = node  # the root alias, never stored on its own
            return
        if path not in cache:
            self._count += 1
        cache[path] = node
        self._created.add(path)
        self._deleted.discard(path)
        if self.capacity and len(cache) > self.capacity:
            self._evict(path)

    def pop(self, path: str, default: Node | None = None) -> Node | None:  # type: ignore[override]
        node = self.get(path)
        if node is None:
            return default
        del self._cache[path]
        self._created.discard(path)
        self._deleted.add(path)
        self._count -= 1
        return node

    def __delitem__(self, path: str) -> None:
        if self.pop(path) is None:
            raise KeyError(path)

    def __iter__(self) -> Iterator[str]:
        """Every path (the "" alias too), from a snapshot of LMDB merged with what it
        does not hold yet. Slow: it walks the whole ``nodes`` DB."""
        pending = self._changed()
        cache = self._cache
        yield ""
        with self._env.begin() as txn:
            for p in iter_paths(txn, self._db):
                if p not in pending:
                    yield p
        for p in pending:
            if p in cache:
                yield p

    def _changed(self) -> set[str]:
        """Paths whose latest state LMDB may not hold: they exist iff cached."""
        committed = self._committed_gen
        out = {p for p, g in self._unsaved.items() if g > committed}
        out |= self._dirty
        out |= self._deleted
        return out

    def count_descendants(self, path: str) -> int:
        """Counted over the ``nodes`` key range under ``path`` (no node is decoded),
        corrected for changes LMDB does not hold yet."""
        if path == "/":
            return self._count - 2  # all but "" and "/", as ZooKeeper counts it
        prefix = path + "/"
        raw_prefix = descendants_prefix(path)
        txn = self._txn()
        n = 0
        cur = txn.cursor(db=self._db)
        # Paths that fit in a key: one key range. Longer ones are under long keys, which
        # sort first and carry their path in the record (few, normally none).
        if cur.set_range(raw_prefix):
            for k in cur.iternext(values=False):
                if not k.startswith(raw_prefix):
                    break
                n += 1
        try:
            n += sum(1 for p in iter_long_paths(txn, self._db) if p.startswith(prefix))
        except (ProtocolError, UnicodeError) as e:
            raise StorageError(f"corrupt node record: {e}") from None
        cache = self._cache
        for p in self._changed():
            if p.startswith(prefix):
                n += (p in cache) - (txn.get(node_key(p), db=self._db) is not None)
        return n

    # -- persistence (the store's side) -------------------------------------------------

    def take_changes(self, acl_bytes: dict[tuple[ACL, ...], bytes]
                     ) -> tuple[int, list[tuple[str, bytes | None, bool, int]]]:
        """Event loop, after a batch applied: the records of every dirty path as
        (path, record or None if deleted, created since the last snapshot, owner), under
        a new generation the store reports back through ``committed`` (the store derives
        the keys, on its writer thread)."""
        dirty = self._dirty
        committed = self._committed_gen
        if self._unsaved:
            # Forget what is committed; keeps this map as small as two batches.
            self._unsaved = {p: g for p, g in self._unsaved.items() if g > committed}
        # Lookups must not use a snapshot older than the next commit for long.
        self.release()
        if not dirty:
            return self._gen, []
        gen = self._gen = self._gen + 1
        cache = self._cache
        created = self._created
        unsaved = self._unsaved
        out: list[tuple[str, bytes | None, bool, int]] = []
        for path in dirty:
            node = cache.get(path)
            if node is None:
                out.append((path, None, False, 0))
            else:
                out.append((path, encode_node(node, acl_bytes), path in created,
                            node.owner))
            unsaved[path] = gen
        dirty.clear()
        created.clear()
        # Deleted paths are dirty too: from here ``unsaved`` answers for them.
        self._deleted.clear()
        return gen, out

    def committed(self, gen: int) -> None:
        """Writer thread: every snapshot up to ``gen`` is committed to LMDB."""
        if gen > self._committed_gen:
            self._committed_gen = gen

    def _evict(self, keep: str) -> None:
        """Drop the oldest clean nodes (first in, first out), a 64th of the capacity per
        pass: a pass costs a few ms at most, and runs once per that many inserts."""
        cache = self._cache
        target = self.capacity - self.capacity // 64
        excess = len(cache) - target
        victims: list[str] = []
        busy: list[str] = []
        pending = self._pending
        for p in cache:
            if len(victims) >= excess:
                break
            if p == keep or p == "/" or p == "" or pending(p):
                busy.append(p)
            else:
                victims.append(p)
        for p in victims:
            del cache[p]
        # Nodes that could not go move to the back, so the next pass does not rescan
        # them first.
        for p in busy:
            cache[p] = cache.pop(p)
        self.evictions += len(victims)
