"""Plans against the caches transformers really builds, and the family table against its classes.

Every decoder family that builds on CPU is built tiny, in scenarios a plan must get right:
windows shorter than the prompt, no head_dim, a head_dim that is not hidden / heads, a null
KV head count, keys under their aliases; each config in the forms users meet (as written,
`to_dict()`, as `save_pretrained` writes it, the object). The plan's groups must be the real
cache after one forward pass, layer by layer, and `check_cache` must accept that cache and
refuse it broken. Published configs of well-known models, as their authors wrote them, are
built at full size on the meta device (shapes without data).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fib_quant_kv as fqk
from fib_quant_kv.hf.families import Family, families
from fib_quant_kv.hf.plan import Plan
from tests.shared import DATA

# The `transformers` nox session sets this: there a missing transformers is a failure.
if os.environ.get("FIB_QUANT_KV_REQUIRE_TRANSFORMERS") == "1":
    import torch
    import transformers
else:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

BATCH = 2
TOKENS = 6
# Small enough that windowed layers drop tokens within TOKENS.
WINDOW = 4
# The layer count a tiny config states, unless its family needs another to show its pattern.
LAYERS = 8

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
    "dots1": {"n_routed_experts": 4, "num_experts_per_tok": 2, "n_shared_experts": 1},
    "gpt_neo": {"attention_types": [[["global", "local"], 4]]},
    "bamba": {"attn_layer_indices": [1, 4], "mamba_n_heads": 4, "mamba_d_head": 32},
    "granitemoehybrid": {
        "layer_types": ["mamba", "attention", "mamba", "mamba", "attention", "mamba"],
        "mamba_n_heads": 4,
        "mamba_d_head": 32,
    },
    "falcon_h1": {"mamba_n_heads": 4, "mamba_d_head": 32, "mamba_d_ssm": 128},
    "lfm2_moe": {
        "layer_types": ["conv", "full_attention", "conv", "full_attention"],
        "num_dense_layers": 1,
    },
    "lfm2": {"full_attn_idxs": [2, 5]},
    "dbrx": {"attn_config": {"kv_n_heads": 2, "rope_theta": 10000.0, "clip_qkv": 8.0}},
    "nemotron_h": {"hybrid_override_pattern": "M-M*-E*"},
    "jamba": {"attn_layer_period": 4, "attn_layer_offset": 1},
    "qwen2": {"use_sliding_window": True, "max_window_layers": 3},
    "qwen2_moe": {"use_sliding_window": True, "max_window_layers": 3},
    "qwen3": {"use_sliding_window": True, "max_window_layers": 3},
    "smollm3": {"use_sliding_window": True},
    "zamba": {"num_hidden_layers": 12, "attn_layer_period": 3, "attn_layer_offset": 1},
    "gemma3n_text": {"num_kv_shared_layers": 3},
    "gemma4_text": {"num_kv_shared_layers": 0, "global_head_dim": 32},
    "gemma4_unified_text": {"num_kv_shared_layers": 0, "global_head_dim": 32},
    "cpmant": {"prompt_length": 4, "dim_head": 16},
    "hunyuan_v1_dense": {"head_dim": 16},
    "hunyuan_v1_moe": {"head_dim": 16},
    "ministral": {"head_dim": 16},
    "nemotron": {"num_key_value_heads": 2},
    "inkling_text": {"swa_num_attention_heads": 4, "swa_num_key_value_heads": 4, "swa_head_dim": 8},
    "inkling2_text": {
        "swa_num_attention_heads": 4,
        "swa_num_key_value_heads": 4,
        "swa_head_dim": 8,
    },
    "jetmoe": {"kv_channels": 16},
    "mimo_v2_flash": {"v_head_dim": 8},
    "glm4_moe_lite": {"num_key_value_heads": 4},
    "minicpm3": {"num_key_value_heads": 4},
    "sarvam_mla": {"num_key_value_heads": 4},
    "trocr": {"decoder_attention_heads": 4},
    "zamba2": {"num_hidden_layers": 54},
}
for _name in ("bamba", "granitemoehybrid", "lfm2"):
    EXTRA[_name].setdefault("num_hidden_layers", 6)
EXTRA["lfm2_moe"]["num_hidden_layers"] = 4
EXTRA["nemotron_h"]["num_hidden_layers"] = 7

# The families that build on CPU; those the table marks unsupported are checked to be refused.
# Every family of the table transformers builds as a causal LM (a text sub-family such as
# emu3_text_model is built through its composite).
BUILT = sorted(name for name in families() if name in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)

ROWS: list[tuple[str, str, str, str, str]] = []


# Configs -----------------------------------------------------------------------------------------


def _table(name: str) -> Family:
    return families()[name]


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


def authored(model_type: str, **changes: Any) -> dict[str, Any]:
    """The config as its authors would write it: the model type, its sizes, what differs."""
    kwargs = tiny(transformers.AutoConfig.for_model(model_type).to_dict())
    entry, scope = _table(model_type), kwargs
    if entry.text_config is not None:
        scope = kwargs.setdefault("text_config", {})
        inner = scope.get("model_type") if entry.text_config_auto else None
        entry = _table(inner or entry.text_config)
    layers = entry.size("layers")
    if layers is not None and layers.key is not None:
        scope[layers.name] = LAYERS
    if scope is not kwargs:
        scope.update(EXTRA.get(entry.model_type, {}))
    for key, value in {**EXTRA.get(model_type, {}), **changes}.items():
        if value is ...:
            kwargs.pop(key, None)
        elif isinstance(value, dict) and isinstance(kwargs.get(key), dict):
            kwargs[key] = {**kwargs[key], **value}
        else:
            kwargs[key] = value
    return {"model_type": model_type, **kwargs}


def forms(config: Any, written: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """The same config as written, as to_dict(), as save_pretrained writes it, as an object."""
    yield "authored", json.loads(json.dumps(written))
    yield "to_dict", json.loads(config.to_json_string(use_diff=False))
    yield "saved", json.loads(config.to_json_string(use_diff=True))
    yield "object", config


# Real caches -------------------------------------------------------------------------------------

# What one layer of a cache holds, as compared: (batch, kv heads, tokens, key head size, value
# head size), or None.
Held = tuple[int, int, int, int, int] | None


# Composites whose other towers need packages the session does not install: their language
# model is built alone (its cache is the composite's).
TEXT_ONLY = {"gemma3n": "its vision tower needs timm"}


def forward(config: Any, *, device: str = "cpu", tokens: int = TOKENS, batch: int = BATCH) -> Any:
    """The cache after one forward pass over `tokens` tokens (on the meta device: shapes only)."""
    if config.model_type in TEXT_ONLY:
        config = config.text_config
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "meta" else torch.float32
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
    vocab = getattr(config, "vocab_size", None) or 256
    ids = torch.randint(3, min(200, vocab), (batch, tokens)) if device == "cpu" else None
    if ids is None:
        ids = torch.zeros((batch, tokens), dtype=torch.long, device=device)
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
    cache = getattr(out, "cache", None)
    del model, out
    gc.collect()
    return cache


def held(cache: Any) -> list[Held]:
    """Each layer of a transformers cache, as compared."""
    found: list[Held] = []
    for layer in cache.layers:
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        if keys is None or keys.numel() == 0:
            found.append(None)
            continue
        assert keys.shape[:3] == values.shape[:3], "keys and values differ in their first axes"
        found.append((keys.shape[0], keys.shape[1], keys.shape[2], keys.shape[3], values.shape[3]))
    return found


def planned(plan: Plan) -> list[Held]:
    """Each layer as the plan says it holds."""
    found: list[Held] = []
    for index in range(plan.layers):
        group = plan.group_of(index)
        if group is None:
            found.append(None)
            continue
        key, value = group.key_shape, group.value_shape
        found.append((key.batch, key.kv_heads, key.tokens, key.head_dim, value.head_dim))
    return found


def describe(layers: list[Held]) -> str:
    """A cache per layer kind: `13x[2,4,3,256] 13x[2,4,6,256] 4x-`."""
    counts: dict[str, int] = {}
    for item in layers:
        text = "-" if item is None else "[" + ",".join(map(str, item[:4])) + "]"
        if item is not None and item[4] != item[3]:
            text += f"/{item[4]}"
        counts[text] = counts.get(text, 0) + 1
    return " ".join(f"{n}x{text}" for text, n in counts.items())


def describe_plan(plan: Plan) -> str:
    return " ".join(
        f"{group.name or 'all'}:{len(group.layers)}x{group.tokens}t" for group in plan.groups
    )


def compare(name: str, plan: Plan, cache: Any) -> None:
    """The plan's groups are the real cache, layer by layer; check_cache accepts it."""
    real = held(cache)
    want = planned(plan)
    # A cache made without the config (MiniMax's) appends layers as they are used: its trailing
    # layers without keys and values may be missing.
    real += [None] * (len(want) - len(real))
    assert len(real) == len(want), f"{name}: {len(real)} cache layers, {len(want)} planned"
    for index, (got, expected) in enumerate(zip(real, want, strict=True)):
        assert got == expected, f"{name}: layer {index}: cache {got}, plan {expected}"
    fqk.check_cache(cache, plan)


