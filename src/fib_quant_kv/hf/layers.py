"""What each decoder layer of a model keeps of keys and values, as transformers' cache keeps it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fib_quant_kv.errors import ConfigError, DependencyUnsupported
from fib_quant_kv.hf.config import ModelConfig, check_count, read_config, size
from fib_quant_kv.hf.patterns import integer, ruled, sliding_window

FULL, SLIDING, CHUNKED, NONE = "full", "sliding", "chunked", "none"
_LETTERS = {"F": FULL, "S": SLIDING, "C": CHUNKED, "N": NONE}

# Layer types as configs name them (transformers' names, and the older names configs still
# carry), to the kind of cache each keeps.
LAYER_TYPES = {
    "full_attention": FULL,
    "attention": FULL,
    "global": FULL,
    "global_attention": FULL,
    "hybrid": FULL,  # a linear-attention or state-space block beside full attention
    "sliding_attention": SLIDING,
    "local": SLIDING,
    "local_attention": SLIDING,
    "hybrid_sliding": SLIDING,
    "chunked_attention": CHUNKED,
    "linear_attention": NONE,
    "mamba": NONE,
    "mamba2": NONE,
    "conv": NONE,
    "recurrent": NONE,
    "moe": NONE,
    "mlp": NONE,
    "dummy": NONE,
    "none": NONE,
}
# The keys a per_layer_config entry may change that size a layer's cache.
_PER_LAYER_SIZES = ("query_heads", "kv_heads", "head_dim", "value_head_dim")


@dataclass(frozen=True, slots=True)
class LayerCache:
    """What one decoder layer keeps: its kind, window, heads and head sizes."""

    kind: str
    # The window of a sliding or chunked layer (transformers keeps window - 1 tokens of it).
    window: int | None
    query_heads: int
    kv_heads: int
    key_head_dim: int
    value_head_dim: int
    # Tokens held beyond the prompt (CPM-Ant's prompt embeddings).
    extra_tokens: int = 0

    def held_tokens(self, tokens: int) -> int:
        """The tokens of keys and values this layer holds after a forward pass over `tokens`.

        transformers' sliding (and chunked) cache layer keeps the last window - 1 tokens, all
        that the next token attends to besides itself; with a window of 1, the slice it takes
        (`[-window + 1:]`, that is `[0:]`) keeps every token.
        """
        held = tokens
        if self.window is not None and self.window > 1:
            held = min(tokens, self.window - 1)
        return held + self.extra_tokens


@dataclass(frozen=True, slots=True)
class KvLayers:
    """Every decoder layer of a model: what it keeps of keys and values, or why it keeps none."""

    model_type: str
    # One entry per decoder layer: its cache, or None for a layer that holds no keys and values.
    caches: tuple[LayerCache | None, ...]
    # Why each layer without keys and values has none (its layer type: mamba, linear_attention,
    # shared, ...).
    without_kv: Mapping[int, str]
    # The class defaults taken for sizing values the config leaves out (only at the caller's
    # word: class_defaults=True), by the pointer of their key.
    defaults_taken: Mapping[str, int] = field(default_factory=dict)

    @property
    def layers(self) -> int:
        """Every decoder layer of the model."""
        return len(self.caches)

    @property
    def kv_layers(self) -> tuple[int, ...]:
        """The layers that hold keys and values, by index."""
        return tuple(i for i, cache in enumerate(self.caches) if cache is not None)


def kv_layers_from_hf_config(
    config: str | os.PathLike[str] | Mapping[str, Any] | Any,
    *,
    family: str | None = None,
    class_defaults: bool = False,
) -> KvLayers:
    """What each decoder layer of a model keeps of keys and values, from its config.

    The config (a config.json path, a model folder, a mapping or a transformers config object)
    is read as transformers reads it: the family's aliases, nested text_config, class defaults
    and derived values, its layer types and windows, per-layer settings and KV sharing.
    `family` reads it as that family whatever its model_type says. A value that sizes the cache
    (layers, heads, head size) is never guessed: a config that leaves it out is a ConfigError
    naming the key, unless `class_defaults` takes the class's default for it, as transformers
    would (each one taken is listed in `defaults_taken`). What the config lacks or contradicts
    is a ConfigError at its key; a cache v1 cannot describe (latent or compressed attention, no
    KV layer at all) is DependencyUnsupported.
    """
    return layers_of(read_config(config, family, class_defaults))


def layers_of(model: ModelConfig) -> KvLayers:
    """The per-layer caches of a config already read."""
    kinds, why_none, source = layer_kinds(model)
    if all(kind == NONE for kind in kinds):
        raise DependencyUnsupported(
            f"no layer holds keys and values (every layer keeps a state instead, by {source}): "
            "a v1 shape needs at least one KV layer",
            pointer=model.at(source),
        )
    per_layer = _per_layer_overrides(model, len(kinds))
    extra = 0
    if model.family.extra_tokens is not None:
        extra = size(model, "extra_tokens", model.family.extra_tokens)
    caches: list[LayerCache | None] = []
    for index, kind in enumerate(kinds):
        if kind == NONE:
            caches.append(None)
            continue
        caches.append(_layer(model, index, kind, per_layer.get(index, {}), extra))
    return KvLayers(model.family.model_type, tuple(caches), why_none, dict(model.taken))


def _layer(
    model: ModelConfig, index: int, kind: str, overrides: Mapping[str, Any], extra: int
) -> LayerCache:
    values = {name: size(model, name) for name in ("query_heads", "kv_heads", "head_dim")}
    _check_agreement(model, values["head_dim"])
    value_spec = model.family.size("value_head_dim")
    values["value_head_dim"] = (
        values["head_dim"] if value_spec is None else size(model, "value_head_dim")
    )
    for name, spec in model.family.overrides.get(kind, {}).items():
        # An override the class makes through per_layer_config gives way to one the config
        # states; another applies only under its flag.
        if spec.unless_stated is not None and model.stated((spec.unless_stated,))[0]:
            continue
        if spec.only_if is None or model.flag(spec.only_if):
            values[name] = size(model, name, spec)
            if name == "head_dim" and value_spec is None:
                values["value_head_dim"] = values["head_dim"]
    values.update({k: v for k, v in overrides.items() if k in _PER_LAYER_SIZES})
    if "head_dim" in overrides and value_spec is None and "value_head_dim" not in overrides:
        values["value_head_dim"] = values["head_dim"]
    window = None
    if kind in (SLIDING, CHUNKED):
        window = _window(model, index, kind, overrides)
    if values["query_heads"] % values["kv_heads"]:
        kv_spec = model.family.size("kv_heads")
        raise ConfigError(
            f"layer {index}: {values['query_heads']} query heads cannot share "
            f"{values['kv_heads']} KV heads evenly: the query head count must be a multiple of "
            "the KV head count",
            pointer=model.at(*(kv_spec.key or ("num_key_value_heads",))) if kv_spec else "",
        )
    return LayerCache(
        kind,
        window,
        values["query_heads"],
        values["kv_heads"],
        values["head_dim"],
        values["value_head_dim"],
        extra,
    )


def _check_agreement(model: ModelConfig, head_dim: int) -> None:
    """Refuse a stated head_dim the family's model cannot run with (it needs hidden / heads)."""
    spec = model.family.size("head_dim")
    if spec is None or not spec.agree:
        return
    stated, value, path = model.stated(("head_dim",))
    derived = size(model, "hidden") // size(model, "query_heads")
    if stated and value is not None and (value != derived or head_dim != derived):
        raise ConfigError(
            f"head_dim {value!r} is not hidden size / query heads ({derived}), which a "
            f"{model.family.model_type} model needs: remove head_dim or make it {derived}",
            pointer=model.at(*path),
        )


