"""Checks that an in-memory KV tensor (numpy array or torch tensor) is what its contracts say."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fib_quant_kv.errors import ArrayMismatch
from fib_quant_kv.rules.layout import STRIDE_FIELDS
from fib_quant_kv.verdict import validate
from fib_quant_kv_models import KvCacheLayoutV1, KvTensorShapeV1

AXES = ("batch", "layers", "kv_heads", "tokens", "head_dim")

# The dtype names numpy (with ml_dtypes for bfloat16) and torch give each v1 dtype.
DTYPE_NAMES = {
    "f16": frozenset({"float16", "torch.float16", "torch.half"}),
    "bf16": frozenset({"bfloat16", "torch.bfloat16"}),
    "f32": frozenset({"float32", "torch.float32", "torch.float"}),
}


# Each dtype object's name, by the object: numpy writes a dtype's name in Python, a few
# microseconds each, and a cache of layers asks it for every tensor.
_NAMES: dict[Any, str] = {}


def dtype_name(dtype: Any) -> str:
    """A numpy or torch dtype's name, as str() gives it."""
    name = _NAMES.get(dtype)
    if name is None:
        name = str(dtype)
        if len(_NAMES) < 256:  # a program has a handful of dtypes; never grow without bound
            _NAMES[dtype] = name
    return name


def metadata(array: Any, what: str = "the array") -> tuple[tuple[int, ...], str, tuple[Any, ...]]:
    """An array's dimensions, dtype name and strides in elements, read without a copy.

    Anything but a numpy array or a torch tensor (or an object that reads like one: shape,
    dtype, and strides or stride()) is refused, naming what it is.
    """
    shape, dtype = getattr(array, "shape", None), getattr(array, "dtype", None)
    stride = getattr(array, "stride", None)
    if shape is None or dtype is None or not (callable(stride) or hasattr(array, "strides")):
        raise ArrayMismatch(
            f"{what}: expected a numpy array or a torch tensor, got {type(array).__name__}"
        )
    dims = tuple(int(d) for d in shape)
    if callable(stride):  # torch: strides are counted in elements already
        return dims, dtype_name(dtype), tuple(int(s) for s in stride())
    itemsize = int(dtype.itemsize)
    # numpy counts strides in bytes; a stride that is not a whole number of elements cannot
    # match any layout, so it is kept as a fraction to fail the comparison.
    strides = tuple(s // itemsize if s % itemsize == 0 else s / itemsize for s in array.strides)
    return dims, dtype_name(dtype), strides


def check_dimensions(
    dims: tuple[int, ...],
    dtype: str,
    axes: Sequence[str],
    want: Sequence[int],
    shape_dtype: str,
    *,
    where: str = "",
    axis_word: str = "axis ",
) -> None:
    """Raise ArrayMismatch where dimensions or dtype differ from a shape's; `where` begins each
    message (what the tensor is), `axis_word` each axis's name."""
    if len(dims) != len(want):
        raise ArrayMismatch(
            f"{where}expected {len(want)} dimensions [{', '.join(axes)}], got {len(dims)}: {dims}"
        )
    for axis, got, expected in zip(axes, dims, want, strict=True):
        if got != expected:
            raise ArrayMismatch(
                f"{where}{axis_word}{axis}: expected {expected}, got {got}", pointer=f"/{axis}"
            )
    if dtype not in DTYPE_NAMES[shape_dtype]:
        raise ArrayMismatch(f"{where}dtype: expected {shape_dtype}, got {dtype}", pointer="/dtype")


def check_array(array: Any, shape: KvTensorShapeV1, layout: KvCacheLayoutV1) -> None:
    """Raise ArrayMismatch naming the first axis or property where the array differs.

    The array must have the shape's five dimensions in [batch][layer][kv_head][token][head_dim]
    order, the shape's dtype, and strides (in elements) equal to the layout's. The layout is
    validated against the shape first, so a passing array is one the reference codec serves.
    """
    validate(layout, shape)
    dims, dtype, strides = metadata(array)
    check_dimensions(dims, dtype, AXES, [getattr(shape, axis) for axis in AXES], shape.dtype)
    for name, got_stride, size in zip(STRIDE_FIELDS, strides, dims, strict=True):
        expected_stride = getattr(layout, name)
        # An axis of length one is never stepped along, so its stride does not place any
        # element (numpy and torch call such arrays contiguous whatever it is).
        if size != 1 and got_stride != expected_stride:
            raise ArrayMismatch(
                f"{name}: expected {expected_stride} elements, got {got_stride}",
                pointer=f"/{name}",
            )
