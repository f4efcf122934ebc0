"""Bad input for the strict JSON and CBOR decoders: typed errors, pointers, messages, cost."""

from __future__ import annotations

import json
import time
import tracemalloc
from typing import Any

import cbor2
import pytest
from hypothesis import given, strategies as st

import fib_quant_kv as fqk
from fib_quant_kv.codec import cbor as cbor_codec
from tests.cbor_builder import head, text

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1

SHAPE: dict[str, Any] = {
    "schema_version": "fib_quant_kv_tensor_shape_v1",
    "role": "key",
    "attention_kind": "gqa",
    "batch": 1,
    "layers": 32,
    "kv_heads": 8,
    "query_heads": 32,
    "tokens": 4096,
    "head_dim": 128,
    "dtype": "bf16",
    "rope_state": "post_rope",
}

LAYOUT: dict[str, Any] = {
    "schema_version": "fib_quant_kv_cache_layout_v1",
    "shape_schema_version": "fib_quant_kv_tensor_shape_v1",
    "order": "batch_layer_head_token_dim",
    "batch_stride": 134217728,
    "layer_stride": 4194304,
    "head_stride": 524288,
    "token_stride": 128,
    "dim_stride": 1,
}

U32_RANGE = "an integer in 1..=4294967295"
U64_RANGE = "an integer in 0..=18446744073709551615"


def raise_from(data: bytes, encoding: str | None = None) -> fqk.FibQuantKvError:
    """The error that decoding the bytes raises; fails the test if it raises none."""
    try:
        if encoding is None:
            fqk.decode(data)
        else:
            fqk.decode(data, encoding=encoding)
    except fqk.FibQuantKvError as exc:
        return exc
    pytest.fail(f"decode accepted {data[:80]!r}")


def check(
    err: fqk.FibQuantKvError,
    kind: type[fqk.FibQuantKvError],
    pointer: str | None,
    *fragments: str,
) -> None:
    """The error is exactly of `kind`, with its code, at `pointer`, and says every fragment."""
    assert type(err) is kind, f"{type(err).__name__}: {err}"
    assert err.code == kind.code
    # Every refusal names the rule it breaks, one whose category is the error's.
    assert err.code in fqk.RULES[err.rule].codes, err.rule
    if pointer is not None:
        assert err.pointer == pointer, str(err)
    for fragment in fragments:
        assert fragment in err.message, f"{fragment!r} not in {err.message!r}"


# ---------------------------------------------------------------------------------------------
# JSON text built field by field, so one literal can be swapped, dropped or repeated.