def _window(model: ModelConfig, index: int, kind: str, overrides: Mapping[str, Any]) -> int:
    key = "sliding_window" if kind == SLIDING else "attention_chunk_size"
    window = overrides[key] if key in overrides else _family_window(model, kind)
    if window is None:
        raise ConfigError(
            f"layer {index} is a {kind} layer but its window is not set: expected {key}",
            pointer=model.at(key),
        )
    return check_count(window, key, model.where)


def _family_window(model: ModelConfig, kind: str) -> Any:
    return sliding_window(model) if kind == SLIDING else model.setting("attention_chunk_size")


# Layer kinds -------------------------------------------------------------------------------------


def layer_kinds(model: ModelConfig) -> tuple[list[str], dict[int, str], str]:
    """One kind per decoder layer, why each layer without KV has none, and the key that decided."""
    rules = model.family.layer_kinds
    listed_key = rules.get("list", "layer_types")
    stated, listed, path = model.stated((listed_key,))
    names: list[str]
    if stated and listed is not None:
        names = _listed(model, listed, path)
        source = path[-1]
        _check_count_against_list(model, len(names), source)
    else:
        names, source = ruled(model, rules)
        stated = False
    if rules.get("last") == "F" and names:
        names[-1] = "full_attention"
    extra_names = rules.get("type_names", {})
    kinds = []
    why: dict[int, str] = {}
    for index, name in enumerate(names):
        kind = LAYER_TYPES.get(name) or _LETTERS.get(extra_names.get(name, ""))
        if kind is None:
            raise DependencyUnsupported(
                f"layer type {name!r} is not one whose cache is known: expected one of "
                f"{', '.join(LAYER_TYPES)}",
                pointer=model.at(source, index) if stated else "",
            )
        if kind == NONE:
            why[index] = name
        kinds.append(kind)
    _share(model, kinds, why)
    return kinds, why, source


