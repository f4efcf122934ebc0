"""Sets of documents: which shape each layout and geometry is judged against, and set files.

In the reference a layout names only its shape's marker and a geometry names nothing: the
binding to one shape is made by other documents. This module makes it, in this order:

1. a shape given for every document (`--shape`);
2. else a set file (`fib-quant-kv-set.json`) in the document's folder that lists it;
3. else the naming convention `plan` writes: `<prefix>layout.*` belongs to `<prefix>shape.*`
   (`key_layout.json` to `key_shape.json`, `llama_value_layout.cbor` to
   `llama_value_shape.cbor`), and `<prefix>geometry.*` or `<prefix>page_geometry.*` is judged
   against every `<prefix>...shape.*` in its folder (`page_geometry.json` against all of them).

A layout or geometry for which none finds a shape is invalid (rule `set.no_shape`) unless the
caller accepts structure-only checks. Everything here reads through a `Store`, so the same
engine judges files on disk and documents held in memory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeAlias

from fib_quant_kv.contracts import CONTRACTS, SHAPE_SCHEMA
from fib_quant_kv.digests import domain_digest, encode
from fib_quant_kv.errors import FibQuantKvError, Rule, SetError, Violation, pointer
from fib_quant_kv.files import (
    CONTRACT_NAME,
    SET_FILE,
    STDIN,
    SUFFIXES,
    Named,
    UnreadablePath,
    encoding_note,
    encoding_of,
    expand,
    read_limited,
)
from fib_quant_kv.rules.shape import ShapeFields
from fib_quant_kv.verdict import Checker, Reading, Verdict, read, reading_contract

if TYPE_CHECKING:
    from fib_quant_kv.gitindex import Removal
    from fib_quant_kv_models import ContractSetV1, KvTensorShapeV1

SET_FORMAT = "fib-quant-kv/contract-set/v1"
SET_SCHEMA = "fib_quant_kv_contract_set_v1"

# The set's rules: checked after each document's own (steps 1 to 9).
SET_STEP = 10
NO_SHAPE = Rule(
    "set.no_shape",
    ("set",),
    SET_STEP,
    "A layout or geometry is judged against a shape: one given for the run, one its set file "
    "binds it to, or one the naming convention finds beside it.",
)
MALFORMED = Rule(
    "set.malformed",
    ("set",),
    SET_STEP,
    f"A set file is one strict JSON document that its schema ({SET_SCHEMA}) accepts.",
)
PATH = Rule(
    "set.path",
    ("set",),
    SET_STEP,
    "Each entry names a file of the set's own folder (a plain file name, not a link), once.",
)
MISSING = Rule(
    "set.missing_document",
    ("set",),
    SET_STEP,
    "Each listed document exists and can be read as a contract document.",
)
KIND = Rule(
    "set.kind",
    ("set",),
    SET_STEP,
    "Each listed document is of the kind and role the set records.",
)
DOCUMENT_DIGEST = Rule(
    "set.document_digest",
    ("set",),
    SET_STEP,
    "Each listed document has the digest the set records: a document changed or swapped "
    "since the set was written is caught here.",
)
BINDING = Rule(
    "set.binding",
    ("set",),
    SET_STEP,
    "A layout is bound to exactly one listed shape and a geometry to at least one; a shape "
    "to none; nothing to itself (a cycle) or to a document that is not a shape.",
)
SET_DIGEST = Rule(
    "set.digest",
    ("set",),
    SET_STEP,
    "The set's own digest is the digest of what it lists.",
)
UNLISTED = Rule(
    "set.unlisted",
    ("set",),
    SET_STEP,
    "Every contract document in a set file's folder is listed in the set.",
)
CACHE_AGREES = Rule(
    "set.cache_agrees",
    ("set",),
    SET_STEP,
    "The key and value shapes of one cache (<prefix>key_shape and <prefix>value_shape of a "
    "folder, or the shapes one geometry pages) agree on batch, layers, kv_heads, query_heads "
    "and tokens; a geometry that pages them is judged against each.",
)
DELETED = Rule(
    "set.deleted",
    ("set",),
    SET_STEP,
    "A commit does not delete or rename away a document that a layout, a geometry or a set "
    "file still needs (the pre-commit hook asks git what the commit removes).",
)
EMPTY = Rule(
    "set.empty",
    ("set",),
    SET_STEP,
    "A set lists at least one contract document: a folder without any makes no set file.",
)
RULES = (
    NO_SHAPE,
    MALFORMED,
    PATH,
    MISSING,
    KIND,
    DOCUMENT_DIGEST,
    BINDING,
    SET_DIGEST,
    UNLISTED,
    CACHE_AGREES,
    DELETED,
    EMPTY,
)

# What the key and value shapes of one cache agree on.
CACHE_FIELDS = ("batch", "layers", "kv_heads", "query_heads", "tokens")

# The words that end a contract document's name: its contract's kind.
_KIND_WORDS = tuple(contract.kind for contract in CONTRACTS.values())


def no_shape(kind: str, source: str) -> Violation:
    """The violation of a layout or geometry for which no shape was found, and what to do."""
    return NO_SHAPE.at(
        "",
        f"a {kind} is judged against its shape: {source}; name one (--shape FILE), list it in "
        f"a set file ({SET_FILE}), or accept the schema's checks alone (--structure-only)",
    )


# Where documents come from --------------------------------------------------------------------


class Store(Protocol):
    """Where a run reads documents: files on disk, or documents held in memory."""

    def read(self, path: str) -> bytes:
        """The bytes of a document; raises UnreadablePath."""
        ...

    def names(self, folder: str) -> list[str]:
        """The file names in a folder (empty when it cannot be listed)."""
        ...

    def is_link(self, path: str) -> bool:
        """Whether a path is a symbolic link (whose document may lie outside its folder)."""
        ...


class Files:
    """Documents on disk."""

    def __init__(self) -> None:
        self._listed: dict[str, list[str]] = {}

    def read(self, path: str) -> bytes:
        return read_limited(path)

    def names(self, folder: str) -> list[str]:
        listed = self._listed.get(folder)
        if listed is None:
            try:
                listed = sorted(os.listdir(folder or "."))
            except OSError:
                listed = []
            self._listed[folder] = listed
        return listed

    def is_link(self, path: str) -> bool:
        return os.path.islink(path)


class Memory:
    """Documents held in memory, by name; names with / are in folders."""

    def __init__(self, documents: Mapping[str, bytes]) -> None:
        self.documents = dict(documents)

    def read(self, path: str) -> bytes:
        try:
            return self.documents[path]
        except KeyError:
            raise UnreadablePath(path, "no such document") from None

    def names(self, folder: str) -> list[str]:
        return sorted(
            posixpath.basename(name) for name in self.documents if posixpath.dirname(name) == folder
        )

    def is_link(self, path: str) -> bool:
        return False


# What a run says of each path ----------------------------------------------------------------


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


# Names ----------------------------------------------------------------------------------------


def _split(name: str) -> tuple[str, str, str] | None:
    """(prefix, kind word, extension) of a name like llama_key_layout.json, else None."""
    stem, ext = posixpath.splitext(name)
    if ext not in SUFFIXES:
        return None
    for word in _KIND_WORDS:
        if stem.endswith(word):
            prefix = stem[: -len(word)]
            if prefix == "" or prefix[-1] in "_-":
                return prefix, word, ext
    return None


def _geometry_base(prefix: str) -> str:
    """The prefix a geometry shares with its shapes: page_geometry's `page_` is its own."""
    for own in ("page_", "page-"):
        if prefix.endswith(own):
            return prefix[: -len(own)]
    return prefix


