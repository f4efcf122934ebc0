"""Hypothesis strategies several test modules share: valid documents, their JSON texts, bytes.

Kept here, not in a test module, so that test modules never import one another.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

import fib_quant_kv as fqk
from fib_quant_kv import (
    KvAttentionKind,
    KvDtype,
    KvPageGeometryV1,
    KvRole,
    KvRopeState,
    KvTensorShapeV1,
)
from fib_quant_kv.contracts import Document
from tests.shared import EXAMPLES, VECTORS

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
SHAPE_MARKER = "fib_quant_kv_tensor_shape_v1"
# The factors of a shape's element count.
SIZE_FIELDS = ("batch", "layers", "kv_heads", "tokens", "head_dim")


def counts(cap: int) -> st.SearchStrategy[int]:
    """A count in 1..=cap: mostly small, sometimes anywhere up to the cap."""
    return st.one_of(
        st.integers(1, min(cap, 8)),
        st.integers(1, min(cap, 4096)),
        st.integers(1, cap),
    )


@st.composite
def shapes(draw: st.DrawFn) -> KvTensorShapeV1:
    """A shape that obeys every rule of CONTRACT section 2."""
    role = draw(st.sampled_from(KvRole))
    if role == KvRole.value:
        rope = KvRopeState.not_applicable
    else:
        rope = draw(st.sampled_from([KvRopeState.pre_rope, KvRopeState.post_rope]))
    kind = draw(st.sampled_from(KvAttentionKind))
    # The element-count factors, drawn in a random order, each within what is left of u64.
    sizes: dict[str, int] = {}
    budget = U64_MAX
    for name in draw(st.permutations(SIZE_FIELDS)):
        if name == "kv_heads" and kind == KvAttentionKind.mqa:
            value = 1
        else:
            value = draw(counts(min(U32_MAX, budget)))
        sizes[name] = value
        budget //= value
    kv = sizes["kv_heads"]
    if kind == KvAttentionKind.mha:
        query_heads = kv
    elif kind == KvAttentionKind.mqa:
        query_heads = draw(counts(U32_MAX))
    else:
        query_heads = kv * draw(counts(U32_MAX // kv))
    return KvTensorShapeV1(
        schema_version=SHAPE_MARKER,
        role=role,
        attention_kind=kind,
        query_heads=query_heads,
        dtype=draw(st.sampled_from(KvDtype)),
        rope_state=rope,
        **sizes,
    )


@st.composite
def geometries(draw: st.DrawFn, shape: KvTensorShapeV1) -> KvPageGeometryV1:
    """A geometry built as the reference builds it, valid for the shape."""
    return fqk.new_page_geometry(draw(counts(shape.tokens)), shape.head_dim, draw(counts(U32_MAX)))


@st.composite
def documents(draw: st.DrawFn) -> tuple[Document, KvTensorShapeV1]:
    """A valid document of any kind, with the shape it is valid against."""
    shape = draw(shapes())
    kind = draw(st.sampled_from(["shape", "layout", "geometry"]))
    if kind == "shape":
        return shape, shape
    if kind == "layout":
        return fqk.canonical_layout(shape), shape
    return draw(geometries(shape)), shape


WHITESPACE = st.text(alphabet=" \t\n\r", max_size=3)


@st.composite
def json_texts(draw: st.DrawFn, doc: Document) -> bytes:
    """The document as JSON text: keys shuffled, whitespace anywhere allowed, escapes in strings."""

    def string(value: str) -> str:
        # Each character either as itself or as a \\uXXXX escape: the same JSON string.
        chars = [f"\\u{ord(c):04x}" if draw(st.booleans()) else c for c in value]
        return '"' + "".join(chars) + '"'

    def literal(value: Any) -> str:
        return string(value) if isinstance(value, str) else str(value)

    mapping = doc.model_dump(mode="json")
    members = [
        draw(WHITESPACE)
        + string(key)
        + draw(WHITESPACE)
        + ":"
        + draw(WHITESPACE)
        + literal(mapping[key])
        + draw(WHITESPACE)
        for key in draw(st.permutations(list(mapping)))
    ]
    text = draw(WHITESPACE) + "{" + ",".join(members) + "}" + draw(WHITESPACE)
    return text.encode("utf-8")


# Seeds: every vector document and shape, and every example, in JSON and CBOR.
SEEDS: list[bytes] = sorted(
    {c["doc"].encode() for c in VECTORS}
    | {c["shape"].encode() for c in VECTORS if c["shape"]}
    | {bytes.fromhex(c["expect"]["cbor_hex"]) for c in VECTORS if c["expect"]["valid"]}
    | {p.read_bytes() for p in EXAMPLES.iterdir()}
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed with a few byte-level edits: flips, insertions, deletions, truncation, splices."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice", "repeat"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[at:]
        elif op == "splice":
            other = draw(st.sampled_from(SEEDS))
            data[at:] = other[draw(st.integers(0, len(other))) :]
        elif op == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 16))] * draw(st.integers(1, 50))
    return bytes(data)


# Any bytes: random, or a seed document edited.
ANY_BYTES = st.binary(max_size=512) | mutated()
