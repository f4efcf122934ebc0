"""The hot path reads what the strict path reads, on every input it accepts, and when it should."""

from __future__ import annotations

import copy
import dataclasses
import json
import operator
import pickle
from collections.abc import Callable
from typing import Any

import cbor2
import pydantic
import pytest
from hypothesis import assume, example, given, settings, strategies as st

import fib_quant_kv as fqk
from fib_quant_kv import contracts, fastpath, reading as reading_module
from fib_quant_kv.codec import detect
from fib_quant_kv.codec.limits import MAX_DOCUMENT_BYTES
from fib_quant_kv.contracts import CONTRACTS, Document, contract_of, property_schema
from fib_quant_kv.errors import Violation
from fib_quant_kv.fastmodel import ModelMaker
from fib_quant_kv.fastpath import (
    FastRead,
    _cbor_text,
    _Compiled,
    canonical_of,
    decode_cbor,
    decode_json,
    model_of,
    read_cbor,
    read_json,
)
from tests.cbor_builder import deterministic, head, text
from tests.shared import VECTORS
from tests.strategies import ANY_BYTES, documents, json_texts

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
VALID_DOCS = [fqk.decode(c["doc"].encode()) for c in VECTORS if c["expect"]["valid"]]
SHAPE = VALID_DOCS[0]
SHAPE_JSON = fqk.encode(SHAPE)
SHAPE_CBOR = fqk.encode(SHAPE, "cbor")


def plain(fields: Any) -> dict[str, Any]:
    """The hot path's field values, by name, in contract order."""
    return dict(fields._asdict())


def strict(data: bytes) -> Document | None:
    """The model the strict path reads (the codec, then pydantic's validator), or None."""
    reading = reading_module.strict(data, detect(data))
    return None if isinstance(reading, Violation) else reading.model


def assert_reads_as_strict(data: bytes, fast: FastRead) -> None:
    """What the hot path read is what the strict path reads, field for field."""
    contract, fields, canonical = fast
    model = strict(data)
    assert model is not None, "the hot path accepted what the strict path refuses"
    assert contract is contract_of(model)
    assert plain(fields) == model.model_dump(mode="json")
    assert canonical == fqk.encode(model)


def in_json_range(value: dict[str, Any]) -> bool:
    """Every integer has fewer digits than its field's maximum (the JSON pattern's range)."""
    marker = value["schema_version"]
    return all(
        v < 10 ** (len(str(property_schema(marker, k)["maximum"])) - 1)  # type: ignore[index]
        for k, v in value.items()
        if isinstance(v, int)
    )


def test_every_valid_vector_takes_the_fast_path_in_both_encodings() -> None:
    for doc in VALID_DOCS:
        canonical = fqk.encode(doc)
        for data, read in ((canonical, read_json), (fqk.encode(doc, "cbor"), read_cbor)):
            fast = read(data)
            assert fast is not None
            assert fast[2] == canonical
            assert plain(fast[1]) == doc.model_dump(mode="json")


@settings(max_examples=300, deadline=None)
@given(documents())
def test_any_valid_document_takes_the_fast_path_unless_a_json_number_is_near_its_bound(
    pair: tuple[Document, fqk.KvTensorShapeV1],
) -> None:
    doc, _ = pair
    value = doc.model_dump(mode="json")
    fast_json = read_json(fqk.encode(doc))
    assert (fast_json is not None) == in_json_range(value)
    fast_cbor = read_cbor(fqk.encode(doc, "cbor"))
    assert fast_cbor is not None
    assert_reads_as_strict(fqk.encode(doc, "cbor"), fast_cbor)


WHITESPACE = st.text(alphabet=" \t\n\r", max_size=3)


@st.composite
def spaced_json(draw: st.DrawFn, doc: Document) -> bytes:
    """The document's fields in contract order, with whitespace wherever JSON allows it."""
    members = [
        draw(WHITESPACE) + json.dumps(k) + draw(WHITESPACE) + ":" + draw(WHITESPACE)
        + json.dumps(v) + draw(WHITESPACE)
        for k, v in doc.model_dump(mode="json").items()
    ]  # fmt: skip
    return (draw(WHITESPACE) + "{" + ",".join(members) + "}" + draw(WHITESPACE)).encode()


