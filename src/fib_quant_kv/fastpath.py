"""The hot path for canonical documents, trusted only where it provably equals the strict path.

Most documents arrive exactly as the reference or this package writes them: compact JSON in
field order, or RFC 8949 deterministic CBOR. For those, one C-level pass does the work of the
strict decoder and the structural stage. Anything else returns None and takes the strict path,
which also explains what is wrong.
"""

from __future__ import annotations

import operator
import re
from typing import Annotated

from pydantic import Field, TypeAdapter, ValidationError

from fib_quant_kv.codec.limits import MAX_DOCUMENT_BYTES
from fib_quant_kv.contracts import CONTRACTS, Document, field_names, property_schema
from fib_quant_kv.digests import encode

# pydantic parses and validates JSON in one call, choosing the model by schema_version. Its
# parser is lax where the reference is strict (the last of two equal keys wins, -0 reads as 0),
# so its result is trusted only when the document's canonical bytes, re-encoded from the
# model, are the input itself: canonical JSON has no repeated key, no -0, no whitespace and
# no escapes, and the strict decoder would have read exactly the same values.
ANY_DOCUMENT: TypeAdapter[Document] = TypeAdapter(
    Annotated[Document, Field(discriminator="schema_version")]
)


def canonical_json(data: bytes) -> tuple[Document, bytes] | None:
    """The model and canonical JSON of a document that is already its canonical JSON, else None."""
    if len(data) > MAX_DOCUMENT_BYTES or data[:1] != b"{":
        return None
    try:
        model = ANY_DOCUMENT.validate_json(data)
    except ValidationError:
        return None
    return (model, data) if encode(model) == data else None


# Deterministic CBOR of a v1 document, as one regular expression per contract compiled from its
# schema: the map header for its field count, then every key in the order of its encoded bytes,
# each followed by an unsigned integer (any width) or one of the exact text strings its enum or
# const allows. A full match proves what the strict decoder would check: one definite-length
# map, text keys, no repeated or unknown key, no tag, float or byte string, nothing after it.
_UINT = rb"([\x00-\x17]|\x18.|\x19..|\x1a....|\x1b........)"
# An unsigned integer read whole, head byte included, is its value plus the head shifted past
# the argument: subtracting that by length decodes every width in one step.
_PLAIN_TEXT = re.compile(r"[a-z0-9_]+")
_UINT_HEAD = {1: 0, 2: 0x18 << 8, 3: 0x19 << 16, 5: 0x1A << 32, 9: 0x1B << 64}


def _text(value: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) < 24:
        return bytes([0x60 + len(raw)]) + raw
    if len(raw) < 256:
        return bytes([0x78, len(raw)]) + raw
    raise ValueError(f"{value!r} is too long for the canonical CBOR fast path")


class _CanonicalCbor:
    """The pattern of one contract's deterministic CBOR, and how to write its canonical JSON."""

    def __init__(self, marker: str) -> None:
        properties = {name: property_schema(marker, name) or {} for name in field_names(marker)}
        parts = [re.escape(bytes([0xA0 + len(properties)]))]
        # CBOR orders keys by their encoded bytes; JSON keeps the contract's field order.
        self.json_order: list[int] = []
        self.texts: list[dict[bytes, str] | None] = []
        cbor_order = sorted(properties, key=_text)
        template = []
        for name, prop in properties.items():
            self.json_order.append(cbor_order.index(name))
            template.append(f'"{name}":%d' if prop.get("type") == "integer" else f'"{name}":"%s"')
        for name in cbor_order:
            prop = properties[name]
            parts.append(re.escape(_text(name)))
            if prop.get("type") == "integer":
                parts.append(_UINT)
                self.texts.append(None)
            else:
                allowed = prop["enum"] if "enum" in prop else [prop["const"]]
                if not all(_PLAIN_TEXT.fullmatch(v) for v in allowed):
                    raise ValueError(f"{marker}.{name}: a value would need JSON escaping")
                texts = {_text(v): v for v in allowed}
                parts.append(b"(" + b"|".join(re.escape(t) for t in texts) + b")")
                self.texts.append(texts)
        self.pattern = re.compile(b"".join(parts), re.DOTALL)
        self.to_json_order = operator.itemgetter(*self.json_order)
        # Enum and const values are plain [a-z0-9_] (checked above): no JSON escaping needed.
        self.template = "{" + ",".join(template) + "}"

    def to_json(self, data: bytes) -> bytes | None:
        """The canonical JSON of the document these bytes encode, if they match; else None."""
        match = self.pattern.fullmatch(data)
        if match is None:
            return None
        values = [
            texts[raw] if texts is not None else int.from_bytes(raw) - _UINT_HEAD[len(raw)]
            for texts, raw in zip(self.texts, match.groups(), strict=True)
        ]
        fields: tuple[int | str, ...] = self.to_json_order(values)
        return (self.template % fields).encode("ascii")


# By map header byte, which the field count decides (11, 8 and 6 fields in v1).
_CBOR: dict[int, list[_CanonicalCbor]] = {}
for _marker in CONTRACTS:
    _CBOR.setdefault(0xA0 + len(field_names(_marker)), []).append(_CanonicalCbor(_marker))


def canonical_cbor(data: bytes) -> tuple[Document, bytes] | None:
    """The model and canonical JSON of a document in deterministic v1 CBOR, else None.

    The match proves the structure; pydantic then checks the bounds (and builds the model)
    from the canonical JSON, which is what gets digested.
    """
    if not data or len(data) > MAX_DOCUMENT_BYTES:
        return None
    canonical = next(
        (json for c in _CBOR.get(data[0], ()) if (json := c.to_json(data)) is not None), None
    )
    if canonical is None:
        return None
    try:
        return ANY_DOCUMENT.validate_json(canonical), canonical
    except ValidationError:  # a bound: the strict path says which
        return None
