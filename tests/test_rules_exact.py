"""Every semantic rule's exact code, pointer and message, and the helpers that combine them."""

from __future__ import annotations

from typing import Any

import pytest

import fib_quant_kv as fqk
from fib_quant_kv.contracts import CONTRACTS
from fib_quant_kv.errors import Violation
from fib_quant_kv.rules import against_shape
from fib_quant_kv.rules.geometry import geometry_violations
from fib_quant_kv.rules.layout import layout_violations
from fib_quant_kv.rules.shape import shape_violations
from fib_quant_kv.structure import check_structure
from fib_quant_kv.verdict import merged, shape_problems

SHAPE_MARKER = "fib_quant_kv_tensor_shape_v1"
LAYOUT_MARKER = "fib_quant_kv_cache_layout_v1"
GEOMETRY_MARKER = "fib_quant_kv_page_geometry_v1"
U32_MAX = (1 << 32) - 1

SHAPE: dict[str, Any] = {
    "schema_version": SHAPE_MARKER,
    "role": "key",
    "attention_kind": "gqa",
    "batch": 2,
    "layers": 4,
    "kv_heads": 8,
    "query_heads": 32,
    "tokens": 100,
    "head_dim": 64,
    "dtype": "bf16",
    "rope_state": "post_rope",
}
VALID_SHAPE = fqk.KvTensorShapeV1.model_validate(SHAPE)

# The canonical layout of SHAPE, by the contract's formulas.
LAYOUT: dict[str, Any] = {
    "schema_version": LAYOUT_MARKER,
    "shape_schema_version": SHAPE_MARKER,
    "order": "batch_layer_head_token_dim",
    "batch_stride": 4 * 8 * 100 * 64,
    "layer_stride": 8 * 100 * 64,
    "head_stride": 100 * 64,
    "token_stride": 64,
    "dim_stride": 1,
}

GEOMETRY: dict[str, Any] = {
    "schema_version": GEOMETRY_MARKER,
    "tokens_per_page": 16,
    "vectors_per_block": 1,
    "head_dim": 64,
    "encoded_block_bytes": 72,
    "raw_vector_bytes": 256,
}

NOT_CANONICAL = "only canonical contiguous kv layout is supported by the CPU reference codec"
OVERFLOW = (
    "kv shape size overflow: batch * layers * kv_heads * tokens * head_dim "
    "must fit in an unsigned 64-bit integer"
)


def shape(**changes: Any) -> fqk.KvTensorShapeV1:
    """A shape built in code, past the schema, as a caller could build one."""
    return fqk.KvTensorShapeV1.model_construct(**{**SHAPE, **changes})


def layout(**changes: Any) -> fqk.KvCacheLayoutV1:
    return fqk.KvCacheLayoutV1.model_construct(**{**LAYOUT, **changes})


def geometry(**changes: Any) -> fqk.KvPageGeometryV1:
    return fqk.KvPageGeometryV1.model_construct(**{**GEOMETRY, **changes})


def corrupt(where: str, message: str, rule: str) -> Violation:
    return Violation("corrupt_payload", where, message, rule)


def test_the_bases_are_valid() -> None:
    assert list(shape_violations(VALID_SHAPE)) == []
    assert list(layout_violations(layout(), VALID_SHAPE)) == []
    assert list(geometry_violations(geometry(), VALID_SHAPE)) == []
    assert fqk.canonical_layout(VALID_SHAPE).model_dump(mode="json") == LAYOUT
    assert fqk.new_page_geometry(16, 64, 72).model_dump(mode="json") == GEOMETRY


# ---------------------------------------------------------------------------------------------
# Shape.validate(), rule by rule.