@settings(max_examples=300, deadline=None)
@given(documents(), st.data())
def test_json_spaced_out_in_field_order_takes_the_fast_path(
    pair: tuple[Document, fqk.KvTensorShapeV1], data: st.DataObject
) -> None:
    doc, _ = pair
    text = data.draw(spaced_json(doc))
    fast = read_json(text)
    assert (fast is not None) == in_json_range(doc.model_dump(mode="json"))
    if fast is not None:
        assert_reads_as_strict(text, fast)


@settings(max_examples=300, deadline=None)
@given(documents(), st.data())
def test_json_reordered_or_escaped_is_read_as_the_strict_path_reads_it(
    pair: tuple[Document, fqk.KvTensorShapeV1], data: st.DataObject
) -> None:
    doc, _ = pair
    text = data.draw(json_texts(doc))
    assert strict(text) == doc
    fast = read_json(text)  # taken only when the draw kept field order and used no escape
    if fast is not None:
        assert_reads_as_strict(text, fast)


@settings(max_examples=600, deadline=None)
@given(ANY_BYTES)
def test_whatever_the_fast_path_accepts_the_strict_path_reads_the_same(data: bytes) -> None:
    for fast in (read_json(data), read_cbor(data)):
        if fast is not None:
            assert_reads_as_strict(data, fast)


def assert_made_as_validated(made: Document, validated: Document) -> None:
    """A model the hot path made is the one pydantic validates: equal, field for field in the
    same order and of the same types, with the same fields set and no extra or private values."""
    assert type(made) is type(validated)
    assert made == validated
    assert list(made.__dict__) == list(validated.__dict__)
    assert [type(v) for v in made.__dict__.values()] == [
        type(v) for v in validated.__dict__.values()
    ]
    assert made.model_fields_set == validated.model_fields_set
    assert made.__pydantic_extra__ == validated.__pydantic_extra__
    assert made.__pydantic_private__ == validated.__pydantic_private__
    assert made.model_dump_json() == validated.model_dump_json()
    assert hash(made) == hash(validated)


def assert_decodes_as_read(data: bytes) -> None:
    """decode_json and decode_cbor take what read_json and read_cbor take, and make the model
    the strict path validates, with the same fields and canonical JSON."""
    for read, decode in ((read_json, decode_json), (read_cbor, decode_cbor)):
        fast, made = read(data), decode(data)
        assert (fast is None) == (made is None)
        if fast is None or made is None:
            continue
        contract, fields, canonical = fast
        model, made_fields, made_canonical = made
        validated = strict(data)
        assert validated is not None
        assert_made_as_validated(model, validated)
        remade, held = model_of(contract, fields)
        assert_made_as_validated(remade, validated)
        assert all(map(operator.is_, held, remade.__dict__.values()))
        # The made fields are the model's own values (the proof's snapshot holds them).
        assert all(map(operator.is_, made_fields, model.__dict__.values()))
        assert made_fields == fields
        assert canonical_of(contract, made_fields) == canonical == fqk.encode(validated)
        assert made_canonical in (None, canonical)


@settings(max_examples=600, deadline=None)
@given(ANY_BYTES)
def test_a_made_model_is_the_validated_model_for_any_bytes(data: bytes) -> None:
    assert_decodes_as_read(data)


@settings(max_examples=300, deadline=None)
@given(documents(), st.data())
def test_a_made_model_is_the_validated_model_for_any_document_however_written(
    pair: tuple[Document, fqk.KvTensorShapeV1], data: st.DataObject
) -> None:
    doc, _ = pair
    for written in (
        fqk.encode(doc),
        fqk.encode(doc, "cbor"),
        data.draw(json_texts(doc)),
        data.draw(spaced_json(doc)),
    ):
        assert_decodes_as_read(written)


