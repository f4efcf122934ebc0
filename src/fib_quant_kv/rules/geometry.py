"""Semantic rules of fib_quant_kv_page_geometry_v1 against its shape, and page arithmetic."""

from __future__ import annotations

from typing import Literal, Protocol

from fib_quant_kv.contracts import PAGE_GEOMETRY_SCHEMA
from fib_quant_kv.errors import Rule, Violation
from fib_quant_kv.rules.shape import SHAPE_VALID_RULES, ShapeFields

U32_MAX = (1 << 32) - 1
F32_BYTES = 4

# The reference's PageGeometry.validate_for_shape(shape), in its order (after decoding, the
# schema, and the shape's own rules).
SHAPE_VALID = SHAPE_VALID_RULES["geometry"]
MARKER = Rule(
    "geometry.schema_version",
    ("corrupt_payload",),
    4,
    f"schema_version is {PAGE_GEOMETRY_SCHEMA}. In a document the schema's marker decides "
    "first; only a model built in code can break this one.",
)
TOKENS_PER_PAGE_RANGE = Rule(
    "geometry.tokens_per_page_range",
    ("corrupt_payload",),
    5,
    "tokens_per_page is in 1..=tokens of the shape.",
    breaks={"tokens_per_page": 5000},
)
ONE_VECTOR_PER_BLOCK = Rule(
    "geometry.one_vector_per_block",
    ("dependency_unsupported",),
    6,
    "vectors_per_block is 1: a well-formed geometry with more is one the reference codec "
    "cannot serve yet.",
    breaks={"vectors_per_block": 2},
)
HEAD_DIM_MATCHES = Rule(
    "geometry.head_dim_matches",
    ("corrupt_payload",),
    7,
    "head_dim equals the shape's head_dim.",
    breaks={"head_dim": 64, "raw_vector_bytes": 256},
)
RAW_VECTOR_BYTES = Rule(
    "geometry.raw_vector_bytes",
    ("corrupt_payload",),
    8,
    "raw_vector_bytes is head_dim * 4 (the bytes of one f32 vector), saturating at 4294967295.",
    breaks={"raw_vector_bytes": 256},
)
ENCODED_BLOCK_BYTES_NONZERO = Rule(
    "geometry.encoded_block_bytes_nonzero",
    ("corrupt_payload",),
    9,
    "encoded_block_bytes is greater than 0 (in a document the schema's minimum of 1 says so "
    "first, at the same place).",
)
RULES = (
    SHAPE_VALID,
    MARKER,
    TOKENS_PER_PAGE_RANGE,
    ONE_VECTOR_PER_BLOCK,
    HEAD_DIM_MATCHES,
    RAW_VECTOR_BYTES,
    ENCODED_BLOCK_BYTES_NONZERO,
)


class GeometryFields(Protocol):
    """What the rules read of a geometry: a KvPageGeometryV1, or the hot path's values of one."""

    @property
    def schema_version(self) -> Literal["fib_quant_kv_page_geometry_v1"]: ...
    @property
    def tokens_per_page(self) -> int: ...
    @property
    def vectors_per_block(self) -> int: ...
    @property
    def head_dim(self) -> int: ...
    @property
    def encoded_block_bytes(self) -> int: ...
    @property
    def raw_vector_bytes(self) -> int: ...


def raw_vector_bytes(head_dim: int) -> int:
    """head_dim * sizeof(f32) as the reference computes it: a u32 multiply that saturates."""
    return min(head_dim * F32_BYTES, U32_MAX)


def geometry_violations(geometry: GeometryFields, shape: ShapeFields) -> list[Violation]:
    """Every rule the geometry breaks against a valid shape, the reference's first verdict first."""
    found: list[Violation] = []
    if geometry.schema_version != PAGE_GEOMETRY_SCHEMA:
        found.append(
            MARKER.at(
                "/schema_version",
                f"kv page geometry schema_version {geometry.schema_version}, "
                f"expected {PAGE_GEOMETRY_SCHEMA}",
            )
        )
    if not 1 <= geometry.tokens_per_page <= shape.tokens:
        found.append(
            TOKENS_PER_PAGE_RANGE.at(
                "/tokens_per_page",
                f"tokens_per_page must be in 1..={shape.tokens} (the shape's tokens), "
                f"got {geometry.tokens_per_page}",
            )
        )
    if geometry.vectors_per_block != 1:
        found.append(
            ONE_VECTOR_PER_BLOCK.at(
                "/vectors_per_block",
                "CPU reference codec currently supports one vector per block, "
                f"got vectors_per_block {geometry.vectors_per_block}",
            )
        )
    if geometry.head_dim != shape.head_dim:
        found.append(
            HEAD_DIM_MATCHES.at(
                "/head_dim",
                f"page geometry head_dim must match shape: expected {shape.head_dim}, "
                f"got {geometry.head_dim}",
            )
        )
    want = raw_vector_bytes(geometry.head_dim)
    if geometry.raw_vector_bytes != want:
        found.append(
            RAW_VECTOR_BYTES.at(
                "/raw_vector_bytes",
                f"raw_vector_bytes must equal head_dim * sizeof(f32): expected {want}, "
                f"got {geometry.raw_vector_bytes}",
            )
        )
    if geometry.encoded_block_bytes == 0:
        found.append(
            ENCODED_BLOCK_BYTES_NONZERO.at(
                "/encoded_block_bytes", "encoded_block_bytes must be nonzero"
            )
        )
    return found


def page_count_unchecked(geometry: GeometryFields, shape: ShapeFields) -> int:
    """ceil(tokens / tokens_per_page), for a geometry already valid against the shape."""
    return -(-shape.tokens // geometry.tokens_per_page)


# What a contract's registry entry calls (`violations(document)` for a shape,
# `violations(document, shape)` for a layout or geometry): the checking function itself, with no
# frame between them on the hot path.
violations = geometry_violations
