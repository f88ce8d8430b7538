"""The znode tree: a deterministic state machine over Txns (sans-I/O).

``DataTree.apply(txn)`` changes the tree and returns the watch triggers it caused, in
order; reads are plain lookups. The tree also holds the committed session table, since
sessions (and their ephemerals) are replicated state.
"""

from __future__ import annotations

import zlib
from abc import abstractmethod
from collections import deque
from collections.abc import Iterator, MutableMapping, MutableSet
from dataclasses import dataclass

from kernel.acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from kernel.digest import (
    EXCLUDED_PREFIX,
    LOG_INTERVAL,
    LOG_LIMIT,
    MASK64,
    STAT_FIELDS,
    compute_digest,
)
from kernel.errors import NodeExists, NoNode
from kernel.paths import basename, parent_of
from kernel.protocol import (
    CONTAINER_EPHEMERAL_OWNER,
    MAX_TTL,
    OWNER_CONTAINER,
    OWNER_SESSION,
    OWNER_TTL,
    TTL_MARKER,
    EventType,
    owner_kind,
)
from kernel.records import ACL, STAT, Stat
from kernel.txn import (
    CheckTxn,
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    Txn,
    TxnBody,
)


class Node:
    """One znode. ``c`` counts child creations ever applied (the sequential counter);
    the visible cversion is derived from it as ZooKeeper does: ``2*c - numChildren``.

    For the tree digest (``kernel.digest``) ``_dg`` caches the node's digest and ``_dp``
    the CRC-32 of its path and data (None or unset: not computed yet). ``apply`` keeps
    both current; code that changes a node in place outside ``apply`` must reset them
    (as it resets ``_stat``)."""

    __slots__ = ("data", "acl", "czxid", "mzxid", "ctime", "mtime", "version", "c",
                 "aversion", "owner", "pzxid", "children", "_stat", "_dp", "_dg")

    def __init__(self, data: bytes | None, acl: tuple[ACL, ...], zxid: int, time: int,
                 owner: int) -> None:
        self.data = data
        self.acl = acl
        self.czxid = self.mzxid = self.pzxid = zxid
        self.ctime = self.mtime = time
        self.version = 0
        self.c = 0
        self.aversion = 0
        self.owner = owner
        # A plain set here; a NodeStore may give its nodes a lazily loaded MutableSet
        # that knows its size without holding the names.
        self.children: MutableSet[str] = set()
        self._stat: bytes | None = None
        self._dp: int | None = None
        self._dg: int | None = None

    @property
    def cversion(self) -> int:
        return _wrap32(2 * self.c - len(self.children))

    @property
    def ephemeral_owner(self) -> int:
        """The ephemeralOwner clients see: the session id, or 0."""
        return self.owner if owner_kind(self.owner) == OWNER_SESSION else 0

    @property
    def is_ephemeral(self) -> bool:
        return owner_kind(self.owner) == OWNER_SESSION

    @property
    def is_container(self) -> bool:
        return self.owner == CONTAINER_EPHEMERAL_OWNER

    @property
    def ttl(self) -> int:
        """TTL in ms for TTL nodes, else 0."""
        if owner_kind(self.owner) == OWNER_TTL:
            return self.owner & MAX_TTL
        return 0

    def stat(self) -> Stat:
        data = self.data
        return Stat(self.czxid, self.mzxid, self.ctime, self.mtime, self.version,
                    self.cversion, self.aversion, self.ephemeral_owner,
                    len(data) if data is not None else 0, len(self.children), self.pzxid)

    def stat_bytes(self) -> bytes:
        """The 68-byte wire Stat, cached until the node changes."""
        s = self._stat
        if s is None:
            s = self._stat = STAT.pack(*self.stat())
        return s


def _wrap32(v: int) -> int:
    return ((v + 0x80000000) & 0xFFFFFFFF) - 0x80000000


_pack_stat = STAT_FIELDS.pack
_crc32 = zlib.crc32


def _node_digest(path: str, node: Node) -> int:
    """The node's contribution to the tree digest as of its current state (cached)."""
    try:
        digest = node._dg
    except AttributeError:  # a NodeStore may build nodes without __init__
        digest = None
    return _fresh_digest(path, node) if digest is None else digest


def _fresh_digest(path: str, node: Node) -> int:
    """Recompute (and cache) the node's digest after a stat change; the path+data CRC is
    reused unless ``_dp`` was reset. Same value as ``kernel.digest.node_digest``."""
    if path.startswith(EXCLUDED_PREFIX):
        return 0
    try:
        prefix = node._dp
    except AttributeError:
        prefix = None
    if prefix is None:
        # kernel.digest.path_data_crc, inlined
        prefix = 0 if path == "/" else _crc32(path.encode())
        data = node.data
        if data:
            prefix = _crc32(data, prefix)
        node._dp = prefix
    digest: int = _crc32(_pack_stat(node.czxid, node.mzxid, node.pzxid, node.ctime,
                                    node.mtime, node.version, node.c, node.aversion,
                                    node.owner), prefix)
    node._dg = digest
    return digest