SHAPE_CASES = [
    pytest.param(
        {"schema_version": "fib_quant_kv_tensor_shape_v2"},
        [
            corrupt(
                "/schema_version",
                f"kv shape schema_version fib_quant_kv_tensor_shape_v2, expected {SHAPE_MARKER}",
                "shape.schema_version",
            )
        ],
        id="marker",
    ),
    *[
        pytest.param(
            {name: 0, **({"query_heads": 0} if name == "kv_heads" else {})},
            [
                corrupt(f"/{n}", f"kv shape {n} must be > 0", "shape.counts_nonzero")
                for n in (("kv_heads", "query_heads") if name == "kv_heads" else (name,))
            ],
            id=f"{name}-zero",
        )
        for name in ("batch", "layers", "kv_heads", "query_heads", "tokens", "head_dim")
    ],
    pytest.param(
        {"attention_kind": "mha", "query_heads": 32, "kv_heads": 8},
        [
            corrupt(
                "/query_heads",
                "mha requires query_heads == kv_heads, got 32 and 8",
                "shape.mha_heads_equal",
            )
        ],
        id="mha-unequal",
    ),
    pytest.param(
        {"attention_kind": "mqa", "query_heads": 32, "kv_heads": 8},
        [corrupt("/kv_heads", "mqa requires kv_heads == 1, got 8", "shape.mqa_one_kv_head")],
        id="mqa-many-kv-heads",
    ),
    pytest.param(
        {"attention_kind": "mqa", "query_heads": 12, "kv_heads": 8},
        [
            corrupt("/kv_heads", "mqa requires kv_heads == 1, got 8", "shape.mqa_one_kv_head"),
            corrupt(
                "/query_heads",
                "mqa requires query_heads to be a multiple of kv_heads, got 12 and 8",
                "shape.grouped_heads_divide",
            ),
        ],
        id="mqa-not-a-multiple",
    ),
    pytest.param(
        {"attention_kind": "gqa", "query_heads": 12, "kv_heads": 8},
        [
            corrupt(
                "/query_heads",
                "gqa requires query_heads to be a multiple of kv_heads, got 12 and 8",
                "shape.grouped_heads_divide",
            )
        ],
        id="gqa-not-a-multiple",
    ),
    pytest.param(
        {"role": "key", "rope_state": "not_applicable"},
        [
            corrupt(
                "/rope_state",
                "key cache requires rope_state pre_rope or post_rope, got not_applicable",
                "shape.rope_state_role",
            )
        ],
        id="key-without-rope",
    ),
    pytest.param(
        {"role": "value", "rope_state": "pre_rope"},
        [
            corrupt(
                "/rope_state",
                "value cache requires rope_state not_applicable, got pre_rope",
                "shape.rope_state_role",
            )
        ],
        id="value-pre-rope",
    ),
    pytest.param(
        {"role": "value", "rope_state": "post_rope"},
        [
            corrupt(
                "/rope_state",
                "value cache requires rope_state not_applicable, got post_rope",
                "shape.rope_state_role",
            )
        ],
        id="value-post-rope",
    ),
    pytest.param(
        {"batch": U32_MAX, "layers": U32_MAX, "kv_heads": U32_MAX, "query_heads": U32_MAX},
        [Violation("resource_limit_exceeded", "", OVERFLOW, "shape.size_overflow")],
        id="vector-count-overflow",
    ),
    pytest.param(
        {"batch": 1 << 31, "layers": 1 << 31, "kv_heads": 1, "query_heads": 1, "tokens": 1},
        [Violation("resource_limit_exceeded", "", OVERFLOW, "shape.size_overflow")],
        id="element-count-overflow",
    ),
]


@pytest.mark.parametrize(("changes", "want"), SHAPE_CASES)
def test_shape_rule_exactly(changes: dict[str, Any], want: list[Violation]) -> None:
    assert list(shape_violations(shape(**changes))) == want


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"attention_kind": "gqa", "query_heads": 8, "kv_heads": 8}, id="gqa-equal"),
        pytest.param({"attention_kind": "mqa", "query_heads": 7, "kv_heads": 1}, id="mqa"),
        pytest.param({"attention_kind": "mha", "query_heads": 8, "kv_heads": 8}, id="mha"),
        pytest.param({"role": "key", "rope_state": "pre_rope"}, id="key-pre-rope"),
        pytest.param({"role": "value", "rope_state": "not_applicable"}, id="value-no-rope"),
        pytest.param(
            {"batch": 1 << 31, "layers": 1 << 31, "kv_heads": 1, "query_heads": 1, "tokens": 1}
            | {"head_dim": 3},
            id="elements-just-fit",
        ),
    ],
)
def test_shape_rule_passes(changes: dict[str, Any]) -> None:
    assert list(shape_violations(shape(**changes))) == []


def test_shape_rules_in_the_reference_order() -> None:
    broken = shape(
        schema_version="x",
        tokens=0,
        attention_kind="mha",
        query_heads=3,
        kv_heads=2,
        rope_state="not_applicable",
    )
    assert [v.pointer for v in shape_violations(broken)] == [
        "/schema_version",
        "/tokens",
        "/query_heads",
        "/rope_state",
    ]


# ---------------------------------------------------------------------------------------------
# Layout.validate_for_shape(), rule by rule.

