"""The one result: what was found of a document, a set file or a path, by every surface."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fib_quant_kv.digests import domain_digest, encode
from fib_quant_kv.errors import Violation
from fib_quant_kv.fastpath import canonical_of, model_of
from fib_quant_kv.proofs import Proof, remember_fields

if TYPE_CHECKING:
    from collections.abc import Callable

    from fib_quant_kv.codec import Encoding
    from fib_quant_kv.contracts import Contract, Document
    from fib_quant_kv.rules import DocumentFields
    from fib_quant_kv_models import KvTensorShapeV1


@dataclass(frozen=True, slots=True)
class Bound:
    """A shape a layout or geometry was judged against: its name (its path, when it came from a
    file) and, if it is valid, its digest."""

    path: str
    digest: str | None


# What a document whose schema holds is made of: its contract, its fields as the rules read
# them, its canonical JSON when known (else written from the fields when first needed), and
# its model when one was built or given.
Held = tuple["Contract", "DocumentFields", "bytes | None", "Document | None"]

# What a report reads of a verdict: path, kind, violations, digest, rules run, shapes, why
# unreadable, structure only, dependent of.
Report = tuple[
    str, "str | None", list[Violation], "str | None", bool, "list[Bound]", "str | None", bool,
    "str | None",
]  # fmt: skip

# A digest not yet written (a string of its own, so `is` tells it from every digest).
_UNSET = "unset"
_new = object.__new__


class Verdict:
    """Everything known about one document (or set file, or path) after the data path ran as
    far as it could: the check of one document, each finding of a run, the same type."""

    __slots__ = (
        "_digest",
        "_document",
        "_hashed",
        "_held",
        "_proof",
        "contract",
        "dependent_of",
        "kind",
        "path",
        "rules_run",
        "shapes",
        "structure_only",
        "unreadable",
        "violations",
    )

    def __init__(
        self,
        path: str = "",
        *,
        kind: str | None = None,
        contract: Contract | None = None,
        violations: list[Violation] | None = None,
        digest: str | None = None,
        rules_run: bool = False,
        shapes: list[Bound] | None = None,
        unreadable: str | None = None,
        structure_only: bool = False,
        dependent_of: str | None = None,
        held: Held | None = None,
        proof: Proof | None = None,
    ) -> None:
        # The file the document came from ("-" for standard input); empty for bytes or a model.
        self.path = path
        self.contract = contract
        self.kind = kind if kind is not None or contract is None else contract.kind
        self.violations = [] if violations is None else violations
        # Whether the reference's rules ran: not for undecodable bytes, nor for a layout or
        # geometry that came without a shape.
        self.rules_run = rules_run
        # The shapes a layout or geometry was judged against.
        self.shapes = [] if shapes is None else shapes
        # Why the path could not be read, when it could not.
        self.unreadable = unreadable
        # A layout or geometry with no shape, accepted on its structure alone by the caller.
        self.structure_only = structure_only
        # Judged because a shape named in a run has it as a dependent, not named itself.
        self.dependent_of = dependent_of
        self._held = held
        # What is remembered of the model, when it was judged from one: its digest is kept there.
        self._proof = proof
        self._hashed: str | None = None
        self._document: Document | None = None if held is None else held[3]
        # Written when first asked for: a caller that only validates never pays for it.
        self._digest: str | None = digest if digest is not None or held is None else _UNSET

    @classmethod
    def judged(
        cls,
        contract: Contract,
        violations: list[Violation],
        rules_run: bool,
        shapes: list[Bound],
        held: Held,
        proof: Proof | None,
    ) -> Verdict:
        """The verdict on a document whose schema holds, as the judge makes it: what the
        constructor does, without its keywords and defaults to weigh, on the path every such
        document takes (a test holds the two alike)."""
        made = _new(cls)
        made.path, made.contract, made.kind = "", contract, contract.kind
        made.violations, made.rules_run, made.shapes = violations, rules_run, shapes
        made.unreadable, made.structure_only, made.dependent_of = None, False, None
        made._held, made._proof, made._hashed, made._document = held, proof, None, held[3]
        made._digest = _UNSET
        return made

    @property
    def digest(self) -> str | None:
        """The digest of the canonical JSON, when the document is valid (None otherwise)."""
        found = self._digest
        if found is _UNSET:
            ran = self.rules_run and not self.violations
            found = self._digest = self.canonical_digest() if ran else None
        return found

    @digest.setter
    def digest(self, value: str | None) -> None:
        self._digest = value

    def canonical_digest(self) -> str | None:
        """The digest of the canonical JSON whenever the schema holds, valid or not: what a set
        file records of the document. Written once, and kept with a proven model."""
        if self._hashed is not None or self._held is None:
            return self._hashed
        contract, fields, canonical, model = self._held
        proof = self._proof
        if proof is not None and proof.digest is not None:
            self._hashed = proof.digest
            return self._hashed
        if canonical is None:
            canonical = canonical_of(contract, fields)
            self._held = contract, fields, canonical, model
        found = self._hashed = domain_digest(contract.domain, canonical)
        if proof is not None:
            proof.canonical, proof.digest = canonical, found
        return found

    def raise_first(self) -> Verdict:
        """Raise the first violation as its typed error; else return this verdict."""
        if self.violations:
            raise self.violations[0].to_error(self.path or None)
        return self

    def digest_in(self, encoding: Encoding) -> str:
        """The digest of a valid document's canonical bytes in an encoding: JSON (the
        reference's digest) or deterministic CBOR (on request only)."""
        found = self.digest
        if found is not None and encoding == "json":
            return found
        if found is None or self.contract is None:
            raise ValueError("only a valid document has a digest: raise_first says why not")
        document = self.document
        assert document is not None  # a valid document has its fields, so its model
        return domain_digest(self.contract.domain, encode(document, encoding))

    @property
    def shape_digest(self) -> str | None:
        """The digest of the one shape a layout or geometry was judged against, if valid."""
        return self.shapes[0].digest if len(self.shapes) == 1 else None

    @property
    def shape_checked(self) -> bool:
        """Whether the rules ran (for a layout or geometry: against a shape)."""
        return self.rules_run

    @property
    def document(self) -> Document | None:
        """The model of the document, if its structure is valid (built on first use)."""
        if self._document is None and self._held is not None:
            contract, fields, canonical, _ = self._held
            self._document = remember_fields(*model_of(contract, fields), canonical)
        return self._document

    @property
    def held(self) -> Held | None:
        """What the document is made of, when its schema holds: contract, fields, canonical
        JSON (None until written) and model (None until built)."""
        return self._held

    @property
    def fields(self) -> DocumentFields | None:
        """The document's field values, as the rules read them (no model is built)."""
        return None if self._held is None else self._held[1]

    @property
    def valid(self) -> bool:
        """Readable, nothing wrong, and every check run (or structure-only accepted)."""
        if self.unreadable is not None or self.violations:
            return False
        return self.rules_run or self.structure_only

    def valid_shape(self) -> KvTensorShapeV1 | None:
        """The document itself, when it is a valid shape."""
        if not self.valid or self.contract is None or self.contract.kind != "shape":
            return None
        return self.document  # type: ignore[return-value]  # a shape's

    def __reduce__(self) -> tuple[Callable[..., Verdict], Report]:
        """A verdict pickles as its report, its digest written, without its model, fields or
        contract (what a report needs, and all a process hands another): a call each rebuilds
        them, at half the cost of pickle's default (a dict of slot values per verdict)."""
        return from_report, report_of(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verdict):
            return NotImplemented
        return report_of(self) == report_of(other) and self.document == other.document

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass with eq would be

    def __repr__(self) -> str:
        return (
            f"Verdict(kind={self.kind!r}, document={self.document!r}, "
            f"violations={self.violations!r}, digest={self.digest!r}, "
            f"rules_run={self.rules_run!r}, shapes={self.shapes!r}, path={self.path!r})"
        )


# What a report reads of a verdict, in Report's order (and what two verdicts are compared by).
report_of: Callable[[Verdict], Report] = operator.attrgetter(
    "path", "kind", "violations", "digest", "rules_run", "shapes", "unreadable",
    "structure_only", "dependent_of",
)  # fmt: skip


def from_report(
    path: str,
    kind: str | None,
    violations: list[Violation],
    digest: str | None,
    rules_run: bool,
    shapes: list[Bound],
    unreadable: str | None,
    structure_only: bool,
    dependent_of: str | None,
) -> Verdict:
    """The verdict a report describes (see report_of), with no model, fields or contract: what
    the constructor makes of the same values, without its keywords and defaults to weigh, for
    each of the thousands of findings a parallel run hands over (a test holds the two alike)."""
    made: Verdict = _new(Verdict)
    made.path, made.kind, made.violations, made._digest = path, kind, violations, digest
    made.rules_run, made.shapes, made.unreadable = rules_run, shapes, unreadable
    made.structure_only, made.dependent_of, made.contract = structure_only, dependent_of, None
    made._held, made._proof, made._hashed, made._document = None, None, None, None
    return made
