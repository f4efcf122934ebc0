"""The verdict: decoding, then the schema, then the reference's rules, for bytes and for models.

This module alone decides how the stages combine: which run, in which order, what is reported
beside what, and what a caller may skip because it was proven already. Everything else in the
package (derive, plan, the model-config readers, the CLI, sets of documents) asks it.

A model this package proved (decoded, derived, or validated once) is remembered (proofs.py), so
the next call that receives it does not validate it again.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, TypeAlias, TypeVar, overload

from fib_quant_kv.codec import Encoding, decode_value, detect
from fib_quant_kv.contracts import CONTRACTS, MARKER, SHAPE_SCHEMA, Contract, Kind, contract_of
from fib_quant_kv.digests import domain_digest, encode
from fib_quant_kv.errors import FibQuantKvError, SchemaError, Violation
from fib_quant_kv.fastpath import (
    FastRead,
    canonical_of,
    decode_cbor,
    decode_json,
    model_of,
    read_cbor,
    read_json,
)
from fib_quant_kv.proofs import PROOFS, Proof, proof_of, remember, remember_fields
from fib_quant_kv.rules import DocumentFields, broken_shape, semantic_violations
from fib_quant_kv.rules.shape import ShapeFields, shape_violations

# A document the hot path reads goes from bytes to verdict without a model, so pydantic (the
# models and the structural stage) is imported only where a document leaves the hot path or a
# model is asked for: a CLI run over such documents starts without it.
if TYPE_CHECKING:
    from fib_quant_kv.contracts import Document
    from fib_quant_kv.structure import Structure
    from fib_quant_kv_models import KvTensorShapeV1

D = TypeVar("D", bound="Document")

__all__ = [
    "Checker",
    "Verdict",
    "check",
    "check_all",
    "collect_violations",
    "decode",
    "digest",
    "read",
    "remember",
    "shape_problems",
    "validate",
]


def _prove(model: Document, contract: Contract) -> tuple[Proof | None, Structure | None]:
    """The model's proof, checking its schema first if it has none (and remembering a pass)."""
    proof = proof_of(model)
    if proof is not None:
        return proof, None
    from fib_quant_kv.structure import check_structure

    # A model built in code (model_construct, model_copy) skipped its schema: in the reference
    # a u32 field cannot hold -1 or 2^32, and the rules assume well-typed fields.
    found = check_structure(dict(model), contract)
    if found.violations:
        return None, found
    return PROOFS[id(remember(model)) >> 4], None


# Models ------------------------------------------------------------------------------------


def _own(proof: Proof) -> list[Violation]:
    """A proven shape's own rule violations: they depend on nothing else, so run once."""
    if proof.own is None:
        proof.own = list(shape_violations(proof.fields))  # type: ignore[arg-type]  # a shape's
    return proof.own


def _shape_problems(shape: KvTensorShapeV1) -> tuple[ShapeFields, list[Violation]]:
    """What the rules read of a shape, and everything wrong with it, schema first."""
    proof, found = _prove(shape, CONTRACTS[SHAPE_SCHEMA])
    if proof is None:
        assert found is not None
        return shape, merged(found, None, [])
    return proof.fields, _own(proof)  # type: ignore[return-value]  # a shape's


def shape_problems(shape: KvTensorShapeV1) -> list[Violation]:
    """Everything wrong with a shape, schema first; empty for a valid shape. Run once a shape."""
    return list(_shape_problems(shape)[1])


def _shape_for(contract: Contract, shape: KvTensorShapeV1 | None) -> KvTensorShapeV1:
    """The shape a layout or geometry is validated against, or a TypeError."""
    if shape is None:
        raise TypeError(
            f"a {contract.kind} is validated against the shape it describes: pass shape="
        )
    from fib_quant_kv_models import KvTensorShapeV1

    if not isinstance(shape, KvTensorShapeV1):
        raise TypeError(f"shape must be a KvTensorShapeV1, got {type(shape).__name__}")
    return shape


