"""A model's config.json as transformers reads it: the language model, its family, its values."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fib_quant_kv.codec.limits import MAX_DOCUMENT_BYTES
from fib_quant_kv.errors import ConfigError, DependencyUnsupported, pointer
from fib_quant_kv.hf.families import Family, Size, families, family, transformers_version
from fib_quant_kv.rules.geometry import U32_MAX

CONFIG_FILE = "config.json"
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
FAMILY_HELP = "--family NAME on the command line, family= in Python"
CLASS_DEFAULTS_HELP = "--class-defaults on the command line, class_defaults=True in Python"

# The keys of latent attention: its cache holds one compressed latent per token, not per-head keys
# and values, whatever the family.
LATENT_KEY = "kv_lora_rank"


def load_config(config: str | os.PathLike[str] | Mapping[str, Any] | Any) -> dict[str, Any]:
    """A config as a mapping: a config.json path or a model folder holding one (read with the
    document size limit), a mapping, or a transformers config object (its `to_dict()`;
    transformers is not needed to call this with anything else)."""
    if isinstance(config, Mapping):
        return dict(config)
    if isinstance(config, str | os.PathLike):
        path = os.fspath(config)
        if os.path.isdir(path):
            path = os.path.join(path, CONFIG_FILE)
            if not os.path.exists(path):
                raise ConfigError(
                    f"no {CONFIG_FILE} in this folder: expected a model folder or a config.json",
                    path=os.fspath(config),
                )
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_DOCUMENT_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror or exc}", path=path) from None
        return parse_config(raw, path)
    to_dict = getattr(config, "to_dict", None)
    if callable(to_dict):
        loaded = to_dict()
        if isinstance(loaded, Mapping):
            return dict(loaded)
    raise TypeError(
        "config must be a path, a model folder, a mapping or a transformers config object, "
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


def check_count(value: Any, key: str, where: tuple[str, ...]) -> int:
    """A count that lands in a u32 field of a shape, refused at the config's own key."""
    if type(value) is not int or not 1 <= value <= U32_MAX:
        raise ConfigError(
            f"{key} must be an integer in 1..={U32_MAX}, got {value!r}",
            pointer=pointer(*where, key),
        )
    return value


def _known(model_type: str | None) -> str:
    """Why a model_type cannot be read, and what to do."""
    named = f"model_type {model_type!r} is" if model_type else "no model_type:"
    return (
        f"{named} not a family whose config this release reads as transformers "
        f"{transformers_version()} does; if the model is built like a known family, name it "
        f"({FAMILY_HELP}; `fib-quant-kv plan --help` lists them)"
    )


def family_names() -> list[str]:
    """Every family a config can be read as, sorted."""
    return sorted(families())


@dataclass(slots=True)
class ModelConfig:
    """A config's language model, as its family reads it: stated values, aliases, defaults."""

    top: Mapping[str, Any]
    # The language model's own mapping, and its place in the file (("text_config",) or ()).
    raw: Mapping[str, Any]
    where: tuple[str, ...]
    family: Family
    # Whether a sizing value the config leaves out takes the class's default, at the caller's
    # word; each one taken is recorded by its pointer.
    class_defaults: bool = False
    taken: dict[str, int] = field(default_factory=dict)
    # Values resolved so far, by size name.
    resolved: dict[str, int] = field(default_factory=dict)

    def at(self, *keys: str | int) -> str:
        """The JSON pointer of a key of the language model."""
        return pointer(*self.where, *keys)

    def stated(self, key: tuple[str, ...]) -> tuple[bool, Any, tuple[str, ...]]:
        """Whether the config states an attribute, its value, and the path of the key that gave it.

        As transformers applies them: a key the class's __post_init__ reads in its place
        (kwarg_aliases), when not null; else an attribute_map alias (set last, so it wins over
        the field); else the attribute's own key.
        """
        first, rest = key[0], key[1:]
        scope: Mapping[str, Any] = self.raw
        family = self.family
        replacing = [k for k, target in family.kwarg_aliases.items() if target == first]
        aliases = [k for k, target in family.aliases.items() if target == first]
        path: tuple[str, ...]
        for name in (*replacing, *aliases, first):
            if name in scope and not (name in replacing and scope[name] is None):
                value, path = scope[name], (name,)
                break
        else:
            return False, None, key
        for part in rest:
            if not isinstance(value, Mapping) or part not in value:
                return False, None, key
            value, path = value[part], (*path, part)
        return True, value, path

    def setting(self, key: str) -> Any:
        """A non-sizing value (a window, a flag, a pattern parameter): stated, else the class's
        default, as transformers reads it."""
        stated, value, _ = self.stated((key,))
        return value if stated else self.family.defaults.get(key)

    def flag(self, key: str) -> bool:
        """A boolean setting; anything but true is false, as the classes test it."""
        return bool(self.setting(key))


