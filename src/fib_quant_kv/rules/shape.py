"""Semantic rules of fib_quant_kv_tensor_shape_v1, in the reference's order."""

from __future__ import annotations

from collections.abc import Iterator

from fib_quant_kv.contracts import SHAPE_SCHEMA
from fib_quant_kv.errors import Violation
from fib_quant_kv_models import KvAttentionKind, KvRole, KvRopeState, KvTensorShapeV1

U64_MAX = (1 << 64) - 1

# Enum members read once: attribute access on an Enum class is a Python-level descriptor call,
# which the hot path would otherwise pay several times per document.
MHA, MQA, GQA = KvAttentionKind.mha, KvAttentionKind.mqa, KvAttentionKind.gqa
KEY, VALUE = KvRole.key, KvRole.value
NOT_APPLICABLE = KvRopeState.not_applicable

# Rule 2 checks these in this order; the first zero is the reference's message.
COUNT_FIELDS = ("batch", "layers", "kv_heads", "query_heads", "tokens", "head_dim")


def vector_count_unchecked(shape: KvTensorShapeV1) -> int:
    """batch * layers * kv_heads * tokens, in unbounded integers."""
    return shape.batch * shape.layers * shape.kv_heads * shape.tokens


def shape_violations(shape: KvTensorShapeV1) -> Iterator[Violation]:
    """Every semantic rule the shape breaks, the reference's first verdict first."""
    if shape.schema_version != SHAPE_SCHEMA:
        yield Violation(
            "corrupt_payload",
            "/schema_version",
            f"kv shape schema_version {shape.schema_version}, expected {SHAPE_SCHEMA}",
        )
    for name in COUNT_FIELDS:
        if getattr(shape, name) == 0:
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
