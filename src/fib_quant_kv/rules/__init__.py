"""The reference's semantic rules: plain fields in, violations out, nothing else.

Each module declares its contract's rules (`RULES`, with stable ids) beside the code that checks
them, and fib_quant_kv.reference lists them all. What runs first (decoding, the schema) and how
the verdicts combine is decided in one place, fib_quant_kv.verdict.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeAlias

from fib_quant_kv.contracts import LAYOUT_SCHEMA, SHAPE_SCHEMA
from fib_quant_kv.errors import Violation
from fib_quant_kv.rules import geometry, layout
from fib_quant_kv.rules.geometry import GeometryFields, geometry_violations
from fib_quant_kv.rules.layout import LayoutFields, layout_violations
from fib_quant_kv.rules.shape import ShapeFields, shape_violations

# What the rules read: a model, or the hot path's plain values of one.
DocumentFields: TypeAlias = ShapeFields | LayoutFields | GeometryFields

__all__ = ["DocumentFields", "against_shape", "broken_shape", "semantic_violations"]


def semantic_violations(
    doc: DocumentFields, shape: ShapeFields | None, shape_broken: list[Violation]
) -> Iterator[Violation]:
    """The rules of a document whose schema holds; a layout or geometry needs its shape."""
    if doc.schema_version == SHAPE_SCHEMA:
        return shape_violations(doc)
    if shape is None:
        raise TypeError(f"a {doc.schema_version} is checked against a shape: none was given")
    return against_shape(doc, shape, shape_broken)


def against_shape(
    doc: LayoutFields | GeometryFields, shape: ShapeFields, shape_broken: list[Violation]
) -> Iterator[Violation]:
    """The rules of a layout or geometry, given what is already known to be wrong with its shape.

    Checking many documents against one shape validates the shape once, not once per document.
    """
    # The reference validates the shape first and stops there if it is invalid: nothing about
    # the layout or geometry can be judged against a broken shape.
    if shape_broken:
        return iter(broken_shape(doc.schema_version, shape_broken))
    # The marker names the contract: the schema has been checked, so it is the contract's own.
    if doc.schema_version == LAYOUT_SCHEMA:
        return layout_violations(doc, shape)
    return geometry_violations(doc, shape)


def broken_shape(marker: str, shape_broken: list[Violation]) -> list[Violation]:
    """A layout's or geometry's verdict against a shape that breaks its own rules: each of the
    shape's violations, in the shape's own category, under the document's shape_valid rule."""
    rule = layout.SHAPE_VALID if marker == LAYOUT_SCHEMA else geometry.SHAPE_VALID
    return [
        rule.at(
            "",
            f"the shape is invalid{' at ' + v.pointer if v.pointer else ''}: {v.message}",
            v.code,
        )
        for v in shape_broken
    ]
