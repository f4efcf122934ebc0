"""The hot path for canonical documents, trusted only where it provably equals the strict path.

Most documents arrive exactly as the reference or this package writes them: compact JSON in
field order, or RFC 8949 deterministic CBOR. For those, a regular expression compiled from the
contract's schema does, in one C-level pass, what the strict decoder and most of the structural
stage would do, and chooses the contract; pydantic then checks the bounds and builds the model
from the canonical JSON in one call. Anything else returns None and takes the strict path,
which also explains what is wrong.
"""

from __future__ import annotations

import operator
import re

from pydantic import ValidationError

from fib_quant_kv.codec.limits import MAX_DOCUMENT_BYTES
from fib_quant_kv.contracts import CONTRACTS, Document, field_names, property_schema

# Canonical JSON integers: no sign, no leading zero, no fraction or exponent, at most the 20
# digits of a u64 (the bounds themselves are pydantic's to check).
_JSON_UINT = rb"(?:0|[1-9][0-9]{0,19})"
# CBOR unsigned integers of every width; shortest form is not required, as the strict reader
# does not require it either.
_CBOR_UINT = rb"([\x00-\x17]|\x18.|\x19..|\x1a....|\x1b........)"
# An unsigned integer read whole, head byte included, is its value plus the head shifted past
# the argument: subtracting that by length decodes every width in one step.
_CBOR_UINT_HEAD = {1: 0, 2: 0x18 << 8, 3: 0x19 << 16, 5: 0x1A << 32, 9: 0x1B << 64}
# Enum and const values that JSON writes without escapes, and CBOR as they are.
_PLAIN_TEXT = re.compile(r"[a-z0-9_]+")


def _text(value: str) -> bytes:
    """The CBOR text string of a key or value, in shortest form."""
    raw = value.encode("utf-8")
    if len(raw) < 24:
        return bytes([0x60 + len(raw)]) + raw
    if len(raw) < 256:
        return bytes([0x78, len(raw)]) + raw
    raise ValueError(f"{value!r} is too long for the canonical CBOR fast path")


class _Compiled:
    """One contract's canonical JSON and deterministic CBOR, as patterns from its schema.

    A full match of either proves what the strict decoder would check: exactly one object
    (one definite-length map), every field once and no other, integers that are plain unsigned
    integers, strings that are exactly one of the values the enum or const allows, and nothing
    after it. For JSON it also proves the bytes are already canonical: field order, no
    whitespace, no escapes, no -0.
    """

    def __init__(self, marker: str) -> None:
        self.model = CONTRACTS[marker].model
        properties = {name: property_schema(marker, name) or {} for name in field_names(marker)}
        self.texts: dict[str, dict[bytes, str] | None] = {}
        json_parts, template = [], []
        for name, prop in properties.items():
            if prop.get("type") == "integer":
                self.texts[name] = None
                json_parts.append(re.escape(f'"{name}":'.encode()) + _JSON_UINT)
                template.append(f'"{name}":%d')
                continue
            allowed = prop["enum"] if "enum" in prop else [prop["const"]]
            if not all(_PLAIN_TEXT.fullmatch(v) for v in allowed):
                raise ValueError(f"{marker}.{name}: a value would need JSON escaping")
            self.texts[name] = {_text(v): v for v in allowed}
            json_parts.append(
                re.escape(f'"{name}":'.encode())
                + b'"(?:'
                + b"|".join(re.escape(v.encode()) for v in allowed)
                + b')"'
            )
            template.append(f'"{name}":"%s"')
        self.json_pattern = re.compile(b"\\{" + b",".join(json_parts) + b"\\}")
        self.template = "{" + ",".join(template) + "}"

        # CBOR orders keys by their encoded bytes; JSON keeps the contract's field order.
        cbor_order = sorted(properties, key=_text)
        cbor_parts = [re.escape(bytes([0xA0 + len(properties)]))]
        for name in cbor_order:
            cbor_parts.append(re.escape(_text(name)))
            texts = self.texts[name]
            alternatives = b"|".join(re.escape(t) for t in texts) if texts else None
            cbor_parts.append(_CBOR_UINT if alternatives is None else b"(" + alternatives + b")")
        self.cbor_pattern = re.compile(b"".join(cbor_parts), re.DOTALL)
        self.cbor_texts = [self.texts[name] for name in cbor_order]
        self.to_json_order = operator.itemgetter(*[cbor_order.index(n) for n in properties])

    def cbor_to_json(self, data: bytes) -> bytes | None:
        """The canonical JSON of the document these CBOR bytes encode, if they match."""
        match = self.cbor_pattern.fullmatch(data)
        if match is None:
            return None
        values = [
            texts[raw] if texts is not None else int.from_bytes(raw) - _CBOR_UINT_HEAD[len(raw)]
            for texts, raw in zip(self.cbor_texts, match.groups(), strict=True)
        ]
        fields: tuple[int | str, ...] = self.to_json_order(values)
        return (self.template % fields).encode("ascii")


_COMPILED = {marker: _Compiled(marker) for marker in CONTRACTS}
# Canonical JSON starts with the marker; deterministic CBOR with the map header for the field
# count (11, 8 and 6 fields in v1).
_JSON_PREFIX = b'{"schema_version":"'
_BY_CBOR_HEADER: dict[int, list[_Compiled]] = {}
for _marker, _compiled in _COMPILED.items():
    _BY_CBOR_HEADER.setdefault(0xA0 + len(field_names(_marker)), []).append(_compiled)


def _validated(compiled: _Compiled, canonical: bytes) -> tuple[Document, bytes] | None:
    # The pattern has chosen the contract; pydantic checks the bounds and builds the model.
    try:
        return compiled.model.model_validate_json(canonical), canonical
    except ValidationError:  # a bound: the strict path says which
        return None


def canonical_json(data: bytes) -> tuple[Document, bytes] | None:
    """The model and canonical JSON of a document that is already its canonical JSON, else None."""
    if len(data) > MAX_DOCUMENT_BYTES or not data.startswith(_JSON_PREFIX):
        return None
    end = data.find(b'"', len(_JSON_PREFIX))
    compiled = _COMPILED.get(data[len(_JSON_PREFIX) : end].decode("ascii", "replace"))
    if compiled is None or compiled.json_pattern.fullmatch(data) is None:
        return None
    return _validated(compiled, data)


def canonical_cbor(data: bytes) -> tuple[Document, bytes] | None:
    """The model and canonical JSON of a document in deterministic v1 CBOR, else None."""
    if not data or len(data) > MAX_DOCUMENT_BYTES:
        return None
    for compiled in _BY_CBOR_HEADER.get(data[0], ()):
        canonical = compiled.cbor_to_json(data)
        if canonical is not None:
            return _validated(compiled, canonical)
    return None


__all__ = ["canonical_cbor", "canonical_json"]
