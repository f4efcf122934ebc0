"""From a Hugging Face `config.json` to the KV tensor shape of one of its caches."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Literal

from fib_quant_kv.codec.limits import MAX_DOCUMENT_BYTES
from fib_quant_kv.contracts import SHAPE_SCHEMA
from fib_quant_kv.errors import ConfigError, DependencyUnsupported, pointer
from fib_quant_kv.rules.geometry import U32_MAX
from fib_quant_kv.structure import from_fields
from fib_quant_kv.verdict import validate
from fib_quant_kv_models import KvTensorShapeV1

# Each count under the names model families use, first match wins.
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
QUERY_HEAD_KEYS = ("num_attention_heads", "n_head", "n_heads", "num_heads")
KV_HEAD_KEYS = ("num_key_value_heads", "num_kv_heads", "n_head_kv", "num_kv_heads_per_layer")
HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model")
DTYPE_KEYS = ("torch_dtype", "dtype")

DTYPES = {
    "float16": "f16",
    "half": "f16",
    "fp16": "f16",
    "f16": "f16",
    "bfloat16": "bf16",
    "bf16": "bf16",
    "float32": "f32",
    "float": "f32",
    "fp32": "f32",
    "f32": "f32",
}

# Counts a published config leaves to the model class's defaults, by model_type. Gemma 3's
# config.json, for one, names only the hidden size and layer count of its text model.
MODEL_DEFAULTS: dict[str, dict[str, int]] = {
    "gemma3_text": {"num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256},
}

Role = Literal["key", "value"]


def load_config(config: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """A config.json as a mapping, read with the document size limit."""
    if isinstance(config, Mapping):
        return dict(config)
    path = os.fspath(config)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", path=path) from None
    return parse_config(raw, path)


def parse_config(raw: bytes, path: str | None = None) -> dict[str, Any]:
    """The bytes of a config.json as a mapping."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ConfigError(f"larger than {MAX_DOCUMENT_BYTES} bytes", path=path)
    try:
        loaded = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"not JSON: {exc}", path=path) from None
    if not isinstance(loaded, dict):
        raise ConfigError("expected a JSON object", path=path)
    return loaded


def _count(
    config: Mapping[str, Any], keys: tuple[str, ...], where: tuple[str, ...]
) -> tuple[str, int] | None:
    for key in keys:
        value = config.get(key)
        if value is None:
            continue
        # Every count lands in a u32 field of the shape; say so at the config's own key.
        if type(value) is not int or not 1 <= value <= U32_MAX:
            raise ConfigError(
                f"{key} must be an integer in 1..={U32_MAX}, got {value!r}",
                pointer=pointer(*where, key),
            )
        return key, value
    return None


def _dtype(config: Mapping[str, Any], top: Mapping[str, Any], given: str | None) -> str:
    if given is not None:
        name = given
    else:
        found = next((c[k] for c in (config, top) for k in DTYPE_KEYS if c.get(k)), None)
        if found is None:
            raise ConfigError(
                "no torch_dtype in the config: pass dtype (f16, bf16 or f32)",
                pointer="/torch_dtype",
            )
        name = str(found)
    name = name.removeprefix("torch.")
    if name not in DTYPES:
        raise ConfigError(
            f"dtype {name!r} has no v1 equivalent: expected one of float16, bfloat16, float32",
            pointer="/torch_dtype",
        )
    return DTYPES[name]