def test_decode_keeps_compact_json_as_its_canonical_json_and_writes_cbors_when_asked() -> None:
    made = decode_json(SHAPE_JSON)
    assert made is not None
    assert made[2] is SHAPE_JSON
    made = decode_cbor(SHAPE_CBOR)
    assert made is not None
    assert made[2] is None
    assert canonical_of(CONTRACTS[SHAPE.schema_version], made[1]) == SHAPE_JSON


@pytest.mark.parametrize("doc", VALID_DOCS, ids=lambda d: d.schema_version)
def test_a_made_model_pickles_copies_and_changes_as_a_validated_one(doc: Document) -> None:
    for data in (fqk.encode(doc), fqk.encode(doc, "cbor")):
        made = fqk.decode(data)
        assert pickle.loads(pickle.dumps(made)) == made
        assert copy.copy(made) == made
        assert copy.deepcopy(made) == made
        assert made.model_dump() == doc.model_dump()
        name = next(k for k, v in made.model_dump().items() if isinstance(v, int))
        changed = made.model_copy(update={name: -1})
        assert made.model_fields_set == changed.model_fields_set == set(made.model_dump())
        with pytest.raises(fqk.SchemaError):  # a copy changed in code is checked afresh
            fqk.digest(changed, None if isinstance(doc, fqk.KvTensorShapeV1) else SHAPE)  # type: ignore[arg-type]


class _Checked(fqk.KvTensorShapeV1):
    """The shape's model with a validator: validation would do more than the pattern proves."""

    @pydantic.field_validator("batch")
    @classmethod
    def _even(cls, value: int) -> int:
        return value


class _Defaulted(fqk.KvTensorShapeV1):
    """The shape's model with a private attribute."""

    _note: str = pydantic.PrivateAttr(default="")


class _Open(fqk.KvTensorShapeV1):
    """The shape's model taking fields outside its schema."""

    model_config = pydantic.ConfigDict(extra="allow")


class _PostInit(fqk.KvTensorShapeV1):
    """The shape's model with a hook run after validation."""

    def model_post_init(self, context: Any, /) -> None:
        pass


class _Wider(fqk.KvTensorShapeV1):
    """The shape's model with a field of a type the patterns do not prove."""

    batch: float  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (_Checked, "validation does more than the pattern"),
        (_Open, "validation does more than the pattern"),
        (_PostInit, "validation does more than the pattern"),
        (_Defaulted, "validation does more than the pattern"),
        (_Wider, r"\.batch: a type the maker cannot make"),
    ],
)
def test_a_model_whose_validation_does_more_than_the_pattern_stops_the_maker(
    monkeypatch: pytest.MonkeyPatch, model: type[Document], message: str
) -> None:
    compiled = _Compiled(CONTRACTS["fib_quant_kv_tensor_shape_v1"])
    monkeypatch.setitem(contracts._MODEL_CLASSES, "Custom", model)
    compiled.contract = dataclasses.replace(compiled.contract, model_name="Custom")
    with pytest.raises(ValueError, match=message):
        ModelMaker(compiled)


# Integers at and around every bound the patterns encode: the schema's minimum (0 or 1), the
# CBOR head forms, the JSON digit counts, u32 and u64.
EDGES = [
    -1, 0, 1, 9, 10, 23, 24, 255, 256, 65535, 65536, 10**9 - 1, 10**9, U32_MAX, U32_MAX + 1,
    10**19 - 1, 10**19, U64_MAX, U64_MAX + 1,
]  # fmt: skip
INTEGERS = st.sampled_from(EDGES) | st.integers(-(2**8), 2**66)