def _prefer(names: Iterable[str], ext: str) -> list[str]:
    """One file per stem: the one with the document's own extension, else JSON before CBOR."""
    by_stem: dict[str, list[str]] = {}
    for name in names:
        by_stem.setdefault(posixpath.splitext(name)[0], []).append(name)
    chosen = []
    for stem in sorted(by_stem):
        options = by_stem[stem]
        exact = [n for n in options if n.endswith(ext)]
        chosen.append((exact or sorted(options, key=lambda n: not n.endswith(".json")))[0])
    return chosen


# Set files ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetEntryView:
    """One listed document of a loaded set file, its path resolved against the set's folder."""

    index: int
    path: str
    kind: str
    role: str | None
    digest: str
    shapes: tuple[str, ...]


class LoadedSet:
    """A set file as read: its entries by path, and what is wrong with it as a file."""

    def __init__(self, path: str, entries: list[SetEntryView], digest: str | None) -> None:
        self.path = path
        self.entries = {entry.path: entry for entry in entries}
        self.digest = digest
        self.violations: list[Violation] = []
        self.data = b""  # the file's bytes, where they could be read: to say where a fault is

    def dependents(self, shape_path: str) -> list[str]:
        """The listed layouts and geometries bound to a shape."""
        return [e.path for e in self.entries.values() if shape_path in e.shapes]


