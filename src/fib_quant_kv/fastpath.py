"""The hot path for documents in field order, held by tests to what the strict path reads.

Most documents arrive as the reference, this package or a pretty printer writes them: JSON in
field order (compact, which is already canonical, or spaced out), or RFC 8949 deterministic
CBOR. For those, one regular expression compiled from the contract's schema does, in one
C-level pass, everything the strict decoder and the structural stage would do: it chooses the
contract, and proves every field present once, of its type, within its bounds, and nothing
else there. Its groups are the field values, so the rules read them without a model (or
pydantic) being needed, and `decode` makes its model from them without validating again.
Anything the patterns do not match (other orders, escapes, wider encodings, numbers near a
bound) returns None and takes the strict path, which accepts what is valid and explains what
is not.
"""

from __future__ import annotations

import collections
import functools
import operator
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias

from fib_quant_kv.codec.limits import MAX_DOCUMENT_BYTES
from fib_quant_kv.contracts import (
    CONTRACTS,
    Contract,
    field_names,
    on_change,
    property_schema,
    shared_schema,
)

if TYPE_CHECKING:
    from fib_quant_kv.contracts import Document
    from fib_quant_kv.fastmodel import ModelMaker
    from fib_quant_kv.rules import DocumentFields

# The contract a document follows, its field values in contract order (read by attribute, like
# the model), and its canonical JSON.
FastRead: TypeAlias = "tuple[Contract, DocumentFields, bytes]"

# JSON's four whitespace bytes, anywhere between tokens. Possessive (*+): what follows is never
# whitespace, so giving some back could not help a match, and the engine keeps no state to.
_WS = rb"[ \t\n\r]*+"
# Keys, enum values and markers that JSON writes without escapes, and CBOR as they are.
_PLAIN_TEXT = re.compile(r"[a-z0-9_]+")
# What the fast path knows how to compile; a schema with any other keyword is declined (its
# documents take the strict path) rather than the keyword silently ignored.
_FIELD_KEYWORDS = {"type", "const", "enum", "minimum", "maximum", "title", "description"}
_OBJECT_KEYWORDS = {
    "$schema", "$id", "$defs", "title", "description", "type", "properties", "required",
    "additionalProperties",
}  # fmt: skip

# Deterministic CBOR writes an unsigned integer in the shortest of five forms: the head byte
# itself (0..23), or a head 0x18..0x1b and 1, 2, 4 or 8 bytes of big-endian argument that a
# shorter form could not hold. (head, argument pattern, largest value).
_CBOR_FORMS = (
    (0x18, rb"[\x18-\xff]", 0xFF),
    (0x19, rb"(?!\x00)..", 0xFFFF),
    (0x1A, rb"(?!\x00\x00)....", 0xFFFF_FFFF),
    (0x1B, rb"(?!\x00\x00\x00\x00)........", 0xFFFF_FFFF_FFFF_FFFF),
)


class Integers(dict[bytes, int]):
    """Integers by the bytes a pattern matched, each converted once and then looked up.

    The same few counts fill these documents (head counts, head dims, layer and token counts),
    and a lookup in a dict is a quarter of what converting the digits again costs. A table is
    read with `dict.__getitem__`, as the enum fields' tables are, so every field converts in one
    C-level call; a value not yet seen is converted by `__missing__`. It keeps at most
    INTEGERS_KEPT values, so documents of ever-new numbers cannot grow it without bound: past
    that, they are converted each time.
    """

    __slots__ = ("convert",)

    def __init__(self, convert: Callable[[bytes], int]) -> None:
        super().__init__()
        self.convert = convert

    def __missing__(self, raw: bytes) -> int:
        value = self.convert(raw)
        if len(self) < INTEGERS_KEPT:
            self[raw] = value
        return value


