"""Read an Apache ZooKeeper 3.x data directory into a zkernel ``DataTree``.

``read_zookeeper_datadir(path)`` loads what a stopped ZooKeeper server would load on
start-up: the newest valid ``snapshot.<zxid>`` plus every transaction of the
``log.<zxid>`` files after that zxid, applied with ZooKeeper's own replay rules. The
result is checked far more strictly than ZooKeeper checks it; anything corrupt, partial
or inconsistent raises ``ZooKeeperDataError`` naming the file and byte offset.

File formats (Jute encoding: big-endian ints/longs, length-prefixed buffers/strings,
-1 meaning null):

Snapshot ``snapshot.<hex zxid>`` (optionally ``.gz``; ``.snappy`` is refused), read as
one stream (after gunzip for ``.gz``):

* FileHeader ``{int magic 'ZKSN', int version 2, long dbid}``;
* sessions ``int count`` then ``count`` times ``{long id, int timeout}``;
* the ACL cache ``int count`` then ``{long id, vector<ACL>}`` (ACL = ``{int perms,
  ustring scheme, ustring id}``); nodes refer to these ids, -1 meaning OPEN_ACL_UNSAFE;
* nodes in pre-order, each ``{ustring path, buffer data, long acl, StatPersisted}``
  where StatPersisted is ``{czxid, mzxid, ctime, mtime, int version, int cversion,
  int aversion, ephemeralOwner, pzxid}``; the root's path is the empty string, and
  the path ``"/"`` ends the list;
* a seal ``{long adler32 of every byte before it, ustring "/"}``;
* (3.6+, unless digests are disabled) ``{long zxid, int digestVersion, long digest}``
  (a hex ustring digest for digestVersion < 2) followed by a second seal whose
  Adler32 covers everything before it, first seal included.

Transaction log ``log.<hex zxid>`` (the zxid of its first transaction): FileHeader
``{int magic 'ZKLG', int version 2, long dbid}`` then entries ``{long crc, int length,
length bytes, byte 0x42}`` where crc is the Adler32 of the ``length`` bytes only, which
hold a TxnHeader ``{long sessionId, int cxid, long zxid, long time, int type}``, the
type's record, and (3.6+) a TxnDigest ``{int version, long treeDigest}``. Files are
pre-allocated with zeros: a zero length marks the end of the log.

Two facts the importer relies on, both from ZooKeeper's source:

* The persisted ``cversion`` is already the count of child *creations* (zkernel's
  ``Node.c``); ZooKeeper derives the visible cversion as ``2*cversion - numChildren``
  when it answers a client, exactly as zkernel does. So ``Node.c`` is the stored value
  unchanged, and the visible stats round-trip.
* Snapshots are fuzzy: taken while transactions are being applied. Replay starts at the
  snapshot name's zxid + 1 and tolerates NoNode/NodeExists the way ZooKeeper does
  (including its cversion/pzxid repair for a re-applied create).

Policy (ZooKeeper's own start-up behaviour, made stricter where it would silently lose
or invent data):

* The newest snapshot that parses and whose checksums match is used; invalid newer
  ones are skipped (listed in ``ImportResult.skipped_snapshots``) like ZooKeeper does,
  unless ``strict=True``. If snapshots exist but none is valid, the import fails.
* Without any snapshot, the logs must start at zxid 1 (or 0x100000001, the first
  transaction of a fresh ensemble); otherwise the import fails.
* Every transaction after the snapshot must follow the previous one: the next counter
  in the same epoch, or counter 1 of a later epoch. Gaps, duplicates and reordering fail.
* A CRC mismatch fails wherever it is. A torn entry (cut short, or missing its 0x42
  end-of-record byte: a crash in the middle of an append) is accepted only as the last
  entry of the newest log -- that transaction was never acknowledged -- and is reported
  in ``ImportResult.torn_tail``; anywhere else (or with ``strict=True``) it fails.
* ZooKeeper 3.6+ records its tree digest in the snapshot and after every logged
  transaction. Past the snapshot's fuzzy window the imported tree's digest is compared
  with each of them, as ZooKeeper does on start-up -- minus ZooKeeper's false alarm
  when a transaction was in flight while the snapshot was written. A mismatch is
  reported (the first one in ``digest_mismatch_zxid``); with ``strict_digest=True`` it
  fails the import.
* Ephemeral nodes whose session is not in the session table are deleted after replay,
  as ZooKeeper does when it loads its database.

Refused as unsupported: snappy-compressed snapshots, transaction types other than
ZooKeeper 3.x's (create/create2/createContainer/createTTL, delete/deleteContainer,
setData, reconfig, setACL, multi, createSession, closeSession, error), and stored
ephemeralOwners zkernel cannot tell apart (a top byte 0xFF with reserved bits set).

The tree keeps zkernel's conventions: the root under "/" and its "" alias, ``Node.c``
the stored cversion, and zkernel's ``/zookeeper`` nodes added if the data predates them.

Session passwords are not stored by ZooKeeper: it derives them from the session id
(``java.util.Random(id ^ 0xB3415C00).nextBytes(16)``). ``zookeeper_session_password``
reproduces that, so clients can resume their sessions on zkernel after the import.
"""

from __future__ import annotations

import gzip
import mmap
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from kernel.acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from kernel.errors import ProtocolError
from kernel.jute import Reader
from kernel.protocol import (
    CONTAINER_EPHEMERAL_OWNER,
    MAX_TTL,
    OWNER_SESSION,
    OWNER_TTL,
    TTL_MARKER,
    OpCode,
    owner_kind,
)
from kernel.records import ACL
from kernel.tree import DataTree, Node, SessionRecord, index_owner, unindex_owner

__all__ = [
    "ImportResult",
    "LogEntry",
    "Snapshot",
    "TxnLogFile",
    "ZooKeeperDataError",
    "read_snapshot",
    "read_zookeeper_datadir",
    "tree_digest",
    "unresolved_acl",
    "zookeeper_session_password",
]