def integer_fields(doc: Document) -> list[str]:
    return [k for k, v in doc.model_dump(mode="json").items() if isinstance(v, int)]


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(VALID_DOCS), st.data(), INTEGERS)
@example(SHAPE, None, 0).via("a zero count: refused by the schema")
def test_a_number_near_a_bound_is_read_as_the_strict_path_reads_it(
    doc: Document, data: st.DataObject | None, number: int
) -> None:
    name = "batch" if data is None else data.draw(st.sampled_from(integer_fields(doc)))
    value = {**doc.model_dump(mode="json"), name: number}
    for encoded, read in (
        (json.dumps(value, separators=(",", ":")).encode(), read_json),
        (deterministic(value), read_cbor),
    ):
        fast = read(encoded)
        if fast is not None:
            assert_reads_as_strict(encoded, fast)
        elif strict(encoded) is not None:
            # Declined though valid: only a JSON number within a digit of its maximum.
            assert read is read_json
            assert not in_json_range(value)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(VALID_DOCS), st.data(), st.integers(0, U32_MAX), st.sampled_from([1, 2, 4, 8])
)
def test_cbor_wider_than_the_shortest_form_takes_the_strict_path(
    doc: Document, data: st.DataObject, number: int, size: int
) -> None:
    shortest = head(0, number)
    assume(size > len(shortest) - 1 and number < 1 << (8 * size))
    name = data.draw(st.sampled_from(integer_fields(doc)))
    canonical = deterministic({**doc.model_dump(mode="json"), name: number})
    wide = bytes([{1: 0x18, 2: 0x19, 4: 0x1A, 8: 0x1B}[size]]) + number.to_bytes(size, "big")
    encoded = canonical.replace(text(name) + shortest, text(name) + wide)
    assert encoded != canonical
    assert read_cbor(encoded) is None
    assert strict(encoded) == strict(canonical)


def test_json_out_of_field_order_or_not_plain_takes_the_strict_path() -> None:
    value = json.loads(SHAPE_JSON)
    pretty = json.dumps(value, indent=2).encode()
    reordered = json.dumps(dict(reversed(value.items())), separators=(",", ":")).encode()
    duplicated = SHAPE_JSON.replace(b'"batch":1,', b'"batch":1,"batch":1,')
    negative_zero = SHAPE_JSON.replace(b'"batch":1,', b'"batch":-0,')
    escaped = SHAPE_JSON.replace(b'"key"', b'"\\u006bey"')
    leading_zero = SHAPE_JSON.replace(b'"batch":1,', b'"batch":01,')
    for data in (pretty, SHAPE_JSON + b" ", b"\r\n\t " + SHAPE_JSON):
        assert read_json(data) == read_json(SHAPE_JSON)  # whitespace only: the same reading
    for data in (reordered, escaped):
        assert read_json(data) is None
        assert strict(data) == SHAPE  # equal documents, only not canonical bytes
    for data in (duplicated, negative_zero, leading_zero, SHAPE_JSON + b"\f", b"\v" + SHAPE_JSON):
        assert read_json(data) is None


def test_cbor_outside_the_deterministic_subset_takes_the_strict_path() -> None:
    value = json.loads(SHAPE_JSON)
    reordered = cbor2.dumps(value)  # insertion order, not canonical order
    tagged = SHAPE_CBOR.replace(b"\x18\x20", b"\xc2\x41\x20", 1)  # a bignum tag for 32
    assert reordered != SHAPE_CBOR
    assert read_cbor(reordered) is None
    assert strict(reordered) == SHAPE
    for data in (SHAPE_CBOR + b"\x00", SHAPE_CBOR[:-1], tagged, b""):
        assert read_cbor(data) is None


@given(st.integers(min_value=0, max_value=U64_MAX))
def test_every_integer_width_reads_as_its_value(value: int) -> None:
    layout = fqk.canonical_layout(SHAPE).model_copy(update={"batch_stride": value})  # type: ignore[arg-type]
    fast = read_cbor(fqk.encode(layout, "cbor"))
    assert fast is not None
    assert fast[1].batch_stride == value
    assert fast[2] == fqk.encode(layout)


def test_an_integer_is_converted_once_and_the_table_stays_within_its_bound() -> None:
    converted: list[bytes] = []

    def counted(raw: bytes) -> int:
        converted.append(raw)
        return int(raw)

    table = fastpath.Integers(counted)
    assert [table[b"4096"], table[b"4096"], table.get(b"4096")] == [4096, 4096, 4096]
    assert converted == [b"4096"]
    for n in range(2 * fastpath.INTEGERS_KEPT):
        assert table[str(n).encode()] == n
    assert len(table) == fastpath.INTEGERS_KEPT
    converted.clear()
    assert [table[b"987654321"], table[b"987654321"]] == [987654321, 987654321]
    assert converted == [b"987654321", b"987654321"]  # past the bound: converted each time
    # The hot path's own tables convert as int() and int.from_bytes do.
    assert fastpath.JSON_INTEGERS[b"131072"] == 131072
    assert fastpath.CBOR_INTEGERS[b"\x00\x02\x00\x00"] == 131072  # a 0x1a head's argument


