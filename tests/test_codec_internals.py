"""The codecs' internals: CBOR fast path, JSON nesting count, integer parsing, limits, messages."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, strategies as st

import fib_quant_kv as fqk
from fib_quant_kv.codec import cbor, decode_value, detect, json as strict_json
from fib_quant_kv.codec.limits import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_INTEGER_DIGITS,
    SMALL_DOCUMENT,
)
from fib_quant_kv.fastpath import read_cbor
from tests.cbor_builder import deterministic as encode
from tests.shared import VECTORS

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1

SHAPE: dict[str, Any] = {
    "schema_version": "fib_quant_kv_tensor_shape_v1",
    "role": "value",
    "attention_kind": "mha",
    "batch": 1,
    "layers": 2,
    "kv_heads": 3,
    "query_heads": 3,
    "tokens": 5,
    "head_dim": 7,
    "dtype": "f32",
    "rope_state": "not_applicable",
}
LAYOUT: dict[str, Any] = {
    "schema_version": "fib_quant_kv_cache_layout_v1",
    "shape_schema_version": "fib_quant_kv_tensor_shape_v1",
    "order": "batch_layer_head_token_dim",
    "batch_stride": 210,
    "layer_stride": 105,
    "head_stride": 35,
    "token_stride": 7,
    "dim_stride": 1,
}
GEOMETRY: dict[str, Any] = {
    "schema_version": "fib_quant_kv_page_geometry_v1",
    "tokens_per_page": 5,
    "vectors_per_block": 1,
    "head_dim": 7,
    "encoded_block_bytes": 9,
    "raw_vector_bytes": 28,
}


def general(data: bytes) -> Any:
    """What the general CBOR reader makes of bytes (which must be exactly one item)."""
    reader = cbor._Reader(data, document=False)
    value = reader.item((), 0)
    assert reader.pos == len(data)
    return value


def cbor_error(data: bytes) -> fqk.DecodeError:
    with pytest.raises(fqk.DecodeError) as raised:
        cbor.decode(data)
    assert raised.value.rule in DECODE_RULES, raised.value
    return raised.value


def json_error(data: bytes) -> fqk.DecodeError:
    with pytest.raises(fqk.DecodeError) as raised:
        strict_json.decode(data)
    assert raised.value.rule in DECODE_RULES, raised.value
    return raised.value


# The decoding stage's rule ids: every refusal of a codec names one.
DECODE_RULES = {rule_id for rule_id in fqk.RULES if rule_id.startswith("decode.")}


VALID_VECTORS = [c for c in VECTORS if c["expect"]["valid"]]


@pytest.mark.parametrize("case", VALID_VECTORS, ids=[c["id"] for c in VALID_VECTORS])
def test_own_encoder_reproduces_the_vectors(case: dict[str, Any]) -> None:
    assert encode(json.loads(case["doc"])).hex() == case["expect"]["cbor_hex"]


def _with_every_integer(doc: dict[str, Any], value: int) -> dict[str, Any]:
    return {k: value if isinstance(v, int) else v for k, v in doc.items()}


# Values at every boundary of the head forms: immediate, 1, 2, 4 and 8 byte arguments.
U32_EDGES = [1, 23, 24, 98, 255, 256, 65535, 65536, U32_MAX]
U64_EDGES = [0, *U32_EDGES, 1 << 32, U64_MAX]

CANONICAL_DOCS = [
    *[pytest.param(bytes.fromhex(c["expect"]["cbor_hex"]), id=c["id"]) for c in VALID_VECTORS],
    *[pytest.param(encode(d), id=f"base-{d['schema_version']}") for d in (SHAPE, LAYOUT, GEOMETRY)],
    *[pytest.param(encode(_with_every_integer(SHAPE, v)), id=f"shape-{v}") for v in U32_EDGES],
    *[pytest.param(encode(_with_every_integer(LAYOUT, v)), id=f"layout-{v}") for v in U64_EDGES],
    *[
        pytest.param(encode(_with_every_integer(GEOMETRY, v)), id=f"geometry-{v}")
        for v in U32_EDGES
    ],
]


@pytest.mark.parametrize("data", CANONICAL_DOCS)
def test_fast_path_reads_every_canonical_v1_document_as_the_general_reader(data: bytes) -> None:
    fast = read_cbor(data)
    assert fast is not None, "a canonical v1 document must take the fast path"
    contract, fields, canonical = fast
    slow = general(data)
    assert dict(fields._asdict()) == slow  # type: ignore[union-attr]
    assert canonical == fqk.encode(contract.model.model_validate(slow))
    assert cbor.decode(data) == slow


def test_the_canonical_documents_are_v1_documents() -> None:
    # The fast path's inputs above are real documents, not arbitrary maps.
    for doc, edges in ((SHAPE, U32_EDGES), (LAYOUT, U64_EDGES), (GEOMETRY, U32_EDGES)):
        for value in edges:
            model = fqk.decode(encode(_with_every_integer(doc, value)))
            assert model.model_dump(mode="json") == _with_every_integer(doc, value)


@pytest.mark.parametrize(
    ("data", "want"),
    [
        # A 1-byte unsigned integer whose byte looks like a text key head.
        pytest.param(b"\xa2\x61a\x18\x62\x61b\x00", {"a": 98, "b": 0}, id="uint8-like-a-key"),
        pytest.param(b"\xa1\x61a\x18\x77", {"a": 119}, id="uint8-0x77"),
        pytest.param(b"\xa1\x61a\x17", {"a": 23}, id="immediate-23"),
        pytest.param(b"\xa1\x61a\x19\x01\x00", {"a": 256}, id="uint16"),
        pytest.param(b"\xa1\x61a\x1a\x00\x01\x00\x00", {"a": 65536}, id="uint32"),
        pytest.param(b"\xa1\x61a\x1b" + b"\xff" * 8, {"a": U64_MAX}, id="uint64"),
        pytest.param(b"\xa1\x61a\x78\x18" + b"t" * 24, {"a": "t" * 24}, id="text-24"),
        pytest.param(b"\xa1\x61a\x77" + b"t" * 23, {"a": "t" * 23}, id="text-23"),
        # Non-shortest heads are still the subset's, and read as the general reader reads them.
        pytest.param(b"\xa1\x61a\x18\x01", {"a": 1}, id="uint8-not-shortest"),
        pytest.param(b"\xa1\x61a\x78\x01z", {"a": "z"}, id="text-not-shortest"),
    ],
)
def test_general_reader_reads_every_width_and_length_form(data: bytes, want: Any) -> None:
    assert read_cbor(data) is None  # not a v1 document
    assert cbor.decode(data) == want
    assert general(data) == want


# Inputs outside the fast path: it declines them, and the general reader judges them.
OUTSIDE = [
    pytest.param(
        b"\xb8\x60\x00" + b"".join(b"\x61" + bytes([0x41 + i]) + b"\x00" for i in range(23)),
        "truncated: claims 96 pairs, 70 bytes remain (at byte 2)",
        "",
        id="map-count-in-a-byte",
    ),
    pytest.param(
        b"\xa1\x78\x18" + b"a" * 24 + b"\x00", {"a" * 24: 0}, None, id="key-length-in-a-byte"
    ),
    pytest.param(
        b"\xa1\x61a\x1c" + bytes(16),
        "reserved additional information 28 is not well-formed CBOR (at byte 4)",
        "/a",
        id="reserved-28",
    ),
    pytest.param(
        b"\xa1\x61a\x79\x00\x17" + b"b" * 23, {"a": "b" * 23}, None, id="text-length-in-2-bytes"
    ),
    pytest.param(b"\xa1\x61a\x20", {"a": -1}, None, id="negative"),
    pytest.param(b"\xa1\x61a\xf9\x3c\x00", {"a": 1.0}, None, id="half-float"),
    pytest.param(b"\xa1\x61a\xfb\x3f\xf0" + bytes(6), {"a": 1.0}, None, id="double"),
    pytest.param(b"\xa1\x61a\xf5", {"a": True}, None, id="true"),
    pytest.param(b"\xa1\x61a\xa0", {"a": {}}, None, id="nested-map"),
    pytest.param(b"\xa2\x61a\x00\x61a\x01", "duplicate key 'a'", "/a", id="duplicate"),
    pytest.param(b"\xa1\x61a\x00\x00", "1 trailing bytes", "", id="trailing"),
    pytest.param(b"\xa1\x61a", "truncated", "/a", id="truncated-value"),
    pytest.param(b"\xa1\x61a\x62\xc3", "truncated", "/a", id="truncated-text"),
    pytest.param(b"\xa1\x61a\x19\x01", "truncated", "/a", id="truncated-uint"),
    pytest.param(b"\xa1\x62a", "truncated", "", id="truncated-key"),
    pytest.param(b"\xa1\x61a\x62\xc3\x28", "invalid UTF-8", "/a", id="bad-utf8-value"),
    pytest.param(
        b"\xa2\x62\xe9\x00\x00\x61a\x01", "invalid UTF-8 in a map key", "", id="bad-utf8-key"
    ),
    pytest.param(b"\x80", [], None, id="array"),
]


@pytest.mark.parametrize(("data", "want", "where"), OUTSIDE)
def test_fast_path_declines_what_is_outside_its_subset(data: bytes, want: Any, where: Any) -> None:
    assert read_cbor(data) is None
    if isinstance(want, str):
        err = cbor_error(data)
        assert want in err.message
        assert err.pointer == where
    else:
        assert cbor.decode(data) == want


# ---------------------------------------------------------------------------------------------
# The general CBOR reader's exact messages and byte offsets.


@pytest.mark.parametrize(
    ("data", "message", "where"),
    [
        pytest.param(
            b"\xa1\x61a\x65ab",
            "truncated: an item claims 5 bytes, 2 bytes remain (at byte 4)",
            "/a",
            id="text-claims-more",
        ),
        pytest.param(
            b"\xa1\x61a",
            "truncated: expected another CBOR item (at byte 3)",
            "/a",
            id="missing-value",
        ),
        pytest.param(
            b"\xbf\x61a\x00\xff",
            "indefinite-length items are not allowed: expected definite lengths (at byte 1)",
            "",
            id="indefinite-map",
        ),
        pytest.param(
            b"\xa1\x61a\x62\xff\xfe",
            "invalid UTF-8 in a text string (at byte 3)",
            "/a",
            id="bad-utf8-text",
        ),
        pytest.param(
            b"\xa1\x61a\x41\x00",
            "byte string: expected a text string or an unsigned integer (at byte 3)",
            "/a",
            id="byte-string",
        ),
        pytest.param(
            b"\xa1\x61a\xc1\x00", "tag 1: tags are not allowed (at byte 3)", "/a", id="tag"
        ),
        pytest.param(
            b"\xa1\x61a\xf7",
            "simple value 23: not part of the JSON data model (at byte 3)",
            "/a",
            id="undefined",
        ),
        pytest.param(
            b"\xa1\x61a\xf8\x20",
            "simple value 32: not part of the JSON data model (at byte 3)",
            "/a",
            id="simple-32",
        ),
        pytest.param(
            b"\xa2\x61a\x00\x01\x00",
            "map key is not a text string: expected text keys only (at byte 4)",
            "",
            id="integer-key",
        ),
        pytest.param(
            b"\xa2\x61a\x00\x61\xff\x00",
            "invalid UTF-8 in a map key (at byte 4)",
            "",
            id="bad-utf8-key",
        ),
        pytest.param(
            b"\xa2\x61a\x00\x61a\x01",
            "duplicate key 'a': expected each key once (at byte 4)",
            "/a",
            id="duplicate",
        ),
        pytest.param(
            b"\x9a\xff\xff\xff\xff",
            "truncated: claims 4294967295 items, 0 bytes remain (at byte 5)",
            "",
            id="array-claims",
        ),
        pytest.param(
            b"\xa2\x61a\x00",
            "truncated: claims 2 pairs, 3 bytes remain (at byte 1)",
            "",
            id="map-claims-two-pairs-in-three-bytes",
        ),
        pytest.param(
            b"\xa1\x00",
            "truncated: claims 1 pair, 1 byte remains (at byte 1)",
            "",
            id="map-claims-one-pair-in-one-byte",
        ),
        pytest.param(
            b"\xa1\x61a\x82\x00",
            "truncated: claims 2 items, 1 byte remains (at byte 4)",
            "/a",
            id="array-claims-in-a-map",
        ),
    ],
)
def test_cbor_decode_error_exactly(data: bytes, message: str, where: str) -> None:
    err = cbor_error(data)
    assert (err.message, err.pointer) == (message, where)


def test_a_map_of_n_pairs_may_fill_exactly_2n_bytes() -> None:
    # The shortest pairs are two bytes; the claim check must not ask for more.
    assert cbor.decode(b"\x81\xa2\x60\x00\x61a\x00") == [{"": 0, "a": 0}]
    assert cbor.decode(b"\x81\xa0") == [{}]


def _nested_maps(depth: int) -> bytes:
    return b"\xa1\x61a" * (depth - 1) + b"\xa0"


def test_cbor_nested_maps_limit() -> None:
    value = cbor.decode(_nested_maps(MAX_DEPTH))
    for _ in range(MAX_DEPTH - 1):
        value = value["a"]
    assert value == {}
    err = cbor_error(_nested_maps(MAX_DEPTH + 1))
    assert err.message == f"nesting deeper than {MAX_DEPTH} levels (at byte {3 * MAX_DEPTH + 1})"
    assert err.pointer == "/a" * MAX_DEPTH


# ---------------------------------------------------------------------------------------------
# The document size limit, at exactly the limit and one byte past it, for both codecs.


def _json_of_size(size: int) -> bytes:
    data = b'{"a":"' + b"x" * (size - 8) + b'"}'
    assert len(data) == size
    return data


def _cbor_of_size(size: int) -> bytes:
    data = b"\xa1\x61a\x7a" + (size - 8).to_bytes(4, "big") + b"x" * (size - 8)
    assert len(data) == size
    return data


@pytest.mark.parametrize(
    ("build", "codec"), [(_json_of_size, strict_json), (_cbor_of_size, cbor)], ids=["json", "cbor"]
)
def test_document_size_limit_boundary(build: Any, codec: Any) -> None:
    assert codec.decode(build(MAX_DOCUMENT_BYTES)) == {"a": "x" * (MAX_DOCUMENT_BYTES - 8)}
    with pytest.raises(fqk.DecodeError) as raised:
        codec.decode(build(MAX_DOCUMENT_BYTES + 1))
    assert raised.value.message == (
        f"document of {MAX_DOCUMENT_BYTES + 1} bytes is larger than the "
        f"{MAX_DOCUMENT_BYTES}-byte limit"
    )
    assert raised.value.pointer == ""


# ---------------------------------------------------------------------------------------------
# detect: the encoding from the first byte.


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (b"", "json"),
        (b"{}", "json"),
        (b" {}", "json"),
        (b"\x7f", "json"),
        (b"\xef\xbb\xbf{}", "json"),
        (b"\x80", "cbor"),
        (b"\x80\x00", "cbor"),
        (b"\xa0", "cbor"),
        (b"\xef\xbb", "cbor"),
        (b"\xff", "cbor"),
    ],
)
def test_detect(data: bytes, encoding: str) -> None:
    assert detect(data) == encoding


def test_an_empty_cbor_array_is_detected_as_cbor() -> None:
    assert decode_value(b"\x80") == []


# ---------------------------------------------------------------------------------------------
# JSON: the nesting count ignores brackets in strings, and refuses at exactly MAX_DEPTH + 1.


def deep(depth: int, key: str = "k") -> str:
    """An object holding `depth - 1` nested arrays under one key: `depth` levels in all."""
    return "{" + json.dumps(key) + ":" + "[" * (depth - 1) + "]" * (depth - 1) + "}"


@pytest.mark.parametrize(
    "key",
    ["k", "", "\\", '"', 'a"b', "[{", '\\"', "]]]]]}}}}}"],
    ids=["plain", "empty", "backslash", "quote", "inner-quote", "brackets", "escapes", "closers"],
)
def test_check_depth_boundary_whatever_the_keys_escapes(key: str) -> None:
    strict_json._check_depth(deep(MAX_DEPTH, key))
    with pytest.raises(fqk.DecodeError) as raised:
        strict_json._check_depth(deep(MAX_DEPTH + 1, key))
    assert raised.value.message == f"nesting deeper than {MAX_DEPTH} levels"
    assert strict_json.decode(deep(MAX_DEPTH, key).encode()) == {key: _nest(MAX_DEPTH - 1)}
    assert json_error(deep(MAX_DEPTH + 1, key).encode()).message == (
        f"nesting deeper than {MAX_DEPTH} levels"
    )


def _nest(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('["' + "[" * 40 + '"]', id="brackets-in-a-string"),
        pytest.param('["' + "{" * 40 + '", "' + "[" * 40 + '"]', id="in-two-strings"),
        pytest.param('["\\"' + "[" * 40 + '"]', id="after-an-escaped-quote"),
        pytest.param('["\\\\", "' + "[" * 40 + '"]', id="after-an-escaped-backslash"),
        pytest.param("[" + "[]," * 40 + "[]]", id="siblings"),
        pytest.param("[" + "{}," * 40 + "{}]", id="sibling-objects"),
    ],
)
def test_check_depth_does_not_count_what_is_not_nesting(text: str) -> None:
    strict_json._check_depth(text)
    assert strict_json.decode(text.encode()) == json.loads(text)


def test_check_depth_counts_closers() -> None:
    # 20 open, one empty array inside, then 13 more: 33 levels at the deepest point.
    inner = "[" * 13 + "]" * 13
    text = "[" * 20 + "[]," + inner + "]" * 20
    with pytest.raises(fqk.DecodeError) as raised:
        strict_json._check_depth(text)
    assert raised.value.message == f"nesting deeper than {MAX_DEPTH} levels"
    assert json_error(text.encode()).message == f"nesting deeper than {MAX_DEPTH} levels"
    # One level less is accepted.
    fits = "[" * 20 + "[]," + inner[1:-1] + "]" * 20
    assert strict_json.decode(fits.encode()) == json.loads(fits)


def test_check_depth_counts_only_brackets_and_braces() -> None:
    strict_json._check_depth("[" * MAX_DEPTH + "X" * 40)
    with pytest.raises(fqk.DecodeError):
        strict_json._check_depth("X" * 40 + "[" * (MAX_DEPTH + 1))


def test_mixed_objects_and_arrays_count_alike() -> None:
    text = '{"a":[' * 16 + "{}" + "]}" * 16
    assert text.count("{") + text.count("[") == MAX_DEPTH + 1
    assert json_error(text.encode()).message == f"nesting deeper than {MAX_DEPTH} levels"
    fits = '{"a":[' * 16 + "0" + "]}" * 16
    assert strict_json.decode(fits.encode()) == json.loads(fits)


# ---------------------------------------------------------------------------------------------
# JSON integers: past 20 digits they are never converted, and keep their sign.


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("0", 0),
        ("18446744073709551615", U64_MAX),
        ("99999999999999999999", 10**20 - 1),
        ("-99999999999999999999", -(10**20) + 1),
    ],
)
def test_parse_int_converts_up_to_20_digits(literal: str, value: int) -> None:
    parsed = strict_json._parse_int(literal)
    assert type(parsed) is int
    assert parsed == value


def test_parse_int_negative_zero_is_a_float() -> None:
    parsed = strict_json._parse_int("-0")
    assert isinstance(parsed, float)
    assert str(parsed) == "-0.0"


@pytest.mark.parametrize(
    ("literal", "digits", "negative", "shown"),
    [
        ("1" + "0" * 20, 21, False, "<integer of 21 digits>"),
        ("-" + "1" * 21, 21, True, "<negative integer of 21 digits>"),
        ("9" * 100, 100, False, "<integer of 100 digits>"),
        ("-" + "9" * 30, 30, True, "<negative integer of 30 digits>"),
    ],
)
def test_parse_int_past_20_digits(literal: str, digits: int, negative: bool, shown: str) -> None:
    parsed = strict_json._parse_int(literal)
    assert isinstance(parsed, strict_json.OversizedInteger)
    assert (parsed.digits, parsed.negative) == (digits, negative)
    assert (parsed < 0) is negative
    assert abs(parsed) == 10**MAX_INTEGER_DIGITS
    assert repr(parsed) == str(parsed) == shown


# Number literals of every kind _parse_int tells apart, and digits where no integer is.
_NUMBER_LITERALS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["-0", "0", "-0.0", "-0e1", "1.5", "2e3", "0.000000000000000000001"]),
    st.integers(min_value=0, max_value=10**30).map(lambda n: f'"{n}"'),
)


@given(st.lists(_NUMBER_LITERALS, max_size=8))
def test_integers_read_in_c_or_through_parse_int_alike(literals: list[str]) -> None:
    text = "[" + ",".join(literals) + "]"
    apart = strict_json._integers_apart(text)
    assert apart == ("-0" in text or any(len(d) > MAX_INTEGER_DIGITS for d in _digit_runs(text)))
    read = strict_json.decode(text.encode())
    assert [(type(v), repr(v)) for v in read] == [
        (type(v), repr(v)) for v in strict_json._STRICT.decode(text)
    ]


def test_a_text_without_integers_read_apart_never_calls_parse_int(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The hooked decoder is for texts that need it; the others are read in C.
    class Refusing:
        def decode(self, text: str) -> Any:
            raise AssertionError(f"parse_int's decoder read {text}")

    monkeypatch.setattr(strict_json, "_STRICT", Refusing())
    assert strict_json.decode(b'{"a": [1, 22, 18446744073709551615], "b": -1.5}') == {
        "a": [1, 22, 18446744073709551615],
        "b": -1.5,
    }
    with pytest.raises(AssertionError, match="parse_int's decoder"):
        strict_json.decode(b"[-0]")


def _digit_runs(text: str) -> list[str]:
    return re.findall(r"[0-9]+", text)


@pytest.mark.parametrize(
    ("literal", "shown"),
    [
        ("-123456789012345678901", "<negative integer of 21 digits>"),
        ("123456789012345678901", "<integer of 21 digits>"),
        ("-12345678901234567890", "-12345678901234567890"),
    ],
)
def test_oversized_integer_message_keeps_the_sign(literal: str, shown: str) -> None:
    doc = json.dumps(SHAPE).replace('"batch": 1', f'"batch": {literal}').encode()
    with pytest.raises(fqk.SchemaError) as raised:
        fqk.decode(doc)
    assert raised.value.pointer == "/batch"
    assert raised.value.message == f"expected an integer in 1..=4294967295, got {shown}"


# ---------------------------------------------------------------------------------------------
# JSON: exact messages and pointers of what strict decoding refuses.


def test_json_byte_order_mark_message() -> None:
    err = json_error(b"\xef\xbb\xbf" + json.dumps(SHAPE).encode())
    assert (err.message, err.pointer) == (
        "expected a JSON value, found a UTF-8 byte order mark",
        "",
    )


def test_json_lone_surrogate_message() -> None:
    err = json_error(b'{"a":1,"b":["x","\\udc00"]}')
    assert (err.message, err.pointer) == (
        "lone UTF-16 surrogate escape: expected a valid Unicode scalar value",
        "/b/1",
    )


@pytest.mark.parametrize(
    ("data", "message", "where"),
    [
        pytest.param(
            b' \n\t{"a":1,"a":2}',
            "duplicate key 'a': expected each key once",
            "/a",
            id="after-leading-whitespace",
        ),
        pytest.param(
            b'{"a":{"x":1,"x":2},"a":3}',
            "duplicate key 'a': expected each key once",
            "/a",
            id="outer-repeat-around-inner-repeat",
        ),
        pytest.param(
            b'{"a":{"c":1,"b":1,"b":2},x',
            "duplicate key 'b': expected each key once",
            "",
            id="unlocatable-names-the-repeated-key",
        ),
        pytest.param(
            b'{"c":0,"a":1,"b":2,"a":3}',
            "duplicate key 'a': expected each key once",
            "/a",
            id="not-the-first-key",
        ),
    ],
)
def test_json_duplicate_key_exactly(data: bytes, message: str, where: str) -> None:
    err = json_error(data)
    assert (err.message, err.pointer) == (message, where)


def test_json_invalid_utf8_message() -> None:
    err = json_error(b'{"a":"\xff"}')
    assert err.message == "invalid UTF-8 at byte 6: expected UTF-8 text"


@pytest.mark.parametrize(
    ("text", "too_deep"),
    [
        # Brackets that pairing cannot remove are counted one by one: unbalanced, or mixed
        # with something that is not a bracket, the counting decides alone.
        pytest.param("[" * 20 + "]" * 21, False, id="one-closer-too-many"),
        pytest.param("[]" * 40 + "[" * MAX_DEPTH, False, id="unclosed-at-the-limit"),
        pytest.param("[]" * 40 + "[" * (MAX_DEPTH + 1), True, id="unclosed-past-the-limit"),
        pytest.param("]" * 5 + "[" * (MAX_DEPTH + 6), True, id="closers-first"),
        pytest.param("[" * MAX_DEPTH + "]" * MAX_DEPTH, False, id="balanced-at-the-limit"),
        pytest.param("{" + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}", False, id="mixed"),
    ],
)
def test_check_depth_counts_what_pairing_leaves(text: str, too_deep: bool) -> None:
    if too_deep:
        with pytest.raises(fqk.DecodeError) as raised:
            strict_json._check_depth(text)
        assert raised.value.rule == "decode.depth_limit"
    else:
        strict_json._check_depth(text)


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        pytest.param(b"\xbf\xff", "decode.data_model", id="indefinite-map"),
        pytest.param(b"\x81" * (MAX_DEPTH + 1) + b"\x00", "decode.depth_limit", id="too-deep"),
        pytest.param(b"\xa1\x61a\x41x", "decode.data_model", id="byte-string"),
        pytest.param(b"\xa1\x61a\xc1\x00", "decode.data_model", id="tag"),
        pytest.param(b"\xa1\x61a\xf7", "decode.data_model", id="undefined"),
        pytest.param(b"\xa1\x01\x00", "decode.data_model", id="integer-key"),
        pytest.param(b"\xa2\x61a\x00\x61a\x00", "decode.duplicate_key", id="duplicate"),
        pytest.param(b"\xa1\x61a", "decode.malformed", id="truncated"),
        pytest.param(b"\xa1\x61a\x00\x00", "decode.malformed", id="trailing"),
    ],
)
def test_each_cbor_refusal_names_its_rule(data: bytes, rule: str) -> None:
    assert cbor_error(data).rule == rule


def test_decode_value_reads_any_map_unless_told_it_is_a_document() -> None:
    data = b"\xa1\x61a\x80"  # a key no contract has, holding an array
    assert decode_value(data) == {"a": []}
    with pytest.raises(fqk.SchemaError) as raised:
        decode_value(data, document=True)
    assert raised.value.rule == "schema.unknown_field"


def test_a_documents_stray_key_with_a_plain_value_is_read_on_so_all_is_said() -> None:
    # A misspelt field holds a plain value: the document is read whole and every violation
    # named. A container under a stray key, or a map larger than any document, stops the read.
    assert decode_value(b"\xa1\x61a\x00", document=True) == {"a": 0}
    assert decode_value(b"\xa1\x61a\x61x", document=True) == {"a": "x"}
    big = bytes([0xB8, SMALL_DOCUMENT + 1]) + b"".join(
        bytes([0x63]) + f"k{i:02d}".encode() + b"\x00" for i in range(SMALL_DOCUMENT + 1)
    )
    with pytest.raises(fqk.SchemaError) as raised:
        decode_value(big, document=True)
    assert raised.value.pointer == "/k00"
    # A document's size exactly: still read whole.
    small = bytes([0xB8, SMALL_DOCUMENT]) + b"".join(
        bytes([0x63]) + f"k{i:02d}".encode() + b"\x00" for i in range(SMALL_DOCUMENT)
    )
    assert len(decode_value(small, document=True)) == SMALL_DOCUMENT
    # Plain values of every kind are read on: negative integers, texts, simple values.
    assert decode_value(b"\xa1\x61a\x20", document=True) == {"a": -1}
    assert decode_value(b"\xa1\x61a\xf5", document=True) == {"a": True}
    # A byte string is no plain value, and a key with nothing after it has none: refused there.
    for cut in (b"\xa1\x61a\x41x", b"\xa1\x61a"):
        with pytest.raises(fqk.SchemaError) as raised:
            decode_value(cut, document=True)
        assert (raised.value.rule, raised.value.pointer) == ("schema.unknown_field", "/a")
