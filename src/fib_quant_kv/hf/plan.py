"""A model's KV cache planned as contracts: a group per kind of layer, its documents and sizes."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fib_quant_kv.contracts import SHAPE_SCHEMA, Document
from fib_quant_kv.derive import canonical_layout, new_page_geometry, page_count
from fib_quant_kv.errors import DependencyUnsupported
from fib_quant_kv.hf.config import dtype_of, read_config
from fib_quant_kv.hf.layers import FULL, KvLayers, LayerCache, layers_of
from fib_quant_kv.rules.geometry import F32_BYTES
from fib_quant_kv.structure import from_fields
from fib_quant_kv.verdict import digest, validate
from fib_quant_kv_models import KvCacheLayoutV1, KvPageGeometryV1, KvTensorShapeV1

Role = Literal["key", "value"]


class PlanOptionError(ValueError):
    """A planning option the model's layers cannot take (a page longer than a group holds)."""


ROLES: tuple[Role, Role] = ("key", "value")
DTYPE_BYTES = {"f16": 2, "bf16": 2, "f32": 4}


@dataclass(frozen=True, slots=True)
class CacheSize:
    """The size of a group's keys and values (or of them all) before and after encoding."""

    elements: int
    source_bytes: int
    raw_f32_bytes: int
    # Pages for one (batch, layer, KV head) stream of tokens, as `page_count` counts them.
    pages_per_stream: int | None
    # Pages for the whole of it: every stream's, keys and values.
    pages: int | None
    encoded_bytes: int | None

    @property
    def compression(self) -> float | None:
        """Source bytes per encoded byte, when there is a page geometry."""
        return self.source_bytes / self.encoded_bytes if self.encoded_bytes else None


@dataclass(frozen=True, slots=True)
class Group:
    """Layers whose caches are alike, as one key shape and one value shape describe them."""

    # Empty when it is the model's only group (its documents keep their plain names); else what
    # its layers are (full, sliding, chunked), numbered where two groups would share a name.
    name: str
    layers: tuple[int, ...]
    # The kinds of its layers, and the window of its sliding or chunked ones.
    kinds: tuple[str, ...]
    window: int | None
    key_shape: KvTensorShapeV1
    value_shape: KvTensorShapeV1
    key_layout: KvCacheLayoutV1
    value_layout: KvCacheLayoutV1
    # The page geometry of both caches (under ""), or of each (under "key" and "value") where
    # their head sizes differ.
    geometries: Mapping[str, KvPageGeometryV1]
    size: CacheSize

    @property
    def prefix(self) -> str:
        """What the group's file names start with."""
        return f"{self.name}_" if self.name else ""

    @property
    def tokens(self) -> int:
        """The tokens each of its layers holds."""
        return self.key_shape.tokens

    def shape(self, role: str) -> KvTensorShapeV1:
        """Its key or value shape."""
        return self.key_shape if role == "key" else self.value_shape

    def geometry(self, role: str) -> KvPageGeometryV1 | None:
        """The page geometry of its key or value cache, if one is planned."""
        return self.geometries.get("", self.geometries.get(role))

    def documents(self) -> dict[str, Document]:
        """Its documents by file stem (its prefix, then key_shape, value_layout, ...)."""
        found: dict[str, Document] = {}
        for role in ROLES:
            found[f"{self.prefix}{role}_shape"] = self.shape(role)
            found[f"{self.prefix}{role}_layout"] = (
                self.key_layout if role == "key" else self.value_layout
            )
        for which, geometry in self.geometries.items():
            found[f"{self.prefix}{which + '_' if which else ''}page_geometry"] = geometry
        return found


@dataclass(frozen=True, slots=True)
class Plan:
    """A model's cache as contracts: its groups, their documents and digests, and sizes."""

    model_type: str
    # The tokens planned for (one forward pass over a prompt this long) and the batch.
    tokens: int
    batch: int
    # Every decoder layer, with its cache (None for a layer without keys and values).
    kv: KvLayers
    groups: tuple[Group, ...]
    documents: dict[str, Document]
    digests: dict[str, str]

    @property
    def layers(self) -> int:
        """Every decoder layer of the model."""
        return self.kv.layers

    @property
    def kv_layers(self) -> tuple[int, ...]:
        """The layers that hold keys and values."""
        return self.kv.kv_layers

    @property
    def without_kv(self) -> Mapping[int, str]:
        """The layers that hold no keys and values, and why (their layer type, or shared)."""
        return self.kv.without_kv

    def group_of(self, layer: int) -> Group | None:
        """The group of a decoder layer; None for a layer without keys and values."""
        for group in self.groups:
            if layer in group.layers:
                return group
        return None

    @property
    def total(self) -> CacheSize:
        """Every group's sizes added up."""
        sizes = [group.size for group in self.groups]
        paged = all(size.pages is not None for size in sizes)
        return CacheSize(
            elements=sum(s.elements for s in sizes),
            source_bytes=sum(s.source_bytes for s in sizes),
            raw_f32_bytes=sum(s.raw_f32_bytes for s in sizes),
            pages_per_stream=None,
            pages=sum(s.pages or 0 for s in sizes) if paged else None,
            encoded_bytes=sum(s.encoded_bytes or 0 for s in sizes) if paged else None,
        )


