"""The kernel's public API: everything a plugin may import.

Plugins import from here (or the modules it re-exports) and nothing else of the kernel,
so the kernel can reorganise its insides without breaking third-party wheels.
"""

from kernel.acl import ACLChecker, AuthProvider
from kernel.clock import Clock, SystemClock
from kernel.config import ConfigError, ServerConfig
from kernel.core import ClientConnection, Kernel, Session
from kernel.errors import MarshallingError, ProtocolError, Unimplemented, ZooKeeperError
from kernel.hookspecs import CONTRACT_VERSION, hookimpl
from kernel.protocol import (
    OP_SHORT_NAMES,
    XID_AUTH,
    XID_NOTIFICATION,
    XID_PING,
    XID_SET_WATCHES,
    AddWatchMode,
    CreateMode,
    EventType,
    KeeperState,
    OpCode,
    Perm,
    WatcherType,
)
from kernel.records import (
    ACL,
    STAT,
    AuthRequest,
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    EmptyRequest,
    Id,
    MultiRequest,
    OpResult,
    PathRequest,
    PathWatchRequest,
    ReconfigRequest,
    SetACLRequest,
    SetDataRequest,
    SetWatchesRequest,
    Stat,
    WatchTypeRequest,
)
from kernel.storage import Storage, StorageError
from kernel.tree import DataTree, Node, NodeStore
from kernel.txn import Txn

__all__ = [
    "OP_SHORT_NAMES",
    "ACL",
    "ACLChecker",
    "AddWatchMode",
    "AuthProvider",
    "AuthRequest",
    "CONTRACT_VERSION",
    "CheckVersionRequest",
    "ClientConnection",
    "Clock",
    "ConfigError",
    "CreateMode",
    "CreateRequest",
    "DataTree",
    "DeleteRequest",
    "EmptyRequest",
    "EventType",
    "Id",
    "KeeperState",
    "Kernel",
    "MarshallingError",
    "MultiRequest",
    "Node",
    "NodeStore",
    "OpCode",
    "OpResult",
    "PathRequest",
    "PathWatchRequest",
    "Perm",
    "ProtocolError",
    "ReconfigRequest",
    "STAT",
    "ServerConfig",
    "Session",
    "SetACLRequest",
    "SetDataRequest",
    "SetWatchesRequest",
    "Stat",
    "Storage",
    "StorageError",
    "SystemClock",
    "Txn",
    "Unimplemented",
    "WatchTypeRequest",
    "WatcherType",
    "XID_AUTH",
    "XID_NOTIFICATION",
    "XID_PING",
    "XID_SET_WATCHES",
    "ZooKeeperError",
    "hookimpl",
]
