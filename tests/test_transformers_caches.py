"""The KV shapes derived from configs, against the caches tiny transformers models really hold."""

from __future__ import annotations

import gc
import itertools
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

import fib_quant_kv as fqk
from fib_quant_kv.hf_config import KvLayers, kv_layers_from_hf_config

# The `transformers` nox session sets this: there a missing transformers is a failure.
if os.environ.get("FIB_QUANT_KV_REQUIRE_TRANSFORMERS") == "1":
    import torch
    import transformers
else:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

BATCH = 2
TOKENS = 6
# Small enough that windowed layers drop tokens within TOKENS.
WINDOW = 4

# Sizes every tiny model takes where its config class has the key.
TINY: dict[str, Any] = {
    "vocab_size": 256,
    "hidden_size": 64,
    "n_embd": 64,
    "d_model": 64,
    "intermediate_size": 128,
    "ffn_dim": 128,
    "n_inner": 128,
    "moe_intermediate_size": 32,
    "shared_expert_intermediate_size": 32,
    "num_attention_heads": 4,
    "n_head": 4,
    "n_heads": 4,
    "num_heads": 4,
    "attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "num_local_experts": 4,
    "num_experts": 4,
    "n_routed_experts": 4,
    "num_experts_per_tok": 2,
    "max_position_embeddings": 512,
    "n_positions": 512,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_size_per_layer_input": 16,
    "vocab_size_per_layer_input": 256,
    "sliding_window": WINDOW,
    "attention_chunk_size": WINDOW,
}

# What a family needs beyond TINY to build small, or to show its layer pattern.
EXTRA: dict[str, dict[str, Any]] = {
    "codegen": {"rotary_dim": 8},
    "gptj": {"rotary_dim": 8},
    "hunyuan_v1_dense": {"head_dim": 16},
    "hunyuan_v1_moe": {"head_dim": 16},
    "ministral": {"head_dim": 16},
    "nemotron": {"num_key_value_heads": 2},
    "dots1": {"n_routed_experts": 4, "num_experts_per_tok": 2, "n_shared_experts": 1},
    "bamba": {
        "num_hidden_layers": 6,
        "attn_layer_indices": [1, 4],
        "mamba_n_heads": 4,
        "mamba_d_head": 32,
    },
    "granitemoehybrid": {
        "num_hidden_layers": 6,
        "layer_types": ["mamba", "attention", "mamba", "mamba", "attention", "mamba"],
        "mamba_n_heads": 4,
        "mamba_d_head": 32,
    },
    "falcon_h1": {"mamba_n_heads": 4, "mamba_d_head": 32, "mamba_d_ssm": 128},
    "lfm2_moe": {
        "num_hidden_layers": 4,
        "layer_types": ["conv", "full_attention", "conv", "full_attention"],
        "num_dense_layers": 1,
    },
    "lfm2": {"num_hidden_layers": 6, "full_attn_idxs": [2, 5]},
    "dbrx": {"attn_config": {"kv_n_heads": 2, "rope_theta": 10000.0, "clip_qkv": 8.0}},
    "nemotron_h": {"hybrid_override_pattern": "M-M*-E*"},
    "jamba": {"num_hidden_layers": 10, "attn_layer_period": 4, "attn_layer_offset": 1},
    "qwen2": {"use_sliding_window": True, "sliding_window": WINDOW, "max_window_layers": 30},
    "smollm3": {"use_sliding_window": True, "sliding_window": WINDOW},
    "minimax": {"num_hidden_layers": 6},
    "zamba": {"num_hidden_layers": 12, "attn_layer_period": 3, "attn_layer_offset": 1},
    "glm4_moe_lite": {"num_key_value_heads": 4},
    "minicpm3": {"num_key_value_heads": 4},
    "sarvam_mla": {"num_key_value_heads": 4},
}

# One row per family: the model_type, then any variant of it worth its own row.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "falcon+new_decoder_architecture": (
        "falcon",
        {"new_decoder_architecture": True, "num_kv_heads": 2},
    ),
    "gpt_bigcode+multi_query=false": ("gpt_bigcode", {"multi_query": False}),
}

