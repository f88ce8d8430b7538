"""How znode paths become LMDB keys (storage format ``zkernel-lmdb-3``).

LMDB refuses keys longer than ``MAX_KEY`` bytes (``env.max_key_size()``: 511), while
ZooKeeper accepts any path that fits in a request (``jute.maxbuffer``, about 1 MB).
Every key the store derives from a path comes from this module; nothing else encodes a
path into a key.

* ``node_key(path)`` keys ``nodes`` and ``owners``: the path's UTF-8 bytes when they fit
  in ``MAX_KEY`` bytes (exactly the format-2 key), else the *long form* ``LONG`` +
  blake2b-256(path), 33 bytes. ``LONG`` (``b"\\x01"``) cannot start a path (paths start
  with "/", and control characters are refused anywhere in them), so the two forms
  never meet, and long keys sort first, as the range ``[LONG, LONG + 1)``. The value
  under a long key starts with the path (4-byte big-endian length, UTF-8 bytes): walks
  of a table read every path back with ``unwrap_value``, which also checks that the
  path hashes to its key (a damaged record or a digest collision is reported, never
  served as another node).
* ``child_entry(path)`` is the ``children`` entry of the node ``path`` (parent P, name
  N): key ``node_key(P) + NUL + N`` with an empty value when that fits (the format-2
  entry), else key ``G + NUL + LONG + blake2b-256(N)`` with N as the value. G, the
  parent's *group*, is ``node_key(P)`` unless that leaves no room for the 33-byte
  name digest (a plain P of 478 to 511 bytes); then it is P's own long form, P's
  *overflow group*. ``child_prefixes(P)`` are the key prefixes holding P's children
  (one, or two for such a P), and ``split_child_entry`` reads a child's name back
  from either form. A group never is a prefix of another group's NUL-terminated
  prefix: plain groups are NUL-free paths, long ones have a fixed length.

Format 2 (``zkernel-lmdb-2``) wrote only the short forms: writing a longer key failed,
so a format-2 environment is a format-3 environment without long keys.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

from kernel.errors import ProtocolError

if TYPE_CHECKING:
    import lmdb
    from lmdb import _Database

#: LMDB's key size limit (``mdb_env_get_maxkeysize`` of every py-lmdb build). The
#: layout depends on it, so it is a constant; the store refuses an LMDB with less.
MAX_KEY = 511
#: First byte of a long key (and of a child name's digest inside a children key).
LONG = b"\x01"
_DIGEST_SIZE = 32
LONG_KEY_SIZE = 1 + _DIGEST_SIZE
# A group leaves room for NUL + a name's long form when it is at most this long.
_MAX_GROUP = MAX_KEY - 1 - LONG_KEY_SIZE
_LEN = struct.Struct(">I")


def _long(raw: bytes) -> bytes:
    return LONG + hashlib.blake2b(raw, digest_size=_DIGEST_SIZE).digest()


def _key(raw: bytes) -> bytes:
    return raw if len(raw) <= MAX_KEY else _long(raw)


def node_key(path: str) -> bytes:
    """The ``nodes`` / ``owners`` key of ``path``."""
    return _key(path.encode("utf-8"))


def descendants_prefix(path: str) -> bytes:
    """The prefix of every short (plain) ``nodes`` key below ``path``; the descendants
    with long keys are found with ``iter_long_paths``."""
    return path.encode("utf-8") + b"/"


def is_long(key: bytes) -> bool:
    """True for a key in the long (digest) form."""
    return key[:1] == LONG


def wrap_value(key: bytes, path: str, value: bytes) -> bytes:
    """What is stored under ``key`` (= ``node_key(path)``) in ``nodes`` or ``owners``."""
    if key[:1] != LONG:
        return value
    raw = path.encode("utf-8")
    return b"".join((_LEN.pack(len(raw)), raw, value))


def unwrap_value(key: bytes, stored: bytes) -> tuple[str, bytes]:
    """(path, value) of a ``nodes`` / ``owners`` entry. Raises ProtocolError (or
    UnicodeDecodeError) when the entry is malformed."""
    if key[:1] != LONG:
        return key.decode("utf-8"), stored
    if len(stored) < _LEN.size:
        raise ProtocolError(f"long-key record of {len(stored)} bytes has no path")
    n = _LEN.unpack_from(stored)[0]
    end = _LEN.size + n
    raw = stored[_LEN.size:end]
    if len(raw) != n or n <= MAX_KEY or _long(raw) != key:
        raise ProtocolError(f"the path stored under long key {key.hex()} does not match it")
    return raw.decode("utf-8"), stored[end:]


def child_entry(path: str) -> tuple[bytes, bytes]:
    """(key, value) of the ``children`` entry of ``path`` (any node but the root)."""
    raw = path.encode("utf-8")
    i = raw.rfind(b"/")
    parent = raw[:i] or b"/"
    name = raw[i + 1:]
    group = _key(parent)
    key = group + b"\0" + name
    if len(key) <= MAX_KEY:
        return key, b""
    if len(group) > _MAX_GROUP:  # a plain parent too long to leave room: overflow group
        group = _long(parent)
    return group + b"\0" + _long(name), name


def child_prefixes(parent: str) -> tuple[bytes, ...]:
    """The key prefixes of ``parent``'s entries in ``children`` (its groups + NUL)."""
    raw = parent.encode("utf-8")
    group = _key(raw)
    if len(group) > _MAX_GROUP:
        return group + b"\0", _long(raw) + b"\0"
    return (group + b"\0",)


