"""The kernel's request and result records.

Field names and order follow the Jute records of the client protocol, so a transport
decoding Jute builds these directly, and any other transport (gRPC) fills the same
fields. They are plain NamedTuples: cheap to build on the hot path, immutable.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

STAT = struct.Struct(">qqqqiiiqiiq")


class Id(NamedTuple):
    """An identity: ``scheme`` and ``id`` (e.g. ``digest``, ``alice:<hash>``)."""

    scheme: str
    id: str


class ACL(NamedTuple):
    """One ACL entry: permission bits and the identity they are granted to."""

    perms: int
    scheme: str
    id: str


class Stat(NamedTuple):
    """A znode's metadata as clients see it (68 bytes on the wire)."""

    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeralOwner: int  # noqa: N815 - wire name
    dataLength: int  # noqa: N815
    numChildren: int  # noqa: N815
    pzxid: int

    def pack(self) -> bytes:
        return STAT.pack(*self)


class CreateRequest(NamedTuple):
    """create / create2 / createContainer / createTTL (``ttl`` is -1 without TTL)."""

    path: str
    data: bytes | None
    acl: list[ACL] | None
    flags: int
    ttl: int = -1


class DeleteRequest(NamedTuple):
    """delete / deleteContainer."""

    path: str
    version: int = -1


class SetDataRequest(NamedTuple):
    """setData."""

    path: str
    data: bytes | None
    version: int = -1


class SetACLRequest(NamedTuple):
    """setACL (``version`` is the expected aversion)."""

    path: str
    acl: list[ACL] | None
    version: int = -1


class CheckVersionRequest(NamedTuple):
    """check (inside multi)."""

    path: str
    version: int


class PathWatchRequest(NamedTuple):
    """exists / getData / getChildren / getChildren2."""

    path: str
    watch: bool = False


class PathRequest(NamedTuple):
    """getACL / sync / getEphemerals / getAllChildrenNumber."""

    path: str


class WatchTypeRequest(NamedTuple):
    """checkWatches / removeWatches (``type`` is a WatcherType) and addWatch (a mode)."""

    path: str
    type: int


class AuthRequest(NamedTuple):
    """An auth packet."""

    type: int
    scheme: str
    auth: bytes


class SetWatchesRequest(NamedTuple):
    """setWatches / setWatches2 sent by clients after a reconnect."""

    relative_zxid: int
    data: list[str]
    exist: list[str]
    child: list[str]
    persistent: list[str]
    persistent_recursive: list[str]


class MultiRequest(NamedTuple):
    """multi / multiRead: a list of (opcode, record) sub-operations."""

    ops: list[tuple[int, object]]


class ReconfigRequest(NamedTuple):
    """reconfig."""

    joining: str | None
    leaving: str | None
    new_members: str | None
    config_id: int


class EmptyRequest(NamedTuple):
    """Operations without a body (ping, closeSession, whoAmI)."""


class OpResult(NamedTuple):
    """One entry of a multi / multiRead result: ``op`` -1 with ``err`` for failures."""

    op: int
    err: int
    value: object = None