def language_model(
    top: Mapping[str, Any], named: str | None = None
) -> tuple[Mapping[str, Any], tuple[str, ...], Family]:
    """The mapping of a config's language model, its place, and its family.

    A composite config (Gemma 3, Llama 4, ...) keeps its language model under text_config; the
    outer model_type names the pair, the inner one the language model. `named` reads the config
    as that family whatever its model_type says.
    """
    outer_type = top.get("model_type")
    chosen = named or (outer_type if isinstance(outer_type, str) else None)
    found = family(chosen) if chosen else None
    if found is None:
        if named is not None:
            raise ConfigError(
                f"unknown family {named!r}: expected one of {', '.join(family_names())}"
            )
        raise ConfigError(_known(chosen), pointer="/model_type")
    if found.text_config is None:
        return top, (), found
    inner = top.get("text_config")
    where: tuple[str, ...] = ("text_config",)
    if inner is None and found.text_config_flat:
        # Without a text_config the class gathers one from keys at the top level.
        inner, where = {k: top[k] for k in found.text_config_flat if k in top}, ()
    if not isinstance(inner, Mapping):
        raise ConfigError(
            f"a {found.model_type} config keeps its language model under text_config: expected "
            "an object there",
            pointer="/text_config",
        )
    inner_type = inner.get("model_type")
    chosen_type = inner_type if found.text_config_auto and isinstance(inner_type, str) else None
    text_family = family(chosen_type or found.text_config)
    if text_family is None or text_family.text_config is not None:
        raise ConfigError(_known(chosen_type), pointer="/text_config/model_type")
    return inner, where, text_family


def read_config(
    config: str | os.PathLike[str] | Mapping[str, Any] | Any,
    family_name: str | None = None,
    class_defaults: bool = False,
) -> ModelConfig:
    """A config, read as its family's class reads it."""
    top = load_config(config)
    raw, where, found = language_model(top, family_name)
    model = ModelConfig(top, raw, where, found, class_defaults)
    if found.unsupported is not None:
        raise DependencyUnsupported(
            f"{found.model_type}: {found.unsupported}: a v1 shape cannot describe its cache",
            pointer=model.at("model_type") if "model_type" in raw else "/model_type",
        )
    for key, why in found.refused_keys.items():
        if key in raw:
            raise ConfigError(f"{key}: {why}", pointer=model.at(key))
    stated, latent, path = model.stated((LATENT_KEY,))
    if stated and latent is not None:
        raise DependencyUnsupported(
            f"latent attention ({LATENT_KEY}) caches one compressed latent per token, not "
            "per-head keys and values: a v1 shape cannot describe it",
            pointer=model.at(*path),
        )
    return model


def dtype_of(model: ModelConfig, given: str | None) -> str:
    """The cache's dtype: the one given, else the language model's, else the outer config's."""
    if given is not None:
        name = given.removeprefix("torch.")
        if name not in DTYPES:
            raise ConfigError(
                f"dtype {given!r} has no v1 equivalent: expected one of {', '.join(DTYPES)}",
                pointer="/dtype",
            )
        return DTYPES[name]
    for scope, at in ((model.raw, model.where), (model.top, ())):
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
        pointer=model.at("torch_dtype"),
    )


# Sizes ----------------------------------------------------------------------------------------


def size(model: ModelConfig, name: str, spec: Size | None = None) -> int:
    """A sizing value of the language model: stated, else derived as the class derives it.

    A class default that is not None is never taken: the value is the model's own, and a
    config that leaves it out is refused, naming the key.
    """
    if spec is None:
        if name in model.resolved:
            return model.resolved[name]
        spec = model.family.size(name)
        if spec is None:
            raise ConfigError(f"{model.family.model_type}: no {name} in the family table")
        value = _resolve(model, name, spec)
        model.resolved[name] = value
        return value
    return _resolve(model, name, spec)