LAYOUT_CASES = [
    pytest.param(
        {"schema_version": "fib_quant_kv_cache_layout_v2"},
        [
            corrupt(
                "/schema_version",
                f"kv layout schema_version fib_quant_kv_cache_layout_v2, expected {LAYOUT_MARKER}",
                "layout.schema_version",
            )
        ],
        id="marker",
    ),
    pytest.param(
        {"shape_schema_version": "fib_quant_kv_tensor_shape_v2"},
        [
            corrupt(
                "/shape_schema_version",
                f"kv layout shape schema mismatch: expected {SHAPE_MARKER}, "
                "got fib_quant_kv_tensor_shape_v2",
                "layout.shape_schema_version",
            )
        ],
        id="shape-marker",
    ),
    pytest.param(
        {"order": "batch_head_layer_token_dim"},
        [
            corrupt(
                "/order",
                f"{NOT_CANONICAL}: expected order batch_layer_head_token_dim, "
                "got batch_head_layer_token_dim",
                "layout.canonical",
            )
        ],
        id="order",
    ),
    *[
        pytest.param(
            {name: LAYOUT[name] + 1},
            [
                corrupt(
                    f"/{name}",
                    f"{NOT_CANONICAL}: expected {name} {LAYOUT[name]}, got {got}",
                    "layout.canonical",
                )
            ],
            id=name,
        )
        for name, got in (
            ("batch_stride", 4 * 8 * 100 * 64 + 1),
            ("layer_stride", 8 * 100 * 64 + 1),
            ("head_stride", 100 * 64 + 1),
            ("token_stride", 65),
            ("dim_stride", 2),
        )
    ],
]


@pytest.mark.parametrize(("changes", "want"), LAYOUT_CASES)
def test_layout_rule_exactly(changes: dict[str, Any], want: list[Violation]) -> None:
    assert list(layout_violations(layout(**changes), VALID_SHAPE)) == want


def test_layout_rules_in_the_reference_order() -> None:
    broken = layout(schema_version="a", shape_schema_version="b", order="c", dim_stride=0)
    assert [v.pointer for v in layout_violations(broken, VALID_SHAPE)] == [
        "/schema_version",
        "/shape_schema_version",
        "/order",
        "/dim_stride",
    ]


# ---------------------------------------------------------------------------------------------
# PageGeometry.validate_for_shape(), rule by rule.

GEOMETRY_CASES = [
    pytest.param(
        {"schema_version": "fib_quant_kv_page_geometry_v2"},
        [
            corrupt(
                "/schema_version",
                "kv page geometry schema_version fib_quant_kv_page_geometry_v2, "
                f"expected {GEOMETRY_MARKER}",
                "geometry.schema_version",
            )
        ],
        id="marker",
    ),
    pytest.param(
        {"tokens_per_page": 0},
        [
            corrupt(
                "/tokens_per_page",
                "tokens_per_page must be in 1..=100 (the shape's tokens), got 0",
                "geometry.tokens_per_page_range",
            )
        ],
        id="no-tokens-per-page",
    ),
    pytest.param(
        {"tokens_per_page": 101},
        [
            corrupt(
                "/tokens_per_page",
                "tokens_per_page must be in 1..=100 (the shape's tokens), got 101",
                "geometry.tokens_per_page_range",
            )
        ],
        id="more-tokens-per-page-than-tokens",
    ),
    pytest.param(
        {"vectors_per_block": 2},
        [
            Violation(
                "dependency_unsupported",
                "/vectors_per_block",
                "CPU reference codec currently supports one vector per block, "
                "got vectors_per_block 2",
                "geometry.one_vector_per_block",
            )
        ],
        id="vectors-per-block",
    ),
    pytest.param(
        {"head_dim": 32, "raw_vector_bytes": 128},
        [
            corrupt(
                "/head_dim",
                "page geometry head_dim must match shape: expected 64, got 32",
                "geometry.head_dim_matches",
            )
        ],
        id="head-dim",
    ),
    pytest.param(
        {"raw_vector_bytes": 255},
        [
            corrupt(
                "/raw_vector_bytes",
                "raw_vector_bytes must equal head_dim * sizeof(f32): expected 256, got 255",
                "geometry.raw_vector_bytes",
            )
        ],
        id="raw-vector-bytes",
    ),
    pytest.param(
        {"encoded_block_bytes": 0},
        [
            corrupt(
                "/encoded_block_bytes",
                "encoded_block_bytes must be nonzero",
                "geometry.encoded_block_bytes_nonzero",
            )
        ],
        id="encoded-block-bytes",
    ),
]