def set_digest(entries: Iterable[tuple[str, str | None, str, Sequence[str]]]) -> str:
    """The digest of a set: (kind, role, digest, shape digests) of each document, sorted.

    Paths play no part, so the same documents bound the same way have one digest wherever
    they are stored and whatever their files are called.
    """
    # Sorted with a key that orders a null role (a geometry's) before a named one: a set file
    # that gives a layout no role must get a digest to compare, not a TypeError.
    canonical = sorted(
        ([kind, role, digest, sorted(shapes)] for kind, role, digest, shapes in entries),
        key=lambda item: (item[0], item[1] or "", item[2], item[3]),
    )
    text = json.dumps(canonical, separators=(",", ":"), ensure_ascii=False)
    return domain_digest(SET_FORMAT, text.encode("utf-8"))


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def entry_name_problem(name: str) -> str | None:
    """Why a name cannot be a set entry, or None: a set lists the files of its own folder by
    name, so an entry is a plain file name (the one rule for reading and writing set files)."""
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        return f"{name!r}: expected the name of a file in the set's own folder"
    if _CONTROL.search(name):
        return f"{name!r}: a control character in a file name"
    return None


def _entry_path(folder: str, name: str) -> str:
    """The path of a file of a folder, as the run names paths (no "." for the current one)."""
    return posixpath.join(folder, name) if folder else name


def load_set(store: Store, path: str) -> LoadedSet:
    """Read and check a set file's own structure and bindings (not yet its documents)."""
    from pydantic import ValidationError

    from fib_quant_kv.codec.json import decode as decode_json
    from fib_quant_kv_models import ContractSetV1

    folder = posixpath.dirname(path)
    loaded = LoadedSet(path, [], None)
    try:
        loaded.data = store.read(path)
        value = decode_json(loaded.data)
        model = ContractSetV1.model_validate(value)
    except UnreadablePath as exc:
        loaded.violations.append(MALFORMED.at("", f"cannot read: {exc.reason}"))
        return loaded
    except FibQuantKvError as exc:
        loaded.violations.append(MALFORMED.at(exc.pointer, exc.message))
        return loaded
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            message = f"{error['msg']}, got {error.get('input')!r}"[:300]
            loaded.violations.append(MALFORMED.at(pointer(*error["loc"]), message))
        return loaded
    entries: list[SetEntryView] = []
    seen: set[str] = set()
    for index, listed in enumerate(model.documents):
        where = f"/documents/{index}"
        problem = entry_name_problem(listed.path)
        if problem is not None:
            loaded.violations.append(PATH.at(f"{where}/path", problem))
            continue
        resolved = _entry_path(folder, listed.path)
        if resolved in seen:
            loaded.violations.append(PATH.at(f"{where}/path", f"{listed.path!r} is listed twice"))
            continue
        seen.add(resolved)
        shapes = []
        for number, shape in enumerate(listed.shapes):
            problem = entry_name_problem(shape)
            if problem is not None:
                loaded.violations.append(PATH.at(f"{where}/shapes/{number}", problem))
            else:
                shapes.append(_entry_path(folder, shape))
        role = None if listed.role is None else str(listed.role)
        if (role is None) != (str(listed.kind) == "geometry"):
            loaded.violations.append(
                KIND.at(
                    f"{where}/role",
                    f"a {listed.kind} has role {role or 'null'}: expected "
                    + ("null (a geometry serves both caches)" if role else "key or value"),
                )
            )
        entries.append(
            SetEntryView(index, resolved, str(listed.kind), role, listed.digest, tuple(shapes))
        )
    loaded.entries = {e.path: e for e in entries}
    loaded.digest = model.digest
    for entry in entries:
        loaded.violations.extend(_binding_problems(entry, loaded.entries))
    return loaded


