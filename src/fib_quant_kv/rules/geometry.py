"""Semantic rules of fib_quant_kv_page_geometry_v1 against its shape, and page arithmetic."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, Protocol

from fib_quant_kv.contracts import PAGE_GEOMETRY_SCHEMA
from fib_quant_kv.errors import Violation
from fib_quant_kv.rules.shape import ShapeFields

U32_MAX = (1 << 32) - 1
F32_BYTES = 4


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


def geometry_violations(geometry: GeometryFields, shape: ShapeFields) -> Iterator[Violation]:
    """Every rule the geometry breaks against a valid shape, the reference's first verdict first."""
    if geometry.schema_version != PAGE_GEOMETRY_SCHEMA:
        yield Violation(
            "corrupt_payload",
            "/schema_version",
            f"kv page geometry schema_version {geometry.schema_version}, "
            f"expected {PAGE_GEOMETRY_SCHEMA}",
        )
    if not 1 <= geometry.tokens_per_page <= shape.tokens:
        yield Violation(
            "corrupt_payload",
            "/tokens_per_page",
            f"tokens_per_page must be in 1..={shape.tokens} (the shape's tokens), "
            f"got {geometry.tokens_per_page}",
        )
    if geometry.vectors_per_block != 1:
        yield Violation(
            "dependency_unsupported",
            "/vectors_per_block",
            "CPU reference codec currently supports one vector per block, "
            f"got vectors_per_block {geometry.vectors_per_block}",
        )
    if geometry.head_dim != shape.head_dim:
        yield Violation(
            "corrupt_payload",
            "/head_dim",
            f"page geometry head_dim must match shape: expected {shape.head_dim}, "
            f"got {geometry.head_dim}",
        )
    want = raw_vector_bytes(geometry.head_dim)
    if geometry.raw_vector_bytes != want:
        yield Violation(
            "corrupt_payload",
            "/raw_vector_bytes",
            f"raw_vector_bytes must equal head_dim * sizeof(f32): expected {want}, "
            f"got {geometry.raw_vector_bytes}",
        )
    if geometry.encoded_block_bytes == 0:
        yield Violation(
            "corrupt_payload", "/encoded_block_bytes", "encoded_block_bytes must be nonzero"
        )


def page_count_unchecked(geometry: GeometryFields, shape: ShapeFields) -> int:
    """ceil(tokens / tokens_per_page), for a geometry already valid against the shape."""
    return -(-shape.tokens // geometry.tokens_per_page)
