"""check_cache: a live cache against its plan, layer by layer, from its tensors' metadata.

The real transformers caches of every family are judged in tests/test_transformers_caches.py;
here the cache forms and every way a cache can be wrong, with numpy arrays and stand-ins.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fib_quant_kv as fqk

# Gemma 2's layout, small: sliding layers (0, 2) keep window - 1 = 3 tokens of the 6, full
# layers (1, 3) all 6; one KV head of size 4, batch 2.
GEMMA2 = {
    "model_type": "gemma2",
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 4,
    "hidden_size": 8,
    "sliding_window": 4,
    "torch_dtype": "bfloat16",
}
# Qwen3-Next's: three linear-attention layers, then a full one.
QWEN3_NEXT = {
    "model_type": "qwen3_next",
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 4,
    "torch_dtype": "float32",
}


def kv(batch: int, heads: int, tokens: int, size: int, dtype: Any = ml_dtypes.bfloat16) -> Any:
    return np.zeros((batch, heads, tokens, size), dtype)


@pytest.fixture
def plan() -> fqk.Plan:
    return fqk.plan_from_hf_config(GEMMA2, tokens=6, batch=2)


@pytest.fixture
def layers() -> list[Any]:
    """The cache the plan describes, a (keys, values) pair per layer."""
    return [(kv(2, 1, t, 4), kv(2, 1, t, 4)) for t in (3, 6, 3, 6)]


class Layer:
    """A transformers cache layer as check_cache reads one: keys and values, or None."""

    def __init__(self, keys: Any, values: Any) -> None:
        self.keys, self.values = keys, values


class Cache:
    """A transformers Cache as check_cache reads one: its `layers`."""

    def __init__(self, layers: list[Any]) -> None:
        self.layers = [Layer(*(entry or (None, None))) for entry in layers]


def test_the_plan_has_the_groups_the_cache_has(plan: fqk.Plan) -> None:
    assert [(g.name, g.layers, g.tokens) for g in plan.groups] == [
        ("sliding", (0, 2), 3),
        ("full", (1, 3), 6),
    ]


def test_a_cache_in_every_form_is_accepted(plan: fqk.Plan, layers: list[Any]) -> None:
    fqk.check_cache(layers, plan)
    fqk.check_cache(tuple(layers), plan)  # the legacy tuple of pairs
    fqk.check_cache(Cache(layers), plan)


def test_a_sliding_window_that_is_a_view_of_a_longer_tensor_is_accepted(
    plan: fqk.Plan, layers: list[Any]
) -> None:
    # transformers keeps a window as a slice of the full states: its streams lie apart by the
    # full length, each still dense.
    longer = kv(2, 1, 6, 4)[:, :, -3:, :]
    assert not longer.flags["C_CONTIGUOUS"]
    layers[0] = (longer, longer)
    fqk.check_cache(layers, plan)


def test_only_metadata_is_read() -> None:
    class Tensor:
        """Shape, dtype and strides, and no data at all."""

        def __init__(self, shape: tuple[int, ...]) -> None:
            self.shape = shape
            self.dtype = "torch.float32"

        def stride(self) -> tuple[int, ...]:
            _b, h, t, d = self.shape
            return (h * t * d, t * d, d, 1)

        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"read {name}")

    plan = fqk.plan_from_hf_config(QWEN3_NEXT, tokens=5)
    fqk.check_cache([None, None, None, (Tensor((1, 1, 5, 4)), Tensor((1, 1, 5, 4)))], plan)


def test_a_cache_that_leaves_out_its_trailing_layers_without_kv() -> None:
    # A transformers cache made without the config adds layers as they are used.
    hybrid = {**QWEN3_NEXT, "layer_types": ["full_attention", "linear_attention"]}
    hybrid["num_hidden_layers"] = 2
    plan = fqk.plan_from_hf_config(hybrid, tokens=5)
    pair = (kv(1, 1, 5, 4, np.float32), kv(1, 1, 5, 4, np.float32))
    fqk.check_cache(Cache([pair]), plan)
    with pytest.raises(fqk.ArrayMismatch, match="the cache has 1 layers and the model 2"):
        fqk.check_cache([pair], plan)  # a list says every layer


def transposed(array: Any) -> Any:
    """The same values with head_dim outermost in memory: tokens no longer dense."""
    return np.ascontiguousarray(array.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)


BROKEN = [
    pytest.param(lambda c: c[:3], "the cache has 3 layers and the model 4", id="one-layer-short"),
    pytest.param(lambda c: [*c, None], "the cache has 5 layers", id="one-layer-more"),
    pytest.param(
        lambda c: [c[0], None, c[2], c[3]],
        "layer 1 holds no keys and values, but the plan puts it in group full",
        id="a-layer-without-kv",
    ),
    pytest.param(
        lambda c: [(c[0][0].astype(np.float16), c[0][1]), *c[1:]],
        "layer 0 keys (group sliding): dtype: expected bf16, got float16",
        id="a-wrong-dtype",
    ),
    pytest.param(
        lambda c: [c[0], (c[1][0], c[1][1][:, :, 1:, :]), *c[2:]],
        "layer 1 values (group full): tokens: expected 6, got 5",
        id="one-token-short",
    ),
    pytest.param(
        lambda c: [c[1], c[0], *c[2:]],
        "layer 0 keys (group sliding): tokens: expected 3, got 6",
        id="two-groups-swapped",
    ),
    pytest.param(
        lambda c: [(kv(1, 1, 3, 4), kv(1, 1, 3, 4)), *c[1:]],
        "layer 0 keys (group sliding): batch: expected 2, got 1",
        id="another-batch",
    ),
    pytest.param(
        lambda c: [(c[0][0][0], c[0][1]), *c[1:]],
        "layer 0 keys (group sliding): expected 4 dimensions",
        id="three-dimensions",
    ),
    pytest.param(
        lambda c: [(transposed(c[0][0]), c[0][1]), *c[1:]],
        "layer 0 keys (group sliding): token_stride: expected 4 elements",
        id="tokens-not-dense",
    ),
    pytest.param(
        lambda c: [([[0.0]], c[0][1]), *c[1:]],
        "layer 0 keys (group sliding): expected a numpy array or a torch tensor, got list",
        id="not-an-array",
    ),
    pytest.param(
        lambda c: [c[0][0], *c[1:]],
        "layer 0: expected (keys, values) or None",
        id="not-a-pair",
    ),
]


@pytest.mark.parametrize(("change", "message"), BROKEN)
def test_a_broken_cache_is_refused_naming_the_layer_the_role_and_the_group(
    plan: fqk.Plan, layers: list[Any], change: Any, message: str
) -> None:
    with pytest.raises(fqk.ArrayMismatch) as caught:
        fqk.check_cache(change(layers), plan)
    assert message in str(caught.value)
    assert isinstance(caught.value, fqk.FibQuantKvError)


def test_a_layer_with_kv_where_the_plan_has_none_is_refused() -> None:
    plan = fqk.plan_from_hf_config(QWEN3_NEXT, tokens=5)
    pair = (kv(1, 1, 5, 4, np.float32), kv(1, 1, 5, 4, np.float32))
    fqk.check_cache([None, None, None, pair], plan)
    with pytest.raises(fqk.ArrayMismatch, match="layer 0 holds keys and values, but the plan has"):
        fqk.check_cache([pair, None, None, pair], plan)


@pytest.mark.parametrize("cache", [None, 3, "keys", b"kv", {"layers": []}])
def test_what_is_no_cache_is_refused(plan: fqk.Plan, cache: Any) -> None:
    with pytest.raises(fqk.ArrayMismatch, match="expected a transformers Cache"):
        fqk.check_cache(cache, plan)


@pytest.mark.parametrize("array", [[1, 2, 3], (1, 2), 3.0, None, "array"])
def test_check_array_refuses_what_is_no_array_naming_it(array: Any) -> None:
    shape = fqk.shape_from_hf_config(GEMMA2, role="key", tokens=3)
    with pytest.raises(fqk.ArrayMismatch) as caught:
        fqk.check_array(array, shape, fqk.canonical_layout(shape))
    assert f"got {type(array).__name__}" in caught.value.message


# The fast path against the check that explains ----------------------------------------------------


@given(
    dims=st.tuples(*(st.integers(1, 3) for _ in range(4))),
    dtype=st.sampled_from([np.float16, np.float32, ml_dtypes.bfloat16, np.int32]),
    order=st.permutations(range(4)),
    cut=st.integers(0, 2),
)
def test_the_fast_fit_agrees_with_the_check_that_explains(
    dims: tuple[int, int, int, int], dtype: Any, order: list[int], cut: int
) -> None:
    from fib_quant_kv.hf.caches import _check, _fits, _want

    config = {
        "model_type": "llama",
        "num_hidden_layers": 1,
        "num_attention_heads": 2 * dims[1],
        "num_key_value_heads": dims[1],
        "head_dim": dims[3],
        "hidden_size": 8,
        "torch_dtype": "bfloat16",
    }
    plan = fqk.plan_from_hf_config(config, tokens=dims[2], batch=dims[0])
    group = plan.groups[0]
    # Any layout of the values: laid out in `order`, then viewed back, and cut along tokens.
    stored = np.zeros(tuple(dims[i] + (cut if i == 2 else 0) for i in order), dtype)
    tensor = stored.transpose(np.argsort(order))[:, :, cut:, :]
    try:
        _check(tensor, 0, "key", group)
    except fqk.ArrayMismatch:
        explained = False
    else:
        explained = True
    assert _fits(tensor, _want(group, "key")) is explained