@pytest.mark.parametrize("value", [10, 0x010A, 0x0A0A, 0x0A0A0A0A, 0x0A << 56])
def test_integer_bytes_that_look_like_a_newline_are_read(value: int) -> None:
    layout = fqk.canonical_layout(SHAPE).model_copy(update={"batch_stride": value})  # type: ignore[arg-type]
    fast = read_cbor(fqk.encode(layout, "cbor"))
    assert fast is not None
    assert fast[1].batch_stride == value


def test_values_beyond_a_bound_fall_back_to_the_strict_path_which_names_them() -> None:
    cases = {
        SHAPE_CBOR.replace(
            b"\x65batch\x01", b"\x65batch\x1b" + (2**40).to_bytes(8, "big")
        ): "/batch",
        SHAPE_CBOR.replace(b"\x65batch\x01", b"\x65batch\x00"): "/batch",
        SHAPE_JSON.replace(b'"batch":1,', b'"batch":0,'): "/batch",
        SHAPE_JSON.replace(b'"batch":1,', b'"batch":4294967296,'): "/batch",
    }
    for data, where in cases.items():
        assert (read_json if detect(data) == "json" else read_cbor)(data) is None
        assert fqk.check(data).violations[0].pointer == where


def test_a_ten_digit_u32_is_valid_by_the_strict_path_only() -> None:
    data = SHAPE_JSON.replace(b'"batch":1,', b'"batch":4294967295,')
    assert read_json(data) is None
    model = strict(data)
    assert model is not None
    assert model.batch == U32_MAX


# The compiled patterns are built when the module is imported; building them again here
# tests the compiler itself, not only its output.


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("", b"\x60"),
        ("a" * 23, b"\x77" + b"a" * 23),
        ("a" * 24, b"\x78\x18" + b"a" * 24),
        ("a" * 255, b"\x78\xff" + b"a" * 255),
        ("é", b"\x62\xc3\xa9"),  # the length is in bytes, not characters
    ],
)
def test_text_is_the_shortest_cbor_text_string(value: str, encoded: bytes) -> None:
    assert _cbor_text(value) == encoded
    assert cbor2.dumps(value) == encoded


def test_text_longer_than_the_fast_path_allows_is_refused() -> None:
    with pytest.raises(ValueError, match="too long for the canonical CBOR fast path"):
        _cbor_text("a" * 256)


# Every integer field at every edge, and values whose bytes look like a newline (0x0a), which
# a pattern's "." would not match without DOTALL.
BATTERY = [*EDGES, 0x0A, 0x010A, 0x0A0A, 0x0A0A0A0A, 0x0A << 56]


def install(monkeypatch: pytest.MonkeyPatch, compiled: _Compiled) -> None:
    """Make a freshly compiled contract the only one the readers know."""
    marker = compiled.contract.marker
    monkeypatch.setattr(fastpath, "_BY_MARKER", {marker: compiled})
    monkeypatch.setattr(fastpath, "_COMPILED", {marker.encode(): compiled})
    monkeypatch.setattr(fastpath, "_BY_CBOR_HEADER", {compiled.cbor_header: [compiled]})