def _binding_problems(entry: SetEntryView, entries: Mapping[str, SetEntryView]) -> list[Violation]:
    where = f"/documents/{entry.index}/shapes"
    if entry.kind == "shape":
        if entry.shapes:
            return [BINDING.at(where, "a shape is bound to nothing: expected no shapes")]
        return []
    if entry.kind == "layout" and len(entry.shapes) != 1:
        return [BINDING.at(where, f"a layout is bound to one shape, got {len(entry.shapes)}")]
    if not entry.shapes:
        return [BINDING.at(where, "a geometry is bound to at least one shape, got none")]
    found = []
    for number, shape in enumerate(entry.shapes):
        target = entries.get(shape)
        if shape == entry.path:
            found.append(BINDING.at(f"{where}/{number}", "bound to itself: a cycle"))
        elif target is None:
            found.append(
                BINDING.at(f"{where}/{number}", f"{shape} is not listed: expected a listed shape")
            )
        elif target.kind != "shape":
            found.append(
                BINDING.at(
                    f"{where}/{number}", f"{shape} is a {target.kind}: expected a listed shape"
                )
            )
    return found


# The run --------------------------------------------------------------------------------------


# What a set file's check needs of a listed document: (kind, role, digest of its canonical JSON),
# or None when it cannot be decoded or breaks its schema.
Content: TypeAlias = "tuple[str, str | None, str] | None"

# What a run notes as it judges: folders, shapes named, paths judged, files skipped (and the
# first of them), and what the documents its folders' set files list hold.
Notes: TypeAlias = "tuple[dict[str, None], list[str], set[str], int, list[str], dict[str, Content]]"

# How many skipped files a run names.
SKIPPED_NAMED = 5


