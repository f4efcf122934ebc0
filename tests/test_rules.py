"""The semantic layer: each reference rule passes and fails where it should, in the right order."""

from __future__ import annotations

from typing import Any, Literal, get_type_hints

import pytest

import fib_quant_kv as fqk
from fib_quant_kv.contracts import field_names, property_schema
from fib_quant_kv.rules.geometry import geometry_violations
from fib_quant_kv.rules.layout import layout_violations
from fib_quant_kv.rules.shape import shape_violations

SHAPE: dict[str, Any] = {
    "schema_version": "fib_quant_kv_tensor_shape_v1",
    "role": "key",
    "attention_kind": "gqa",
    "batch": 2,
    "layers": 32,
    "kv_heads": 8,
    "query_heads": 32,
    "tokens": 4096,
    "head_dim": 128,
    "dtype": "bf16",
    "rope_state": "post_rope",
}


def shape(**changes: Any) -> fqk.KvTensorShapeV1:
    """A shape built in code without the schema's checks, as a caller could build one."""
    return fqk.KvTensorShapeV1.model_construct(**{**SHAPE, **changes})


VALID_SHAPE = fqk.KvTensorShapeV1.model_validate(SHAPE)


def first(doc: Any, against: fqk.KvTensorShapeV1 | None = None) -> fqk.Violation | None:
    """The reference's verdict, checked to be the same through both entry points."""
    collected = fqk.collect_violations(doc, against)
    raised: fqk.FibQuantKvError | None = None
    try:
        fqk.validate(doc, against)
    except fqk.FibQuantKvError as exc:
        raised = exc
    if raised is None:
        assert collected == []
        return None
    assert collected, "validate raised but collect_violations found nothing"
    assert raised.violation == collected[0]
    assert (
        type(raised)
        is {
            "schema": fqk.SchemaError,
            "corrupt_payload": fqk.CorruptPayload,
            "dependency_unsupported": fqk.DependencyUnsupported,
            "resource_limit_exceeded": fqk.ResourceLimitExceeded,
        }[raised.code]
    )
    return raised.violation


# (rule, passing changes, failing changes, pointer of the failure, words in the message)
SHAPE_RULES = [
    (
        "marker",
        {},
        {"schema_version": "fib_quant_kv_tensor_shape_v2"},
        "/schema_version",
        "expected",
    ),
    *[
        (f"{name} > 0", {name: 1}, {name: 0}, f"/{name}", f"kv shape {name} must be > 0")
        for name in ("batch", "layers", "kv_heads", "query_heads", "tokens", "head_dim")
        if name not in ("kv_heads", "query_heads")
    ],
    ("kv_heads > 0", {"kv_heads": 1}, {"kv_heads": 0}, "/kv_heads", "kv_heads must be > 0"),
    ("query_heads > 0", {"query_heads": 8}, {"query_heads": 0}, "/query_heads", "must be > 0"),
    (
        "mha heads equal",
        {"attention_kind": "mha", "query_heads": 8},
        {"attention_kind": "mha"},
        "/query_heads",
        "mha requires",
    ),
    (
        "mqa one kv head",
        {"attention_kind": "mqa", "kv_heads": 1},
        {"attention_kind": "mqa", "kv_heads": 2},
        "/kv_heads",
        "mqa requires kv_heads == 1",
    ),
    (
        "gqa divides",
        {"query_heads": 8},
        {"query_heads": 12},
        "/query_heads",
        "multiple of kv_heads",
    ),
    (
        "key rope",
        {"rope_state": "pre_rope"},
        {"rope_state": "not_applicable"},
        "/rope_state",
        "key",
    ),
    (
        "value rope",
        {"role": "value", "rope_state": "not_applicable"},
        {"role": "value", "rope_state": "post_rope"},
        "/rope_state",
        "value cache",
    ),
    (
        "value pre_rope",
        {"role": "value", "rope_state": "not_applicable"},
        {"role": "value", "rope_state": "pre_rope"},
        "/rope_state",
        "value cache",
    ),
]


