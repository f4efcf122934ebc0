"""Pairing: which shape each layout and geometry of a run is judged against, each shape read
and judged once."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TypeAlias

from fib_quant_kv.errors import FibQuantKvError
from fib_quant_kv.files import SET_FILE, UnreadablePath, encoding_of
from fib_quant_kv.reading import read
from fib_quant_kv.rules.sets import MISSING
from fib_quant_kv.sets.names import FolderNames, geometry_base, prefer, split_name
from fib_quant_kv.sets.setcheck import Content, Judged
from fib_quant_kv.sets.setfile import LoadedSet, entry_path, load_set
from fib_quant_kv.sets.stores import Files, Store
from fib_quant_kv.verdict import SHAPELESS, Checker

if TYPE_CHECKING:
    from fib_quant_kv.result import Verdict
    from fib_quant_kv_models import KvTensorShapeV1

# What a run notes as it judges: folders, shapes named, paths judged, files skipped (and the
# first of them), and what the documents its folders' set files list hold.
Notes: TypeAlias = "tuple[dict[str, None], list[str], set[str], int, list[str], dict[str, Content]]"

# How many skipped files a run names.
SKIPPED_NAMED = 5


class Pairing:
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
        # The checker of each shape, made from its verdict when the run judged it as a
        # document, or read and judged for a document paired with it: a shape is judged once.
        self._checkers: dict[str, Checker] = {}
        # A valid shape the run judged as a document, its verdict as its own rules left it:
        # its checker is made when a document first pairs with it (most shapes of a walk pair
        # with none, and a checker kept for each cost ~2 us a file of a walk).
        self._valid_shapes: dict[str, Verdict] = {}
        self._sets: dict[str, LoadedSet | None] = {}
        self._names: dict[str, FolderNames] = {}
        # What the paths judged so far call for: their folders (in order, for set files), the
        # shapes named on the command line (for their dependents), and every path judged.
        self.folders: dict[str, None] = {}
        self.named_shapes: list[str] = []
        self.judged: set[str] = set()
        # The content of each judged document its folder's set file lists: the set's check
        # takes it from here rather than read and decode the document a second time.
        self.contents: dict[str, Content] = {}
        # Shape files read and judged for a checker before the run reached them as documents:
        # it takes their bytes and verdict from here, so a file is read, decoded, judged and
        # digested once, and reported as the bytes it paired by.
        self._unjudged: dict[str, Judged] = {}

    # Pairing --------------------------------------------------------------------------------

    def _set_of(self, folder: str) -> LoadedSet | None:
        if folder not in self._sets:
            path = entry_path(folder, SET_FILE)
            has = self.bindings is None and self.store.has(path)
            self._sets[folder] = load_set(self.store, path) if has else None
        return self._sets[folder]

    def _names_in(self, folder: str) -> FolderNames:
        """A folder's names as naming pairs them, indexed once a run."""
        names = self._names.get(folder)
        if names is None:
            names = self._names[folder] = FolderNames(self.store.names(folder))
        return names

    def _checker(self, path: str) -> Checker:
        known = self._checkers.get(path)
        if known is not None:
            return known
        shape = self._valid_shapes.pop(path, None)
        if shape is not None:
            known = Checker.for_valid_shape(shape, name=path)
        else:
            try:
                data = self.store.read(path)
                reading = read(data, encoding_of(path, data))
                verdict = SHAPELESS.judge(reading)
                if path not in self.judged:
                    self._unjudged[path] = data, reading, verdict
                known = Checker.for_verdict(verdict, strict=False, name=path)
            except UnreadablePath as exc:
                missing = MISSING.at("", f"{path}: cannot read: {exc.reason}")
                known = Checker.unusable([missing], name=path)
            except FibQuantKvError as exc:  # a shape past the size limit
                known = Checker.unusable([exc.violation], name=path)
        self._checkers[path] = known
        return known

    def _read(self, path: str, regular: bool = False) -> Judged:
        """A document's bytes, and its reading and shapeless verdict if a checker made them
        (`regular`: a walk listed it as a regular file)."""
        found = self._unjudged.pop(path, None)
        return (self.store.read(path, regular=regular), None, None) if found is None else found

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
        parts = split_name(name)
        if parts is None:
            return [], (
                f"no shape: {name} is not named like <prefix>{kind}.json, so no shape "
                "can be found beside it"
            )
        prefix, _, ext = parts
        names = self._names_in(folder)
        if kind == "layout":
            wanted = f"{prefix}shape"
            found = names.named(prefix, "shape")
            looked = f"{wanted}.json or {wanted}.cbor"
        else:
            base = geometry_base(prefix)
            found = names.shapes_starting(base)
            looked = f"{base}*shape.json or .cbor"
        # Never the document itself, whatever its name says (a layout in key_shape.json).
        found = [n for n in found if n != name]
        chosen = [entry_path(folder, n) for n in prefer(found, ext)]
        if chosen:
            return chosen, "the naming convention"
        return [], f"no shape: looked for {looked} in {folder or '.'}"

    def shape_model(self, path: str) -> KvTensorShapeV1 | None:
        """The model of a shape file this run has read."""
        return self._checker(path).shape

    def dependents_of(self, shape_path: str) -> list[str]:
        """The layouts and geometries that belong to a shape: listed, bound, or by name."""
        folder, name = posixpath.split(shape_path)
        if self.bindings is not None:
            return sorted(p for p, shapes in self.bindings.items() if shape_path in shapes)
        loaded = self._set_of(folder)
        if loaded is not None and shape_path in loaded.entries:
            return loaded.dependents(shape_path)
        parts = split_name(name)
        if parts is None or parts[1] != "shape":
            return []
        return [entry_path(folder, other) for other in self._names_in(folder).dependents(parts[0])]

    def needers_of(self, path: str, removed: set[str]) -> list[str]:
        """What still needs a document: its folder's set file if it lists it, and, for a shape,
        the layouts and geometries bound to it or named like it (leaving out what is removed)."""
        folder, name = posixpath.split(path)
        needers: list[str] = []
        loaded = self._set_of(folder)
        if loaded is not None and path in loaded.entries:
            needers.append(loaded.path)
        parts = split_name(name)
        if parts is not None and parts[1] == "shape":
            needers.extend(self.dependents_of(path))
        return [n for n in dict.fromkeys(needers) if n not in removed and n != path]

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
        parts = split_name(name)
        if parts is None or parts[1] != "shape":
            return None
        prefix, _, ext = parts
        for mine, theirs in (("key", "value"), ("value", "key")):
            for sep in "_-":
                if prefix.endswith(mine + sep):
                    stem = prefix[: -len(mine + sep)] + theirs + sep + "shape"
                    chosen = prefer(self._names_in(folder).with_stem(stem), ext)
                    return entry_path(folder, chosen[0]) if chosen else None
        return None
