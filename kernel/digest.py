"""The tree digest: a 64-bit hash of the whole znode tree, kept up to date per txn.

Modelled on Apache ZooKeeper's (digest version 2), so replicas can be compared at the
same zxid and a zkernel tree can be checked against the digest of the same tree in
ZooKeeper:

* a node contributes the CRC-32 of its path (UTF-8; the root is hashed as ``""``), its
  data, and a 60-byte big-endian block of stat fields: czxid, mzxid, pzxid, ctime,
  mtime (8 bytes each), version, the child-creation counter ``c`` (what ZooKeeper
  persists as cversion), aversion (4 bytes each) and the raw ephemeralOwner (8 bytes);
* nodes under ``/zookeeper/`` contribute 0 (ZooKeeper leaves them out because some of
  them change without a txn); ``/zookeeper`` itself counts;
* the tree digest is the sum of the node digests modulo 2**64: adding a node adds its
  digest, removing one subtracts it, a change subtracts the old digest and adds the new
  one, so the value does not depend on the order of the nodes and costs O(1) per change.

``DataTree`` keeps ``digest`` (unsigned, 0 <= d < 2**64) incrementally in ``apply``;
``compute_digest`` recomputes it from scratch. Four-letter words print it as a Java
``long`` (``java_long``), the way ZooKeeper's ``hash`` does.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kernel.tree import DataTree

#: Bumped whenever the fields or their layout change (ZooKeeper's DIGEST_VERSION).
DIGEST_VERSION = 2
#: ZooKeeper keeps the digest of every zxid that is a multiple of this...
LOG_INTERVAL = 128
#: ...and at most this many of them.
LOG_LIMIT = 1024
#: Paths below this prefix are not part of the digest.
EXCLUDED_PREFIX = "/zookeeper/"
MASK64 = (1 << 64) - 1

# czxid mzxid pzxid ctime mtime | version c aversion | ephemeralOwner: 60 bytes.
STAT_FIELDS = struct.Struct(">qqqqqiiiq")
_pack_stat = STAT_FIELDS.pack
_crc32 = zlib.crc32


class DigestNode(Protocol):
    """The node fields the digest reads (``kernel.tree.Node`` has them)."""

    data: bytes | None
    czxid: int
    mzxid: int
    pzxid: int
    ctime: int
    mtime: int
    version: int
    c: int
    aversion: int
    owner: int


def excluded(path: str) -> bool:
    """True for the paths that do not contribute to the digest."""
    return path.startswith(EXCLUDED_PREFIX)


def path_data_crc(path: str, data: bytes | None) -> int:
    """CRC-32 over the path and the data: the part of a node's digest that only
    ``setData`` changes (the tree caches it per node)."""
    crc = 0 if path == "/" or not path else _crc32(path.encode("utf-8"))
    return _crc32(data, crc) if data else crc


def stat_crc(prefix: int, node: DigestNode) -> int:
    """A node's digest given ``path_data_crc`` of its path and current data."""
    return _crc32(_pack_stat(node.czxid, node.mzxid, node.pzxid, node.ctime, node.mtime,
                             node.version, node.c, node.aversion, node.owner), prefix)


def node_digest(path: str, node: DigestNode) -> int:
    """A node's contribution to the tree digest, computed from scratch."""
    if path.startswith(EXCLUDED_PREFIX):
        return 0
    return stat_crc(path_data_crc(path, node.data), node)


def sum_digests(items: Iterable[tuple[str, DigestNode]]) -> int:
    """The tree digest of the given (path, node) pairs (each real node once)."""
    total = 0
    for path, node in items:
        if path.startswith(EXCLUDED_PREFIX):
            continue
        total += stat_crc(path_data_crc(path, node.data), node)
    return total & MASK64


def compute_digest(tree: DataTree) -> int:
    """The digest of the whole tree, recomputed from every node (no cached values):
    for verification, and for trees whose digest was never stored. The root alias
    ``""`` is not counted separately."""
    return sum_digests(tree.walk())


def java_long(digest: int) -> int:
    """The digest as ZooKeeper prints it: a signed 64-bit value."""
    digest &= MASK64
    return digest - (1 << 64) if digest >= 1 << 63 else digest
