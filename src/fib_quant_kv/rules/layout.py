"""Semantic rules of fib_quant_kv_cache_layout_v1 against its shape, and the canonical strides."""

from __future__ import annotations

import operator
from typing import Final, Literal, Protocol

from fib_quant_kv.contracts import LAYOUT_SCHEMA, SHAPE_SCHEMA
from fib_quant_kv.errors import Rule, Violation
from fib_quant_kv.rules.shape import SHAPE_VALID_RULES, ShapeFields

STRIDE_FIELDS = ("batch_stride", "layer_stride", "head_stride", "token_stride", "dim_stride")
_strides = operator.attrgetter(*STRIDE_FIELDS)
CANONICAL_ORDER: Final = "batch_layer_head_token_dim"
_NOT_CANONICAL = "only canonical contiguous kv layout is supported by the CPU reference codec"

# The reference's Layout.validate_for_shape(shape), in its order (after decoding, the schema,
# and the shape's own rules).
SHAPE_VALID = SHAPE_VALID_RULES["layout"]
MARKER = Rule(
    "layout.schema_version",
    ("corrupt_payload",),
    4,
    f"schema_version is {LAYOUT_SCHEMA}. In a document the schema's marker decides first; "
    "only a model built in code can break this one.",
)
SHAPE_MARKER = Rule(
    "layout.shape_schema_version",
    ("corrupt_payload",),
    5,
    f"shape_schema_version is {SHAPE_SCHEMA}. In a document the schema's constant decides "
    "first; only a model built in code can break this one.",
)
CANONICAL = Rule(
    "layout.canonical",
    ("corrupt_payload",),
    6,
    "The layout is exactly the canonical contiguous layout of its shape: order "
    "batch_layer_head_token_dim, dim_stride 1, token_stride head_dim, head_stride tokens * "
    "token_stride, layer_stride kv_heads * head_stride, batch_stride layers * layer_stride.",
    breaks={"token_stride": 1},
)
RULES = (SHAPE_VALID, MARKER, SHAPE_MARKER, CANONICAL)


class LayoutFields(Protocol):
    """What the rules read of a layout: a KvCacheLayoutV1, or the hot path's plain values of one."""

    @property
    def schema_version(self) -> Literal["fib_quant_kv_cache_layout_v1"]: ...
    @property
    def shape_schema_version(self) -> str: ...
    @property
    def order(self) -> str: ...
    @property
    def batch_stride(self) -> int: ...
    @property
    def layer_stride(self) -> int: ...
    @property
    def head_stride(self) -> int: ...
    @property
    def token_stride(self) -> int: ...
    @property
    def dim_stride(self) -> int: ...


def canonical_strides(shape: ShapeFields) -> dict[str, int]:
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


def layout_violations(layout: LayoutFields, shape: ShapeFields) -> list[Violation]:
    """Every rule the layout breaks against a valid shape, the reference's first verdict first."""
    found: list[Violation] = []
    if layout.schema_version != LAYOUT_SCHEMA:
        found.append(
            MARKER.at(
                "/schema_version",
                f"kv layout schema_version {layout.schema_version}, expected {LAYOUT_SCHEMA}",
            )
        )
    if layout.shape_schema_version != SHAPE_SCHEMA:
        found.append(
            SHAPE_MARKER.at(
                "/shape_schema_version",
                f"kv layout shape schema mismatch: expected {SHAPE_SCHEMA}, "
                f"got {layout.shape_schema_version}",
            )
        )
    if layout.order != CANONICAL_ORDER:
        found.append(
            CANONICAL.at(
                "/order",
                f"{_NOT_CANONICAL}: expected order batch_layer_head_token_dim, got {layout.order}",
            )
        )
    canonical = canonical_strides(shape)
    strides = _strides(layout)
    if strides == tuple(canonical.values()):  # the common case, in one comparison
        return found
    for (name, want), got in zip(canonical.items(), strides, strict=True):
        if got != want:
            found.append(
                CANONICAL.at(f"/{name}", f"{_NOT_CANONICAL}: expected {name} {want}, got {got}")
            )
    return found


# What a contract's registry entry calls (`violations(document)` for a shape,
# `violations(document, shape)` for a layout or geometry): the checking function itself, with no
# frame between them on the hot path.
violations = layout_violations
