"""Documents and counts derived from a validated shape, as the reference derives them."""

from __future__ import annotations

from fib_quant_kv.contracts import LAYOUT_SCHEMA, PAGE_GEOMETRY_SCHEMA, SHAPE_SCHEMA
from fib_quant_kv.rules.geometry import page_count_unchecked, raw_vector_bytes
from fib_quant_kv.rules.layout import CANONICAL_ORDER, canonical_strides
from fib_quant_kv.rules.shape import vector_count_unchecked
from fib_quant_kv.structure import from_fields
from fib_quant_kv.verdict import validate
from fib_quant_kv_models import KvCacheLayoutV1, KvLayoutOrder, KvPageGeometryV1, KvTensorShapeV1


def canonical_layout(shape: KvTensorShapeV1) -> KvCacheLayoutV1:
    """The contiguous layout of a shape; the shape is validated first."""
    validate(shape)
    return from_fields(
        KvCacheLayoutV1,
        schema_version=LAYOUT_SCHEMA,
        shape_schema_version=SHAPE_SCHEMA,
        order=KvLayoutOrder(CANONICAL_ORDER),
        **canonical_strides(shape),
    )


def _page_geometry(
    tokens_per_page: int, head_dim: int, encoded_block_bytes: int
) -> KvPageGeometryV1:
    # As the reference's PageGeometry::new builds it.
    return KvPageGeometryV1(
        schema_version=PAGE_GEOMETRY_SCHEMA,
        tokens_per_page=tokens_per_page,
        vectors_per_block=1,
        head_dim=head_dim,
        encoded_block_bytes=encoded_block_bytes,
        raw_vector_bytes=raw_vector_bytes(head_dim),
    )


def new_page_geometry(
    tokens_per_page: int, head_dim: int, encoded_block_bytes: int
) -> KvPageGeometryV1:
    """A one-vector-per-block geometry; raw_vector_bytes saturates as the reference's does."""
    return from_fields(_page_geometry, tokens_per_page, head_dim, encoded_block_bytes)


def page_count(geometry: KvPageGeometryV1, shape: KvTensorShapeV1) -> int:
    """Pages needed for the shape's tokens; the geometry is validated against the shape first."""
    validate(geometry, shape)
    return page_count_unchecked(geometry, shape)


def vector_count(shape: KvTensorShapeV1) -> int:
    """batch * layers * kv_heads * tokens of a valid shape."""
    validate(shape)
    return vector_count_unchecked(shape)


def element_count(shape: KvTensorShapeV1) -> int:
    """vector_count * head_dim of a valid shape."""
    validate(shape)
    return vector_count_unchecked(shape) * shape.head_dim
