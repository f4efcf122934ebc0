"""Model configs read as transformers reads them, and the groups of layers a plan makes of them.

The published configs under tests/data/hf_configs are as their authors wrote them; what each
layer holds is what transformers' own cache holds after a forward pass, which the
`transformers` session (tests/test_transformers_caches.py) checks against the real caches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import fib_quant_kv as fqk
from fib_quant_kv.hf.config import DTYPES
from fib_quant_kv.hf.families import families
from fib_quant_kv.hf.plan import PlanOptionError
from tests.shared import CONFIGS, EXAMPLES

# The worked example of the contract (section 4): Llama-3.1-8B's key cache at 4096 tokens.
WORKED_EXAMPLE_DIGEST = "blake3:388d99e611df08a63740c3eac1466a3428465ccc46022071b57cde066f026fdc"


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CONFIGS / name).read_text(encoding="utf-8"))
    return loaded


def llama(**changes: Any) -> dict[str, Any]:
    """A small Llama config (4 layers, 8 heads, 2 KV heads, hidden 128) with some keys changed;
    a value of None removes the key."""
    config: dict[str, Any] = {
        "model_type": "llama",
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


def held(plan: fqk.Plan) -> list[tuple[str, tuple[int, ...], int, int, int, int]]:
    """Each group: (name, layers, tokens, KV heads, key head size, value head size)."""
    return [
        (
            g.name,
            g.layers,
            g.tokens,
            g.key_shape.kv_heads,
            g.key_shape.head_dim,
            g.value_shape.head_dim,
        )
        for g in plan.groups
    ]


# Published configs: the groups their real caches have --------------------------------------------

SLIDING_26 = tuple(range(0, 26, 2))
FULL_26 = tuple(range(1, 26, 2))


@pytest.mark.parametrize(
    ("name", "tokens", "groups"),
    [
        # No head_dim: hidden 2048 / 32 heads.
        ("tinyllama-1.1b-chat-v1.0.json", 8192, [("", tuple(range(22)), 8192, 4, 64, 64)]),
        # No head_dim: hidden 576 / 9 heads.
        ("smollm2-135m.json", 2048, [("", tuple(range(30)), 2048, 3, 64, 64)]),
        ("llama-3.1-8b.json", 8192, [("", tuple(range(32)), 8192, 8, 128, 128)]),
        # A window of 4096 on every layer: transformers keeps 4095 tokens of a longer prompt.
        ("mistral-7b-v0.1.json", 8192, [("", tuple(range(32)), 4095, 8, 128, 128)]),
        ("mistral-7b-v0.1.json", 4000, [("", tuple(range(32)), 4000, 8, 128, 128)]),
        # sliding_window null: every token.
        ("mistral-7b-instruct-v0.3.json", 8192, [("", tuple(range(32)), 8192, 8, 128, 128)]),
        # use_sliding_window false drops the window of 131072.
        ("qwen2-7b.json", 8192, [("", tuple(range(28)), 8192, 4, 128, 128)]),
        ("phi-3-mini-4k-instruct.json", 4096, [("", tuple(range(32)), 2046, 32, 96, 96)]),
        (
            "gemma-2-2b.json",
            8192,
            [("sliding", SLIDING_26, 4095, 4, 256, 256), ("full", FULL_26, 8192, 4, 256, 256)],
        ),
        # Windows longer than the prompt: one group.
        ("gemma-2-2b.json", 1000, [("", tuple(range(26)), 1000, 4, 256, 256)]),
        (
            "gemma-3-1b-it.json",
            8192,
            [
                ("sliding", tuple(i for i in range(26) if (i + 1) % 6), 511, 1, 256, 256),
                ("full", (5, 11, 17, 23), 8192, 1, 256, 256),
            ],
        ),
        (
            "gpt-oss-20b.json",
            4096,
            [
                ("sliding", tuple(range(0, 24, 2)), 127, 8, 64, 64),
                ("full", tuple(range(1, 24, 2)), 4096, 8, 64, 64),
            ],
        ),
        # Keys of 192, values of 128; sliding layers keep twice the KV heads.
        (
            "mimo-v2-flash.json",
            4096,
            [
                ("full", (0, 5, 11, 17, 23, 29, 35, 41, 47), 4096, 4, 192, 128),
                (
                    "sliding",
                    tuple(i for i in range(48) if i not in (0, 5, 11, 17, 23, 29, 35, 41, 47)),
                    128,
                    8,
                    192,
                    128,
                ),
            ],
        ),
        # Full layers of their own head size and KV heads (global_head_dim, attention_k_eq_v).
        (
            "gemma-4-26b-a4b-it.json",
            4096,
            [
                ("sliding", tuple(i for i in range(30) if (i + 1) % 6), 1023, 8, 256, 256),
                ("full", (5, 11, 17, 23, 29), 4096, 2, 512, 512),
            ],
        ),
        # Chunked layers keep chunk - 1 tokens, as sliding ones do.
        (
            "llama-4-scout-17b-16e-instruct-trimmed.json",
            10000,
            [
                ("chunked", tuple(i for i in range(48) if (i + 1) % 4), 8191, 8, 128, 128),
                ("full", tuple(range(3, 48, 4)), 10000, 8, 128, 128),
            ],
        ),
        ("falcon-7b.json", 2048, [("", tuple(range(32)), 2048, 1, 64, 64)]),
        ("gpt2.json", 1024, [("", tuple(range(12)), 1024, 12, 64, 64)]),
    ],
    ids=lambda v: v if isinstance(v, str) else str(v) if isinstance(v, int) else "",
)
def test_published_configs_plan_the_cache_transformers_holds(
    name: str, tokens: int, groups: list[Any]
) -> None:
    plan = fqk.plan_from_hf_config(CONFIGS / name, tokens=tokens, dtype="bf16")
    assert held(plan) == groups


def test_layers_without_keys_and_values_are_named() -> None:
    # Qwen3-Next: three linear-attention layers to each full-attention one.
    plan = fqk.plan_from_hf_config(CONFIGS / "qwen3-next-80b-a3b.json", tokens=64)
    assert plan.kv_layers == tuple(range(3, 48, 4))
    assert set(plan.without_kv.values()) == {"linear_attention"}
    assert sorted(plan.without_kv) == [i for i in range(48) if (i + 1) % 4]
    # Gemma 3n: its last 10 layers reuse earlier layers' keys and values.
    plan = fqk.plan_from_hf_config(CONFIGS / "gemma-3n-e2b.json", tokens=600)
    assert plan.kv_layers == tuple(range(20))
    assert {i: plan.without_kv[i] for i in range(20, 30)} == dict.fromkeys(range(20, 30), "shared")


def test_llama_key_shape_is_the_contract_worked_example() -> None:
    shape = fqk.shape_from_hf_config(CONFIGS / "llama-3.1-8b.json", role="key", tokens=4096)
    assert fqk.digest(shape) == WORKED_EXAMPLE_DIGEST


@pytest.mark.parametrize("role", ["key", "value"])
def test_llama_shapes_are_the_bundled_examples(role: str) -> None:
    shape = fqk.shape_from_hf_config(CONFIGS / "llama-3.1-8b.json", role=role, tokens=8192)  # type: ignore[arg-type]
    example = fqk.decode((EXAMPLES / f"{role}_shape.json").read_bytes())
    assert shape == example


def test_a_model_folder_is_read_through_its_config_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes((CONFIGS / "tinyllama-1.1b-chat-v1.0.json").read_bytes())
    shape = fqk.shape_from_hf_config(tmp_path, role="key", tokens=64)
    assert (shape.layers, shape.kv_heads, shape.head_dim) == (22, 4, 64)
    with pytest.raises(fqk.ConfigError, match=r"no config\.json in this folder") as caught:
        fqk.shape_from_hf_config(tmp_path / "..", role="key", tokens=64)
    assert caught.value.path is not None


# Values as the family's config class resolves them -----------------------------------------------


def test_head_size_is_hidden_over_heads_where_the_class_derives_it() -> None:
    layers = fqk.kv_layers_from_hf_config(llama(hidden_size=2048, num_attention_heads=32))
    assert {c.key_head_dim for c in layers.caches if c} == {64}
    # A stated head_dim wins.
    layers = fqk.kv_layers_from_hf_config(llama(head_dim=96))
    assert {c.key_head_dim for c in layers.caches if c} == {96}


def test_a_head_size_the_model_never_reads_is_derived_whatever_the_config_says() -> None:
    # GPT-2's attention takes n_embd / n_head; a stray head_dim changes nothing.
    config = {**load("gpt2.json"), "head_dim": 8}
    assert {c.key_head_dim for c in fqk.kv_layers_from_hf_config(config).caches if c} == {64}


def test_a_head_size_the_model_needs_to_agree_is_refused_when_it_does_not() -> None:
    # GPT-NeoX-Japanese sizes its attention from hidden / heads and its rotary from head_dim.
    config = {
        "model_type": "gpt_neox_japanese",
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "head_dim": 8,
    }
    with pytest.raises(fqk.ConfigError, match="hidden size / query heads") as caught:
        fqk.kv_layers_from_hf_config(config)
    assert caught.value.pointer == "/head_dim"
    config["head_dim"] = 16
    assert fqk.kv_layers_from_hf_config(config).caches[0] is not None


def test_keys_are_read_under_the_class_aliases_and_an_alias_wins() -> None:
    gpt2 = load("gpt2.json")
    assert {"n_head", "n_layer", "n_embd"} <= set(gpt2)
    aliased = {
        "model_type": "gpt2",
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "hidden_size": 768,
    }
    assert fqk.kv_layers_from_hf_config(aliased) == fqk.kv_layers_from_hf_config(gpt2)
    # transformers applies an alias after the field it names.
    both = {**gpt2, "num_attention_heads": 6}
    assert {c.query_heads for c in fqk.kv_layers_from_hf_config(both).caches if c} == {6}


def test_a_key_the_class_does_not_read_is_not_an_alias() -> None:
    # FalconConfig (transformers 5.24) reads no n_head: the early RefinedWeb config's names.
    early = load("falcon-40b-refinedweb-early.json")
    with pytest.raises(fqk.ConfigError, match="'RefinedWeb' is not a family") as caught:
        fqk.plan_from_hf_config(early, tokens=8)
    assert caught.value.pointer == "/model_type"
    assert "--family NAME" in caught.value.message
    with pytest.raises(fqk.ConfigError) as caught:
        fqk.plan_from_hf_config(early, tokens=8, family="falcon")
    assert caught.value.pointer == "/num_hidden_layers"
    assert "FalconConfig would take its default 32" in caught.value.message
    assert "the config has n_layer, which other families read as num_hidden_layers" in (
        caught.value.message
    )
    # Stated as FalconConfig names it (the later Falcon-40B config), the same model plans; its
    # new decoder architecture caches a KV head for every query head.
    renamed = {
        **early,
        "num_hidden_layers": 60,
        "num_attention_heads": 128,
        "num_kv_heads": 8,
        "new_decoder_architecture": True,
    }
    cache = fqk.kv_layers_from_hf_config(renamed, family="falcon").caches[0]
    assert cache is not None
    assert (cache.query_heads, cache.kv_heads, cache.key_head_dim) == (128, 128, 64)


@pytest.mark.parametrize(
    ("key", "default"),
    [("num_hidden_layers", 32), ("num_attention_heads", 32), ("hidden_size", 4096)],
)
def test_what_sizes_the_cache_is_never_guessed(key: str, default: int) -> None:
    with pytest.raises(fqk.ConfigError) as caught:
        fqk.plan_from_hf_config(llama(**{key: None}), tokens=8)
    assert caught.value.pointer == f"/{key}"
    assert caught.value.message.startswith(f"no {key}:")
    assert f"LlamaConfig would take its default {default}" in caught.value.message
    assert "--class-defaults" in caught.value.message


def test_class_defaults_are_taken_only_when_asked_and_said() -> None:
    config = load("gemma-3-4b-it.json")
    with pytest.raises(fqk.ConfigError) as caught:
        fqk.plan_from_hf_config(config, tokens=8)
    assert caught.value.pointer == "/text_config/num_attention_heads"
    plan = fqk.plan_from_hf_config(config, tokens=2048, class_defaults=True)
    assert plan.kv.defaults_taken == {
        "/text_config/num_attention_heads": 8,
        "/text_config/num_key_value_heads": 4,
        "/text_config/head_dim": 256,
    }
    assert [(g.name, len(g.layers), g.tokens) for g in plan.groups] == [
        ("sliding", 29, 1023),
        ("full", 5, 2048),
    ]


def test_a_stated_null_takes_the_class_derivation_and_an_absent_key_its_default() -> None:
    qwen2 = {**load("qwen2-7b.json")}
    # Qwen2Config derives a null KV head count from the heads...
    qwen2["num_key_value_heads"] = None
    assert {c.kv_heads for c in fqk.kv_layers_from_hf_config(qwen2).caches if c} == {28}
    # ...but an absent one is the field's default 32, which is not this model's.
    del qwen2["num_key_value_heads"]
    with pytest.raises(fqk.ConfigError, match="Qwen2Config would take its default 32"):
        fqk.kv_layers_from_hf_config(qwen2)


def test_a_null_the_model_cannot_run_with_is_refused() -> None:
    # Qwen2's attention reads head_dim when the config has it, even as null.
    config = {**load("qwen2-7b.json"), "head_dim": None}
    with pytest.raises(fqk.ConfigError, match="head_dim is null") as caught:
        fqk.kv_layers_from_hf_config(config)
    assert caught.value.pointer == "/head_dim"


def test_an_unknown_model_type_is_refused_and_a_family_can_be_named() -> None:
    config = llama(model_type="my_llama")
    with pytest.raises(fqk.ConfigError) as caught:
        fqk.plan_from_hf_config(config, tokens=8)
    assert caught.value.pointer == "/model_type"
    assert "model_type 'my_llama'" in caught.value.message
    assert "--family NAME" in caught.value.message
    plan = fqk.plan_from_hf_config(config, tokens=8, family="llama")
    assert plan.model_type == "llama"
    with pytest.raises(fqk.ConfigError, match="unknown family 'lama'"):
        fqk.plan_from_hf_config(config, tokens=8, family="lama")
    with pytest.raises(fqk.ConfigError, match="no model_type"):
        fqk.plan_from_hf_config(llama(model_type=None), tokens=8)


def test_nested_keys_and_derived_heads_of_their_own_families() -> None:
    # DBRX keeps its KV heads under attn_config.
    dbrx = {
        "model_type": "dbrx",
        "d_model": 6144,
        "n_heads": 48,
        "n_layers": 40,
        "attn_config": {"kv_n_heads": 8},
    }
    assert {
        (c.kv_heads, c.key_head_dim) for c in fqk.kv_layers_from_hf_config(dbrx).caches if c
    } == {(8, 128)}
    del dbrx["attn_config"]
    with pytest.raises(fqk.ConfigError) as caught:
        fqk.kv_layers_from_hf_config(dbrx)
    assert caught.value.pointer == "/attn_config/kv_n_heads"
    # JetMoE's query heads are its KV heads times the experts each token takes.
    jetmoe = {
        "model_type": "jetmoe",
        "num_hidden_layers": 24,
        "num_key_value_heads": 16,
        "num_experts_per_tok": 2,
        "kv_channels": 128,
    }
    cache = fqk.kv_layers_from_hf_config(jetmoe).caches[0]
    assert cache is not None
    assert (cache.query_heads, cache.kv_heads, cache.key_head_dim) == (32, 16, 128)


@pytest.mark.parametrize(
    ("changes", "kv_heads"),
    [
        ({}, 1),  # multi_query
        ({"multi_query": False}, 71),
        # The new decoder architecture broadcasts its KV heads to every query head in the cache.
        ({"new_decoder_architecture": True, "num_kv_heads": 8}, 71),
    ],
)
def test_falcon_kv_heads_follow_its_flags(changes: dict[str, Any], kv_heads: int) -> None:
    config = {**load("falcon-7b.json"), **changes}
    assert {c.kv_heads for c in fqk.kv_layers_from_hf_config(config).caches if c} == {kv_heads}


def test_layers_of_their_own_size_from_per_layer_config_form_groups() -> None:
    config = llama(per_layer_config={"1": {"num_key_value_heads": 4}, "3": {"head_dim": 32}})
    plan = fqk.plan_from_hf_config(config, tokens=16)
    assert [
        (g.name, g.layers, g.key_shape.kv_heads, g.key_shape.head_dim) for g in plan.groups
    ] == [
        ("full1", (0, 2), 2, 16),
        ("full2", (1,), 4, 16),
        ("full3", (3,), 2, 32),
    ]
    with pytest.raises(fqk.ConfigError) as caught:
        fqk.plan_from_hf_config(llama(per_layer_config={"4": {"head_dim": 32}}), tokens=16)
    assert caught.value.pointer == "/per_layer_config/4"


@pytest.mark.parametrize(
    ("window", "tokens", "held_tokens"),
    [(4096, 8192, 4095), (4096, 4095, 4095), (4096, 100, 100), (2, 50, 1), (1, 50, 50)],
)
def test_a_sliding_layer_holds_its_window_less_one(
    window: int, tokens: int, held_tokens: int
) -> None:
    # transformers keeps window - 1 tokens, all the next token attends to besides itself; a
    # window of 1 slices [0:], every token.
    config = {**load("mistral-7b-v0.1.json"), "sliding_window": window}
    assert fqk.plan_from_hf_config(config, tokens=tokens).groups[0].tokens == held_tokens


def test_every_family_of_the_table_is_read_or_refused_with_its_reason() -> None:
    table = families()
    assert len(table) >= 100
    for name, entry in table.items():
        if entry.unsupported is not None:
            with pytest.raises(fqk.DependencyUnsupported, match="cannot describe"):
                fqk.kv_layers_from_hf_config({"model_type": name})


# Groups, shapes, documents -----------------------------------------------------------------------


def test_one_group_keeps_the_plain_names_and_digests() -> None:
    plan = fqk.plan_from_hf_config(
        CONFIGS / "llama-3.1-8b.json", tokens=8192, tokens_per_page=256, encoded_block_bytes=72
    )
    assert [g.name for g in plan.groups] == [""]
    assert list(plan.documents) == [
        "key_shape",
        "key_layout",
        "value_shape",
        "value_layout",
        "page_geometry",
    ]
    for stem in ("key_shape", "value_shape", "key_layout", "value_layout"):
        example = fqk.decode((EXAMPLES / f"{stem}.json").read_bytes())
        assert plan.documents[stem] == example


def test_groups_have_their_documents_under_their_prefix() -> None:
    plan = fqk.plan_from_hf_config(
        CONFIGS / "gemma-2-2b.json", tokens=8192, tokens_per_page=256, encoded_block_bytes=72
    )
    assert [stem for stem in plan.documents if stem.startswith("sliding_")] == [
        "sliding_key_shape",
        "sliding_key_layout",
        "sliding_value_shape",
        "sliding_value_layout",
        "sliding_page_geometry",
    ]
    sliding, full = plan.groups
    assert sliding.key_shape.layers == sliding.value_shape.layers == 13
    assert (sliding.key_shape.tokens, full.key_shape.tokens) == (4095, 8192)
    assert plan.digests["sliding_key_layout"] == fqk.digest(
        plan.documents["sliding_key_layout"], sliding.key_shape
    )
    assert plan.group_of(0) is sliding
    assert plan.group_of(25) is full


def test_a_group_whose_keys_and_values_differ_in_size_has_a_geometry_for_each() -> None:
    plan = fqk.plan_from_hf_config(
        CONFIGS / "mimo-v2-flash.json", tokens=4096, tokens_per_page=64, encoded_block_bytes=40
    )
    full, sliding = plan.groups
    assert set(full.geometries) == {"key", "value"}
    assert full.geometry("key").head_dim == 192  # type: ignore[union-attr]
    assert full.geometry("value").head_dim == 128  # type: ignore[union-attr]
    assert {"full_key_page_geometry", "full_value_page_geometry"} <= set(plan.documents)
    assert sliding.key_shape.kv_heads == 8
    assert full.key_shape.kv_heads == 4


def test_a_page_longer_than_a_group_holds_is_refused_naming_the_group() -> None:
    with pytest.raises(PlanOptionError, match="the sliding layers hold: choose at most 127"):
        fqk.plan_from_hf_config(
            CONFIGS / "gpt-oss-20b.json",
            tokens=4096,
            dtype="bf16",
            tokens_per_page=256,
            encoded_block_bytes=40,
        )
    with pytest.raises(TypeError, match="go together"):
        fqk.plan_from_hf_config(CONFIGS / "gpt-oss-20b.json", tokens=64, tokens_per_page=8)


def test_one_shape_is_refused_where_the_layers_hold_differently() -> None:
    with pytest.raises(fqk.DependencyUnsupported) as caught:
        fqk.shape_from_hf_config(CONFIGS / "gemma-2-2b.json", role="key", tokens=8192)
    message = caught.value.message
    assert "sliding: layers 0, 2" in message
    assert "full: layers 1, 3" in message
    assert "plan_from_hf_config" in message
    # Where the windows do not bite, one shape describes every layer.
    shape = fqk.shape_from_hf_config(CONFIGS / "gemma-2-2b.json", role="key", tokens=1000)
    assert (shape.layers, shape.tokens) == (26, 1000)


def test_sizes_are_each_groups_and_their_total() -> None:
    plan = fqk.plan_from_hf_config(
        CONFIGS / "gemma-2-2b.json",
        tokens=8192,
        dtype="bf16",
        tokens_per_page=256,
        encoded_block_bytes=72,
    )
    sliding, full = plan.groups
    assert sliding.size.elements == 2 * 13 * 4 * 4095 * 256
    assert sliding.size.source_bytes == sliding.size.elements * 2
    assert sliding.size.raw_f32_bytes == sliding.size.elements * 4
    assert sliding.size.pages_per_stream == 16  # ceil(4095 / 256)
    assert sliding.size.pages == 2 * 13 * 4 * 16
    assert sliding.size.encoded_bytes == sliding.size.pages * 256 * 72
    assert full.size.pages_per_stream == 32
    total = plan.total
    assert total.elements == sliding.size.elements + full.size.elements
    assert total.pages == sliding.size.pages + full.size.pages  # type: ignore[operator]
    assert total.pages_per_stream is None
    assert total.compression == pytest.approx(total.source_bytes / total.encoded_bytes)  # type: ignore[operator]


def test_a_plan_without_a_geometry_has_no_pages() -> None:
    plan = fqk.plan_from_hf_config(CONFIGS / "mistral-7b-v0.1.json", tokens=512)
    assert set(plan.documents) == {"key_shape", "value_shape", "key_layout", "value_layout"}
    assert plan.total.pages is None
    assert plan.total.compression is None


# Latent and other caches v1 cannot describe ------------------------------------------------------


def test_latent_attention_is_refused_with_its_reason() -> None:
    config = {"model_type": "deepseek_v2", "kv_lora_rank": 512}
    with pytest.raises(fqk.ConfigError, match="deepseek_v2"):
        fqk.plan_from_hf_config(config, tokens=8)  # not a family of the table
    nested = {"model_type": "gemma3", "text_config": {"kv_lora_rank": 512}}
    with pytest.raises(fqk.DependencyUnsupported, match="latent attention") as caught:
        fqk.plan_from_hf_config(nested, tokens=8)
    assert caught.value.pointer == "/text_config/kv_lora_rank"
    with pytest.raises(fqk.DependencyUnsupported, match="latent attention") as caught:
        fqk.plan_from_hf_config({"model_type": "minicpm3"}, tokens=8)


# Refusals at the config's own key ----------------------------------------------------------------

REFUSALS: list[Any] = [
    pytest.param(llama(hidden_size=100), fqk.DependencyUnsupported, "/hidden_size", "not a whole"),
    pytest.param(llama(num_hidden_layers=32.0), fqk.ConfigError, "/num_hidden_layers", "1..="),
    pytest.param(llama(num_hidden_layers=2**32), fqk.ConfigError, "/num_hidden_layers", "1..="),
    pytest.param(llama(num_hidden_layers="32"), fqk.ConfigError, "/num_hidden_layers", "1..="),
    pytest.param(llama(num_hidden_layers=True), fqk.ConfigError, "/num_hidden_layers", "1..="),
    pytest.param(llama(num_attention_heads=0), fqk.ConfigError, "/num_attention_heads", "1..="),
    pytest.param(llama(num_key_value_heads=-8), fqk.ConfigError, "/num_key_value_heads", "1..="),
    pytest.param(llama(num_key_value_heads=3), fqk.ConfigError, "/num_key_value_heads", "evenly"),
    pytest.param(llama(torch_dtype="int8"), fqk.ConfigError, "/torch_dtype", "int8"),
    pytest.param(
        {"model_type": "gemma3", "text_config": llama(model_type=None, num_hidden_layers=2.5)},
        fqk.ConfigError,
        "/text_config/num_hidden_layers",
        "1..=",
    ),
    pytest.param(
        llama(layer_types=["mamba"] * 4),
        fqk.DependencyUnsupported,
        "/layer_types",
        "no layer holds keys and values",
    ),
    pytest.param(
        llama(layer_types=["full_attention", "cross_attention"] * 2),
        fqk.DependencyUnsupported,
        "/layer_types/1",
        "'cross_attention' is not one whose cache is known",
    ),
    pytest.param(
        llama(layer_types=["full_attention"] * 3),
        fqk.ConfigError,
        "/layer_types",
        "lists 3 layers but num_hidden_layers is 4",
    ),
    pytest.param(
        llama(layer_types=["sliding_attention"] * 4),
        fqk.ConfigError,
        "/sliding_window",
        "its window is not set",
    ),
    pytest.param(
        {**llama(), "model_type": "nemotron_h", "hybrid_override_pattern": "M*X"},
        fqk.ConfigError,
        "/hybrid_override_pattern",
        "must be a string of",
    ),
    pytest.param(
        {**llama(), "model_type": "bamba", "layer_types": ["attention"] * 4},
        fqk.ConfigError,
        "/layer_types",
        "computes its layer list itself",
    ),
]


@pytest.mark.parametrize(("config", "error", "where", "fragment"), REFUSALS)
def test_refusals(
    config: dict[str, Any], error: type[fqk.FibQuantKvError], where: str, fragment: str
) -> None:
    with pytest.raises(fqk.FibQuantKvError) as caught:
        fqk.plan_from_hf_config(config, tokens=16)
    assert type(caught.value) is error
    assert caught.value.pointer == where
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "not JSON at line 1 column 1: expecting value"),
        (b'{"num_hidden_layers": 2,', "not JSON at line 1 column 25: expecting property name"),
        (b'{"model_type": "\xc3\x28"}', "invalid UTF-8 at byte 16: expected JSON text"),
        (b"[1, 2]", "expected a JSON object"),
        (b"[" * 100_000, "nested too deeply"),
    ],
    ids=["empty", "truncated", "invalid-utf8", "array", "deep-nesting"],
)
def test_a_file_that_is_not_a_json_object(tmp_path: Path, data: bytes, fragment: str) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(data)
    with pytest.raises(fqk.ConfigError) as caught:
        fqk.plan_from_hf_config(path, tokens=8)
    assert caught.value.path == str(path)
    assert fragment in caught.value.message


def test_a_config_object_is_read_through_to_dict() -> None:
    class Config:
        def to_dict(self) -> dict[str, Any]:
            return load("llama-3.1-8b.json")

    assert fqk.shape_from_hf_config(Config(), role="value", tokens=16) == fqk.shape_from_hf_config(
        CONFIGS / "llama-3.1-8b.json", role="value", tokens=16
    )
    with pytest.raises(TypeError, match="transformers config object"):
        fqk.shape_from_hf_config(object(), role="key", tokens=8)


# Dtypes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), sorted(DTYPES.items()))
def test_every_dtype_spelling_is_accepted_in_config_and_argument(name: str, expected: str) -> None:
    assert fqk.shape_from_hf_config(llama(torch_dtype=name), role="key", tokens=8).dtype == expected
    assert fqk.shape_from_hf_config(llama(), role="key", tokens=8, dtype=name).dtype == expected


def test_the_language_models_dtype_wins_over_the_outer_one() -> None:
    config = {
        "model_type": "gemma3",
        "torch_dtype": "bfloat16",
        "text_config": {
            "hidden_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 8,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "torch_dtype": "float32",
        },
    }
    assert fqk.shape_from_hf_config(config, role="key", tokens=8).dtype == "f32"


def test_a_config_without_a_dtype_needs_the_argument() -> None:
    with pytest.raises(fqk.ConfigError) as caught:
        fqk.shape_from_hf_config(CONFIGS / "gpt2.json", role="key", tokens=8)
    assert caught.value.pointer == "/torch_dtype"
    assert "--dtype on the command line" in caught.value.message
    assert "dtype= in Python" in caught.value.message


def test_torch_dtype_and_dtype_that_disagree_are_refused() -> None:
    config = llama(torch_dtype="float16", dtype="bfloat16")
    with pytest.raises(fqk.ConfigError) as caught:
        fqk.shape_from_hf_config(config, role="key", tokens=8)
    assert caught.value.pointer == "/dtype"
    assert fqk.shape_from_hf_config(config, role="key", tokens=8, dtype="f16").dtype == "f16"


# The family table ---------------------------------------------------------------------------------


def test_the_family_table_is_valid_against_its_schema() -> None:
    from jsonschema import Draft202012Validator

    from fib_quant_kv.hf import families as table

    schema = json.loads(Path(table.__file__).with_name("families.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    errors = list(Draft202012Validator(schema).iter_errors(json.loads(table.table_text())))
    assert errors == [], [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


def test_every_rule_and_derivation_the_table_names_is_read() -> None:
    from fib_quant_kv.hf.families import DERIVATIONS
    from fib_quant_kv.hf.patterns import RULE_NAMES

    for name, entry in families().items():
        if entry.text_config is not None:
            assert entry.text_config in families(), name
            continue
        if entry.unsupported is not None:
            continue
        assert entry.layer_kinds.get("rule", "window") in RULE_NAMES, name
        specs = [*entry.sizes.values()]
        for override in entry.overrides.values():
            specs.extend(override.values())
        for spec in specs:
            assert spec.derive is None or spec.derive in DERIVATIONS, name
            if spec.agree or (spec.derive or "").startswith(("hidden", "2 * hidden")):
                assert "hidden" in entry.sizes, f"{name} derives from a hidden size it lacks"