SNAP_MAGIC = 0x5A4B534E  # "ZKSN"
LOG_MAGIC = 0x5A4B4C47  # "ZKLG"
FORMAT_VERSION = 2
DIGEST_VERSION = 2  # DigestCalculator's version in 3.6 .. 3.9
EOR = 0x42  # 'B', the end-of-record byte after every log entry

_SNAP_NAME = re.compile(r"^snapshot\.([0-9a-fA-F]{1,16})(?:\.(gz|snappy))?$")
_LOG_NAME = re.compile(r"^log\.([0-9a-fA-F]{1,16})$")

_FILE_HEADER = struct.Struct(">iiq")
_STAT_PERSISTED = struct.Struct(">qqqqiiiqq")
_TXN_HEADER = struct.Struct(">qiqqi")
_ENTRY_PREFIX = struct.Struct(">qi")
_DIGEST_STAT = struct.Struct(">qqqqqiiiq")
_DIGEST_SIZE = 12  # TxnDigest: int version + long treeDigest
_SESSION_SECRET = 0xB3415C00
_MASK64 = (1 << 64) - 1
_COUNTER_MASK = 0xFFFFFFFF
_SYSTEM_SUBTREE = "/zookeeper/"


class ZooKeeperDataError(Exception):
    """The ZooKeeper data is corrupt, partial, inconsistent or unsupported.

    ``file`` and ``offset`` locate the problem (the offset is into the decompressed
    stream for a ``.gz`` snapshot); either may be None when it concerns the directory.
    """

    def __init__(self, file: Path | str | None, offset: int | None, reason: str) -> None:
        self.file = Path(file) if file is not None else None
        self.offset = offset
        self.reason = reason
        where = str(file) if file is not None else "ZooKeeper data"
        if offset is not None:
            where += f" at offset {offset}"
        super().__init__(f"{where}: {reason}")


# -- java.util.Random and session passwords ----------------------------------------------

_LCG_MULT = 0x5DEECE66D
_LCG_ADD = 0xB
_LCG_MASK = (1 << 48) - 1


def _java_random_bytes(seed: int, n: int) -> bytes:
    """``new java.util.Random(seed).nextBytes(new byte[n])``."""
    state = (seed ^ _LCG_MULT) & _LCG_MASK
    out = bytearray()
    while len(out) < n:
        state = (state * _LCG_MULT + _LCG_ADD) & _LCG_MASK
        rnd = state >> 16  # next(32): the top 32 of the 48 bits
        for _ in range(min(4, n - len(out))):
            out.append(rnd & 0xFF)
            rnd >>= 8
    return bytes(out)


def zookeeper_session_password(session_id: int) -> bytes:
    """The 16-byte password Apache ZooKeeper gives session ``session_id``."""
    return _java_random_bytes(session_id ^ _SESSION_SECRET, 16)


# -- ZooKeeper's tree digest (DigestCalculator version 2) ----------------------------------

def node_digest(path: str, node: Node) -> int:
    """One node's contribution to ZooKeeper's tree digest (0 under /zookeeper/)."""
    if path.startswith(_SYSTEM_SUBTREE):
        return 0
    crc = zlib.crc32(b"" if path == "/" else path.encode("utf-8"))
    if node.data is not None:
        crc = zlib.crc32(node.data, crc)
    return zlib.crc32(_DIGEST_STAT.pack(node.czxid, node.mzxid, node.pzxid, node.ctime,
                                        node.mtime, node.version, node.c, node.aversion,
                                        node.owner), crc)