@pytest.mark.parametrize("marker", fqk.markers())
def test_a_freshly_compiled_contract_reads_exactly_what_the_strict_path_accepts(
    monkeypatch: pytest.MonkeyPatch, marker: str
) -> None:
    install(monkeypatch, _Compiled(CONTRACTS[marker]))
    doc = next(d for d in VALID_DOCS if d.schema_version == marker)
    for name in integer_fields(doc):
        for number in BATTERY:
            value = {**doc.model_dump(mode="json"), name: number}
            compact = json.dumps(value, separators=(",", ":")).encode()
            spaced = json.dumps(value, indent=2).encode()
            model = strict(compact)
            for data in (compact, spaced, deterministic(value)):
                fast = (read_json if detect(data) == "json" else read_cbor)(data)
                assert_decodes_as_read(data)
                if model is None:  # refused by the schema: never read by the hot path
                    assert fast is None, (name, number, data)
                    continue
                taken = detect(data) == "cbor" or in_json_range(value)
                assert (fast is not None) == taken, (name, number, data)
                if fast is not None:
                    assert fast[0] is CONTRACTS[marker]
                    assert plain(fast[1]) == model.model_dump(mode="json")
                    assert fast[2] == fqk.encode(model)
                    # Compact JSON is read by its own pattern, as its own canonical JSON.
                    assert (fast[2] is data) == (data is compact)
    # Another contract's documents, and trailing bytes, are not this contract's.
    for other in VALID_DOCS:
        spaced = json.dumps(other.model_dump(mode="json"), indent=1).encode()
        for data in (fqk.encode(other), spaced, fqk.encode(other, "cbor")):
            read = read_json if detect(data) == "json" else read_cbor
            assert (read(data) is not None) == (other.schema_version == marker)
            assert read(data + b"\x00") is None


def test_compact_canonical_json_is_its_own_canonical_json() -> None:
    # Not rewritten from the fields (the spaced pattern would also match it): the bytes given.
    fast = read_json(SHAPE_JSON)
    assert fast is not None
    assert fast[2] is SHAPE_JSON


def test_json_at_the_size_limit_is_read_and_beyond_it_is_not() -> None:
    exactly = SHAPE_JSON + b" " * (MAX_DOCUMENT_BYTES - len(SHAPE_JSON))
    assert read_json(exactly) is not None
    assert read_json(exactly + b" ") is None
    assert decode_json(exactly) is not None
    assert decode_json(exactly + b" ") is None
    assert strict(exactly) == SHAPE
    assert strict(exactly + b" ") is None


def _compile_with(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[str, dict[str, Any]], dict[str, Any]]
) -> _Compiled:
    """The shape contract compiled with its field schemas changed."""
    real = fastpath.property_schema

    def changed(marker: str, field: str) -> Any:
        return change(field, dict(real(marker, field) or {}))

    monkeypatch.setattr(fastpath, "property_schema", changed)
    return _Compiled(CONTRACTS["fib_quant_kv_tensor_shape_v1"])