BUILT = [
    "afmoe",
    "apertus",
    "arcee",
    "aria_text",
    "bamba",
    "bitnet",
    "bloom",
    "codegen",
    "cohere",
    "cohere2",
    "cohere2_moe",
    "ctrl",
    "cwm",
    "dbrx",
    "diffllama",
    "doge",
    "dots1",
    "emu3",
    "ernie4_5",
    "ernie4_5_moe",
    "exaone",
    "exaone4",
    "falcon",
    "falcon_h1",
    "flex_olmo",
    "fuyu",
    "gemma",
    "gemma2",
    "gemma3_text",
    "gemma3n_text",
    "gemma4_text",
    "glm",
    "glm4",
    "glm4_moe",
    "glm4_moe_lite",
    "gpt2",
    "gpt_bigcode",
    "gpt_neo",
    "gpt_neox",
    "gpt_neox_japanese",
    "gpt_oss",
    "gptj",
    "granite",
    "granite_swa",
    "granitemoe",
    "granitemoehybrid",
    "granitemoeshared",
    "helium",
    "hunyuan_v1_dense",
    "hunyuan_v1_moe",
    "hyperclovax",
    "internlm3",
    "jais2",
    "jamba",
    "jetmoe",
    "kolibri1",
    "lfm2",
    "lfm2_moe",
    "llama",
    "llama4_text",
    "minicpm3",
    "minimax",
    "ministral",
    "ministral3",
    "mistral",
    "mixtral",
    "mpt",
    "nanochat",
    "nemotron",
    "nemotron_h",
    "olmo",
    "olmo2",
    "olmo3",
    "olmo_hybrid",
    "olmoe",
    "opt",
    "persimmon",
    "phi",
    "phi3",
    "phimoe",
    "qwen2",
    "qwen2_moe",
    "qwen3",
    "qwen3_5_text",
    "qwen3_moe",
    "qwen3_next",
    "sarvam_mla",
    "seed_oss",
    "smollm3",
    "solar_open",
    "stablelm",
    "starcoder2",
    "vaultgemma",
    "xglm",
    "zamba",
    "zamba2",
    "mimo_v2_flash",
    "biogpt",
]

ROWS: list[tuple[str, str, str, str]] = []


def tiny(defaults: dict[str, Any]) -> dict[str, Any]:
    """TINY's values for the keys this config class has (nested sub-configs too)."""
    kwargs = {
        k: v
        for k, v in TINY.items()
        if defaults.get(k) is not None and not isinstance(defaults[k], dict | list)
    }
    for sub in ("text_config", "attn_config"):
        if isinstance(defaults.get(sub), dict):
            kwargs[sub] = tiny(defaults[sub])
    return kwargs