def _signed64(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v >> 63 else v


def tree_digest(nodes: dict[str, Node]) -> int:
    """ZooKeeper's digest of a whole tree: the 64-bit sum of every node's digest."""
    return _signed64(sum(node_digest(p, n) for p, n in nodes.items()))


# -- Jute helpers ----------------------------------------------------------------------------

def _read_acl(r: Reader) -> ACL:
    return ACL(r.int(), r.string(), r.string())


def _intern_acl(acl: tuple[ACL, ...], cache: dict[tuple[ACL, ...], tuple[ACL, ...]]
                ) -> tuple[ACL, ...]:
    if acl == OPEN_ACL_UNSAFE:
        return OPEN_ACL_UNSAFE
    if acl == READ_ACL_UNSAFE:
        return READ_ACL_UNSAFE
    return cache.setdefault(acl, acl)


def _read_acl_vector(r: Reader) -> tuple[ACL, ...] | None:
    v = r.vector(_read_acl)
    return None if v is None else tuple(v)


def _parse_name(name: str, pattern: re.Pattern[str]) -> tuple[int, str] | None:
    m = pattern.match(name)
    if m is None:
        return None
    zxid = int(m.group(1), 16)
    if zxid >> 63:
        return None  # Long.parseLong refuses it, so ZooKeeper ignores the file
    ext = m.group(2) if m.lastindex and m.lastindex >= 2 else None
    return zxid, ext or ""


def _hexz(zxid: int) -> str:
    return f"0x{zxid:x}"


# -- snapshots -------------------------------------------------------------------------------

class SnapshotDigest(NamedTuple):
    """The ``{zxid, digestVersion, digest}`` record after a 3.6+ snapshot's tree."""

    zxid: int
    version: int
    digest: int


@dataclass
class Snapshot:
    """A parsed, checksum-verified snapshot. ``nodes`` is keyed with "/" for the root;
    ``Node.c`` holds the stored cversion (the creation count).

    ``dangling_acls`` maps path -> (ACL id, offset) for nodes whose ACL id is not in the
    snapshot's ACL cache: a fuzzy snapshot can catch a node whose create/setACL (after
    the snapshot's zxid) introduced a new ACL after the cache was written. Those nodes
    carry ``unresolved_acl(id)``, which grants nothing, until replay sets their ACL.
    """

    path: Path
    zxid: int
    dbid: int
    sessions: dict[int, int]
    nodes: dict[str, Node]
    acl_count: int
    digest: SnapshotDigest | None
    compression: str
    dangling_acls: dict[str, tuple[int, int]] = field(default_factory=dict)


def unresolved_acl(acl_id: int) -> tuple[ACL, ...]:
    """The placeholder ACL of a node whose ACL id is unknown (no permission to anyone)."""
    return (ACL(0, "zk-import", f"unresolved-acl-id-{acl_id}"),)


def read_snapshot(path: Path | str) -> Snapshot:
    """Parse and verify one snapshot file; ``ZooKeeperDataError`` if it is not valid."""
    path = Path(path)
    parsed = _parse_name(path.name, _SNAP_NAME)
    if parsed is None:
        raise ZooKeeperDataError(path, None, "not a snapshot file name (snapshot.<hex zxid>)")
    zxid, ext = parsed
    if ext == "snappy":
        raise ZooKeeperDataError(
            path, None,
            "snappy-compressed snapshots are not supported; restart ZooKeeper with "
            "zookeeper.snapshot.compression.method unset (or 'gz') so that it writes a "
            "new snapshot in a supported format, then import again")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ZooKeeperDataError(path, None, f"cannot read: {e.strerror or e}") from None
    if ext == "gz":
        try:
            data = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ZooKeeperDataError(path, None, f"corrupt or truncated gzip stream: {e}"
                                     ) from None
    else:
        data = raw
    return _parse_snapshot(path, zxid, data, ext)


def _parse_snapshot(path: Path, zxid: int, data: bytes, compression: str) -> Snapshot:
    r = Reader(data, max_len=len(data))

    def fail(offset: int, reason: str) -> ZooKeeperDataError:
        if compression:
            reason += " (offset into the decompressed stream)"
        return ZooKeeperDataError(path, offset, reason)

    try:
        if len(data) < _FILE_HEADER.size:
            raise fail(0, f"truncated snapshot: {len(data)} bytes, no complete file header")
        magic, version, dbid = r.int(), r.int(), r.long()
        if magic != SNAP_MAGIC:
            raise fail(0, f"bad magic {magic & 0xFFFFFFFF:#010x} (expected 'ZKSN' "
                          f"{SNAP_MAGIC:#010x}): not a ZooKeeper snapshot")
        if version != FORMAT_VERSION:
            raise fail(4, f"unsupported snapshot format version {version}")

        at = r.pos
        count = r.int()
        if count < 0:
            raise fail(at, f"impossible session count {count}")
        sessions: dict[int, int] = {}
        for _ in range(count):
            sid = r.long()
            sessions[sid] = r.int()

        at = r.pos
        count = r.int()
        if count < 0:
            raise fail(at, f"impossible ACL cache size {count}")
        interned: dict[tuple[ACL, ...], tuple[ACL, ...]] = {}
        acls: dict[int, tuple[ACL, ...]] = {}
        for _ in range(count):
            aid = r.long()
            at = r.pos
            vec = _read_acl_vector(r)
            if vec is None:
                raise fail(at, f"ACL cache entry {aid} has a null ACL list")
            acls[aid] = _intern_acl(vec, interned)

        nodes: dict[str, Node] = {}
        dangling: dict[str, tuple[int, int]] = {}
        unpack_stat = _STAT_PERSISTED.unpack_from
        stat_size = _STAT_PERSISTED.size
        while True:
            at = r.pos
            p = r.ustring()
            if p is None:
                raise fail(at, "null node path")
            if p == "/":
                break
            node_data = r.buffer()
            aid = r.long()
            sp = r.pos
            if r.end - sp < stat_size:
                raise ProtocolError(f"record truncated: need {stat_size} bytes at {sp}")
            czxid, mzxid, ctime, mtime, ver, cver, aver, owner, pzxid = unpack_stat(data, sp)
            r.pos = sp + stat_size
            if aid == -1:
                acl = OPEN_ACL_UNSAFE
            else:
                found = acls.get(aid)
                if found is None:
                    # Tolerated like ZooKeeper does; replay must resolve it (see Snapshot).
                    dangling[p or "/"] = (aid, at)
                    found = unresolved_acl(aid)
                acl = found
            node = Node(node_data, acl, czxid, ctime, owner)
            node.mzxid = mzxid
            node.mtime = mtime
            node.version = ver
            node.c = cver
            node.aversion = aver
            node.pzxid = pzxid
            if p == "":
                key = "/"
                if nodes:
                    raise fail(at, "root node appears after other nodes")
            else:
                key = p
                i = p.rfind("/")
                if i < 0:
                    raise fail(at, f"invalid node path {p!r}")
                if p in nodes:
                    raise fail(at, f"duplicate node {p!r}")
                parent = nodes.get(p[:i] or "/")
                if parent is None:
                    raise fail(at, f"node {p!r} precedes its parent (invalid DataTree)")
                parent.children.add(p[i + 1:])
                problem = _owner_problem(owner)
                if problem:
                    raise fail(at, f"node {p!r}: {problem}")
            nodes[key] = node
        if "/" not in nodes:
            raise fail(r.pos, "snapshot holds no root node")

        seal_at = r.pos
        stored = r.long()
        computed = zlib.adler32(memoryview(data)[:seal_at])
        marker = r.ustring()
        if stored != computed:
            raise fail(seal_at, f"snapshot checksum mismatch: stored {stored & _MASK64:#x}, "
                                f"computed {computed:#x}")
        if marker != "/":
            raise fail(seal_at + 8, f"bad end-of-snapshot marker {marker!r}")

        digest: SnapshotDigest | None = None
        if r.remaining() > 0:
            dzxid = r.long()
            dver = r.int()
            if dver < 2:
                s = r.ustring()
                try:
                    dval = int(s, 16) if s else 0
                except ValueError:
                    raise fail(r.pos, f"bad hex digest {s!r}") from None
            else:
                dval = r.long()
            digest = SnapshotDigest(dzxid, dver, _signed64(dval))
            seal_at = r.pos
            stored = r.long()
            computed = zlib.adler32(memoryview(data)[:seal_at])
            marker = r.ustring()
            if stored != computed:
                raise fail(seal_at, "snapshot checksum mismatch after the digest: stored "
                                    f"{stored & _MASK64:#x}, computed {computed:#x}")
            if marker != "/":
                raise fail(seal_at + 8, f"bad end-of-snapshot marker {marker!r}")
        if r.remaining() > 0:
            raise fail(r.pos, f"{r.remaining()} unexpected bytes after the end of the snapshot")
    except ProtocolError as e:
        raise fail(r.pos, f"truncated or malformed snapshot ({e})") from None
    return Snapshot(path, zxid, dbid, sessions, nodes, len(acls), digest, compression,
                    dangling)


def _owner_problem(owner: int) -> str:
    """Why zkernel cannot represent this stored ephemeralOwner faithfully, or ""."""
    if owner_kind(owner) == OWNER_TTL and owner & 0x00FFFF0000000000:
        return (f"ephemeralOwner {owner & _MASK64:#018x} has reserved bits set "
                "(neither a TTL node nor a representable session)")
    return ""


# -- transaction logs -----------------------------------------------------------------------

class CreateBody(NamedTuple):
    """CreateTxn / CreateTxnV0 (parent_cversion -1) / CreateTTLTxn / CreateContainerTxn."""

    path: str
    data: bytes | None
    acl: tuple[ACL, ...] | None
    ephemeral: bool
    parent_cversion: int
    ttl: int


class DeleteBody(NamedTuple):
    path: str


class SetDataBody(NamedTuple):
    path: str
    data: bytes | None
    version: int


class SetACLBody(NamedTuple):
    path: str
    acl: tuple[ACL, ...] | None
    version: int


class CheckBody(NamedTuple):
    path: str
    version: int


class ErrorBody(NamedTuple):
    err: int


class CreateSessionBody(NamedTuple):
    timeout: int


class CloseSessionBody(NamedTuple):
    """``paths`` is None for logs written without CloseSessionTxn (before 3.6)."""

    paths: tuple[str, ...] | None


class MultiBody(NamedTuple):
    ops: tuple[tuple[int, object], ...]


class LogEntry(NamedTuple):
    """One transaction of a log file; ``digest`` is the TxnDigest (version, digest)."""

    offset: int
    zxid: int
    session_id: int
    cxid: int
    time: int
    type: int
    body: object
    digest: tuple[int, int] | None


def _create_v1(r: Reader) -> CreateBody:
    p, d, a = r.string(), r.buffer(), _read_acl_vector(r)
    e = r.bool()
    return CreateBody(p, d, a, e, r.int(), 0)


def _create_v0(r: Reader) -> CreateBody:
    p, d, a = r.string(), r.buffer(), _read_acl_vector(r)
    return CreateBody(p, d, a, r.bool(), -1, 0)


def _create_ttl(r: Reader) -> CreateBody:
    p, d, a = r.string(), r.buffer(), _read_acl_vector(r)
    cv = r.int()
    return CreateBody(p, d, a, False, cv, r.long())


def _create_container(r: Reader) -> CreateBody:
    p, d, a = r.string(), r.buffer(), _read_acl_vector(r)
    return CreateBody(p, d, a, False, r.int(), 0)


def _delete(r: Reader) -> DeleteBody:
    return DeleteBody(r.string())


def _set_data(r: Reader) -> SetDataBody:
    p, d = r.string(), r.buffer()
    return SetDataBody(p, d, r.int())


def _set_acl(r: Reader) -> SetACLBody:
    p, a = r.string(), _read_acl_vector(r)
    return SetACLBody(p, a, r.int())


def _check(r: Reader) -> CheckBody:
    p = r.string()
    return CheckBody(p, r.int())


def _error(r: Reader) -> ErrorBody:
    return ErrorBody(r.int())


def _create_session(r: Reader) -> CreateSessionBody:
    return CreateSessionBody(r.int())


def _close_session(r: Reader) -> CloseSessionBody:
    v = r.vector(lambda rr: rr.string())
    return CloseSessionBody(None if v is None else tuple(v))


def _no_body(r: Reader) -> CloseSessionBody:
    return CloseSessionBody(None)


_SUB_PARSERS: dict[int, Callable[[Reader], object]] = {
    OpCode.CREATE: _create_v1,
    OpCode.CREATE_TTL: _create_ttl,
    OpCode.CREATE_CONTAINER: _create_container,
    OpCode.DELETE: _delete,
    OpCode.DELETE_CONTAINER: _delete,
    OpCode.SET_DATA: _set_data,
    OpCode.CHECK: _check,
    OpCode.ERROR: _error,
}


def _multi(r: Reader) -> MultiBody:
    n = r.int()
    if n < 0 or n > r.remaining():
        raise ProtocolError(f"impossible multi size {n}")
    ops: list[tuple[int, object]] = []
    for _ in range(n):
        sub_type = r.int()
        raw = r.buffer() or b""
        parser = _SUB_PARSERS.get(sub_type)
        if parser is None:
            raise ProtocolError(f"operation type {sub_type} cannot appear in a multi")
        sr = Reader(raw, max_len=len(raw))
        body = parser(sr)
        if sr.remaining():
            raise ProtocolError(f"{sr.remaining()} stray bytes after a multi sub-operation")
        ops.append((sub_type, body))
    return MultiBody(tuple(ops))


# Each type's body layouts, tried in order: a layout fits when it leaves either nothing
# or exactly one TxnDigest. (ZooKeeper has the same ambiguities and guesses similarly.)
_PARSERS: dict[int, tuple[Callable[[Reader], object], ...]] = {
    OpCode.CREATE: (_create_v1, _create_v0),
    OpCode.CREATE2: (_create_v1,),
    OpCode.CREATE_TTL: (_create_ttl,),
    OpCode.CREATE_CONTAINER: (_create_container,),
    OpCode.DELETE: (_delete,),
    OpCode.DELETE_CONTAINER: (_delete,),
    OpCode.SET_DATA: (_set_data,),
    OpCode.RECONFIG: (_set_data,),
    OpCode.SET_ACL: (_set_acl,),
    OpCode.CREATE_SESSION: (_create_session,),
    OpCode.CLOSE_SESSION: (_close_session, _no_body),
    OpCode.ERROR: (_error,),
    OpCode.MULTI: (_multi,),
}


def _decode_entry(path: Path, offset: int, buf: bytes) -> LogEntry:
    if len(buf) < _TXN_HEADER.size:
        raise ZooKeeperDataError(path, offset, f"transaction of {len(buf)} bytes is shorter "
                                               "than a transaction header")
    sid, cxid, zxid, time, typ = _TXN_HEADER.unpack_from(buf, 0)
    parsers = _PARSERS.get(typ)
    if parsers is None:
        raise ZooKeeperDataError(path, offset, f"unsupported transaction type {typ} "
                                               f"(zxid {_hexz(zxid)})")
    problem = ""
    for parse in parsers:
        r = Reader(buf, _TXN_HEADER.size, max_len=len(buf))
        try:
            body = parse(r)
        except ProtocolError as e:
            problem = str(e)
            continue
        left = r.remaining()
        if left == 0:
            return LogEntry(offset, zxid, sid, cxid, time, typ, body, None)
        if left == _DIGEST_SIZE:
            version, digest = r.int(), r.long()
            return LogEntry(offset, zxid, sid, cxid, time, typ, body, (version, digest))
        problem = f"{left} unexpected bytes after the record"
    raise ZooKeeperDataError(path, offset, f"malformed transaction (type {typ}, zxid "
                                           f"{_hexz(zxid)}): {problem}")


class TxnLogFile:
    """One ``log.<zxid>`` file. Iterate ``entries()``; afterwards ``torn_offset`` says
    whether the log ended with a torn (partial) entry, and where."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        parsed = _parse_name(self.path.name, _LOG_NAME)
        self.start_zxid = parsed[0] if parsed else -1
        self.dbid = 0
        self.end_offset = 0
        self.torn_offset: int | None = None
        self.torn_reason = ""

    def entries(self) -> Iterator[LogEntry]:
        """Every CRC-checked transaction, in file order (raises on corruption)."""
        path = self.path
        try:
            f = open(path, "rb")
        except OSError as e:
            raise ZooKeeperDataError(path, None, f"cannot read: {e.strerror or e}") from None
        with f:
            size = os.fstat(f.fileno()).st_size
            if size < _FILE_HEADER.size:
                # A crash (or a full disk) right after creating the file: no entries.
                self._torn(0, f"the file has {size} bytes, not even a complete header")
                return
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                yield from self._scan(mm, size)

    def _scan(self, mm: mmap.mmap, size: int) -> Iterator[LogEntry]:
        path = self.path
        magic, version, self.dbid = _FILE_HEADER.unpack_from(mm, 0)
        if magic != LOG_MAGIC:
            raise ZooKeeperDataError(path, 0, f"bad magic {magic & 0xFFFFFFFF:#010x} "
                                              f"(expected 'ZKLG' {LOG_MAGIC:#010x}): not a "
                                              "ZooKeeper transaction log")
        if version != FORMAT_VERSION:
            raise ZooKeeperDataError(path, 4, f"unsupported log format version {version}")
        pos = _FILE_HEADER.size
        prefix = _ENTRY_PREFIX.size
        while True:
            self.end_offset = pos
            if size - pos < prefix:
                if mm[pos:size].strip(b"\0"):
                    self._torn(pos, "the file ends inside an entry's checksum/length")
                return
            crc, length = _ENTRY_PREFIX.unpack_from(mm, pos)
            if length == 0:
                return  # the pre-allocated zero padding: end of the log
            end = pos + prefix + length
            if length < 0:
                self._torn(pos, f"invalid entry length {length}")
                return
            if end + 1 > size:
                self._torn(pos, f"entry of {length} bytes runs past the end of the file")
                return
            if mm[end] != EOR:
                self._torn(pos, f"entry of {length} bytes lacks its end-of-record byte 0x42")
                return
            buf = mm[pos + prefix:end]
            computed = zlib.adler32(buf)
            if crc != computed:
                raise ZooKeeperDataError(path, pos, f"CRC mismatch: stored {crc & _MASK64:#x}, "
                                                    f"computed {computed:#x}")
            yield _decode_entry(path, pos, buf)
            pos = end + 1

    def _torn(self, offset: int, reason: str) -> None:
        self.torn_offset = offset
        self.torn_reason = reason


# -- replay with ZooKeeper's semantics -------------------------------------------------------

class _NoNode(Exception):
    pass


class _NodeExists(Exception):
    pass


def _split(path: str) -> tuple[str, str]:
    """(parent key, child name) as ZooKeeper splits a path; the root's key is "/"."""
    i = path.rfind("/")
    if i < 0 or path == "/":
        raise _NoNode(path)
    return path[:i] or "/", path[i + 1:]


class _Replayer:
    """Applies log transactions to snapshot state exactly as DataTree.processTxn does,
    keeping ZooKeeper's tree digest up to date as it goes."""

    def __init__(self, nodes: dict[str, Node], sessions: dict[int, int],
                 unresolved: dict[str, tuple[int, int]] | None = None) -> None:
        self.nodes = nodes
        self.sessions = sessions
        # Nodes of a fuzzy snapshot whose ACL id was not in its ACL cache; ZooKeeper
        # resolves them by re-assigning ACL ids identically during replay, we by value.
        self.unresolved = dict(unresolved or {})
        self.ephemerals: dict[int, set[str]] = {}
        self.containers: set[str] = set()
        self.ttls: set[str] = set()
        self.acl_cache: dict[tuple[ACL, ...], tuple[ACL, ...]] = {}
        for path, node in nodes.items():
            self._track(path, node.owner)
            self.acl_cache.setdefault(node.acl, node.acl)
        self.digest = sum(node_digest(p, n) for p, n in nodes.items())

    def _track(self, path: str, owner: int) -> None:
        if path != "/":
            index_owner(self.ephemerals, self.containers, self.ttls, path, owner)

    def _untrack(self, path: str, owner: int) -> None:
        unindex_owner(self.ephemerals, self.containers, self.ttls, path, owner)

    def _acl(self, acl: tuple[ACL, ...] | None) -> tuple[ACL, ...]:
        if acl is None:
            return OPEN_ACL_UNSAFE
        return _intern_acl(acl, self.acl_cache)

    # -- the DataTree operations --

    def create(self, path: str, data: bytes | None, acl: tuple[ACL, ...] | None, owner: int,
               parent_cversion: int, zxid: int, time: int) -> None:
        parent_key, child = _split(path)
        parent = self.nodes.get(parent_key)
        if parent is None:
            raise _NoNode(parent_key)
        if child in parent.children:
            existing = self.nodes.get(path)
            if existing is not None and path in self.unresolved and existing.czxid == zxid:
                # The snapshot caught this very create, with an ACL newer than its cache.
                existing.acl = self._acl(acl)
                del self.unresolved[path]
            raise _NodeExists(path)
        self.digest -= node_digest(parent_key, parent)
        if parent_cversion == -1:
            parent_cversion = parent.c + 1
        # Replaying a create over a fuzzy snapshot must never move these backwards.
        if parent_cversion > parent.c:
            parent.c = parent_cversion
            parent.pzxid = zxid
        parent.children.add(child)
        self.digest += node_digest(parent_key, parent)
        node = Node(data, self._acl(acl), zxid, time, owner)
        self.unresolved.pop(path, None)
        old = self.nodes.get(path)
        if old is not None:
            self.digest -= node_digest(path, old)
        self.nodes[path] = node
        self.digest += node_digest(path, node)
        self._track(path, owner)

    def delete(self, path: str, zxid: int) -> None:
        parent_key, child = _split(path)
        parent = self.nodes.get(parent_key)
        if parent is None:
            raise _NoNode(parent_key)
        # The child may already be gone (fuzzy snapshot); the parent is updated anyway.
        self.digest -= node_digest(parent_key, parent)
        parent.children.discard(child)
        if zxid > parent.pzxid:
            parent.pzxid = zxid
        self.digest += node_digest(parent_key, parent)
        node = self.nodes.pop(path, None)
        if node is None:
            raise _NoNode(path)
        self.unresolved.pop(path, None)
        self.digest -= node_digest(path, node)
        self._untrack(path, node.owner)

    def set_data(self, path: str, data: bytes | None, version: int, zxid: int,
                 time: int) -> None:
        node = self.nodes.get(path)
        if node is None:
            raise _NoNode(path)
        self.digest -= node_digest(path, node)
        node.data = data
        node.mtime = time
        node.mzxid = zxid
        node.version = version
        self.digest += node_digest(path, node)

    def set_acl(self, path: str, acl: tuple[ACL, ...] | None, version: int) -> None:
        node = self.nodes.get(path)
        if node is None:
            raise _NoNode(path)
        self.digest -= node_digest(path, node)
        node.aversion = version
        node.acl = self._acl(acl)
        self.unresolved.pop(path, None)
        self.digest += node_digest(path, node)

    def set_cversion_pzxid(self, path: str, cversion: int, zxid: int) -> None:
        node = self.nodes.get(path)
        if node is None:
            return
        if cversion == -1:
            cversion = node.c + 1
        if cversion > node.c:
            self.digest -= node_digest(path, node)
            node.c = cversion
            node.pzxid = zxid
            self.digest += node_digest(path, node)

    def kill_session(self, sid: int, zxid: int, paths: tuple[str, ...] | None) -> None:
        local = self.ephemerals.pop(sid, set())
        for path in paths or ():
            local.discard(path)
            self._delete_quietly(path, zxid)
        for path in sorted(local):
            self._delete_quietly(path, zxid)

    def _delete_quietly(self, path: str, zxid: int) -> None:
        try:
            self.delete(path, zxid)
        except _NoNode:
            pass

    # -- transactions --

    def apply(self, e: LogEntry) -> None:
        if e.type == OpCode.CREATE_SESSION:
            assert isinstance(e.body, CreateSessionBody)
            self.sessions[e.session_id] = e.body.timeout
        elif e.type == OpCode.CLOSE_SESSION:
            assert isinstance(e.body, CloseSessionBody)
            self.sessions.pop(e.session_id, None)
            self.kill_session(e.session_id, e.zxid, e.body.paths)
        else:
            self._process(e.type, e.body, e.session_id, e.zxid, e.time)

    def _process(self, typ: int, body: object, sid: int, zxid: int, time: int) -> None:
        try:
            self._process_op(typ, body, sid, zxid, time)
        except _NodeExists:
            # ZooKeeper repairs the parent when a plain create is replayed over a node
            # that exists (re-created in the fuzzy window by another session).
            if typ == OpCode.CREATE and isinstance(body, CreateBody):
                parent_key, _ = _split(body.path)
                self.set_cversion_pzxid(parent_key, body.parent_cversion, zxid)
        except _NoNode:
            pass

    def _process_op(self, typ: int, body: object, sid: int, zxid: int, time: int) -> None:
        if isinstance(body, CreateBody):
            if typ == OpCode.CREATE_CONTAINER:
                owner = CONTAINER_EPHEMERAL_OWNER
            elif typ == OpCode.CREATE_TTL:
                owner = TTL_MARKER | body.ttl
            else:
                owner = sid if body.ephemeral else 0
            self.create(body.path, body.data, body.acl, owner, body.parent_cversion, zxid, time)
        elif isinstance(body, DeleteBody):
            self.delete(body.path, zxid)
        elif isinstance(body, SetDataBody):
            self.set_data(body.path, body.data, body.version, zxid, time)
        elif isinstance(body, SetACLBody):
            self.set_acl(body.path, body.acl, body.version)
        elif isinstance(body, MultiBody):
            if any(t == OpCode.ERROR for t, _ in body.ops):
                return  # a failed multi changes nothing
            for sub_type, sub in body.ops:
                self._process(sub_type, sub, sid, zxid, time)
        # ErrorBody, CheckBody: nothing to apply


def _validate_entry(log: TxnLogFile, e: LogEntry) -> None:
    """Refuse transactions that no ZooKeeper could have logged, or whose effect zkernel
    could not represent."""
    body = e.body
    ops = body.ops if isinstance(body, MultiBody) else ((e.type, body),)

    def fail(reason: str) -> ZooKeeperDataError:
        return ZooKeeperDataError(log.path, e.offset, f"transaction {_hexz(e.zxid)}: {reason}")

    for typ, b in ops:
        path = getattr(b, "path", None)
        if path is None:
            continue
        if not path.startswith("/") or (path == "/" and isinstance(b, (CreateBody,
                                                                        DeleteBody))):
            raise fail(f"invalid path {path!r}")
        if isinstance(b, CreateBody):
            if typ == OpCode.CREATE_TTL and not 0 < b.ttl <= MAX_TTL:
                raise fail(f"TTL node with impossible TTL {b.ttl}")
            if b.ephemeral and typ in (OpCode.CREATE, OpCode.CREATE2) and e.session_id \
                    and owner_kind(e.session_id) != OWNER_SESSION:
                raise fail(f"ephemeral owned by session {e.session_id & _MASK64:#018x}, "
                           "which zkernel would mistake for a container/TTL marker")


# -- the data directory ----------------------------------------------------------------------

@dataclass
class ImportResult:
    """What ``read_zookeeper_datadir`` loaded. ``tree`` is ready for zkernel's storage;
    ``znode_count`` counts real znodes (not the tree's "" alias of the root)."""

    tree: DataTree
    last_zxid: int
    znode_count: int
    session_count: int
    snapshot: Path | None
    snapshot_zxid: int
    logs: list[Path]
    txns_applied: int
    txns_skipped: int = 0  # logged at or before the snapshot's zxid
    dbid: int = 0
    skipped_snapshots: list[tuple[Path, str]] = field(default_factory=list)
    torn_tail: tuple[Path, int] | None = None
    digests_checked: int = 0
    digest_mismatch_zxid: int | None = None
    orphans_removed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _resolve(path: Path) -> Path:
    if not path.exists():
        raise ZooKeeperDataError(path, None, "no such directory")
    if not path.is_dir():
        raise ZooKeeperDataError(path, None, "not a directory")
    v2 = path / "version-2"
    return v2 if v2.is_dir() else path


def _read_zoo_cfg(cfg: Path) -> tuple[Path, Path | None]:
    values: dict[str, str] = {}
    try:
        text = cfg.read_text(errors="replace")
    except OSError as e:
        raise ZooKeeperDataError(cfg, None, f"cannot read: {e.strerror or e}") from None
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            values[k.strip()] = v.strip()
    if not values.get("dataDir"):
        raise ZooKeeperDataError(cfg, None, "no dataDir in this ZooKeeper configuration")
    base = cfg.parent
    data = base / values["dataDir"]
    log = base / values["dataLogDir"] if values.get("dataLogDir") else None
    return data, log


def _list(directory: Path, pattern: re.Pattern[str]) -> list[tuple[int, Path]]:
    out = []
    for p in directory.iterdir():
        parsed = _parse_name(p.name, pattern)
        if parsed is not None and p.is_file():
            out.append((parsed[0], p))
    out.sort(key=lambda t: (t[0], t[1].name))
    return out


def _follows(prev: int, zxid: int) -> bool:
    """Whether ``zxid`` may come right after ``prev``: the next counter of the same
    epoch, or the first transaction (counter 1) of a later epoch."""
    if zxid == prev + 1:
        return True
    return zxid >> 32 > prev >> 32 and zxid & _COUNTER_MASK == 1


def read_zookeeper_datadir(path: Path | str, log_dir: Path | str | None = None, *,
                           strict: bool = False, strict_digest: bool = False) -> ImportResult:
    """Load a stopped Apache ZooKeeper 3.x server's data.

    ``path`` is its ``dataDir`` (or the ``version-2`` directory inside, or its zoo.cfg);
    ``log_dir`` its ``dataLogDir`` when that differs. ``strict`` refuses what ZooKeeper
    itself would tolerate (an invalid newer snapshot, a torn final log entry);
    ``strict_digest`` refuses a tree that does not match ZooKeeper's recorded digest.
    """
    path = Path(path)
    if path.is_file():
        cfg_data, cfg_log = _read_zoo_cfg(path)
        path = cfg_data
        if log_dir is None:
            log_dir = cfg_log
    snap_dir = _resolve(path)
    logs_dir = _resolve(Path(log_dir)) if log_dir is not None else snap_dir
    snaps = _list(snap_dir, _SNAP_NAME)
    logs = _list(logs_dir, _LOG_NAME)
    warnings: list[str] = []
    if not snaps and not logs:
        raise ZooKeeperDataError(snap_dir, None, "no ZooKeeper snapshot or transaction log "
                                                 "here (expected snapshot.<zxid> / log.<zxid>)")

    # The newest snapshot that is valid, as ZooKeeper picks it.
    skipped: list[tuple[Path, str]] = []
    snap: Snapshot | None = None
    for _zxid, sp in reversed(snaps):
        try:
            snap = read_snapshot(sp)
            break
        except ZooKeeperDataError as err:
            if strict or sp.name.endswith(".snappy"):
                raise
            skipped.append((sp, str(err)))
    if snaps and snap is None:
        first = skipped[0][1]
        more = f" (and {len(skipped) - 1} older invalid snapshots)" if len(skipped) > 1 else ""
        raise ZooKeeperDataError(snap_dir, None, f"no valid snapshot: {first}{more}")

    if snap is not None:
        snap_zxid = snap.zxid
        nodes = snap.nodes
        sessions = dict(snap.sessions)
    else:
        snap_zxid = 0
        nodes = dict(DataTree().walk())  # a fresh ZooKeeper's tree
        sessions = {}
    if not logs:
        warnings.append(f"no transaction logs in {logs_dir}; if ZooKeeper used a separate "
                        "dataLogDir, pass it as log_dir")

    # The log holding snapshot zxid + 1 (the newest starting at or before the snapshot's
    # zxid) and every later one.
    start = 0
    for i, (lz, _p) in enumerate(logs):
        if lz <= snap_zxid:
            start = i
    selected = [p for _lz, p in logs[start:]]

    rp = _Replayer(nodes, sessions, snap.dangling_acls if snap is not None else None)
    pending = snap.digest if snap is not None else None
    if pending is not None and (pending.zxid <= 0 or pending.zxid < snap_zxid):
        pending = None
    checked = 0
    mismatch: int | None = None

    def compare(expected_version: int, expected: int, zxid: int, where: Path | None,
                offset: int | None) -> None:
        """Compare the tree's digest now with the one ZooKeeper recorded after zxid."""
        nonlocal checked, mismatch
        if expected_version != DIGEST_VERSION:
            return
        checked += 1
        actual = _signed64(rp.digest)
        if actual != _signed64(expected):
            if mismatch is None:
                mismatch = zxid
            if strict_digest:
                raise ZooKeeperDataError(where, offset, f"tree digest after zxid {_hexz(zxid)} "
                                                        f"is {actual:#x}, ZooKeeper recorded "
                                                        f"{_signed64(expected):#x}")

    # The snapshot's digest is the one of the last transaction *completed* when it was
    # written (zxid D); the transaction being applied at that moment (D + 1) may already
    # be in the snapshot. So the check at D only counts when D + 1 never came (ZooKeeper
    # itself reports a false mismatch here); otherwise D + 1's own digest settles it.
    deferred: tuple[int, int, int, Path | None, int | None] | None = None
    if pending is not None and pending.zxid == snap_zxid:
        deferred = (pending.version, pending.digest, snap_zxid,
                    snap.path if snap else None, None)
        pending = None

    prev = snap_zxid
    applied = skipped_txns = 0
    torn: tuple[Path, int] | None = None
    used: list[Path] = []
    for index, lp in enumerate(selected):
        log = TxnLogFile(lp)
        used.append(lp)
        for e in log.entries():
            if e.zxid <= snap_zxid:
                skipped_txns += 1
                continue
            if e.zxid <= prev and applied:
                raise ZooKeeperDataError(lp, e.offset, f"zxid {_hexz(e.zxid)} does not follow "
                                                       f"{_hexz(prev)} (duplicate or out of "
                                                       "order)")
            if not applied:
                if snap is None and e.zxid not in (1, (1 << 32) | 1):
                    raise ZooKeeperDataError(
                        lp, e.offset, f"no snapshot, and the oldest transaction is "
                                      f"{_hexz(e.zxid)}, not the first one: earlier "
                                      "transactions are missing")
                if snap is not None and not _follows(prev, e.zxid):
                    raise ZooKeeperDataError(
                        lp, e.offset, f"gap: the snapshot {snap.path.name} ends at "
                                      f"{_hexz(snap_zxid)} but the next logged transaction is "
                                      f"{_hexz(e.zxid)}")
            elif not _follows(prev, e.zxid):
                raise ZooKeeperDataError(lp, e.offset, f"gap: transaction {_hexz(e.zxid)} "
                                                       f"follows {_hexz(prev)}")
            _validate_entry(log, e)
            rp.apply(e)
            applied += 1
            prev = e.zxid
            deferred = None
            if pending is not None:
                if e.zxid == pending.zxid:
                    deferred = (pending.version, pending.digest, e.zxid, lp, e.offset)
                    pending = None
            elif e.digest is not None:
                compare(e.digest[0], e.digest[1], e.zxid, lp, e.offset)
        if log.torn_offset is not None:
            if strict or index != len(selected) - 1:
                raise ZooKeeperDataError(lp, log.torn_offset,
                                         f"partial transaction ({log.torn_reason})"
                                         + ("" if strict else "; only the newest log may end "
                                            "with one"))
            torn = (lp, log.torn_offset)
            warnings.append(f"{lp}: ignored a partial last transaction at offset "
                            f"{log.torn_offset} ({log.torn_reason}); ZooKeeper never "
                            "acknowledged it")
    if deferred is not None:
        compare(*deferred)
    last_zxid = max(prev, snap_zxid)
    if pending is not None:
        warnings.append(f"the snapshot's digest is for zxid {_hexz(pending.zxid)}, which the "
                        "logs do not reach")

    # As ZooKeeper does on load: ephemerals of sessions that no longer exist go away.
    orphans: list[str] = []
    for owner in sorted(set(rp.ephemerals) - set(rp.sessions)):
        for p in sorted(rp.ephemerals.get(owner, ())):
            orphans.append(p)
        rp.kill_session(owner, last_zxid, None)

    if rp.unresolved and snap is not None:
        path0, (aid, offset) = min(rp.unresolved.items(), key=lambda kv: kv[1][1])
        raise ZooKeeperDataError(snap.path, offset, f"node {path0!r} refers to ACL id {aid}, "
                                                    "which is neither in the snapshot's ACL "
                                                    "cache nor set by a later transaction"
                                                    + (f" (and {len(rp.unresolved) - 1} more "
                                                       "such nodes)" if len(rp.unresolved) > 1
                                                       else ""))

    tree = _build_tree(rp, last_zxid)
    return ImportResult(
        tree=tree, last_zxid=last_zxid, znode_count=sum(1 for _ in tree.walk()),
        session_count=len(tree.sessions), snapshot=snap.path if snap else None,
        snapshot_zxid=snap_zxid, logs=used, txns_applied=applied, txns_skipped=skipped_txns,
        dbid=snap.dbid if snap else 0, skipped_snapshots=skipped, torn_tail=torn,
        digests_checked=checked, digest_mismatch_zxid=mismatch, orphans_removed=orphans,
        warnings=warnings)


def _build_tree(rp: _Replayer, last_zxid: int) -> DataTree:
    tree = DataTree()
    system = tree.nodes
    nodes = rp.nodes
    # Data from before 3.5 lacks /zookeeper/config (and maybe more): add zkernel's.
    for path in ("/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
        if path not in nodes:
            parent_key, child = _split(path)
            parent = nodes.get(parent_key)
            if parent is not None:
                nodes[path] = system[path]
                system[path].children.clear()
                parent.children.add(child)
    for node in nodes.values():
        node._stat = None
    tree.nodes = nodes
    tree.link_root_alias()  # "" -> the root, as ZooKeeper keys it
    tree.ephemerals = rp.ephemerals
    tree.containers = rp.containers
    tree.ttls = rp.ttls
    tree.sessions = {sid: SessionRecord(timeout, zookeeper_session_password(sid))
                     for sid, timeout in rp.sessions.items()}
    tree.last_zxid = last_zxid
    tree.recompute_digest()
    return tree