@pytest.mark.parametrize(
    ("field", "replacement", "message"),
    [
        ("role", {"type": "string", "enum": ['a"b']}, "plain enum and const strings"),
        ("role", {"type": "string", "enum": ["Key"]}, "plain enum and const strings"),
        ("batch", {"type": "integer", "minimum": 2, "maximum": U32_MAX}, "bounds 0 or 1"),
        ("batch", {"type": "integer", "minimum": 1, "maximum": 254}, "bounds 0 or 1"),
        ("batch", {"type": "integer", "minimum": -1, "maximum": U32_MAX}, "bounds 0 or 1"),
        ("batch", {"type": "integer", "maximum": U32_MAX, "multipleOf": 2}, "a keyword or name"),
    ],
)
def test_a_schema_the_patterns_cannot_express_stops_the_compiler(
    monkeypatch: pytest.MonkeyPatch, field: str, replacement: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^fib_quant_kv_tensor_shape_v1.{field}: .*{message}"):
        _compile_with(monkeypatch, lambda name, prop: replacement if name == field else prop)


def test_an_integer_without_a_minimum_admits_zero_and_a_255_maximum_compiles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled = _compile_with(
        monkeypatch,
        lambda name, prop: {"type": "integer", "maximum": 255} if name == "batch" else prop,
    )
    install(monkeypatch, compiled)
    value = SHAPE.model_dump(mode="json")
    for number, taken in ((0, True), (255, True), (24, True), (256, False)):
        data = {**value, "batch": number}
        compact = json.dumps(data, separators=(",", ":")).encode()
        assert (read_json(compact) is not None) == (taken and number < 100), number
        assert (read_cbor(deterministic(data)) is not None) == taken, number


@pytest.mark.parametrize(
    "change",
    [
        {"required": ["schema_version"]},
        {"additionalProperties": True},
        {"minProperties": 11},
    ],
)
def test_an_object_the_patterns_cannot_express_stops_the_compiler(
    monkeypatch: pytest.MonkeyPatch, change: dict[str, Any]
) -> None:
    marker = "fib_quant_kv_tensor_shape_v1"
    root = {**fastpath.shared_schema(marker), **change}
    monkeypatch.setattr(fastpath, "shared_schema", lambda _: root)
    with pytest.raises(ValueError, match="closed, all-required objects"):
        _Compiled(CONTRACTS[marker])


VALID_CASES = [c for c in VECTORS if c["expect"]["valid"]]


@pytest.mark.parametrize("case", VALID_CASES, ids=[c["id"] for c in VALID_CASES])
def test_a_verdict_from_the_hot_path_builds_the_same_model_when_asked(
    case: dict[str, Any],
) -> None:
    doc = fqk.decode(case["doc"].encode())
    checker = fqk.Checker(fqk.decode(case["shape"].encode()) if case["shape"] else None)  # type: ignore[arg-type]
    pretty = json.dumps(doc.model_dump(mode="json"), indent=2).encode()
    arrivals = (fqk.encode(doc), fqk.encode(doc, "cbor"), pretty)
    assert read_json(arrivals[0]) is not None  # all three take the hot path
    assert read_cbor(arrivals[1]) is not None
    assert read_json(arrivals[2]) is not None
    verdicts = [checker.check(d) for d in arrivals]
    assert verdicts[0].digest == case["expect"]["digest"]
    assert verdicts[0] == verdicts[1] == verdicts[2]
    assert all(v.document == doc for v in verdicts)
    assert type(verdicts[0].document) is type(doc)
    assert repr(verdicts[0]).startswith(f"Verdict(kind={contract_of(doc).kind!r}, document=")


# A checker for a shape given as bytes keeps the hot path's fields, not a model.

WITH_SHAPE = [c for c in VECTORS if c["shape"] is not None]


@pytest.mark.parametrize("case", WITH_SHAPE, ids=[c["id"] for c in WITH_SHAPE])
def test_a_checker_for_shape_bytes_judges_as_one_for_the_shape_model(case: dict[str, Any]) -> None:
    # The vectors' shapes are valid; invalid ones are refused (the test below).
    shape_bytes = case["shape"].encode()
    model_checker = fqk.Checker(fqk.decode(shape_bytes))
    shape = model_checker.shape
    assert shape is not None
    for data in (
        shape_bytes,
        fqk.encode(shape, "cbor"),
        json.dumps(json.loads(shape_bytes), indent=1).encode(),
    ):
        checker = fqk.Checker.for_shape(data)
        assert checker.check(case["doc"].encode()) == model_checker.check(case["doc"].encode())
        assert checker.shape == shape


def test_a_checker_for_shape_bytes_refuses_what_is_not_a_valid_shape() -> None:
    layout = fqk.canonical_layout(SHAPE)  # type: ignore[arg-type]
    broken = SHAPE_JSON.replace(b'"gqa"', b'"mha"')  # 32 query heads, 8 kv heads

    def reordered(data: bytes) -> bytes:  # not in field order: the strict path reads it
        return json.dumps(dict(reversed(json.loads(data).items()))).encode()

    cases: list[tuple[bytes, type[fqk.FibQuantKvError], str]] = [
        (fqk.encode(layout), fqk.SchemaError, "/schema_version"),
        (fqk.encode(layout, "cbor"), fqk.SchemaError, "/schema_version"),
        (reordered(fqk.encode(layout)), fqk.SchemaError, "/schema_version"),
        (broken, fqk.CorruptPayload, "/query_heads"),
        (reordered(broken), fqk.CorruptPayload, "/query_heads"),
        (b"{", fqk.DecodeError, ""),
    ]
    for data, error, where in cases:
        with pytest.raises(error) as raised:
            fqk.Checker.for_shape(data)
        assert raised.value.pointer == where
