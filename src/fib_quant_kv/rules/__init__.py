"""The semantic layer: the reference's cross-field and cross-document rules, on any model."""

from __future__ import annotations

from collections.abc import Iterator

from fib_quant_kv.contracts import Document, contract_of
from fib_quant_kv.errors import Violation
from fib_quant_kv.rules.geometry import geometry_violations
from fib_quant_kv.rules.layout import layout_violations
from fib_quant_kv.rules.shape import shape_violations
from fib_quant_kv_models import KvCacheLayoutV1, KvPageGeometryV1, KvTensorShapeV1

__all__ = ["against_shape", "collect_violations", "shape_problems", "validate", "violations"]


def _shape_of(doc: Document, shape: KvTensorShapeV1 | None) -> KvTensorShapeV1 | None:
    contract = contract_of(doc)
    if not contract.needs_shape:
        return None
    if shape is None:
        raise TypeError(
            f"a {contract.kind} is validated against the shape it describes: pass shape="
        )
    if not isinstance(shape, KvTensorShapeV1):
        raise TypeError(f"shape must be a KvTensorShapeV1, got {type(shape).__name__}")
    return shape


def _structure(doc: Document) -> list[Violation]:
    """A model built in code (model_construct, model_copy) skipped its schema; check it again.

    A decoded document already passed it. In the reference a u32 field cannot hold -1 or 2^32,
    so these come before the semantic rules, which assume well-typed fields.
    """
    from fib_quant_kv.structure import structure_violations

    _, found = structure_violations(dict(doc))
    return found


def violations(doc: Document, shape: KvTensorShapeV1 | None = None) -> Iterator[Violation]:
    """Lazily, every rule the document breaks, in the reference's order of checks."""
    against = _shape_of(doc, shape)
    broken = _structure(doc)
    if broken:
        return iter(broken)
    if against is None:
        assert isinstance(doc, KvTensorShapeV1)
        return shape_violations(doc)
    return against_shape(doc, against, shape_problems(against))


def shape_problems(shape: KvTensorShapeV1) -> list[Violation]:
    """Everything wrong with a shape, structure first; empty for a valid shape."""
    return _structure(shape) or list(shape_violations(shape))


def against_shape(
    doc: Document, shape: KvTensorShapeV1, shape_broken: list[Violation]
) -> Iterator[Violation]:
    """The rules of a layout or geometry, given what is already known to be wrong with its shape.

    Checking many documents against one shape validates the shape once, not once per document.
    """
    # The reference validates the shape first and stops there if it is invalid: nothing about
    # the layout or geometry can be judged against a broken shape.
    if shape_broken:
        for v in shape_broken:
            yield Violation(v.code, "", f"the shape is invalid at {v.pointer or '/'}: {v.message}")
        return
    if isinstance(doc, KvCacheLayoutV1):
        yield from layout_violations(doc, shape)
    elif isinstance(doc, KvPageGeometryV1):
        yield from geometry_violations(doc, shape)


def collect_violations(doc: Document, shape: KvTensorShapeV1 | None = None) -> list[Violation]:
    """Every rule the document breaks; the first is what `validate` raises."""
    return list(violations(doc, shape))


def validate(doc: Document, shape: KvTensorShapeV1 | None = None) -> None:
    """Raise the reference's verdict (the first broken rule) as a typed error, or return None."""
    first = next(violations(doc, shape), None)
    if first is not None:
        raise first.to_error()
