# Generated from schemas/*.schema.json by datamodel-code-generator. Do not edit by hand:
# change the schema (or add a new version beside it), then run `nox -s generate`.

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt


class KvLayoutOrder(StrEnum):
    """
    Axis order; version 1 knows only [batch][layer][kv_head][token][head_dim].
    """

    batch_layer_head_token_dim = "batch_layer_head_token_dim"


class KvCacheLayoutV1(BaseModel):
    """
    The physical order of a KV cache tensor in memory, as scalar strides over [batch][layer][kv_head][token][head_dim]. Version 1.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
    )
    schema_version: Literal["fib_quant_kv_cache_layout_v1"]
    """
    Schema marker; always fib_quant_kv_cache_layout_v1.
    """
    shape_schema_version: Literal["fib_quant_kv_tensor_shape_v1"]
    """
    Schema marker of the shape this layout describes; always fib_quant_kv_tensor_shape_v1.
    """
    order: KvLayoutOrder
    """
    Physical order of the axes.
    """
    batch_stride: Annotated[StrictInt, Field(ge=0, le=18446744073709551615)]
    """
    Scalar stride of the batch axis, in elements.
    """
    layer_stride: Annotated[StrictInt, Field(ge=0, le=18446744073709551615)]
    """
    Scalar stride of the layer axis, in elements.
    """
    head_stride: Annotated[StrictInt, Field(ge=0, le=18446744073709551615)]
    """
    Scalar stride of the KV head axis, in elements.
    """
    token_stride: Annotated[StrictInt, Field(ge=0, le=18446744073709551615)]
    """
    Scalar stride of the token axis, in elements.
    """
    dim_stride: Annotated[StrictInt, Field(ge=0, le=18446744073709551615)]
    """
    Scalar stride of the head dimension, in elements.
    """
