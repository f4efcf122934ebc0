"""Semantic rules of fib_quant_kv_tensor_shape_v1, in the reference's order."""

from __future__ import annotations

import operator
from typing import Final, Literal, Protocol

from fib_quant_kv.contracts import CONTRACTS, SHAPE_SCHEMA
from fib_quant_kv.errors import Rule, Violation

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
# The other fields the rules read.
_named = operator.attrgetter("schema_version", "role", "attention_kind", "rope_state")

# The reference's Shape.validate(), one rule per check, in its order (steps 3 to 9: decoding
# and the schema come first).
MARKER = Rule(
    "shape.schema_version",
    ("corrupt_payload",),
    3,
    f"schema_version is {SHAPE_SCHEMA}. In a document the schema's marker decides first; "
    "only a model built in code can break this one.",
)
COUNTS_NONZERO = Rule(
    "shape.counts_nonzero",
    ("corrupt_payload",),
    4,
    "batch, layers, kv_heads, query_heads, tokens and head_dim are each greater than 0 (in a "
    "document the schema's minimum of 1 says so first, at the same place).",
)
MHA_HEADS_EQUAL = Rule(
    "shape.mha_heads_equal",
    ("corrupt_payload",),
    5,
    "With attention_kind mha, query_heads equals kv_heads.",
    breaks={"attention_kind": "mha"},
)
MQA_ONE_KV_HEAD = Rule(
    "shape.mqa_one_kv_head",
    ("corrupt_payload",),
    6,
    "With attention_kind mqa, kv_heads is 1.",
    breaks={"attention_kind": "mqa"},
)
GROUPED_HEADS_DIVIDE = Rule(
    "shape.grouped_heads_divide",
    ("corrupt_payload",),
    7,
    "With attention_kind gqa or mqa, query_heads is a multiple of kv_heads (gqa with equal "
    "counts is valid).",
    breaks={"query_heads": 30},
)
ROPE_STATE_ROLE = Rule(
    "shape.rope_state_role",
    ("corrupt_payload",),
    8,
    "Keys are pre_rope or post_rope; values are not_applicable.",
    breaks={"rope_state": "not_applicable"},
)
SIZE_OVERFLOW = Rule(
    "shape.size_overflow",
    ("resource_limit_exceeded",),
    9,
    "batch * layers * kv_heads * tokens, and that times head_dim, fit in an unsigned 64-bit "
    "integer.",
    breaks={"batch": 4294967295, "layers": 4294967295, "tokens": 4294967295},
)


# The first rule of a layout and of a geometry: the shape it is judged against is valid. The
# reference validates the shape before anything else. Its violations are reported under this
# rule with the shape's own category: its rules', its decoding's or schema's, or the set's when
# its file cannot be read. Declared here, as data, once for both kinds.
SHAPE_VALID_RULES = {
    kind: Rule(
        f"{kind}.shape_valid",
        ("corrupt_payload", "resource_limit_exceeded", "decode", "schema", "set"),
        3,
        f"The shape the {kind} is judged against is itself valid; nothing about the {kind} "
        "can be judged against a broken shape. Reported with the shape's own category.",
        breaks_shape={"attention_kind": "mha"},
    )
    for kind in ("layout", "geometry")
}


RULES = (
    MARKER,
    COUNTS_NONZERO,
    MHA_HEADS_EQUAL,
    MQA_ONE_KV_HEAD,
    GROUPED_HEADS_DIVIDE,
    ROPE_STATE_ROLE,
    SIZE_OVERFLOW,
)


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


def _a_marker_of_these_rules(marker: str) -> bool:
    """Whether a marker names a contract judged by these rules (a later shape version)."""
    contract = CONTRACTS.get(marker)
    return contract is not None and contract.rules_module == __name__


def shape_violations(shape: ShapeFields) -> list[Violation]:
    """Every semantic rule the shape breaks, the reference's first verdict first."""
    found: list[Violation] = []
    # Each field read once: a model's or a named tuple's attribute read is a descriptor call,
    # and this runs for every shape judged.
    marker, role, kind, rope_state = _named(shape)
    counts = _counts(shape)
    batch, layers, kv_heads, query_heads, tokens, head_dim = counts
    # v1 first, in one comparison; another registered version of the shape passes too.
    if marker != SHAPE_SCHEMA and not _a_marker_of_these_rules(marker):
        found.append(
            MARKER.at(
                "/schema_version", f"kv shape schema_version {marker}, expected {SHAPE_SCHEMA}"
            )
        )
    if 0 in counts:  # one C-level test for the common case, names only when needed
        for name, count in zip(COUNT_FIELDS, counts, strict=True):
            if count == 0:
                found.append(COUNTS_NONZERO.at(f"/{name}", f"kv shape {name} must be > 0"))
    if kind == MHA and query_heads != kv_heads:
        found.append(
            MHA_HEADS_EQUAL.at(
                "/query_heads",
                f"mha requires query_heads == kv_heads, got {query_heads} and {kv_heads}",
            )
        )
    if kind == MQA and kv_heads != 1:
        found.append(MQA_ONE_KV_HEAD.at("/kv_heads", f"mqa requires kv_heads == 1, got {kv_heads}"))
    # A zero kv_heads is already reported above; the modulus is undefined for it.
    grouped = kind in (GQA, MQA)
    if grouped and kv_heads != 0 and query_heads % kv_heads != 0:
        found.append(
            GROUPED_HEADS_DIVIDE.at(
                "/query_heads",
                f"{kind} requires query_heads to be a multiple of kv_heads, "
                f"got {query_heads} and {kv_heads}",
            )
        )
    if role == KEY and rope_state == NOT_APPLICABLE:
        found.append(
            ROPE_STATE_ROLE.at(
                "/rope_state",
                "key cache requires rope_state pre_rope or post_rope, got not_applicable",
            )
        )
    if role == VALUE and rope_state != NOT_APPLICABLE:
        found.append(
            ROPE_STATE_ROLE.at(
                "/rope_state",
                f"value cache requires rope_state not_applicable, got {rope_state}",
            )
        )
    # vector_count_unchecked, from the counts in hand.
    vectors = batch * layers * kv_heads * tokens
    if vectors > U64_MAX or vectors * head_dim > U64_MAX:
        found.append(
            SIZE_OVERFLOW.at(
                "",
                "kv shape size overflow: batch * layers * kv_heads * tokens * head_dim "
                "must fit in an unsigned 64-bit integer",
            )
        )
    return found


# What a contract's registry entry calls (`violations(document)` for a shape,
# `violations(document, shape)` for a layout or geometry): the checking function itself, with no
# frame between them on the hot path.
violations = shape_violations