class Run:
    """Judges documents with their shapes: one call of validate, or one library call.

    Each shape file is read and validated once per run, however many documents use it.
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        shape: Checker | None = None,
        shape_path: str | None = None,
        structure_only: bool = False,
        bindings: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.store: Store = store or Files()
        self.shape = shape
        self.shape_path = shape_path
        self.structure_only = structure_only
        self.bindings = bindings
        self.skipped = 0
        # The first few files skipped, to name when nothing else was judged.
        self.skipped_names: list[str] = []
        self._checkers: dict[str, tuple[Checker, Bound]] = {}
        self._sets: dict[str, LoadedSet | None] = {}
        # What the paths judged so far call for: their folders (in order, for set files), the
        # shapes named on the command line (for their dependents), and every path judged.
        self.folders: dict[str, None] = {}
        self.named_shapes: list[str] = []
        self.judged: set[str] = set()
        # The content of each judged document its folder's set file lists: the set's check
        # takes it from here rather than read and decode the document a second time.
        self.contents: dict[str, Content] = {}
        # Shape files read for a checker before the run reached them as documents: it takes
        # their bytes and reading from here, so a file is read and decoded once, and judged as
        # the bytes it paired by.
        self._unjudged: dict[str, tuple[bytes, Reading]] = {}

    # Pairing --------------------------------------------------------------------------------

    def _set_of(self, folder: str) -> LoadedSet | None:
        if folder not in self._sets:
            has = SET_FILE in self.store.names(folder) and self.bindings is None
            path = _entry_path(folder, SET_FILE)
            self._sets[folder] = load_set(self.store, path) if has else None
        return self._sets[folder]

    def _checker(self, path: str) -> tuple[Checker, Bound]:
        known = self._checkers.get(path)
        if known is None:
            try:
                data = self.store.read(path)
                reading = read(data, encoding_of(path, data))
                if path not in self.judged:
                    self._unjudged[path] = data, reading
                checker = Checker.for_reading(reading, strict=False)
            except UnreadablePath as exc:
                missing = MISSING.at("", f"{path}: cannot read: {exc.reason}")
                checker = Checker.unusable([missing])
            except FibQuantKvError as exc:  # a shape past the size limit
                checker = Checker.unusable([exc.violation])
            known = checker, Bound(path, checker.shape_digest)
            self._checkers[path] = known
        return known

    def _read(self, path: str) -> tuple[bytes, Reading | None]:
        """A document's bytes, and its reading if a checker made one already."""
        found = self._unjudged.pop(path, None)
        return (self.store.read(path), None) if found is None else found

    def shapes_for(self, path: str, kind: str) -> tuple[list[str], str]:
        """The shapes a layout or geometry at this path is judged against, and where they came
        from (or, when there are none, what was looked for)."""
        folder, name = posixpath.split(path)
        if self.bindings is not None:
            bound = list(self.bindings.get(path, ()))
            return bound, "the bindings given" if bound else f"no binding for {path}"
        loaded = self._set_of(folder)
        if loaded is not None and path in loaded.entries:
            return list(loaded.entries[path].shapes), f"set file {loaded.path}"
        parts = _split(name)
        if parts is None:
            return [], (
                f"no shape: {name} is not named like <prefix>{kind}.json, so no shape "
                "can be found beside it"
            )
        prefix, _, ext = parts
        # Never the document itself, whatever its name says (a layout in key_shape.json).
        names = [n for n in self.store.names(folder) if n != name]
        if kind == "layout":
            wanted = f"{prefix}shape"
            found = [
                n for n in names if (s := _split(n)) is not None and s[:2] == (prefix, "shape")
            ]
            looked = f"{wanted}.json or {wanted}.cbor"
        else:
            base = _geometry_base(prefix)
            found = [
                n
                for n in names
                if (s := _split(n)) is not None and s[1] == "shape" and n.startswith(base)
            ]
            looked = f"{base}*shape.json or .cbor"
        chosen = [_entry_path(folder, n) for n in _prefer(found, ext)]
        if chosen:
            return chosen, "the naming convention"
        return [], f"no shape: looked for {looked} in {folder or '.'}"

    def shape_model(self, path: str) -> KvTensorShapeV1 | None:
        """The model of a shape file this run has read."""
        return self._checker(path)[0].shape

    def dependents_of(self, shape_path: str) -> list[str]:
        """The layouts and geometries that belong to a shape: listed, bound, or by name."""
        folder, name = posixpath.split(shape_path)
        if self.bindings is not None:
            return sorted(p for p, shapes in self.bindings.items() if shape_path in shapes)
        loaded = self._set_of(folder)
        if loaded is not None and shape_path in loaded.entries:
            return loaded.dependents(shape_path)
        parts = _split(name)
        if parts is None or parts[1] != "shape":
            return []
        prefix = parts[0]
        found = []
        for other in self.store.names(folder):
            split = _split(other)
            if split is None:
                continue
            if (split[1] == "layout" and split[0] == prefix) or (
                split[1] == "geometry" and prefix.startswith(_geometry_base(split[0]))
            ):
                found.append(_entry_path(folder, other))
        return found

    def needers_of(self, path: str, removed: set[str]) -> list[str]:
        """What still needs a document: its folder's set file if it lists it, and, for a shape,
        the layouts and geometries bound to it or named like it (leaving out what is removed)."""
        folder, name = posixpath.split(path)
        needers: list[str] = []
        loaded = self._set_of(folder)
        if loaded is not None and path in loaded.entries:
            needers.append(loaded.path)
        parts = _split(name)
        if parts is not None and parts[1] == "shape":
            needers.extend(self.dependents_of(path))
        return [n for n in dict.fromkeys(needers) if n not in removed and n != path]

    def removed(self, removals: Iterable[Removal]) -> Iterator[Finding]:
        """Findings for documents a commit deletes or renames away that others still need."""
        taken = list(removals)
        gone = {r.path for r in taken}
        for removal in taken:
            if removal.path in self.judged:  # it is still there (deleted and added again)
                continue
            needers = self.needers_of(removal.path, gone)
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

    def partner_of(self, path: str) -> str | None:
        """The other shape of a shape's cache: the one a geometry pages with it in its set file,
        else the one named like it with the other role (<prefix>key_shape, <prefix>value_shape)."""
        folder, name = posixpath.split(path)
        if self.bindings is not None:
            paged = [shapes for shapes in self.bindings.values() if path in shapes]
            others = {s for shapes in paged for s in shapes if s != path}
            return next(iter(sorted(others)), None) if len(others) == 1 else None
        loaded = self._set_of(folder)
        if loaded is not None and path in loaded.entries:
            others = {
                shape
                for entry in loaded.entries.values()
                if entry.kind == "geometry" and path in entry.shapes
                for shape in entry.shapes
                if shape != path
            }
            if others:
                return next(iter(sorted(others))) if len(others) == 1 else None
        parts = _split(name)
        if parts is None or parts[1] != "shape":
            return None
        prefix, _, ext = parts
        for mine, theirs in (("key", "value"), ("value", "key")):
            for sep in "_-":
                if prefix.endswith(mine + sep):
                    stem = prefix[: -len(mine + sep)] + theirs + sep + "shape"
                    names = [
                        n for n in self.store.names(folder) if posixpath.splitext(n)[0] == stem
                    ]
                    chosen = _prefer(names, ext)
                    return _entry_path(folder, chosen[0]) if chosen else None
        return None

    def _agreement(self, path: str, fields: ShapeFields) -> list[Violation]:
        """Where a shape disagrees with the other shape of its cache."""
        partner = self.partner_of(path)
        if partner is None:
            return []
        theirs = self._checker(partner)[0].shape_fields
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
        self, path: str, data: bytes, *, named: bool = True, reading: Reading | None = None
    ) -> Finding | None:
        """The finding for one document's bytes (read already, if `reading` is given); None
        for a walk's file that is no contract. A JSON document's violations say where they are
        (line and column)."""
        encoding = encoding_of(path, data)
        finding = self._judge(
            path, data, named, read(data, encoding) if reading is None else reading
        )
        if finding is not None and finding.violations and encoding == "json":
            from fib_quant_kv.codec.json import located

            finding.violations = located(data, finding.violations)
        return finding

    def _judge(self, path: str, data: bytes, named: bool, reading: Reading) -> Finding | None:
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
        self.judged.add(path)
        if self.bindings is None and path != STDIN:
            loaded = self._set_of(posixpath.dirname(path))
            if loaded is not None and path in loaded.entries:
                self.contents[path] = _content(reading)
        if contract is None or not contract.needs_shape:
            verdict = Checker().judge(reading)
            finding = _finding(path, verdict)
            fields = verdict.fields
            if finding.valid and contract is not None and path != STDIN and fields is not None:
                finding.violations.extend(self._agreement(path, fields))  # type: ignore[arg-type]
                if finding.violations:
                    finding.digest = None
            return finding
        if self.shape is not None:
            bound = Bound(self.shape_path or "--shape", self.shape.shape_digest)
            return _finding(path, self.shape.judge(reading), [bound])
        shapes, source = self.shapes_for(path, contract.kind)
        if not shapes:
            verdict = Checker().judge(reading)
            finding = _finding(path, verdict)
            if verdict.violations or self.structure_only:
                finding.structure_only = self.structure_only
                return finding
            finding.violations.append(no_shape(contract.kind, source))
            return finding
        verdicts, bounds = [], []
        for shape_path in shapes:
            checker, bound = self._checker(shape_path)
            verdicts.append(checker.judge(reading))
            bounds.append(bound)
        return _combined(path, verdicts, bounds)

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
            if posixpath.basename(item.path) == SET_FILE:
                self.folders[posixpath.dirname(item.path)] = None
                continue
            try:
                data, reading = self._read(item.path)
            except UnreadablePath as exc:
                yield Finding(item.path, unreadable=exc.reason)
                continue
            except FibQuantKvError as exc:  # a document past the size limit: invalid
                self.judged.add(item.path)
                yield Finding(item.path, violations=[exc.violation])
                continue
            finding = self.judge(item.path, data, named=item.named, reading=reading)
            if finding is None:
                continue
            if item.path != STDIN:
                self.folders[posixpath.dirname(item.path)] = None
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
                    data, reading = self._read(dependent)
                except UnreadablePath as exc:
                    yield Finding(dependent, unreadable=exc.reason)
                    continue
                except FibQuantKvError as exc:
                    yield Finding(dependent, violations=[exc.violation], dependent_of=shape_path)
                    continue
                finding = self.judge(dependent, data, reading=reading)
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
        """The finding for a set file: its own problems, then each listed document's, each with
        its line and column in the file."""
        from fib_quant_kv.codec.json import located

        finding = self._check_set(loaded)
        finding.violations = located(loaded.data, finding.violations)
        return finding

    def _check_set(self, loaded: LoadedSet) -> Finding:
        finding = Finding(loaded.path, kind="set", violations=list(loaded.violations))
        if loaded.violations and loaded.digest is None:
            return finding
        digests: dict[str, str] = {}
        kinds: dict[str, tuple[str, str | None]] = {}
        for entry in loaded.entries.values():
            where = f"/documents/{entry.index}"
            if self.store.is_link(entry.path):
                finding.violations.append(
                    PATH.at(
                        f"{where}/path",
                        f"{entry.path} is a symbolic link: expected the document itself, in the "
                        "set's folder",
                    )
                )
                continue
            if entry.path in self.contents:
                found = self.contents[entry.path]
            else:
                try:
                    data, reading = self._read(entry.path)
                except UnreadablePath as exc:
                    finding.violations.append(
                        MISSING.at(f"{where}/path", f"{entry.path}: {exc.reason}")
                    )
                    continue
                except FibQuantKvError as exc:
                    finding.violations.append(
                        MISSING.at(f"{where}/path", f"{entry.path}: {exc.message}")
                    )
                    continue
                found = _content(
                    read(data, encoding_of(entry.path, data)) if reading is None else reading
                )
            if found is None:
                finding.violations.append(
                    KIND.at(
                        f"{where}/kind",
                        f"{entry.path} is no {entry.kind}: it cannot be decoded, or breaks its "
                        "schema (validate it for what is wrong)",
                    )
                )
                continue
            kind, role, digest = found
            kinds[entry.path] = kind, role
            if kind != entry.kind or (kind == "shape" and role != entry.role):
                finding.violations.append(
                    KIND.at(
                        f"{where}/kind",
                        f"{entry.path} is a {role + ' ' if role else ''}{kind}: expected a "
                        f"{entry.role + ' ' if entry.role else ''}{entry.kind}",
                    )
                )
            if digest != entry.digest:
                finding.violations.append(
                    DOCUMENT_DIGEST.at(
                        f"{where}/digest",
                        f"{entry.path} has digest {digest}: expected {entry.digest}",
                    )
                )
            digests[entry.path] = digest
        for entry in loaded.entries.values():
            if entry.kind == "layout" and entry.shapes and entry.role is not None:
                shape_kind = kinds.get(entry.shapes[0])
                if shape_kind is not None and shape_kind[1] != entry.role:
                    finding.violations.append(
                        BINDING.at(
                            f"/documents/{entry.index}/shapes/0",
                            f"a {entry.role} layout is bound to a {shape_kind[1]} shape",
                        )
                    )
        folder = posixpath.dirname(loaded.path)
        listed = set(loaded.entries)
        for name in self.store.names(folder):
            path = _entry_path(folder, name)
            if CONTRACT_NAME.search(name) and path not in listed:
                finding.violations.append(
                    UNLISTED.at("/documents", f"{name} is in the folder but not in the set")
                )
        recorded = {path: e.digest for path, e in loaded.entries.items()}
        expected = set_digest(
            (e.kind, e.role, e.digest, [recorded[s] for s in e.shapes if s in recorded])
            for e in loaded.entries.values()
        )
        if loaded.digest is not None and expected != loaded.digest:
            finding.violations.append(
                SET_DIGEST.at("/digest", f"expected {expected}, the digest of what is listed")
            )
        finding.rules_run = True
        finding.digest = loaded.digest if not finding.violations else None
        return finding


