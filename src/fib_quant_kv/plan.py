"""A model's KV cache planned as contracts: shapes, layouts, a page geometry, and their sizes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from fib_quant_kv.contracts import Document
from fib_quant_kv.derive import canonical_layout, element_count, new_page_geometry, page_count
from fib_quant_kv.hf_config import (
    KvLayers,
    kv_layers_from_hf_config,
    load_config,
    shape_from_hf_config,
)
from fib_quant_kv.rules.geometry import F32_BYTES
from fib_quant_kv.verdict import digest
from fib_quant_kv_models import KvPageGeometryV1, KvTensorShapeV1

DTYPE_BYTES = {"f16": 2, "bf16": 2, "f32": 4}


@dataclass(frozen=True, slots=True)
class CacheSize:
    """The size of one cache (keys or values) before and after encoding into pages."""

    role: str
    elements: int
    source_bytes: int
    raw_f32_bytes: int
    # Pages for one (batch, layer, KV head) stream of tokens, as `page_count` counts them.
    pages_per_stream: int | None
    # Pages for the whole cache: every stream's.
    pages: int | None
    encoded_bytes: int | None
    # What the model's cache holds at the planned tokens: layers with a sliding window keep at
    # most that many tokens, so this can be less than the shape's (every KV layer, every token).
    held_elements: int | None = None
    held_source_bytes: int | None = None

    @property
    def compression(self) -> float | None:
        """Source bytes per encoded byte, when there is a page geometry."""
        return self.source_bytes / self.encoded_bytes if self.encoded_bytes else None


@dataclass(frozen=True, slots=True)
class Plan:
    """Validated documents (by file stem), their digests, and the size of each cache."""

    documents: dict[str, Document]
    digests: dict[str, str]
    sizes: list[CacheSize]
    # Every decoder layer of the model; the shapes' `layers` counts only `kv_layers`.
    layers: int = 0
    kv_layers: tuple[int, ...] = ()
    # The KV layers that keep at most `sliding_window` tokens, when the window is smaller
    # than the planned tokens (otherwise they hold every token, and this is empty).
    sliding_window: int | None = None
    windowed_layers: tuple[int, ...] = ()


def _size(shape: KvTensorShapeV1, geometry: KvPageGeometryV1 | None) -> CacheSize:
    elements = element_count(shape)
    per_stream = pages = encoded = None
    if geometry is not None:
        # Every (batch, layer, kv_head) stream of tokens is cut into fixed-size pages; a page
        # reserves one encoded block per token (one vector per block), padding included.
        streams = shape.batch * shape.layers * shape.kv_heads
        per_stream = page_count(geometry, shape)
        pages = streams * per_stream
        encoded = pages * geometry.tokens_per_page * geometry.encoded_block_bytes
    return CacheSize(
        role=str(shape.role),
        elements=elements,
        source_bytes=elements * DTYPE_BYTES[str(shape.dtype)],
        raw_f32_bytes=elements * F32_BYTES,
        pages_per_stream=per_stream,
        pages=pages,
        encoded_bytes=encoded,
    )


def _held(size: CacheSize, shape: KvTensorShapeV1, kv: KvLayers) -> CacheSize:
    per_token = shape.batch * shape.kv_heads * shape.head_dim
    elements = per_token * sum(kv.held_tokens(i, shape.tokens) for i in kv.kv_layers)
    return replace(
        size,
        held_elements=elements,
        held_source_bytes=elements * DTYPE_BYTES[str(shape.dtype)],
    )


def plan_from_hf_config(
    config: str | os.PathLike[str] | Mapping[str, Any],
    *,
    tokens: int,
    batch: int = 1,
    dtype: str | None = None,
    tokens_per_page: int | None = None,
    encoded_block_bytes: int | None = None,
) -> Plan:
    """Key and value shapes, their canonical layouts and (optionally) a page geometry."""
    if (tokens_per_page is None) != (encoded_block_bytes is None):
        raise TypeError("tokens_per_page and encoded_block_bytes go together: pass both or neither")
    config = load_config(config)  # a path is read once, for the shapes and the layers
    shapes = {
        role: shape_from_hf_config(config, role=role, tokens=tokens, batch=batch, dtype=dtype)
        for role in ("key", "value")
    }
    documents: dict[str, Document] = {}
    digests: dict[str, str] = {}
    for role, shape in shapes.items():
        layout = canonical_layout(shape)
        documents[f"{role}_shape"], documents[f"{role}_layout"] = shape, layout
        digests[f"{role}_shape"] = digest(shape)
        digests[f"{role}_layout"] = digest(layout, shape)
    geometry = None
    if tokens_per_page is not None and encoded_block_bytes is not None:
        key = shapes["key"]
        geometry = new_page_geometry(tokens_per_page, key.head_dim, encoded_block_bytes)
        digests["page_geometry"] = digest(geometry, key)  # validates it against the key shape
        documents["page_geometry"] = geometry
    kv = kv_layers_from_hf_config(config)
    windowed = tuple(i for i in kv.windowed_layers if kv.held_tokens(i, tokens) < tokens)
    return Plan(
        documents,
        digests,
        [_held(_size(shape, geometry), shape, kv) for shape in shapes.values()],
        layers=kv.layers,
        kv_layers=kv.kv_layers,
        sliding_window=kv.sliding_window if windowed else None,
        windowed_layers=windowed,
    )