INTEGERS_KEPT = 4096
# Canonical JSON's digits (int() reads ASCII digits from bytes), and deterministic CBOR's
# big-endian argument bytes (an immediate value's one byte is its own value).
JSON_INTEGERS = Integers(int)
CBOR_INTEGERS = Integers(int.from_bytes)
# How a field's matched bytes become its value: a lookup in its table (Integers, or an enum's
# or a marker's allowed texts).
Table: TypeAlias = "dict[bytes, Any]"
_value_in = dict.__getitem__


def _uint_bounds(where: str, prop: dict[str, Any]) -> tuple[int, int]:
    minimum, maximum = prop.get("minimum", 0), prop["maximum"]
    if minimum not in (0, 1) or maximum < 0xFF:
        raise ValueError(f"{where}: the fast path compiles only bounds 0 or 1 ..= at least 255")
    return minimum, maximum


def _json_uint(minimum: int, maximum: int) -> bytes:
    """Canonical JSON integers in the bounds, capturing the digits.

    With one digit fewer than the maximum has, every number is below it whatever its digits;
    longer numbers take the strict path, which checks them exactly.
    """
    digits = len(str(maximum)) - 1
    lowest = b"0|" if minimum == 0 else b""
    # Possessive, as whitespace is: a number is never followed by a digit.
    return b"(" + lowest + b"[1-9][0-9]{0,%d}+)" % (digits - 1)


def _cbor_uint(minimum: int, maximum: int) -> bytes:
    """Shortest-form CBOR unsigned integers in the bounds, capturing the big-endian value.

    The group holds the argument without its head, so int.from_bytes reads every form; a
    one-byte integer is its own value. The lookbehinds tie each argument length to its head,
    and the key text just before a value is never a head byte, so no head means an immediate.
    """
    forms = [(head, body) for head, body, top in _CBOR_FORMS if top <= maximum]
    heads = re.escape(bytes([forms[0][0]])) + b"-" + re.escape(bytes([forms[-1][0]]))
    immediate = rb"[\x00-\x17]" if minimum == 0 else rb"[\x01-\x17]"
    arguments = [b"(?<![" + heads + b"])" + immediate]
    arguments += [b"(?<=" + re.escape(bytes([head])) + b")" + body for head, body in forms]
    return b"[" + heads + b"]?(" + b"|".join(arguments) + b")"


def _cbor_text(value: str) -> bytes:
    """The CBOR text string of a key or value, in shortest form."""
    raw = value.encode("utf-8")
    if len(raw) < 24:
        return bytes([0x60 + len(raw)]) + raw
    if len(raw) < 256:
        return bytes([0x78, len(raw)]) + raw
    raise ValueError(f"{value!r} is too long for the canonical CBOR fast path")


def _allowed_texts(where: str, prop: dict[str, Any]) -> list[str]:
    allowed: list[str] = prop["enum"] if "enum" in prop else [prop["const"]]
    if prop.get("type") != "string" or not all(_PLAIN_TEXT.fullmatch(v) for v in allowed):
        raise ValueError(f"{where}: the fast path compiles only plain enum and const strings")
    return allowed


def _named_tuple(name: str, fields: list[str]) -> Any:
    # namedtuple() with names known only at run time: a class no type checker can describe.
    return collections.namedtuple(name, fields)


