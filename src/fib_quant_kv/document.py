"""One document through the whole data path: bytes to model, and bytes to a verdict in batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from fib_quant_kv.codec import Encoding, decode_value, detect
from fib_quant_kv.contracts import Document, Kind, contract_of
from fib_quant_kv.digests import domain_digest, encode
from fib_quant_kv.errors import FibQuantKvError, Violation
from fib_quant_kv.fastpath import canonical_cbor, canonical_json
from fib_quant_kv.rules import against_shape, merged, shape_problems
from fib_quant_kv.rules.shape import shape_violations
from fib_quant_kv.structure import check_structure, to_model
from fib_quant_kv_models import KvTensorShapeV1

__all__ = ["Checker", "Verdict", "check", "check_all", "decode"]


def decode(data: bytes, encoding: Encoding | None = None) -> Document:
    """Strictly decode one JSON or CBOR document (detected from the bytes) into its model.

    Raises DecodeError when the bytes are not one well-formed document, SchemaError when the
    document breaks its schema. Semantic rules are `validate`'s.
    """
    fast = _fast(data, encoding or detect(data))
    return fast[0] if fast is not None else to_model(decode_value(data, encoding))


def _fast(data: bytes, encoding: Encoding) -> tuple[Document, bytes] | None:
    return canonical_json(data) if encoding == "json" else canonical_cbor(data)


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
        """No violation found and every check run (a digest exists exactly then)."""
        return not self.violations and self.shape_checked


class Checker:
    """Checks many documents against one shape, validating that shape once."""

    __slots__ = ("_shape", "_shape_broken")

    def __init__(self, shape: KvTensorShapeV1 | None = None) -> None:
        if shape is not None and not isinstance(shape, KvTensorShapeV1):
            raise TypeError(f"shape must be a KvTensorShapeV1, got {type(shape).__name__}")
        self._shape = shape
        self._shape_broken = shape_problems(shape) if shape is not None else []

    @property
    def shape(self) -> KvTensorShapeV1 | None:
        """The shape layouts and geometries are checked against, if any."""
        return self._shape

    def check(self, data: bytes, encoding: Encoding | None = None) -> Verdict:
        """Run bytes through every stage and report, never raise, what each stage found.

        A layout or geometry without a shape gets the checks that need none (decoding and its
        schema); its verdict says the shape rules were not run, and it has no digest.
        """
        encoding = encoding or detect(data)
        fast = _fast(data, encoding)
        if fast is not None:
            return self._judge(*fast)
        try:
            value = decode_value(data, encoding)
        except FibQuantKvError as exc:
            return Verdict(violations=[exc.violation])
        found = check_structure(value)
        if found.model is not None:
            return self._judge(found.model, encode(found.model))
        contract = found.contract
        if contract is None or (contract.needs_shape and self._shape is None):
            return Verdict(contract.kind if contract else None, violations=found.violations)
        return Verdict(
            contract.kind,
            violations=merged(found.violations, found.readable, self._shape, self._shape_broken),
        )

    def _judge(self, model: Document, canonical: bytes) -> Verdict:
        """The semantic rules and the digest of a structurally valid document."""
        contract = contract_of(model)
        if not contract.needs_shape:
            assert isinstance(model, KvTensorShapeV1)
            violations = list(shape_violations(model))
        elif self._shape is None:
            return Verdict(contract.kind, model, shape_checked=False)
        else:
            violations = list(against_shape(model, self._shape, self._shape_broken))
        digest = None if violations else domain_digest(contract.marker, canonical)
        return Verdict(contract.kind, model, violations, digest)

    def check_all(self, documents: Iterable[bytes]) -> Iterator[Verdict]:
        """Verdicts for many documents, lazily: memory stays flat in their number."""
        for data in documents:
            yield self.check(data)


def check(
    data: bytes, shape: KvTensorShapeV1 | None = None, encoding: Encoding | None = None
) -> Verdict:
    """The verdict on one document; see Checker.check."""
    return Checker(shape).check(data, encoding)


def check_all(
    documents: Iterable[bytes], shape: KvTensorShapeV1 | None = None
) -> Iterator[Verdict]:
    """Verdicts for many documents against one shape, lazily; the shape is validated once."""
    return Checker(shape).check_all(documents)
