"""An audit log of the writes clients make, as ZooKeeper's ``audit.enable=true``.

One line per audited operation, in ZooKeeper's AuditEvent format (tab-separated
``key=value`` pairs, fields left out when unknown)::

    session=0x10000a1b20000<TAB>user=127.0.0.1,bob<TAB>ip=127.0.0.1<TAB>operation=create
    <TAB>znode=/a<TAB>znode_type=persistent<TAB>result=success

(one line, wrapped here).

Audited as in ZooKeeper (``AuditHelper``): create, delete, setData, setAcl (with the
new ACL), the sub-operations of a successful multi, a failed multi as
``multiOperation``, and every failed write (``result=failure``: NoAuth denials,
NoNode, BadVersion ...), plus ``serverStart``. Only requests of clients connected to
this server are logged (ZooKeeper logs in FinalRequestProcessor, on that server).

Keys: ``audit.enable`` (``zookeeper.audit.enable``, default false) and zkernel's
``kernel.audit.file`` (append to that file; default: the ``zkernel.audit`` logger, at
INFO, failures at ERROR, as ZooKeeper's Slf4jAuditLogger).

The plugin is a ``zk_write_observers`` observer: the kernel tells it about every client
write answered on this server, with the request, the committed transaction and the
outcome (failed writes are committed as error transactions, as in ZooKeeper).
"""

from __future__ import annotations

import getpass
import logging
import threading
import time
from pathlib import Path
from typing import Any

from kernel.api import (
    CreateRequest,
    CreateTxn,
    DeleteRequest,
    DeleteTxn,
    ErrorTxn,
    MultiRequest,
    MultiTxn,
    OpCode,
    ServerConfig,
    SetACLRequest,
    SetACLTxn,
    SetDataRequest,
    SetDataTxn,
    WriteDone,
    hookimpl,
)

log = logging.getLogger("zkernel.audit")

_CREATE_MODES = {0: "persistent", 1: "ephemeral", 2: "persistent_sequential",
                 3: "ephemeral_sequential", 4: "container", 5: "persistent_with_ttl",
                 6: "persistent_sequential_with_ttl"}
_OP_NAMES: dict[int, str] = {OpCode.CREATE: "create", OpCode.CREATE2: "create",
             OpCode.CREATE_CONTAINER: "create", OpCode.CREATE_TTL: "create",
             OpCode.DELETE: "delete", OpCode.DELETE_CONTAINER: "delete",
             OpCode.SET_DATA: "setData", OpCode.SET_ACL: "setAcl",
             OpCode.MULTI: "multiOperation", OpCode.RECONFIG: "reconfig"}


def perm_string(perms: int) -> str:
    """ZooKeeper's ZKUtil.getPermString: ``cdrwa`` letters."""
    return "".join(c for bit, c in ((4, "c"), (8, "d"), (1, "r"), (2, "w"), (16, "a"))
                   if perms & bit)


def acl_string(acl: Any) -> str:
    """ZooKeeper's ZKUtil.aclToString (entries concatenated, no separator)."""
    return "".join(f"{a.scheme}:{a.id}:{perm_string(a.perms)}" for a in acl)


def format_event(result: str, session: str | None = None, user: str | None = None,
                 ip: str | None = None, operation: str | None = None,
                 znode: str | None = None, znode_type: str | None = None,
                 acl: str | None = None) -> str:
    """An AuditEvent line: fields in ZooKeeper's order, nulls left out, result last."""
    pairs = [("session", session), ("user", user), ("ip", ip), ("operation", operation),
             ("znode", znode), ("znode_type", znode_type), ("acl", acl)]
    return "\t".join([f"{k}={v}" for k, v in pairs if v is not None] + [f"result={result}"])


def _user_name(scheme: str, ident: str) -> str | None:
    if scheme == "super":
        return None  # no provider in ZooKeeper: left out
    if scheme == "digest":
        return ident.split(":", 1)[0]
    return ident