# The layers of a model, gathered by what they hold -----------------------------------------------

# What makes two layers' caches alike: tokens held, query heads, KV heads, key and value head sizes.
_Alike = tuple[int, int, int, int, int]


def _alike(cache: LayerCache, tokens: int) -> _Alike:
    return (
        cache.held_tokens(tokens),
        cache.query_heads,
        cache.kv_heads,
        cache.key_head_dim,
        cache.value_head_dim,
    )


def gather(kv: KvLayers, tokens: int) -> list[tuple[str, list[int], _Alike]]:
    """The groups of a model's layers at `tokens` tokens: (name, layers, what they hold), in the
    order of their first layers. One group keeps no name."""
    found: dict[_Alike, list[int]] = {}
    for index, cache in enumerate(kv.caches):
        if cache is not None:
            found.setdefault(_alike(cache, tokens), []).append(index)
    names = [
        "-".join(sorted({kv.caches[i].kind for i in layers}, key=_KIND_ORDER.index))  # type: ignore[union-attr]
        for layers in found.values()
    ]
    if len(found) == 1:
        names = [""]
    numbered = []
    for position, name in enumerate(names):
        same = [n for n in names if n == name]
        count = names[: position + 1].count(name)
        numbered.append(name if len(same) == 1 else f"{name}{count}")
    return [
        (name, layers, alike) for name, (alike, layers) in zip(numbered, found.items(), strict=True)
    ]


_KIND_ORDER = (FULL, "sliding", "chunked")


def _layer_list(layers: Iterable[int]) -> str:
    return ", ".join(map(str, layers))


def describe_groups(kv: KvLayers, tokens: int) -> str:
    """The groups in words: what each holds and which layers it has."""
    return "; ".join(
        f"{name or 'all'}: layers {_layer_list(layers)} ({alike[0]} tokens, {alike[2]} KV heads, "
        f"head size {alike[3]}{'/' + str(alike[4]) if alike[4] != alike[3] else ''})"
        for name, layers, alike in gather(kv, tokens)
    )


# Shapes ------------------------------------------------------------------------------------------


