"""The reference's semantic rules: plain fields in, violations out, nothing else.

Each module declares its contract's rules (`RULES`, with stable ids) beside the code that checks
them (`violations`), and a contract's registry entry names its module: dispatch reads the
entry, never a marker. Every rule id is listed here, in the order a document meets them. What
runs first (decoding, the schema) and how the verdicts combine is decided in one place,
fib_quant_kv.verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from fib_quant_kv.codec.limits import DECODE_RULES
from fib_quant_kv.contracts import SCHEMA_RULES, Contract
from fib_quant_kv.errors import Rule, Violation
from fib_quant_kv.rules import geometry, layout, sets, shape
from fib_quant_kv.rules.geometry import GeometryFields
from fib_quant_kv.rules.layout import LayoutFields
from fib_quant_kv.rules.shape import ShapeFields

if TYPE_CHECKING:
    from fib_quant_kv.contracts import Kind

# What the rules read: a model, or the hot path's plain values of one.
DocumentFields: TypeAlias = ShapeFields | LayoutFields | GeometryFields

__all__ = ["RULES", "DocumentFields", "against_shape", "broken_shape", "semantic_violations"]

# Every rule, in the order a document meets them. The ids are part of the public interface: a
# test pins the list, and renaming one is a breaking change.
RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        *DECODE_RULES,
        *SCHEMA_RULES,
        *shape.RULES,
        *layout.RULES,
        *geometry.RULES,
        *sets.RULES,
    )
}


def rule_kind(rule: Rule) -> Kind | None:
    """The kind of contract a rule belongs to; None for rules every document meets."""
    family = rule.id.partition(".")[0]
    return family if family in ("shape", "layout", "geometry") else None  # type: ignore[return-value]


def semantic_violations(
    contract: Contract, doc: DocumentFields, against: ShapeFields | None
) -> list[Violation]:
    """The rules of a document whose schema holds; a layout or geometry needs its valid shape
    (against a broken one, its verdict is `broken_shape`'s)."""
    if not contract.needs_shape:
        return contract.rules.violations(doc)  # type: ignore[no-any-return]
    if against is None:
        raise TypeError(f"a {contract.marker} is checked against a shape: none was given")
    return against_shape(contract, doc, against, [])


def against_shape(
    contract: Contract,
    doc: DocumentFields,
    against: ShapeFields,
    shape_broken: list[Violation],
) -> list[Violation]:
    """The rules of a layout or geometry, given what is already known to be wrong with its shape.

    Checking many documents against one shape validates the shape once, not once per document.
    """
    # The reference validates the shape first and stops there if it is invalid: nothing about
    # the layout or geometry can be judged against a broken shape.
    if shape_broken:
        return broken_shape(contract, shape_broken)
    return contract.rules.violations(doc, against)  # type: ignore[no-any-return]


def broken_shape(contract: Contract, shape_broken: list[Violation]) -> list[Violation]:
    """A layout's or geometry's verdict against a shape that is broken: each of the shape's
    violations, in the shape's own category, under the document's shape_valid rule. A shape
    that could not be had at all (no file, or none readable: the set's category) is missing,
    not invalid."""
    rule: Rule = contract.rules.SHAPE_VALID
    return [
        rule.at(
            "",
            f"the shape is {'missing' if v.code == 'set' else 'invalid'}"
            f"{' at ' + v.pointer if v.pointer else ''}: {v.message}",
            v.code,
        )
        for v in shape_broken
    ]
