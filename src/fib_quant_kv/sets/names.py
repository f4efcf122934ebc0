"""Pairing by name: which shape a layout or geometry belongs to, as `plan` names them."""

from __future__ import annotations

import bisect
import posixpath
from collections.abc import Iterable

from fib_quant_kv.files import SUFFIXES
from fib_quant_kv.rules.sets import KIND_WORDS


def split_name(name: str) -> tuple[str, str, str] | None:
    """(prefix, kind word, extension) of a name like llama_key_layout.json, else None."""
    # What posixpath.splitext would split off, at a fraction of its cost (a run asks this of
    # every shape): a stem that ends in a kind word has no leading dot for splitext to keep.
    ext = name[name.rfind(".") :]
    if ext not in SUFFIXES:
        return None
    stem = name[: -len(ext)]
    for word in KIND_WORDS:
        if stem.endswith(word):
            prefix = stem[: -len(word)]
            if prefix == "" or prefix[-1] in "_-":
                return prefix, word, ext
    return None


def geometry_base(prefix: str) -> str:
    """The prefix a geometry shares with its shapes: page_geometry's `page_` is its own."""
    for own in ("page_", "page-"):
        if prefix.endswith(own):
            return prefix[: -len(own)]
    return prefix


def prefer(names: Iterable[str], ext: str) -> list[str]:
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


class FolderNames:
    """A folder's file names, indexed once by what naming pairs them by.

    Each question then costs the names it finds, not the folder's size: asked of every
    document in a folder of thousands, a scan of the listing each time made a run quadratic
    (a folder of 2,000 documents took seconds).
    """

    def __init__(self, names: Iterable[str]) -> None:
        self._by_stem: dict[str, list[str]] = {}
        self._by_parts: dict[tuple[str, str], list[str]] = {}
        # Geometries by the prefix they share with their shapes (see geometry_base).
        self._geometries: dict[str, list[str]] = {}
        shapes = []
        for name in names:
            self._by_stem.setdefault(posixpath.splitext(name)[0], []).append(name)
            parts = split_name(name)
            if parts is None:
                continue
            prefix, word, _ = parts
            self._by_parts.setdefault((prefix, word), []).append(name)
            if word == "geometry":
                self._geometries.setdefault(geometry_base(prefix), []).append(name)
            elif word == "shape":
                shapes.append(name)
        # Sorted, so the shapes whose names start with a text are one slice.
        self._shapes = sorted(shapes)

    def named(self, prefix: str, word: str) -> list[str]:
        """The names <prefix><word>.json and .cbor (key_ and shape: key_shape.json)."""
        return list(self._by_parts.get((prefix, word), ()))

    def with_stem(self, stem: str) -> list[str]:
        """The names that are this stem and an extension."""
        return list(self._by_stem.get(stem, ()))

    def shapes_starting(self, text: str) -> list[str]:
        """The shapes whose names start with this text (a geometry's shapes, by its base)."""
        found = []
        for name in self._shapes[bisect.bisect_left(self._shapes, text) :]:
            if not name.startswith(text):
                break
            found.append(name)
        return found

    def dependents(self, prefix: str) -> list[str]:
        """The layouts and geometries a shape of this prefix belongs to, in name order: its
        prefix's layouts, and every geometry whose base starts its prefix."""
        found = self.named(prefix, "layout")
        for end in range(len(prefix) + 1):
            found += self._geometries.get(prefix[:end], ())
        return sorted(found)
