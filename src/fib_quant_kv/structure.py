"""The structural stage: plain values to a generated strict model, or schema violations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, ParamSpec, TypeVar

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from fib_quant_kv.codec.limits import SMALL_DOCUMENT
from fib_quant_kv.contracts import (
    BOUND,
    CONTRACTS,
    ENUM,
    MARKER,
    MISSING_FIELD,
    OBJECT,
    TYPE,
    Contract,
    Document,
    every_field,
    field_names,
    markers,
    property_schema,
    unknown_field,
)
from fib_quant_kv.errors import Rule, Violation, pointer
from fib_quant_kv.proofs import remember

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


# Bounds the schema states and the semantic rules state again (a count of at least 1, a u32
# maximum). A document that breaks only these is still well typed, so the rules can read it
# and report the reference's own verdict beside the schema's.
_BOUND_ERRORS = frozenset({"greater_than_equal", "less_than_equal"})
_VALUE_ERRORS = frozenset({"enum", "literal_error"})


def _rule(error_type: str) -> Rule:
    """The schema rule a model's error breaks; every other error type is a wrong type."""
    if error_type in _BOUND_ERRORS:
        return BOUND
    if error_type in _VALUE_ERRORS:
        return ENUM
    return TYPE


def _violation(contract: Contract, error: ErrorDetails) -> Violation:
    loc = error["loc"]
    field = str(loc[0]) if loc else ""
    where = pointer(*loc)
    kind = error["type"]
    if kind == "missing":
        return MISSING_FIELD.at(
            where, f"missing required field {field!r}: expected {expected(contract, field)}"
        )
    if kind == "extra_forbidden":
        return unknown_field(field, contract)
    value = error.get("input")
    message = f"expected {expected(contract, field)}, got {_show(value)}"
    return _rule(kind).at(where, message)


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
        found = [OBJECT.at("", f"expected a JSON object, got {_show(value)}")]
        return Structure(contract, None, found, None)
    # A key no contract has: in a document of a contract's size (a misspelt field), everything
    # wrong with it is said; in a larger one (a hostile document can have tens of thousands of
    # keys), only the first such key, as the CBOR reader refuses it while reading.
    stranger = next((key for key in value if key not in every_field()), None)
    if stranger is not None and (len(value) > SMALL_DOCUMENT or contract is None):
        marker = value.get("schema_version")
        marked = CONTRACTS.get(marker) if isinstance(marker, str) else None
        if marked is None or len(value) > SMALL_DOCUMENT:
            return Structure(contract, None, [unknown_field(stranger, None)], None)
        contract = marked
    if contract is None:
        marker = value.get("schema_version")
        contract = CONTRACTS.get(marker) if isinstance(marker, str) else None
        if contract is None:
            got = "nothing" if "schema_version" not in value else _show(marker)
            message = f"expected a schema marker, one of {', '.join(markers())}; got {got}"
            return Structure(None, None, [MARKER.at("/schema_version", message)], None)
    # Fields of another contract, or of none: the model's errors for the rest, then each such key.
    names = _field_set(contract.marker)
    unknown = [key for key in value if key not in names]
    if unknown:
        known = {key: item for key, item in value.items() if key in names}
        found = _model_violations(contract, known)
        found.extend(unknown_field(key, contract) for key in unknown)
        return Structure(contract, None, found, None)
    try:
        model = contract.model.model_validate(value)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        readable = None
        if all(e["type"] in _BOUND_ERRORS for e in errors):
            readable = contract.model.model_construct(**value)
        return Structure(contract, None, [_violation(contract, e) for e in errors], readable)
    return Structure(contract, model, [], model)


@cache
def _field_set(marker: str) -> frozenset[str]:
    return frozenset(field_names(marker))


def _model_violations(contract: Contract, value: dict[str, Any]) -> list[Violation]:
    try:
        contract.model.model_validate(value)
    except ValidationError as exc:
        return [_violation(contract, e) for e in exc.errors(include_url=False)]
    return []


def from_fields(build: Callable[P, D], *args: P.args, **kwargs: P.kwargs) -> D:
    """Build a model in code through its validating constructor, remembered as proven.

    A field its schema refuses is a SchemaError, not a pydantic one.
    """
    try:
        return remember(build(*args, **kwargs))
    except ValidationError as exc:
        contract = next(c for c in CONTRACTS.values() if c.model_name == exc.title)
        raise _violation(contract, exc.errors(include_url=False)[0]).to_error() from None
