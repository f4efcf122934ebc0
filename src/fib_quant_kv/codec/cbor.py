"""Strict CBOR: the JSON data model in RFC 8949 items, decoded without trusting length claims."""

from __future__ import annotations

import struct
from typing import Any

from fib_quant_kv.codec.limits import (
    DATA_MODEL,
    DEPTH_LIMIT,
    DUPLICATE_KEY,
    MALFORMED,
    MAX_DEPTH,
    SMALL_DOCUMENT,
    check_size,
)
from fib_quant_kv.contracts import every_field, unknown_field
from fib_quant_kv.errors import DecodeError, Rule, pointer

# cbor2's decoder accepts trailing bytes and repeated keys; decoding is therefore done here,
# over the JSON data model, trusting no length claim. Encoding is cbor2's, in RFC 8949
# section 4.2.1 core deterministic form. Deterministic v1 documents are read faster by
# fib_quant_kv.fastpath, which falls back to this reader for anything else.

_FLOAT_FORMATS = {25: ">e", 26: ">f", 27: ">d"}
_SIMPLE = {20: False, 21: True, 22: None}


def _counted(count: int, noun: str) -> str:
    """A count and its noun, in the singular for one."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _bytes_remain(count: int) -> str:
    return "1 byte remains" if count == 1 else f"{count} bytes remain"


class _Reader:
    __slots__ = ("data", "document", "pos")

    def __init__(self, data: bytes, document: bool) -> None:
        self.data = data
        self.pos = 0
        # Whether the bytes must be a contract document, whose top-level map is refused at the
        # first entry no contract can hold.
        self.document = document

    def fail(
        self, message: str, path: tuple[str | int, ...], rule: Rule = MALFORMED
    ) -> DecodeError:
        return DecodeError(f"{message} (at byte {self.pos})", pointer=pointer(*path), rule=rule.id)

    def take(self, n: int, path: tuple[str | int, ...]) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            left = _bytes_remain(len(self.data) - self.pos)
            raise self.fail(f"truncated: an item claims {_counted(n, 'byte')}, {left}", path)
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def head(self, path: tuple[str | int, ...]) -> tuple[int, int, int]:
        """Major type, additional information, and the argument it encodes."""
        if self.pos >= len(self.data):
            raise self.fail("truncated: expected another CBOR item", path)
        initial = self.data[self.pos]
        self.pos += 1
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info, info
        if info <= 27:
            size = 1 << (info - 24)
            return major, info, int.from_bytes(self.take(size, path), "big")
        if info == 31:
            raise self.fail(
                "indefinite-length items are not allowed: expected definite lengths",
                path,
                DATA_MODEL,
            )
        raise self.fail(f"reserved additional information {info} is not well-formed CBOR", path)

    def item(self, path: tuple[str | int, ...], depth: int) -> Any:
        start = self.pos
        major, info, arg = self.head(path)
        if major == 0:
            return arg
        if major == 1:
            # A JSON number too; the structural layer refuses it with this pointer.
            return -1 - arg
        if major == 3:
            raw = self.take(arg, path)
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                self.pos = start
                raise self.fail("invalid UTF-8 in a text string", path) from None
        if major in (4, 5):
            if depth >= MAX_DEPTH:
                raise self.fail(f"nesting deeper than {MAX_DEPTH} levels", path, DEPTH_LIMIT)
            # Every item takes at least one byte, so a count beyond what remains is a lie,
            # refused before anything is allocated for it.
            remaining = len(self.data) - self.pos
            if (arg if major == 4 else 2 * arg) > remaining:
                claimed = _counted(arg, "item" if major == 4 else "pair")
                raise self.fail(f"truncated: claims {claimed}, {_bytes_remain(remaining)}", path)
            if major == 4:
                return [self.item((*path, i), depth + 1) for i in range(arg)]
            return self.map(arg, path, depth)
        if major == 2:
            self.pos = start
            raise self.fail(
                "byte string: expected a text string or an unsigned integer", path, DATA_MODEL
            )
        if major == 6:
            self.pos = start
            raise self.fail(f"tag {arg}: tags are not allowed", path, DATA_MODEL)
        # Major type 7: floats and the JSON simple values stay values, for the schema to judge.
        if info in _SIMPLE:
            return _SIMPLE[info]
        if info in _FLOAT_FORMATS:
            fmt = _FLOAT_FORMATS[info]
            return struct.unpack(fmt, arg.to_bytes(struct.calcsize(fmt), "big"))[0]
        self.pos = start
        raise self.fail(f"simple value {arg}: not part of the JSON data model", path, DATA_MODEL)

    def map(self, pairs: int, path: tuple[str | int, ...], depth: int) -> dict[str, Any]:
        # A document is one map of a contract's fields: a key no contract has is refused where
        # it is met, without reading its value or what follows (a hostile map of a million
        # entries, or a huge value under a stray key, costs no more than a valid document).
        top = depth == 0 and self.document
        out: dict[str, Any] = {}
        for _ in range(pairs):
            key_start = self.pos
            major, _info, arg = self.head(path)
            if major != 3:
                self.pos = key_start
                raise self.fail(
                    "map key is not a text string: expected text keys only", path, DATA_MODEL
                )
            raw = self.take(arg, path)
            try:
                key = raw.decode("utf-8")
            except UnicodeDecodeError:
                self.pos = key_start
                raise self.fail("invalid UTF-8 in a map key", path) from None
            if key in out:
                self.pos = key_start
                raise self.fail(
                    f"duplicate key {key!r}: expected each key once", (*path, key), DUPLICATE_KEY
                )
            if top and key not in every_field() and not self.plain_value(pairs):
                raise unknown_field(key, None).to_error()
            out[key] = self.item((*path, key), depth + 1)
        return out

    def plain_value(self, pairs: int) -> bool:
        """Whether the value after a stray key is read on: a plain value (a misspelt field's)
        in a map of a document's size. A container under a stray key, or a map larger than a
        document, is refused at the key, its value unread."""
        if pairs > SMALL_DOCUMENT or self.pos >= len(self.data):
            return False
        return self.data[self.pos] >> 5 in (0, 1, 3, 7)


def decode(data: bytes, *, document: bool = False) -> Any:
    """Decode exactly one CBOR item into plain Python values (the JSON data model).

    For a document (`document=True`), a top-level key no contract has is a SchemaError where
    it is met: its value and what follows are never read (so bytes after it that are not
    well-formed go unreported).
    """
    check_size(data)
    reader = _Reader(data, document)
    value = reader.item((), 0)
    if reader.pos != len(data):
        raise reader.fail(
            f"{len(data) - reader.pos} trailing bytes: expected exactly one item",
            (),
        )
    return value


def encode(mapping: dict[str, Any]) -> bytes:
    """RFC 8949 section 4.2.1 core deterministic encoding of a mapping."""
    import cbor2  # only encoding needs it; checking documents does not pay for its import

    return cbor2.dumps(mapping, canonical=True)
