"""Semantic rules of fib_quant_kv_tensor_shape_v1, in the reference's order."""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Final, Literal, Protocol

from fib_quant_kv.contracts import SHAPE_SCHEMA
from fib_quant_kv.errors import Violation

U64_MAX = (1 << 64) - 1

# The enum values the rules name, as plain strings: the generated enums are str subclasses, so
# a member and its value compare alike, and these need no model (nor pydantic) imported.
MHA: Final = "mha"
MQA: Final = "mqa"
GQA: Final = "gqa"
KEY: Final = "key"
VALUE: Final = "value"
NOT_APPLICABLE: Final = "not_applicable"

# Rule 2 checks these in this order; the first zero is the reference's message.
COUNT_FIELDS = ("batch", "layers", "kv_heads", "query_heads", "tokens", "head_dim")
_counts = operator.attrgetter(*COUNT_FIELDS)


class ShapeFields(Protocol):
    """What the rules read of a shape: a KvTensorShapeV1, or the hot path's plain values of one.

    Enum members are str, so a plain string and its member compare (and print) alike.
    """

    @property
    def schema_version(self) -> Literal["fib_quant_kv_tensor_shape_v1"]: ...
    @property
    def role(self) -> str: ...
    @property
    def attention_kind(self) -> str: ...
    @property
    def batch(self) -> int: ...
    @property
    def layers(self) -> int: ...
    @property
    def kv_heads(self) -> int: ...
    @property
    def query_heads(self) -> int: ...
    @property
    def tokens(self) -> int: ...
    @property
    def head_dim(self) -> int: ...
    @property
    def dtype(self) -> str: ...
    @property
    def rope_state(self) -> str: ...


def vector_count_unchecked(shape: ShapeFields) -> int:
    """batch * layers * kv_heads * tokens, in unbounded integers."""
    return shape.batch * shape.layers * shape.kv_heads * shape.tokens


def shape_violations(shape: ShapeFields) -> Iterator[Violation]:
    """Every semantic rule the shape breaks, the reference's first verdict first."""
    if shape.schema_version != SHAPE_SCHEMA:
        yield Violation(
            "corrupt_payload",
            "/schema_version",
            f"kv shape schema_version {shape.schema_version}, expected {SHAPE_SCHEMA}",
        )
    counts = _counts(shape)
    if 0 in counts:  # one C-level test for the common case, names only when needed
        for name, count in zip(COUNT_FIELDS, counts, strict=True):
            if count == 0:
                yield Violation("corrupt_payload", f"/{name}", f"kv shape {name} must be > 0")
    kind = shape.attention_kind
    if kind == MHA and shape.query_heads != shape.kv_heads:
        yield Violation(
            "corrupt_payload",
            "/query_heads",
            f"mha requires query_heads == kv_heads, got {shape.query_heads} and {shape.kv_heads}",
        )
    if kind == MQA and shape.kv_heads != 1:
        yield Violation(
            "corrupt_payload", "/kv_heads", f"mqa requires kv_heads == 1, got {shape.kv_heads}"
        )
    # A zero kv_heads is already reported above; the modulus is undefined for it.
    grouped = kind in (GQA, MQA)
    if grouped and shape.kv_heads != 0 and shape.query_heads % shape.kv_heads != 0:
        yield Violation(
            "corrupt_payload",
            "/query_heads",
            f"{kind} requires query_heads to be a multiple of kv_heads, "
            f"got {shape.query_heads} and {shape.kv_heads}",
        )
    if shape.role == KEY and shape.rope_state == NOT_APPLICABLE:
        yield Violation(
            "corrupt_payload",
            "/rope_state",
            "key cache requires rope_state pre_rope or post_rope, got not_applicable",
        )
    if shape.role == VALUE and shape.rope_state != NOT_APPLICABLE:
        yield Violation(
            "corrupt_payload",
            "/rope_state",
            f"value cache requires rope_state not_applicable, got {shape.rope_state}",
        )
    vectors = vector_count_unchecked(shape)
    if vectors > U64_MAX or vectors * shape.head_dim > U64_MAX:
        yield Violation(
            "resource_limit_exceeded",
            "",
            "kv shape size overflow: batch * layers * kv_heads * tokens * head_dim "
            "must fit in an unsigned 64-bit integer",
        )