def pairs(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """The document as (key, JSON literal) pairs in field order."""
    return [(key, json.dumps(value)) for key, value in doc.items()]


def join(items: list[tuple[str, str]]) -> bytes:
    """A compact JSON object from (key, literal) pairs, keys written as given (unescaped)."""
    return ("{" + ",".join(f'"{k}":{v}' for k, v in items) + "}").encode("utf-8")


def with_literal(doc: dict[str, Any], field: str, literal: str) -> bytes:
    """The document with one field's value replaced by a raw JSON literal."""
    return join([(k, literal if k == field else v) for k, v in pairs(doc)])


SHAPE_JSON = join(pairs(SHAPE))
LAYOUT_JSON = join(pairs(LAYOUT))


def test_valid_bases_decode() -> None:
    """The documents every bad case is derived from are themselves accepted."""
    shape = fqk.decode(SHAPE_JSON)
    assert isinstance(shape, fqk.KvTensorShapeV1)
    assert shape.model_dump(mode="json") == SHAPE
    layout = fqk.decode(LAYOUT_JSON)
    assert isinstance(layout, fqk.KvCacheLayoutV1)
    assert layout.model_dump(mode="json") == LAYOUT


@pytest.mark.parametrize(
    ("doc", "field", "literal"),
    [
        pytest.param(SHAPE, "batch", str(U32_MAX), id="u32-max"),
        pytest.param(SHAPE, "batch", "1", id="u32-one"),
        pytest.param(LAYOUT, "batch_stride", str(U64_MAX), id="u64-max"),
        pytest.param(LAYOUT, "dim_stride", "0", id="u64-zero"),
    ],
)
def test_integer_bounds_are_inclusive(doc: dict[str, Any], field: str, literal: str) -> None:
    """The last in-range integers are accepted, so the out-of-range cases below mean something."""
    decoded = fqk.decode(with_literal(doc, field, literal))
    assert getattr(decoded, field) == int(literal)


# (literal, error type, pointer is the field's (True) or the document's (False), fragments)
INTEGER_LITERALS = [
    pytest.param("1.0", fqk.SchemaError, True, ("got number 1.0",), id="float-1.0"),
    pytest.param("1e0", fqk.SchemaError, True, ("got number 1.0",), id="exponent-1e0"),
    pytest.param("-0", fqk.SchemaError, True, ("got number -0.0",), id="minus-zero"),
    pytest.param("-1", fqk.SchemaError, True, ("got -1",), id="negative"),
    pytest.param(
        "+1", fqk.DecodeError, False, ("malformed JSON", "expected a JSON value"), id="plus"
    ),
    pytest.param("01", fqk.DecodeError, False, ("malformed JSON",), id="leading-zero"),
    pytest.param("true", fqk.SchemaError, True, ("got true",), id="true"),
    pytest.param('"1"', fqk.SchemaError, True, ("got '1'",), id="string-1"),
    pytest.param("null", fqk.SchemaError, True, ("got null",), id="null"),
    pytest.param("[1]", fqk.SchemaError, True, ("got an array",), id="array"),
    pytest.param("{}", fqk.SchemaError, True, ("got an object",), id="object"),
    pytest.param("NaN", fqk.DecodeError, False, ("NaN is not valid JSON",), id="NaN"),
    pytest.param(
        "Infinity", fqk.DecodeError, False, ("Infinity is not valid JSON",), id="Infinity"
    ),
    pytest.param("-Infinity", fqk.DecodeError, False, ("-Infinity is not valid",), id="-Infinity"),
    pytest.param("1e400", fqk.SchemaError, True, ("got number inf",), id="float-overflow"),
    pytest.param(
        "18446744073709551616", fqk.SchemaError, True, ("got 18446744073709551616",), id="u64-max+1"
    ),
    pytest.param("9" * 100_000, fqk.SchemaError, True, ("100000 digits",), id="100000-digits"),
    pytest.param(
        "-" + "9" * 100_000, fqk.SchemaError, True, ("100000 digits",), id="-100000-digits"
    ),
]


@pytest.mark.parametrize(("literal", "kind", "at_field", "fragments"), INTEGER_LITERALS)
@pytest.mark.parametrize(
    ("doc", "field", "expected"),
    [
        pytest.param(SHAPE, "batch", U32_RANGE, id="u32"),
        pytest.param(LAYOUT, "batch_stride", U64_RANGE, id="u64"),
    ],
)
def test_json_integer_field_rejects(
    doc: dict[str, Any],
    field: str,
    expected: str,
    literal: str,
    kind: type[fqk.FibQuantKvError],
    at_field: bool,
    fragments: tuple[str, ...],
) -> None:
    """Only a plain non-negative integer literal in range is an integer (CONTRACT section 3)."""
    err = raise_from(with_literal(doc, field, literal))
    extra = (f"expected {expected}",) if kind is fqk.SchemaError else ()
    check(err, kind, f"/{field}" if at_field else "", *fragments, *extra)


def test_json_u32_field_rejects_u32_max_plus_one() -> None:
    """A u64-sized value is out of range for a u32 field."""
    err = raise_from(with_literal(SHAPE, "tokens", str(U32_MAX + 1)))
    check(err, fqk.SchemaError, "/tokens", f"expected {U32_RANGE}", f"got {U32_MAX + 1}")


def test_json_plus_sign_is_located() -> None:
    """A syntax error names the line and column of the offending character."""
    data = with_literal(SHAPE, "layers", "+32")
    column = data.index(b"+32") + 1
    err = raise_from(data)
    check(err, fqk.DecodeError, "", f"line 1 column {column}")
    assert err.position == (1, column)  # as the reporters place it


@pytest.mark.parametrize(
    ("data", "key"),
    [
        pytest.param(
            join([*pairs(SHAPE), ("batch", "1")]),
            "batch",
            id="same-value",
        ),
        pytest.param(join([*pairs(SHAPE), ("batch", "2")]), "batch", id="other-value"),
        pytest.param(
            join([*pairs(SHAPE), ("schema_version", json.dumps(SHAPE["schema_version"]))]),
            "schema_version",
            id="marker-twice",
        ),
        pytest.param(join([*pairs(SHAPE), ("b\\u0061tch", "1")]), "batch", id="via-escape"),
        pytest.param(
            join([*pairs(SHAPE), ("extra", '{"a":1,"a":1}')]), "extra/a", id="nested-object"
        ),
    ],
)
def test_json_duplicate_key(data: bytes, key: str) -> None:
    """A repeated key is refused, even with the same value, and located by pointer."""
    err = raise_from(data)
    check(err, fqk.DecodeError, f"/{key}", f"duplicate key {key.rsplit('/', 1)[-1]!r}")


@pytest.mark.parametrize("field", [f for f in SHAPE if f != "schema_version"])
def test_json_missing_field(field: str) -> None:
    """Every field is required."""
    err = raise_from(join([(k, v) for k, v in pairs(SHAPE) if k != field]))
    check(err, fqk.SchemaError, f"/{field}", f"missing required field {field!r}")


def test_json_missing_marker() -> None:
    """Without its marker a document is no known contract."""
    err = raise_from(join([(k, v) for k, v in pairs(SHAPE) if k != "schema_version"]))
    check(err, fqk.SchemaError, "/schema_version", "expected a schema marker", "got nothing")


def test_json_unknown_field() -> None:
    """An unknown field is refused (project rule, fail-closed)."""
    err = raise_from(join([*pairs(SHAPE), ("extra", "1")]))
    check(err, fqk.SchemaError, "/extra", "unknown field 'extra'")


@pytest.mark.parametrize("encoding", ["json", "cbor"])
def test_a_misspelt_field_is_named_with_the_field_meant_and_the_one_missing(
    encoding: str,
) -> None:
    """Every violation, in order: the field left missing, then the unknown one and its
    likely meaning."""
    typo = {("kv_head" if k == "kv_heads" else k): v for k, v in SHAPE.items()}
    data = json.dumps(typo).encode() if encoding == "json" else cbor2.dumps(typo)
    found = [(v.rule, v.pointer, v.message) for v in fqk.check(data).violations]
    assert found == [
        (
            "schema.missing_field",
            "/kv_heads",
            "missing required field 'kv_heads': expected an integer in 1..=4294967295",
        ),
        (
            "schema.unknown_field",
            "/kv_head",
            "unknown field 'kv_head' (did you mean 'kv_heads'?): expected only schema_version, "
            "role, attention_kind, batch, layers, kv_heads, query_heads, tokens, head_dim, "
            "dtype, rope_state",
        ),
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("role", "KEY", id="role-upper"),
        pytest.param("role", "Key", id="role-title"),
        pytest.param("role", " key", id="role-leading-space"),
        pytest.param("attention_kind", "GQA", id="kind-upper"),
        pytest.param("dtype", "BF16", id="dtype-upper"),
        pytest.param("rope_state", "Post_Rope", id="rope-mixed"),
        pytest.param("rope_state", "post-rope", id="rope-hyphen"),
        pytest.param("schema_version", "FIB_QUANT_KV_TENSOR_SHAPE_V1", id="marker-upper"),
    ],
)
def test_json_enum_not_exact(field: str, value: str) -> None:
    """An enum value must be exactly one of the lowercase names."""
    err = raise_from(with_literal(SHAPE, field, json.dumps(value)))
    check(err, fqk.SchemaError, f"/{field}", repr(value))


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        pytest.param(SHAPE_JSON + b"x", ("trailing data",), id="trailing-garbage"),
        pytest.param(SHAPE_JSON + b"}", ("trailing data",), id="trailing-brace"),
        pytest.param(SHAPE_JSON + b"0", ("trailing data",), id="trailing-number"),
        pytest.param(SHAPE_JSON + SHAPE_JSON, ("trailing data",), id="two-documents"),
        pytest.param(SHAPE_JSON + b"\n" + SHAPE_JSON, ("line 2 column 1",), id="two-lines"),
        pytest.param(b"/* c */" + SHAPE_JSON, ("expected a JSON value",), id="block-comment"),
        pytest.param(SHAPE_JSON + b"// c", ("trailing data",), id="line-comment-after"),
        pytest.param(
            SHAPE_JSON.replace(b',"layers"', b',/* c */"layers"'), (), id="comment-inside"
        ),
        pytest.param(
            SHAPE_JSON.replace(b'"role"', b"'role'"), ("double quotes",), id="single-quoted-key"
        ),
        pytest.param(
            SHAPE_JSON.replace(b'"key"', b"'key'"), ("expected a JSON value",), id="single-value"
        ),
        pytest.param(SHAPE_JSON[:-1], (), id="truncated-close"),
        pytest.param(SHAPE_JSON[:40], ("Unterminated string",), id="truncated-string"),
        pytest.param(b"{", (), id="truncated-open"),
        pytest.param(b"", ("expected a JSON value",), id="empty"),
        pytest.param(b" \n\t\r", ("expected a JSON value",), id="whitespace-only"),
        pytest.param(
            with_literal(SHAPE, "dtype", '"bf\x0116"'), ("raw control character",), id="ctrl-0x01"
        ),
        pytest.param(
            with_literal(SHAPE, "dtype", '"bf\n16"'), ("raw control character",), id="ctrl-newline"
        ),
        pytest.param(
            with_literal(SHAPE, "dtype", '"bf\t16"'), ("raw control character",), id="ctrl-tab"
        ),
        pytest.param(
            with_literal(SHAPE, "dtype", '"bf\x0016"'), ("raw control character",), id="ctrl-nul"
        ),
        pytest.param(
            with_literal(SHAPE, "dtype", '"bf\x1f16"'), ("raw control character",), id="ctrl-0x1f"
        ),
        pytest.param(SHAPE_JSON.replace(b":", "\u00a0:".encode(), 1), ("delimiter",), id="nbsp"),
    ],
)
def test_json_not_exactly_one_value(data: bytes, fragments: tuple[str, ...]) -> None:
    """Anything but exactly one RFC 8259 value is malformed, reported for the whole document."""
    err = raise_from(data)
    check(err, fqk.DecodeError, "", *fragments)