def _resolve(model: ModelConfig, name: str, spec: Size) -> int:
    for flag, value in spec.cases:
        if model.flag(flag):
            return value if isinstance(value, int) else derive(model, value, name)
    if spec.key is not None:
        stated, value, path = model.stated(spec.key)
        if stated and value is not None:
            return check_count(value, path[-1], (*model.where, *path[:-1]))
        refused = spec.refuse_null
        if stated and (refused is True or (refused and path[-1] in refused)):
            raise ConfigError(
                f"{path[-1]} is null: a {model.family.model_type} model reads {path[-1]} "
                "whenever the config has it, and cannot run with null: state "
                f"{_what(name)}, or leave the key out to have it derived",
                pointer=model.at(*path),
            )
        if not stated and spec.default is not None:
            if model.class_defaults:
                model.taken[model.at(*spec.key)] = spec.default
                return spec.default
            raise ConfigError(
                f"no {spec.name}: {_what(name)} is this model's own, and "
                f"{model.family.config_class} would take its default {spec.default}: state "
                f"{spec.name} in the config, or take the class's defaults ({CLASS_DEFAULTS_HELP})"
                + _unread(model, spec.name),
                pointer=model.at(*spec.key),
            )
    if spec.derive is None:
        assert spec.key is not None  # a spec without a key derives its value
        said = "null" if model.stated(spec.key)[0] else "absent"
        raise ConfigError(
            f"{spec.name} is {said}: {_what(name)} is this model's own, and "
            f"{model.family.config_class} does not derive it: state {spec.name} in the config",
            pointer=model.at(*spec.key),
        )
    return derive(model, spec.derive, name)


def _unread(model: ModelConfig, name: str) -> str:
    """A note on keys of the config that other families read as `name` and this one does not."""
    others = sorted(
        key
        for key in model.raw
        if key != name
        and any(
            (alias == key and target == name) or (alias == name and target == key)
            for other in families().values()
            for alias, target in other.aliases.items()
        )
    )
    if not others:
        return ""
    return (
        f" (the config has {', '.join(others)}, which other families read as {name}; "
        f"{model.family.config_class} does not)"
    )


_WHAT = {
    "layers": "the layer count",
    "query_heads": "the query head count",
    "kv_heads": "the KV head count",
    "head_dim": "the head size",
    "value_head_dim": "the value head size",
    "hidden": "the hidden size (a head size is derived from it)",
}


def _what(name: str) -> str:
    return _WHAT.get(name, name)


def derive(model: ModelConfig, derivation: str, name: str) -> int:
    """One of the table's derivations (fib_quant_kv.hf.families.DERIVATIONS)."""
    if derivation in ("query_heads", "kv_heads", "head_dim"):
        return size(model, derivation)
    if derivation in ("hidden / query_heads", "2 * hidden / query_heads"):
        hidden = size(model, "hidden")
        if derivation.startswith("2 *"):
            hidden *= 2
        return whole(hidden, size(model, "query_heads"), model, name)
    if derivation == "2 * kv_heads":
        return 2 * size(model, "kv_heads")
    if derivation == "kv_heads * num_experts_per_tok":
        top_k = model.stated(("num_experts_per_tok",))
        if not top_k[0] or top_k[1] is None:
            raise ConfigError(
                "no num_experts_per_tok: the query head count is the KV head count times it",
                pointer=model.at("num_experts_per_tok"),
            )
        return size(model, "kv_heads") * check_count(top_k[1], "num_experts_per_tok", model.where)
    raise ValueError(f"{model.family.model_type}: unknown derivation {derivation!r}")


def whole(total: int, heads: int, model: ModelConfig, name: str) -> int:
    """A head size from a hidden size, refused when the heads do not split it evenly."""
    if total % heads:
        hidden = model.family.sizes["hidden"]
        raise DependencyUnsupported(
            f"{hidden.name} {total} / {heads} heads is not a whole {_what(name)}: "
            "expected head_dim in the config",
            pointer=model.at(*(hidden.key or ("hidden_size",))),
        )
    return total // heads
