"""The byte form of everything that crosses a peer link: Zab messages and the kernel's
forwarding messages (followers send client writes to the leader).

A frame is ``uint32 length`` + one tagged value. Values are None, booleans, integers
(any size), strings, bytes, lists, tuples, transactions (the log's own encoding) and
registered records (NamedTuples and dataclasses, by a one-byte code). Only registered
record types can be decoded, so a peer cannot make this side build arbitrary objects.
"""

from __future__ import annotations

import dataclasses
import struct
import types
import typing
from collections.abc import Callable
from typing import Any

from kernel.errors import ProtocolError
from kernel.txn import Txn
from kernel.txn_codec import decode_txn, encode_txn

_LEN = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024


class Registry:
    """Record types a link may carry, each with a stable one-byte code."""

    def __init__(self) -> None:
        self._by_type: dict[type, int] = {}
        self._by_code: dict[int, tuple[type, Callable[[Any], tuple[Any, ...]]]] = {}
        # The outer runtime type each field must have (from the type hints), so a
        # corrupt or hostile frame cannot build a record with a list where a Txn goes.
        self._field_types: dict[int, list[tuple[type, ...]]] = {}
        # The hot messages of the broadcast phase skip the generic encoding.
        self._fast_encode: dict[type, Callable[[Any], bytes]] = {}
        self._fast_decode: dict[int, Callable[[memoryview], object]] = {}

    def register_fast(self, tag: bytes, cls: type, encode: Callable[[Any], bytes],
                      decode: Callable[[memoryview], object]) -> None:
        """A compact form for ``cls``: ``tag`` (one byte not used by the generic
        encoding) + ``encode(value)``; ``decode`` gets the bytes after the tag."""
        t = tag[0]
        if chr(t) in "NTFisbxltr" or t in self._fast_decode:
            raise ValueError(f"tag {tag!r} is taken")

        def enc(v: Any) -> bytes:
            body = encode(v)
            return _LEN.pack(len(body) + 1) + tag + body
        self._fast_encode[cls] = enc
        self._fast_decode[t] = decode

    def register(self, code: int, cls: type) -> None:
        if code in self._by_code or not 0 < code < 256:
            raise ValueError(f"record code {code} taken or out of range")
        fields: Callable[[Any], tuple[Any, ...]]
        self._field_types[code] = _field_types(cls)
        if dataclasses.is_dataclass(cls):
            names = [f.name for f in dataclasses.fields(cls)]
            fields = lambda v: tuple(getattr(v, n) for n in names)  # noqa: E731
        else:
            fields = tuple
        self._by_type[cls] = code
        self._by_code[code] = (cls, fields)

    # -- encoding ----------------------------------------------------------------------

    def encode(self, value: object) -> bytes:
        fast = self._fast_encode.get(type(value))
        if fast is not None:
            return fast(value)
        out = bytearray(4)
        self._put(out, value)
        _LEN.pack_into(out, 0, len(out) - 4)
        return bytes(out)

    def _put(self, out: bytearray, v: object) -> None:
        if v is None:
            out += b"N"
        elif v is True:
            out += b"T"
        elif v is False:
            out += b"F"
        elif isinstance(v, int):
            n = (v.bit_length() + 8) // 8
            out += b"i"
            out.append(n)
            out += v.to_bytes(n, "big", signed=True)
        elif isinstance(v, str):
            b = v.encode("utf-8")
            out += b"s"
            out += _LEN.pack(len(b))
            out += b
        elif isinstance(v, bytes | bytearray | memoryview):
            out += b"b"
            out += _LEN.pack(len(v))
            out += v
        elif isinstance(v, Txn):
            b = encode_txn(v)
            out += b"x"
            out += _LEN.pack(len(b))
            out += b
        elif type(v) in self._by_type:
            code = self._by_type[type(v)]
            fields = self._by_code[code][1](v)
            out += b"r"
            out.append(code)
            out.append(len(fields))
            for f in fields:
                self._put(out, f)
        elif isinstance(v, list | tuple):
            out += b"l" if isinstance(v, list) else b"t"
            out += _LEN.pack(len(v))
            for item in v:
                self._put(out, item)
        else:
            raise TypeError(f"cannot encode {type(v).__name__} on a peer link")

    # -- decoding ----------------------------------------------------------------------

    def decode(self, body: bytes | memoryview) -> object:
        """Decode one frame body (without its length prefix)."""
        fast = self._fast_decode.get(body[0]) if len(body) else None
        if fast is not None:
            try:
                return fast(memoryview(body)[1:])
            except (IndexError, struct.error, ValueError, RecursionError) as e:
                raise ProtocolError(f"malformed peer frame: {e!r}") from None
        try:
            value, pos = self._get(memoryview(body), 0)
        except (IndexError, struct.error, UnicodeDecodeError, TypeError,
                RecursionError) as e:
            # RecursionError: a frame nested deeper than any real message is.
            raise ProtocolError(f"malformed peer frame: {e!r}") from None
        if pos != len(body):
            raise ProtocolError("trailing bytes in peer frame")
        return value

    def _get(self, buf: memoryview, pos: int) -> tuple[object, int]:
        tag = buf[pos]
        pos += 1
        if tag == 0x4E:  # N
            return None, pos
        if tag == 0x54:  # T
            return True, pos
        if tag == 0x46:  # F
            return False, pos
        if tag == 0x69:  # i
            n = buf[pos]
            return int.from_bytes(buf[pos + 1:pos + 1 + n], "big", signed=True), pos + 1 + n
        if tag in (0x73, 0x62, 0x78):  # s b x
            n = _LEN.unpack_from(buf, pos)[0]
            pos += 4
            if pos + n > len(buf):
                raise ProtocolError("peer frame truncated")
            raw = buf[pos:pos + n]
            pos += n
            if tag == 0x73:
                return bytes(raw).decode("utf-8"), pos
            if tag == 0x62:
                return bytes(raw), pos
            return decode_txn(bytes(raw)), pos
        if tag in (0x6C, 0x74):  # l t
            n = _LEN.unpack_from(buf, pos)[0]
            pos += 4
            if n > len(buf):
                raise ProtocolError("peer frame: impossible length")
            items = []
            for _ in range(n):
                item, pos = self._get(buf, pos)
                items.append(item)
            return (items if tag == 0x6C else tuple(items)), pos
        if tag == 0x72:  # r
            code = buf[pos]
            nfields = buf[pos + 1]
            pos += 2
            entry = self._by_code.get(code)
            if entry is None:
                raise ProtocolError(f"unknown record code {code} on a peer link")
            types = self._field_types[code]
            if nfields != len(types):
                raise ProtocolError(f"record code {code}: {nfields} fields, expected "
                                    f"{len(types)}")
            args = []
            for allowed in types:
                item, pos = self._get(buf, pos)
                if not isinstance(item, allowed):
                    raise ProtocolError(f"record code {code}: field of type "
                                        f"{type(item).__name__}")
                args.append(item)
            return entry[0](*args), pos
        raise ProtocolError(f"unknown tag {tag:#x} in peer frame")


def frame_length(header: bytes | memoryview) -> int:
    """The body length announced by a 4-byte frame header."""
    n = int(_LEN.unpack_from(header, 0)[0])
    if n > MAX_FRAME:
        raise ProtocolError(f"peer frame of {n} bytes exceeds {MAX_FRAME}")
    return n


def _field_types(cls: type) -> list[tuple[type, ...]]:
    """Per field of a dataclass or NamedTuple, the runtime types a value may have."""
    hints = typing.get_type_hints(cls)
    if dataclasses.is_dataclass(cls):
        names = [f.name for f in dataclasses.fields(cls)]
    else:
        names = list(cls._fields)  # type: ignore[attr-defined]
    return [_runtime_types(hints[n]) for n in names]


def _runtime_types(hint: object) -> tuple[type, ...]:
    if hint is Any or hint is object:
        return (object,)
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        out: tuple[type, ...] = ()
        for a in args:
            out += _runtime_types(a)
        return out
    if hint is None or hint is type(None):
        return (type(None),)
    if origin is not None:
        assert isinstance(origin, type)
        return (origin,)
    assert isinstance(hint, type), hint
    if hint is bytes:
        return (bytes, bytearray)
    return (hint,)