def _violations(
    doc: Document, shape: KvTensorShapeV1 | None
) -> tuple[list[Violation], Proof | None, Contract]:
    """Every violation of a model, its proof when its schema holds, and its contract."""
    contract = contract_of(doc)
    shape_fields: ShapeFields | None = None
    shape_broken: list[Violation] = []
    if contract.needs_shape:
        shape_fields, shape_broken = _shape_problems(_shape_for(contract, shape))
    proof, structure = _prove(doc, contract)
    if structure is not None:
        return merged(structure, shape_fields, shape_broken), None, contract
    assert proof is not None  # a model whose schema holds has been remembered
    if shape_fields is None:
        return _own(proof), proof, contract  # the proof's own list: callers copy it to hand out
    found = semantic_violations(proof.fields, shape_fields, shape_broken)
    return list(found), proof, contract


def collect_violations(doc: Document, shape: KvTensorShapeV1 | None = None) -> list[Violation]:
    """Every rule the document breaks, schema first; the first is what `validate` raises."""
    return list(_violations(doc, shape)[0])


def validate(doc: Document, shape: KvTensorShapeV1 | None = None) -> None:
    """Raise the first violation, schema before rules, as a typed error; or return None."""
    found = _violations(doc, shape)[0]
    if found:
        raise found[0].to_error()


def digest(doc: Document, shape: KvTensorShapeV1 | None = None, encoding: Encoding = "json") -> str:
    """Validate, then digest the canonical bytes. The JSON digest is the reference's."""
    found, proof, contract = _violations(doc, shape)
    if found:
        raise found[0].to_error()
    assert proof is not None  # a model without violations has been proven
    if encoding != "json":
        return domain_digest(contract.marker, encode(doc, encoding))
    canonical = proof.canonical
    if canonical is None:
        canonical = proof.canonical = canonical_of(contract, proof.fields)
    return domain_digest(contract.marker, canonical)


def merged(
    found: Structure, shape: ShapeFields | None, shape_broken: list[Violation]
) -> list[Violation]:
    """The schema's violations first, then the reference's own verdict where it can be had.

    The rules run only on a document that broke nothing but bounds (`found.readable`), at
    places the schema did not name, so the reference's first verdict is among those reported
    even where the schema states the same bound. Whatever else is wrong, a layout or geometry
    against a broken shape reports the shape: the reference checks it before anything else.
    """
    contract, schema_broken, readable = found.contract, found.violations, found.readable
    if contract is not None and contract.needs_shape:
        if shape_broken:
            return [*schema_broken, *broken_shape(contract.marker, shape_broken)]
        if shape is None:
            return list(schema_broken)
    if readable is None:
        return list(schema_broken)
    named = {v.pointer for v in schema_broken}
    extra = [
        v for v in semantic_violations(readable, shape, shape_broken) if v.pointer not in named
    ]
    return [*schema_broken, *extra]


# Bytes -------------------------------------------------------------------------------------


# What a document is read from: its bytes (a bytes-like object), or a file's path.
Source: TypeAlias = "bytes | bytearray | memoryview | os.PathLike[str]"