def test_json_every_proper_prefix_is_malformed() -> None:
    """No truncation of a document is itself a document."""
    for end in range(len(SHAPE_JSON)):
        err = raise_from(SHAPE_JSON[:end])
        check(err, fqk.DecodeError, "")


def test_json_trailing_whitespace_is_fine() -> None:
    """Whitespace around the one value is allowed, so trailing-data errors are about data."""
    assert fqk.decode(b" \r\n\t" + SHAPE_JSON + b"\n\t \r").model_dump(mode="json") == SHAPE


def with_bytes(field: str, raw: bytes) -> bytes:
    """The shape with one field's string value made of raw bytes."""
    return with_literal(SHAPE, field, '"@"').replace(b"@", raw)


@pytest.mark.parametrize(
    ("data", "bad"),
    [
        pytest.param(with_bytes("dtype", b"bf\xff16"), b"\xff", id="byte-ff"),
        pytest.param(with_bytes("dtype", b"bf\xc3"), b"\xc3", id="cut-sequence"),
        pytest.param(with_bytes("dtype", b"\xed\xa0\x80"), b"\xed", id="encoded-surrogate"),
        pytest.param(with_bytes("dtype", b"\xc0\xaf"), b"\xc0", id="overlong"),
        pytest.param(with_bytes("dtype", b"\xf8\x88\x80\x80\x80"), b"\xf8", id="five-byte"),
        pytest.param(SHAPE_JSON[:-1] + b"\x80}", b"\x80", id="stray-continuation"),
    ],
)
def test_json_invalid_utf8(data: bytes, bad: bytes) -> None:
    """Bytes that are not UTF-8 are refused, and the message says at which byte."""
    err = raise_from(data)
    check(err, fqk.DecodeError, "", "invalid UTF-8", f"at byte {data.index(bad)}")