# The table against the classes -------------------------------------------------------------------


def _field_defaults(cls: type) -> dict[str, Any]:
    return {
        f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING
    }


@pytest.mark.parametrize("name", sorted(families()))
def test_the_family_table_is_its_class(name: str) -> None:
    """Class names, aliases and the class defaults the table records are the classes' own."""
    entry = _table(name)
    cls = CONFIG_MAPPING[name]
    assert entry.config_class == cls.__name__
    for alias, target in entry.aliases.items():
        assert cls.attribute_map.get(alias) == target, f"{name}: alias {alias}"
    defaults = _field_defaults(cls)
    specs = [spec for spec in entry.sizes.values()]
    for override in entry.overrides.values():
        specs.extend(override.values())
    for spec in specs:
        if spec.key is not None and len(spec.key) == 1 and spec.key[0] in defaults:
            assert spec.default == defaults[spec.key[0]], f"{name}: default of {spec.key[0]}"
    for key, value in entry.defaults.items():
        if key in defaults:
            assert value == defaults[key], f"{name}: default of {key}"
    # Every key the class maps that the table reads is among the aliases.
    read = {spec.name for spec in specs if spec.key is not None} | set(entry.defaults)
    read.add(entry.layer_kinds.get("list", "layer_types"))
    for alias, target in cls.attribute_map.items():
        if target in read:
            assert entry.aliases.get(alias) == target, f"{name}: alias {alias} -> {target} missing"