class AuditLogger:
    """Writes audit events to a file or to the ``zkernel.audit`` logger."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file = path.open("a", encoding="utf-8", buffering=1) if path else None

    def emit(self, line: str, failure: bool) -> None:
        if self._file is None:
            (log.error if failure else log.info)(line)
            return
        t = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
        stamp += f",{int(t * 1000) % 1000:03d}"
        with self._lock:
            self._file.write(f"{stamp} {'ERROR' if failure else 'INFO'} {line}\n")


class Auditor:
    """Turns answered client writes into audit events (a ``WriteObserver``)."""

    def __init__(self, config: ServerConfig) -> None:
        f = config.get("kernel.audit.file")
        path = Path(f) if f else None
        if path is not None and not path.is_absolute() and config.source is not None:
            path = config.source.parent / path
        self.out = AuditLogger(path)
        self.out.emit(format_event("success", user=_os_user(), operation="serverStart"),
                      False)

    def write_done(self, event: WriteDone) -> None:
        txn = event.txn
        op = _OP_NAMES.get(event.op)
        if op is None or txn is None:
            return
        body = txn.body
        request = event.request
        users = [u for u in (_user_name(i.scheme, i.id) for i in event.ids) if u]
        base = {"session": f"0x{event.session_id:x}", "user": ",".join(users) or None,
                "ip": event.address}
        if isinstance(body, ErrorTxn):
            self._emit("failure", base, op, _path(request), _mode(request),
                       acl_string(request.acl) if isinstance(request, SetACLRequest)
                       and request.acl else None)
        elif isinstance(body, MultiTxn):
            failed = False
            modes = {}
            if isinstance(request, MultiRequest):
                modes = {r.path: r.flags for o, r in request.ops
                         if isinstance(r, CreateRequest)}
            for _sub_op, sub in body.ops:
                if isinstance(sub, ErrorTxn):
                    failed = True
                elif isinstance(sub, CreateTxn):
                    flags = modes.get(sub.path, modes.get(_unsequenced(sub.path, modes), 0))
                    self._emit("success", base, "create", sub.path,
                               _CREATE_MODES.get(flags, "persistent"))
                elif isinstance(sub, DeleteTxn):
                    self._emit("success", base, "delete", sub.path)
                elif isinstance(sub, SetDataTxn):
                    self._emit("success", base, "setData", sub.path)
            if failed:
                self._emit("failure", base, "multiOperation")
        elif isinstance(body, CreateTxn):
            self._emit("success", base, "create", body.path, _mode(request))
        elif isinstance(body, DeleteTxn):
            self._emit("success", base, "delete", body.path)
        elif isinstance(body, SetDataTxn):
            self._emit("success", base, "setData", body.path)
        elif isinstance(body, SetACLTxn):
            self._emit("success", base, "setAcl", body.path, None, acl_string(body.acl))

    def _emit(self, result: str, base: dict[str, Any], op: str, znode: str | None = None,
              znode_type: str | None = None, acl: str | None = None) -> None:
        self.out.emit(format_event(result, base["session"], base["user"], base["ip"], op,
                                   znode, znode_type, acl), result == "failure")


def _unsequenced(path: str, modes: dict[str, int]) -> str:
    for p in modes:
        if path.startswith(p) and len(path) == len(p) + 10:
            return p
    return path


def _path(request: object) -> str | None:
    if isinstance(request, CreateRequest | DeleteRequest | SetDataRequest | SetACLRequest):
        return request.path
    return None


def _mode(request: object) -> str | None:
    if isinstance(request, CreateRequest):
        return _CREATE_MODES.get(request.flags, "persistent")
    return None


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _enabled(config: ServerConfig) -> bool:
    return (config.get("audit.enable") or "false").strip().lower() == "true"


@hookimpl
def zk_write_observers(kernel: Any, config: ServerConfig) -> list[Auditor]:
    """The auditor, when ``audit.enable=true``."""
    return [Auditor(config)] if _enabled(config) else []
