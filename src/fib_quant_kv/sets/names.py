"""Pairing by name: which shape a layout or geometry belongs to, as `plan` names them."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

from fib_quant_kv.files import SUFFIXES
from fib_quant_kv.rules.sets import KIND_WORDS


def split_name(name: str) -> tuple[str, str, str] | None:
    """(prefix, kind word, extension) of a name like llama_key_layout.json, else None."""
    stem, ext = posixpath.splitext(name)
    if ext not in SUFFIXES:
        return None
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