def _listed(model: ModelConfig, listed: Any, path: tuple[str, ...]) -> list[str]:
    if not isinstance(listed, list) or not listed or not all(isinstance(n, str) for n in listed):
        raise ConfigError(
            f"{path[-1]} must be a list of layer types, got {listed!r}", pointer=model.at(*path)
        )
    return list(listed)


def _check_count_against_list(model: ModelConfig, listed: int, source: str) -> None:
    spec = model.family.size("layers")
    if spec is None or spec.key is None:
        return
    stated, value, path = model.stated(spec.key)
    if stated and value is not None and value != listed:
        raise ConfigError(
            f"{source} lists {listed} layers but {path[-1]} is {value}",
            pointer=model.at(source),
        )


def _share(model: ModelConfig, kinds: list[str], why: dict[int, str]) -> None:
    """Layers that reuse an earlier layer's keys and values store none of their own: the last
    `num_kv_shared_layers` (Gemma 3n, Gemma 4), or those `kv_sharing_modes` marks "reuse"."""
    sharing = model.family.layer_kinds.get("kv_sharing")
    if sharing is not None:
        key = sharing["key"]
        count = model.setting(key)
        count = sharing.get("default", 0) if count is None else integer(model, key, count)
        if count > len(kinds):
            raise ConfigError(
                f"{key} {count} is more than the {len(kinds)} layers", pointer=model.at(key)
            )
        for index in range(len(kinds) - count, len(kinds)):
            if kinds[index] != NONE:
                kinds[index] = NONE
                why[index] = "shared"
    modes = model.setting("kv_sharing_modes")
    if isinstance(modes, list):
        for index, mode in enumerate(modes[: len(kinds)]):
            if mode == "reuse" and kinds[index] != NONE:
                kinds[index] = NONE
                why[index] = "shared"


# Per-layer settings ------------------------------------------------------------------------------


def _per_layer_overrides(model: ModelConfig, layers: int) -> dict[int, dict[str, Any]]:
    """transformers' per_layer_config: a layer's own heads, head size and window."""
    stated, value, path = model.stated(("per_layer_config",))
    if not stated or value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"per_layer_config must map layer indices to settings, got {value!r}",
            pointer=model.at(*path),
        )
    names = {
        spec.name: name
        for name in _PER_LAYER_SIZES
        if (spec := model.family.size(name)) is not None and spec.key is not None
    }
    for alias, target in model.family.aliases.items():
        if target in names:
            names[alias] = names[target]
    found: dict[int, dict[str, Any]] = {}
    for index_text, settings in value.items():
        where = (*path, str(index_text))
        index = int(index_text) if str(index_text).isdigit() else -1
        if not 0 <= index < layers or not isinstance(settings, Mapping):
            raise ConfigError(
                f"per_layer_config keys must be layer indices in 0..{layers - 1} with settings, "
                f"got {index_text!r}",
                pointer=model.at(*where),
            )
        if settings.get("skip"):
            raise DependencyUnsupported(
                f"layer {index} skips {settings['skip']!r}: a layer without its modules is not "
                "one whose cache is known",
                pointer=model.at(*where, "skip"),
            )
        layer: dict[str, Any] = {}
        for key, setting in settings.items():
            if key in names:
                layer[names[key]] = check_count(setting, key, (*model.where, *where))
            elif key in ("sliding_window", "attention_chunk_size"):
                layer[key] = setting
        found[index] = layer
    return found