@pytest.mark.parametrize(
    ("passing", "failing", "where", "words"),
    [r[1:] for r in SHAPE_RULES],
    ids=[r[0] for r in SHAPE_RULES],
)
def test_shape_rule(
    passing: dict[str, Any], failing: dict[str, Any], where: str, words: str
) -> None:
    assert first(shape(**passing)) is None
    # The rule itself gives the reference's verdict ...
    rule = shape_violations(shape(**failing))[0]
    assert (rule.code, rule.pointer) == ("corrupt_payload", where)
    assert words in rule.message
    # ... and the public calls refuse the document at the same place, as a schema error where
    # the schema states the constraint (a marker, a count of at least 1).
    found = first(shape(**failing))
    assert found is not None
    assert found.pointer == where
    stated = "schema_version" in failing or 0 in failing.values()
    assert found.code == ("schema" if stated else "corrupt_payload")


def test_gqa_with_equal_head_counts_is_valid() -> None:
    assert first(shape(query_heads=8, kv_heads=8)) is None


def test_mqa_kv_heads_zero_reports_zero_first_and_never_divides_by_it() -> None:
    found = list(shape_violations(shape(attention_kind="mqa", kv_heads=0, query_heads=8)))
    assert [v.pointer for v in found] == ["/kv_heads", "/kv_heads"]
    assert "must be > 0" in found[0].message


U32_MAX = 4294967295


@pytest.mark.parametrize(
    ("fields", "overflows"),
    [
        # vector_count = 2^32-1 ^ 4 overflows u64 outright.
        (
            {
                "batch": U32_MAX,
                "layers": U32_MAX,
                "kv_heads": U32_MAX,
                "query_heads": U32_MAX,
                "tokens": U32_MAX,
            },
            True,
        ),
        # vector_count fits (2^62), element_count = 2^62 * 4 = 2^64 does not.
        (
            {
                "batch": 1 << 31,
                "layers": 1 << 31,
                "kv_heads": 1,
                "query_heads": 1,
                "tokens": 1,
                "head_dim": 4,
            },
            True,
        ),
        # element_count = 2^62 * 3 < 2^64 fits exactly.
        (
            {
                "batch": 1 << 31,
                "layers": 1 << 31,
                "kv_heads": 1,
                "query_heads": 1,
                "tokens": 1,
                "head_dim": 3,
            },
            False,
        ),
        # 2^64 - 1 itself is representable: 3 * 5 * 17 * 257 * 641 * 65537 * 6700417.
        (
            {
                "batch": 3 * 5 * 17 * 257,
                "layers": 641 * 65537,
                "kv_heads": 1,
                "query_heads": 1,
                "tokens": 1,
                "head_dim": 6700417,
            },
            False,
        ),
    ],
    ids=["vectors-overflow", "elements-overflow", "elements-fit", "exactly-u64-max"],
)
def test_size_overflow_is_a_resource_limit(fields: dict[str, int], overflows: bool) -> None:
    found = first(shape(**fields))
    if overflows:
        assert found is not None
        assert found.code == "resource_limit_exceeded"
        assert "overflow" in found.message
    else:
        assert found is None
        assert fqk.element_count(shape(**fields)) <= (1 << 64) - 1


def test_shape_rules_come_in_the_reference_order() -> None:
    # Zero tokens, mha with unequal heads, and a key without RoPE: the zero is reported first.
    broken = shape(tokens=0, attention_kind="mha", rope_state="not_applicable")
    pointers = [v.pointer for v in shape_violations(broken)]
    assert pointers == ["/tokens", "/query_heads", "/rope_state"]
    # Through the public calls the schema's minimum speaks first, at the same place.
    found = first(broken)
    assert found is not None
    assert (found.code, found.pointer) == ("schema", "/tokens")
    unequal = shape(attention_kind="mha", rope_state="not_applicable")
    assert first(unequal) == shape_violations(unequal)[0]