# Scenarios ---------------------------------------------------------------------------------------

_HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model")
_HEAD_KEYS = ("head_dim", "kv_channels", "attention_head_dim")


def _scenario(model_type: str, scenario: str) -> dict[str, Any] | None:
    """The config of a scenario, or None where the family has nothing to show for it."""
    base = authored(model_type)
    scope = base.get("text_config", base)
    if scenario == "tiny":
        return base
    if scenario == "no head_dim":
        # Another hidden size, so a head size derived from it (96 / 4 = 24) is not TINY's 16.
        for key in _HEAD_KEYS:
            scope.pop(key, None)
        for key in _HIDDEN_KEYS:
            if key in scope:
                scope[key] = 96
        scope.update(NO_HEAD_DIM_EXTRA.get(model_type, {}))
        return base
    if scenario == "head_dim is not hidden / heads":
        if "head_dim" not in scope:
            return None
        scope["head_dim"] = 8
        return base
    if scenario == "null KV heads":
        if "num_key_value_heads" not in scope:
            return None
        scope["num_key_value_heads"] = None
        return base
    if scenario == "aliases":
        aliases = _table(model_type).aliases
        used = False
        for alias, target in aliases.items():
            if target in scope and alias not in scope:
                scope[alias] = scope.pop(target)
                used = True
        return base if used else None
    raise ValueError(scenario)


SCENARIOS = ("tiny", "no head_dim", "head_dim is not hidden / heads", "null KV heads", "aliases")


def _language_model_entry(model_type: str, written: dict[str, Any]) -> Family:
    entry = _table(model_type)
    if entry.text_config is None:
        return entry
    inner = written.get("text_config", {}).get("model_type") if entry.text_config_auto else None
    return _table(inner or entry.text_config)


# Families whose mamba blocks need other sizes beside another hidden size.
NO_HEAD_DIM_EXTRA: dict[str, dict[str, Any]] = {
    "bamba": {"mamba_d_head": 48},
    "granitemoehybrid": {"mamba_d_head": 48},
}


def _stated(written: dict[str, Any], key: str) -> bool:
    scope = written.get("text_config", written)
    return key in written or (isinstance(scope, dict) and key in scope)