def _content(reading: Reading) -> Content:
    """(kind, role, digest of the canonical JSON) of a document whose schema holds."""
    if isinstance(reading, tuple):
        contract, fields, canonical = reading
    elif isinstance(reading, Violation) or reading.model is None or reading.contract is None:
        return None
    else:
        contract, fields, canonical = reading.contract, reading.model, encode(reading.model)
    role = getattr(fields, "role", None)
    return (
        contract.kind,
        None if role is None else str(role),
        domain_digest(contract.marker, canonical),
    )


def _finding(path: str, verdict: Verdict, bounds: list[Bound] | None = None) -> Finding:
    return Finding(
        path,
        kind=verdict.kind,
        violations=list(verdict.violations),
        digest=verdict.digest,
        rules_run=verdict.rules_run,
        shapes=bounds or [],
        verdict=verdict,
    )


def _combined(path: str, verdicts: list[Verdict], bounds: list[Bound]) -> Finding:
    """One finding for a document judged against several shapes: every distinct violation."""
    first = verdicts[0]
    violations: list[Violation] = []
    for verdict, bound in zip(verdicts, bounds, strict=True):
        for v in verdict.violations:
            if len(bounds) > 1 and v.rule.endswith(".shape_valid"):
                # Of several shapes, say which one is broken.
                v = dataclasses.replace(v, message=f"{bound.path}: {v.message}")
            if v not in violations:
                violations.append(v)
    return Finding(
        path,
        kind=first.kind,
        violations=violations,
        digest=None if violations else first.digest,
        rules_run=all(v.rules_run for v in verdicts),
        shapes=bounds,
        verdict=first,
    )