LAYOUT = fqk.canonical_layout(VALID_SHAPE)


def test_canonical_layout_follows_the_contract_formulas() -> None:
    s = VALID_SHAPE
    assert LAYOUT.dim_stride == 1
    assert LAYOUT.token_stride == s.head_dim
    assert LAYOUT.head_stride == s.tokens * s.head_dim
    assert LAYOUT.layer_stride == s.kv_heads * s.tokens * s.head_dim
    assert LAYOUT.batch_stride == s.layers * s.kv_heads * s.tokens * s.head_dim
    assert first(LAYOUT, VALID_SHAPE) is None


@pytest.mark.parametrize(
    "field", ["batch_stride", "layer_stride", "head_stride", "token_stride", "dim_stride"]
)
def test_any_non_canonical_stride_is_refused(field: str) -> None:
    layout = LAYOUT.model_copy(update={field: getattr(LAYOUT, field) + 1})
    found = first(layout, VALID_SHAPE)
    assert found is not None
    assert found.code == "corrupt_payload"
    assert found.pointer == f"/{field}"
    assert "only canonical contiguous kv layout" in found.message
    assert str(getattr(LAYOUT, field)) in found.message  # says what was expected


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("schema_version", "fib_quant_kv_cache_layout_v2", "/schema_version"),
        ("shape_schema_version", "fib_quant_kv_tensor_shape_v2", "/shape_schema_version"),
        ("order", "batch_head_layer_token_dim", "/order"),
    ],
)
def test_layout_markers_hold_for_models_built_in_code(field: str, value: str, where: str) -> None:
    layout = fqk.KvCacheLayoutV1.model_construct(**{**LAYOUT.model_dump(), field: value})
    rule = layout_violations(layout, VALID_SHAPE)[0]
    assert (rule.code, rule.pointer) == ("corrupt_payload", where)
    found = first(layout, VALID_SHAPE)
    assert found is not None
    assert (found.code, found.pointer) == ("schema", where)  # the schema's const or enum


def test_an_invalid_shape_fails_its_layout_and_geometry_first() -> None:
    broken = shape(attention_kind="mha")
    for doc in (LAYOUT, fqk.new_page_geometry(16, 128, 72)):
        found = first(doc, broken)
        assert found is not None
        assert found.code == "corrupt_payload"
        assert "the shape is invalid at /query_heads" in found.message


def test_a_layout_or_geometry_needs_a_shape() -> None:
    with pytest.raises(TypeError, match="shape="):
        fqk.validate(LAYOUT)
    with pytest.raises(TypeError, match="shape="):
        fqk.collect_violations(fqk.new_page_geometry(16, 128, 72))
    with pytest.raises(TypeError, match="KvTensorShapeV1"):
        fqk.validate(LAYOUT, LAYOUT)  # type: ignore[arg-type]


def geometry(**changes: Any) -> fqk.KvPageGeometryV1:
    base = fqk.new_page_geometry(256, 128, 72).model_dump()
    return fqk.KvPageGeometryV1.model_construct(**{**base, **changes})


GEOMETRY_RULES = [
    ("marker", {}, {"schema_version": "x"}, "corrupt_payload", "/schema_version"),
    (
        "tokens_per_page >= 1",
        {"tokens_per_page": 1},
        {"tokens_per_page": 0},
        "corrupt_payload",
        "/tokens_per_page",
    ),
    (
        "tokens_per_page <= tokens",
        {"tokens_per_page": 4096},
        {"tokens_per_page": 4097},
        "corrupt_payload",
        "/tokens_per_page",
    ),
    (
        "one vector per block",
        {},
        {"vectors_per_block": 2},
        "dependency_unsupported",
        "/vectors_per_block",
    ),
    (
        "zero vectors per block",
        {},
        {"vectors_per_block": 0},
        "dependency_unsupported",
        "/vectors_per_block",
    ),
    (
        "head_dim matches",
        {},
        {"head_dim": 64, "raw_vector_bytes": 256},
        "corrupt_payload",
        "/head_dim",
    ),
    ("raw bytes f32", {}, {"raw_vector_bytes": 256}, "corrupt_payload", "/raw_vector_bytes"),
    (
        "encoded bytes nonzero",
        {"encoded_block_bytes": 1},
        {"encoded_block_bytes": 0},
        "corrupt_payload",
        "/encoded_block_bytes",
    ),
]