class _Compiled:
    """One contract's canonical JSON and deterministic CBOR, as patterns from its schema.

    A full match of either proves what the strict decoder and the schema would check: exactly
    one object (one definite-length map), every field once and no other, integers that are
    plain unsigned integers within the field's bounds, strings that are exactly one of the
    values the enum or const allows, and nothing after it. The compact JSON pattern also
    proves the bytes are already canonical (field order, no whitespace, no escapes, no -0);
    the spaced one admits JSON whitespace between tokens, and the canonical JSON is then
    written from the fields, as it is for CBOR.
    """

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        marker = contract.marker
        root = shared_schema(marker)
        names = field_names(marker)
        if (
            set(root) - _OBJECT_KEYWORDS
            or root.get("additionalProperties") is not False
            or root.get("required") != names
        ):
            raise ValueError(f"{marker}: the fast path compiles only closed, all-required objects")
        # A named tuple, read by attribute like the model. Its class is made from the schema at
        # run time, so to the type checker it is DocumentFields. tuple.__new__ builds one in a
        # single C call (its _make is Python); the patterns fix the number of values.
        view = _named_tuple(f"{contract.model_name}Fields", names)
        self.fields: Callable[[Iterable[object]], DocumentFields] = functools.partial(
            tuple.__new__, view
        )

        # (key, value) patterns; compact JSON joins them with ":" and ",", spaced JSON lets
        # whitespace surround every token.
        json_parts: list[tuple[bytes, bytes]] = []
        # Each field's table, from its matched bytes to its value (see Integers).
        json_tables: list[Table] = []
        template: list[str] = []
        cbor_by_key: dict[bytes, tuple[bytes, Table]] = {}
        # Each string field's matched text -> value, by encoding: the model's maker swaps the
        # values for enum members.
        self.json_texts: dict[str, dict[bytes, str]] = {}
        self.cbor_texts: dict[str, dict[bytes, str]] = {}
        for name in names:
            where = f"{marker}.{name}"
            prop = property_schema(marker, name) or {}
            if set(prop) - _FIELD_KEYWORDS or not _PLAIN_TEXT.fullmatch(name):
                raise ValueError(f"{where}: a keyword or name the fast path cannot compile")
            key = re.escape(f'"{name}"'.encode())
            if prop.get("type") == "integer":
                bounds = _uint_bounds(where, prop)
                json_parts.append((key, _json_uint(*bounds)))
                json_tables.append(JSON_INTEGERS)
                template.append(f'"{name}":%d')
                cbor_by_key[_cbor_text(name)] = (_cbor_uint(*bounds), CBOR_INTEGERS)
                continue
            allowed = _allowed_texts(where, prop)
            json_parts.append((key, b'"(' + b"|".join(v.encode() for v in allowed) + b')"'))
            json_texts = self.json_texts[name] = {v.encode(): v for v in allowed}
            json_tables.append(json_texts)
            template.append(f'"{name}":"%s"')
            cbor_texts = self.cbor_texts[name] = {_cbor_text(v): v for v in allowed}
            cbor_by_key[_cbor_text(name)] = (
                b"(" + b"|".join(re.escape(t) for t in cbor_texts) + b")",
                cbor_texts,
            )
        # The patterns' sources; each is compiled when first used (the properties below).
        self.json_source = b"\\{" + b",".join(k + b":" + v for k, v in json_parts) + b"\\}"
        spaced = (_WS + b"," + _WS).join(k + _WS + b":" + _WS + v for k, v in json_parts)
        self.spaced_json_source = _WS + b"\\{" + _WS + spaced + _WS + b"\\}" + _WS
        self.json_tables = json_tables
        self.template = "{" + ",".join(template) + "}"
        # The same as bytes, filled with the JSON pattern's groups as matched: the pattern has
        # proven the digits canonical (no sign, no leading zero) and the strings plain, so
        # they are copied as they stand, without a conversion to values and back.
        self.json_template = self.template.replace("%d", "%s").encode("ascii")

        # CBOR orders keys by their encoded bytes; the fields keep the contract's order.
        cbor_keys = sorted(cbor_by_key)
        self.cbor_header = 0xA0 + len(names)
        self.cbor_source = re.escape(bytes([self.cbor_header])) + b"".join(
            re.escape(k) + cbor_by_key[k][0] for k in cbor_keys
        )
        # The groups come in key order: put back in field order, then converted.
        order = [_cbor_text(name) for name in names]
        self.to_field_order = operator.itemgetter(*[cbor_keys.index(k) for k in order])
        self.cbor_tables = [cbor_by_key[k][1] for k in order]

    # Compiled on first use: together they take milliseconds to compile, and a run over one
    # document needs one of them (a command's start-up is most of a single-file run).

    @functools.cached_property
    def json_pattern(self) -> re.Pattern[bytes]:
        """Compact JSON in field order: canonical as it stands."""
        return re.compile(self.json_source)

    @functools.cached_property
    def spaced_json_pattern(self) -> re.Pattern[bytes]:
        """JSON in field order with whitespace between tokens."""
        return re.compile(self.spaced_json_source)

    @functools.cached_property
    def cbor_pattern(self) -> re.Pattern[bytes]:
        """Deterministic CBOR (the argument bytes may be any byte, newline included)."""
        return re.compile(self.cbor_source, re.DOTALL)

    @functools.cached_property
    def maker(self) -> ModelMaker:
        """How models of this contract are made from a match (built on first use: it imports
        the models, which a run that asks for none never needs)."""
        from fib_quant_kv.fastmodel import ModelMaker

        return ModelMaker(self)