def source_bytes(data: Source) -> bytes:
    """A document's bytes: as given, or read from a path (with the document size limit)."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        raise TypeError(
            "expected a document's bytes (bytes, bytearray or memoryview) or a pathlib.Path, "
            "got str: pass Path(...) to read a file, or the text's .encode()"
        )
    if isinstance(data, os.PathLike):
        from fib_quant_kv.files import read_limited

        return read_limited(os.fspath(data))
    raise TypeError(
        "expected a document's bytes (bytes, bytearray or memoryview) or a pathlib.Path, "
        f"got {type(data).__name__}"
    )


@overload
def decode(data: Source, encoding: Encoding | None = None) -> Document: ...


@overload
def decode(data: Source, expected: type[D], encoding: Encoding | None = None) -> D: ...


def decode(  # type: ignore[misc]  # the second argument is an encoding or a model class
    data: Source,
    expected: type[Document] | Encoding | None = None,
    encoding: Encoding | None = None,
) -> Document:
    """Strictly decode one JSON or CBOR document (detected from the bytes) into its model.

    `data` is the document's bytes or a file's path. With a model class as `expected`
    (`decode(data, KvTensorShapeV1)`), a document of another contract is a SchemaError and the
    result is typed as that class. Raises DecodeError when the bytes are not one well-formed
    document, SchemaError when the document breaks its schema. Semantic rules are
    `validate`'s; the model is remembered as proven, so `validate` and `digest` do not check
    its schema again.
    """
    if isinstance(expected, str):  # decode(data, "cbor"): the encoding, given positionally
        expected, encoding = None, expected
    document = _decode(source_bytes(data), encoding)
    if expected is not None and not isinstance(document, expected):
        wanted = next(c for c in CONTRACTS.values() if c.model is expected)
        raise expected_contract(wanted.marker, document.schema_version)
    return document


def _decode(data: bytes, encoding: Encoding | None) -> Document:
    encoding = encoding or detect(data)
    made = decode_json(data) if encoding == "json" else decode_cbor(data)
    if made is not None:
        return remember_fields(*made)
    reading = _strict(data, encoding)
    if isinstance(reading, Violation):
        raise reading.to_error()
    if reading.model is None:
        raise reading.violations[0].to_error()
    return remember(reading.model)


# A document as the first stages leave it: the hot path's fields, the structural stage's
# findings, or the decoding stage's refusal.
Reading: TypeAlias = "FastRead | Structure | Violation"


def read(data: bytes, encoding: Encoding | None = None) -> Reading:
    """Decode a document and check its schema: the stages that need no shape."""
    encoding = encoding or detect(data)
    fast = read_json(data) if encoding == "json" else read_cbor(data)
    if fast is not None:
        return fast
    return _strict(data, encoding)


def _strict(data: bytes, encoding: Encoding) -> Structure | Violation:
    """The strict path: the codec, then the structural stage."""
    try:
        value = decode_value(data, encoding, document=True)
    except FibQuantKvError as exc:
        return exc.violation
    from fib_quant_kv.structure import check_structure

    return check_structure(value)


def reading_contract(reading: Reading) -> Contract | None:
    """The contract a document read as, if its marker names one."""
    if isinstance(reading, tuple):
        return reading[0]
    if isinstance(reading, Violation):
        return None
    return reading.contract


def _shape_class() -> type[KvTensorShapeV1]:
    from fib_quant_kv_models import KvTensorShapeV1

    return KvTensorShapeV1


def expected_contract(marker: str, got: str) -> SchemaError:
    """The error for a document given where another contract is expected."""
    return SchemaError(
        f"expected a {marker} (a {CONTRACTS[marker].kind}), got a {got}",
        pointer="/schema_version",
        rule=MARKER.id,
    )


def not_a_shape(got: str) -> SchemaError:
    """The error for a document given as a shape that is another contract."""
    return expected_contract(SHAPE_SCHEMA, got)


class Verdict:
    """Everything known about one document after the data path has run as far as it can."""

    __slots__ = (
        "_canonical",
        "_document",
        "digest",
        "kind",
        "rules_run",
        "shape_digest",
        "violations",
    )

    def __init__(
        self,
        kind: Kind | None = None,
        document: Document | None = None,
        violations: list[Violation] | None = None,
        digest: str | None = None,
        rules_run: bool = False,
        shape_digest: str | None = None,
    ) -> None:
        self.kind = kind
        self._document = document
        # The contract, fields and canonical JSON of a document the hot path read without a
        # model.
        self._canonical: FastRead | None = None
        self.violations = [] if violations is None else violations
        self.digest = digest
        # Whether the reference's rules ran: not for undecodable bytes, nor for a layout or
        # geometry that came without a shape.
        self.rules_run = rules_run
        # The digest of the shape a layout or geometry was judged against.
        self.shape_digest = shape_digest

    @property
    def shape_checked(self) -> bool:
        """Whether the rules ran (for a layout or geometry: against a shape)."""
        return self.rules_run

    @property
    def document(self) -> Document | None:
        """The model of the document, if its structure is valid (built on first use)."""
        if self._document is None and self._canonical is not None:
            contract, fields, canonical = self._canonical
            self._document = remember_fields(*model_of(contract, fields), canonical)
        return self._document

    @property
    def valid(self) -> bool:
        """No violation found and every check run (a digest exists exactly then)."""
        return not self.violations and self.rules_run

    @property
    def fields(self) -> DocumentFields | None:
        """The document's field values, as the rules read them (no model is built)."""
        if self._canonical is not None:
            return self._canonical[1]
        return self._document

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verdict):
            return NotImplemented
        mine = (self.kind, self.violations, self.digest, self.rules_run, self.shape_digest)
        theirs = (other.kind, other.violations, other.digest, other.rules_run, other.shape_digest)
        return mine == theirs and self.document == other.document

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass with eq would be

    def __repr__(self) -> str:
        return (
            f"Verdict(kind={self.kind!r}, document={self.document!r}, "
            f"violations={self.violations!r}, digest={self.digest!r}, "
            f"rules_run={self.rules_run!r}, shape_digest={self.shape_digest!r})"
        )


