"""The family table: how each transformers config class sizes its model's KV cache, as data.

`families.json`, beside this module, holds one entry per transformers `model_type`: the config
class's aliases (`attribute_map`), where each sizing value is read and what the class derives when
it is absent, how the class lays out its layer kinds, and the class defaults the layer rules read.
It is checked against its schema (`families.schema.json`) and against the transformers classes by
tests; here it is only read, once, into the records below.
"""

from __future__ import annotations

import json
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

# The sizing values of a layer's cache, named as the family table names them.
SizeName = Literal["layers", "query_heads", "kv_heads", "head_dim", "value_head_dim", "hidden"]

# What a size is when its key is absent or null (or never read), as the config classes and the
# modeling code derive it. Each name is computed by fib_quant_kv.hf.config.
DERIVATIONS = (
    "query_heads",
    "kv_heads",
    "head_dim",
    "hidden / query_heads",
    "2 * hidden / query_heads",
    "kv_heads * num_experts_per_tok",
    "2 * kv_heads",
    "layer list",
)


@dataclass(frozen=True, slots=True)
class Size:
    """Where one sizing value of a config is read, and what it is when the config leaves it out."""

    # The attribute (a path into a nested sub-config), or None when nothing is read: derived.
    key: tuple[str, ...] | None
    # The class's default for the attribute. A default other than None is never taken: a sizing
    # value is the model's own, so a config that leaves it out is refused, quoting this.
    default: int | None = None
    # What the value is when it resolves to None (one of DERIVATIONS).
    derive: str | None = None
    # The model runs only when a stated head_dim equals hidden / query_heads.
    agree: bool = False
    # A per-kind override that applies only when this flag is true.
    only_if: str | None = None
    # (flag, value or derivation) pairs checked in order before the key: the first true flag wins.
    cases: tuple[tuple[str, int | str], ...] = ()
    # A stated null that transformers cannot run with (the model reads the key with a fallback
    # only when it is absent): True for the key and its aliases, or the config keys it holds for.
    refuse_null: bool | tuple[str, ...] = False
    # A per-kind override that the class skips when the config states this key.
    unless_stated: str | None = None

    @property
    def name(self) -> str:
        """The key as a config.json names it (its last part)."""
        return self.key[-1] if self.key else ""


@dataclass(frozen=True, slots=True)
class Window:
    """Where the window of a family's sliding layers comes from, when not plainly sliding_window."""

    # The attribute that holds it.
    key: str = "sliding_window"
    # A flag without which the class drops the window (Qwen2's use_sliding_window).
    flag: str | None = None
    # Another key the class derives it from when that key is stated: (key, add, divide, value
    # when that key is falsy).
    source: tuple[str, int, int, int | None] | None = None
    # (flag, value): when the flag has this value the class halves the window (w // 2 + 1).
    halved_if: tuple[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Family:
    """One transformers config class, as the family table describes it."""

    model_type: str
    config_class: str
    # transformers' attribute_map: a config key -> the attribute it sets (it wins over the field).
    aliases: Mapping[str, str]
    sizes: Mapping[str, Size]
    # How the class lays out its layer kinds when the config states no layer list.
    layer_kinds: Mapping[str, Any]
    # Size overrides for the sliding ("sliding") or full-attention ("full") layers.
    overrides: Mapping[str, Mapping[str, Size]]
    # The class defaults of the non-sizing keys (windows, flags, pattern parameters) rules read.
    defaults: Mapping[str, Any]
    # Keys the class's __post_init__ reads in place of an attribute (not in attribute_map): a
    # stated value other than null replaces the attribute.
    kwarg_aliases: Mapping[str, str] = field(default_factory=dict)
    # Keys a config must not state (the class cannot load or run with them), and why.
    refused_keys: Mapping[str, str] = field(default_factory=dict)
    window: Window = Window()
    # A composite config: its language model is its text_config, of this family by default.
    text_config: str | None = None
    # Whether the text_config's own model_type chooses its family (an AutoConfig sub-config)
    # rather than the composite's fixed class.
    text_config_auto: bool = False
    # The top-level keys the class gathers into a text_config when the config has none.
    text_config_flat: tuple[str, ...] = ()
    # Why v1 cannot describe this family's cache, when it cannot.
    unsupported: str | None = None
    # Tokens each layer holds beyond the prompt (CPM-Ant's prompt embeddings).
    extra_tokens: Size | None = None

    def size(self, name: str) -> Size | None:
        """The spec of a sizing value, if the family has one."""
        return self.sizes.get(name)


def _size(spec: Mapping[str, Any]) -> Size:
    key = spec.get("key")
    return Size(
        key=None if key is None else (key,) if isinstance(key, str) else tuple(key),
        default=spec.get("default"),
        derive=spec.get("derive"),
        agree=bool(spec.get("agree", False)),
        only_if=spec.get("only_if"),
        cases=tuple((flag, value) for flag, value in spec.get("cases", ())),
        refuse_null=_refuse_null(spec.get("refuse_null", False)),
        unless_stated=spec.get("unless_stated"),
    )


def _refuse_null(value: Any) -> bool | tuple[str, ...]:
    return tuple(value) if isinstance(value, list) else bool(value)


def _window(spec: Mapping[str, Any]) -> Window:
    source = spec.get("from")
    halved = spec.get("halved_if")
    return Window(
        key=spec.get("key", "sliding_window"),
        flag=spec.get("flag"),
        source=None
        if source is None
        else (source["key"], source.get("add", 0), source.get("div", 1), source.get("falsy")),
        halved_if=None if halved is None else (halved[0], halved[1]),
    )


_SIZE_NAMES = ("layers", "query_heads", "kv_heads", "head_dim", "value_head_dim", "hidden")


def _family(model_type: str, entry: Mapping[str, Any]) -> Family:
    return Family(
        model_type=model_type,
        config_class=entry.get("class", ""),
        aliases=dict(entry.get("aliases", {})),
        sizes={name: _size(entry[name]) for name in _SIZE_NAMES if name in entry},
        layer_kinds=dict(entry.get("layer_kinds", {"rule": "window"})),
        overrides={
            kind: {name: _size(spec) for name, spec in entry[kind].items()}
            for kind in ("sliding", "full")
            if kind in entry
        },
        defaults=dict(entry.get("defaults", {})),
        kwarg_aliases=dict(entry.get("kwarg_aliases", {})),
        refused_keys=dict(entry.get("refused_keys", {})),
        window=_window(entry.get("window", {})),
        text_config=entry.get("text_config"),
        text_config_auto=bool(entry.get("text_config_auto", False)),
        text_config_flat=tuple(entry.get("text_config_flat", ())),
        unsupported=entry.get("unsupported"),
        extra_tokens=_size(entry["extra_tokens"]) if "extra_tokens" in entry else None,
    )


def table_text() -> bytes:
    """The shipped family table, as released."""
    data = pkgutil.get_data("fib_quant_kv.hf", "families.json")
    if data is None:  # a loader that cannot read package data
        raise FileNotFoundError("the family table is not readable from this installation")
    return data


@cache
def _table() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(table_text())
    return loaded


@cache
def families() -> dict[str, Family]:
    """Every family of the table, by model_type."""
    return {name: _family(name, entry) for name, entry in _table()["families"].items()}


def transformers_version() -> str:
    """The transformers release whose config classes the table describes."""
    version: str = _table()["transformers"]
    return version


def family(model_type: str) -> Family | None:
    """The family of a model_type, if the table has it."""
    return families().get(model_type)