def build_shape(
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
    """Build a KvTensorShapeV1 from derived fields and validate it: the one place both happen."""
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


def _shapes(
    layers: list[int], alike: _Alike, batch: int, dtype: str, rope_state: str | None = None
) -> dict[str, KvTensorShapeV1]:
    tokens, query_heads, kv_heads, key_head_dim, value_head_dim = alike
    return {
        role: build_shape(
            role=role,
            batch=batch,
            layers=len(layers),
            kv_heads=kv_heads,
            query_heads=query_heads,
            tokens=tokens,
            head_dim=key_head_dim if role == "key" else value_head_dim,
            dtype=dtype,
            # Keys as a running cache holds them; v1 has no state for keys of models without
            # RoPE (GPT-2), and keys cannot be not_applicable.
            rope_state=(rope_state or "post_rope") if role == "key" else "not_applicable",
        )
        for role in ROLES
    }


def shape_from_hf_config(
    config: str | os.PathLike[str] | Mapping[str, Any] | Any,
    *,
    role: Role,
    tokens: int,
    batch: int = 1,
    dtype: str | None = None,
    rope_state: str | None = None,
    family: str | None = None,
    class_defaults: bool = False,
) -> KvTensorShapeV1:
    """The validated shape of a model's key or value cache, where one shape describes every
    layer that holds keys and values.

    `config` is a config.json path, a model folder, its mapping, or a transformers config object;
    `family` reads it as that family whatever its model_type says. `layers` counts the layers
    that hold keys and values and `tokens` is what each holds after a forward pass over `tokens`
    tokens (a sliding layer keeps its window). Keys default to post_rope, values are
    not_applicable. A model whose layers hold differently (a window shorter than the prompt, a
    head size of its own) is refused, naming its groups: `plan_from_hf_config` gives a shape per
    group. `family` and `class_defaults` are `kv_layers_from_hf_config`'s.
    """
    model = read_config(config, family, class_defaults)
    kv = layers_of(model)
    grouped = gather(kv, tokens)
    if len(grouped) > 1:
        raise DependencyUnsupported(
            f"the layers hold keys and values in {len(grouped)} ways "
            f"({describe_groups(kv, tokens)}): one shape cannot describe them all; "
            "plan_from_hf_config (fib-quant-kv plan) gives a shape per group"
        )
    _, layers, alike = grouped[0]
    return _shapes(layers, alike, batch, dtype_of(model, dtype), rope_state)[role]


# Plans -------------------------------------------------------------------------------------------


def _size(
    shapes: Mapping[str, KvTensorShapeV1], geometries: Mapping[str, KvPageGeometryV1]
) -> CacheSize:
    elements = source = 0
    per_stream = None
    pages = encoded = 0
    for role, shape in shapes.items():
        count = shape.batch * shape.layers * shape.kv_heads * shape.tokens * shape.head_dim
        elements += count
        source += count * DTYPE_BYTES[str(shape.dtype)]
        geometry = geometries.get("", geometries.get(role))
        if geometry is not None:
            # Every (batch, layer, kv_head) stream of tokens is cut into fixed-size pages; a page
            # reserves one encoded block per token (one vector per block), padding included.
            per_stream = page_count(geometry, shape)
            streams = shape.batch * shape.layers * shape.kv_heads
            pages += streams * per_stream
            encoded += (
                streams * per_stream * geometry.tokens_per_page * geometry.encoded_block_bytes
            )
    return CacheSize(
        elements=elements,
        source_bytes=source,
        raw_f32_bytes=elements * F32_BYTES,
        pages_per_stream=per_stream,
        pages=pages if geometries else None,
        encoded_bytes=encoded if geometries else None,
    )


def plan_from_hf_config(
    config: str | os.PathLike[str] | Mapping[str, Any] | Any,
    *,
    tokens: int,
    batch: int = 1,
    dtype: str | None = None,
    tokens_per_page: int | None = None,
    encoded_block_bytes: int | None = None,
    family: str | None = None,
    class_defaults: bool = False,
) -> Plan:
    """A model's cache as contracts, group by group: each group's key and value shapes, their
    canonical layouts and (optionally) its page geometry, with digests and sizes.

    A group is the layers whose caches are alike after a forward pass over `tokens` tokens:
    layers that keep a window shorter than the prompt, or heads and head sizes of their own,
    form groups apart. `family` and `class_defaults` are `kv_layers_from_hf_config`'s. Raises
    PlanOptionError (a ValueError) when `tokens_per_page` exceeds what a group holds.
    """
    if (tokens_per_page is None) != (encoded_block_bytes is None):
        raise TypeError("tokens_per_page and encoded_block_bytes go together: pass both or neither")
    model = read_config(config, family, class_defaults)
    kv = layers_of(model)
    cache_dtype = dtype_of(model, dtype)
    groups: list[Group] = []
    documents: dict[str, Document] = {}
    digests: dict[str, str] = {}
    for name, layers, alike in gather(kv, tokens):
        shapes = _shapes(layers, alike, batch, cache_dtype)
        layouts = {role: canonical_layout(shape) for role, shape in shapes.items()}
        geometries: dict[str, KvPageGeometryV1] = {}
        if tokens_per_page is not None and encoded_block_bytes is not None:
            held = alike[0]
            if tokens_per_page > held:
                what = f"the {name} layers hold" if name else "the layers hold"
                raise PlanOptionError(
                    f"tokens_per_page {tokens_per_page} is more than the {held} tokens {what}: "
                    f"choose at most {held}"
                )
            key_size, value_size = shapes["key"].head_dim, shapes["value"].head_dim
            sizes = (
                {"": key_size} if key_size == value_size else {"key": key_size, "value": value_size}
            )
            for which, head_dim in sizes.items():
                geometries[which] = new_page_geometry(
                    tokens_per_page, head_dim, encoded_block_bytes
                )
        caches = [kv.caches[i] for i in layers]
        kinds = tuple(sorted({c.kind for c in caches if c}, key=_KIND_ORDER.index))
        windows = {c.window for c in caches if c is not None and c.window is not None}
        group = Group(
            name=name,
            layers=tuple(layers),
            kinds=kinds,
            window=next(iter(windows)) if len(windows) == 1 else None,
            key_shape=shapes["key"],
            value_shape=shapes["value"],
            key_layout=layouts["key"],
            value_layout=layouts["value"],
            geometries=geometries,
            size=_size(shapes, geometries),
        )
        groups.append(group)
        for stem, document in group.documents().items():
            documents[stem] = document
            digests[stem] = _digest(document, group, stem)
    return Plan(kv.model_type, tokens, batch, kv, tuple(groups), documents, digests)


def _digest(document: Document, group: Group, stem: str) -> str:
    """A document's digest; a layout's and geometry's against the shapes they belong to."""
    if isinstance(document, KvTensorShapeV1):
        return digest(document)
    if isinstance(document, KvCacheLayoutV1):
        role = stem.removeprefix(group.prefix).split("_", 1)[0]
        return digest(document, group.shape(role))
    roles = [r for r in ROLES if group.geometry(r) is document]
    for role in roles[1:]:
        validate(document, group.shape(role))  # a geometry is valid against every cache it pages
    return digest(document, group.shape(roles[0]))