# The library's entry points -----------------------------------------------------------------


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
        checker = Checker.for_shape(read_limited(shape_path))
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


def create_set(folder: str | os.PathLike[str], store: Store | None = None) -> ContractSetV1:
    """A set of the contract documents in a folder, bound by the naming convention.

    Raises SetError naming the first document that is invalid or has no shape: a set lists
    only documents that hold together.
    """
    from fib_quant_kv_models import ContractSetV1, SetEntry

    # As the run names folders (a trailing slash would miss the set being replaced).
    root = posixpath.normpath(os.fspath(folder)) if os.fspath(folder) else ""
    run = Run(store or Files())
    run._sets[root] = None  # the set being made is not the one to pair by
    entries: list[tuple[str, Finding]] = []
    for name in run.store.names(root):
        if not CONTRACT_NAME.search(name):
            continue
        refused = entry_name_problem(name)
        if refused is not None:
            raise SetError(refused, path=_entry_path(root, name), rule=PATH.id)
        path = _entry_path(root, name)
        try:
            data = run.store.read(path)
        except UnreadablePath as exc:
            raise SetError(f"cannot read: {exc.reason}", path=path, rule=MISSING.id) from None
        finding = run.judge(path, data)
        if finding is None or not finding.valid:
            problem = finding.violations[0] if finding and finding.violations else None
            if finding is not None and problem is not None and problem.rule == NO_SHAPE.id:
                # What to do here is to add the shape; the run's options are not the set's.
                kind = finding.kind or "layout"
                _, source = run.shapes_for(path, kind)
                problem = NO_SHAPE.at("", f"a {kind} is judged against its shape: {source}")
            raise SetError(
                f"{name} cannot join a set: {problem.message if problem else 'not valid'}",
                path=path,
                pointer=problem.pointer if problem else "",
                rule=problem.rule if problem else KIND.id,
            )
        assert finding.digest is not None  # a valid finding has its digest
        entries.append((name, finding))
    if not entries:
        raise SetError(
            f"{root or '.'} holds no contract document: a set lists at least one (named like "
            "key_shape.json, value_layout.cbor or page_geometry.json); nothing was written",
            path=root or ".",
            rule=EMPTY.id,
        )
    digests = {_entry_path(root, name): f.digest or "" for name, f in entries}
    rows = []
    for name, finding in entries:
        assert finding.kind is not None
        shapes = [b.path for b in finding.shapes]
        unlisted = [s for s in shapes if s not in digests]
        if unlisted:
            raise SetError(
                f"{name} is bound to {unlisted[0]}, which the set would not list",
                path=_entry_path(root, name),
                rule=BINDING.id,
            )
        role = None
        if finding.kind != "geometry":
            shape = run.shape_model(shapes[0]) if shapes else finding.verdict_shape()
            role = None if shape is None else str(shape.role)
        rows.append((name, finding.kind, role, finding.digest or "", shapes))
    digest = set_digest(
        (kind, role, digest, [digests[s] for s in shapes]) for _, kind, role, digest, shapes in rows
    )
    return ContractSetV1(
        set_format=SET_FORMAT,
        digest=digest,
        documents=[
            SetEntry(
                path=name,
                kind=kind,
                role=role,
                digest=digest,
                shapes=[posixpath.basename(s) for s in shapes],
            )
            for name, kind, role, digest, shapes in rows
        ],
    )


def set_text(contract_set: ContractSetV1) -> bytes:
    """A set file's bytes: JSON in field order, two-space indented, ending in a newline."""
    return (contract_set.model_dump_json(indent=2) + "\n").encode("utf-8")
