"""A live KV cache judged against its plan, layer by layer, from its tensors' metadata alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fib_quant_kv.arrays import DTYPE_NAMES, check_dimensions, dtype_name, metadata
from fib_quant_kv.errors import ArrayMismatch
from fib_quant_kv.hf.plan import ROLES, Group, Plan

# A layer's tensors as transformers keeps them: [batch, kv_heads, tokens, head_dim].
LAYER_AXES = ("batch", "kv_heads", "tokens", "head_dim")

# What one layer of a live cache holds: its keys and values, or None.
Entry = tuple[Any, Any] | None


def _entries(cache: Any, plan: Plan) -> list[Entry]:
    """One (keys, values) or None per layer, from a transformers Cache (its `layers`), the legacy
    tuple of (keys, values) pairs, or a list per layer of (keys, values) or None."""
    layers = getattr(cache, "layers", None)
    if layers is not None and not isinstance(cache, list | tuple):
        entries: list[Entry] = []
        for layer in layers:
            # A layer of a state (mamba, linear attention) or a shared one (transformers'
            # DummyLayer) has no keys, or keys of None.
            keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
            entries.append(None if keys is None and values is None else (keys, values))
        # A cache made without its model's config (MiniMax's) adds layers as they are used: the
        # layers after its last one with keys and values may be missing.
        missing = range(len(entries), plan.layers)
        if all(plan.group_of(index) is None for index in missing):
            entries.extend(None for _ in missing)
        return entries
    if not isinstance(cache, Sequence) or isinstance(cache, str | bytes):
        raise ArrayMismatch(
            "expected a transformers Cache, a tuple of (keys, values) pairs, or a list per layer "
            f"of (keys, values) or None; got {type(cache).__name__}"
        )
    found: list[Entry] = []
    for index, entry in enumerate(cache):
        if entry is None:
            found.append(None)
        # The usual pair is decided by its type; another sequence by the slower ABC check.
        elif (
            type(entry) in (tuple, list)
            or (isinstance(entry, Sequence) and not isinstance(entry, str | bytes))
        ) and len(entry) == 2:
            found.append((entry[0], entry[1]))
        else:
            raise ArrayMismatch(
                f"layer {index}: expected (keys, values) or None, got {type(entry).__name__}"
            )
    return found


def _name(group: Group) -> str:
    return f"group {group.name}" if group.name else "the plan's only group"


def check_cache(cache: Any, plan: Plan) -> None:
    """Raise ArrayMismatch at the first layer of a live cache that is not what the plan says.

    The cache is a transformers Cache (its layers' keys and values), the legacy tuple of
    (keys, values) pairs, or a list per decoder layer of (keys, values) or None; its tensors are
    torch tensors or numpy arrays, of which only the metadata is read (no copy). Every layer the
    plan puts in a group must hold keys and values of its group's dimensions ([batch, kv_heads,
    tokens, head_dim], the tokens a layer of the group holds), its dtype, and a layout the codec
    reads: each (batch, KV head) stream of tokens dense, a token's head_dim values adjacent and
    one token's after another's (how the streams lie apart is free: a sliding layer's window is
    a view into a longer tensor). Every other layer must hold none. The message names the layer,
    the role and the group.
    """
    entries = _entries(cache, plan)
    if len(entries) != plan.layers:
        raise ArrayMismatch(
            f"the cache has {len(entries)} layers and the model {plan.layers}: expected one "
            "entry per decoder layer (None where a layer holds no keys and values)"
        )
    groups: dict[int, Group] = {i: group for group in plan.groups for i in group.layers}
    wants = {(group.name, role): _want(group, role) for group in plan.groups for role in ROLES}
    for index, entry in enumerate(entries):
        group = groups.get(index)
        if group is None:
            if entry is not None:
                why = plan.without_kv.get(index, "none")
                raise ArrayMismatch(
                    f"layer {index} holds keys and values, but the plan has none there (a "
                    f"{why} layer): expected None"
                )
            continue
        if entry is None:
            raise ArrayMismatch(
                f"layer {index} holds no keys and values, but the plan puts it in {_name(group)}"
            )
        for role, tensor in zip(ROLES, entry, strict=True):
            # Most caches are right: a few C-level reads decide, and only a tensor that does not
            # fit goes through the check that says why.
            if not _fits(tensor, wants[group.name, role]):
                _check(tensor, index, role, group)


# What a layer's tensor must be: its dimensions, its dtype's names, its token stride.
_Want = tuple[tuple[int, int, int, int], frozenset[str], int]


def _want(group: Group, role: str) -> _Want:
    shape = group.shape(role)
    dims = (shape.batch, shape.kv_heads, shape.tokens, shape.head_dim)
    return dims, DTYPE_NAMES[shape.dtype], shape.head_dim


def _fits(tensor: Any, want: _Want) -> bool:
    """Whether a tensor is what the plan wants (False for anything else, which _check names)."""
    dims, dtypes, token_stride = want
    try:
        if tuple(tensor.shape) != dims or dtype_name(tensor.dtype) not in dtypes:
            return False
        stride = getattr(tensor, "stride", None)
        if callable(stride):  # torch: in elements
            strides, unit = stride(), 1
        else:  # numpy: in bytes
            strides, unit = tensor.strides, tensor.dtype.itemsize
        return (dims[2] == 1 or strides[2] == token_stride * unit) and (
            dims[3] == 1 or strides[3] == unit
        )
    except (AttributeError, TypeError, IndexError):
        return False


def _check(tensor: Any, index: int, role: str, group: Group) -> None:
    shape = group.shape(role)
    what = f"layer {index} {role}s ({_name(group)})"
    dims, dtype, strides = metadata(tensor, what)
    want = [getattr(shape, axis) for axis in LAYER_AXES]
    check_dimensions(dims, dtype, LAYER_AXES, want, shape.dtype, where=f"{what}: ", axis_word="")
    # The codec pages each stream of tokens: within it, a token's values are adjacent (dim stride
    # 1) and tokens follow one another (token stride head_dim). An axis of length one is never
    # stepped along, so its stride places nothing.
    for axis, got, expected, length in (
        ("token_stride", strides[2], shape.head_dim, dims[2]),
        ("dim_stride", strides[3], 1, dims[3]),
    ):
        if length != 1 and got != expected:
            raise ArrayMismatch(
                f"{what}: {axis}: expected {expected} elements (each stream of tokens dense, "
                f"as the codec reads it), got {got}",
                pointer=f"/{axis}",
            )
