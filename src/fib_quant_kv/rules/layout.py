"""Semantic rules of fib_quant_kv_cache_layout_v1 against its shape, and the canonical layout."""

from __future__ import annotations

from collections.abc import Iterator

from fib_quant_kv.contracts import LAYOUT_SCHEMA, SHAPE_SCHEMA
from fib_quant_kv.errors import Violation
from fib_quant_kv_models import KvCacheLayoutV1, KvLayoutOrder, KvTensorShapeV1

STRIDE_FIELDS = ("batch_stride", "layer_stride", "head_stride", "token_stride", "dim_stride")
CANONICAL_ORDER = KvLayoutOrder.batch_layer_head_token_dim
_NOT_CANONICAL = "only canonical contiguous kv layout is supported by the CPU reference codec"


def canonical_strides(shape: KvTensorShapeV1) -> dict[str, int]:
    """The contiguous strides of [batch][layer][kv_head][token][head_dim] for a shape."""
    dim_stride = 1
    token_stride = shape.head_dim
    head_stride = shape.tokens * token_stride
    layer_stride = shape.kv_heads * head_stride
    batch_stride = shape.layers * layer_stride
    return {
        "batch_stride": batch_stride,
        "layer_stride": layer_stride,
        "head_stride": head_stride,
        "token_stride": token_stride,
        "dim_stride": dim_stride,
    }


def build_canonical_layout(shape: KvTensorShapeV1) -> KvCacheLayoutV1:
    """The canonical layout of a shape that has already been validated."""
    return KvCacheLayoutV1(
        schema_version=LAYOUT_SCHEMA,
        shape_schema_version=SHAPE_SCHEMA,
        order=CANONICAL_ORDER,
        **canonical_strides(shape),
    )


def layout_violations(layout: KvCacheLayoutV1, shape: KvTensorShapeV1) -> Iterator[Violation]:
    """Every rule the layout breaks against a valid shape, the reference's first verdict first."""
    if layout.schema_version != LAYOUT_SCHEMA:
        yield Violation(
            "corrupt_payload",
            "/schema_version",
            f"kv layout schema_version {layout.schema_version}, expected {LAYOUT_SCHEMA}",
        )
    if layout.shape_schema_version != SHAPE_SCHEMA:
        yield Violation(
            "corrupt_payload",
            "/shape_schema_version",
            f"kv layout shape schema mismatch: expected {SHAPE_SCHEMA}, "
            f"got {layout.shape_schema_version}",
        )
    if layout.order != CANONICAL_ORDER:
        yield Violation(
            "corrupt_payload",
            "/order",
            f"{_NOT_CANONICAL}: expected order batch_layer_head_token_dim, got {layout.order}",
        )
    for name, want in canonical_strides(shape).items():
        got = getattr(layout, name)
        if got != want:
            yield Violation(
                "corrupt_payload",
                f"/{name}",
                f"{_NOT_CANONICAL}: expected {name} {want}, got {got}",
            )