@pytest.mark.parametrize(("changes", "want"), GEOMETRY_CASES)
def test_geometry_rule_exactly(changes: dict[str, Any], want: list[Violation]) -> None:
    assert list(geometry_violations(geometry(**changes), VALID_SHAPE)) == want


@pytest.mark.parametrize("tokens_per_page", [1, 100])
def test_tokens_per_page_bounds_are_inclusive(tokens_per_page: int) -> None:
    assert list(geometry_violations(geometry(tokens_per_page=tokens_per_page), VALID_SHAPE)) == []


def test_raw_vector_bytes_compares_with_the_saturated_product() -> None:
    wide = shape(head_dim=U32_MAX)
    saturated = geometry(head_dim=U32_MAX, raw_vector_bytes=U32_MAX)
    assert list(geometry_violations(saturated, wide)) == []
    unsaturated = geometry(head_dim=U32_MAX, raw_vector_bytes=0)
    assert list(geometry_violations(unsaturated, wide)) == [
        corrupt(
            "/raw_vector_bytes",
            "raw_vector_bytes must equal head_dim * sizeof(f32): expected 4294967295, got 0",
            "geometry.raw_vector_bytes",
        )
    ]


def test_geometry_rules_in_the_reference_order() -> None:
    broken = geometry(
        schema_version="x",
        tokens_per_page=0,
        vectors_per_block=0,
        head_dim=1,
        raw_vector_bytes=0,
        encoded_block_bytes=0,
    )
    found = list(geometry_violations(broken, VALID_SHAPE))
    assert [(v.code, v.pointer) for v in found] == [
        ("corrupt_payload", "/schema_version"),
        ("corrupt_payload", "/tokens_per_page"),
        ("dependency_unsupported", "/vectors_per_block"),
        ("corrupt_payload", "/head_dim"),
        ("corrupt_payload", "/raw_vector_bytes"),
        ("corrupt_payload", "/encoded_block_bytes"),
    ]
    # raw_vector_bytes is judged against the geometry's own head_dim.
    assert found[4].message.endswith("expected 4, got 0")


# ---------------------------------------------------------------------------------------------
# How the verdict combines them: against_shape (rules), shape_problems and merged (verdict).

MHA_UNEQUAL = "mha requires query_heads == kv_heads, got 32 and 8"


def shape_valid(rule: str, message: str, code: str = "corrupt_payload") -> Violation:
    return Violation(code, "", f"the shape is invalid{message}", rule)  # type: ignore[arg-type]


def test_against_a_broken_shape_names_each_shape_failure() -> None:
    broken = [
        corrupt("/query_heads", MHA_UNEQUAL, "shape.mha_heads_equal"),
        Violation("resource_limit_exceeded", "", OVERFLOW, "shape.size_overflow"),
    ]
    # Nothing about the document itself is judged against a broken shape; each of the shape's
    # failures keeps its own category, under the document's shape_valid rule.
    for doc, rule in (
        (layout(dim_stride=5), "layout"),
        (geometry(encoded_block_bytes=0), "geometry"),
    ):
        assert list(against_shape(CONTRACTS[doc.schema_version], doc, VALID_SHAPE, broken)) == [
            shape_valid(f"{rule}.shape_valid", f" at /query_heads: {MHA_UNEQUAL}"),
            shape_valid(f"{rule}.shape_valid", f": {OVERFLOW}", "resource_limit_exceeded"),
        ]


def test_against_a_valid_shape_runs_the_documents_rules() -> None:
    assert list(
        against_shape(CONTRACTS[layout().schema_version], layout(dim_stride=5), VALID_SHAPE, [])
    ) == [
        corrupt("/dim_stride", f"{NOT_CANONICAL}: expected dim_stride 1, got 5", "layout.canonical")
    ]
    assert list(
        against_shape(
            CONTRACTS[geometry().schema_version], geometry(encoded_block_bytes=0), VALID_SHAPE, []
        )
    ) == [
        corrupt(
            "/encoded_block_bytes",
            "encoded_block_bytes must be nonzero",
            "geometry.encoded_block_bytes_nonzero",
        )
    ]


def test_an_overflowing_shape_fails_its_layout_at_the_root() -> None:
    huge = shape(batch=U32_MAX, layers=U32_MAX, kv_heads=U32_MAX, query_heads=U32_MAX)
    assert fqk.collect_violations(layout(), huge) == [
        shape_valid("layout.shape_valid", f": {OVERFLOW}", "resource_limit_exceeded")
    ]
    with pytest.raises(fqk.ResourceLimitExceeded) as raised:
        fqk.validate(geometry(), huge)
    assert str(raised.value) == f"the shape is invalid: {OVERFLOW}"
    assert raised.value.rule == "geometry.shape_valid"