def test_json_invalid_utf8_first_byte() -> None:
    """Decoded as JSON by request, a non-UTF-8 first byte is refused at byte 0."""
    err = raise_from(b"\xff" + SHAPE_JSON[1:], encoding="json")
    check(err, fqk.DecodeError, "", "invalid UTF-8 at byte 0")


@pytest.mark.parametrize(
    ("data", "pointer"),
    [
        pytest.param(with_literal(SHAPE, "dtype", '"\\ud800"'), "/dtype", id="high"),
        pytest.param(with_literal(SHAPE, "dtype", '"\\udfff"'), "/dtype", id="low"),
        pytest.param(with_literal(SHAPE, "dtype", '"bf\\ud83d16"'), "/dtype", id="high-inside"),
        pytest.param(with_literal(SHAPE, "dtype", '"\\udc00\\ud800"'), "/dtype", id="reversed"),
        pytest.param(
            join([*pairs(SHAPE), ("extra", '["ok", "\\ud800"]')]), "/extra/1", id="in-array"
        ),
    ],
)
def test_json_lone_surrogate_escape(data: bytes, pointer: str) -> None:
    """An escape of a lone UTF-16 surrogate is no Unicode scalar value; serde_json refuses it."""
    err = raise_from(data)
    check(err, fqk.DecodeError, pointer, "lone UTF-16 surrogate")


@pytest.mark.parametrize(
    ("literal", "shown"),
    [
        pytest.param('"\\ud83d\\ude00"', "'\U0001f600'", id="surrogate-pair"),
        pytest.param('"\\\\ud800"', "'\\\\ud800'", id="escaped-backslash"),
        pytest.param('"bf\x7f16"', "'bf\\x7f16'", id="delete-is-not-control"),
    ],
)
def test_json_string_near_misses_reach_the_schema(literal: str, shown: str) -> None:
    """Valid strings that only look suspicious are decoded, then refused by the schema."""
    err = raise_from(with_literal(SHAPE, "dtype", literal))
    check(err, fqk.SchemaError, "/dtype", f"got {shown}")


def test_json_lone_surrogate_in_key_reports_encodable_pointer() -> None:
    """The error for a lone surrogate in a key points at it and can be written out as UTF-8."""
    err = raise_from(join([*pairs(SHAPE), ("\\ud800", "1")]))
    check(err, fqk.DecodeError, None, "lone UTF-16 surrogate")
    assert err.pointer.startswith("/")
    err.pointer.encode("utf-8")
    str(err).encode("utf-8")
    json.dumps(err.violation.to_json(), ensure_ascii=False).encode("utf-8")


def test_json_byte_order_mark() -> None:
    """A UTF-8 BOM is refused by name, as serde_json refuses it (RFC 8259 permits either)."""
    with pytest.raises(fqk.DecodeError) as caught:
        fqk.decode(b"\xef\xbb\xbf" + SHAPE_JSON)
    check(caught.value, fqk.DecodeError, "", "byte order mark")


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, ("nesting deeper",), id="deep-arrays"),
        pytest.param(
            join([*pairs(SHAPE), ("extra", '{"a":' * 40 + "1" + "}" * 40)]),
            ("nesting deeper",),
            id="deep-objects",
        ),
        pytest.param(b" " * (1 << 20) + SHAPE_JSON, ("byte limit",), id="over-1MiB"),
    ],
)
def test_json_hostile_size(data: bytes, fragments: tuple[str, ...]) -> None:
    """Deep nesting and oversized input get a typed error instead of a crash."""
    err = raise_from(data)
    check(err, fqk.DecodeError, "", *fragments)


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        pytest.param(b"[]", "an array", id="array"),
        pytest.param(b'"x"', "'x'", id="string"),
        pytest.param(b"1", "1", id="integer"),
        pytest.param(b"null", "null", id="null"),
    ],
)
def test_json_top_level_not_object(data: bytes, shown: str) -> None:
    """A document is a JSON object."""
    err = raise_from(data)
    check(err, fqk.SchemaError, "", "expected a JSON object", f"got {shown}")


# ---------------------------------------------------------------------------------------------
# CBOR built by hand, so each item can be made wrong in exactly one way.


def cbor_map(items: list[tuple[bytes, bytes]]) -> bytes:
    """A definite-length CBOR map of already-encoded keys and values."""
    return head(5, len(items)) + b"".join(k + v for k, v in items)


