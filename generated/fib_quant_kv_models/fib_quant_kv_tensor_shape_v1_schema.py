# Generated from schemas/*.schema.json by datamodel-code-generator. Do not edit by hand:
# change the schema (or add a new version beside it), then run `nox -s generate`.

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt


class KvRole(StrEnum):
    """
    Which attention cache: key or value.
    """

    key = "key"
    value = "value"


class KvAttentionKind(StrEnum):
    """
    Head sharing: mha (one KV head per query head), mqa (one KV head in all), gqa (query heads in equal groups per KV head).
    """

    mha = "mha"
    mqa = "mqa"
    gqa = "gqa"


class KvDtype(StrEnum):
    """
    Source element type.
    """

    f16 = "f16"
    bf16 = "bf16"
    f32 = "f32"


class KvRopeState(StrEnum):
    """
    Whether rotary position embedding was applied to the keys.
    """

    pre_rope = "pre_rope"
    post_rope = "post_rope"
    not_applicable = "not_applicable"


class KvTensorShapeV1(BaseModel):
    """
    The logical shape of one KV cache tensor (keys or values) of a model: counts, source dtype and RoPE state. Version 1.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
    )
    schema_version: Literal["fib_quant_kv_tensor_shape_v1"]
    """
    Schema marker; always fib_quant_kv_tensor_shape_v1.
    """
    role: KvRole
    """
    Which attention cache the tensor holds.
    """
    attention_kind: KvAttentionKind
    """
    How query heads share KV heads.
    """
    batch: Annotated[StrictInt, Field(ge=1, le=4294967295)]
    """
    Batch count; at least 1.
    """
    layers: Annotated[StrictInt, Field(ge=1, le=4294967295)]
    """
    Layer count; at least 1.
    """
    kv_heads: Annotated[StrictInt, Field(ge=1, le=4294967295)]
    """
    KV head count; at least 1.
    """
    query_heads: Annotated[StrictInt, Field(ge=1, le=4294967295)]
    """
    Query head count; at least 1.
    """
    tokens: Annotated[StrictInt, Field(ge=1, le=4294967295)]
    """
    Token count; at least 1.
    """
    head_dim: Annotated[StrictInt, Field(ge=1, le=4294967295)]
    """
    Channels per head; at least 1.
    """
    dtype: KvDtype
    """
    Element type of the source tensor.
    """
    rope_state: KvRopeState
    """
    RoPE state of the keys; not_applicable for values.
    """