def test_shape_problems_of_a_valid_shape() -> None:
    assert shape_problems(VALID_SHAPE) == []


def test_shape_problems_judges_a_shape_by_the_shape_schema() -> None:
    # A shape carrying another contract's marker is still judged as a shape.
    assert shape_problems(shape(schema_version=LAYOUT_MARKER)) == [
        Violation(
            "schema",
            "/schema_version",
            f"expected the string {SHAPE_MARKER!r}, got {LAYOUT_MARKER!r}",
            "schema.enum",
        )
    ]
    assert shape_problems(shape(schema_version="v9")) == [
        Violation(
            "schema",
            "/schema_version",
            f"expected the string {SHAPE_MARKER!r}, got 'v9'",
            "schema.enum",
        )
    ]


BATCH_BOUND = Violation(
    "schema", "/batch", "expected an integer in 1..=4294967295, got 0", "schema.bound"
)


def test_shape_problems_adds_the_rules_to_broken_bounds() -> None:
    # The schema's minimum speaks for /batch; the rules add what it cannot state.
    assert shape_problems(shape(batch=0, attention_kind="mha")) == [
        BATCH_BOUND,
        corrupt("/query_heads", MHA_UNEQUAL, "shape.mha_heads_equal"),
    ]


def test_shape_problems_of_a_shape_breaking_only_the_rules() -> None:
    assert shape_problems(shape(role="value", rope_state="pre_rope")) == [
        corrupt(
            "/rope_state",
            "value cache requires rope_state not_applicable, got pre_rope",
            "shape.rope_state_role",
        )
    ]


def structure(doc: Any) -> Any:
    """What the schema stage finds in a model's fields."""
    return check_structure(dict(doc))


def test_merged_without_a_readable_document_is_the_schemas_alone() -> None:
    unreadable = structure(shape(batch="1"))
    assert unreadable.readable is None
    assert merged(unreadable, None, []) == unreadable.violations


def test_merged_adds_the_rules_at_places_the_schema_did_not_name() -> None:
    assert merged(structure(shape(batch=0, attention_kind="mha", role="value")), None, []) == [
        BATCH_BOUND,
        corrupt("/query_heads", MHA_UNEQUAL, "shape.mha_heads_equal"),
        corrupt(
            "/rope_state",
            "value cache requires rope_state not_applicable, got post_rope",
            "shape.rope_state_role",
        ),
    ]


def test_merged_needs_a_shape_for_a_layout_or_geometry() -> None:
    found = structure(layout(dim_stride=-1, token_stride=1))
    stride = Violation(
        "schema",
        "/dim_stride",
        "expected an integer in 0..=18446744073709551615, got -1",
        "schema.bound",
    )
    assert merged(found, None, []) == [stride]
    assert merged(found, VALID_SHAPE, []) == [
        stride,
        corrupt(
            "/token_stride", f"{NOT_CANONICAL}: expected token_stride 64, got 1", "layout.canonical"
        ),
    ]


def test_merged_with_a_broken_shape_reports_the_shape_whatever_else_is_wrong() -> None:
    shape_broken = [
        corrupt("/kv_heads", "mqa requires kv_heads == 1, got 8", "shape.mqa_one_kv_head")
    ]
    at_kv_heads = " at /kv_heads: mqa requires kv_heads == 1, got 8"
    bounds_only = structure(geometry(tokens_per_page=0))
    assert merged(bounds_only, VALID_SHAPE, shape_broken) == [
        *bounds_only.violations,
        shape_valid("geometry.shape_valid", at_kv_heads),
    ]
    # A wrong shape marker is no bound, yet the reference judges the shape before it.
    wrong_marker = structure(layout(shape_schema_version="v9"))
    assert wrong_marker.readable is None
    assert merged(wrong_marker, VALID_SHAPE, shape_broken) == [
        *wrong_marker.violations,
        shape_valid("layout.shape_valid", at_kv_heads),
    ]


def test_a_shape_of_the_wrong_type_is_named() -> None:
    with pytest.raises(TypeError) as raised:
        fqk.collect_violations(layout(), dict(SHAPE))  # type: ignore[arg-type]
    assert str(raised.value) == "shape must be a KvTensorShapeV1, got dict"
    with pytest.raises(TypeError) as raised:
        fqk.validate(geometry())
    assert str(raised.value) == (
        "a geometry is validated against the shape it describes: pass shape="
    )