def cbor_items(doc: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """The document's (key, value) items, each encoded by cbor2."""
    return [(text(k), cbor2.dumps(v)) for k, v in doc.items()]


def cbor_with(doc: dict[str, Any], field: str, raw: bytes) -> bytes:
    """The document as CBOR with one field's value replaced by raw CBOR bytes."""
    return cbor_map([(k, raw if k == text(field) else v) for k, v in cbor_items(doc)])


SHAPE_CBOR = cbor2.dumps(SHAPE, canonical=True)
HUGE_TEXT = b"\x7b" + b"\xff" * 8  # text string claiming 2**64-1 bytes
HUGE_ARRAY = b"\x9b" + (1 << 32).to_bytes(8, "big")  # array claiming 2**32 items
HUGE_MAP = b"\xbb" + b"\xff" * 8  # map claiming 2**64-1 pairs
NESTED = b"\x81" * 200_000 + b"\x00"


def test_cbor_bases_decode() -> None:
    """The CBOR bases, canonical and in field order, are accepted."""
    assert fqk.decode(SHAPE_CBOR).model_dump(mode="json") == SHAPE
    assert fqk.decode(cbor_map(cbor_items(SHAPE))).model_dump(mode="json") == SHAPE
    assert fqk.decode(cbor_with(SHAPE, "batch", b"\x1a\xff\xff\xff\xff")).batch == U32_MAX
    layout = fqk.decode(cbor_with(LAYOUT, "batch_stride", b"\x1b" + b"\xff" * 8))
    assert layout.batch_stride == U64_MAX


CBOR_CASES = [
    # Not one well-formed item.
    pytest.param(SHAPE_CBOR + b"\x00", fqk.DecodeError, "", ("1 trailing bytes",), id="trailing"),
    pytest.param(SHAPE_CBOR + SHAPE_CBOR, fqk.DecodeError, "", ("trailing",), id="two-items"),
    pytest.param(
        cbor_map([*cbor_items(SHAPE), (text("batch"), b"\x01")]),
        fqk.DecodeError,
        "/batch",
        ("duplicate key 'batch'",),
        id="duplicate-same-value",
    ),
    pytest.param(
        cbor_map([*cbor_items(SHAPE), (text("dtype"), text("f32"))]),
        fqk.DecodeError,
        "/dtype",
        ("duplicate key 'dtype'",),
        id="duplicate-other-value",
    ),
    # Tags.
    pytest.param(
        cbor_with(SHAPE, "batch", b"\xc1\x01"), fqk.DecodeError, "/batch", ("tag 1",), id="tag-1"
    ),
    pytest.param(
        cbor_with(SHAPE, "batch", b"\xc2\x41\x01"),
        fqk.DecodeError,
        "/batch",
        ("tag 2",),
        id="bignum-tag",
    ),
    pytest.param(
        b"\xd9\xd9\xf7" + SHAPE_CBOR, fqk.DecodeError, "", ("tag 55799",), id="self-describe-tag"
    ),
    # Floats and simple values where an integer is required.
    pytest.param(
        cbor_with(SHAPE, "batch", b"\xf9\x3c\x00"),
        fqk.SchemaError,
        "/batch",
        ("got number 1.0", U32_RANGE),
        id="float16",
    ),
    pytest.param(
        cbor_with(SHAPE, "batch", b"\xfa\x3f\x80\x00\x00"),
        fqk.SchemaError,
        "/batch",
        ("got number 1.0",),
        id="float32",
    ),
    pytest.param(
        cbor_with(SHAPE, "batch", cbor2.dumps(1.0)),
        fqk.SchemaError,
        "/batch",
        ("got number 1.0",),
        id="float64",
    ),
    pytest.param(
        cbor_with(SHAPE, "batch", b"\xf9\x7e\x00"),
        fqk.SchemaError,
        "/batch",
        ("got number nan",),
        id="float-nan",
    ),
    pytest.param(
        cbor_with(SHAPE, "batch", b"\xf5"), fqk.SchemaError, "/batch", ("got true",), id="true"
    ),
    pytest.param(
        cbor_with(SHAPE, "batch", b"\xf6"), fqk.SchemaError, "/batch", ("got null",), id="null"
    ),
    pytest.param(
        cbor_with(SHAPE, "batch", b"\xf7"),
        fqk.DecodeError,
        "/batch",
        ("simple value 23",),
        id="undefined",
    ),
    pytest.param(
        cbor_with(SHAPE, "batch", b"\xf0"),
        fqk.DecodeError,
        "/batch",
        ("simple value 16",),
        id="simple-16",
    ),
    pytest.param(
        cbor_with(SHAPE, "batch", b"\xf8\xff"),
        fqk.DecodeError,
        "/batch",
        ("simple value 255",),
        id="simple-255",
    ),
    # Integers out of range.
    pytest.param(
        cbor_with(SHAPE, "batch", b"\x20"), fqk.SchemaError, "/batch", ("got -1",), id="negative"
    ),
    pytest.param(
        cbor_with(SHAPE, "batch", b"\x3b" + b"\xff" * 8),
        fqk.SchemaError,
        "/batch",
        (f"got {-1 - U64_MAX}",),
        id="negative-2**64",
    ),
    pytest.param(
        cbor_with(SHAPE, "batch", head(0, U32_MAX + 1)),
        fqk.SchemaError,
        "/batch",
        (f"got {U32_MAX + 1}",),
        id="u32-max+1",
    ),
    # Text.
    pytest.param(
        cbor_with(SHAPE, "dtype", b"\x44bf16"),
        fqk.DecodeError,
        "/dtype",
        ("byte string",),
        id="bytes-for-text",
    ),
    pytest.param(
        cbor_with(SHAPE, "dtype", b"\x64bf\xff6"),
        fqk.DecodeError,
        "/dtype",
        ("invalid UTF-8",),
        id="invalid-utf8",
    ),
    pytest.param(
        cbor_with(SHAPE, "dtype", b"\x63\xed\xa0\x80"),
        fqk.DecodeError,
        "/dtype",
        ("invalid UTF-8",),
        id="utf8-surrogate",
    ),
    pytest.param(
        cbor_map([*cbor_items(SHAPE), (b"\x62\xc3\x28", b"\x01")]),
        fqk.DecodeError,
        "",
        ("invalid UTF-8 in a map key",),
        id="invalid-utf8-key",
    ),
    pytest.param(
        cbor_with(SHAPE, "dtype", text("BF16")),
        fqk.SchemaError,
        "/dtype",
        ("got 'BF16'",),
        id="enum-upper",
    ),
    # Indefinite lengths.
    pytest.param(
        b"\xbf" + b"".join(k + v for k, v in cbor_items(SHAPE)) + b"\xff",
        fqk.DecodeError,
        "",
        ("indefinite-length",),
        id="indefinite-map",
    ),
    pytest.param(
        cbor_with(SHAPE, "dtype", b"\x7f\x64bf16\xff"),
        fqk.DecodeError,
        "/dtype",
        ("indefinite-length",),
        id="indefinite-text",
    ),
    pytest.param(
        cbor_with(SHAPE, "batch", b"\x9f\x01\xff"),
        fqk.DecodeError,
        "/batch",
        ("indefinite-length",),
        id="indefinite-array",
    ),
    pytest.param(
        cbor_with(SHAPE, "batch", b"\xff"),
        fqk.DecodeError,
        "/batch",
        ("indefinite-length",),
        id="lone-break",
    ),
    pytest.param(
        cbor_with(SHAPE, "batch", b"\x1c"),
        fqk.DecodeError,
        "/batch",
        ("reserved additional information 28",),
        id="reserved-info",
    ),
    # Keys.
    pytest.param(
        cbor_map([*cbor_items(SHAPE), (b"\x01", b"\x01")]),
        fqk.DecodeError,
        "",
        ("map key is not a text string",),
        id="integer-key",
    ),
    pytest.param(
        cbor_map([*cbor_items(SHAPE), (b"\x45batch", b"\x01")]),
        fqk.DecodeError,
        "",
        ("map key is not a text string",),
        id="bytes-key",
    ),
    pytest.param(
        cbor_map([*cbor_items(SHAPE), (text("extra"), b"\x01")]),
        fqk.SchemaError,
        "/extra",
        ("unknown field 'extra'",),
        id="unknown-field",
    ),
    pytest.param(
        cbor_map([(k, v) for k, v in cbor_items(SHAPE) if k != text("tokens")]),
        fqk.SchemaError,
        "/tokens",
        ("missing required field 'tokens'",),
        id="missing-field",
    ),
    # Length claims beyond the input.
    pytest.param(
        cbor_with(SHAPE, "dtype", HUGE_TEXT),
        fqk.DecodeError,
        "/dtype",
        (f"claims {U64_MAX} bytes",),
        id="text-claims-2**64-1",
    ),
    pytest.param(
        cbor_with(SHAPE, "batch", HUGE_ARRAY),
        fqk.DecodeError,
        "/batch",
        (f"claims {1 << 32} items",),
        id="array-claims-2**32",
    ),
    pytest.param(HUGE_ARRAY, fqk.DecodeError, "", (f"claims {1 << 32} items",), id="top-array"),
    pytest.param(HUGE_MAP, fqk.DecodeError, "", (f"claims {U64_MAX} pairs",), id="top-map"),
    pytest.param(
        cbor_with(SHAPE, "dtype", b"\x5a\xff\xff\xff\xff"),
        fqk.DecodeError,
        "/dtype",
        (),
        id="bytes-claims-2**32-1",
    ),
    pytest.param(
        NESTED, fqk.DecodeError, "/0" * 32, ("nesting deeper than 32",), id="200000-nested"
    ),
    # The top level is not a map.
    pytest.param(cbor2.dumps([1]), fqk.SchemaError, "", ("got an array",), id="top-level-array"),
    pytest.param(cbor2.dumps(1.5), fqk.SchemaError, "", ("got number 1.5",), id="top-level-float"),
    pytest.param(b"\xf5", fqk.SchemaError, "", ("got true",), id="top-level-true"),
    pytest.param(b"\xa0", fqk.SchemaError, "/schema_version", ("got nothing",), id="empty-map"),
]


@pytest.mark.parametrize(("data", "kind", "pointer", "fragments"), CBOR_CASES)
def test_cbor_rejects(
    data: bytes, kind: type[fqk.FibQuantKvError], pointer: str, fragments: tuple[str, ...]
) -> None:
    """Strict CBOR (CONTRACT section 5), detected from the first byte."""
    assert data[:1] >= b"\x80", "these cases must be detected as CBOR"
    check(raise_from(data), kind, pointer, *fragments)


@pytest.mark.parametrize(
    ("data", "kind", "fragments"),
    [
        pytest.param(HUGE_TEXT, fqk.DecodeError, (f"claims {U64_MAX} bytes",), id="text-claim"),
        pytest.param(b"\x01", fqk.SchemaError, ("expected a JSON object", "got 1"), id="uint"),
        pytest.param(text("a"), fqk.SchemaError, ("got 'a'",), id="text"),
        pytest.param(b"", fqk.DecodeError, ("truncated",), id="empty"),
    ],
)
def test_cbor_top_level_low_first_byte(
    data: bytes, kind: type[fqk.FibQuantKvError], fragments: tuple[str, ...]
) -> None:
    """CBOR items whose first byte is below 0x80, decoded as CBOR by request."""
    check(raise_from(data, encoding="cbor"), kind, "", *fragments)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(HUGE_TEXT, id="text-claim"),
        pytest.param(b"\x01", id="uint"),
        pytest.param(text("a"), id="text"),
    ],
)
def test_cbor_top_level_low_first_byte_detected(data: bytes) -> None:
    """Auto-detected, such bytes are still refused as a malformed document."""
    check(raise_from(data), fqk.DecodeError, "")


