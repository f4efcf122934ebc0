"""From a Hugging Face model config to the KV tensor shape of the cache its model really holds."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
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
QUERY_HEAD_KEYS = ("num_attention_heads", "n_head", "n_heads", "num_heads", "attention_heads")
KV_HEAD_KEYS = ("num_key_value_heads", "num_kv_heads", "n_head_kv", "num_kv_heads_per_layer")
HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model")
DTYPE_KEYS = ("torch_dtype", "dtype")

# Every spelling of a dtype that configs (and the two interfaces) use, to its v1 name. The
# command line builds its --dtype choices from these keys.
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

DTYPE_HELP = "give the dtype: --dtype on the command line, dtype= in Python (f16, bf16 or f32)"

Role = Literal["key", "value"]

# What each layer kind keeps, in transformers' words (and the older words configs still carry).
# A layer holds keys and values of every token, of a window of tokens, or none at all.
FULL, WINDOW, NONE = "F", "S", "N"
LAYER_KINDS = {
    "full_attention": FULL,
    "attention": FULL,
    "global": FULL,
    "global_attention": FULL,
    "hybrid": FULL,  # a state-space block followed by an attention block: the latter holds KV
    "sliding_attention": WINDOW,
    "chunked_attention": WINDOW,
    "local": WINDOW,
    "local_attention": WINDOW,
    "hybrid_sliding": WINDOW,
    "linear_attention": NONE,
    "mamba": NONE,
    "mamba2": NONE,
    "conv": NONE,
    "recurrent": NONE,
    "moe": NONE,
    "mlp": NONE,
    "dummy": NONE,
}
# Nemotron-H's hybrid_override_pattern: M mamba, * attention, - MLP, E mixture of experts.
PATTERN_CHARS = {"M": NONE, "*": FULL, "-": NONE, "E": NONE}


@dataclass(frozen=True, slots=True)
class Family:
    """What a family's config class fills in when a config leaves it out (transformers 5.24)."""

    defaults: Mapping[str, Any]
    # The layer kinds the class derives when the config names none, repeated over the layers.
    pattern: str | None = None
    # The layer kinds derived from the config's own keys, before the pattern is used.
    layers_rule: Callable[[Mapping[str, Any], int, tuple[str, ...]], str | None] | None = None


def _d(**defaults: Any) -> dict[str, Any]:
    return defaults


def _period_rule(
    period_key: str, offset_key: str, head: str = ""
) -> Callable[[Mapping[str, Any], int, tuple[str, ...]], str | None]:
    # Jamba and Zamba: layer i is an attention layer when i % period == offset (Zamba's first
    # three layers are fixed and the rule counts from the fourth).
    def rule(config: Mapping[str, Any], layers: int, where: tuple[str, ...]) -> str | None:
        period = _int(config, period_key, where)
        offset = _int(config, offset_key, where)
        body = "".join(FULL if i % period == offset else NONE for i in range(layers - len(head)))
        return (head + body)[:layers]

    return rule


def _max_window_rule(
    flag: bool,
) -> Callable[[Mapping[str, Any], int, tuple[str, ...]], str | None]:
    # Qwen2's classes drop sliding_window unless use_sliding_window (dots1 has no such flag),
    # then window the layers from max_window_layers on.
    def rule(config: Mapping[str, Any], layers: int, where: tuple[str, ...]) -> str | None:
        if (flag and not config.get("use_sliding_window")) or config.get("sliding_window") is None:
            return FULL * layers
        first = _int(config, "max_window_layers", where)
        return "".join(WINDOW if i >= first else FULL for i in range(layers))

    return rule


_qwen2_rule = _max_window_rule(flag=True)


def _smollm3_rule(config: Mapping[str, Any], layers: int, where: tuple[str, ...]) -> str | None:
    # SmolLM3 windows only its layers without RoPE (no_rope_layers[i] == 0).
    if not config.get("use_sliding_window") or config.get("sliding_window") is None:
        return FULL * layers
    no_rope = config.get("no_rope_layers")
    if no_rope is None:
        every = _int(config, "no_rope_layer_interval", where)
        no_rope = [int((i + 1) % every != 0) for i in range(layers)]
    if not isinstance(no_rope, list) or len(no_rope) != layers:
        raise ConfigError(
            f"no_rope_layers must list one 0 or 1 per layer, got {no_rope!r}",
            pointer=pointer(*where, "no_rope_layers"),
        )
    return "".join(FULL if has_rope else WINDOW for has_rope in no_rope)


def _bamba_rule(config: Mapping[str, Any], layers: int, where: tuple[str, ...]) -> str | None:
    indices = _indices(config, "attn_layer_indices", where) or set()
    return "".join(FULL if i in indices else NONE for i in range(layers))


def _lfm2_rule(config: Mapping[str, Any], layers: int, where: tuple[str, ...]) -> str | None:
    indices = _indices(config, "full_attn_idxs", where)
    if indices is None:
        return None
    return "".join(FULL if i in indices else NONE for i in range(layers))


def _minimax_rule(config: Mapping[str, Any], layers: int, where: tuple[str, ...]) -> str | None:
    # Older MiniMax configs list 0 (lightning, linear attention) or 1 (softmax) per layer.
    kinds = config.get("attn_type_list")
    if kinds is None:
        return None
    if not isinstance(kinds, list) or any(k not in (0, 1) for k in kinds):
        raise ConfigError(
            f"attn_type_list must be a list of 0 and 1, got {kinds!r}",
            pointer=pointer(*where, "attn_type_list"),
        )
    return "".join(FULL if k == 1 else NONE for k in kinds)