def authored(model_type: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The config as its authors would write it: the model type and what differs."""
    kwargs = tiny(transformers.AutoConfig.for_model(model_type).to_dict())
    for key, value in {**EXTRA.get(model_type, {}), **extra}.items():
        if isinstance(value, dict) and isinstance(kwargs.get(key), dict):
            kwargs[key] = {**kwargs[key], **value}
        else:
            kwargs[key] = value
    return {"model_type": model_type, **kwargs}


def real_cache(config: Any) -> list[tuple[Any, Any]]:
    """(keys, values) of each layer after one forward pass; None where a layer holds none."""
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    ids = torch.randint(3, 200, (BATCH, TOKENS))
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
    cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
    layers = []
    for layer in cache.layers:
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        held = isinstance(keys, torch.Tensor) and keys.numel() > 0
        layers.append((keys, values) if held else (None, None))
    del model, out
    gc.collect()
    return layers


def describe(layers: list[tuple[Any, Any]]) -> str:
    """Runs of equal layers: `3x- 1x[2,2,6,16]`, keys/values where they differ."""

    def one(kv: tuple[Any, Any]) -> str:
        keys, values = kv
        if keys is None:
            return "-"
        k, v = list(keys.shape), list(values.shape)
        return str(k).replace(" ", "") + ("" if k == v else "/" + str(v).replace(" ", ""))

    runs = [(len(list(g)), text) for text, g in itertools.groupby(one(kv) for kv in layers)]
    text = " ".join(f"{n}x{t}" for n, t in runs)
    return text if len(text) <= 60 else text[:57] + "..."


def forms(config: Any, written: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """The same config as written, as to_dict(), as save_pretrained writes it, as an object."""
    yield "authored", json.loads(json.dumps(written))
    yield "to_dict", json.loads(config.to_json_string(use_diff=False))
    yield "saved", json.loads(config.to_json_string(use_diff=True))
    yield "object", config


def describable(layers: list[tuple[Any, Any]]) -> bool:
    """Whether one v1 shape can describe every KV layer: equal heads and sizes, keys as values."""
    sizes = {(k.shape[1], k.shape[-1], v.shape[1], v.shape[-1]) for k, v in layers if k is not None}
    if len(sizes) != 1:
        return False
    key_heads, key_size, value_heads, value_size = next(iter(sizes))
    return bool(key_heads == value_heads and key_size == value_size)


def expected_tokens(derived: KvLayers, layer: int) -> int:
    # transformers' DynamicSlidingWindowLayer keeps sliding_window - 1 tokens between steps.
    if derived.kinds[layer] == "S":
        assert derived.sliding_window is not None
        return min(TOKENS, derived.sliding_window - 1)
    return TOKENS


CASES = [pytest.param(name, name, {}, id=name) for name in BUILT] + [
    pytest.param(name, model_type, extra, id=name) for name, (model_type, extra) in VARIANTS.items()
]


@pytest.mark.parametrize(("name", "model_type", "extra"), CASES)
def test_derived_shape_is_the_real_cache(name: str, model_type: str, extra: dict[str, Any]) -> None:
    written = authored(model_type, extra)
    config = transformers.AutoConfig.for_model(**written)
    layers = real_cache(config)
    results: dict[str, KvLayers | fqk.FibQuantKvError] = {}
    for form, value in forms(config, written):
        try:
            results[form] = kv_layers_from_hf_config(value)
        except fqk.FibQuantKvError as exc:
            results[form] = exc
    # The language model's own model_type (emu3_text_model in emu3) may differ by form, and a
    # refusal may name the key the form states (global_head_dim, or per_layer_config).
    outcomes = {
        form: type(r).__name__
        if isinstance(r, Exception)
        else (r.kinds, r.sliding_window, r.query_heads, r.kv_heads, r.head_dim)
        for form, r in results.items()
    }
    # Every form of the config gives the same answer.
    assert len({repr(o) for o in outcomes.values()}) == 1, outcomes
    derived = results["authored"]
    real = describe(layers)
    if isinstance(derived, fqk.FibQuantKvError):
        assert isinstance(derived, fqk.DependencyUnsupported), derived
        # A refusal is only right for a cache v1 cannot describe.
        assert not describable(layers), f"{name}: refused ({derived}) but the cache is {real}"
        ROWS.append((name, real, "-", f"refused: {derived}"))
        return
    assert len(layers) <= derived.layers
    for index in range(derived.layers):
        keys, values = layers[index] if index < len(layers) else (None, None)
        if index not in derived.kv_layers:
            assert keys is None, f"{name}: layer {index} holds KV, derived as {derived.kinds}"
            continue
        assert keys is not None, f"{name}: layer {index} holds no KV, derived as {derived.kinds}"
        want = [BATCH, derived.kv_heads, expected_tokens(derived, index), derived.head_dim]
        assert list(keys.shape) == want, f"{name}: layer {index} keys"
        assert list(values.shape) == want, f"{name}: layer {index} values"
        assert keys.shape[2] <= derived.held_tokens(index, TOKENS)

    # The stacked cache, as the shape and its canonical layout say: every KV layer's last
    # `held` tokens (windowed layers keep fewer than TOKENS).
    held = min(expected_tokens(derived, i) for i in derived.kv_layers)
    for role, which in (("key", 0), ("value", 1)):
        shape = fqk.shape_from_hf_config(written, role=role, tokens=held, batch=BATCH, dtype="f32")
        assert shape.layers == len(derived.kv_layers)
        stacked = torch.stack(
            [layers[i][which][:, :, -held:, :] for i in derived.kv_layers], dim=1
        ).contiguous()
        fqk.check_array(stacked, shape, fqk.canonical_layout(shape))
    kinds = {"F": "full", "S": f"window {derived.sliding_window}"}
    summary = ", ".join(
        f"{derived.kinds.count(k)} {text}" for k, text in kinds.items() if k in derived.kinds
    )
    ROWS.append(
        (
            name,
            real,
            f"layers {len(derived.kv_layers)}/{derived.layers} ({summary}) kv_heads "
            f"{derived.kv_heads} query_heads {derived.query_heads} head_dim {derived.head_dim}",
            "same",
        )
    )


def test_zz_print_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert ROWS, "no family ran"
    widths = [max(len(row[i]) for row in ROWS) for i in range(3)]
    with capsys.disabled():
        print(f"\ntransformers {transformers.__version__}, torch {torch.__version__}")
        print(f"batch {BATCH}, {TOKENS} tokens, sliding windows of {WINDOW}")
        header = ("family", "real cache per layer", "derived shape", "verdict")
        for row in (header, *ROWS):
            print("  ".join(c.ljust(w) for c, w in zip(row, [*widths, 0], strict=True)))
        refused = [row for row in ROWS if row[3].startswith("refused")]
        print(f"\n{len(ROWS)} families, {len(refused)} refused:")
        for row in refused:
            print(f"  {row[0]}: {row[3].removeprefix('refused: ')}")
