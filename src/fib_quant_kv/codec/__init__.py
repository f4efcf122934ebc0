"""Strict codecs: bytes to plain values (the JSON data model), in JSON or CBOR."""

from __future__ import annotations

from typing import Any, Literal

from fib_quant_kv.codec import cbor, json

Encoding = Literal["json", "cbor"]
ENCODINGS: tuple[Encoding, ...] = ("json", "cbor")

_UTF8_BOM = b"\xef\xbb\xbf"


def detect(data: bytes) -> Encoding:
    """The encoding of a document, from its first byte.

    JSON text starts with an ASCII byte (whitespace or a value), and a UTF-8 byte order mark is
    handed to the JSON codec to be refused by name. A CBOR document is a map, whose first byte
    is 0xa0 to 0xbf; so is any array, tag or float. A CBOR integer or string at top level
    (first byte below 0x80) is never a document: it goes to the JSON codec and is refused there.
    Pass the encoding explicitly to have such bytes judged as CBOR.
    """
    if data[:1] >= b"\x80" and not data.startswith(_UTF8_BOM):
        return "cbor"
    return "json"


def decode_value(data: bytes, encoding: Encoding | None = None, *, document: bool = False) -> Any:
    """Strictly decode bytes into plain values; the encoding is detected unless given.

    For a contract document, the CBOR reader stops at the first entry no contract can hold
    (the JSON parser, in C, reads everything first; the schema stage refuses it after).
    """
    chosen = encoding or detect(data)
    return cbor.decode(data, document=document) if chosen == "cbor" else json.decode(data)
