"""The run: documents judged with their shapes, then their set files; what a commit removed."""

from __future__ import annotations

import dataclasses
import os
import posixpath
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from fib_quant_kv.errors import FibQuantKvError, Violation
from fib_quant_kv.files import (
    CONTRACT_NAME,
    SET_FILE,
    STDIN,
    Named,
    UnreadablePath,
    encoding_note,
    encoding_of,
    expand,
    read_limited,
)
from fib_quant_kv.reading import Reading, read, reading_contract
from fib_quant_kv.rules.sets import (
    CACHE_AGREES,
    CACHE_FIELDS,
    DELETED,
    no_shape,
)
from fib_quant_kv.rules.shape import ShapeFields
from fib_quant_kv.sets.finding import Finding
from fib_quant_kv.sets.pairing import SKIPPED_NAMED, Notes, Pairing
from fib_quant_kv.sets.setcheck import check_set, content
from fib_quant_kv.sets.setfile import LoadedSet
from fib_quant_kv.sets.stores import Memory
from fib_quant_kv.verdict import SHAPELESS, Checker, Verdict, combined

if TYPE_CHECKING:
    from fib_quant_kv.contracts import Contract
    from fib_quant_kv.gitindex import Removal


class Run(Pairing):
    """Judges documents with their shapes: one call of validate, or one library call."""

    def _agreement(self, path: str, fields: ShapeFields) -> list[Violation]:
        """Where a shape disagrees with the other shape of its cache."""
        partner = self.partner_of(path)
        if partner is None:
            return []
        theirs = self._checker(partner).shape_fields
        if theirs is None:  # a broken partner says so itself
            return []
        return [
            CACHE_AGREES.at(
                f"/{name}",
                f"{name} {getattr(fields, name)}, but the {theirs.role} shape of this cache "
                f"({partner}) has {getattr(theirs, name)}: the key and value shapes of one cache "
                "agree on batch, layers, kv_heads, query_heads and tokens",
            )
            for name in CACHE_FIELDS
            if getattr(fields, name) != getattr(theirs, name)
        ]

    # Judging --------------------------------------------------------------------------------

    def judge(
        self,
        path: str,
        data: bytes,
        *,
        named: bool = True,
        reading: Reading | None = None,
        judged: Verdict | None = None,
    ) -> Finding | None:
        """The finding for one document's bytes (read already, if `reading` is given; judged
        without a shape already, if `judged` is); None for a walk's file that is no contract.
        A JSON document's violations say where they are (line and column)."""
        encoding = encoding_of(path, data)
        if reading is None:
            reading = read(data, encoding)
        finding = self._judge(path, data, named, reading, judged)
        if finding is not None and finding.violations and encoding == "json":
            from fib_quant_kv.codec.json import located

            finding.violations = located(data, finding.violations)
        return finding

    def _judge(
        self, path: str, data: bytes, named: bool, reading: Reading, judged: Verdict | None
    ) -> Finding | None:
        contract = reading_contract(reading)
        if contract is None and not named and not CONTRACT_NAME.search(path):
            self.skipped += 1
            if len(self.skipped_names) < SKIPPED_NAMED:
                self.skipped_names.append(path)
            return None
        if isinstance(reading, Violation) and reading.code == "decode":
            note = encoding_note(path, data)
            if note is not None:
                reading = dataclasses.replace(reading, message=f"{reading.message}; {note}")
                judged = None
        self.judged.add(path)
        finding = self._verdict(path, contract, reading, judged)
        finding.path = path
        if self.bindings is None and path != STDIN:
            loaded = self._set_of(posixpath.dirname(path))
            if loaded is not None and path in loaded.entries:
                self.contents[path] = content(finding)
        return finding

    def _verdict(
        self, path: str, contract: Contract | None, reading: Reading, judged: Verdict | None
    ) -> Verdict:
        """The verdict on a document, against the shapes it pairs with."""
        if contract is None or not contract.needs_shape:
            verdict = SHAPELESS.judge(reading) if judged is None else judged
            if contract is not None and path != STDIN:
                if contract.kind == "shape" and path not in self._checkers:
                    # The shape as its own rules judge it, before the cache's agreement: what
                    # the documents paired with it are judged against (a valid one's checker
                    # is made from this verdict when first asked for).
                    if verdict.valid:
                        self._valid_shapes[path] = verdict
                    else:
                        self._checkers[path] = Checker.for_verdict(verdict, strict=False, name=path)
                fields = verdict.fields
                if verdict.valid and fields is not None:
                    agreement = self._agreement(path, fields)  # type: ignore[arg-type]
                    if agreement:
                        verdict.violations.extend(agreement)
                        verdict.digest = None
            return verdict
        if self.shape is not None:
            return self.shape.judge(reading)
        shapes, source = self.shapes_for(path, contract.kind)
        if not shapes:
            verdict = SHAPELESS.judge(reading)
            if verdict.violations or self.structure_only:
                verdict.structure_only = self.structure_only
            else:
                verdict.violations.append(no_shape(contract.kind, source))
            return verdict
        return combined([self._checker(shape_path).judge(reading) for shape_path in shapes])

    def run(self, paths: list[str]) -> Iterator[Finding]:
        """Findings for files and folders (walked), then for the set files and dependents
        their documents call for. Lazily, so memory stays flat in the number of files."""
        yield from self.judge_items(expand(paths))
        yield from self.finish()

    def judge_items(self, items: Iterable[Named | UnreadablePath]) -> Iterator[Finding]:
        """Findings for paths already expanded, noting the folders and shapes they name."""
        for item in items:
            if isinstance(item, UnreadablePath):
                yield Finding(item.path, unreadable=item.reason)
                continue
            folder, name = posixpath.split(item.path)
            if name == SET_FILE:
                self.folders[folder] = None
                continue
            try:
                data, reading, judged = self._read(item.path, item.regular)
            except UnreadablePath as exc:
                yield Finding(item.path, unreadable=exc.reason)
                continue
            except FibQuantKvError as exc:  # a document past the size limit: invalid
                self.judged.add(item.path)
                yield Finding(item.path, violations=[exc.violation])
                continue
            finding = self.judge(item.path, data, named=item.named, reading=reading, judged=judged)
            if finding is None:
                continue
            if item.path != STDIN:
                self.folders[folder] = None
                if item.named and finding.kind == "shape":
                    self.named_shapes.append(item.path)
            yield finding

    def notes(self) -> Notes:
        """What this run has noted, to hand to another run of the same request."""
        return (
            self.folders,
            self.named_shapes,
            self.judged,
            self.skipped,
            self.skipped_names,
            self.contents,
        )

    def absorb(self, notes: Notes) -> None:
        """Take in what another run of the same request noted (it judged other paths)."""
        folders, named_shapes, judged, skipped, skipped_names, contents = notes
        self.folders.update(folders)
        self.named_shapes += named_shapes
        self.judged |= judged
        self.skipped += skipped
        self.skipped_names = (self.skipped_names + skipped_names)[:SKIPPED_NAMED]
        self.contents.update(contents)

    def finish(self) -> Iterator[Finding]:
        """Findings for the dependents of named shapes, then for the set files of the folders."""
        for shape_path in self.named_shapes:
            for dependent in self.dependents_of(shape_path):
                if dependent in self.judged:
                    continue
                try:
                    data, reading, judged = self._read(dependent)
                except UnreadablePath as exc:
                    yield Finding(dependent, unreadable=exc.reason)
                    continue
                except FibQuantKvError as exc:
                    yield Finding(dependent, violations=[exc.violation], dependent_of=shape_path)
                    continue
                finding = self.judge(dependent, data, reading=reading, judged=judged)
                if finding is not None:
                    finding.dependent_of = shape_path
                    self.folders[posixpath.dirname(dependent)] = None
                    yield finding
        if self.bindings is None:
            for folder in list(self.folders):
                loaded = self._set_of(folder)
                if loaded is not None:
                    yield self.check_set(loaded)

    def check_set(self, loaded: LoadedSet) -> Finding:
        """The finding for a set file, from what this run judged and read already."""
        return check_set(loaded, self.store, self.contents, self._read)