def _every_rule(
    key: str, other: str
) -> Callable[[Mapping[str, Any], int, tuple[str, ...]], str | None]:
    # Layer i attends to every token when (i + 1) % n == 0 and is `other` in between (Gemma's
    # and Cohere's sliding_window_pattern, Qwen3-Next's full_attention_interval).
    def rule(config: Mapping[str, Any], layers: int, where: tuple[str, ...]) -> str | None:
        if config.get(key) is None:
            return None
        every = _int(config, key, where)
        return "".join(FULL if (i + 1) % every == 0 else other for i in range(layers))

    return rule


_LLAMA = _d(num_hidden_layers=32, num_attention_heads=32, hidden_size=4096)

# The families whose caches the `transformers` test session compares with these derivations.
# Defaults are those of each config class; a pattern is the class's default `layer_types`.
FAMILIES: dict[str, Family] = {
    "afmoe": Family(
        _d(
            num_hidden_layers=32,
            num_attention_heads=16,
            num_key_value_heads=16,
            head_dim=128,
            hidden_size=2048,
            sliding_window=1024,
        ),
        "SSSF",
    ),
    "apertus": Family(_LLAMA),
    "arcee": Family(
        _d(num_hidden_layers=32, num_attention_heads=32, head_dim=80, hidden_size=2560)
    ),
    "aria_text": Family({**_LLAMA, "head_dim": 128}),
    "bamba": Family(
        # No attention layer unless attn_layer_indices names some.
        _d(
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            hidden_size=4096,
            attn_layer_indices=None,
        ),
        layers_rule=_bamba_rule,
    ),
    "bitnet": Family(
        _d(num_hidden_layers=30, num_attention_heads=20, num_key_value_heads=5, hidden_size=2560)
    ),
    "bloom": Family(_d(n_layer=2, n_head=8, hidden_size=64)),
    "codegen": Family(_d(n_layer=28, n_head=16, n_embd=4096)),
    "cohere": Family(_d(num_hidden_layers=40, num_attention_heads=64, hidden_size=8192)),
    "cohere2": Family(
        _d(
            num_hidden_layers=40,
            num_attention_heads=64,
            head_dim=128,
            hidden_size=8192,
            sliding_window=4096,
        ),
        "SSSF",
        _every_rule("sliding_window_pattern", WINDOW),
    ),
    "ctrl": Family(_d(n_layer=48, n_head=16, n_embd=1280)),
    "cwm": Family(
        _d(
            num_hidden_layers=64,
            num_attention_heads=48,
            num_key_value_heads=8,
            head_dim=128,
            hidden_size=6144,
            sliding_window=8192,
        ),
        "FSSS",
    ),
    "dbrx": Family(_d(n_layers=24, n_heads=16, d_model=2048)),
    "diffllama": Family(
        _d(num_hidden_layers=16, num_attention_heads=32, head_dim=64, hidden_size=2048)
    ),
    "doge": Family(_d(num_hidden_layers=32, num_attention_heads=8, hidden_size=1024)),
    "dots1": Family(
        _d(
            num_hidden_layers=62,
            num_attention_heads=32,
            hidden_size=4608,
            sliding_window=4096,
            max_window_layers=62,
        ),
        layers_rule=_max_window_rule(flag=False),
    ),
    "emu3": Family(
        _d(num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, hidden_size=4096)
    ),
    "ernie4_5": Family(
        _d(
            num_hidden_layers=18,
            num_attention_heads=16,
            num_key_value_heads=2,
            head_dim=128,
            hidden_size=1024,
        )
    ),
    "ernie4_5_moe": Family(
        _d(num_hidden_layers=28, num_attention_heads=20, num_key_value_heads=4, hidden_size=2560)
    ),
    "exaone": Family(
        _d(
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            head_dim=128,
            hidden_size=4096,
        )
    ),
    "exaone4": Family(
        _d(num_hidden_layers=32, num_attention_heads=32, hidden_size=4096, sliding_window=4096),
        "SSSF",
        _every_rule("sliding_window_pattern", WINDOW),
    ),
    "falcon": Family(
        _d(
            num_hidden_layers=32,
            num_attention_heads=71,
            hidden_size=4544,
            multi_query=True,
            new_decoder_architecture=False,
        )
    ),
    "falcon_h1": Family(
        _d(num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, hidden_size=4096)
    ),
    "flex_olmo": Family(_LLAMA),
    "fuyu": Family(_d(num_hidden_layers=36, num_attention_heads=64, hidden_size=4096)),
    "gemma": Family(
        _d(num_hidden_layers=28, num_attention_heads=16, head_dim=256, hidden_size=3072)
    ),
    "gemma2": Family(
        _d(
            num_hidden_layers=26,
            num_attention_heads=8,
            num_key_value_heads=4,
            head_dim=256,
            hidden_size=2304,
            sliding_window=4096,
        ),
        "SF",
    ),
    "gemma3_text": Family(
        _d(
            num_hidden_layers=26,
            num_attention_heads=8,
            num_key_value_heads=4,
            head_dim=256,
            hidden_size=2304,
            sliding_window=4096,
        ),
        "SSSSSF",
        _every_rule("sliding_window_pattern", WINDOW),
    ),
    "gemma3n_text": Family(
        _d(
            num_hidden_layers=35,
            num_attention_heads=8,
            num_key_value_heads=2,
            head_dim=256,
            hidden_size=2048,
            sliding_window=512,
            num_kv_shared_layers=15,
        ),
        "SSSSF",
    ),
    "gemma4_text": Family(
        _d(
            num_hidden_layers=30,
            num_attention_heads=8,
            num_key_value_heads=4,
            head_dim=256,
            hidden_size=2304,
            sliding_window=512,
            num_kv_shared_layers=0,
            global_head_dim=512,
        ),
        "SSSSSF",
    ),
    "glm": Family(
        _d(
            num_hidden_layers=40,
            num_attention_heads=32,
            num_key_value_heads=2,
            head_dim=128,
            hidden_size=4096,
        )
    ),
    "glm4": Family(
        _d(
            num_hidden_layers=40,
            num_attention_heads=32,
            num_key_value_heads=2,
            head_dim=128,
            hidden_size=4096,
        )
    ),
    "glm4_moe": Family(
        _d(num_hidden_layers=46, num_attention_heads=96, num_key_value_heads=8, hidden_size=4096)
    ),
    "glm4_moe_lite": Family(
        _d(
            num_hidden_layers=47,
            num_attention_heads=20,
            hidden_size=2048,
            kv_lora_rank=512,
            v_head_dim=256,
            qk_nope_head_dim=192,
            qk_rope_head_dim=64,
        )
    ),
    "gpt2": Family(_d(n_layer=12, n_head=12, n_embd=768)),
    "gpt_bigcode": Family(_d(n_layer=12, n_head=12, n_embd=768, multi_query=True)),
    "gpt_neo": Family(_d(num_layers=24, num_heads=16, hidden_size=2048)),
    "gpt_neox": Family(_d(num_hidden_layers=44, num_attention_heads=64, hidden_size=6144)),
    "gpt_neox_japanese": Family(_d(num_hidden_layers=32, num_attention_heads=32, hidden_size=2560)),
    "gpt_oss": Family(
        _d(
            num_hidden_layers=36,
            num_attention_heads=64,
            num_key_value_heads=8,
            head_dim=64,
            hidden_size=2880,
            sliding_window=128,
        ),
        "SF",
    ),
    "gptj": Family(_d(n_layer=28, n_head=16, n_embd=4096)),
    "granite": Family(_LLAMA),
    "granite_swa": Family(
        _d(
            num_hidden_layers=24,
            num_attention_heads=20,
            num_key_value_heads=4,
            hidden_size=2560,
            sliding_window=128,
        ),
        "FSSS",
    ),
    "granitemoe": Family(_LLAMA),
    "granitemoehybrid": Family(_LLAMA, "N"),
    "granitemoeshared": Family(_LLAMA),
    "helium": Family(
        _d(num_hidden_layers=24, num_attention_heads=20, head_dim=128, hidden_size=2560)
    ),
    "hunyuan_v1_dense": Family(_LLAMA),
    "hunyuan_v1_moe": Family(_LLAMA),
    "hyperclovax": Family({**_LLAMA, "head_dim": 128}),
    "internlm3": Family(
        _d(
            num_hidden_layers=48,
            num_attention_heads=32,
            num_key_value_heads=2,
            head_dim=128,
            hidden_size=4096,
        )
    ),
    "jais2": Family(
        _d(num_hidden_layers=32, num_attention_heads=26, head_dim=128, hidden_size=3328)
    ),
    "jamba": Family(
        _d(
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            hidden_size=4096,
            attn_layer_period=8,
            attn_layer_offset=4,
        ),
        layers_rule=_period_rule("attn_layer_period", "attn_layer_offset"),
    ),
    "jetmoe": Family(
        _d(
            num_hidden_layers=12,
            num_key_value_heads=16,
            kv_channels=128,
            hidden_size=2048,
            num_experts_per_tok=2,
        )
    ),
    "kolibri1": Family(
        _d(
            num_hidden_layers=50,
            num_attention_heads=48,
            num_key_value_heads=4,
            head_dim=128,
            hidden_size=2560,
            sliding_window=513,
        ),
        "SSSSF",
    ),
    "lfm2": Family(
        _d(num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, hidden_size=2560),
        "F",
        _lfm2_rule,
    ),
    "lfm2_moe": Family(
        _d(num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, hidden_size=2048),
        layers_rule=_lfm2_rule,
    ),
    "llama": Family({**_LLAMA, "head_dim": 128}),
    "llama4_text": Family(
        _d(
            num_hidden_layers=48,
            num_attention_heads=40,
            num_key_value_heads=8,
            head_dim=128,
            hidden_size=5120,
            attention_chunk_size=8192,
        ),
        "SSSF",
    ),
    "minicpm3": Family(
        _d(
            num_hidden_layers=62,
            num_attention_heads=40,
            head_dim=32,
            hidden_size=2560,
            kv_lora_rank=256,
            v_head_dim=64,
            qk_nope_head_dim=64,
            qk_rope_head_dim=32,
        )
    ),
    "minimax": Family(
        _d(num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, hidden_size=4096),
        "FN",
        _minimax_rule,
    ),
    "ministral": Family(
        _d(
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            hidden_size=4096,
            sliding_window=4096,
        ),
        "S",
    ),
    "ministral3": Family(
        _d(
            num_hidden_layers=34,
            num_attention_heads=32,
            num_key_value_heads=8,
            head_dim=128,
            hidden_size=4096,
        )
    ),
    "mistral": Family(
        _d(
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            head_dim=128,
            hidden_size=4096,
            sliding_window=4096,
        )
    ),
    "mixtral": Family(
        _d(num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, hidden_size=4096)
    ),
    "mpt": Family(_d(n_layers=24, n_heads=16, d_model=2048)),
    "nanochat": Family(_d(num_hidden_layers=12, num_attention_heads=6, hidden_size=768)),
    "nemotron": Family(
        _d(num_hidden_layers=32, num_attention_heads=48, head_dim=128, hidden_size=6144)
    ),
    "nemotron_h": Family(
        _d(
            num_attention_heads=32,
            num_key_value_heads=8,
            head_dim=128,
            hidden_size=4096,
            layers_block_type=["linear_attention", "moe", "full_attention", "mlp"],
        ),
    ),
    "olmo": Family(_LLAMA),
    "olmo2": Family(_LLAMA),
    "olmo3": Family({**_LLAMA, "sliding_window": 4096}, "SSSF"),
    "olmo_hybrid": Family(
        _d(num_hidden_layers=32, num_attention_heads=30, hidden_size=3840), "NNNF"
    ),
    "olmoe": Family(_d(num_hidden_layers=16, num_attention_heads=16, hidden_size=2048)),
    "opt": Family(_d(num_hidden_layers=12, num_attention_heads=12, hidden_size=768)),
    "persimmon": Family(_d(num_hidden_layers=36, num_attention_heads=64, hidden_size=4096)),
    "phi": Family(_d(num_hidden_layers=24, num_attention_heads=32, hidden_size=2048)),
    "phi3": Family(_d(num_hidden_layers=32, num_attention_heads=32, hidden_size=3072)),
    "phimoe": Family(
        _d(num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, hidden_size=4096)
    ),
    "qwen2": Family(
        {**_LLAMA, "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 28},
        layers_rule=_qwen2_rule,
    ),
    "qwen2_moe": Family(
        _d(
            num_hidden_layers=24,
            num_attention_heads=16,
            hidden_size=2048,
            use_sliding_window=False,
            sliding_window=4096,
            max_window_layers=28,
        ),
        layers_rule=_qwen2_rule,
    ),
    "qwen3": Family(
        {
            **_LLAMA,
            "head_dim": 128,
            "use_sliding_window": False,
            "sliding_window": 4096,
            "max_window_layers": 28,
        },
        layers_rule=_qwen2_rule,
    ),
    "qwen3_5_text": Family(
        _d(
            num_hidden_layers=32,
            num_attention_heads=16,
            num_key_value_heads=4,
            head_dim=256,
            hidden_size=4096,
        ),
        "NNNF",
    ),
    "qwen3_moe": Family(
        _d(
            num_hidden_layers=24,
            num_attention_heads=32,
            num_key_value_heads=4,
            hidden_size=2048,
            use_sliding_window=False,
            sliding_window=4096,
        ),
    ),
    "qwen3_next": Family(
        _d(
            num_hidden_layers=48,
            num_attention_heads=16,
            num_key_value_heads=2,
            head_dim=256,
            hidden_size=2048,
        ),
        "NNNF",
        _every_rule("full_attention_interval", NONE),
    ),
    "recurrent_gemma": Family(
        _d(
            num_hidden_layers=26,
            num_attention_heads=10,
            head_dim=256,
            hidden_size=2560,
            attention_window_size=2048,
            block_types=["recurrent", "recurrent", "attention"],
        ),
    ),
    "sarvam_mla": Family(
        _d(
            num_hidden_layers=32,
            num_attention_heads=64,
            head_dim=64,
            hidden_size=4096,
            kv_lora_rank=512,
            v_head_dim=128,
            qk_nope_head_dim=128,
            qk_rope_head_dim=64,
        )
    ),
    "seed_oss": Family(
        _d(
            num_hidden_layers=64,
            num_attention_heads=80,
            num_key_value_heads=8,
            head_dim=128,
            hidden_size=4096,
        )
    ),
    "smollm3": Family(
        _d(
            num_hidden_layers=36,
            num_attention_heads=16,
            num_key_value_heads=4,
            hidden_size=2048,
            use_sliding_window=False,
            no_rope_layer_interval=4,
        ),
        layers_rule=_smollm3_rule,
    ),
    "solar_open": Family(
        _d(
            num_hidden_layers=48,
            num_attention_heads=64,
            num_key_value_heads=8,
            head_dim=128,
            hidden_size=4096,
        )
    ),
    "stablelm": Family(_d(num_hidden_layers=32, num_attention_heads=32, hidden_size=2560)),
    "starcoder2": Family(
        _d(num_hidden_layers=30, num_attention_heads=24, num_key_value_heads=2, hidden_size=3072)
    ),
    "vaultgemma": Family(
        _d(
            num_hidden_layers=26,
            num_attention_heads=8,
            num_key_value_heads=4,
            head_dim=256,
            hidden_size=2304,
            sliding_window=4096,
        ),
        "SF",
    ),
    "xglm": Family(_d(num_layers=24, attention_heads=16, d_model=1024)),
    "zamba": Family(
        _d(
            num_hidden_layers=76,
            num_attention_heads=16,
            hidden_size=3712,
            attn_layer_period=6,
            attn_layer_offset=4,
        ),
        layers_rule=_period_rule("attn_layer_period", "attn_layer_offset", head="NNF"),
    ),
    "zamba2": Family(
        _d(num_hidden_layers=54, num_attention_heads=32, hidden_size=2560),
        NONE + (NONE * 5 + FULL) * 7 + NONE * 4 + FULL + NONE * 3 + FULL + NONE * 2,
    ),
    "biogpt": Family(_d(num_hidden_layers=24, num_attention_heads=16, hidden_size=1024)),
    "mimo_v2_flash": Family(
        _d(
            num_hidden_layers=48,
            num_attention_heads=64,
            num_key_value_heads=4,
            head_dim=192,
            hidden_size=4096,
            sliding_window=129,
            v_head_dim=128,
        ),
    ),
}
# The multimodal configs whose language model is one of the above, under text_config.
FAMILIES["cohere2_moe"] = FAMILIES["cohere2"]
FAMILIES["gemma3"] = FAMILIES["gemma3_text"]
FAMILIES["gemma3n"] = FAMILIES["gemma3n_text"]
FAMILIES["gemma4"] = FAMILIES["gemma4_text"]

# Per-layer settings that make one layer's cache differ from another's.
PER_LAYER_SIZES = ("head_dim", "num_key_value_heads", "v_head_dim", "num_attention_heads")


@dataclass(frozen=True, slots=True)
class KvLayers:
    """Which layers of a model hold keys and values, and the heads and head size they share."""

    model_type: str | None
    # One letter per decoder layer: F keeps every token, S a window of tokens, N no KV at all.
    kinds: str
    sliding_window: int | None
    query_heads: int
    kv_heads: int
    head_dim: int

    @property
    def layers(self) -> int:
        """Every decoder layer of the model."""
        return len(self.kinds)

    @property
    def kv_layers(self) -> tuple[int, ...]:
        """The layers that hold keys and values, by index."""
        return tuple(i for i, kind in enumerate(self.kinds) if kind != NONE)

    @property
    def windowed_layers(self) -> tuple[int, ...]:
        """The KV layers that keep only the last `sliding_window` tokens."""
        return tuple(i for i, kind in enumerate(self.kinds) if kind == WINDOW)

    def held_tokens(self, layer: int, tokens: int) -> int:
        """At most how many of `tokens` tokens a layer keeps (0 for a layer without KV)."""
        kind = self.kinds[layer]
        if kind == NONE:
            return 0
        if kind == WINDOW and self.sliding_window is not None:
            return min(tokens, self.sliding_window)
        return tokens


def load_config(config: str | os.PathLike[str] | Mapping[str, Any] | Any) -> dict[str, Any]:
    """A config as a mapping: a config.json path (read with the document size limit), a
    mapping, or a transformers config object (its `to_dict()`; transformers is not needed
    to call this with anything else)."""
    if isinstance(config, Mapping):
        return dict(config)
    if isinstance(config, str | os.PathLike):
        path = os.fspath(config)
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_DOCUMENT_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", path=path) from None
        return parse_config(raw, path)
    to_dict = getattr(config, "to_dict", None)
    if callable(to_dict):
        loaded = to_dict()
        if isinstance(loaded, Mapping):
            return dict(loaded)
    raise TypeError(
        "config must be a path, a mapping or a transformers config object, "
        f"got {type(config).__name__}"
    )


def parse_config(raw: bytes, path: str | None = None) -> dict[str, Any]:
    """The bytes of a config.json as a mapping."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ConfigError(f"larger than {MAX_DOCUMENT_BYTES} bytes", path=path)
    # The standard parser, not the contracts' strict one: a config is transformers' to judge,
    # and it reads configs this way. Its errors are said as the contracts' codec says them.
    try:
        loaded = json.loads(raw)
    except UnicodeDecodeError as exc:
        message = f"invalid {exc.encoding.upper()} at byte {exc.start}: expected JSON text"
        raise ConfigError(message, path=path) from None
    except json.JSONDecodeError as exc:
        message = f"not JSON at line {exc.lineno} column {exc.colno}: {exc.msg.lower()}"
        raise ConfigError(message, path=path) from None
    except RecursionError:
        raise ConfigError("not JSON this parser can read: nested too deeply", path=path) from None
    if not isinstance(loaded, dict):
        raise ConfigError("expected a JSON object", path=path)
    return loaded


def _check_count(value: Any, key: str, where: tuple[str, ...]) -> int:
    # Every count lands in a u32 field of the shape; say so at the config's own key.
    if type(value) is not int or not 1 <= value <= U32_MAX:
        raise ConfigError(
            f"{key} must be an integer in 1..={U32_MAX}, got {value!r}",
            pointer=pointer(*where, key),
        )
    return value


def _count(
    config: Mapping[str, Any], keys: tuple[str, ...], where: tuple[str, ...]
) -> tuple[str, int] | None:
    for key in keys:
        value = config.get(key)
        if value is not None:
            return key, _check_count(value, key, where)
    return None


def _int(config: Mapping[str, Any], key: str, where: tuple[str, ...]) -> int:
    value = config.get(key)
    if type(value) is not int or value < 0:
        raise ConfigError(
            f"{key} must be a non-negative integer, got {value!r}", pointer=pointer(*where, key)
        )
    return value


def _indices(config: Mapping[str, Any], key: str, where: tuple[str, ...]) -> set[int] | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or any(type(i) is not int for i in value):
        raise ConfigError(
            f"{key} must be a list of layer indices, got {value!r}", pointer=pointer(*where, key)
        )
    return set(value)


def _dtype(
    config: Mapping[str, Any], top: Mapping[str, Any], given: str | None, where: tuple[str, ...]
) -> str:
    if given is not None:
        name = given.removeprefix("torch.")
        if name not in DTYPES:
            raise ConfigError(
                f"dtype {given!r} has no v1 equivalent: expected one of {', '.join(DTYPES)}",
                pointer="/dtype",
            )
        return DTYPES[name]
    # The language model's own dtype wins over the outer config's.
    for scope, at in ((config, where), (top, ())):
        found = {k: scope[k] for k in DTYPE_KEYS if scope.get(k) is not None}
        if not found:
            continue
        names = {k: str(v).removeprefix("torch.") for k, v in found.items()}
        for key, name in names.items():
            if name not in DTYPES:
                raise ConfigError(
                    f"{key} {name!r} has no v1 equivalent: expected one of float16, bfloat16, "
                    f"float32, or {DTYPE_HELP}",
                    pointer=pointer(*at, key),
                )
        if len({DTYPES[n] for n in names.values()}) > 1:
            raise ConfigError(
                f"torch_dtype {names['torch_dtype']!r} and dtype {names['dtype']!r} disagree: "
                f"keep one of them, or {DTYPE_HELP}",
                pointer=pointer(*at, "dtype"),
            )
        return DTYPES[next(iter(names.values()))]
    raise ConfigError(
        f"no torch_dtype or dtype in the config: {DTYPE_HELP}",
        pointer=pointer(*where, "torch_dtype"),
    )


def _language_model(
    top: Mapping[str, Any],
) -> tuple[Mapping[str, Any], tuple[str, ...], str | None]:
    # A multimodal config keeps its language model under text_config; the outer model_type
    # names the pair (gemma3), the inner one the language model (gemma3_text).
    config: Mapping[str, Any] = top
    where: tuple[str, ...] = ()
    if isinstance(top.get("text_config"), Mapping):
        config, where = top["text_config"], ("text_config",)
    model_type = config.get("model_type") or top.get("model_type")
    return config, where, str(model_type) if model_type else None


def kv_layers_from_hf_config(
    config: str | os.PathLike[str] | Mapping[str, Any] | Any,
) -> KvLayers:
    """Which layers of the model hold keys and values, with their heads and head size.

    The config is read as transformers reads it: each family's names, nested text_config,
    defaults and layer pattern (layer_types, layers_block_type, hybrid_override_pattern,
    block_types, attn_layer_period/attn_layer_offset, attn_layer_indices, full_attn_idxs,
    sliding_window_pattern, num_kv_shared_layers, ...). A cache whose layers differ in head
    size, KV heads or key/value sizes is refused (DependencyUnsupported), as is latent
    attention; what the config lacks or contradicts is a ConfigError at its key.
    """
    return _kv_layers(load_config(config))[0]


def _kv_layers(top: Mapping[str, Any]) -> tuple[KvLayers, Mapping[str, Any], tuple[str, ...]]:
    raw, where, model_type = _language_model(top)
    family = FAMILIES.get(model_type or "")
    # A key the config states, even as null, is the config's; only absent keys take the
    # class default (null sliding_window means no window, not the default window).
    config: dict[str, Any] = {**(family.defaults if family else {}), **raw}

    if config.get("kv_lora_rank") is not None:
        raise DependencyUnsupported(
            "latent attention (kv_lora_rank) caches one compressed latent per token, not per-head "
            "keys and values: the v1 shape cannot describe it",
            pointer=pointer(*where, "kv_lora_rank"),
        )
    kinds, pattern_key = _layer_kinds(config, raw.keys(), family, where)
    query_heads, kv_heads, kv_key = _heads(config, model_type, where)
    if query_heads % kv_heads:
        raise ConfigError(
            f"{query_heads} query heads cannot share {kv_heads} KV heads evenly: the query head "
            f"count must be a multiple of {kv_key.rsplit('/', 1)[-1]}",
            pointer=kv_key,
        )
    head_dim = _head_dim(config, model_type, query_heads, where)
    _refuse_differing_layers(config, kinds, head_dim, kv_heads, where)
    if NONE * len(kinds) == kinds:
        raise DependencyUnsupported(
            f"no layer holds keys and values (every layer keeps a state instead, by "
            f"{pattern_key}): a v1 shape needs at least one KV layer",
            pointer=pointer(*where, pattern_key),
        )
    window = None
    if WINDOW in kinds:
        window_key = next(
            (
                k
                for k in ("sliding_window", "attention_chunk_size", "attention_window_size")
                if config.get(k) is not None
            ),
            None,
        )
        if window_key is None:
            raise ConfigError(
                f"windowed layers (by {pattern_key}) but no sliding_window",
                pointer=pointer(*where, "sliding_window"),
            )
        window = _check_count(config[window_key], window_key, where)
    layers = KvLayers(model_type, kinds, window, query_heads, kv_heads, head_dim)
    return layers, config, where


def _layer_kinds(
    config: Mapping[str, Any],
    stated: Collection[str],
    family: Family | None,
    where: tuple[str, ...],
) -> tuple[str, str]:
    """One kind per layer, and the key that decided them."""
    # A list the config states wins; the class's default list gives way to the older
    # hybrid_override_pattern (Nemotron-H), as the class does.
    listed = next(
        (
            k
            for k in ("layer_types", "layers_block_type")
            if config.get(k) is not None
            and (k in stated or config.get("hybrid_override_pattern") is None)
        ),
        None,
    )
    counted = _count(config, LAYER_KEYS, where)
    if listed is not None:
        names = config[listed]
        if not isinstance(names, list) or not names:
            raise ConfigError(
                f"{listed} must be a list of layer types, got {names!r}",
                pointer=pointer(*where, listed),
            )
        kinds = ""
        for i, name in enumerate(names):
            if name not in LAYER_KINDS:
                raise DependencyUnsupported(
                    f"layer type {name!r} is not one whose cache is known: expected one of "
                    f"{', '.join(LAYER_KINDS)}",
                    pointer=pointer(*where, listed, i),
                )
            kinds += LAYER_KINDS[name]
        # Nemotron-H counts its layers by its list; elsewhere the two must agree.
        if counted is not None and counted[1] != len(kinds) and listed == "layer_types":
            raise ConfigError(
                f"{listed} lists {len(kinds)} layers but {counted[0]} is {counted[1]}",
                pointer=pointer(*where, listed),
            )
        return _shared(config, kinds, where), listed
    pattern = config.get("hybrid_override_pattern")
    if pattern is not None:
        if not isinstance(pattern, str) or not pattern or set(pattern) - set(PATTERN_CHARS):
            raise ConfigError(
                f"hybrid_override_pattern must be a string of {''.join(PATTERN_CHARS)}, "
                f"got {pattern!r}",
                pointer=pointer(*where, "hybrid_override_pattern"),
            )
        return _shared(config, "".join(PATTERN_CHARS[c] for c in pattern), where), (
            "hybrid_override_pattern"
        )
    if counted is None:
        raise ConfigError(
            f"no layer count: expected one of {', '.join(LAYER_KEYS)}",
            pointer=pointer(*where, LAYER_KEYS[0]),
        )
    layers = counted[1]
    blocks = config.get("block_types")
    if blocks is not None:
        # RecurrentGemma repeats its block types over the layers; attention blocks are local.
        if not isinstance(blocks, list) or not blocks or set(blocks) - {"recurrent", "attention"}:
            raise ConfigError(
                f"block_types must be a list of recurrent and attention, got {blocks!r}",
                pointer=pointer(*where, "block_types"),
            )
        kinds = "".join(
            NONE if blocks[i % len(blocks)] == "recurrent" else WINDOW for i in range(layers)
        )
        return _shared(config, kinds, where), "block_types"
    if family is not None and family.layers_rule is not None:
        ruled = family.layers_rule(config, layers, where)
        if ruled is not None:
            return _shared(config, ruled, where), _rule_key(config)
    if family is not None and family.pattern is not None:
        unit = family.pattern
        kinds = "".join(unit[i % len(unit)] for i in range(layers))
        if config.get("global_head_dim") is not None and kinds[-1] != FULL:
            # Gemma 4 makes its last layer a full-attention one whatever the pattern says.
            kinds = kinds[:-1] + FULL
        return _shared(config, kinds, where), "layer_types"
    # A family without layer types: a sliding_window applies to every layer.
    windowed = config.get("sliding_window") is not None and config.get("use_sliding_window", True)
    return _shared(config, (WINDOW if windowed else FULL) * layers, where), "layer_types"


def _rule_key(config: Mapping[str, Any]) -> str:
    for key in (
        "attn_layer_indices",
        "full_attn_idxs",
        "attn_type_list",
        "attn_layer_period",
        "sliding_window_pattern",
        "full_attention_interval",
        "max_window_layers",
    ):
        if key in config:
            return key
    return "layer_types"


def _shared(config: Mapping[str, Any], kinds: str, where: tuple[str, ...]) -> str:
    # Layers that reuse an earlier layer's keys and values store none of their own: the last
    # num_kv_shared_layers (Gemma 3n, Gemma 4), or those kv_sharing_modes marks "reuse".
    shared = config.get("num_kv_shared_layers")
    if shared:
        count = _int(config, "num_kv_shared_layers", where)
        if count > len(kinds):
            raise ConfigError(
                f"num_kv_shared_layers {count} is more than the {len(kinds)} layers",
                pointer=pointer(*where, "num_kv_shared_layers"),
            )
        kinds = kinds[: len(kinds) - count] + NONE * count
    modes = config.get("kv_sharing_modes")
    if isinstance(modes, list):
        kinds = "".join(
            NONE if mode == "reuse" else k for k, mode in zip(kinds, modes, strict=False)
        )
    return kinds


def _heads(
    config: Mapping[str, Any], model_type: str | None, where: tuple[str, ...]
) -> tuple[int, int, str]:
    """Query heads, KV heads in the cache, and the pointer of the key that gave the latter."""
    if model_type == "jetmoe":
        # JetMoE's attention experts: each KV head serves num_experts_per_tok query heads,
        # and the class computes num_attention_heads from the two.
        kv = _check_count(config.get("num_key_value_heads"), "num_key_value_heads", where)
        top_k = _check_count(config.get("num_experts_per_tok"), "num_experts_per_tok", where)
        return kv * top_k, kv, pointer(*where, "num_key_value_heads")
    heads = _count(config, QUERY_HEAD_KEYS, where)
    if heads is None:
        raise ConfigError(
            f"no head count: expected one of {', '.join(QUERY_HEAD_KEYS)}",
            pointer=pointer(*where, QUERY_HEAD_KEYS[0]),
        )
    query_heads = heads[1]
    if model_type == "dbrx":
        attn = config.get("attn_config")
        attn = attn if isinstance(attn, Mapping) else {}
        kv_heads = _check_count(attn.get("kv_n_heads", 1), "kv_n_heads", (*where, "attn_config"))
        return query_heads, kv_heads, pointer(*where, "attn_config", "kv_n_heads")
    if model_type == "falcon":
        # Falcon's new decoder architecture broadcasts its KV heads to every query head before
        # caching; the older one has one KV head with multi_query, whatever num_kv_heads says.
        if config.get("new_decoder_architecture"):
            return query_heads, query_heads, pointer(*where, "new_decoder_architecture")
        if config.get("multi_query"):
            return query_heads, 1, pointer(*where, "multi_query")
    if model_type == "gpt_bigcode":
        # GPTBigCode computes num_key_value_heads from multi_query and ignores a stated one.
        multi = bool(config.get("multi_query"))
        return query_heads, 1 if multi else query_heads, pointer(*where, "multi_query")
    kv_count = _count(config, KV_HEAD_KEYS, where)
    if kv_count is not None:
        return query_heads, kv_count[1], pointer(*where, kv_count[0])
    if config.get("multi_query") is True:
        return query_heads, 1, pointer(*where, "multi_query")
    return query_heads, query_heads, pointer(*where, heads[0])


def _head_dim(
    config: Mapping[str, Any], model_type: str | None, query_heads: int, where: tuple[str, ...]
) -> int:
    hidden = _count(config, HIDDEN_KEYS, where)
    if model_type == "zamba2" or (
        model_type == "zamba" and config.get("attention_head_dim") is None
    ):
        # Zamba's attention runs on the concatenation of the hidden state and the original
        # embeddings: twice the hidden size, split over the heads.
        if hidden is None:
            raise ConfigError("no hidden_size", pointer=pointer(*where, "hidden_size"))
        return _whole(2 * hidden[1], query_heads, f"2 x {hidden[0]}", pointer(*where, hidden[0]))
    size_keys: tuple[str, ...] = ("head_dim", "attention_head_dim", "kv_channels")
    if model_type == "jetmoe":
        size_keys = ("kv_channels",)
    explicit = _count(config, size_keys, where)
    value_size = config.get("v_head_dim")
    key_size = None
    if config.get("qk_nope_head_dim") is not None or config.get("qk_rope_head_dim") is not None:
        key_size = (config.get("qk_nope_head_dim") or 0) + (config.get("qk_rope_head_dim") or 0)
    if explicit is not None:
        size = explicit[1]
    elif key_size is not None:
        size = key_size
    else:
        if hidden is None:
            raise ConfigError(
                f"no head size: expected head_dim or one of {', '.join(HIDDEN_KEYS)}",
                pointer=pointer(*where, "head_dim"),
            )
        size = _whole(hidden[1], query_heads, hidden[0], pointer(*where, hidden[0]))
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


def _whole(total: int, heads: int, what: str, at: str) -> int:
    if total % heads:
        raise DependencyUnsupported(
            f"{what} {total} / {heads} heads is not a whole head size: expected head_dim in the "
            "config",
            pointer=at,
        )
    return total // heads


def _refuse_differing_layers(
    config: Mapping[str, Any], kinds: str, head_dim: int, kv_heads: int, where: tuple[str, ...]
) -> None:
    """Refuse a cache whose KV layers differ in head size, KV heads or key/value sizes."""
    base = {"head_dim": head_dim, "num_key_value_heads": kv_heads}
    per_layer = config.get("per_layer_config")
    if isinstance(per_layer, Mapping):
        for index, overrides in per_layer.items():
            if not isinstance(overrides, Mapping):
                continue
            layer = int(index) if str(index).isdigit() else -1
            if 0 <= layer < len(kinds) and kinds[layer] == NONE:
                continue
            for key in PER_LAYER_SIZES:
                if key in overrides and overrides[key] != base.get(key, config.get(key)):
                    raise DependencyUnsupported(
                        f"layer {index} has its own {key} {overrides[key]!r} (the others "
                        f"{base.get(key, config.get(key))!r}): a v1 shape has one for every layer",
                        pointer=pointer(*where, "per_layer_config", str(index), key),
                    )
        return
    global_size = config.get("global_head_dim")
    if global_size is not None and global_size != head_dim and FULL in kinds:
        raise DependencyUnsupported(
            f"full-attention layers use global_head_dim {global_size!r}, the others head_dim "
            f"{head_dim}: a v1 shape has one head_dim for every layer",
            pointer=pointer(*where, "global_head_dim"),
        )


def shape_from_hf_config(
    config: str | os.PathLike[str] | Mapping[str, Any] | Any,
    *,
    role: Role,
    tokens: int,
    batch: int = 1,
    dtype: str | None = None,
    rope_state: str | None = None,
) -> KvTensorShapeV1:
    """The validated KV tensor shape of a model's key or value cache, from its config.

    `config` is a config.json path, its mapping, or a transformers config object. The shape's
    `layers` counts the layers that hold keys and values (see `kv_layers_from_hf_config`);
    every one of them is described as holding `tokens` tokens. The attention kind follows from
    the counts. Keys default to post_rope (what a running cache holds; v1 has no state for keys
    of models without RoPE, such as GPT-2), values are not_applicable. What v1 cannot express
    is refused: DependencyUnsupported for latent attention, differing key and value head sizes,
    layers that differ from one another, a model without KV layers or a fractional head size;
    ConfigError for what the config lacks or contradicts.
    """
    top = load_config(config)
    layers, model_config, where = _kv_layers(top)
    if rope_state is None:
        rope_state = "post_rope" if role == "key" else "not_applicable"
    return _build_shape(
        role=role,
        batch=batch,
        layers=len(layers.kv_layers),
        kv_heads=layers.kv_heads,
        query_heads=layers.query_heads,
        tokens=tokens,
        head_dim=layers.head_dim,
        dtype=_dtype(model_config, top, dtype, where),
        rope_state=rope_state,
    )


def _build_shape(
    *,
    role: str,
    batch: int,
    layers: int,
    kv_heads: int,
    query_heads: int,
    tokens: int,
    head_dim: int,
    dtype: str,
    rope_state: str,
) -> KvTensorShapeV1:
    """Build the KvTensorShapeV1 from derived fields and validate it: the one place both happen."""
    kind = "mha" if kv_heads == query_heads else "mqa" if kv_heads == 1 else "gqa"
    shape = from_fields(
        KvTensorShapeV1,
        schema_version=SHAPE_SCHEMA,
        role=role,
        attention_kind=kind,
        batch=batch,
        layers=layers,
        kv_heads=kv_heads,
        query_heads=query_heads,
        tokens=tokens,
        head_dim=head_dim,
        dtype=dtype,
        rope_state=rope_state,
    )
    validate(shape)
    return shape