def test_cbor_every_proper_prefix_is_malformed() -> None:
    """No truncation of a CBOR document is itself a document."""
    for end in range(1, len(SHAPE_CBOR)):
        err = raise_from(SHAPE_CBOR[:end])
        check(err, fqk.DecodeError, None, "truncated")


def test_cbor_over_size_limit() -> None:
    """A CBOR input over the size limit is refused before it is parsed."""
    data = b"\x5a" + (1 << 21).to_bytes(4, "big") + b"\x00" * (1 << 21)
    check(raise_from(data), fqk.DecodeError, "", "byte limit")


# ---------------------------------------------------------------------------------------------
# The hostile inputs fail fast, without allocating what they claim.

HOSTILE = [
    pytest.param(cbor_with(SHAPE, "dtype", HUGE_TEXT), None, id="cbor-text-claims-2**64-1"),
    pytest.param(HUGE_TEXT, "cbor", id="cbor-top-text-claims-2**64-1"),
    pytest.param(HUGE_ARRAY, None, id="cbor-array-claims-2**32"),
    pytest.param(HUGE_MAP, None, id="cbor-map-claims-2**64-1"),
    pytest.param(NESTED, None, id="cbor-200000-nested-arrays"),
    pytest.param(SHAPE_CBOR + b"\x00", None, id="cbor-trailing-byte"),
    pytest.param(cbor_map([*cbor_items(SHAPE), (text("batch"), b"\x01")]), None, id="cbor-dup"),
    pytest.param(b"[" * 200_000 + b"0" + b"]" * 200_000, None, id="json-200000-nested"),
    pytest.param(with_literal(SHAPE, "batch", "9" * 100_000), None, id="json-100000-digits"),
    pytest.param(SHAPE_JSON + b" " + SHAPE_JSON, None, id="json-two-documents"),
    pytest.param(join([*pairs(SHAPE), ("batch", "1")]), None, id="json-dup"),
]


