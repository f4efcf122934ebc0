"""One document through the whole data path: bytes to model, and bytes to a verdict in batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from fib_quant_kv.codec import Encoding, decode_value, detect
from fib_quant_kv.contracts import SHAPE_SCHEMA, Contract, Kind
from fib_quant_kv.digests import domain_digest, encode
from fib_quant_kv.errors import FibQuantKvError, SchemaError, Violation
from fib_quant_kv.fastpath import FastRead, read_cbor, read_json
from fib_quant_kv.rules import DocumentFields, merged, semantic_violations, shape_problems
from fib_quant_kv.rules.shape import ShapeFields, shape_violations

# A document the hot path reads goes from bytes to verdict without a model, so pydantic (the
# models and the structural stage) is imported only where a document leaves the hot path or a
# model is asked for: a CLI run over such documents starts without it.
if TYPE_CHECKING:
    from fib_quant_kv.contracts import Document
    from fib_quant_kv_models import KvTensorShapeV1

__all__ = ["Checker", "Verdict", "check", "check_all", "decode"]


def decode(data: bytes, encoding: Encoding | None = None) -> Document:
    """Strictly decode one JSON or CBOR document (detected from the bytes) into its model.

    Raises DecodeError when the bytes are not one well-formed document, SchemaError when the
    document breaks its schema. Semantic rules are `validate`'s.
    """
    fast = _fast(data, encoding or detect(data))
    if fast is not None:
        contract, _, canonical = fast
        return contract.model.model_validate_json(canonical)
    from fib_quant_kv.structure import to_model

    return to_model(decode_value(data, encoding))


def _fast(data: bytes, encoding: Encoding) -> FastRead | None:
    return read_json(data) if encoding == "json" else read_cbor(data)


def _shape_class() -> type[KvTensorShapeV1]:
    from fib_quant_kv_models import KvTensorShapeV1

    return KvTensorShapeV1


def _not_a_shape(marker: str) -> SchemaError:
    return SchemaError(
        f"expected a {SHAPE_SCHEMA} (a shape), got a {marker}", pointer="/schema_version"
    )


class Verdict:
    """Everything known about one document after the data path has run as far as it can."""

    __slots__ = ("_canonical", "_document", "digest", "kind", "shape_checked", "violations")

    def __init__(
        self,
        kind: Kind | None = None,
        document: Document | None = None,
        violations: list[Violation] | None = None,
        digest: str | None = None,
        # False when a layout or geometry came without a shape: its shape rules were not run.
        shape_checked: bool = True,
    ) -> None:
        self.kind = kind
        self._document = document
        # The contract and canonical JSON of a document the hot path read without a model.
        self._canonical: tuple[Contract, bytes] | None = None
        self.violations = [] if violations is None else violations
        self.digest = digest
        self.shape_checked = shape_checked

    @property
    def document(self) -> Document | None:
        """The model of the document, if its structure is valid (built on first use)."""
        if self._document is None and self._canonical is not None:
            contract, canonical = self._canonical
            self._document = contract.model.model_validate_json(canonical)
        return self._document

    @property
    def valid(self) -> bool:
        """No violation found and every check run (a digest exists exactly then)."""
        return not self.violations and self.shape_checked

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verdict):
            return NotImplemented
        return (self.kind, self.violations, self.digest, self.shape_checked, self.document) == (
            other.kind,
            other.violations,
            other.digest,
            other.shape_checked,
            other.document,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass with eq would be

    def __repr__(self) -> str:
        return (
            f"Verdict(kind={self.kind!r}, document={self.document!r}, "
            f"violations={self.violations!r}, digest={self.digest!r}, "
            f"shape_checked={self.shape_checked!r})"
        )


class Checker:
    """Checks many documents against one shape, validating that shape once."""

    __slots__ = ("_shape", "_shape_broken", "_shape_canonical", "_shape_model")

    def __init__(self, shape: KvTensorShapeV1 | None = None) -> None:
        # What the rules read of the shape: its model, or (from for_shape) its plain fields.
        self._shape: ShapeFields | None = shape
        self._shape_model = shape
        self._shape_canonical: bytes | None = None
        self._shape_broken: list[Violation] = []
        if shape is not None:
            if not isinstance(shape, _shape_class()):
                raise TypeError(f"shape must be a KvTensorShapeV1, got {type(shape).__name__}")
            self._shape_broken = shape_problems(shape)

    @classmethod
    def for_shape(cls, data: bytes, encoding: Encoding | None = None) -> Checker:
        """A checker for the shape these bytes encode, which must be a valid shape.

        Raises what `decode` raises, a SchemaError when the document is not a shape, or the
        shape's first rule violation. A shape the hot path reads is kept as plain fields, so
        checking documents against it builds no model unless `shape` is asked for.
        """
        encoding = encoding or detect(data)
        fast = _fast(data, encoding)
        if fast is None:
            model = decode(data, encoding)
            if not isinstance(model, _shape_class()):
                raise _not_a_shape(model.schema_version)
            checker = cls(model)
        else:
            contract, fields, canonical = fast
            if fields.schema_version != SHAPE_SCHEMA:
                raise _not_a_shape(contract.marker)
            checker = cls()
            checker._shape, checker._shape_canonical = fields, canonical
            checker._shape_broken = list(shape_violations(fields))
        if checker._shape_broken:
            raise checker._shape_broken[0].to_error()
        return checker

    @property
    def shape(self) -> KvTensorShapeV1 | None:
        """The shape layouts and geometries are checked against, if any (built on first use)."""
        if self._shape_model is None and self._shape_canonical is not None:
            self._shape_model = _shape_class().model_validate_json(self._shape_canonical)
        return self._shape_model

    def check(self, data: bytes, encoding: Encoding | None = None) -> Verdict:
        """Run bytes through every stage and report, never raise, what each stage found.

        A layout or geometry without a shape gets the checks that need none (decoding and its
        schema); its verdict says the shape rules were not run, and it has no digest.
        """
        encoding = encoding or detect(data)
        # The readers called directly, not through _fast: this is the per-document loop.
        fast = read_json(data) if encoding == "json" else read_cbor(data)
        if fast is not None:
            return self._judge(*fast)
        try:
            value = decode_value(data, encoding)
        except FibQuantKvError as exc:
            return Verdict(violations=[exc.violation])
        from fib_quant_kv.structure import check_structure

        found = check_structure(value)
        if found.model is not None:
            assert found.contract is not None  # a model is always of a contract
            return self._judge(found.contract, found.model, encode(found.model), found.model)
        contract = found.contract
        if contract is None or (contract.needs_shape and self._shape is None):
            return Verdict(contract.kind if contract else None, violations=found.violations)
        return Verdict(
            contract.kind,
            violations=merged(found.violations, found.readable, self._shape, self._shape_broken),
        )

    def _judge(
        self,
        contract: Contract,
        fields: DocumentFields,
        canonical: bytes,
        model: Document | None = None,
    ) -> Verdict:
        """The semantic rules and the digest of a structurally valid document.

        The hot path gives plain fields and no model: the verdict builds one from the
        canonical JSON only if its document is asked for.
        """
        if fields.schema_version != SHAPE_SCHEMA and self._shape is None:
            verdict = Verdict(contract.kind, model, shape_checked=False)
        else:
            violations = list(semantic_violations(fields, self._shape, self._shape_broken))
            digest = None if violations else domain_digest(contract.marker, canonical)
            verdict = Verdict(contract.kind, model, violations, digest)
        if model is None:
            verdict._canonical = contract, canonical
        return verdict

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
