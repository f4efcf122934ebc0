"""The semantic layer: the reference's cross-field and cross-document rules, on models or fields."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, TypeAlias

from fib_quant_kv.contracts import LAYOUT_SCHEMA, SHAPE_SCHEMA, contract_of
from fib_quant_kv.errors import Violation
from fib_quant_kv.rules.geometry import GeometryFields, geometry_violations
from fib_quant_kv.rules.layout import LayoutFields, layout_violations
from fib_quant_kv.rules.shape import ShapeFields, shape_violations

# The rules themselves need no model. The structural stage and the models (pydantic) are
# imported inside the functions that take a model, so the hot path, which reads plain fields,
# never imports them.
if TYPE_CHECKING:
    from fib_quant_kv.contracts import Document
    from fib_quant_kv_models import KvTensorShapeV1

# What the rules read: a model, or the hot path's plain values of one.
DocumentFields: TypeAlias = ShapeFields | LayoutFields | GeometryFields

__all__ = [
    "DocumentFields",
    "against_shape",
    "collect_violations",
    "merged",
    "semantic_violations",
    "shape_problems",
    "validate",
    "violations",
]


def _shape_of(doc: Document, shape: KvTensorShapeV1 | None) -> KvTensorShapeV1 | None:
    contract = contract_of(doc)
    if not contract.needs_shape:
        return None
    if shape is None:
        raise TypeError(
            f"a {contract.kind} is validated against the shape it describes: pass shape="
        )
    from fib_quant_kv_models import KvTensorShapeV1

    if not isinstance(shape, KvTensorShapeV1):
        raise TypeError(f"shape must be a KvTensorShapeV1, got {type(shape).__name__}")
    return shape


def violations(doc: Document, shape: KvTensorShapeV1 | None = None) -> Iterator[Violation]:
    """Lazily, every rule the document breaks, in the reference's order of checks.

    A model built in code (model_construct, model_copy) skipped its schema, so the schema of
    the model's own contract is checked again first: in the reference a u32 field cannot hold
    -1 or 2^32, and the rules assume well-typed fields.
    """
    from fib_quant_kv.structure import check_structure

    against = _shape_of(doc, shape)
    found = check_structure(dict(doc), contract_of(doc))
    shape_broken = shape_problems(against) if against is not None else []
    if found.violations:
        return iter(merged(found.violations, found.readable, against, shape_broken))
    return semantic_violations(doc, against, shape_broken)


def semantic_violations(
    doc: DocumentFields, shape: ShapeFields | None, shape_broken: list[Violation]
) -> Iterator[Violation]:
    """The rules of a document whose schema holds; a layout or geometry needs its shape."""
    if doc.schema_version == SHAPE_SCHEMA:
        return shape_violations(doc)
    if shape is None:
        raise TypeError(f"a {doc.schema_version} is checked against a shape: none was given")
    return against_shape(doc, shape, shape_broken)


def merged(
    schema_broken: list[Violation],
    readable: Document | None,
    shape: ShapeFields | None,
    shape_broken: list[Violation],
) -> list[Violation]:
    """The schema's violations first, then the rules' at places the schema did not name.

    The rules run only on a document that broke nothing but bounds (`readable`), so the
    reference's own first verdict is among those reported even where the schema states the
    same bound, or states a bound the reference checks later than another rule.
    """
    if readable is None or (shape is None and readable.schema_version != SHAPE_SCHEMA):
        return list(schema_broken)
    named = {v.pointer for v in schema_broken}
    extra = [
        v for v in semantic_violations(readable, shape, shape_broken) if v.pointer not in named
    ]
    return [*schema_broken, *extra]


def shape_problems(shape: KvTensorShapeV1) -> list[Violation]:
    """Everything wrong with a shape, structure first; empty for a valid shape."""
    from fib_quant_kv.structure import check_structure

    found = check_structure(dict(shape), contract_of(shape))
    if found.violations:
        return merged(found.violations, found.readable, None, [])
    return list(shape_violations(shape))


def against_shape(
    doc: LayoutFields | GeometryFields, shape: ShapeFields, shape_broken: list[Violation]
) -> Iterator[Violation]:
    """The rules of a layout or geometry, given what is already known to be wrong with its shape.

    Checking many documents against one shape validates the shape once, not once per document.
    """
    # The reference validates the shape first and stops there if it is invalid: nothing about
    # the layout or geometry can be judged against a broken shape.
    if shape_broken:
        return (
            Violation(v.code, "", f"the shape is invalid at {v.pointer or '/'}: {v.message}")
            for v in shape_broken
        )
    # The marker names the contract: the schema has been checked, so it is the contract's own.
    if doc.schema_version == LAYOUT_SCHEMA:
        return layout_violations(doc, shape)
    return geometry_violations(doc, shape)


def collect_violations(doc: Document, shape: KvTensorShapeV1 | None = None) -> list[Violation]:
    """Every rule the document breaks; the first is what `validate` raises."""
    return list(violations(doc, shape))


def validate(doc: Document, shape: KvTensorShapeV1 | None = None) -> None:
    """Raise the first violation, schema before rules, as a typed error; or return None."""
    first = next(violations(doc, shape), None)
    if first is not None:
        raise first.to_error()
