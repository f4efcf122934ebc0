"""Set files: one read, its structure and its bindings checked."""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from fib_quant_kv.digests import domain_digest
from fib_quant_kv.errors import FibQuantKvError, Violation, pointer
from fib_quant_kv.files import UnreadablePath
from fib_quant_kv.rules.sets import BINDING, KIND, MALFORMED, PATH, SET_FORMAT
from fib_quant_kv.sets.stores import Store


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


def entry_path(folder: str, name: str) -> str:
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
        resolved = entry_path(folder, listed.path)
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
                shapes.append(entry_path(folder, shape))
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
        loaded.violations.extend(binding_problems(entry, loaded.entries))
    return loaded


def binding_problems(entry: SetEntryView, entries: Mapping[str, SetEntryView]) -> list[Violation]:
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