def child_name(rest: bytes, value: bytes) -> str:
    """A child's name from its ``children`` key past the group prefix, and the value."""
    if rest[:1] != LONG:
        return rest.decode("utf-8")
    if len(rest) != LONG_KEY_SIZE or _long(value) != rest:
        raise ProtocolError(f"the child name stored under {rest.hex()} does not match it")
    return value.decode("utf-8")


def split_child_entry(key: bytes, value: bytes) -> tuple[bytes, str]:
    """(group, child name) of any ``children`` entry; for integrity checks (a listing
    knows its prefix and uses ``child_name``). Raises ProtocolError on a malformed one."""
    if key[:1] == LONG:
        group, sep, rest = key[:LONG_KEY_SIZE], key[LONG_KEY_SIZE:LONG_KEY_SIZE + 1], \
            key[LONG_KEY_SIZE + 1:]
    else:
        group, sep, rest = key.partition(b"\0")
        group.decode("utf-8")
    if sep != b"\0" or not rest:
        raise ProtocolError(f"malformed children key {key[:64].hex()}")
    return group, child_name(rest, value)


def iter_entries(txn: lmdb.Transaction, db: _Database) -> Iterator[tuple[str, bytes]]:
    """(path, value) of every entry of a path-keyed table (``nodes``, ``owners``), in
    key order (long keys first). Raises ProtocolError / UnicodeDecodeError."""
    for k, v in txn.cursor(db=db):
        yield unwrap_value(bytes(k), bytes(v))


def iter_paths(txn: lmdb.Transaction, db: _Database) -> Iterator[str]:
    """Every path of a path-keyed table, reading values only under long keys."""
    cur = txn.cursor(db=db)
    for k in cur.iternext(values=False):
        kb = bytes(k)
        if kb[:1] == LONG:
            yield unwrap_value(kb, bytes(cur.value()))[0]
        else:
            yield kb.decode("utf-8")


def iter_long_paths(txn: lmdb.Transaction, db: _Database) -> Iterator[str]:
    """The paths stored under long keys (the head of a path-keyed table)."""
    cur = txn.cursor(db=db)
    if not cur.set_range(LONG):
        return
    for k, v in cur:
        kb = bytes(k)
        if kb[:1] != LONG:
            break
        yield unwrap_value(kb, bytes(v))[0]
