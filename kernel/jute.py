"""Jute binary archive primitives (sans-I/O): big-endian ints, buffers, strings, vectors.

``Reader`` decodes from a bytes-like object and raises ``ProtocolError`` on any
truncation or impossible length; ``Writer`` appends to a bytearray. Both are used by
the client transport, the transaction log format and the ZooKeeper data-dir importer.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import TypeVar

from kernel.errors import ProtocolError

T = TypeVar("T")
_Int = int  # the builtin, for annotations inside classes with an int() method

INT = struct.Struct(">i")
LONG = struct.Struct(">q")
BOOL = struct.Struct(">?")
INT_INT = struct.Struct(">ii")

_unpack_int = INT.unpack_from
_unpack_long = LONG.unpack_from


class Reader:
    """Cursor over one Jute-encoded record (normally one frame's payload)."""

    __slots__ = ("buf", "pos", "end", "max_len")

    def __init__(self, buf: bytes | bytearray | memoryview, pos: _Int = 0,
                 end: int | None = None, max_len: int = 0xFFFFF * 2) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end
        self.max_len = max_len

    def remaining(self) -> _Int:
        return self.end - self.pos

    def _need(self, n: _Int) -> _Int:
        p = self.pos
        if p + n > self.end:
            raise ProtocolError(f"record truncated: need {n} bytes at {p}, have {self.end - p}")
        self.pos = p + n
        return p

    def int(self) -> _Int:
        return int(_unpack_int(self.buf, self._need(4))[0])

    def long(self) -> _Int:
        return int(_unpack_long(self.buf, self._need(8))[0])

    def bool(self) -> bool:
        return bool(self.buf[self._need(1)])

    def buffer(self) -> bytes | None:
        n = self.int()
        if n == -1:
            return None
        if n < -1 or n > self.max_len:
            raise ProtocolError(f"impossible buffer length {n}")
        p = self._need(n)
        return bytes(self.buf[p:p + n])

    def ustring(self) -> str | None:
        n = self.int()
        if n == -1:
            return None
        if n < -1 or n > self.max_len:
            raise ProtocolError(f"impossible string length {n}")
        p = self._need(n)
        # Java decodes malformed UTF-8 with U+FFFD replacements; so do we, so that a
        # bad path is a missing node (reads) or BadArguments (writes), as in ZooKeeper.
        return bytes(self.buf[p:p + n]).decode("utf-8", errors="replace")

    def string(self) -> str:
        """A ustring where null reads as the empty string."""
        s = self.ustring()
        return "" if s is None else s

    def vector(self, item: Callable[[Reader], T]) -> list[T] | None:
        n = self.int()
        if n == -1:
            return None
        if n < -1 or n > self.end - self.pos:
            raise ProtocolError(f"impossible vector length {n}")
        return [item(self) for _ in range(n)]


class Writer:
    """Accumulates a Jute encoding in a bytearray."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def int(self, v: _Int) -> Writer:
        self.buf += INT.pack(v)
        return self

    def long(self, v: _Int) -> Writer:
        self.buf += LONG.pack(v)
        return self

    def bool(self, v: bool) -> Writer:
        self.buf.append(1 if v else 0)
        return self

    def buffer(self, v: bytes | None) -> Writer:
        if v is None:
            self.buf += b"\xff\xff\xff\xff"
        else:
            self.buf += INT.pack(len(v))
            self.buf += v
        return self

    def ustring(self, v: str | None) -> Writer:
        return self.buffer(None if v is None else v.encode("utf-8"))

    def vector(self, items: Iterable[T] | None, item: Callable[[Writer, T], object]) -> Writer:
        if items is None:
            self.buf += b"\xff\xff\xff\xff"
            return self
        seq = list(items)
        self.buf += INT.pack(len(seq))
        for x in seq:
            item(self, x)
        return self

    def raw(self, b: bytes) -> Writer:
        self.buf += b
        return self

    def getvalue(self) -> bytes:
        return bytes(self.buf)


def encode_buffer(v: bytes | None) -> bytes:
    """A Jute buffer as bytes (length prefix + content, or -1 for null)."""
    if v is None:
        return b"\xff\xff\xff\xff"
    return INT.pack(len(v)) + v


def encode_string(v: str | None) -> bytes:
    """A Jute ustring as bytes."""
    return encode_buffer(None if v is None else v.encode("utf-8"))