@pytest.mark.parametrize(("data", "encoding"), HOSTILE)
def test_hostile_input_fails_fast_and_small(data: bytes, encoding: str | None) -> None:
    """A typed error in well under a second and well under 2 MiB beyond the input's own size."""
    # Warm up: imports and caches are not the input's cost.
    fqk.decode(SHAPE_JSON)
    fqk.decode(SHAPE_CBOR)
    raise_from(data, encoding)
    tracemalloc.start()
    try:
        started = time.perf_counter()
        err = raise_from(data, encoding)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(err, fqk.DecodeError | fqk.SchemaError)
    assert elapsed < 0.5, f"took {elapsed:.3f} s"
    assert peak < len(data) + (2 << 20), f"peak {peak} bytes for {len(data)} input bytes"


@pytest.mark.parametrize(
    ("data", "pointer", "key"),
    [
        pytest.param(b'{"a/b":1,"a/b":1}', "/a~1b", "a/b", id="json-slash"),
        pytest.param(b'{"a~b":1,"a~b":2}', "/a~0b", "a~b", id="json-tilde"),
    ],
)
def test_duplicate_key_pointer_is_escaped(data: bytes, pointer: str, key: str) -> None:
    """Pointers escape '~' and '/' as RFC 6901 says."""
    check(raise_from(data), fqk.DecodeError, pointer, f"duplicate key {key!r}")


@pytest.mark.parametrize(
    ("key", "pointer"),
    [pytest.param("a/b", "/a~1b", id="slash"), pytest.param("a~b", "/a~0b", id="tilde")],
)
def test_cbor_pointers_are_escaped(key: str, pointer: str) -> None:
    """The same in CBOR: in the general reader's duplicate, and in a document's stray key."""
    twice = cbor_map([(text(key), b"\x01")] * 2)
    with pytest.raises(fqk.DecodeError) as raised:
        cbor_codec.decode(twice)
    check(raised.value, fqk.DecodeError, pointer, f"duplicate key {key!r}")
    # In a document, a key no contract has is refused before its value (a million-item array),
    # and nothing after it is read: not even bytes that would not decode.
    stray = cbor_map([(text(key), b"\x9a\x00\x0f\x42\x40" + b"\x00" * 1_000_000)])
    check(raise_from(stray), fqk.SchemaError, pointer, f"unknown field {key!r}")
    check(raise_from(stray[:-10]), fqk.SchemaError, pointer, f"unknown field {key!r}")
    # Keys of its own contract are read on; a stray key inside a value is the schema's to judge.
    marker = (text("schema_version"), text("fib_quant_kv_tensor_shape_v1"))
    nested = cbor_map([marker, (text("batch"), cbor_map([(text(key), b"\x01")]))])
    assert raise_from(nested).rule != "schema.unknown_field"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'{"x":"\\ud800","y":{"a":1,"a":1}}', id="object"),
        pytest.param(b'{"x":["\\ud800"],"y":{"a":1,"a":1}}', id="array"),
    ],
)
def test_json_duplicate_after_lone_surrogate_is_located(data: bytes) -> None:
    """With a lone surrogate before a nested duplicate, either one is reported, correctly."""
    err = raise_from(data)
    assert type(err) is fqk.DecodeError
    said = (err.pointer, "lone UTF-16 surrogate" in err.message, "duplicate key 'a'" in err.message)
    assert said in {("/x", True, False), ("/x/0", True, False), ("/y/a", False, True)}, str(err)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'{"a":1,"a":1} x', id="then-garbage"),
        pytest.param(b'{"a":1,"a":1}{"b":2}', id="then-second-document"),
        pytest.param(b'{"x":{"a":1,"a":1},', id="then-truncated"),
        pytest.param(b'{"x":{"a":1,"a":1},"y":tru}', id="then-bad-literal"),
        pytest.param(b'[{"a":1,"a":2}, ]', id="then-trailing-comma"),
    ],
)
def test_json_duplicate_then_malformed(data: bytes) -> None:
    """A duplicate key followed by a syntax error is still a typed error, naming the duplicate."""
    check(raise_from(data), fqk.DecodeError, None, "duplicate key 'a'")


