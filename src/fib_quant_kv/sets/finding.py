"""What a run says of each path: a Finding, and the shapes it was judged against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fib_quant_kv.contracts import SHAPE_SCHEMA
from fib_quant_kv.errors import Violation
from fib_quant_kv.verdict import Verdict

if TYPE_CHECKING:
    from fib_quant_kv_models import KvTensorShapeV1


@dataclass(frozen=True, slots=True)
class Bound:
    """A shape a layout or geometry was judged against: its path and (if valid) its digest."""

    path: str
    digest: str | None


@dataclass(slots=True)
class Finding:
    """What a run found for one path: a document, a set file, or a path it could not read."""

    path: str
    kind: str | None = None
    violations: list[Violation] = field(default_factory=list)
    digest: str | None = None
    # Whether every rule ran: for a layout or geometry, against at least one shape.
    rules_run: bool = False
    shapes: list[Bound] = field(default_factory=list)
    unreadable: str | None = None
    # A layout or geometry with no shape, accepted on its structure alone by the caller.
    structure_only: bool = False
    # Judged because a shape named in the run has it as a dependent, not named itself.
    dependent_of: str | None = None
    verdict: Verdict | None = None

    def verdict_shape(self) -> KvTensorShapeV1 | None:
        """The document itself, when it is a valid shape."""
        document = self.verdict.document if self.verdict is not None else None
        if document is None or document.schema_version != SHAPE_SCHEMA:
            return None
        return document

    @property
    def valid(self) -> bool:
        """Readable, nothing wrong, and every check run (or structure-only accepted)."""
        if self.unreadable is not None or self.violations:
            return False
        return self.rules_run or self.structure_only