class Checker:
    """Checks many documents against one shape, validating that shape once."""

    __slots__ = ("_shape", "_shape_broken", "_shape_canonical", "_shape_digest", "_shape_model")

    def __init__(self, shape: KvTensorShapeV1 | None = None) -> None:
        # What the rules read of the shape: its model, or (from for_shape) its plain fields.
        self._shape: ShapeFields | None = shape
        self._shape_model = shape
        self._shape_canonical: bytes | None = None
        self._shape_broken: list[Violation] = []
        self._shape_digest: str | None = None
        if shape is not None:
            if not isinstance(shape, _shape_class()):
                raise TypeError(f"shape must be a KvTensorShapeV1, got {type(shape).__name__}")
            self._shape_broken = shape_problems(shape)
            if not self._shape_broken:
                self._shape_digest = digest(shape)

    @classmethod
    def for_shape(
        cls, data: bytes, encoding: Encoding | None = None, *, strict: bool = True
    ) -> Checker:
        """A checker for the shape these bytes encode.

        Strict (the default): the bytes must be a valid shape; raises what `decode` raises, a
        SchemaError when the document is not a shape, or the shape's first rule violation.
        Not strict: never raises for bad bytes; whatever is wrong with them is what every
        layout and geometry checked against the shape reports, as the reference would.
        A shape the hot path reads is kept as plain fields, so checking documents against it
        builds no model unless `shape` is asked for.
        """
        return cls.for_reading(read(data, encoding), strict=strict)

    @classmethod
    def for_reading(cls, reading: Reading, *, strict: bool = True) -> Checker:
        """A checker for the shape a document already read encodes (see `for_shape`)."""
        checker = cls()
        if isinstance(reading, tuple):
            contract, fields, canonical = reading
            if fields.schema_version != SHAPE_SCHEMA:
                checker._shape_broken = [not_a_shape(contract.marker).violation]
            else:
                checker._shape, checker._shape_canonical = fields, canonical
                checker._shape_broken = list(shape_violations(fields))
                if not checker._shape_broken:
                    checker._shape_digest = domain_digest(SHAPE_SCHEMA, canonical)
        elif isinstance(reading, Violation):
            checker._shape_broken = [reading]
        elif reading.contract is not None and reading.contract.marker != SHAPE_SCHEMA:
            checker._shape_broken = [not_a_shape(reading.contract.marker).violation]
        elif reading.model is not None:
            checker = cls(remember(reading.model))  # type: ignore[arg-type]
        else:
            checker._shape_broken = merged(reading, None, [])
        if checker._shape_broken and strict:
            raise checker._shape_broken[0].to_error()
        return checker

    @classmethod
    def unusable(cls, problems: list[Violation]) -> Checker:
        """A checker for a shape that could not be had: every document checked against it
        reports these problems as its shape's."""
        checker = cls()
        checker._shape_broken = list(problems)
        return checker

    @property
    def shape(self) -> KvTensorShapeV1 | None:
        """The shape layouts and geometries are checked against, if any (built on first use)."""
        fields, canonical = self._shape, self._shape_canonical
        if self._shape_model is None and fields is not None and canonical is not None:
            model, held = model_of(CONTRACTS[SHAPE_SCHEMA], fields)
            assert isinstance(model, _shape_class())  # the marker said so
            self._shape_model = remember_fields(model, held, canonical)
        return self._shape_model

    @property
    def shape_digest(self) -> str | None:
        """The digest of the shape, when there is a valid one."""
        return self._shape_digest

    @property
    def shape_fields(self) -> ShapeFields | None:
        """What the rules read of the shape, when it is valid (no model is built)."""
        return self._shape if not self._shape_broken else None

    def check(self, data: Source | Document, encoding: Encoding | None = None) -> Verdict:
        """Run a document through every stage and report, never raise, what each stage found.

        `data` is a document's bytes, a file's path, or a model (judged as `validate` judges
        it). A layout or geometry without a shape gets the checks that need none (decoding and
        its schema); its verdict says the rules were not run, and it has no digest.
        """
        if isinstance(data, bytes):  # the common case, first
            return self.judge(read(data, encoding))
        if isinstance(data, bytearray | memoryview | str | os.PathLike):
            return self.judge(read(source_bytes(data), encoding))
        return self.judge_model(data)

    def judge_model(self, doc: Document) -> Verdict:
        """The verdict on a model (built in code, or decoded), against this checker's shape."""
        contract = contract_of(doc)
        shape = self.shape if contract.needs_shape else None
        if contract.needs_shape and shape is None and not self._shape_broken:
            # No shape: only the schema can be checked, as for bytes.
            _, found = _prove(doc, contract)
            violations = [] if found is None else merged(found, None, [])
            return Verdict(contract.kind, doc, violations)
        if contract.needs_shape and self._shape_broken:
            _, found = _prove(doc, contract)
            schema_broken = [] if found is None else list(found.violations)
            broken = broken_shape(contract.marker, self._shape_broken)
            return Verdict(contract.kind, doc, [*schema_broken, *broken], rules_run=True)
        violations, proof, _ = _violations(doc, shape)
        found_digest = None
        if not violations and proof is not None:
            found_digest = digest(doc, shape)
        against = self._shape_digest if contract.needs_shape else None
        return Verdict(contract.kind, doc, list(violations), found_digest, True, against)

    def judge(self, reading: Reading) -> Verdict:
        """The verdict on a document already read (see `read`), against this checker's shape."""
        if isinstance(reading, tuple):
            return self._judge(*reading)
        if isinstance(reading, Violation):
            return Verdict(violations=[reading])
        if reading.model is not None:
            assert reading.contract is not None  # a model is always of a contract
            model = remember(reading.model)
            return self._judge(reading.contract, model, encode(model), model)
        contract = reading.contract
        if contract is None:
            return Verdict(None, violations=reading.violations)
        violations = merged(reading, self._shape, self._shape_broken)
        # merged consults the rules for a document that broke only bounds, given its shape.
        # Against a broken shape, the verdict is the shape's: the rules have run as far as
        # the reference runs them.
        has_shape = not contract.needs_shape or self._shape is not None
        ran = bool(self._shape_broken and contract.needs_shape) or (
            has_shape and reading.readable is not None
        )
        against = self._shape_digest if contract.needs_shape else None
        return Verdict(contract.kind, None, violations, rules_run=ran, shape_digest=against)

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
        if fields.schema_version == SHAPE_SCHEMA:
            violations = list(shape_violations(fields))
            against = None
        elif self._shape_broken:
            violations = broken_shape(contract.marker, self._shape_broken)
            against = None
        elif self._shape is None:
            verdict = Verdict(contract.kind, model)
            if model is None:
                verdict._canonical = contract, fields, canonical
            return verdict
        else:
            violations = list(semantic_violations(fields, self._shape, self._shape_broken))
            against = self._shape_digest
        found = None if violations else domain_digest(contract.marker, canonical)
        verdict = Verdict(contract.kind, model, violations, found, True, against)
        if model is None:
            verdict._canonical = contract, fields, canonical
        return verdict

    def check_all(self, documents: Iterable[bytes]) -> Iterator[Verdict]:
        """Verdicts for many documents, lazily: memory stays flat in their number."""
        for data in documents:
            yield self.check(data)


def check(
    data: Source | Document, shape: KvTensorShapeV1 | None = None, encoding: Encoding | None = None
) -> Verdict:
    """The verdict on one document (its bytes, a file's path, or a model); see Checker.check."""
    return Checker(shape).check(data, encoding)


def check_all(
    documents: Iterable[bytes], shape: KvTensorShapeV1 | None = None
) -> Iterator[Verdict]:
    """Verdicts for many documents against one shape, lazily; the shape is validated once."""
    return Checker(shape).check_all(documents)
