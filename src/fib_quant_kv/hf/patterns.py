"""Which of a model's layers are full, sliding, chunked or hold no KV: the layer rules its
family's entry names (families.json), each a reader of the class's own config keys."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fib_quant_kv.errors import ConfigError
from fib_quant_kv.hf.config import ModelConfig, size


def sliding_window(model: ModelConfig) -> Any:
    """The window of the sliding layers, as the family's class leaves it (None: no window)."""
    spec = model.family.window
    stated, value, _ = model.stated((spec.key,))
    if not stated:
        value = model.family.defaults.get(spec.key)
    if spec.source is not None:
        source, add, divide, falsy = spec.source
        from_source = model.stated((source,))
        source_value = from_source[1] if from_source[0] else model.family.defaults.get(source)
        # A source only the config can give wins over the window's key; one with a class
        # default gives way to a window the config states.
        wins = source not in model.family.defaults
        if source_value is not None and (wins or not stated):
            if not source_value and falsy is not None:
                value = falsy
            elif type(source_value) is int:
                value = source_value // divide + add
    if spec.flag is not None and not model.flag(spec.flag):
        return None
    if spec.halved_if is not None and value is not None:
        flag, when = spec.halved_if
        if model.setting(flag) == when and type(value) is int:
            value = value // 2 + 1
    return value


def layer_count(model: ModelConfig) -> int:
    """The decoder layer count, where no stated layer list gives it."""
    return size(model, "layers")


def ruled(model: ModelConfig, rules: Mapping[str, Any]) -> tuple[list[str], str]:
    """The class's own layer types, from the rule the family table names."""
    rule = rules.get("rule", "window")
    reader = _RULES.get(rule)
    if reader is None:
        raise ValueError(f"{model.family.model_type}: unknown layer rule {rule!r}")
    letters, source = reader(model, rules)
    if isinstance(letters, list):  # the rule gave the class's own layer type names
        return letters, source
    if letters and rules.get("rule_first"):
        letters = rules["rule_first"] + letters[1:]
    if letters and rules.get("rule_last"):
        letters = letters[:-1] + rules["rule_last"]
    if letters and rules.get("ensure_one_full") == "last" and "F" not in letters:
        letters = letters[:-1] + "F"
    names = {**_NAMES, "N": rules.get("none", "none")}
    return [names[letter] for letter in letters], source


_NAMES = {"F": "full_attention", "S": "sliding_attention", "C": "chunked_attention"}
# A rule's layers: a letter a layer (F, S, C, N), or the class's own layer type names.
_Rule = Callable[[ModelConfig, Mapping[str, Any]], tuple[str | list[str], str]]


def _repeat(unit: str, layers: int) -> str:
    return "".join(unit[i % len(unit)] for i in range(layers))


def _window_rule(model: ModelConfig, rules: Mapping[str, Any]) -> tuple[str, str]:
    # transformers' cache, for a class without layer types: a window makes every layer sliding,
    # else an attention chunk makes it chunked.
    layers = layer_count(model)
    if sliding_window(model) is not None:
        return "S" * layers, model.family.window.key
    if model.setting("attention_chunk_size") is not None:
        return "C" * layers, "attention_chunk_size"
    return "F" * layers, "layer_types"


def _pattern_rule(model: ModelConfig, rules: Mapping[str, Any]) -> tuple[str, str]:
    unit: str = rules["unit"]
    layers = layer_count(model)
    if rules.get("exact") and layers != len(unit):
        spec = model.family.size("layers")
        name = spec.name if spec else "num_hidden_layers"
        raise ConfigError(
            f"{name} {layers}: a {model.family.model_type} config that states no layer list has "
            f"the class's own {len(unit)} layers",
            pointer=model.at(name),
        )
    return _repeat(unit, layers), "layer_types"


def _every_rule(model: ModelConfig, rules: Mapping[str, Any]) -> tuple[str, str]:
    # Layer i attends to every token when i % n is `full_at` (by default n - 1: every n-th
    # layer), and is `between` otherwise.
    key = rules.get("key")
    every = rules["default"]
    if key is not None:
        stated = model.setting(key)
        every = rules["default"] if stated is None else integer(model, key, stated)
    layers = layer_count(model)
    between = rules.get("between", "S")
    if not every:
        return between * layers, key or "layer_types"
    full_at = rules.get("full_at", every - 1)
    letters = "".join("F" if i % every == full_at else between for i in range(layers))
    return letters, key or "layer_types"


def _prefix_every_rule(model: ModelConfig, rules: Mapping[str, Any]) -> tuple[str, str]:
    # Cohere2-MoE: the first k layers follow one full-attention period, the rest another,
    # counted again from the first of them.
    layers = layer_count(model)
    prefix = integer(model, rules["prefix"], model.setting(rules["prefix"]))
    first = integer(model, rules["prefix_key"], model.setting(rules["prefix_key"]))
    rest = integer(model, rules["key"], model.setting(rules["key"]))
    between = rules.get("between", "S")
    letters = ""
    for i in range(layers):
        period, position = (first, i) if i < prefix else (rest, i - prefix)
        letters += "F" if period and (position + 1) % period == 0 else between
    return letters, rules["key"]


def _period_rule(model: ModelConfig, rules: Mapping[str, Any]) -> tuple[str, str]:
    # Jamba and Zamba: layer i is an attention layer when i % period == offset (Zamba's first
    # layers are fixed and the rule counts after them).
    period = integer(model, rules["period"], model.setting(rules["period"]))
    offset = integer(model, rules["offset"], model.setting(rules["offset"]))
    if period == 0:
        raise ConfigError(
            f"{rules['period']} must be at least 1, got 0", pointer=model.at(rules["period"])
        )
    head: str = rules.get("head", "")
    layers = layer_count(model)
    body = "".join("F" if i % period == offset else "N" for i in range(max(layers - len(head), 0)))
    return (head + body)[:layers], rules["period"]


