"""A set file's check: what it lists against what the listed documents hold."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from typing import TypeAlias

from fib_quant_kv.codec.json import located
from fib_quant_kv.errors import FibQuantKvError
from fib_quant_kv.files import CONTRACT_NAME, UnreadablePath, encoding_of
from fib_quant_kv.reading import Reading, read
from fib_quant_kv.result import Verdict
from fib_quant_kv.rules.sets import (
    BINDING,
    DOCUMENT_DIGEST,
    KIND,
    MISSING,
    PATH,
    SET_DIGEST,
    UNLISTED,
)
from fib_quant_kv.sets.finding import Finding
from fib_quant_kv.sets.setfile import LoadedSet, entry_path, set_digest
from fib_quant_kv.sets.stores import Store
from fib_quant_kv.verdict import SHAPELESS

# What a set file's check needs of a listed document: (kind, role, digest of its canonical JSON),
# or None when it cannot be decoded or breaks its schema.
Content: TypeAlias = "tuple[str, str | None, str] | None"
# A document's bytes, and (when a checker read it first) its reading and its verdict without a
# shape, which is final for a shape; and how a check reads a listed document the run has not
# judged.
Judged: TypeAlias = "tuple[bytes, Reading | None, Verdict | None]"
ReadDocument: TypeAlias = "Callable[[str], Judged]"


def check_set(
    loaded: LoadedSet,
    store: Store,
    contents: Mapping[str, Content],
    read_document: ReadDocument,
) -> Finding:
    """The finding for a set file: its own problems, then each listed document's (its content
    taken from `contents` where a run judged it already, else read), each with its line and
    column in the file."""
    finding = _check(loaded, store, contents, read_document)
    finding.violations = located(loaded.data, finding.violations)
    return finding


def _check(
    loaded: LoadedSet,
    store: Store,
    contents: Mapping[str, Content],
    read_document: ReadDocument,
) -> Finding:
    finding = Finding(loaded.path, kind="set", violations=list(loaded.violations))
    if loaded.violations and loaded.digest is None:
        return finding
    digests: dict[str, str] = {}
    kinds: dict[str, tuple[str, str | None]] = {}
    for entry in loaded.entries.values():
        where = f"/documents/{entry.index}"
        if store.is_link(entry.path):
            finding.violations.append(
                PATH.at(
                    f"{where}/path",
                    f"{entry.path} is a symbolic link: expected the document itself, in the "
                    "set's folder",
                )
            )
            continue
        if entry.path in contents:
            found = contents[entry.path]
        else:
            try:
                data, reading, judged = read_document(entry.path)
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
            if judged is None:
                if reading is None:
                    reading = read(data, encoding_of(entry.path, data))
                judged = SHAPELESS.judge(reading)
            found = content(judged)
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
    for name in store.names(folder):
        path = entry_path(folder, name)
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


def content(verdict: Verdict) -> Content:
    """(kind, role, digest of the canonical JSON) of a document whose schema holds."""
    fields = verdict.fields
    found = verdict.canonical_digest()
    if verdict.kind is None or fields is None or found is None:
        return None
    role = getattr(fields, "role", None)
    return verdict.kind, None if role is None else str(role), found
