"""The judge: one function from a reading and its shape to the one result, for every surface.

This module alone decides how the stages combine: which run, in which order, what is reported
beside what, and what a caller may skip because it was proven already. `Checker`, `check`,
`validate`, `digest`, the set run and the CLI are each a few lines over `Checker.judge`.

A model this package proved (decoded, derived, or validated once) is remembered (proofs.py), so
the next call that receives it does not validate it again.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from fib_quant_kv.codec import Encoding
from fib_quant_kv.contracts import CONTRACTS, Contract, contract_of
from fib_quant_kv.errors import Violation
from fib_quant_kv.fastpath import FastRead, model_of
from fib_quant_kv.proofs import Proof, proof_of, remember, remember_fields
from fib_quant_kv.reading import (
    Reading,
    Source,
    decode,
    not_a_shape,
    read,
    source_bytes,
)
from fib_quant_kv.result import Bound, Verdict
from fib_quant_kv.rules import DocumentFields, broken_shape, semantic_violations
from fib_quant_kv.rules.shape import ShapeFields

if TYPE_CHECKING:
    from fib_quant_kv.contracts import Document
    from fib_quant_kv.structure import Structure
    from fib_quant_kv_models import KvTensorShapeV1

__all__ = [
    "SHAPELESS",
    "Checker",
    "Verdict",
    "check",
    "check_all",
    "collect_violations",
    "decode",
    "digest",
    "judge_model",
    "read",
    "remember",
    "shape_problems",
    "validate",
]


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
            return [*schema_broken, *broken_shape(contract, shape_broken)]
        if shape is None:
            return list(schema_broken)
    if readable is None or contract is None:
        return list(schema_broken)
    named = {v.pointer for v in schema_broken}
    extra = [v for v in semantic_violations(contract, readable, shape) if v.pointer not in named]
    return [*schema_broken, *extra]


class ModelReading(NamedTuple):
    """A proven model as the judge reads it: its contract, its proof (fields, canonical JSON,
    digest once written, own rule violations once run) and the model itself."""

    contract: Contract
    proof: Proof
    model: Document


# A named tuple's own constructor is a Python function; tuple.__new__ makes one in a C call,
# for every model validated or digested.
_model_reading = functools.partial(tuple.__new__, ModelReading)


def reading_of(doc: Document, contract: Contract | None = None) -> ModelReading | Structure:
    """A model as the judge reads it: its proof, or its schema checked afresh (a model built in
    code, with model_construct or model_copy, skipped its schema: in the reference a u32 field
    cannot hold -1 or 2^32, and the rules assume well-typed fields)."""
    contract = contract or contract_of(doc)
    proof = proof_of(doc)
    if proof is None:
        from fib_quant_kv.structure import check_structure

        found = check_structure(dict(doc), contract)
        if found.violations:
            return found
        proof = proof_of(remember(doc))
        assert proof is not None  # just remembered
    return _model_reading((contract, proof, doc))


class Checker:
    """The shape documents are judged against (none, a valid one, or a broken one), and the
    judge: every surface's verdict comes from `judge`."""

    __slots__ = ("_broken", "_canonical", "_digest", "_fields", "_model", "name")

    def __init__(self, shape: KvTensorShapeV1 | None = None, *, name: str = "") -> None:
        # The shape's name in a verdict's `shapes` (its path, when it came from a file).
        self.name = name
        # What the rules read of the shape: its fields; its model, canonical JSON and digest.
        self._fields: ShapeFields | None = None
        self._model = shape
        self._canonical: bytes | None = None
        self._digest: str | None = None
        # What is wrong with the shape (documents judged against it report this).
        self._broken: list[Violation] = []
        if shape is not None:
            if contract_of(shape).kind != "shape":
                raise TypeError(f"shape must be a KvTensorShapeV1, got {type(shape).__name__}")
            self._take(SHAPELESS.judge(reading_of(shape)))

    def _take(self, verdict: Verdict) -> None:
        """Hold a shape's verdict: its fields when it is valid, else what is wrong with it."""
        contract = verdict.contract
        if contract is not None and contract.kind != "shape":
            self._broken = [not_a_shape(contract.marker).violation]
        elif not verdict.valid:
            self._broken = list(verdict.violations)
        else:
            self._hold(verdict)

    def _hold(self, verdict: Verdict) -> None:
        """Hold a valid shape's digest, fields, canonical JSON and model."""
        self._digest = verdict.canonical_digest()  # written first: it writes the canonical JSON
        assert verdict.held is not None  # a valid document has its fields
        _, fields, self._canonical, model = verdict.held
        self._fields = fields  # type: ignore[assignment]  # a shape's
        self._model = model  # type: ignore[assignment]  # a shape's

    @classmethod
    def for_shape(
        cls, data: bytes, encoding: Encoding | None = None, *, strict: bool = True, name: str = ""
    ) -> Checker:
        """A checker for the shape these bytes encode.

        Strict (the default): the bytes must be a valid shape; raises what `decode` raises, a
        SchemaError when the document is not a shape, or the shape's first rule violation.
        Not strict: never raises for bad bytes; whatever is wrong with them is what every
        layout and geometry checked against the shape reports, as the reference would.
        A shape the hot path reads is kept as plain fields, so checking documents against it
        builds no model unless `shape` is asked for.
        """
        return cls.for_reading(read(data, encoding), strict=strict, name=name)

    @classmethod
    def for_reading(cls, reading: Reading, *, strict: bool = True, name: str = "") -> Checker:
        """A checker for the shape a document already read encodes (see `for_shape`)."""
        return cls.for_verdict(SHAPELESS.judge(reading), strict=strict, name=name)

    @classmethod
    def for_verdict(cls, verdict: Verdict, *, strict: bool = True, name: str = "") -> Checker:
        """A checker for the shape a verdict judged: the shape is not judged again."""
        checker = cls(name=name)
        checker._take(verdict)
        if checker._broken and strict:
            raise checker._broken[0].to_error()
        return checker

    @classmethod
    def for_valid_shape(cls, verdict: Verdict, *, name: str = "") -> Checker:
        """A checker for a shape its verdict found valid, from what the verdict holds: what was
        added to the verdict since (a run adds the cache's agreement) is not the shape's own."""
        checker = cls(name=name)
        checker._hold(verdict)
        return checker

    @classmethod
    def unusable(cls, problems: list[Violation], *, name: str = "") -> Checker:
        """A checker for a shape that could not be had: every document checked against it
        reports these problems as its shape's."""
        checker = cls(name=name)
        checker._broken = list(problems)
        return checker

    @property
    def shape(self) -> KvTensorShapeV1 | None:
        """The shape layouts and geometries are checked against, if any (built on first use)."""
        if self._model is None and self._fields is not None:
            contract = CONTRACTS[self._fields.schema_version]
            model, held = model_of(contract, self._fields)
            self._model = remember_fields(model, held, self._canonical)  # type: ignore[assignment]
        return self._model

    @property
    def shape_digest(self) -> str | None:
        """The digest of the shape, when there is a valid one."""
        return self._digest

    @property
    def shape_fields(self) -> ShapeFields | None:
        """What the rules read of the shape, when it is valid (no model is built)."""
        return self._fields

    def check(self, data: Source | Document, encoding: Encoding | None = None) -> Verdict:
        """Run a document through every stage and report, never raise, what each stage found.

        `data` is a document's bytes, a file's path, or a model (judged as `validate` judges
        it). A layout or geometry without a shape gets the checks that need none (decoding and
        its schema); its verdict says the rules were not run, and it has no digest.
        """
        if isinstance(data, bytes):  # the common case, first
            return self.judge(read(data, encoding))
        if isinstance(data, bytearray | memoryview | str | os.PathLike):
            verdict = self.judge(read(source_bytes(data), encoding))
            if isinstance(data, os.PathLike):
                verdict.path = os.fspath(data)
            return verdict
        return self.judge(reading_of(data))

    def judge(self, reading: Reading | ModelReading) -> Verdict:
        """The verdict on a document read (see `read`, `reading_of`), against this shape."""
        if isinstance(reading, tuple):
            if type(reading) is ModelReading:
                contract, proof, model = reading
                return self._rules(contract, proof.fields, proof.canonical, model, proof)
            fast: FastRead = reading  # type: ignore[assignment]  # the hot path's, no model
            return self._rules(fast[0], fast[1], fast[2], None, None)
        if isinstance(reading, Violation):
            return Verdict(violations=[reading])
        if reading.contract is None:
            return Verdict(violations=reading.violations)
        contract = reading.contract
        if reading.model is not None:
            model = remember(reading.model)
            proven = proof_of(model)
            assert proven is not None  # just remembered
            return self._rules(contract, proven.fields, None, model, proven)
        violations = merged(reading, self._fields, self._broken)
        # merged consults the rules for a document that broke only bounds, given its shape.
        # Against a broken shape, the verdict is the shape's: the rules have run as far as
        # the reference runs them.
        against = contract.needs_shape and bool(self._fields is not None or self._broken)
        ran = (against and bool(self._broken)) or (
            (against or not contract.needs_shape) and reading.readable is not None
        )
        return Verdict(
            contract=contract, violations=violations, rules_run=ran, shapes=self._bounds(against)
        )

    def _bounds(self, against: bool) -> list[Bound]:
        return [Bound(self.name, self._digest)] if against else []

    def _rules(
        self,
        contract: Contract,
        fields: DocumentFields,
        canonical: bytes | None,
        model: Document | None,
        proof: Proof | None,
    ) -> Verdict:
        """The semantic rules of a document whose schema holds; its digest when first asked."""
        held = contract, fields, canonical, model
        if not contract.needs_shape:
            if proof is None:
                violations = contract.rules.violations(fields)
            else:  # a proven shape's own rules depend on nothing else: run once a model
                if proof.own is None:
                    proof.own = contract.rules.violations(fields)
                violations = list(proof.own)
            return Verdict.judged(contract, violations, True, [], held, proof)
        if self._broken:
            violations = broken_shape(contract, self._broken)
        elif self._fields is None:
            return Verdict(contract=contract, held=held, proof=proof)
        else:
            violations = contract.rules.violations(fields, self._fields)
        return Verdict.judged(contract, violations, True, self._bounds(True), held, proof)

    def check_all(self, documents: Iterable[bytes]) -> Iterator[Verdict]:
        """Verdicts for many documents, lazily: memory stays flat in their number."""
        for data in documents:
            yield self.check(data)


