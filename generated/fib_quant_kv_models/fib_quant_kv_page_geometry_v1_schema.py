# Generated from schemas/*.schema.json by datamodel-code-generator. Do not edit by hand:
# change the schema (or add a new version beside it), then run `nox -s generate`.

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt


class KvPageGeometryV1(BaseModel):
    """
    The geometry of fixed-size encoded KV cache pages. Version 1.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
    )
    schema_version: Literal["fib_quant_kv_page_geometry_v1"]
    """
    Schema marker; always fib_quant_kv_page_geometry_v1.
    """
    tokens_per_page: Annotated[StrictInt, Field(ge=1, le=4294967295)]
    """
    Tokens per encoded page; at least 1 and at most the shape's tokens.
    """
    vectors_per_block: Annotated[StrictInt, Field(ge=0, le=4294967295)]
    """
    Logical vectors per encoded block; the reference codec serves only 1.
    """
    head_dim: Annotated[StrictInt, Field(ge=0, le=4294967295)]
    """
    Channels per logical vector; equal to the shape's head_dim.
    """
    encoded_block_bytes: Annotated[StrictInt, Field(ge=1, le=4294967295)]
    """
    Fixed encoded bytes reserved per block; at least 1.
    """
    raw_vector_bytes: Annotated[StrictInt, Field(ge=0, le=4294967295)]
    """
    Raw f32 bytes per logical vector: head_dim * 4, saturating at 4294967295.
    """