# The compiled contracts, by marker (and its bytes), and by CBOR map header. A contract whose
# schema uses a keyword or form the patterns cannot express is left out: its documents take the
# strict path, which judges every schema.
_BY_MARKER: dict[str, _Compiled] = {}
_COMPILED: dict[bytes, _Compiled] = {}
_BY_CBOR_HEADER: dict[int, list[_Compiled]] = {}
# Canonical JSON starts with the marker; deterministic CBOR with the map header for the field
# count (11, 8 and 6 fields in v1).
_JSON_PREFIX = b'{"schema_version":"'


def _compile_all() -> None:
    """Compile every registered contract the patterns can express (again, when it changes)."""
    _BY_MARKER.clear()
    _COMPILED.clear()
    _BY_CBOR_HEADER.clear()
    for marker, contract in CONTRACTS.items():
        try:
            compiled = _Compiled(contract)
        except ValueError:  # declined: the strict path judges this contract
            continue
        _BY_MARKER[marker] = compiled
        _COMPILED[marker.encode()] = compiled
        _BY_CBOR_HEADER.setdefault(compiled.cbor_header, []).append(compiled)


_compile_all()
on_change(_compile_all)


def _compact(data: bytes) -> _Compiled | None:
    """The contract compact JSON names by the marker it starts with (canonical JSON does)."""
    if not data.startswith(_JSON_PREFIX):
        return None
    return _COMPILED.get(data[len(_JSON_PREFIX) : data.find(b'"', len(_JSON_PREFIX))])


def read_json(data: bytes) -> FastRead | None:
    """The contract, fields and canonical JSON of a JSON document in field order, or None.

    Compact JSON (as the reference writes it) is recognised first, by the marker it starts
    with; then the same fields spaced out, as a pretty printer writes them.
    """
    # Whitespace is unbounded in JSON: the strict path's size limit holds here too.
    if len(data) > MAX_DOCUMENT_BYTES:
        return None
    compiled = _compact(data)
    match = None if compiled is None else compiled.json_pattern.fullmatch(data)
    if compiled is not None and match is not None:
        fields = compiled.fields(map(_value_in, compiled.json_tables, match.groups()))
        return compiled.contract, fields, data
    for compiled in _COMPILED.values():
        match = compiled.spaced_json_pattern.fullmatch(data)
        if match is not None:
            groups = match.groups()
            fields = compiled.fields(map(_value_in, compiled.json_tables, groups))
            return compiled.contract, fields, compiled.json_template % groups
    return None


def read_cbor(data: bytes) -> FastRead | None:
    """The contract, fields and canonical JSON of a document in deterministic v1 CBOR, or None."""
    # No size check is needed: the patterns admit only a few hundred bytes, and a longer input
    # fails them within its first few hundred.
    for compiled in _BY_CBOR_HEADER.get(data[0], ()) if data else ():
        match = compiled.cbor_pattern.fullmatch(data)
        if match is not None:
            groups = compiled.to_field_order(match.groups())
            fields = compiled.fields(map(_value_in, compiled.cbor_tables, groups))
            # canonical_of's template, from the contract in hand.
            return compiled.contract, fields, (compiled.template % fields).encode("ascii")
    return None