def removed_by(run: Run, removals: Iterable[Removal]) -> Iterator[Finding]:
    """Findings for documents a commit deletes or renames away that others still need."""
    taken = list(removals)
    gone = {r.path for r in taken}
    for removal in taken:
        if removal.path in run.judged:  # it is still there (deleted and added again)
            continue
        needers = run.needers_of(removal.path, gone)
        if not needers:
            continue
        what = (
            f"renamed to {removal.renamed_to} by the commit"
            if removal.renamed_to
            else "deleted by the commit"
        )
        verb = "needs" if len(needers) == 1 else "need"
        message = (
            f"{what}, but {', '.join(needers)} still {verb} it: restore it, or change "
            f"{'it' if len(needers) == 1 else 'them'} with it"
        )
        yield Finding(removal.path, violations=[DELETED.at("", message)], rules_run=True)


def validate_paths(
    paths: Sequence[str | os.PathLike[str]],
    *,
    shape: str | os.PathLike[str] | None = None,
    structure_only: bool = False,
) -> list[Finding]:
    """Judge files and folders as the command line does: each layout and geometry against its
    shape (the one given, its set file's, or the convention's), set files checked too."""
    checker = None
    shape_path = None
    if shape is not None:
        shape_path = os.fspath(shape)
        checker = Checker.for_shape(read_limited(shape_path), name=shape_path)
    run = Run(shape=checker, shape_path=shape_path, structure_only=structure_only)
    return list(run.run([os.fspath(p) for p in paths]))


def validate_documents(
    documents: Mapping[str, bytes],
    bindings: Mapping[str, Sequence[str]] | None = None,
    *,
    structure_only: bool = False,
) -> dict[str, Finding]:
    """Judge documents held in memory, by name. `bindings` maps each layout and geometry to
    the names of its shapes; without it, names are paired by the naming convention."""
    run = Run(Memory(documents), structure_only=structure_only, bindings=bindings)
    found: dict[str, Finding] = {}
    for name, data in documents.items():
        finding = run.judge(name, data)
        if finding is not None:
            found[name] = finding
    return found
