"""The commands: each reads its inputs, asks the library, and hands the result to a reporter.

They raise library errors (exit 1, said by fib_quant_kv.cli.main), or Unusable and
UnreadablePath (exit 2); nothing here decides how an error is shown.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from fib_quant_kv.cli.plan_table import plan_lines
from fib_quant_kv.files import STDIN, read_limited

if TYPE_CHECKING:
    from fib_quant_kv.contracts import Document
    from fib_quant_kv_models import KvTensorShapeV1

EXIT_VALID, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class Unusable(Exception):
    """The request cannot be carried out as asked (usage, output): exit 2 after saying why."""


@contextmanager
def about(path: str) -> Iterator[None]:
    """Name the file a library error is about, where the library could not know it."""
    from fib_quant_kv.errors import FibQuantKvError

    try:
        yield
    except FibQuantKvError as exc:
        if exc.path is None:
            exc.path = path
        raise


def _stdin_once(*paths: str | None) -> None:
    if sum(path == STDIN for path in paths) > 1:
        raise Unusable("standard input can be read once: name at most one input as -")


def _shape(path: str) -> KvTensorShapeV1:
    """A valid shape from a file; the file is named in any error."""
    from fib_quant_kv.verdict import Checker

    data = read_limited(path)
    with about(path):
        shape = Checker.for_shape(data).shape
    assert shape is not None  # a strict checker has a valid shape
    return shape


def _document(path: str) -> Document:
    from fib_quant_kv.errors import DecodeError
    from fib_quant_kv.files import encoding_note, encoding_of
    from fib_quant_kv.verdict import decode

    data = read_limited(path)
    with about(path):
        try:
            return decode(data, encoding_of(path, data))
        except DecodeError as exc:
            note = encoding_note(path, data)
            if note is not None:
                exc.message = f"{exc.message}; {note}"
            raise


def _shapes_for(path: str, doc: Document, given: str | None) -> list[KvTensorShapeV1]:
    """The shapes a layout or geometry is judged against: given, listed in its set, or named
    like it beside it. None is an error that says what was looked for."""
    from fib_quant_kv.contracts import contract_of
    from fib_quant_kv.sets import Run, no_shape

    contract = contract_of(doc)
    if not contract.needs_shape:
        return []
    if given is not None:
        return [_shape(given)]
    paths: list[str]
    if path == STDIN:
        paths, source = [], "no shape: standard input has no folder to find one in"
    else:
        paths, source = Run().shapes_for(path, contract.kind)
    if not paths:
        raise no_shape(contract.kind, source).to_error(path)
    return [_shape(p) for p in paths]


def _write(data: bytes, out: str, *, binary: bool) -> None:
    """Write to standard output (never binary to a terminal) or, atomically, to a file."""
    from fib_quant_kv.writing import WriteRefused, write_atomic

    if out == STDIN:
        if binary and sys.stdout.isatty():
            raise Unusable(
                "will not write binary CBOR to a terminal: pass -o FILE, or redirect standard "
                "output"
            )
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        return
    try:
        write_atomic(data, out)
    except WriteRefused as exc:
        raise Unusable(str(exc)) from None


def _json_line(doc: Document) -> None:
    from fib_quant_kv.digests import encode

    sys.stdout.write(encode(doc).decode("utf-8") + "\n")


def dtype(text: str) -> str:
    """A --dtype value, in the contract's spelling or a config's (float16, torch.bfloat16)."""
    from fib_quant_kv.hf.config import DTYPES

    name = text.removeprefix("torch.")
    if name not in DTYPES:
        raise argparse.ArgumentTypeError(
            f"unknown dtype {text!r}: expected one of {', '.join(sorted(DTYPES))}"
        )
    return DTYPES[name]


# Commands ------------------------------------------------------------------------------------


def validate(args: argparse.Namespace) -> int:
    from fib_quant_kv.cli import parallel
    from fib_quant_kv.cli.reporters import REPORTERS, Tally
    from fib_quant_kv.files import Named, UnreadablePath, expand
    from fib_quant_kv.sets import Finding, Run, Store
    from fib_quant_kv.verdict import Checker

    paths: list[str] = args.paths or ([] if not args.git else ["."])
    if not paths:
        raise Unusable("validate needs a PATH (a file, a folder, or -), or --git")
    _stdin_once(args.shape, *paths)
    checker = None
    if args.shape is not None:
        data = read_limited(args.shape)
        with about(args.shape):
            # Read by the hot path where it can be: no model, so no pydantic, for such a shape.
            checker = Checker.for_shape(data, name=args.shape)
    store: Store | None = None
    items: list[Named | UnreadablePath]
    if args.git:
        from fib_quant_kv.gitindex import GitUnavailable, Tracked

        if STDIN in paths:
            raise Unusable("--git judges the files git tracks: - (standard input) is none")
        try:
            tracked = Tracked(paths)
        except GitUnavailable as exc:
            raise Unusable(f"--git: {exc}") from None
        store, items = tracked, list(tracked.items())
    else:
        items = list(expand(paths))
    run = Run(store, shape=checker, shape_path=args.shape, structure_only=args.structure_only)
    make_reporter, _ = REPORTERS[args.output_format]
    reporter = make_reporter(sys.stdout, sys.stderr, args.quiet)
    tally = Tally()

    def report(finding: Finding) -> None:
        tally.add(finding)
        reporter.finding(finding)

    reporter.begin()
    if parallel.worth_it(items, sys.stdout):
        parallel.judge(run, items, report)
    else:
        for finding in run.judge_items(items):
            report(finding)
    for finding in run.finish():
        report(finding)
    if args.git:
        from fib_quant_kv.gitindex import GitUnavailable, removals
        from fib_quant_kv.sets.run import removed_by

        try:
            removed = removals()
        except GitUnavailable as exc:
            raise Unusable(f"--git: {exc}") from None
        for finding in removed_by(run, removed):
            report(finding)
    tally.skipped = run.skipped
    if not (tally.invalid or tally.unreadable or tally.checked):
        tally.failure = _nothing_judged(paths, args.git, run.skipped, run.skipped_names)
    reporter.finish(tally)
    if tally.invalid:
        return EXIT_INVALID
    if tally.unreadable:
        return EXIT_USAGE
    if tally.failure is not None:
        raise Unusable(tally.failure)
    return EXIT_VALID


def _nothing_judged(paths: list[str], git: bool, skipped: int, names: list[str]) -> str:
    """Why a run that judged no document fails: what it looked at, and what it skipped."""
    where = ", ".join(paths)
    if git:
        looked = f"git tracks no contract document under {where}"
    else:
        looked = f"no contract document under {where}"
    if skipped:
        more = f", ... ({skipped} in all)" if skipped > len(names) else ""
        looked += (
            f": {skipped} JSON or CBOR file{'s' if skipped != 1 else ''} looked at, none a "
            f"contract document ({', '.join(names)}{more})"
        )
    else:
        looked += ": no JSON or CBOR file named like a contract document there"
    return (
        f"nothing to judge: {looked}; expected files named like key_shape.json, "
        "value_layout.cbor or page_geometry.json, or documents with a contract marker"
    )


def digest(args: argparse.Namespace) -> int:
    from fib_quant_kv.verdict import judge_model

    _stdin_once(args.shape, args.file)
    doc = _document(args.file)
    shapes = _shapes_for(args.file, doc, args.shape)
    with about(args.file):
        # A geometry is valid against every shape it serves.
        print(judge_model(doc, shapes).raise_first().digest_in(args.encoding))
    return EXIT_VALID


def convert(args: argparse.Namespace) -> int:
    from fib_quant_kv.digests import encode
    from fib_quant_kv.verdict import judge_model

    _stdin_once(args.shape, args.file)
    doc = _document(args.file)
    if not args.structure_only:
        shapes = _shapes_for(args.file, doc, args.shape)
        with about(args.file):
            judge_model(doc, shapes).raise_first()
    data = encode(doc, args.to)
    _write(data + b"\n" if args.to == "json" else data, args.output, binary=args.to == "cbor")
    return EXIT_VALID


def layout(args: argparse.Namespace) -> int:
    from fib_quant_kv.derive import canonical_layout

    _json_line(canonical_layout(_shape(args.shape)))
    return EXIT_VALID


def geometry(args: argparse.Namespace) -> int:
    from fib_quant_kv.derive import new_page_geometry
    from fib_quant_kv.errors import FibQuantKvError
    from fib_quant_kv.verdict import validate as validate_doc

    shape = _shape(args.shape)
    try:
        made = new_page_geometry(args.tokens_per_page, shape.head_dim, args.encoded_block_bytes)
        validate_doc(made, shape)
    except FibQuantKvError as exc:
        # The values came from the options: name the option that set the field.
        option = "--" + exc.pointer.lstrip("/").replace("_", "-")
        raise Unusable(f"{option}: {exc.message}") from None
    _json_line(made)
    return EXIT_VALID


def page_count(args: argparse.Namespace) -> int:
    from fib_quant_kv.contracts import PAGE_GEOMETRY_SCHEMA
    from fib_quant_kv.derive import page_count as pages_of
    from fib_quant_kv.reading import expected_contract

    _stdin_once(args.shape, args.geometry)
    shape = _shape(args.shape)
    doc = _document(args.geometry)
    with about(args.geometry):
        if doc.schema_version != PAGE_GEOMETRY_SCHEMA:
            raise expected_contract(PAGE_GEOMETRY_SCHEMA, doc.schema_version)
        print(pages_of(doc, shape))
    return EXIT_VALID


def plan(args: argparse.Namespace) -> int:
    from fib_quant_kv.hf.config import CONFIG_FILE, parse_config
    from fib_quant_kv.hf.plan import PlanOptionError, plan_from_hf_config

    if args.format != "json" and args.out is None:
        raise Unusable(
            f"--format {args.format} chooses the encoding of the files --out writes: pass --out"
        )
    if (args.tokens_per_page is None) != (args.encoded_block_bytes is None):
        raise Unusable("--tokens-per-page and --encoded-block-bytes go together: pass both")
    if args.tokens_per_page is not None and args.tokens_per_page > args.tokens:
        raise Unusable(
            f"--tokens-per-page {args.tokens_per_page} is more than --tokens {args.tokens}"
        )
    # A downloaded model's folder holds its config.json.
    path = args.config
    if path != STDIN and os.path.isdir(path):
        path = os.path.join(path, CONFIG_FILE)
        if not os.path.exists(path):
            raise Unusable(
                f"{args.config}: a folder without a {CONFIG_FILE}: expected a model folder"
            )
    raw = read_limited(path)
    with about(path):
        try:
            planned = plan_from_hf_config(
                parse_config(raw, path),
                tokens=args.tokens,
                batch=args.batch,
                dtype=args.dtype,
                tokens_per_page=args.tokens_per_page,
                encoded_block_bytes=args.encoded_block_bytes,
                family=args.family,
                class_defaults=args.class_defaults,
            )
        except PlanOptionError as exc:
            raise Unusable(f"--tokens-per-page: {exc}") from None
    if args.out is None:
        for name, value in planned.digests.items():
            print(f"{name}: {value}")
    else:
        from fib_quant_kv.writing import WriteRefused, write_plan

        try:
            written = write_plan(planned, args.out, args.format)
        except WriteRefused as exc:
            raise Unusable(str(exc)) from None
        for path, value in written:
            print(f"{path}: {value}")
    print()
    for line in plan_lines(planned):
        print(line)
    return EXIT_VALID


def make_set(args: argparse.Namespace) -> int:
    from fib_quant_kv.files import SET_FILE
    from fib_quant_kv.sets import create_set, set_text

    if not os.path.isdir(args.folder):
        raise Unusable(f"{args.folder}: not a folder")
    contract_set = create_set(args.folder)
    target = os.path.join(args.folder, SET_FILE)
    _write(set_text(contract_set), target, binary=True)
    print(f"{target}: {contract_set.digest}")
    return EXIT_VALID


def rule(args: argparse.Namespace) -> int:
    from fib_quant_kv.reference import explain, rule_table
    from fib_quant_kv.rules import RULES

    if args.rule_id is None:
        for line in rule_table():
            print(line)
        return EXIT_VALID
    if args.rule_id not in RULES:
        raise Unusable(f"unknown rule id {args.rule_id!r}: `fib-quant-kv rule` lists the ids")
    sys.stdout.write(explain(RULES[args.rule_id]))
    return EXIT_VALID


def schema(args: argparse.Namespace) -> int:
    from fib_quant_kv.contracts import CONTRACTS, markers, schema_text
    from fib_quant_kv.sets import SET_SCHEMA

    if args.marker is None:
        for marker in markers():
            print(f"{marker}\t{CONTRACTS[marker].kind}")
        print(f"{SET_SCHEMA}\tset file")
        return EXIT_VALID
    if args.marker not in (*CONTRACTS, SET_SCHEMA):
        raise Unusable(
            f"unknown schema {args.marker!r}: expected one of {', '.join([*markers(), SET_SCHEMA])}"
        )
    sys.stdout.write(schema_text(args.marker))
    return EXIT_VALID