@pytest.mark.parametrize(
    ("passing", "failing", "code", "where"),
    [r[1:] for r in GEOMETRY_RULES],
    ids=[r[0] for r in GEOMETRY_RULES],
)
def test_geometry_rule(
    passing: dict[str, Any], failing: dict[str, Any], code: str, where: str
) -> None:
    assert first(geometry(**passing), VALID_SHAPE) is None
    rule = geometry_violations(geometry(**failing), VALID_SHAPE)[0]
    assert (rule.code, rule.pointer) == (code, where)
    found = first(geometry(**failing), VALID_SHAPE)
    assert found is not None
    stated = where in ("/schema_version", "/encoded_block_bytes")
    stated = stated or failing.get("tokens_per_page") == 0
    assert (found.code, found.pointer) == ("schema" if stated else code, where)


def test_geometry_rules_come_in_the_reference_order() -> None:
    broken = geometry(tokens_per_page=5000, vectors_per_block=2, head_dim=64, encoded_block_bytes=0)
    pointers = [v.pointer for v in geometry_violations(broken, VALID_SHAPE)]
    assert pointers == [
        "/tokens_per_page",
        "/vectors_per_block",
        "/head_dim",
        "/raw_vector_bytes",
        "/encoded_block_bytes",
    ]
    found = first(broken.model_copy(update={"encoded_block_bytes": 1}), VALID_SHAPE)
    assert found is not None
    assert found.pointer == "/tokens_per_page"


@pytest.mark.parametrize(
    ("head_dim", "raw"),
    [(1, 4), (128, 512), (1073741823, 4294967292), (1073741824, U32_MAX), (U32_MAX, U32_MAX)],
)
def test_raw_vector_bytes_saturates_like_a_u32_multiply(head_dim: int, raw: int) -> None:
    built = fqk.new_page_geometry(1, head_dim, 1)
    assert built.raw_vector_bytes == raw
    assert built.vectors_per_block == 1
    big = shape(head_dim=head_dim, batch=1, layers=1, kv_heads=1, query_heads=1, tokens=1)
    assert first(built, big) is None


def test_saturated_raw_bytes_must_still_match() -> None:
    big = shape(head_dim=U32_MAX, batch=1, layers=1, kv_heads=1, query_heads=1, tokens=1)
    found = first(geometry(head_dim=U32_MAX, raw_vector_bytes=U32_MAX - 1, tokens_per_page=1), big)
    assert found is not None
    assert found.pointer == "/raw_vector_bytes"


@pytest.mark.parametrize(
    ("tokens", "per_page", "pages"), [(4096, 256, 16), (4097, 256, 17), (1, 1, 1), (257, 257, 1)]
)
def test_page_count_rounds_up(tokens: int, per_page: int, pages: int) -> None:
    s = shape(tokens=tokens)
    assert fqk.page_count(fqk.new_page_geometry(per_page, 128, 72), s) == pages


def test_page_count_validates_first() -> None:
    with pytest.raises(fqk.DependencyUnsupported):
        fqk.page_count(geometry(vectors_per_block=2), VALID_SHAPE)


def test_counts_of_a_shape() -> None:
    assert fqk.vector_count(VALID_SHAPE) == 2 * 32 * 8 * 4096
    assert fqk.element_count(VALID_SHAPE) == 2 * 32 * 8 * 4096 * 128
    with pytest.raises(fqk.SchemaError):
        fqk.vector_count(shape(tokens=0))
    with pytest.raises(fqk.CorruptPayload):
        fqk.vector_count(shape(attention_kind="mha"))


