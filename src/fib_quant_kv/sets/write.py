"""Writing a set file: a folder's documents judged, then listed with their digests and bindings."""

from __future__ import annotations

import os
import posixpath
from typing import TYPE_CHECKING

from fib_quant_kv.errors import SetError
from fib_quant_kv.files import CONTRACT_NAME, UnreadablePath
from fib_quant_kv.rules.sets import BINDING, EMPTY, KIND, MISSING, NO_SHAPE, PATH, SET_FORMAT
from fib_quant_kv.sets.finding import Finding
from fib_quant_kv.sets.run import Run
from fib_quant_kv.sets.setfile import entry_name_problem, entry_path, set_digest
from fib_quant_kv.sets.stores import Files, Store

if TYPE_CHECKING:
    from fib_quant_kv_models import ContractSetV1


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
            raise SetError(refused, path=entry_path(root, name), rule=PATH.id)
        path = entry_path(root, name)
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
    digests = {entry_path(root, name): f.digest or "" for name, f in entries}
    rows = []
    for name, finding in entries:
        assert finding.kind is not None
        shapes = [b.path for b in finding.shapes]
        unlisted = [s for s in shapes if s not in digests]
        if unlisted:
            raise SetError(
                f"{name} is bound to {unlisted[0]}, which the set would not list",
                path=entry_path(root, name),
                rule=BINDING.id,
            )
        role = None
        if finding.kind != "geometry":
            shape = run.shape_model(shapes[0]) if shapes else finding.valid_shape()
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