# The judge with no shape: of shapes, and of layouts and geometries as far as they go alone.
SHAPELESS = Checker()


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


def combined(verdicts: Sequence[Verdict]) -> Verdict:
    """One verdict for a document judged against several shapes (a geometry pages with the key
    and the value shape): every distinct violation, each broken shape named."""
    first = verdicts[0]
    if len(verdicts) == 1:
        return first
    violations: list[Violation] = []
    for verdict in verdicts:
        for v in verdict.violations:
            if v.rule.endswith(".shape_valid") and verdict.shapes and verdict.shapes[0].path:
                # Of several shapes, say which one is broken.
                v = dataclasses.replace(v, message=f"{verdict.shapes[0].path}: {v.message}")
            if v not in violations:
                violations.append(v)
    first.violations = violations
    first.rules_run = all(v.rules_run for v in verdicts)
    first.shapes = [bound for verdict in verdicts for bound in verdict.shapes]
    if violations:
        first.digest = None
    return first


def judge_model(doc: Document, shapes: Sequence[KvTensorShapeV1] = ()) -> Verdict:
    """The verdict on a model, against each shape it serves for a layout or geometry (which
    needs at least one: a TypeError otherwise). A shape needs none, and ignores any given."""
    contract = contract_of(doc)
    if not contract.needs_shape:
        proof = proof_of(doc)
        if proof is not None:  # proven (decoded, derived): the judge's rules, from the proof
            return SHAPELESS._rules(contract, proof.fields, proof.canonical, doc, proof)
        return SHAPELESS.judge(reading_of(doc, contract))
    if not shapes:
        raise TypeError(
            f"a {contract.kind} is validated against the shape it describes: pass shape="
        )
    from fib_quant_kv_models import KvTensorShapeV1

    for shape in shapes:
        if not isinstance(shape, KvTensorShapeV1):
            raise TypeError(f"shape must be a KvTensorShapeV1, got {type(shape).__name__}")
    reading = reading_of(doc, contract)
    return combined([Checker(shape).judge(reading) for shape in shapes])


def collect_violations(doc: Document, shape: KvTensorShapeV1 | None = None) -> list[Violation]:
    """Every rule the document breaks, schema first; the first is what `validate` raises."""
    return judge_model(doc, () if shape is None else (shape,)).violations


def validate(doc: Document, shape: KvTensorShapeV1 | None = None) -> None:
    """Raise the first violation, schema before rules, as a typed error; or return None."""
    found = collect_violations(doc, shape)
    if found:
        raise found[0].to_error()


def digest(doc: Document, shape: KvTensorShapeV1 | None = None, encoding: Encoding = "json") -> str:
    """Validate, then digest the canonical bytes. The JSON digest is the reference's."""
    verdict = judge_model(doc, () if shape is None else (shape,))
    if verdict.violations:
        raise verdict.violations[0].to_error()
    if encoding == "json":  # the reference's digest, written once (a valid verdict has it)
        found = verdict.canonical_digest()
        assert found is not None  # a document with no violation has its fields
        return found
    return verdict.digest_in(encoding)


def shape_problems(shape: KvTensorShapeV1) -> list[Violation]:
    """Everything wrong with a shape, schema first; empty for a valid shape. Run once a shape."""
    return judge_model(shape).violations
