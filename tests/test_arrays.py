"""check_array: an in-memory KV tensor against its shape and canonical layout."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

import fib_quant_kv as fqk

# Every axis a different size, so a mismatch can only be read one way.
DIMS = (2, 3, 2, 5, 4)  # batch, layers, kv_heads, tokens, head_dim
AXES = ("batch", "layers", "kv_heads", "tokens", "head_dim")
NUMPY_DTYPES: dict[str, Any] = {"f16": np.float16, "bf16": ml_dtypes.bfloat16, "f32": np.float32}


def make_shape(dtype: str = "f16", **changes: Any) -> fqk.KvTensorShapeV1:
    fields: dict[str, Any] = {
        "schema_version": "fib_quant_kv_tensor_shape_v1",
        "role": "key",
        "attention_kind": "gqa",
        "batch": DIMS[0],
        "layers": DIMS[1],
        "kv_heads": DIMS[2],
        "query_heads": 4,
        "tokens": DIMS[3],
        "head_dim": DIMS[4],
        "dtype": dtype,
        "rope_state": "post_rope",
    }
    fields.update(changes)
    return fqk.KvTensorShapeV1(**fields)


def check(array: Any, shape: fqk.KvTensorShapeV1 | None = None) -> None:
    shape = shape or make_shape()
    fqk.check_array(array, shape, fqk.canonical_layout(shape))


def mismatch(array: Any, shape: fqk.KvTensorShapeV1 | None = None) -> fqk.ArrayMismatch:
    with pytest.raises(fqk.ArrayMismatch) as caught:
        check(array, shape)
    assert caught.value.code == "array_mismatch"
    assert isinstance(caught.value, fqk.FibQuantKvError)
    return caught.value


# What passes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["f16", "bf16", "f32"])
def test_c_contiguous_array_of_the_shape_passes(dtype: str) -> None:
    shape = make_shape(dtype)
    array = np.zeros(DIMS, dtype=NUMPY_DTYPES[dtype])
    assert array.flags.c_contiguous
    fqk.check_array(array, shape, fqk.canonical_layout(shape))


def test_a_reshaped_buffer_passes() -> None:
    array = np.arange(np.prod(DIMS), dtype=np.float16).reshape(DIMS)
    check(array)


def test_a_whole_leading_slice_of_a_larger_batch_passes() -> None:
    # array[:2] of a contiguous (4, ...) array is itself contiguous in the canonical order.
    check(np.zeros((4, *DIMS[1:]), np.float16)[:2])


@pytest.mark.parametrize("role", ["key", "value"])
def test_both_roles_pass(role: str) -> None:
    rope = "post_rope" if role == "key" else "not_applicable"
    check(np.zeros(DIMS, np.float16), make_shape(role=role, rope_state=rope))


def test_a_shape_from_a_config_and_its_layout() -> None:
    config = {
        "model_type": "llama",
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "torch_dtype": "bfloat16",
    }
    shape = fqk.shape_from_hf_config(config, role="value", tokens=3, batch=2)
    layout = fqk.canonical_layout(shape)
    fqk.check_array(np.zeros((2, 2, 2, 3, 16), ml_dtypes.bfloat16), shape, layout)
    with pytest.raises(fqk.ArrayMismatch):
        fqk.check_array(np.zeros((2, 2, 4, 3, 16), ml_dtypes.bfloat16), shape, layout)


# Dimensions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dims", [DIMS[:4], DIMS[1:], (*DIMS, 1), (1, *DIMS), (), (int(np.prod(DIMS)),)]
)
def test_wrong_number_of_dimensions(dims: tuple[int, ...]) -> None:
    error = mismatch(np.zeros(dims, np.float16))
    assert error.pointer == ""
    assert "expected 5 dimensions" in error.message
    assert f"got {len(dims)}" in error.message


@pytest.mark.parametrize("axis", range(5), ids=AXES)
@pytest.mark.parametrize("delta", [1, -1], ids=["larger", "smaller"])
def test_each_axis_wrong(axis: int, delta: int) -> None:
    dims = list(DIMS)
    dims[axis] += delta
    error = mismatch(np.zeros(dims, np.float16))
    assert error.pointer == f"/{AXES[axis]}"
    assert error.message == f"axis {AXES[axis]}: expected {DIMS[axis]}, got {dims[axis]}"


def test_the_first_wrong_axis_is_named() -> None:
    error = mismatch(np.zeros((2, 3, 9, 5, 9), np.float16))
    assert error.pointer == "/kv_heads"


def test_axes_are_checked_before_dtype() -> None:
    error = mismatch(np.zeros((2, 3, 2, 6, 4), np.float32))
    assert error.pointer == "/tokens"


def test_the_head_and_token_axes_swapped() -> None:
    # (batch, layers, tokens, kv_heads, head_dim) instead of (batch, layers, kv_heads, ...).
    error = mismatch(np.zeros((2, 3, 5, 2, 4), np.float16))
    assert error.pointer == "/kv_heads"


# Dtype ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape_dtype", "array_dtype", "shown"),
    [
        ("f16", np.float32, "float32"),
        ("f16", ml_dtypes.bfloat16, "bfloat16"),
        ("f16", np.int16, "int16"),
        ("f16", np.uint16, "uint16"),
        ("f16", np.dtype(">f2"), ">f2"),
        ("bf16", np.float16, "float16"),
        ("bf16", np.float32, "float32"),
        ("f32", np.float16, "float16"),
        ("f32", np.float64, "float64"),
        ("f32", np.int32, "int32"),
    ],
)
def test_wrong_dtype(shape_dtype: str, array_dtype: Any, shown: str) -> None:
    error = mismatch(np.zeros(DIMS, array_dtype), make_shape(shape_dtype))
    assert error.pointer == "/dtype"
    assert error.message == f"dtype: expected {shape_dtype}, got {shown}"


def test_dtype_is_checked_before_strides() -> None:
    error = mismatch(np.zeros(DIMS, np.float32, order="F"))
    assert error.pointer == "/dtype"


# Strides --------------------------------------------------------------------------------------


def test_heads_and_tokens_transposed() -> None:
    # A (batch, layers, tokens, kv_heads, head_dim) buffer viewed with the right dimensions.
    array = np.zeros((2, 3, 5, 2, 4), np.float16).transpose(0, 1, 3, 2, 4)
    assert array.shape == DIMS
    error = mismatch(array)
    assert error.pointer == "/head_stride"
    assert error.message == "head_stride: expected 20 elements, got 4"


def test_tokens_and_head_dim_transposed() -> None:
    array = np.zeros((2, 3, 2, 4, 5), np.float16).transpose(0, 1, 2, 4, 3)
    assert array.shape == DIMS
    error = mismatch(array)
    assert error.pointer == "/token_stride"
    assert error.message == "token_stride: expected 4 elements, got 1"


def test_layers_and_batch_transposed() -> None:
    array = np.zeros((3, 2, 2, 5, 4), np.float16).transpose(1, 0, 2, 3, 4)
    error = mismatch(array)
    assert error.pointer == "/batch_stride"
    assert error.message == "batch_stride: expected 120 elements, got 40"


def test_equal_length_axes_transposed() -> None:
    # Swapping two axes of equal length keeps the dimensions and changes only the strides.
    array = np.zeros((2, 3, 4, 4, 4), np.float16).transpose(0, 1, 3, 2, 4)
    shape = make_shape(kv_heads=4, tokens=4)
    error = mismatch(array, shape)
    assert error.pointer == "/head_stride"


@pytest.mark.parametrize(
    ("array", "where", "got"),
    [
        (np.zeros((4, 3, 2, 5, 4), np.float16)[::2], "/batch_stride", 240),
        (np.zeros((2, 3, 2, 8, 4), np.float16)[:, :, :, :5], "/batch_stride", 192),
        (np.zeros((2, 3, 2, 5, 8), np.float16)[..., ::2], "/batch_stride", 240),
        (np.zeros((2, 6, 2, 5, 4), np.float16)[:, 1::2], "/batch_stride", 240),
        (np.zeros((2, 3, 2, 5, 4), np.float16)[:, :, :, ::-1], "/token_stride", -4),
    ],
    ids=[
        "every-other-batch",
        "tokens-of-a-longer-cache",
        "every-other-channel",
        "odd-layers",
        "tokens-reversed",
    ],
)
def test_sliced_arrays(array: Any, where: str, got: int) -> None:
    assert array.shape == DIMS
    error = mismatch(array)
    assert error.pointer == where
    assert f"got {got}" in error.message


def test_fortran_ordered_array() -> None:
    array = np.zeros(DIMS, np.float16, order="F")
    assert array.flags.f_contiguous
    assert not array.flags.c_contiguous
    error = mismatch(array)
    assert error.pointer == "/batch_stride"
    assert error.message == "batch_stride: expected 120 elements, got 1"


def test_broadcast_array() -> None:
    array = np.broadcast_to(np.zeros((1, *DIMS[1:]), np.float16), DIMS)
    error = mismatch(array)
    assert error.pointer == "/batch_stride"
    assert "got 0" in error.message


def test_a_stride_that_is_not_a_whole_number_of_elements() -> None:
    # A float16 view whose batch stride is 241 bytes: half an element off the canonical 120.
    buffer = np.zeros(1024, np.uint8)
    array = np.ndarray(DIMS, np.float16, buffer=buffer, strides=(241, 80, 40, 8, 2))
    error = mismatch(array)
    assert error.pointer == "/batch_stride"
    assert error.message == "batch_stride: expected 120 elements, got 120.5"


def test_a_length_one_axis_with_any_stride_passes() -> None:
    shape = make_shape(tokens=1)
    array = np.zeros((2, 3, 1, 2, 4), np.float16).transpose(0, 1, 3, 2, 4)
    assert array.shape == (2, 3, 2, 1, 4)
    assert array.flags.c_contiguous
    # The token axis (length one) steps 8 elements where the layout says 4: never used.
    assert array.strides[3] // array.itemsize == 8
    assert fqk.canonical_layout(shape).token_stride == 4
    check(array, shape)


# The documents are checked first --------------------------------------------------------------


def test_a_layout_that_is_not_canonical_is_refused_before_the_array() -> None:
    shape = make_shape()
    layout = fqk.canonical_layout(shape).model_copy(update={"token_stride": 8})
    with pytest.raises(fqk.CorruptPayload) as caught:
        fqk.check_array(np.zeros(DIMS, np.float16), shape, layout)
    assert caught.value.pointer == "/token_stride"


def test_a_layout_of_another_shape_is_refused() -> None:
    layout = fqk.canonical_layout(make_shape(tokens=6))
    with pytest.raises(fqk.CorruptPayload):
        fqk.check_array(np.zeros(DIMS, np.float16), make_shape(), layout)


def test_an_invalid_shape_is_refused() -> None:
    shape = make_shape().model_copy(update={"attention_kind": "mha"})  # 4 heads, 2 KV heads
    layout = fqk.canonical_layout(make_shape())
    with pytest.raises(fqk.CorruptPayload) as caught:
        fqk.check_array(np.zeros(DIMS, np.float16), shape, layout)
    assert "the shape is invalid at /query_heads" in caught.value.message


# torch ----------------------------------------------------------------------------------------


def test_torch_tensors() -> None:
    torch = pytest.importorskip("torch")
    for dtype, torch_dtype in (("f16", torch.float16), ("bf16", torch.bfloat16)):
        check(torch.zeros(DIMS, dtype=torch_dtype), make_shape(dtype))
    check(torch.zeros(DIMS, dtype=torch.float32), make_shape("f32"))

    with pytest.raises(fqk.ArrayMismatch) as caught:
        check(torch.zeros(DIMS, dtype=torch.float32))
    assert caught.value.pointer == "/dtype"

    with pytest.raises(fqk.ArrayMismatch) as caught:
        check(torch.zeros((2, 3, 2, 6, 4), dtype=torch.float16))
    assert caught.value.pointer == "/tokens"

    # The cache as attention computes it: (batch, layers, tokens, kv_heads, head_dim) transposed.
    transposed = torch.zeros((2, 3, 5, 2, 4), dtype=torch.float16).transpose(2, 3)
    assert tuple(transposed.shape) == DIMS
    with pytest.raises(fqk.ArrayMismatch) as caught:
        check(transposed)
    assert caught.value.pointer == "/head_stride"
    assert caught.value.message == "head_stride: expected 20 elements, got 4"
    check(transposed.contiguous())