@pytest.mark.parametrize(
    ("model_type", "scenario"),
    [pytest.param(m, s, id=f"{m}:{s}") for m in BUILT for s in SCENARIOS],
)
def test_the_plan_is_the_real_cache(model_type: str, scenario: str) -> None:
    written = _scenario(model_type, scenario)
    if written is None:
        pytest.skip(f"{model_type} has nothing to show for {scenario}")
    entry = _language_model_entry(model_type, written)
    real: Any
    try:
        config = transformers.AutoConfig.for_model(**json.loads(json.dumps(written)))
        real = forward(config)
    except Exception as exc:  # transformers cannot build or run it
        real = exc
    ours: Plan | fqk.FibQuantKvError
    try:
        ours = fqk.plan_from_hf_config(written, tokens=TOKENS, batch=BATCH, dtype="f32")
    except fqk.FibQuantKvError as exc:
        ours = exc
    if isinstance(ours, fqk.FibQuantKvError):
        key = ours.pointer.rsplit("/", 1)[-1]
        if isinstance(real, Exception):
            verdict = "both refuse"
        elif isinstance(ours, fqk.DependencyUnsupported):
            # Only a cache v1 cannot describe: the table says why, or the config is latent.
            assert entry.unsupported or _stated(written, "kv_lora_rank"), f"{model_type}: {ours}"
            verdict = "unsupported"
        else:
            # A sizing key the config leaves out: transformers takes its class default, which
            # a plan never guesses.
            assert isinstance(ours, fqk.ConfigError), ours
            assert ours.message.startswith(("no ", f"{key} is absent")), ours
            assert not _stated(written, key), f"{model_type}: refused {key}, which is stated"
            verdict = f"refused: no {key}"
        ROWS.append(
            (
                model_type,
                scenario,
                "-" if isinstance(real, Exception) else describe(held(real)),
                "-",
                verdict,
            )
        )
        return
    assert not isinstance(real, Exception), (
        f"{model_type}: planned, but transformers fails: {real!r}"
    )
    assert entry.unsupported is None, f"{model_type} is unsupported, yet planned"
    compare(f"{model_type} ({scenario})", ours, real)
    if scenario == "tiny":
        _forms_agree(model_type, config, written, ours)
        _broken_caches_refused(model_type, real, ours)
    ROWS.append((model_type, scenario, describe(held(real)), describe_plan(ours), "same"))


def _forms_agree(model_type: str, config: Any, written: dict[str, Any], plan: Plan) -> None:
    """Every form of the config gives the same layers."""
    for form, value in forms(config, written):
        got = fqk.kv_layers_from_hf_config(value)
        assert got.caches == plan.kv.caches, f"{model_type}: the {form} form differs"


def _broken_caches_refused(model_type: str, cache: Any, plan: Plan) -> None:
    """check_cache refuses the real cache changed in each way a cache can be wrong."""
    layers = [
        None if k is None or k.numel() == 0 else (k, v)
        for k, v in ((getattr(x, "keys", None), getattr(x, "values", None)) for x in cache.layers)
    ]
    layers += [None] * (plan.layers - len(layers))
    fqk.check_cache(layers, plan)
    fqk.check_cache(tuple(layers), plan)
    first = plan.kv_layers[0]
    keys, values = layers[first]  # type: ignore[misc]

    def refused(changed: list[Any], *words: str) -> None:
        with pytest.raises(fqk.ArrayMismatch) as caught:
            fqk.check_cache(changed, plan)
        for word in words:
            assert word in str(caught.value), f"{model_type}: {caught.value}"

    refused(layers[:-1], "layers")
    refused([*layers[:first], None, *layers[first + 1 :]], f"layer {first}", "holds no keys")
    refused(
        [*layers[:first], (keys.half(), values), *layers[first + 1 :]],
        f"layer {first} keys",
        "dtype",
    )
    short = (keys, values[:, :, 1:, :])
    refused([*layers[:first], short, *layers[first + 1 :]], f"layer {first} values", "tokens")
    if plan.without_kv:
        empty = next(iter(plan.without_kv))
        refused(
            [*layers[:empty], (keys, values), *layers[empty + 1 :]], f"layer {empty}", "none there"
        )
    if len(plan.groups) > 1:
        other = plan.groups[1].layers[0]
        a, b = plan.groups[0].layers[0], other
        if planned(plan)[a] != planned(plan)[b]:
            swapped = list(layers)
            swapped[a], swapped[b] = swapped[b], swapped[a]
            refused(swapped, f"layer {a}")
    transposed = (keys.transpose(2, 3).contiguous().transpose(2, 3), values)
    if keys.shape[2] > 1 and keys.shape[3] > 1:
        refused([*layers[:first], transposed, *layers[first + 1 :]], "token_stride")


# Published configs -------------------------------------------------------------------------------

PUBLISHED = DATA / "hf_configs"


def _published() -> list[Path]:
    return sorted(PUBLISHED.glob("*.json"))


