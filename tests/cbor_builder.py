"""CBOR written by hand for the tests, independent of cbor2 and of the package's codec."""

from __future__ import annotations

from typing import Any


def head(major: int, argument: int) -> bytes:
    """The shortest-form head of a CBOR item of a major type and argument."""
    if argument < 24:
        return bytes([major << 5 | argument])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if argument < 1 << (8 * size):
            return bytes([major << 5 | info]) + argument.to_bytes(size, "big")
    raise ValueError(argument)


def text(value: str) -> bytes:
    """A CBOR text string."""
    raw = value.encode("utf-8")
    return head(3, len(raw)) + raw


def item(value: str | int) -> bytes:
    """A text string or an integer, in shortest form; past u64, a bignum (tag 2)."""
    if isinstance(value, str):
        return text(value)
    if value < 0:
        return head(1, -1 - value)
    if value >> 64:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return head(6, 2) + head(2, len(raw)) + raw
    return head(0, value)


def deterministic(mapping: dict[str, Any]) -> bytes:
    """RFC 8949 section 4.2.1: one definite map, shortest forms, keys sorted by encoded bytes."""
    items = sorted((item(k), item(v)) for k, v in mapping.items())
    return head(5, len(items)) + b"".join(k + v for k, v in items)