def ttl_owner(ttl: int) -> int:
    """The stored ephemeralOwner of a TTL node."""
    return TTL_MARKER | ttl


@dataclass(slots=True)
class SessionRecord:
    """A committed session: its negotiated timeout and password."""

    timeout: int
    password: bytes


Trigger = tuple[int, str, tuple[ACL, ...]]  # (EventType, path, ACL checked for READ)


class NodeStore(MutableMapping[str, Node]):
    """A path -> Node mapping a storage backend supplies instead of the plain dict, e.g.
    to keep only part of a large tree in memory and look the rest up on demand.

    The tree relies on these rules (a dict obeys them trivially):

    * ``get``/``[]``/``in`` see every node, and return the *same* object for a path for
      as long as it may still change: a node whose path is in ``tree.dirty`` (or whose
      latest state the backend has not persisted yet) is never dropped, because
      ``apply`` mutates nodes in place and marks the path dirty before it looks up any
      other node.
    * ``""`` is ZooKeeper's alias of the root: it returns the ``"/"`` node and is
      counted by ``len`` (``node_count`` semantics).
    * ``pop`` is only called for paths that exist, ``[path] = node`` to create one.
    """

    @abstractmethod
    def get(self, path: str, default: Node | None = None) -> Node | None:  # type: ignore[override]
        ...

    def count_descendants(self, path: str) -> int:
        """Nodes below ``path`` (which exists). Override when the backend can count
        without materialising every node."""
        return _count_descendants(self, path)


def _count_descendants(nodes: MutableMapping[str, Node], path: str) -> int:
    node = nodes[path]
    total = 0
    stack = [(path, node)]
    while stack:
        p, n = stack.pop()
        for name in n.children:
            cp = "/" + name if p == "/" else p + "/" + name
            child = nodes.get(cp)
            if child is not None:
                total += 1
                stack.append((cp, child))
    return total


def _data_size(nodes: MutableMapping[str, Node]) -> int:
    return sum(len(p) + (len(n.data) if n.data else 0) for p, n in nodes.items())


def index_owner(ephemerals: dict[int, set[str]], containers: set[str], ttls: set[str],
                path: str, owner: int) -> None:
    """Record ``path`` in the ephemeral, container or TTL index its stored
    ephemeralOwner selects (nothing for an owner of 0). Shared by the tree and the
    ZooKeeper importer's replay, which keeps the same three indexes."""
    if not owner:
        return
    kind = owner_kind(owner)
    if kind == OWNER_SESSION:
        ephemerals.setdefault(owner, set()).add(path)
    elif kind == OWNER_CONTAINER:
        containers.add(path)
    else:
        ttls.add(path)


def unindex_owner(ephemerals: dict[int, set[str]], containers: set[str], ttls: set[str],
                  path: str, owner: int) -> None:
    """Remove ``path`` from the index ``index_owner`` put it in."""
    if not owner:
        return
    kind = owner_kind(owner)
    if kind == OWNER_SESSION:
        paths = ephemerals.get(owner)
        if paths is not None:
            paths.discard(path)
            if not paths:
                del ephemerals[owner]
    elif kind == OWNER_CONTAINER:
        containers.discard(path)
    else:
        ttls.discard(path)


