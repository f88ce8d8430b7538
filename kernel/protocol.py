"""Protocol constants shared by the kernel and every transport.

Values are the ones stock ZooKeeper clients put on the wire (``ZooDefs``,
``Watcher.Event``, ``CreateMode``); names follow upstream so they can be looked up.
"""

from __future__ import annotations

from enum import IntEnum


class OpCode(IntEnum):
    """Request type codes (``ZooDefs.OpCode``)."""

    NOTIFICATION = 0
    CREATE = 1
    DELETE = 2
    EXISTS = 3
    GET_DATA = 4
    SET_DATA = 5
    GET_ACL = 6
    SET_ACL = 7
    GET_CHILDREN = 8
    SYNC = 9
    PING = 11
    GET_CHILDREN2 = 12
    CHECK = 13
    MULTI = 14
    CREATE2 = 15
    RECONFIG = 16
    CHECK_WATCHES = 17
    REMOVE_WATCHES = 18
    CREATE_CONTAINER = 19
    DELETE_CONTAINER = 20
    CREATE_TTL = 21
    MULTI_READ = 22
    AUTH = 100
    SET_WATCHES = 101
    SASL = 102
    GET_EPHEMERALS = 103
    GET_ALL_CHILDREN_NUMBER = 104
    SET_WATCHES2 = 105
    ADD_WATCH = 106
    WHO_AM_I = 107
    CREATE_SESSION = -10
    CLOSE_SESSION = -11
    ERROR = -1


#: Opcodes that change state and therefore go through prep → Zab → apply.
WRITE_OPS = frozenset({
    OpCode.CREATE, OpCode.DELETE, OpCode.SET_DATA, OpCode.SET_ACL, OpCode.CHECK,
    OpCode.MULTI, OpCode.CREATE2, OpCode.RECONFIG, OpCode.CREATE_CONTAINER,
    OpCode.DELETE_CONTAINER, OpCode.CREATE_TTL, OpCode.CLOSE_SESSION,
    OpCode.CREATE_SESSION,
})

CREATE_OPS = frozenset({OpCode.CREATE, OpCode.CREATE2, OpCode.CREATE_CONTAINER,
                        OpCode.CREATE_TTL})


class EventType(IntEnum):
    """Watch notification types (``Watcher.Event.EventType``)."""

    NONE = -1
    NODE_CREATED = 1
    NODE_DELETED = 2
    NODE_DATA_CHANGED = 3
    NODE_CHILDREN_CHANGED = 4
    DATA_WATCH_REMOVED = 5
    CHILD_WATCH_REMOVED = 6
    PERSISTENT_WATCH_REMOVED = 7


class KeeperState(IntEnum):
    """Connection states carried in a WatcherEvent; servers always send SYNC_CONNECTED."""

    DISCONNECTED = 0
    SYNC_CONNECTED = 3
    AUTH_FAILED = 4
    CONNECTED_READ_ONLY = 5
    SASL_AUTHENTICATED = 6
    EXPIRED = -112
    CLOSED = 7


class WatcherType(IntEnum):
    """The ``type`` of checkWatches / removeWatches."""

    CHILDREN = 1
    DATA = 2
    ANY = 3
    PERSISTENT = 4
    PERSISTENT_RECURSIVE = 5


class AddWatchMode(IntEnum):
    """The ``mode`` of addWatch."""

    PERSISTENT = 0
    PERSISTENT_RECURSIVE = 1


class CreateMode(IntEnum):
    """Create flags (``CreateMode``)."""

    PERSISTENT = 0
    EPHEMERAL = 1
    PERSISTENT_SEQUENTIAL = 2
    EPHEMERAL_SEQUENTIAL = 3
    CONTAINER = 4
    PERSISTENT_WITH_TTL = 5
    PERSISTENT_SEQUENTIAL_WITH_TTL = 6

    @property
    def is_ephemeral(self) -> bool:
        return self in (CreateMode.EPHEMERAL, CreateMode.EPHEMERAL_SEQUENTIAL)

    @property
    def is_sequential(self) -> bool:
        return self in (CreateMode.PERSISTENT_SEQUENTIAL, CreateMode.EPHEMERAL_SEQUENTIAL,
                        CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL)

    @property
    def is_ttl(self) -> bool:
        return self in (CreateMode.PERSISTENT_WITH_TTL, CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL)


class Perm(IntEnum):
    """ACL permission bits."""

    READ = 1
    WRITE = 2
    CREATE = 4
    DELETE = 8
    ADMIN = 16
    ALL = 31


# Special xids.
XID_NOTIFICATION = -1
XID_PING = -2
XID_AUTH = -4
XID_SET_WATCHES = -8

#: ephemeralOwner markers for containers and TTL nodes, as ZooKeeper stores them.
CONTAINER_EPHEMERAL_OWNER = -0x8000000000000000
TTL_MARKER = -0x0100000000000000  # 0xFF00000000000000 as a signed long
MAX_TTL = 0xFF_FFFF_FFFF

DEFAULT_JUTE_MAXBUFFER = 0xFFFFF

OWNER_NONE, OWNER_SESSION, OWNER_CONTAINER, OWNER_TTL = range(4)


def owner_kind(owner: int) -> int:
    """What a stored ephemeralOwner means (ZooKeeper's EphemeralType): 0 for a plain
    node, the container marker, a TTL (top byte 0xFF), or else a session id. Session ids
    carry the server id (1..254) in the top byte, so they may be negative."""
    if owner == 0:
        return OWNER_NONE
    if owner == CONTAINER_EPHEMERAL_OWNER:
        return OWNER_CONTAINER
    if (owner >> 56) & 0xFF == 0xFF:
        return OWNER_TTL
    return OWNER_SESSION

#: The short op names ``cons`` prints as ``lop=``.
OP_SHORT_NAMES: dict[int, str] = {
    OpCode.CREATE_SESSION: "SESS", OpCode.PING: "PING", OpCode.CREATE: "CREA",
    OpCode.CREATE2: "CREA", OpCode.CREATE_CONTAINER: "CREA", OpCode.CREATE_TTL: "CREA",
    OpCode.DELETE: "DELE", OpCode.DELETE_CONTAINER: "DELE", OpCode.SET_DATA: "SETD",
    OpCode.GET_DATA: "GETD", OpCode.EXISTS: "EXIS", OpCode.GET_CHILDREN: "GETC",
    OpCode.GET_CHILDREN2: "GETC", OpCode.GET_ACL: "GETA", OpCode.SET_ACL: "SETA",
    OpCode.SYNC: "SYNC", OpCode.MULTI: "MULT", OpCode.MULTI_READ: "MLTR",
    OpCode.CHECK: "CHEC", OpCode.CLOSE_SESSION: "CLOS", OpCode.SET_WATCHES: "SETW",
    OpCode.SET_WATCHES2: "STW2", OpCode.ADD_WATCH: "ADDW", OpCode.CHECK_WATCHES: "CHKW",
    OpCode.REMOVE_WATCHES: "REMW", OpCode.WHO_AM_I: "HOMI", OpCode.GET_EPHEMERALS: "GETE",
    OpCode.GET_ALL_CHILDREN_NUMBER: "GETACN", OpCode.RECONFIG: "RECO",
    OpCode.AUTH: "AUTH", OpCode.SASL: "SASL",
}