@pytest.mark.parametrize("encoding", ["json", "cbor"])
def test_nesting_limit_boundary(encoding: str) -> None:
    """32 levels of containers are well-formed (then refused by the schema); 33 are not."""

    def nested(depth: int) -> bytes:
        if encoding == "json":
            return b"[" * depth + b"]" * depth
        return b"\x81" * (depth - 1) + b"\x80"

    check(raise_from(nested(32)), fqk.SchemaError, "", "got an array")
    check(raise_from(nested(33)), fqk.DecodeError, None, "nesting deeper than 32")


def test_a_large_document_is_read_with_the_collector_paused_and_left_as_it_was() -> None:
    """The strict path pauses the cyclic collector for a document past 4 KiB, from its decoding
    until its value is judged and dropped (no collection scans its containers), and only then."""
    import gc

    good = ("[" + ",".join(["[]"] * 20_000) + "]").encode()
    bad = ("[" + ",".join(["[]"] * 20_000) + ",]").encode()
    small = b"[[],[]]"
    assert gc.isenabled()
    paused: list[bool] = []
    collections: list[str] = []
    real = gc.disable

    def noted() -> None:
        paused.append(True)
        real()

    def collected(phase: str, info: dict[str, int]) -> None:
        collections.append(phase)

    def refused(data: bytes) -> None:
        gc.callbacks.append(collected)
        try:
            fqk.decode(data)
        except fqk.FibQuantKvError:
            return
        finally:
            gc.callbacks.remove(collected)
        raise AssertionError("decoded")

    for data in (good, bad, small):  # what the first reads import, imported
        with pytest.raises(fqk.FibQuantKvError):
            fqk.decode(data)
    gc.disable = noted  # type: ignore[assignment]
    try:
        for data in (good, bad, small):
            refused(data)
            assert gc.isenabled()
        assert paused == [True, True]
        assert collections == []
        real()
        with pytest.raises(fqk.SchemaError):
            fqk.decode(good)
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.disable = real  # type: ignore[assignment]
        gc.enable()


def test_a_repeated_stray_key_is_refused_where_each_reader_first_can() -> None:
    """JSON is parsed whole (in C) before the schema looks, so its duplicate is seen first; so
    does the CBOR reader in a map of a document's size, reading on past a plain value; in a
    larger map it stops at the first key no contract has, before anything after it is read."""
    assert raise_from(b'{"bogus":1,"bogus":1}').rule == "decode.duplicate_key"
    twice_cbor = cbor_map([(text("bogus"), b"\x01")] * 2)
    assert raise_from(twice_cbor).rule == "decode.duplicate_key"
    many = cbor_map([(text("bogus"), b"\x01")] * 40)
    assert raise_from(many).rule == "schema.unknown_field"
    # A duplicate of a contract's own field is a duplicate in both.
    twice_known = cbor_map([(text("batch"), b"\x01")] * 2)
    assert raise_from(twice_known).rule == "decode.duplicate_key"


# Where a pointer's value stands in a JSON text, for reports -------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)


def pointers(value: Any, tokens: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every pointer into a value, with the value it names."""
    found = [(tokens, value)]
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, inner in items:
        found += pointers(inner, (*tokens, str(key)))
    return found


@given(
    JSON_VALUES,
    st.sampled_from([None, 0, 1, 3]),
    st.sampled_from([(",", ":"), (", ", ": ")]),
    st.booleans(),
)
def test_a_pointer_locates_the_first_character_of_its_value(
    value: Any, indent: int | None, separators: tuple[str, str], ascii_only: bool
) -> None:
    from fib_quant_kv.codec.json import locate

    data = json.dumps(value, indent=indent, separators=separators, ensure_ascii=ascii_only).encode()
    lines = data.decode().split("\n")
    for tokens, inner in pointers(value):
        line, column = locate(data, tokens) or (0, 0)
        text = json.dumps(inner, indent=indent, separators=separators, ensure_ascii=ascii_only)
        assert lines[line - 1][column - 1 :].startswith(text.split("\n")[0]), (tokens, line, column)


def test_a_violation_keeps_the_position_its_decoder_gave() -> None:
    from fib_quant_kv.codec.json import located
    from fib_quant_kv.errors import Violation

    placed = Violation("decode", "", "malformed", "decode.malformed", position=(3, 9))
    unplaced = Violation("schema", "/a", "bad", "schema.type")
    assert [v.position for v in located(b'{"a": 1}', [placed, unplaced])] == [(3, 9), (1, 7)]


def test_a_missing_member_locates_its_object_and_a_bad_text_nothing() -> None:
    from fib_quant_kv.codec.json import locate

    data = b'{\n  "a": {"b": 1},\n  "c": [10, 20]\n}'
    assert locate(data, ("a", "b")) == (2, 14)
    assert locate(data, ("a", "x")) == (2, 8)
    assert locate(data, ("c", "1")) == (3, 13)
    assert locate(data, ("c", "2")) == (3, 8)
    assert locate(data, ("a", "b", "deeper")) == (2, 14)
    assert locate(b'{"a": 1, "a": 2}', ("a",)) == (1, 15)  # a duplicate: the last one
    assert locate(b'\n{"a": 1}', ("a",)) == (2, 7)  # a text that starts with a newline
    assert locate(b"\xff{}", ("a",)) is None
    assert locate(b"   ", ("a",)) is None
    assert locate(b'{"a": [1, }', ("a", "1")) == (1, 7)  # cut short: the array it is in
    assert locate(b'{"a": [1, 2', ("a", "1")) == (1, 11)
