"""KV tensor shapes and cache plans derived from the config.json of real model families."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

import fib_quant_kv as fqk
from fib_quant_kv.hf_config import DTYPES, kv_layers_from_hf_config, shape_from_hf_config
from fib_quant_kv.plan import plan_from_hf_config
from tests.shared import DATA, EXAMPLES

CONFIGS = DATA / "hf_configs"

# The worked example of the contract (section 4): Llama-3.1-8B's key cache at 4096 tokens.
WORKED_EXAMPLE_DIGEST = "blake3:388d99e611df08a63740c3eac1466a3428465ccc46022071b57cde066f026fdc"


def family(name: str, *expected: Any, extra: dict[str, Any] | None = None) -> Any:
    """One row: file, layers, query_heads, kv_heads, head_dim, attention_kind, dtype, kwargs."""
    return pytest.param(name, *expected, extra or {}, id=name.removesuffix(".json"))


FAMILIES = [
    family("llama-3.1-8b.json", 32, 32, 8, 128, "gqa", "bf16"),
    family("mistral-7b-v0.1.json", 32, 32, 8, 128, "gqa", "bf16"),
    family("qwen2.5-7b.json", 28, 28, 4, 128, "gqa", "bf16"),
    family("gpt2.json", 12, 12, 12, 64, "mha", "f16", extra={"dtype": "f16"}),
    family("falcon-7b.json", 32, 71, 1, 64, "mqa", "bf16"),
    family("gemma-2b.json", 18, 8, 1, 256, "mqa", "bf16"),
    family("gemma-7b.json", 28, 16, 16, 256, "mha", "bf16"),
    family(
        "gemma-3-4b-it.json",
        34,
        8,
        4,
        256,
        "gqa",
        "bf16",
    ),
    family("mpt-7b.json", 32, 32, 32, 128, "mha", "bf16"),
    family("phi-3-mini-4k-instruct.json", 32, 32, 32, 96, "mha", "bf16"),
    # Hybrids: only the attention layers hold keys and values.
    family("jamba-v0.1.json", 4, 32, 8, 128, "gqa", "bf16"),
    family("zamba2-2.7b.json", 9, 32, 32, 160, "mha", "bf16"),
    family("nemotron-h-8b.json", 4, 32, 8, 128, "gqa", "bf16"),
    family("recurrentgemma-2b.json", 8, 10, 1, 256, "mqa", "bf16"),
    family("gemma-3n-e2b.json", 20, 8, 2, 256, "gqa", "bf16"),
    # Keys read in the family's own order, or under its own names.
    family("falcon-7b-saved.json", 32, 71, 1, 64, "mqa", "bf16"),
    family("dbrx-base.json", 40, 48, 8, 128, "gqa", "bf16"),
    family("jetmoe-8b.json", 24, 32, 16, 128, "gqa", "bf16"),
    family("xglm-564m.json", 24, 16, 16, 64, "mha", "f32"),
]

REFUSED_FILES = {"deepseek-v2-lite.json", "gemma-4-text.json"}


def load(name: str) -> dict[str, Any]:
    with (CONFIGS / name).open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


def base_config(**changes: Any) -> dict[str, Any]:
    """A small GQA config (4 layers, 8 heads, 2 KV heads, head size 16) with some keys changed."""
    config: dict[str, Any] = {
        "hidden_size": 128,
        "num_attention_heads": 8,
        "num_hidden_layers": 4,
        "num_key_value_heads": 2,
        "torch_dtype": "float16",
    }
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


# Shapes of every family ---------------------------------------------------------------------


def test_every_config_file_is_covered() -> None:
    names = {p.name for p in CONFIGS.glob("*.json")}
    covered = {f.values[0] for f in FAMILIES} | REFUSED_FILES
    assert names == covered


@pytest.mark.parametrize("role", ["key", "value"])
@pytest.mark.parametrize(
    ("name", "layers", "query_heads", "kv_heads", "head_dim", "kind", "dtype", "extra"),
    FAMILIES,
)
def test_shape_of_each_family(
    name: str,
    layers: int,
    query_heads: int,
    kv_heads: int,
    head_dim: int,
    kind: str,
    dtype: str,
    extra: dict[str, Any],
    role: str,
) -> None:
    shape = shape_from_hf_config(CONFIGS / name, role=role, tokens=1024, **extra)  # type: ignore[arg-type]
    assert isinstance(shape, fqk.KvTensorShapeV1)
    assert shape.schema_version == "fib_quant_kv_tensor_shape_v1"
    assert shape.role == role
    assert (
        shape.layers,
        shape.query_heads,
        shape.kv_heads,
        shape.head_dim,
        shape.attention_kind,
        shape.dtype,
    ) == (layers, query_heads, kv_heads, head_dim, kind, dtype)
    assert shape.batch == 1
    assert shape.tokens == 1024
    assert shape.rope_state == ("post_rope" if role == "key" else "not_applicable")
    fqk.validate(shape)
    assert fqk.collect_violations(shape) == []
    digest = fqk.digest(shape)
    assert digest.startswith("blake3:")
    assert len(digest) == len("blake3:") + 64
    # The digest is that of the document's canonical bytes, decoded back.
    assert fqk.digest(fqk.decode(fqk.encode(shape))) == digest


@pytest.mark.parametrize("name", ["llama-3.1-8b.json", "falcon-7b.json", "gemma-7b.json"])
def test_key_and_value_shapes_differ_only_in_role_and_rope_state(name: str) -> None:
    key = shape_from_hf_config(CONFIGS / name, role="key", tokens=64)
    value = shape_from_hf_config(CONFIGS / name, role="value", tokens=64)
    differing = {f for f in type(key).model_fields if getattr(key, f) != getattr(value, f)}
    assert differing == {"role", "rope_state"}
    assert fqk.digest(key) != fqk.digest(value)


def test_llama_key_shape_is_the_contract_worked_example() -> None:
    shape = shape_from_hf_config(CONFIGS / "llama-3.1-8b.json", role="key", tokens=4096)
    assert fqk.digest(shape) == WORKED_EXAMPLE_DIGEST


@pytest.mark.parametrize("role", ["key", "value"])
def test_llama_shapes_are_the_bundled_examples(role: str) -> None:
    shape = shape_from_hf_config(CONFIGS / "llama-3.1-8b.json", role=role, tokens=8192)  # type: ignore[arg-type]
    example = fqk.decode((EXAMPLES / f"{role}_shape.json").read_bytes())
    assert shape == example
    assert fqk.digest(shape) == fqk.digest(example)


def test_explicit_head_dim_wins_over_hidden_size_per_head() -> None:
    config = load("gemma-7b.json")
    assert config["hidden_size"] // config["num_attention_heads"] == 192
    assert shape_from_hf_config(config, role="key", tokens=8).head_dim == 256
    # Without it the head size is hidden_size / heads.
    del config["head_dim"]
    assert shape_from_hf_config(config, role="key", tokens=8).head_dim == 192


def test_multi_query_without_kv_head_count_is_one_kv_head() -> None:
    config = load("falcon-7b.json")
    assert "num_key_value_heads" not in config
    assert shape_from_hf_config(config, role="key", tokens=8).kv_heads == 1
    config["multi_query"] = False
    shape = shape_from_hf_config(config, role="key", tokens=8)
    assert (shape.kv_heads, shape.attention_kind) == (71, "mha")


def test_gqa_with_one_kv_head_is_classified_mqa() -> None:
    # Gemma-2B states num_key_value_heads 1: one KV head shared by all 8 query heads.
    shape = shape_from_hf_config(CONFIGS / "gemma-2b.json", role="value", tokens=8)
    assert (shape.query_heads, shape.kv_heads, shape.attention_kind) == (8, 1, "mqa")


def test_nested_text_config_is_the_language_model() -> None:
    config = load("gemma-3-4b-it.json")
    assert "torch_dtype" not in config["text_config"]
    # The counts transformers fills in from Gemma3TextConfig's defaults, stated explicitly.
    config["text_config"].update(num_attention_heads=8, num_key_value_heads=4, head_dim=256)
    # Counts outside text_config (a vision tower's, say) must not be read.
    config.update(num_hidden_layers=27, num_attention_heads=16, hidden_size=1152)
    for role in ("key", "value"):
        shape = shape_from_hf_config(config, role=role, tokens=256)
        assert (
            shape.layers,
            shape.query_heads,
            shape.kv_heads,
            shape.head_dim,
            shape.attention_kind,
            shape.dtype,
        ) == (34, 8, 4, 256, "gqa", "bf16")
        assert fqk.collect_violations(shape) == []


def test_text_config_dtype_wins_over_the_top_level_one() -> None:
    config = {"text_config": base_config(torch_dtype="float32"), "torch_dtype": "bfloat16"}
    assert shape_from_hf_config(config, role="key", tokens=8).dtype == "f32"


# Layers that hold keys and values ---------------------------------------------------------

ZAMBA2_TYPES = load("zamba2-2.7b.json")["layers_block_type"]

# The same model three ways: as its authors wrote it, as to_dict() gives it (every key, the
# newer layer type names), and as save_pretrained writes it (what differs from the defaults).
THREE_FORMS = {
    "jamba": (
        load("jamba-v0.1.json"),
        {**load("jamba-v0.1.json"), "num_experts": 16, "num_experts_per_tok": 2, "dtype": None},
        {"model_type": "jamba", "torch_dtype": "bfloat16", "transformers_version": "5.24.0"},
    ),
    "zamba2": (
        load("zamba2-2.7b.json"),
        {
            **load("zamba2-2.7b.json"),
            "layers_block_type": [
                "hybrid" if t == "hybrid" else "linear_attention" for t in ZAMBA2_TYPES
            ],
            "attention_head_dim": 160,
            "kv_channels": 80,
            "hybrid_layer_ids": [i for i, t in enumerate(ZAMBA2_TYPES) if t == "hybrid"],
        },
        {"model_type": "zamba2", "torch_dtype": "bfloat16"},
    ),
    "falcon": (
        load("falcon-7b.json") | {"model_type": "falcon"},
        load("falcon-7b-saved.json"),
        {"model_type": "falcon", "torch_dtype": "bfloat16"},
    ),
    "gemma3n": (
        {
            "model_type": "gemma3n",
            "text_config": {
                k: v
                for k, v in load("gemma-3n-e2b.json")["text_config"].items()
                if k != "layer_types"
            },
        },
        load("gemma-3n-e2b.json"),
        {
            "model_type": "gemma3n",
            "text_config": {
                "model_type": "gemma3n_text",
                "hidden_size": 2048,
                "num_hidden_layers": 30,
                "num_kv_shared_layers": 10,
                "torch_dtype": "bfloat16",
            },
        },
    ),
    "dbrx": (
        load("dbrx-base.json"),
        {**load("dbrx-base.json"), "num_key_value_heads": 8, "max_seq_len": 2048},
        {
            "model_type": "dbrx",
            "d_model": 6144,
            "n_heads": 48,
            "n_layers": 40,
            "attn_config": {"kv_n_heads": 8},
            "torch_dtype": "bfloat16",
        },
    ),
}


@pytest.mark.parametrize("name", sorted(THREE_FORMS))
def test_three_forms_of_a_config_give_one_shape(name: str) -> None:
    shapes = [shape_from_hf_config(form, role="key", tokens=64) for form in THREE_FORMS[name]]
    assert shapes[0] == shapes[1] == shapes[2]
    layers = [kv_layers_from_hf_config(form) for form in THREE_FORMS[name]]
    assert len({(x.kinds, x.kv_heads, x.head_dim, x.sliding_window) for x in layers}) == 1


def test_jamba_holds_kv_in_every_eighth_layer_from_the_fifth() -> None:
    layers = kv_layers_from_hf_config(CONFIGS / "jamba-v0.1.json")
    assert layers.layers == 32
    assert layers.kv_layers == (4, 12, 20, 28)
    config = load("jamba-v0.1.json") | {"attn_layer_period": 4, "attn_layer_offset": 1}
    assert kv_layers_from_hf_config(config).kv_layers == tuple(range(1, 32, 4))


def test_zamba2_holds_kv_in_its_hybrid_layers_with_twice_the_head_size() -> None:
    layers = kv_layers_from_hf_config(CONFIGS / "zamba2-2.7b.json")
    assert layers.kv_layers == tuple(i for i, t in enumerate(ZAMBA2_TYPES) if t == "hybrid")
    assert layers.head_dim == 2 * 2560 // 32
    # Zamba2's class ignores a stated attention_head_dim; the cache does too.
    config = load("zamba2-2.7b.json") | {"attention_head_dim": 80}
    assert kv_layers_from_hf_config(config).head_dim == 160


def test_nemotron_h_reads_its_pattern_and_a_layer_list_wins_over_it() -> None:
    layers = kv_layers_from_hf_config(CONFIGS / "nemotron-h-8b.json")
    pattern = load("nemotron-h-8b.json")["hybrid_override_pattern"]
    assert layers.kv_layers == tuple(i for i, c in enumerate(pattern) if c == "*")
    listed = {**load("nemotron-h-8b.json"), "layers_block_type": ["mamba", "attention", "mlp"]}
    assert kv_layers_from_hf_config(listed).kv_layers == (1,)


def test_recurrent_gemma_attention_blocks_keep_a_window() -> None:
    layers = kv_layers_from_hf_config(CONFIGS / "recurrentgemma-2b.json")
    assert layers.kv_layers == layers.windowed_layers == tuple(range(2, 26, 3))
    assert layers.sliding_window == 2048
    assert layers.held_tokens(2, 8192) == 2048
    assert layers.held_tokens(2, 100) == 100
    assert layers.held_tokens(0, 8192) == 0


def test_gemma3n_shared_layers_store_no_kv() -> None:
    layers = kv_layers_from_hf_config(CONFIGS / "gemma-3n-e2b.json")
    assert layers.layers == 30
    assert layers.kv_layers == tuple(range(20))
    assert layers.windowed_layers == tuple(i for i in range(20) if (i + 1) % 5)
    config = load("gemma-3n-e2b.json")
    config["text_config"]["num_kv_shared_layers"] = 31
    with pytest.raises(fqk.ConfigError) as caught:
        kv_layers_from_hf_config(config)
    assert caught.value.pointer == "/text_config/num_kv_shared_layers"


@pytest.mark.parametrize(
    ("changes", "kv_heads"),
    [
        ({}, 1),  # multi_query, whatever num_kv_heads says
        ({"multi_query": False}, 71),
        ({"multi_query": False, "num_kv_heads": 1}, 1),
        # The new decoder architecture expands its KV heads to every query head in the cache.
        ({"new_decoder_architecture": True, "num_kv_heads": 8}, 71),
    ],
)
def test_falcon_kv_heads(changes: dict[str, Any], kv_heads: int) -> None:
    config = load("falcon-7b-saved.json") | changes
    assert kv_layers_from_hf_config(config).kv_heads == kv_heads


def test_dbrx_kv_heads_default_to_one() -> None:
    config = load("dbrx-base.json")
    del config["attn_config"]
    assert kv_layers_from_hf_config(config).kv_heads == 1


def test_jetmoe_query_heads_follow_its_kv_heads_and_experts() -> None:
    config = load("jetmoe-8b.json") | {"num_attention_heads": 7}
    layers = kv_layers_from_hf_config(config)
    assert (layers.query_heads, layers.kv_heads, layers.head_dim) == (32, 16, 128)


@pytest.mark.parametrize(
    ("changes", "kinds"),
    [
        ({}, "FFFF"),
        ({"use_sliding_window": True, "sliding_window": 64, "max_window_layers": 2}, "FFSS"),
        ({"use_sliding_window": False, "sliding_window": 64, "max_window_layers": 2}, "FFFF"),
    ],
)
def test_qwen2_windows_layers_only_when_use_sliding_window(
    changes: dict[str, Any], kinds: str
) -> None:
    config = {"model_type": "qwen2", **base_config(), **changes}
    assert kv_layers_from_hf_config(config).kinds == kinds


def test_a_family_without_layer_types_windows_every_layer() -> None:
    assert kv_layers_from_hf_config(base_config(sliding_window=32)).kinds == "SSSS"
    # A stated null window is no window, whatever the class default is.
    mistral = {"model_type": "mistral", **base_config(), "sliding_window": None}
    assert kv_layers_from_hf_config(mistral).kinds == "FFFF"
    assert kv_layers_from_hf_config({"model_type": "mistral", **base_config()}).kinds == "SSSS"


def test_a_config_object_is_read_through_to_dict() -> None:
    class Config:
        def __init__(self, values: dict[str, Any]) -> None:
            self.values = values

        def to_dict(self) -> dict[str, Any]:
            return dict(self.values)

    shape = shape_from_hf_config(Config(load("jamba-v0.1.json")), role="value", tokens=16)
    assert shape == shape_from_hf_config(CONFIGS / "jamba-v0.1.json", role="value", tokens=16)
    with pytest.raises(TypeError, match="transformers config object"):
        shape_from_hf_config(object(), role="key", tokens=8)


# Arguments ----------------------------------------------------------------------------------


def test_a_mapping_gives_the_same_shape_as_its_file() -> None:
    path = CONFIGS / "qwen2.5-7b.json"
    config = load("qwen2.5-7b.json")
    before = json.loads(json.dumps(config))
    from_path = shape_from_hf_config(path, role="key", tokens=512)
    assert shape_from_hf_config(config, role="key", tokens=512) == from_path
    assert shape_from_hf_config(str(path), role="key", tokens=512) == from_path
    assert config == before  # the mapping is read, not changed


@pytest.mark.parametrize("dtype", ["f16", "bf16", "f32"])
def test_dtype_argument_overrides_torch_dtype(dtype: str) -> None:
    assert load("llama-3.1-8b.json")["torch_dtype"] == "bfloat16"
    shape = shape_from_hf_config(CONFIGS / "llama-3.1-8b.json", role="key", tokens=8, dtype=dtype)
    assert shape.dtype == dtype


@pytest.mark.parametrize(
    ("torch_dtype", "expected"),
    [("float16", "f16"), ("bfloat16", "bf16"), ("float32", "f32"), ("torch.float16", "f16")],
)
def test_torch_dtype_names(torch_dtype: str, expected: str) -> None:
    shape = shape_from_hf_config(base_config(torch_dtype=torch_dtype), role="key", tokens=8)
    assert shape.dtype == expected


def test_newer_dtype_key_is_read() -> None:
    config = base_config(torch_dtype=None, dtype="bfloat16")
    assert shape_from_hf_config(config, role="key", tokens=8).dtype == "bf16"


def test_config_without_torch_dtype_needs_the_argument() -> None:
    with pytest.raises(fqk.ConfigError) as caught:
        shape_from_hf_config(CONFIGS / "gpt2.json", role="key", tokens=8)
    assert caught.value.code == "config"
    assert caught.value.pointer == "/torch_dtype"
    # What to do, in the words of both interfaces.
    assert "--dtype on the command line" in caught.value.message
    assert "dtype= in Python" in caught.value.message
    assert "pass dtype" not in caught.value.message


@pytest.mark.parametrize(
    ("torch_dtype", "dtype"), [("float16", "bfloat16"), ("bfloat16", "float32"), ("half", "fp32")]
)
def test_torch_dtype_and_dtype_that_disagree_are_refused(torch_dtype: str, dtype: str) -> None:
    config = base_config(torch_dtype=torch_dtype, dtype=dtype)
    with pytest.raises(fqk.ConfigError) as caught:
        shape_from_hf_config(config, role="key", tokens=8)
    assert caught.value.pointer == "/dtype"
    assert f"torch_dtype {torch_dtype!r}" in caught.value.message
    assert f"dtype {dtype!r}" in caught.value.message
    # The argument settles it.
    assert shape_from_hf_config(config, role="key", tokens=8, dtype="f16").dtype == "f16"


def test_torch_dtype_and_dtype_that_agree_in_other_words_are_one_dtype() -> None:
    config = base_config(torch_dtype="torch.bfloat16", dtype="bfloat16")
    assert shape_from_hf_config(config, role="key", tokens=8).dtype == "bf16"


@pytest.mark.parametrize(("name", "expected"), sorted(DTYPES.items()))
def test_every_dtypes_spelling_is_accepted_in_config_and_argument(name: str, expected: str) -> None:
    assert shape_from_hf_config(base_config(torch_dtype=name), role="key", tokens=8).dtype == (
        expected
    )
    shape = shape_from_hf_config(base_config(), role="key", tokens=8, dtype=name)
    assert shape.dtype == expected


def test_dtypes_names_the_spellings_configs_use() -> None:
    assert {"float16", "bfloat16", "float32", "f16", "bf16", "f32"} <= set(DTYPES)
    assert set(DTYPES.values()) == {"f16", "bf16", "f32"}


def test_an_unknown_dtype_argument_is_refused() -> None:
    with pytest.raises(fqk.ConfigError) as caught:
        shape_from_hf_config(base_config(), role="key", tokens=8, dtype="int8")
    assert caught.value.pointer == "/dtype"
    assert "int8" in caught.value.message


@pytest.mark.parametrize("batch", [1, 3, 64])
def test_batch(batch: int) -> None:
    shape = shape_from_hf_config(
        CONFIGS / "mistral-7b-v0.1.json", role="key", tokens=8, batch=batch
    )
    assert shape.batch == batch
    assert fqk.element_count(shape) == batch * 32 * 8 * 8 * 128


def test_explicit_rope_state() -> None:
    path = CONFIGS / "llama-3.1-8b.json"
    assert shape_from_hf_config(path, role="key", tokens=8, rope_state="pre_rope").rope_state == (
        "pre_rope"
    )
    with pytest.raises(fqk.CorruptPayload) as caught:
        shape_from_hf_config(path, role="value", tokens=8, rope_state="post_rope")
    assert caught.value.pointer == "/rope_state"
    with pytest.raises(fqk.CorruptPayload) as caught:
        shape_from_hf_config(path, role="key", tokens=8, rope_state="not_applicable")
    assert caught.value.pointer == "/rope_state"


# Refusals -----------------------------------------------------------------------------------

DEEPSEEK_WITHOUT_LATENT = {
    k: v for k, v in load("deepseek-v2-lite.json").items() if k != "kv_lora_rank"
}

REFUSALS: list[Any] = [
    pytest.param(
        "deepseek-v2-lite.json",
        fqk.DependencyUnsupported,
        "/kv_lora_rank",
        "latent attention",
        id="latent-attention-file",
    ),
    pytest.param(
        {"text_config": base_config(kv_lora_rank=512)},
        fqk.DependencyUnsupported,
        "/text_config/kv_lora_rank",
        "latent attention",
        id="latent-attention-nested",
    ),
    pytest.param(
        # DeepSeek's head sizes without its latent: keys 128 + 64 = 192, values 128.
        DEEPSEEK_WITHOUT_LATENT,
        fqk.DependencyUnsupported,
        "/v_head_dim",
        "differ",
        id="qk-head-size-differs-from-v_head_dim",
    ),
    pytest.param(
        base_config(v_head_dim=32),
        fqk.DependencyUnsupported,
        "/v_head_dim",
        "v_head_dim 32",
        id="v_head_dim-differs",
    ),
    pytest.param(
        base_config(head_dim=64, v_head_dim=128),
        fqk.DependencyUnsupported,
        "/v_head_dim",
        "differ",
        id="v_head_dim-differs-from-explicit-head_dim",
    ),
    pytest.param(
        base_config(hidden_size=100),
        fqk.DependencyUnsupported,
        "/hidden_size",
        "not a whole head size",
        id="hidden-not-divisible",
    ),
    pytest.param(
        {"n_embd": 770, "n_head": 12, "n_layer": 12, "torch_dtype": "float32"},
        fqk.DependencyUnsupported,
        "/n_embd",
        "n_embd 770",
        id="n_embd-not-divisible",
    ),
    pytest.param(
        base_config(num_hidden_layers=None),
        fqk.ConfigError,
        "/num_hidden_layers",
        "layer",
        id="no-layer-count",
    ),
    pytest.param(
        base_config(num_attention_heads=None),
        fqk.ConfigError,
        "/num_attention_heads",
        "head",
        id="no-head-count",
    ),
    pytest.param(
        {"text_config": base_config(num_attention_heads=None)},
        fqk.ConfigError,
        "/text_config/num_attention_heads",
        "head",
        id="no-head-count-nested",
    ),
    pytest.param(
        base_config(hidden_size=None),
        fqk.ConfigError,
        "/head_dim",
        "head size",
        id="no-head-size",
    ),
    pytest.param(
        base_config(torch_dtype="int8"), fqk.ConfigError, "/torch_dtype", "int8", id="dtype-int8"
    ),
    pytest.param(
        base_config(torch_dtype="float8_e4m3fn"),
        fqk.ConfigError,
        "/torch_dtype",
        "float8_e4m3fn",
        id="dtype-float8",
    ),
    pytest.param(
        base_config(torch_dtype="float64"),
        fqk.ConfigError,
        "/torch_dtype",
        "float64",
        id="dtype-float64",
    ),
    pytest.param(
        base_config(num_hidden_layers=32.0),
        fqk.ConfigError,
        "/num_hidden_layers",
        "must be an integer in 1..=4294967295",
        id="layers-float",
    ),
    pytest.param(
        base_config(num_hidden_layers=2**32),
        fqk.ConfigError,
        "/num_hidden_layers",
        "must be an integer in 1..=4294967295, got 4294967296",
        id="layers-over-u32",
    ),
    pytest.param(
        base_config(num_hidden_layers="32"),
        fqk.ConfigError,
        "/num_hidden_layers",
        "must be an integer in 1..=4294967295",
        id="layers-string",
    ),
    pytest.param(
        base_config(num_hidden_layers=True),
        fqk.ConfigError,
        "/num_hidden_layers",
        "must be an integer in 1..=4294967295",
        id="layers-bool",
    ),
    pytest.param(
        base_config(num_attention_heads=0),
        fqk.ConfigError,
        "/num_attention_heads",
        "must be an integer in 1..=4294967295",
        id="heads-zero",
    ),
    pytest.param(
        base_config(num_key_value_heads=-8),
        fqk.ConfigError,
        "/num_key_value_heads",
        "must be an integer in 1..=4294967295",
        id="kv-heads-negative",
    ),
    pytest.param(
        base_config(num_key_value_heads=[8]),
        fqk.ConfigError,
        "/num_key_value_heads",
        "must be an integer in 1..=4294967295",
        id="kv-heads-list",
    ),
    pytest.param(
        base_config(head_dim=128.0),
        fqk.ConfigError,
        "/head_dim",
        "must be an integer in 1..=4294967295",
        id="head_dim-float",
    ),
    pytest.param(
        {"text_config": base_config(num_hidden_layers=2.5)},
        fqk.ConfigError,
        "/text_config/num_hidden_layers",
        "must be an integer in 1..=4294967295",
        id="layers-float-nested",
    ),
    pytest.param(
        # Rule 5: 32 query heads cannot be shared by 5 KV heads.
        base_config(hidden_size=4096, num_attention_heads=32, num_key_value_heads=5),
        fqk.ConfigError,
        "/num_key_value_heads",
        "multiple of num_key_value_heads",
        id="heads-not-a-multiple-of-kv-heads",
    ),
    pytest.param(
        # More KV heads than query heads: a GQA shape whose query_heads % kv_heads != 0.
        base_config(num_key_value_heads=16),
        fqk.ConfigError,
        "/num_key_value_heads",
        "multiple of num_key_value_heads",
        id="more-kv-heads-than-heads",
    ),
    pytest.param(
        {"text_config": base_config(num_key_value_heads=3)},
        fqk.ConfigError,
        "/text_config/num_key_value_heads",
        "8 query heads cannot share 3 KV heads",
        id="heads-not-a-multiple-nested",
    ),
    pytest.param(
        {"n_head": 12, "n_layer": 2, "n_embd": 768, "num_kv_heads": 5, "torch_dtype": "float16"},
        fqk.ConfigError,
        "/num_kv_heads",
        "multiple of num_kv_heads",
        id="heads-not-a-multiple-other-name",
    ),
    pytest.param(
        "gemma-4-text.json",
        fqk.DependencyUnsupported,
        "/global_head_dim",
        "global_head_dim 512",
        id="gemma-4-global-head-dim",
    ),
    pytest.param(
        {**base_config(), "per_layer_config": {"3": {"num_key_value_heads": 4}}},
        fqk.DependencyUnsupported,
        "/per_layer_config/3/num_key_value_heads",
        "layer 3 has its own num_key_value_heads 4",
        id="a-layer-with-its-own-kv-heads",
    ),
    pytest.param(
        {**base_config(), "per_layer_config": {"1": {"head_dim": 32}}},
        fqk.DependencyUnsupported,
        "/per_layer_config/1/head_dim",
        "its own head_dim 32",
        id="a-layer-with-its-own-head-size",
    ),
    pytest.param(
        {"model_type": "bamba", **base_config()},
        fqk.DependencyUnsupported,
        "/attn_layer_indices",
        "no layer holds keys and values",
        id="bamba-without-attention-layers",
    ),
    pytest.param(
        {**base_config(), "layer_types": ["mamba"] * 4},
        fqk.DependencyUnsupported,
        "/layer_types",
        "no layer holds keys and values",
        id="every-layer-a-state",
    ),
    pytest.param(
        {**base_config(), "layer_types": ["full_attention", "cross_attention"] * 2},
        fqk.DependencyUnsupported,
        "/layer_types/1",
        "'cross_attention' is not one whose cache is known",
        id="unknown-layer-type",
    ),
    pytest.param(
        {**base_config(), "layer_types": ["full_attention"] * 3},
        fqk.ConfigError,
        "/layer_types",
        "lists 3 layers but num_hidden_layers is 4",
        id="layer-types-of-another-length",
    ),
    pytest.param(
        {**base_config(), "hybrid_override_pattern": "M*X"},
        fqk.ConfigError,
        "/hybrid_override_pattern",
        "hybrid_override_pattern must be",
        id="bad-hybrid-pattern",
    ),
    pytest.param(
        {**base_config(), "layer_types": ["sliding_attention"] * 4},
        fqk.ConfigError,
        "/sliding_window",
        "no sliding_window",
        id="windowed-layers-without-a-window",
    ),
]


@pytest.mark.parametrize(("config", "error", "where", "fragment"), REFUSALS)
@pytest.mark.parametrize("role", ["key", "value"])
def test_refusals(
    config: str | dict[str, Any],
    error: type[fqk.FibQuantKvError],
    where: str,
    fragment: str,
    role: str,
) -> None:
    source = CONFIGS / config if isinstance(config, str) else config
    with pytest.raises(fqk.FibQuantKvError) as caught:
        shape_from_hf_config(source, role=role, tokens=16)  # type: ignore[arg-type]
    assert type(caught.value) is error
    assert caught.value.code == error.code
    assert caught.value.pointer == where
    assert fragment in caught.value.message


def test_latent_attention_says_why() -> None:
    with pytest.raises(fqk.DependencyUnsupported) as caught:
        shape_from_hf_config(CONFIGS / "deepseek-v2-lite.json", role="key", tokens=16)
    message = caught.value.message
    assert "kv_lora_rank" in message
    assert "latent" in message
    assert "cannot describe" in message
    assert caught.value.code == "dependency_unsupported"
    assert str(caught.value).startswith("/kv_lora_rank: ")


def test_latent_attention_is_refused_whatever_the_dtype_and_role() -> None:
    for role in ("key", "value"):
        for dtype in (None, "f32"):
            with pytest.raises(fqk.DependencyUnsupported):
                shape_from_hf_config(
                    CONFIGS / "deepseek-v2-lite.json",
                    role=role,
                    tokens=16,
                    dtype=dtype,
                )


def test_unreadable_paths(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.json", tmp_path):
        with pytest.raises(fqk.ConfigError) as caught:
            shape_from_hf_config(path, role="key", tokens=8)
        assert caught.value.code == "config"
        assert caught.value.path == str(path)
        assert caught.value.pointer == ""
        assert "cannot read" in caught.value.message
        assert str(caught.value).startswith(f"{path}::: ")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "not JSON at line 1 column 1: expecting value"),
        (b"not json", "not JSON at line 1 column 1: expecting value"),
        (b'{"num_hidden_layers": 2,', "not JSON at line 1 column 25: expecting property name"),
        (b'{"model_type": "\xc3\x28"}', "invalid UTF-8 at byte 16: expected JSON text"),
        (b"\xff\xfe{}", "not JSON at line 1 column 1"),  # a UTF-16 byte order mark
        (b"[1, 2]", "expected a JSON object"),
        (b'"config"', "expected a JSON object"),
        (b"[" * 100_000, "nested too deeply"),
    ],
    ids=[
        "empty",
        "text",
        "truncated",
        "invalid-utf8",
        "utf16-bom",
        "array",
        "string",
        "deep-nesting",
    ],
)
def test_a_file_that_is_not_a_json_object(tmp_path: Path, data: bytes, fragment: str) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(data)
    with pytest.raises(fqk.ConfigError) as caught:
        shape_from_hf_config(path, role="key", tokens=8)
    assert caught.value.path == str(path)
    assert fragment in caught.value.message


def test_every_refusal_is_a_package_error() -> None:
    # A caller can catch one type for every way a config is refused.
    for config in (CONFIGS / "deepseek-v2-lite.json", base_config(num_hidden_layers="x")):
        with pytest.raises(fqk.FibQuantKvError):
            shape_from_hf_config(config, role="key", tokens=8)


# Plans --------------------------------------------------------------------------------------

DTYPE_BYTES = {"f16": 2, "bf16": 2, "f32": 4}

PLANS = [
    # name, tokens, batch, dtype, tokens_per_page, encoded_block_bytes
    ("llama-3.1-8b.json", 8192, 1, None, 256, 72),
    ("llama-3.1-8b.json", 1000, 2, "f32", 256, 72),
    ("qwen2.5-7b.json", 4097, 1, None, 128, 40),
    ("gpt2.json", 1024, 4, "f16", 64, 36),
    ("falcon-7b.json", 300, 3, "bf16", 300, 1),
    ("gemma-2b.json", 17, 1, "f32", 16, 136),
    ("phi-3-mini-4k-instruct.json", 4096, 1, None, 1, 52),
]


@pytest.mark.parametrize(("name", "tokens", "batch", "dtype", "tpp", "ebb"), PLANS)
def test_plan_sizes(
    name: str, tokens: int, batch: int, dtype: str | None, tpp: int, ebb: int
) -> None:
    path = CONFIGS / name
    plan = plan_from_hf_config(
        path, tokens=tokens, batch=batch, dtype=dtype, tokens_per_page=tpp, encoded_block_bytes=ebb
    )
    key = shape_from_hf_config(path, role="key", tokens=tokens, batch=batch, dtype=dtype)
    assert [size.role for size in plan.sizes] == ["key", "value"]
    streams = batch * key.layers * key.kv_heads
    elements = streams * tokens * key.head_dim
    pages = streams * math.ceil(tokens / tpp)
    for size in plan.sizes:
        assert size.elements == elements
        assert size.source_bytes == elements * DTYPE_BYTES[str(key.dtype)]
        assert size.raw_f32_bytes == elements * 4
        assert size.pages == pages
        assert size.encoded_bytes == pages * tpp * ebb
        assert size.compression == pytest.approx(size.source_bytes / (pages * tpp * ebb))


def test_plan_sizes_of_llama_at_8192_tokens() -> None:
    plan = plan_from_hf_config(
        CONFIGS / "llama-3.1-8b.json", tokens=8192, tokens_per_page=256, encoded_block_bytes=72
    )
    key, value = plan.sizes
    assert key.elements == value.elements == 32 * 8 * 8192 * 128 == 268_435_456
    assert key.source_bytes == 512 * 2**20  # bf16
    assert key.raw_f32_bytes == 2**30
    assert key.pages == 32 * 8 * 32 == 8192
    assert key.encoded_bytes == 8192 * 256 * 72 == 144 * 2**20
    assert key.compression == pytest.approx(512 / 144)


def test_plan_pads_the_last_page() -> None:
    plan = plan_from_hf_config(base_config(), tokens=10, tokens_per_page=4, encoded_block_bytes=10)
    size = plan.sizes[0]
    # 4 layers x 2 KV heads, each with 10 tokens in ceil(10 / 4) = 3 pages of 4 blocks.
    assert size.pages == 4 * 2 * 3
    assert size.encoded_bytes == 24 * 4 * 10
    assert size.elements == 4 * 2 * 10 * 16


def test_plan_without_geometry_has_no_page_columns() -> None:
    plan = plan_from_hf_config(CONFIGS / "mistral-7b-v0.1.json", tokens=512)
    assert set(plan.documents) == {"key_shape", "value_shape", "key_layout", "value_layout"}
    assert set(plan.digests) == set(plan.documents)
    for size in plan.sizes:
        assert size.pages is None
        assert size.encoded_bytes is None
        assert size.compression is None
        assert size.elements == 32 * 8 * 512 * 128
        assert size.source_bytes == size.elements * 2


def test_plan_documents_are_what_the_library_derives() -> None:
    path = CONFIGS / "qwen2.5-7b.json"
    plan = plan_from_hf_config(
        path, tokens=2048, batch=2, tokens_per_page=512, encoded_block_bytes=68
    )
    assert set(plan.documents) == {
        "key_shape",
        "value_shape",
        "key_layout",
        "value_layout",
        "page_geometry",
    }
    key = shape_from_hf_config(path, role="key", tokens=2048, batch=2)
    value = shape_from_hf_config(path, role="value", tokens=2048, batch=2)
    assert plan.documents["key_shape"] == key
    assert plan.documents["value_shape"] == value
    assert plan.documents["key_layout"] == fqk.canonical_layout(key)
    assert plan.documents["value_layout"] == fqk.canonical_layout(value)
    geometry = plan.documents["page_geometry"]
    assert geometry == fqk.new_page_geometry(512, 128, 68)
    assert (geometry.vectors_per_block, geometry.raw_vector_bytes) == (1, 512)
    for name in ("key_shape", "value_shape"):
        assert plan.digests[name] == fqk.digest(plan.documents[name])
    assert plan.digests["key_layout"] == fqk.digest(plan.documents["key_layout"], key)
    assert plan.digests["value_layout"] == fqk.digest(plan.documents["value_layout"], value)
    assert plan.digests["page_geometry"] == fqk.digest(geometry, key)
    assert fqk.page_count(geometry, key) == 4


def test_plan_refuses_what_the_shape_refuses() -> None:
    with pytest.raises(fqk.DependencyUnsupported) as caught:
        plan_from_hf_config(CONFIGS / "deepseek-v2-lite.json", tokens=16)
    assert caught.value.pointer == "/kv_lora_rank"


def test_plan_refuses_a_page_longer_than_the_tokens() -> None:
    with pytest.raises(fqk.CorruptPayload) as caught:
        plan_from_hf_config(
            CONFIGS / "llama-3.1-8b.json", tokens=100, tokens_per_page=256, encoded_block_bytes=72
        )
    assert caught.value.pointer == "/tokens_per_page"


def test_plan_needs_both_page_settings_or_neither() -> None:
    with pytest.raises(TypeError, match="go together"):
        plan_from_hf_config(CONFIGS / "llama-3.1-8b.json", tokens=512, tokens_per_page=256)


def test_plan_counts_every_layer_and_the_kv_layers() -> None:
    plan = plan_from_hf_config(CONFIGS / "jamba-v0.1.json", tokens=1024)
    assert plan.layers == 32
    assert plan.kv_layers == (4, 12, 20, 28)
    assert plan.documents["key_shape"].layers == 4
    assert plan.sliding_window is None
    assert plan.windowed_layers == ()
    for size in plan.sizes:
        assert size.held_elements == size.elements == 4 * 8 * 1024 * 128
        assert size.held_source_bytes == size.source_bytes


def test_plan_says_which_layers_keep_a_window_and_holds_less() -> None:
    config = {**base_config(), "layer_types": ["sliding_attention", "full_attention"] * 2}
    config["sliding_window"] = 100
    plan = plan_from_hf_config(config, tokens=1000)
    assert (plan.layers, plan.kv_layers) == (4, (0, 1, 2, 3))
    assert (plan.sliding_window, plan.windowed_layers) == (100, (0, 2))
    per_token = 2 * 16  # kv heads x head size
    for size in plan.sizes:
        assert size.elements == 4 * per_token * 1000
        assert size.held_elements == 2 * per_token * 1000 + 2 * per_token * 100
        assert size.held_source_bytes == size.held_elements * 2
    # A window no smaller than the tokens keeps every token.
    plan = plan_from_hf_config(config, tokens=100)
    assert (plan.sliding_window, plan.windowed_layers) == (None, ())
    assert plan.sizes[0].held_elements == plan.sizes[0].elements
