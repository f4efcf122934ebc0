"""One document through the whole data path: bytes to model, model to bytes, bytes to verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

from fib_quant_kv_models import KvTensorShapeV1

from fib_quant_kv.codec import Encoding, decode_value
from fib_quant_kv.contracts import Document, Kind, contract_of
from fib_quant_kv.digests import domain_digest, encode
from fib_quant_kv.errors import FibQuantKvError, Violation
from fib_quant_kv.rules import collect_violations
from fib_quant_kv.structure import structure_violations, to_model

__all__ = ["Verdict", "check", "decode", "encode"]


def decode(data: bytes, encoding: Encoding | None = None) -> Document:
    """Strictly decode one JSON or CBOR document (detected from the bytes) into its model.

    Raises DecodeError when the bytes are not one well-formed document, SchemaError when the
    document breaks its schema. Semantic rules are `validate`'s.
    """
    return to_model(decode_value(data, encoding))


@dataclass(slots=True)
class Verdict:
    """Everything known about one document after the data path has run as far as it can."""

    kind: Kind | None = None
    document: Document | None = None
    violations: list[Violation] = field(default_factory=list)
    digest: str | None = None
    # False when a layout or geometry came without a shape: its shape rules were not run.
    shape_checked: bool = True

    @property
    def valid(self) -> bool:
        """No violation; for a layout or geometry checked without a shape, not yet known."""
        return not self.violations and self.shape_checked


def check(
    data: bytes, shape: KvTensorShapeV1 | None = None, encoding: Encoding | None = None
) -> Verdict:
    """Run bytes through every stage and report, never raise, what each stage found.

    A layout or geometry without a shape gets the checks that need none (decoding and its
    schema); its verdict says the shape rules were not run, and it has no digest.
    """
    verdict = Verdict()
    try:
        value = decode_value(data, encoding)
    except FibQuantKvError as exc:
        verdict.violations.append(exc.violation)
        return verdict
    model, verdict.violations = structure_violations(value)
    if model is None:
        return verdict
    contract = contract_of(model)
    verdict.kind, verdict.document = contract.kind, model
    if contract.needs_shape and shape is None:
        verdict.shape_checked = False
        return verdict
    verdict.violations = collect_violations(model, shape)
    if not verdict.violations:
        verdict.digest = domain_digest(contract.marker, encode(model))
    return verdict