def _max_window_rule(model: ModelConfig, rules: Mapping[str, Any]) -> tuple[str, str]:
    # Qwen2's classes window the layers from max_window_layers on, when a window is left.
    layers = layer_count(model)
    if sliding_window(model) is None:
        return "F" * layers, model.family.window.flag or "sliding_window"
    first = integer(model, "max_window_layers", model.setting("max_window_layers"))
    return "".join("S" if i >= first else "F" for i in range(layers)), "max_window_layers"


def _alternate_rule(model: ModelConfig, rules: Mapping[str, Any]) -> tuple[str, str]:
    # Qwen2-MoE: with a window, the even layers below max_window_layers are sliding.
    layers = layer_count(model)
    if sliding_window(model) is None:
        return "F" * layers, model.family.window.flag or "sliding_window"
    below = integer(model, "max_window_layers", model.setting("max_window_layers"))
    letters = "".join("S" if i < below and i % 2 == 0 else "F" for i in range(layers))
    return letters, "max_window_layers"


def _indices_rule(model: ModelConfig, rules: Mapping[str, Any]) -> tuple[str, str]:
    key: str = rules["key"]
    value = model.setting(key)
    layers = layer_count(model)
    if value is None:
        return _repeat(rules.get("otherwise", "N"), layers), key
    if not isinstance(value, list) or any(type(i) is not int for i in value):
        raise ConfigError(
            f"{key} must be a list of layer indices, got {value!r}", pointer=model.at(key)
        )
    chosen = set(value)
    return "".join("F" if i in chosen else "N" for i in range(layers)), key


def _local_ids_rule(model: ModelConfig, rules: Mapping[str, Any]) -> tuple[str, str]:
    # Inkling: the listed layers are `listed` (sliding), the others `others`; without a list,
    # the class's unit.
    key: str = rules["key"]
    value = model.setting(key)
    layers = layer_count(model)
    if value is None:
        return _repeat(rules["otherwise"], layers), key
    if not isinstance(value, list) or any(type(i) is not int for i in value):
        raise ConfigError(
            f"{key} must be a list of layer indices, got {value!r}", pointer=model.at(key)
        )
    chosen = set(value)
    listed, others = rules.get("listed", "S"), rules.get("others", "F")
    return "".join(listed if i in chosen else others for i in range(layers)), key


def _no_rope_rule(model: ModelConfig, rules: Mapping[str, Any]) -> tuple[str, str]:
    # Llama 4 and SmolLM3: a per-layer RoPE flag list (or one every `interval` layers) decides
    # which layers keep a window (`kind`): those whose flag is `when`, given what they require.
    layers = layer_count(model)
    key: str = rules["flags"]
    flags = model.setting(key)
    if not flags:
        every = integer(model, rules["interval"], model.setting(rules["interval"]))
        flags = [int((i + 1) % every != 0) if every else 1 for i in range(layers)]
    if not isinstance(flags, list) or len(flags) != layers:
        raise ConfigError(
            f"{key} must list one 0 or 1 per layer, got {flags!r}", pointer=model.at(key)
        )
    kind: str = rules["kind"]
    windowed = all(
        (sliding_window(model) if need == "sliding_window" else model.setting(need)) is not None
        for need in rules.get("requires", ())
    )
    gate = rules.get("gate")
    if gate is not None and not model.flag(gate):
        windowed = False
    when = bool(rules.get("when", 1))
    return "".join(kind if windowed and bool(f) == when else "F" for f in flags), key


def _override_pattern_rule(model: ModelConfig, rules: Mapping[str, Any]) -> tuple[list[str], str]:
    # Nemotron-H: hybrid_override_pattern, a character (a layer type) per layer; without it, the
    # class's own layers (not repeated).
    key: str = rules["key"]
    chars: Mapping[str, str] = rules["chars"]
    pattern = model.setting(key)
    if pattern is None:
        return list(rules["otherwise"]), "layer_types"
    if not isinstance(pattern, str) or not pattern or set(pattern) - set(chars):
        raise ConfigError(
            f"{key} must be a string of {''.join(chars)}, got {pattern!r}", pointer=model.at(key)
        )
    return [chars[c] for c in pattern], key


def _list_required_rule(model: ModelConfig, rules: Mapping[str, Any]) -> tuple[str, str]:
    key = rules.get("list", "layer_types")
    raise ConfigError(
        f"no {key}: {model.family.config_class} derives no layer types, and its model needs them: "
        f"state {key}",
        pointer=model.at(key),
    )


_RULES: dict[str, _Rule] = {
    "window": _window_rule,
    "pattern": _pattern_rule,
    "every": _every_rule,
    "prefix_every": _prefix_every_rule,
    "period": _period_rule,
    "max_window_layers": _max_window_rule,
    "alternate_below_max_window": _alternate_rule,
    "indices": _indices_rule,
    "local_ids": _local_ids_rule,
    "no_rope": _no_rope_rule,
    "override_pattern": _override_pattern_rule,
    "list_required": _list_required_rule,
}
RULE_NAMES = tuple(_RULES)


def integer(model: ModelConfig, key: str, value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ConfigError(
            f"{key} must be a non-negative integer, got {value!r}", pointer=model.at(key)
        )
    return value