class DataTree:
    """The znode tree plus committed sessions; changes only through ``apply``.

    ``nodes`` is a dict holding every node (with the system nodes created here), or a
    ``NodeStore`` supplied by a storage backend together with the tree's persisted
    ``data_size``; the backend then fills ``ephemerals``, ``containers``, ``ttls`` and
    ``sessions`` itself. Replace ``nodes`` only through the constructor: the tree keeps
    ``approximate_data_size`` and ``digest`` incrementally.

    ``digest`` is the tree digest (``kernel.digest``) after ``last_zxid``; a backend
    that supplies ``nodes`` passes the digest it stored (or None: computed here by
    walking every node). ``digest_log`` holds (zxid, digest) for the applied zxids that
    are multiples of ``LOG_INTERVAL``, the newest ``LOG_LIMIT`` of them, as ZooKeeper's
    ``hash`` reports them.
    """

    def __init__(self, nodes: NodeStore | None = None, data_size: int = 0,
                 digest: int | None = None) -> None:
        self.nodes: MutableMapping[str, Node] = {} if nodes is None else nodes
        self.ephemerals: dict[int, set[str]] = {}
        self.sessions: dict[int, SessionRecord] = {}
        self.containers: set[str] = set()
        self.ttls: set[str] = set()
        self.last_zxid = 0
        # Paths / session ids changed since the storage last persisted them; None
        # (the default) means nobody persists the tree and nothing is tracked.
        self.dirty: set[str] | None = None
        self.dirty_sessions: set[int] | None = None
        if nodes is None:
            self._init_system_nodes()
            data_size = _data_size(self.nodes)
        # ZooKeeper's approximateDataSize: path + data lengths over every key, the root
        # alias "" included; kept up to date by apply so 4lw need not scan the tree.
        self._data_size = data_size
        self.digest = compute_digest(self) if digest is None else digest & MASK64
        self.digest_log: deque[tuple[int, int]] = deque(maxlen=LOG_LIMIT)

    def track_changes(self) -> None:
        """Start recording changed paths and sessions (for persistent storage)."""
        self.dirty = set()
        self.dirty_sessions = set()

    def _init_system_nodes(self) -> None:
        # The built-in nodes are not created through create (so /'s cversion is -1).
        root = Node(b"", OPEN_ACL_UNSAFE, 0, 0, 0)
        zk = Node(b"", OPEN_ACL_UNSAFE, 0, 0, 0)
        quota = Node(b"", OPEN_ACL_UNSAFE, 0, 0, 0)
        config = Node(b"", READ_ACL_UNSAFE, 0, 0, 0)
        config.aversion = -1
        root.children.add("zookeeper")
        zk.children.add("quota")
        zk.children.add("config")
        self.nodes.update({"/": root, "/zookeeper": zk, "/zookeeper/quota": quota,
                           "/zookeeper/config": config})
        self.link_root_alias()

    def link_root_alias(self) -> None:
        """ZooKeeper keys the root under both "/" and ""; so do we (reads of "" see the
        root, and counts include the alias exactly as ZooKeeper's do). Call after
        replacing the "/" node."""
        self.nodes[""] = self.nodes["/"]

    # -- reads ---------------------------------------------------------------------

    def get(self, path: str) -> Node | None:
        return self.nodes.get(path)

    def node_count(self) -> int:
        """ZooKeeper's node count: real nodes plus the root alias."""
        return len(self.nodes)

    def approximate_data_size(self) -> int:
        """Sum of path and data lengths over all nodes, the root alias included."""
        return self._data_size

    def count_descendants(self, path: str) -> int:
        nodes = self.nodes
        if isinstance(nodes, NodeStore):
            return nodes.count_descendants(path)
        return _count_descendants(nodes, path)

    def walk(self) -> Iterator[tuple[str, Node]]:
        """Every real node (the "" alias of the root excluded)."""
        return ((p, n) for p, n in self.nodes.items() if p)

    # -- owner indexes -------------------------------------------------------------

    def index_owner(self, path: str, owner: int) -> None:
        """Record ``path`` in the ephemeral, container or TTL index its owner selects."""
        index_owner(self.ephemerals, self.containers, self.ttls, path, owner)

    def unindex_owner(self, path: str, owner: int) -> None:
        """Remove ``path`` from the index ``index_owner`` put it in."""
        unindex_owner(self.ephemerals, self.containers, self.ttls, path, owner)

    # -- apply ---------------------------------------------------------------------

    def apply(self, txn: Txn) -> list[Trigger]:
        """Apply one transaction; returns the watch triggers in order. Idempotent:
        a txn at or below ``last_zxid`` is skipped (recovery over a fuzzy state)."""
        triggers: list[Trigger] = []
        if txn.zxid <= self.last_zxid and txn.zxid != 0:
            return triggers
        txn.result = self._apply_body(txn, txn.body, triggers)
        zxid = txn.zxid
        if zxid > self.last_zxid:
            self.last_zxid = zxid
            if not zxid % LOG_INTERVAL:
                self.digest_log.append((zxid, self.digest))
        return triggers

    def recompute_digest(self) -> int:
        """Set ``digest`` from every node, refreshing their cached digests: for a tree
        whose nodes were replaced or changed outside ``apply`` (an import, a snapshot
        transfer). Returns it. ``kernel.digest.compute_digest`` only checks."""
        total = 0
        for path, node in self.walk():
            node._dp = node._dg = None
            total += _fresh_digest(path, node)
        self.digest = total & MASK64
        return self.digest

    def _apply_body(self, txn: Txn, body: TxnBody, triggers: list[Trigger]) -> object:
        if isinstance(body, SetDataTxn):
            return self._set_data(txn, body, triggers)
        if isinstance(body, CreateTxn):
            return self._create(txn, body, triggers)
        if isinstance(body, DeleteTxn):
            self._delete(txn.zxid, body.path, triggers)
            return None
        if isinstance(body, SetACLTxn):
            node = self.nodes.get(body.path)
            if node is None:
                return None
            if self.dirty is not None:
                self.dirty.add(body.path)
            old = _node_digest(body.path, node)
            node.acl = body.acl
            node.aversion = body.aversion
            node._stat = None
            self.digest = (self.digest + _fresh_digest(body.path, node) - old) & MASK64
            return node.stat()
        if isinstance(body, MultiTxn):
            results = []
            for op, sub in body.ops:
                results.append((op, self._apply_body(txn, sub, triggers)))  # type: ignore[arg-type]
            return results
        if isinstance(body, CreateSessionTxn):
            self.sessions[txn.session_id] = SessionRecord(body.timeout, body.password)
            if self.dirty_sessions is not None:
                self.dirty_sessions.add(txn.session_id)
            return None
        if isinstance(body, CloseSessionTxn):
            for path in sorted(self.ephemerals.pop(txn.session_id, ())):
                self._delete(txn.zxid, path, triggers)
            self.sessions.pop(txn.session_id, None)
            if self.dirty_sessions is not None:
                self.dirty_sessions.add(txn.session_id)
            return None
        if isinstance(body, (ErrorTxn, CheckTxn)):
            return None
        raise TypeError(f"unknown txn body {body!r}")

    def _create(self, txn: Txn, body: CreateTxn, triggers: list[Trigger]) -> object:
        path = body.path
        parent_path = parent_of(path)
        parent = self.nodes.get(parent_path)
        if parent is None:
            raise NoNode(parent_path)  # prep guarantees the parent; replay must agree
        if path in self.nodes:
            raise NodeExists(path)
        parent_old = _node_digest(parent_path, parent)
        node = Node(body.data, body.acl, txn.zxid, txn.time, body.owner)
        if self.dirty is not None:
            # Before the insert: a NodeStore may drop clean nodes when it grows, and the
            # parent we hold is about to change.
            self.dirty.add(path)
            self.dirty.add(parent_path)
        self.nodes[path] = node
        data = body.data
        self._data_size += len(path) + (len(data) if data else 0)
        parent.children.add(basename(path))
        if body.parent_c > parent.c:
            parent.c = body.parent_c
        parent.pzxid = txn.zxid
        parent._stat = None
        self.digest = (self.digest + _fresh_digest(path, node)
                       + _fresh_digest(parent_path, parent) - parent_old) & MASK64
        self.index_owner(path, body.owner)
        triggers.append((EventType.NODE_CREATED, path, node.acl))
        triggers.append((EventType.NODE_CHILDREN_CHANGED, parent_path, parent.acl))
        return path, node.stat()

    def _delete(self, zxid: int, path: str, triggers: list[Trigger]) -> None:
        node = self.nodes.pop(path, None)
        if node is None:
            return
        data = node.data
        self._data_size -= len(path) + (len(data) if data else 0)
        parent_path = parent_of(path)
        if self.dirty is not None:
            self.dirty.add(path)
            self.dirty.add(parent_path)
        digest = self.digest - _node_digest(path, node)
        parent = self.nodes.get(parent_path)
        if parent is not None:
            digest -= _node_digest(parent_path, parent)
            parent.children.discard(basename(path))
            parent.pzxid = zxid
            parent._stat = None
            digest += _fresh_digest(parent_path, parent)
        self.digest = digest & MASK64
        self.unindex_owner(path, node.owner)
        triggers.append((EventType.NODE_DELETED, path, node.acl))
        if parent is not None:
            triggers.append((EventType.NODE_CHILDREN_CHANGED, parent_path, parent.acl))

    def _set_data(self, txn: Txn, body: SetDataTxn, triggers: list[Trigger]) -> object:
        node = self.nodes.get(body.path)
        if node is None:
            return None
        if self.dirty is not None:
            self.dirty.add(body.path)
        digest = self.digest - _node_digest(body.path, node)
        old, new = node.data, body.data
        delta = (len(new) if new else 0) - (len(old) if old else 0)
        # The root is counted twice: under "/" and under its alias "".
        self._data_size += 2 * delta if body.path == "/" else delta
        node.data = new
        node.version = body.version
        node.mzxid = txn.zxid
        node.mtime = txn.time
        node._stat = None
        node._dp = None
        self.digest = (digest + _fresh_digest(body.path, node)) & MASK64
        triggers.append((EventType.NODE_DATA_CHANGED, body.path, node.acl))
        return node.stat()

    # -- reaping ---------------------------------------------------------------------

    def reapable(self, now_ms: int, max_never_used_ms: int = 0) -> list[str]:
        """Containers and TTL nodes that the reaper should delete now."""
        out = []
        for path in self.containers:
            node = self.nodes[path]
            if node.children:
                continue
            if node.c > 0 or (max_never_used_ms > 0 and now_ms - node.mtime > max_never_used_ms):
                out.append(path)
        for path in self.ttls:
            node = self.nodes[path]
            if not node.children and now_ms - node.mtime > node.ttl:
                out.append(path)
        return sorted(out)