def test_new_page_geometry_refuses_what_the_schema_refuses() -> None:
    with pytest.raises(fqk.SchemaError) as caught:
        fqk.new_page_geometry(0, 128, 72)
    assert caught.value.pointer == "/tokens_per_page"
    assert "1..=4294967295" in caught.value.message


def test_canonical_layout_validates_the_shape_first() -> None:
    with pytest.raises(fqk.CorruptPayload) as caught:
        fqk.canonical_layout(shape(attention_kind="mqa"))
    assert caught.value.pointer == "/kv_heads"


def test_the_values_the_rules_name_are_the_generated_enums_values() -> None:
    # The rules compare plain strings (the hot path reads no enum); each must be a member's value.
    from fib_quant_kv.rules import layout as layout_rules, shape as shape_rules

    assert {shape_rules.MHA, shape_rules.MQA, shape_rules.GQA} == set(fqk.KvAttentionKind)
    assert {shape_rules.KEY, shape_rules.VALUE} == set(fqk.KvRole)
    assert fqk.KvRopeState.not_applicable == shape_rules.NOT_APPLICABLE
    assert fqk.KvLayoutOrder.batch_layer_head_token_dim == layout_rules.CANONICAL_ORDER


@pytest.mark.parametrize("doc", [shape(), fqk.canonical_layout(shape())])
def test_the_rules_read_plain_fields_as_they_read_the_model(doc: Any) -> None:
    # What the hot path hands the rules: a named tuple of plain values, no enum members.
    from collections import namedtuple

    dumped = doc.model_dump(mode="json", warnings=False)  # shape() holds plain strings
    fields = namedtuple("Fields", list(dumped))(**dumped)  # type: ignore[misc]
    broken = fields._replace(**{k: 0 for k, v in dumped.items() if isinstance(v, int)})
    if isinstance(doc, fqk.KvTensorShapeV1):
        assert list(shape_violations(fields)) == list(shape_violations(doc)) == []
        assert list(shape_violations(broken)) == list(
            shape_violations(doc.model_copy(update=broken._asdict()))
        )
        assert list(shape_violations(broken))
    else:
        assert list(layout_violations(fields, shape())) == []
        assert list(layout_violations(broken, shape())) == list(
            layout_violations(doc.model_copy(update=broken._asdict()), shape())
        )
        assert list(layout_violations(broken, shape()))


def test_semantic_rules_of_a_layout_without_its_shape_are_refused() -> None:
    from fib_quant_kv.contracts import contract_of
    from fib_quant_kv.rules import semantic_violations

    layout = fqk.canonical_layout(shape())
    with pytest.raises(TypeError, match="fib_quant_kv_cache_layout_v1 is checked against a shape"):
        semantic_violations(contract_of(layout), layout, None)


@pytest.mark.parametrize("marker", fqk.markers())
def test_the_fields_the_rules_read_are_the_contracts_fields_as_its_schema_types_them(
    marker: str,
) -> None:
    # The Protocols name what the rules read of a model or of the hot path's named tuple; they
    # are written out for the type checker, so this holds them to the schema.
    from fib_quant_kv.rules import geometry, layout, shape as shape_rules

    protocol = {
        "fib_quant_kv_tensor_shape_v1": shape_rules.ShapeFields,
        "fib_quant_kv_cache_layout_v1": layout.LayoutFields,
        "fib_quant_kv_page_geometry_v1": geometry.GeometryFields,
    }[marker]
    names = [name for name, value in vars(protocol).items() if isinstance(value, property)]
    assert names == field_names(marker)
    for name in names:
        returned = get_type_hints(getattr(protocol, name).fget)["return"]
        prop = property_schema(marker, name)
        assert prop is not None
        if prop.get("type") == "integer":
            assert returned is int, name
        elif name == "schema_version":
            assert returned == Literal[marker]
        else:
            assert returned is str, name