def shape_from_hf_config(
    config: str | os.PathLike[str] | Mapping[str, Any],
    *,
    role: Role,
    tokens: int,
    batch: int = 1,
    dtype: str | None = None,
    rope_state: str | None = None,
) -> KvTensorShapeV1:
    """The validated KV tensor shape of a model's key or value cache, from its config.json.

    Counts are read under each family's names; a nested `text_config` (multimodal models) is
    the language model's. Without `num_key_value_heads` a model has as many KV heads as query
    heads, or one with `multi_query`. An explicit `head_dim` wins over hidden_size / heads.
    The attention kind follows from the counts. Keys default to post_rope (what a running
    cache holds; v1 has no state for keys of models without RoPE, such as GPT-2), values are
    not_applicable. What v1 cannot express is refused:
    DependencyUnsupported for latent attention, differing key and value head sizes or a
    fractional head size; ConfigError for what the config lacks.
    """
    top = load_config(config)
    where: tuple[str, ...] = ()
    model_config: Mapping[str, Any] = top
    if isinstance(top.get("text_config"), Mapping):
        model_config, where = top["text_config"], ("text_config",)
    defaults = MODEL_DEFAULTS.get(str(model_config.get("model_type")), {})
    model_config = {**defaults, **model_config}

    if model_config.get("kv_lora_rank") is not None:
        raise DependencyUnsupported(
            "latent attention (kv_lora_rank) caches one compressed latent per token, not per-head "
            "keys and values: the v1 shape cannot describe it",
            pointer=pointer(*where, "kv_lora_rank"),
        )
    layers = _count(model_config, LAYER_KEYS, where)
    heads = _count(model_config, QUERY_HEAD_KEYS, where)
    if layers is None or heads is None:
        missing = LAYER_KEYS if layers is None else QUERY_HEAD_KEYS
        raise ConfigError(
            f"no layer or head count: expected one of {', '.join(missing)}",
            pointer=pointer(*where, missing[0]),
        )
    query_heads = heads[1]
    kv = _count(model_config, KV_HEAD_KEYS, where)
    if kv is not None:
        kv_heads = kv[1]
    elif model_config.get("multi_query") is True:
        kv_heads = 1
    else:
        kv_heads = query_heads

    head_dim = _head_dim(model_config, query_heads, where)
    kind = "mha" if kv_heads == query_heads else "mqa" if kv_heads == 1 else "gqa"
    if rope_state is None:
        rope_state = "post_rope" if role == "key" else "not_applicable"
    shape = from_fields(
        KvTensorShapeV1,
        schema_version=SHAPE_SCHEMA,
        role=role,
        attention_kind=kind,
        batch=batch,
        layers=layers[1],
        kv_heads=kv_heads,
        query_heads=query_heads,
        tokens=tokens,
        head_dim=head_dim,
        dtype=_dtype(model_config, top, dtype),
        rope_state=rope_state,
    )
    validate(shape)
    return shape


def _head_dim(config: Mapping[str, Any], query_heads: int, where: tuple[str, ...]) -> int:
    explicit = _count(config, ("head_dim",), where)
    value_size = config.get("v_head_dim")
    key_size = None
    if config.get("qk_nope_head_dim") is not None or config.get("qk_rope_head_dim") is not None:
        key_size = (config.get("qk_nope_head_dim") or 0) + (config.get("qk_rope_head_dim") or 0)
    if explicit is not None:
        size = explicit[1]
    elif key_size is not None:
        size = key_size
    else:
        hidden = _count(config, HIDDEN_KEYS, where)
        if hidden is None:
            raise ConfigError(
                f"no head size: expected head_dim or one of {', '.join(HIDDEN_KEYS)}",
                pointer=pointer(*where, "head_dim"),
            )
        if hidden[1] % query_heads:
            raise DependencyUnsupported(
                f"{hidden[0]} {hidden[1]} / {query_heads} heads is not a whole head size: "
                "expected head_dim in the config",
                pointer=pointer(*where, hidden[0]),
            )
        size = hidden[1] // query_heads
    for name, other in (("v_head_dim", value_size), ("qk head size", key_size)):
        if other is not None and other != size:
            raise DependencyUnsupported(
                f"key and value head sizes differ ({name} {other}, head size {size}): "
                "a v1 shape has one head_dim for both",
                pointer=pointer(
                    *where, "v_head_dim" if name == "v_head_dim" else "qk_nope_head_dim"
                ),
            )
    return size