# Published configs transformers 5.24 does not read, and what the plan says instead.
PUBLISHED_REFUSED = {
    # Its text_config leaves out the head counts and head size (Gemma3TextConfig's defaults are
    # the 4B model's): planned only with class_defaults, below.
    "gemma-3-4b-it": "no num_attention_heads",
    # The early Falcon-40B release, written for its own remote code (RefinedWeb), before
    # transformers had a Falcon class: its model_type is no transformers family.
    "falcon-40b-refinedweb-early": "model_type 'RefinedWeb' is not a family",
}

# Published configs planned with the class's defaults for what they leave out, as transformers
# reads them.
CLASS_DEFAULTS = {"gemma-3-4b-it"}

# What a full-size build on the meta device cannot run (data-dependent MoE routing), shrunk where
# the shrinking cannot touch the cache: the plan of the shrunk config must be the plan of the
# published one, which the test checks.
CPU_SHRINK: dict[str, dict[str, Any]] = {
    "gemma-4-26b-a4b-it": {
        "hidden_size": 64,
        "intermediate_size": 16,
        "moe_intermediate_size": 8,
        "num_experts": 2,
        "top_k_experts": 1,
        "vocab_size": 64,
        "vocab_size_per_layer_input": 64,
        "hidden_size_per_layer_input": 8,
    },
}
# Settings of the weights that no cache depends on; a build without them runs on any machine.
WEIGHTS_ONLY = ("quantization_config",)


def _language_model(written: dict[str, Any]) -> dict[str, Any]:
    inner = written.get("text_config")
    return inner if isinstance(inner, dict) else written


@pytest.mark.parametrize("path", _published(), ids=lambda p: p.stem)
def test_published_configs_plan_their_real_cache(path: Path) -> None:
    """As their authors wrote them, at full size on the meta device, with a prompt longer than
    any window."""
    written = json.loads(path.read_text(encoding="utf-8"))
    if path.stem in PUBLISHED_REFUSED:
        with pytest.raises(fqk.ConfigError, match=PUBLISHED_REFUSED[path.stem]):
            fqk.plan_from_hf_config(written, tokens=8, dtype="bf16")
        ROWS.append((path.stem, "published", "-", "-", "refused: " + PUBLISHED_REFUSED[path.stem]))
        if path.stem not in CLASS_DEFAULTS:
            return
    taking = path.stem in CLASS_DEFAULTS
    kv = fqk.kv_layers_from_hf_config(written, class_defaults=taking)
    assert bool(kv.defaults_taken) == taking
    windows = [c.window for c in kv.caches if c is not None and c.window is not None]
    tokens = max(windows) + 2 if windows else 8
    # The meta device builds in bf16, the CPU in f32.
    device = "cpu" if path.stem in CPU_SHRINK else "meta"
    dtype = "f32" if device == "cpu" else "bf16"
    plan = fqk.plan_from_hf_config(
        written, tokens=tokens, batch=1, dtype=dtype, class_defaults=taking
    )
    built = {k: v for k, v in written.items() if k not in WEIGHTS_ONLY}
    if path.stem in CPU_SHRINK:
        built = json.loads(json.dumps(built))
        _language_model(built).update(CPU_SHRINK[path.stem])
    shrunk = fqk.plan_from_hf_config(
        built, tokens=tokens, batch=1, dtype=dtype, class_defaults=taking
    )
    assert shrunk.digests == plan.digests, "what was shrunk or dropped touches the cache"
    config = transformers.AutoConfig.for_model(**built)
    if getattr(config, "text_config", None) is not None:
        config = config.text_config
    cache = forward(config, device=device, tokens=tokens, batch=1)
    compare(path.stem, plan, cache)
    sizes = sorted({(c.key_head_dim, c.value_head_dim) for c in kv.caches if c is not None})
    ROWS.append(
        (
            path.stem,
            f"published, {tokens} tokens",
            describe(held(cache)),
            describe_plan(plan),
            f"same; head sizes {', '.join(f'{k}/{v}' if k != v else str(k) for k, v in sizes)}",
        )
    )


def test_zz_print_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert ROWS, "no family ran"
    header = ("family", "scenario", "real cache per layer kind", "plan groups", "verdict")
    widths = [min(max(len(row[i]) for row in (header, *ROWS)), 60) for i in range(4)]
    with capsys.disabled():
        print(f"\ntransformers {transformers.__version__}, torch {torch.__version__}")
        print(
            f"batch {BATCH}, {TOKENS} tokens, windows of {WINDOW}; published configs at full size"
        )
        for row in (header, *ROWS):
            cells = [
                c if len(c) <= w else c[: w - 3] + "..." for c, w in zip(row, widths, strict=False)
            ]
            print(
                "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + "  " + row[4]
            )