# A model made from a match, its fields (as the rules read them) and its canonical JSON where it
# comes at no cost (JSON); for CBOR, `canonical_of` writes it from the fields if it is needed.
Made: TypeAlias = "tuple[Document, DocumentFields, bytes | None]"


def decode_json(data: bytes) -> Made | None:
    """The model and fields of a JSON document in field order, or None: what `read_json`
    reads, the model made without validating it again."""
    # read_json's steps, each reader written out: a shared one would cost every document a call.
    if len(data) > MAX_DOCUMENT_BYTES:
        return None
    compiled = _compact(data)
    match = None if compiled is None else compiled.json_pattern.fullmatch(data)
    if compiled is not None and match is not None:
        maker = compiled.maker
        fields = compiled.fields(map(_value_in, maker.json_tables, match.groups()))
        return maker.make(fields), fields, data
    for compiled in _COMPILED.values():
        match = compiled.spaced_json_pattern.fullmatch(data)
        if match is not None:
            groups = match.groups()
            maker = compiled.maker
            fields = compiled.fields(map(_value_in, maker.json_tables, groups))
            return maker.make(fields), fields, compiled.json_template % groups
    return None


def decode_cbor(data: bytes) -> Made | None:
    """The model and fields of a document in deterministic v1 CBOR, or None: what `read_cbor`
    reads, the model made without validating it again."""
    # read_cbor's steps, written out as decode_json's are.
    for compiled in _BY_CBOR_HEADER.get(data[0], ()) if data else ():
        match = compiled.cbor_pattern.fullmatch(data)
        if match is not None:
            maker = compiled.maker
            groups = compiled.to_field_order(match.groups())
            fields = compiled.fields(map(_value_in, maker.cbor_tables, groups))
            return maker.make(fields), fields, None
    return None


def canonical_of(contract: Contract, fields: DocumentFields) -> bytes:
    """The canonical JSON of a proven document's fields (plain strings or enum members).

    The schema keeps every string to plain ASCII letters, digits and underscores and every
    integer exact, so the contract's template writes what serde_json would, with no escaping.
    A contract the patterns declined is written as compact JSON in field order.
    """
    compiled = _BY_MARKER.get(contract.marker)
    if compiled is None:
        values: tuple[object, ...] = tuple(fields)  # type: ignore[arg-type]  # a named tuple
        return _plain_json(dict(zip(field_names(contract.marker), values, strict=True)))
    return (compiled.template % fields).encode("ascii")


def _plain_json(value: dict[str, object]) -> bytes:
    import json  # only a contract the patterns declined pays for its import

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def fields_of(contract: Contract, values: Iterable[object]) -> DocumentFields:
    """A document's field values, in contract order, as the plain fields the hot path reads."""
    compiled = _BY_MARKER.get(contract.marker)
    if compiled is None:
        return _view(contract.marker)(values)
    return compiled.fields(values)


@functools.cache
def _view(marker: str) -> Callable[[Iterable[object]], DocumentFields]:
    """The named tuple of a contract the patterns declined."""
    view = _named_tuple(f"{marker}Fields", field_names(marker))
    return functools.partial(tuple.__new__, view)


on_change(_view.cache_clear)


def model_of(contract: Contract, fields: DocumentFields) -> tuple[Document, DocumentFields]:
    """The model of a document's fields as `read_json` or `read_cbor` gave them (proven
    already, so made without validating them again), and its fields as the model holds them."""
    return _BY_MARKER[contract.marker].maker.of_fields(fields)


__all__ = [
    "FastRead",
    "Made",
    "canonical_of",
    "decode_cbor",
    "decode_json",
    "fields_of",
    "model_of",
    "read_cbor",
    "read_json",
]
