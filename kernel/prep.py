"""Prep: validate a write against the tree plus the writes still in flight, and turn it
into a deterministic Txn (ZooKeeper's PrepRequestProcessor and outstandingChanges).

Checks run in ZooKeeper's order so the first failing check decides the error code.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from kernel.acl import ACLChecker
from kernel.errors import (
    BadArguments,
    BadVersion,
    MarshallingError,
    NoChildrenForEphemerals,
    NodeExists,
    NoNode,
    NotEmpty,
    ReconfigDisabled,
    RuntimeInconsistency,
    Unimplemented,
    ZooKeeperError,
)
from kernel.paths import RESERVED_PATHS, validate_path
from kernel.protocol import (
    CONTAINER_EPHEMERAL_OWNER,
    MAX_TTL,
    OWNER_CONTAINER,
    OWNER_SESSION,
    OWNER_TTL,
    CreateMode,
    OpCode,
    Perm,
    owner_kind,
)
from kernel.records import (
    ACL,
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    Id,
    MultiRequest,
    SetACLRequest,
    SetDataRequest,
)
from kernel.tree import DataTree, ttl_owner
from kernel.txn import (
    CheckTxn,
    CloseSessionTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    TxnBody,
)

_INT_MAX = 0x7FFFFFFF


class View:
    """What prep needs to know of a node, including effects of in-flight writes."""

    __slots__ = ("exists", "version", "aversion", "c", "num_children", "owner", "acl", "zxid")

    def __init__(self, exists: bool, version: int = 0, aversion: int = 0, c: int = 0,
                 num_children: int = 0, owner: int = 0, acl: tuple[ACL, ...] = (),
                 zxid: int = 0) -> None:
        self.exists = exists
        self.version = version
        self.aversion = aversion
        self.c = c
        self.num_children = num_children
        self.owner = owner
        self.acl = acl
        self.zxid = zxid

    def copy(self, zxid: int) -> View:
        return View(self.exists, self.version, self.aversion, self.c, self.num_children,
                    self.owner, self.acl, zxid)


def _wrap32(v: int) -> int:
    return ((v + 0x80000000) & 0xFFFFFFFF) - 0x80000000


class Overlay:
    """Pending changes keyed by path; a child overlay (for multi) falls back to its
    parent and is merged into it only if every sub-op succeeded."""

    def __init__(self, tree: DataTree, parent: Overlay | None = None) -> None:
        self.tree = tree
        self.parent = parent
        self.changes: dict[str, View] = {}

    def get(self, path: str) -> View | None:
        v = self.changes.get(path)
        if v is not None:
            return v if v.exists else None
        if self.parent is not None:
            return self.parent.get(path)
        node = self.tree.nodes.get(path)
        if node is None:
            return None
        return View(True, node.version, node.aversion, node.c, len(node.children),
                    node.owner, node.acl, 0)

    def put(self, path: str, view: View) -> None:
        self.changes[path] = view

    def pending_ephemerals(self, session_id: int) -> set[str]:
        """Ephemerals of a session as they will be once in-flight writes apply."""
        out = set(self.tree.ephemerals.get(session_id, ()))
        layers: list[Overlay] = []
        o: Overlay | None = self
        while o is not None:
            layers.append(o)
            o = o.parent
        for layer in reversed(layers):
            for path, v in layer.changes.items():
                if v.exists and v.owner == session_id:
                    out.add(path)
                elif not v.exists:
                    out.discard(path)
        return out


class Prep:
    """Turns write requests into Txn bodies against the tree and in-flight changes."""

    def __init__(self, tree: DataTree, acl: ACLChecker, extended_types: bool = False,
                 reconfig_enabled: bool = False) -> None:
        self.tree = tree
        self.acl = acl
        self.extended_types = extended_types
        self.reconfig_enabled = reconfig_enabled
        self.outstanding = Overlay(tree)
        self._by_zxid: deque[tuple[int, list[str]]] = deque()

    # -- bookkeeping of in-flight changes -------------------------------------------

    def applied(self, zxid: int) -> None:
        """Forget in-flight changes made by transactions up to ``zxid`` (now in the tree)."""
        q = self._by_zxid
        changes = self.outstanding.changes
        while q and q[0][0] <= zxid:
            z, paths = q.popleft()
            for p in paths:
                v = changes.get(p)
                if v is not None and v.zxid <= z:
                    del changes[p]

    def _record(self, zxid: int, overlay: Overlay) -> None:
        if overlay.changes:
            self._by_zxid.append((zxid, list(overlay.changes)))

    # -- entry point --------------------------------------------------------------------

    def prepare(self, op: int, request: object, session_id: int, ids: Sequence[Id],
                zxid: int) -> TxnBody:
        """The txn body for a write; failures become ErrorTxn (ZooKeeper logs those too)."""
        if op == OpCode.MULTI:
            assert isinstance(request, MultiRequest)
            return self._multi(request, session_id, ids, zxid)
        scratch = Overlay(self.tree, self.outstanding)
        try:
            body = self._one(op, request, session_id, ids, zxid, scratch)
        except ZooKeeperError as e:
            return ErrorTxn(e.code)
        self.outstanding.changes.update(scratch.changes)
        self._record(zxid, scratch)
        return body

    def close_session(self, session_id: int, zxid: int) -> CloseSessionTxn:
        """Close a session: its ephemerals count as deleted from now on."""
        overlay = self.outstanding
        scratch = Overlay(self.tree, overlay)
        for path in sorted(overlay.pending_ephemerals(session_id)):
            v = scratch.get(path)
            if v is None:
                continue
            scratch.put(path, View(False, zxid=zxid))
            ppath = _parent(path)
            pv = scratch.get(ppath)
            if pv is not None:
                pv = pv.copy(zxid)
                pv.num_children -= 1
                scratch.put(ppath, pv)
        overlay.changes.update(scratch.changes)
        self._record(zxid, scratch)
        return CloseSessionTxn()

    def _multi(self, request: MultiRequest, session_id: int, ids: Sequence[Id],
               zxid: int) -> MultiTxn:
        scratch = Overlay(self.tree, self.outstanding)
        bodies: list[tuple[int, object]] = []
        for i, (op, rec) in enumerate(request.ops):
            try:
                bodies.append((op, self._one(op, rec, session_id, ids, zxid, scratch)))
            except ZooKeeperError as e:
                n = len(request.ops)
                errs = [0] * i + [e.code] + [RuntimeInconsistency.code] * (n - i - 1)
                return MultiTxn(tuple((OpCode.ERROR, ErrorTxn(c)) for c in errs))
        self.outstanding.changes.update(scratch.changes)
        self._record(zxid, scratch)
        return MultiTxn(tuple(bodies))

    def _one(self, op: int, rec: object, session_id: int, ids: Sequence[Id], zxid: int,
             ov: Overlay) -> TxnBody:
        if op in (OpCode.CREATE, OpCode.CREATE2, OpCode.CREATE_CONTAINER, OpCode.CREATE_TTL):
            assert isinstance(rec, CreateRequest)
            return self._create(op, rec, session_id, ids, zxid, ov)
        if op == OpCode.SET_DATA:
            assert isinstance(rec, SetDataRequest)
            return self._set_data(rec, ids, zxid, ov)
        if op == OpCode.DELETE:
            assert isinstance(rec, DeleteRequest)
            return self._delete(rec, ids, zxid, ov)
        if op == OpCode.DELETE_CONTAINER:
            assert isinstance(rec, DeleteRequest)
            return self._delete_container(rec, zxid, ov)
        if op == OpCode.SET_ACL:
            assert isinstance(rec, SetACLRequest)
            return self._set_acl(rec, ids, zxid, ov)
        if op == OpCode.CHECK:
            assert isinstance(rec, CheckVersionRequest)
            return self._check(rec, ids, ov)
        if op == OpCode.RECONFIG:
            if not self.reconfig_enabled:
                raise ReconfigDisabled()
            raise Unimplemented("reconfig on a standalone server")
        raise MarshallingError(f"not a write op: {op}")

    # -- the operations -----------------------------------------------------------------

    def _create(self, op: int, rec: CreateRequest, session_id: int, ids: Sequence[Id],
                zxid: int, ov: Overlay) -> CreateTxn:
        try:
            mode = CreateMode(rec.flags)
        except ValueError:
            raise BadArguments(f"unknown create flags {rec.flags}") from None
        if (mode.is_ttl or op == OpCode.CREATE_TTL) and not self.extended_types:
            raise Unimplemented("TTL nodes need extendedTypesEnabled=true")
        ttl = rec.ttl if op == OpCode.CREATE_TTL else -1
        if mode.is_ttl:
            if not 0 < ttl <= MAX_TTL:
                raise BadArguments(f"invalid TTL {ttl}")
        elif ttl >= 0 or op == OpCode.CREATE_TTL:
            # ZooKeeper 3.8 accepts opcode 21 with a non-TTL flag and then crashes on
            # apply; answer BadArguments instead.
            raise BadArguments("TTL given for a non-TTL create mode")
        path = rec.path
        last = path.rfind("/")
        if last < 0 or "\0" in path:
            raise BadArguments(f"invalid path {path!r}")
        acl = self.acl.fixup(rec.acl, ids)
        parent_path = path[:last] or "/"
        parent = ov.get(parent_path)
        if parent is None:
            raise NoNode(parent_path)
        self.acl.check(parent.acl, ids, Perm.CREATE)
        if mode.is_sequential:
            if parent.c >= _INT_MAX:
                raise BadArguments("sequential counter of the parent is exhausted")
            path = f"{path}{parent.c:010d}"
        validate_path(path)
        if ov.get(path) is not None:
            raise NodeExists(path)
        if owner_kind(parent.owner) == OWNER_SESSION:
            raise NoChildrenForEphemerals(parent_path)
        if op == OpCode.CREATE_CONTAINER:
            # The opcode makes a container, whatever the flags say.
            owner = CONTAINER_EPHEMERAL_OWNER
        elif mode.is_ephemeral:
            owner = session_id
        elif mode.is_ttl:
            owner = ttl_owner(ttl)
        else:
            owner = 0
        new_parent = parent.copy(zxid)
        new_parent.c = parent.c + 1
        new_parent.num_children += 1
        ov.put(parent_path, new_parent)
        ov.put(path, View(True, 0, 0, 0, 0, owner, acl, zxid))
        return CreateTxn(path, rec.data, acl, owner, new_parent.c)

    def _delete(self, rec: DeleteRequest, ids: Sequence[Id], zxid: int,
                ov: Overlay) -> DeleteTxn:
        path = rec.path
        last = path.rfind("/")
        if last < 0 or "\0" in path or path in RESERVED_PATHS:
            raise BadArguments(f"cannot delete {path!r}")
        parent_path = path[:last] or "/"
        parent = ov.get(parent_path)
        if parent is None:
            raise NoNode(parent_path)
        self.acl.check(parent.acl, ids, Perm.DELETE)
        node = ov.get(path)
        if node is None:
            raise NoNode(path)
        if rec.version != -1 and rec.version != node.version:
            raise BadVersion(path)
        if node.num_children > 0:
            raise NotEmpty(path)
        return self._record_delete(path, parent_path, parent, zxid, ov)

    def _delete_container(self, rec: DeleteRequest, zxid: int, ov: Overlay) -> DeleteTxn:
        path = rec.path
        node = ov.get(path)
        if node is None:
            raise NoNode(path)
        if owner_kind(node.owner) not in (OWNER_CONTAINER, OWNER_TTL):
            raise BadVersion(f"{path} is not a container or TTL node")
        if node.num_children > 0:
            raise NotEmpty(path)
        parent_path = _parent(path)
        parent = ov.get(parent_path)
        if parent is None:
            raise NoNode(parent_path)
        return self._record_delete(path, parent_path, parent, zxid, ov)

    @staticmethod
    def _record_delete(path: str, parent_path: str, parent: View, zxid: int,
                       ov: Overlay) -> DeleteTxn:
        new_parent = parent.copy(zxid)
        new_parent.num_children -= 1
        ov.put(parent_path, new_parent)
        ov.put(path, View(False, zxid=zxid))
        return DeleteTxn(path)

    def _set_data(self, rec: SetDataRequest, ids: Sequence[Id], zxid: int,
                  ov: Overlay) -> SetDataTxn:
        validate_path(rec.path)
        node = ov.get(rec.path)
        if node is None:
            raise NoNode(rec.path)
        self.acl.check(node.acl, ids, Perm.WRITE)
        if rec.version != -1 and rec.version != node.version:
            raise BadVersion(rec.path)
        new = node.copy(zxid)
        new.version = _wrap32(node.version + 1)
        ov.put(rec.path, new)
        return SetDataTxn(rec.path, rec.data, new.version)

    def _set_acl(self, rec: SetACLRequest, ids: Sequence[Id], zxid: int,
                 ov: Overlay) -> SetACLTxn:
        validate_path(rec.path)
        acl = self.acl.fixup(rec.acl, ids)
        node = ov.get(rec.path)
        if node is None:
            raise NoNode(rec.path)
        self.acl.check(node.acl, ids, Perm.ADMIN)
        if rec.version != -1 and rec.version != node.aversion:
            raise BadVersion(rec.path)
        new = node.copy(zxid)
        new.aversion = _wrap32(node.aversion + 1)
        new.acl = acl
        ov.put(rec.path, new)
        return SetACLTxn(rec.path, acl, new.aversion)

    def _check(self, rec: CheckVersionRequest, ids: Sequence[Id], ov: Overlay) -> CheckTxn:
        validate_path(rec.path)
        node = ov.get(rec.path)
        if node is None:
            raise NoNode(rec.path)
        self.acl.check(node.acl, ids, Perm.READ)
        if rec.version != -1 and rec.version != node.version:
            raise BadVersion(rec.path)
        return CheckTxn(rec.path)


def _parent(path: str) -> str:
    i = path.rfind("/")
    return path[:i] if i > 0 else "/"
