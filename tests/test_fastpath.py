"""The hot path for canonical documents agrees with the strict path on every input it accepts."""

from __future__ import annotations

import json
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fib_quant_kv as fqk
from fib_quant_kv import fastpath
from fib_quant_kv.contracts import Document
from fib_quant_kv.fastpath import _Compiled, _text, canonical_cbor, canonical_json
from tests.conftest import VECTORS
from tests.test_digests import documents
from tests.test_fuzz import ANY_BYTES

VALID_DOCS = [fqk.decode(c["doc"].encode()) for c in VECTORS if c["expect"]["valid"]]


def strict(data: bytes) -> Document | None:
    try:
        return fqk.decode(data)
    except fqk.FibQuantKvError:
        return None


def test_every_valid_vector_takes_the_fast_path_in_both_encodings() -> None:
    for doc in VALID_DOCS:
        canonical = fqk.encode(doc)
        assert canonical_json(canonical) == (doc, canonical)
        assert canonical_cbor(fqk.encode(doc, "cbor")) == (doc, canonical)


@settings(max_examples=200, deadline=None)
@given(documents())
def test_any_valid_document_takes_the_fast_path(pair: tuple[Document, fqk.KvTensorShapeV1]) -> None:
    doc, _ = pair
    canonical = fqk.encode(doc)
    assert canonical_json(canonical) == (doc, canonical)
    assert canonical_cbor(fqk.encode(doc, "cbor")) == (doc, canonical)


@settings(max_examples=600, deadline=None)
@given(ANY_BYTES)
def test_whatever_the_fast_path_accepts_the_strict_path_reads_the_same(data: bytes) -> None:
    for fast in (canonical_json(data), canonical_cbor(data)):
        if fast is not None:
            model, canonical = fast
            assert strict(data) == model
            assert fqk.encode(model) == canonical


SHAPE = VALID_DOCS[0]
SHAPE_JSON = fqk.encode(SHAPE)
SHAPE_CBOR = fqk.encode(SHAPE, "cbor")


def test_json_that_is_not_canonical_takes_the_strict_path() -> None:
    value = json.loads(SHAPE_JSON)
    pretty = json.dumps(value, indent=2).encode()
    reordered = json.dumps(dict(reversed(value.items())), separators=(",", ":")).encode()
    duplicated = SHAPE_JSON.replace(b'"batch":1,', b'"batch":1,"batch":1,')
    negative_zero = SHAPE_JSON.replace(b'"batch":1,', b'"batch":-0,')
    escaped = SHAPE_JSON.replace(b'"key"', b'"\\u006bey"')
    for data in (pretty, reordered, escaped):
        assert canonical_json(data) is None
        assert strict(data) == SHAPE  # equal documents, only not canonical bytes
    for data in (duplicated, negative_zero, SHAPE_JSON + b" ", b" " + SHAPE_JSON):
        assert canonical_json(data) is None


def test_cbor_outside_the_deterministic_subset_takes_the_strict_path() -> None:
    value = json.loads(SHAPE_JSON)
    reordered = cbor2.dumps(value)  # insertion order, not canonical order
    tagged = SHAPE_CBOR.replace(b"\x18\x20", b"\xc2\x41\x20", 1)  # a bignum tag for 32
    wide = SHAPE_CBOR.replace(b"\x01", b"\x18\x01", 1)  # 1 written in two bytes
    assert reordered != SHAPE_CBOR
    assert canonical_cbor(reordered) is None
    assert strict(reordered) == SHAPE
    assert canonical_cbor(SHAPE_CBOR + b"\x00") is None
    assert canonical_cbor(SHAPE_CBOR[:-1]) is None
    assert canonical_cbor(tagged) is None
    assert canonical_cbor(b"") is None
    # Not the shortest form, but well-formed: both paths read the same value.
    assert canonical_cbor(wide) == (SHAPE, SHAPE_JSON)
    assert strict(wide) == SHAPE


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_every_integer_width_decodes_to_its_value(value: int) -> None:
    layout = fqk.KvCacheLayoutV1.model_validate(
        {**fqk.canonical_layout(SHAPE).model_dump(mode="json"), "batch_stride": value}  # type: ignore[arg-type]
    )
    fast = canonical_cbor(fqk.encode(layout, "cbor"))
    assert fast is not None
    assert fast[0].batch_stride == value


def test_bounds_fall_back_to_the_strict_path_which_names_them() -> None:
    too_big = SHAPE_CBOR.replace(b"\x65batch\x01", b"\x65batch\x1b" + (2**40).to_bytes(8, "big"))
    assert canonical_cbor(too_big) is None
    verdict = fqk.check(too_big)
    assert verdict.violations[0].pointer == "/batch"


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
    assert _text(value) == encoded
    assert cbor2.dumps(value) == encoded


def test_text_longer_than_the_fast_path_allows_is_refused() -> None:
    with pytest.raises(ValueError, match="too long for the canonical CBOR fast path"):
        _text("a" * 256)


@pytest.mark.parametrize("marker", fqk.markers())
def test_a_freshly_compiled_contract_reads_its_documents(marker: str) -> None:
    compiled = _Compiled(marker)
    docs = [d for d in VALID_DOCS if d.schema_version == marker]
    assert docs
    for doc in docs:
        assert compiled.cbor_to_json(fqk.encode(doc, "cbor")) == fqk.encode(doc)
        # Field order is not CBOR's canonical order: refused (the strict path reads it).
        assert compiled.cbor_to_json(cbor2.dumps(doc.model_dump(mode="json"))) is None
        assert compiled.cbor_to_json(fqk.encode(doc, "cbor") + b"\x00") is None
        assert compiled.json_pattern.fullmatch(fqk.encode(doc))
        assert not compiled.json_pattern.fullmatch(fqk.encode(doc) + b" ")
    others = [d for d in VALID_DOCS if d.schema_version != marker]
    assert all(compiled.cbor_to_json(fqk.encode(d, "cbor")) is None for d in others)
    assert not any(compiled.json_pattern.fullmatch(fqk.encode(d)) for d in others)
    assert compiled.template.startswith('{"schema_version":"%s"')
    assert [name for name in json.loads(fqk.encode(docs[0]))] == [
        part.split('"')[1] for part in compiled.template[1:-1].split(",")
    ]


def test_a_value_that_would_need_json_escaping_is_refused_when_compiling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = fastpath.property_schema

    def quoted_enum(marker: str, field: str) -> Any:
        prop = real(marker, field)
        return {"type": "string", "enum": ['a"b']} if field == "role" else prop

    monkeypatch.setattr(fastpath, "property_schema", quoted_enum)
    with pytest.raises(ValueError, match="role: a value would need JSON escaping"):
        _Compiled("fib_quant_kv_tensor_shape_v1")


@pytest.mark.parametrize("value", [10, 0x010A, 0x0A0A, 0x0A0A0A0A, 0x0A << 56])
def test_integer_bytes_that_look_like_a_newline_are_read(value: int) -> None:
    layout = fqk.canonical_layout(SHAPE).model_copy(update={"batch_stride": value})  # type: ignore[arg-type]
    fast = canonical_cbor(fqk.encode(layout, "cbor"))
    assert fast is not None
    assert fast[0].batch_stride == value


def test_a_freshly_compiled_pattern_reads_integer_bytes_that_look_like_a_newline() -> None:
    compiled = _Compiled("fib_quant_kv_cache_layout_v1")
    layout = fqk.canonical_layout(SHAPE).model_copy(update={"batch_stride": 0x010A})  # type: ignore[arg-type]
    assert compiled.cbor_to_json(fqk.encode(layout, "cbor")) == fqk.encode(layout)
