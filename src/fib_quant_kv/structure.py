"""The structural stage: plain values to a generated strict model, or schema violations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from fib_quant_kv.contracts import (
    CONTRACTS,
    Contract,
    Document,
    markers,
    property_schema,
    shared_schema,
)
from fib_quant_kv.errors import Violation, pointer

P = ParamSpec("P")
D = TypeVar("D", bound=Document)


def _json_type(value: Any) -> str:
    """A value's type as JSON names it, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _show(value: Any) -> str:
    """A value as a message quotes it: short, and in JSON's words."""
    if isinstance(value, dict | list):
        return f"an {_json_type(value)}"
    if isinstance(value, str):
        return repr(value if len(value) <= 64 else value[:61] + "...")
    if isinstance(value, bool) or value is None:
        return "true" if value is True else "false" if value is False else "null"
    if isinstance(value, int):
        if type(value) is not int or -(10**21) < value < 10**21:
            return str(value)  # an OversizedInteger says how many digits it had
        # A huge int built in code: printing it whole could take long or fail (int limits).
        return f"<integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    return f"{_json_type(value)} {value!r}"


def expected(contract: Contract, field: str) -> str:
    """What the contract's schema admits for one field, in words."""
    prop = property_schema(contract.marker, field)
    if prop is None:
        return "no such field"
    if "const" in prop:
        return f"the string {prop['const']!r}"
    if "enum" in prop:
        return "one of " + ", ".join(repr(v) for v in prop["enum"])
    if prop.get("type") == "integer":
        return f"an integer in {prop['minimum']}..={prop['maximum']}"
    return str(prop.get("type", "a value"))


def _violation(contract: Contract, error: ErrorDetails) -> Violation:
    loc = error["loc"]
    field = str(loc[0]) if loc else ""
    where = pointer(*loc)
    kind = error["type"]
    if kind == "missing":
        return Violation(
            "schema",
            where,
            f"missing required field {field!r}: expected {expected(contract, field)}",
        )
    if kind == "extra_forbidden":
        allowed = ", ".join(shared_schema(contract.marker)["properties"])
        return Violation("schema", where, f"unknown field {field!r}: expected only {allowed}")
    value = error.get("input")
    return Violation("schema", where, f"expected {expected(contract, field)}, got {_show(value)}")


# Bounds the schema states and the semantic rules state again (a count of at least 1, a u32
# maximum). A document that breaks only these is still well typed, so the rules can read it
# and report the reference's own verdict beside the schema's.
_BOUND_ERRORS = frozenset({"greater_than_equal", "less_than_equal"})


@dataclass(frozen=True, slots=True)
class Structure:
    """What the structural stage found: the contract, the model or the schema's violations."""

    contract: Contract | None
    model: Document | None
    violations: list[Violation]
    # The model, or, when only bounds were broken, an unvalidated one the rules can read.
    readable: Document | None


def check_structure(value: Any, contract: Contract | None = None) -> Structure:
    """Build the model of a decoded document (of the marker's contract unless one is given)."""
    if not isinstance(value, dict):
        found = [Violation("schema", "", f"expected a JSON object, got {_show(value)}")]
        return Structure(contract, None, found, None)
    if contract is None:
        marker = value.get("schema_version")
        contract = CONTRACTS.get(marker) if isinstance(marker, str) else None
        if contract is None:
            got = "nothing" if "schema_version" not in value else _show(marker)
            message = f"expected a schema marker, one of {', '.join(markers())}; got {got}"
            return Structure(None, None, [Violation("schema", "/schema_version", message)], None)
    try:
        model = contract.model.model_validate(value)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        readable = None
        if all(e["type"] in _BOUND_ERRORS for e in errors):
            readable = contract.model.model_construct(**value)
        return Structure(contract, None, [_violation(contract, e) for e in errors], readable)
    return Structure(contract, model, [], model)


def to_model(value: Any) -> Document:
    """Build the model for a decoded document; the first schema violation is raised."""
    found = check_structure(value)
    if found.model is None:
        raise found.violations[0].to_error()
    return found.model


def from_fields(build: Callable[P, D], *args: P.args, **kwargs: P.kwargs) -> D:
    """Build a model in code; a field its schema refuses is a SchemaError, not a pydantic one."""
    try:
        return build(*args, **kwargs)
    except ValidationError as exc:
        contract = next(c for c in CONTRACTS.values() if c.model_name == exc.title)
        raise _violation(contract, exc.errors(include_url=False)[0]).to_error() from None
