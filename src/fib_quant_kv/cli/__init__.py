"""The fib-quant-kv command line: a thin shell over the library, with check-jsonschema's manners."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from fib_quant_kv.cli.inputs import STDIN, UnreadablePath, read_limited, sources
from fib_quant_kv.cli.report import REPORTERS, Outcome

if TYPE_CHECKING:
    from fib_quant_kv.contracts import Document
    from fib_quant_kv.verdict import Checker
    from fib_quant_kv_models import KvTensorShapeV1

EXIT_VALID, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class Invalid(Exception):
    """A document named on the command line is invalid: exit 1 after saying why."""


class Unusable(Exception):
    """The request cannot be carried out (usage, unreadable path): exit 2 after saying why."""


def _read(path: str) -> bytes:
    try:
        return read_limited(path)
    except UnreadablePath as exc:
        raise Unusable(str(exc)) from None


def _load(path: str) -> Document:
    from fib_quant_kv.errors import FibQuantKvError
    from fib_quant_kv.verdict import decode

    try:
        return decode(_read(path))
    except FibQuantKvError as exc:
        exc.path = path
        raise Invalid(str(exc)) from None


def _load_shape(path: str | None) -> KvTensorShapeV1 | None:
    if path is None:
        return None
    from fib_quant_kv.errors import FibQuantKvError
    from fib_quant_kv.verdict import validate
    from fib_quant_kv_models import KvTensorShapeV1

    shape = _load(path)
    if not isinstance(shape, KvTensorShapeV1):
        raise Invalid(f"{path}::/schema_version: --shape expects a fib_quant_kv_tensor_shape_v1")
    try:
        validate(shape)
    except FibQuantKvError as exc:
        exc.path = path
        raise Invalid(str(exc)) from None
    return shape


def _write_bytes(data: bytes, out: str | None) -> None:
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    # Write beside the target and rename over it: a reader never sees a partial file, and a
    # failure leaves no temporary file behind.
    import tempfile  # only writing needs it; validating many files starts faster without

    folder = os.path.dirname(os.path.abspath(out))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fib-quant-kv-", suffix=".tmp")
    except OSError as exc:
        raise Unusable(f"{out}: cannot write: {exc.strerror or exc}") from None
    try:
        # mkstemp makes the file private; give it the mode any new file of the user's gets.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, out)
    except OSError as exc:
        os.unlink(tmp)
        raise Unusable(f"{out}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        os.unlink(tmp)
        raise


def _json_line(doc: Document) -> None:
    from fib_quant_kv.digests import encode

    sys.stdout.write(encode(doc).decode("utf-8") + "\n")


# Commands ------------------------------------------------------------------------------------


def _checker(path: str | None) -> Checker:
    from fib_quant_kv.errors import FibQuantKvError
    from fib_quant_kv.verdict import Checker

    if path is None:
        return Checker()
    try:
        # Read by the hot path where it can be: no model, so no pydantic, for such a shape.
        return Checker.for_shape(_read(path))
    except FibQuantKvError as exc:
        exc.path = path
        raise Invalid(str(exc)) from None


def cmd_validate(args: argparse.Namespace) -> int:
    checker = _checker(args.shape)
    reporter = REPORTERS[args.format](sys.stdout, sys.stderr)
    checked = invalid = unreadable = 0
    for source in sources(args.paths):
        if source.data is None:
            unreadable += 1
            reporter.report(Outcome(source.path, unreadable=source.problem))
            continue
        verdict = checker.check(source.data)
        checked += 1
        invalid += bool(verdict.violations)
        reporter.report(Outcome(source.path, verdict=verdict))
    reporter.finish(checked, invalid, unreadable)
    if invalid:
        return EXIT_INVALID
    return EXIT_USAGE if unreadable else EXIT_VALID


def cmd_digest(args: argparse.Namespace) -> int:
    from fib_quant_kv.contracts import contract_of
    from fib_quant_kv.errors import FibQuantKvError
    from fib_quant_kv.verdict import digest

    shape = _load_shape(args.shape)
    doc = _load(args.file)
    contract = contract_of(doc)
    if contract.needs_shape and shape is None:
        raise Unusable(
            f"{args.file}: a {contract.kind} has a digest only against its shape: pass --shape"
        )
    try:
        print(digest(doc, shape, encoding=args.encoding))
    except FibQuantKvError as exc:
        exc.path = args.file
        raise Invalid(str(exc)) from None
    return EXIT_VALID


def cmd_convert(args: argparse.Namespace) -> int:
    from fib_quant_kv.digests import encode

    data = encode(_load(args.file), args.to)
    if args.to == "json":
        data += b"\n"
    _write_bytes(data, args.output)
    return EXIT_VALID


def cmd_layout(args: argparse.Namespace) -> int:
    from fib_quant_kv.derive import canonical_layout

    shape = _load_shape(args.shape)
    assert shape is not None
    _json_line(canonical_layout(shape))
    return EXIT_VALID


def cmd_geometry(args: argparse.Namespace) -> int:
    from fib_quant_kv.derive import new_page_geometry
    from fib_quant_kv.errors import FibQuantKvError
    from fib_quant_kv.verdict import validate

    shape = _load_shape(args.shape)
    assert shape is not None
    try:
        geometry = new_page_geometry(args.tokens_per_page, shape.head_dim, args.encoded_block_bytes)
        validate(geometry, shape)
    except FibQuantKvError as exc:
        raise Unusable(f"geometry {exc.pointer or '/'}: {exc.message}") from None
    _json_line(geometry)
    return EXIT_VALID


def cmd_page_count(args: argparse.Namespace) -> int:
    from fib_quant_kv.derive import page_count
    from fib_quant_kv.errors import FibQuantKvError
    from fib_quant_kv_models import KvPageGeometryV1

    shape = _load_shape(args.shape)
    assert shape is not None
    geometry = _load(args.geometry)
    if not isinstance(geometry, KvPageGeometryV1):
        raise Invalid(f"{args.geometry}::/schema_version: expected fib_quant_kv_page_geometry_v1")
    try:
        print(page_count(geometry, shape))
    except FibQuantKvError as exc:
        exc.path = args.geometry
        raise Invalid(str(exc)) from None
    return EXIT_VALID


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{n} B"
        size /= 1024
    raise AssertionError("unreachable")


def cmd_plan(args: argparse.Namespace) -> int:
    from fib_quant_kv.digests import encode
    from fib_quant_kv.errors import FibQuantKvError
    from fib_quant_kv.hf_config import parse_config
    from fib_quant_kv.plan import plan_from_hf_config

    if (args.tokens_per_page is None) != (args.encoded_block_bytes is None):
        raise Unusable("--tokens-per-page and --encoded-block-bytes go together")
    if args.tokens_per_page is not None and args.tokens_per_page > args.tokens:
        raise Unusable(
            f"--tokens-per-page {args.tokens_per_page} is more than --tokens {args.tokens}"
        )
    raw = _read(args.config)  # an unreadable path exits 2, as everywhere
    try:
        plan = plan_from_hf_config(
            parse_config(raw, args.config),
            tokens=args.tokens,
            batch=args.batch,
            dtype=args.dtype,
            tokens_per_page=args.tokens_per_page,
            encoded_block_bytes=args.encoded_block_bytes,
        )
    except FibQuantKvError as exc:
        exc.path = exc.path or args.config
        raise Invalid(str(exc)) from None
    for name, doc in plan.documents.items():
        if args.out is not None:
            os.makedirs(args.out, exist_ok=True)
            data = encode(doc, args.format) + (b"\n" if args.format == "json" else b"")
            target = os.path.join(args.out, f"{name}.{args.format}")
            _write_bytes(data, target)
            print(f"{target}: {plan.digests[name]}")
        else:
            print(f"{name}: {plan.digests[name]}")
    header = ("cache", "elements", "source bytes", "raw f32 bytes", "pages", "encoded", "ratio")
    rows = [
        (
            size.role,
            f"{size.elements:,}",
            _human(size.source_bytes),
            _human(size.raw_f32_bytes),
            "-" if size.pages is None else f"{size.pages:,}",
            _human(size.encoded_bytes),
            "-" if size.compression is None else f"{size.compression:.2f}x",
        )
        for size in plan.sizes
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    print()
    for row in (header, *rows):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    return EXIT_VALID


def cmd_schema(args: argparse.Namespace) -> int:
    from fib_quant_kv.contracts import CONTRACTS, markers, schema_text

    if args.marker is None:
        for marker in markers():
            print(f"{marker}\t{CONTRACTS[marker].kind}")
        return EXIT_VALID
    if args.marker not in CONTRACTS:
        raise Unusable(
            f"unknown schema marker {args.marker!r}: expected one of {', '.join(markers())}"
        )
    sys.stdout.write(schema_text(args.marker))
    return EXIT_VALID


# Parser --------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"expected a number in 1..=4294967295, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fib-quant-kv",
        description="Validate, digest and derive FibQuant v1 KV-cache contract documents "
        "(tensor shapes, cache layouts, page geometries), in JSON or CBOR.",
        epilog="Exit codes: 0 all valid, 1 a document invalid, 2 usage error or unreadable path.",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    raw = argparse.RawDescriptionHelpFormatter

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], summary: str, example: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=f"example:\n  {example}",
            formatter_class=raw,
        )
        sub.set_defaults(handler=handler)
        return sub

    sub = add(
        "validate",
        cmd_validate,
        "Check documents against their schemas and the reference's semantic rules.",
        "fib-quant-kv validate --shape examples/llama-3.1-8b/key_shape.json examples/",
    )
    sub.add_argument(
        "--shape", metavar="FILE", help="the shape that layouts and geometries are checked against"
    )
    sub.add_argument(
        "--format", choices=sorted(REPORTERS), default="text", help="text (default) or JSON Lines"
    )
    sub.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="a file, a directory (searched for *.json and *.cbor), or - for stdin",
    )

    sub = add(
        "digest",
        cmd_digest,
        "Print the digest of a valid document.",
        "fib-quant-kv digest --shape key_shape.json key_layout.cbor",
    )
    sub.add_argument(
        "--shape", metavar="FILE", help="the shape a layout or geometry is validated against"
    )
    sub.add_argument(
        "--encoding",
        choices=("json", "cbor"),
        default="json",
        help="digest the canonical JSON (the document digest, default) or the deterministic CBOR",
    )
    sub.add_argument("file", metavar="FILE", help="a document, or - for stdin")

    sub = add(
        "convert",
        cmd_convert,
        "Write a document's canonical bytes: compact JSON in field order, or deterministic CBOR.",
        "fib-quant-kv convert --to cbor -o key_shape.cbor key_shape.json",
    )
    sub.add_argument("--to", choices=("json", "cbor"), required=True, help="the encoding to write")
    sub.add_argument(
        "-o", "--output", metavar="OUT", help="write here (atomically) instead of stdout"
    )
    sub.add_argument("file", metavar="FILE", help="a document, or - for stdin")

    sub = add(
        "layout",
        cmd_layout,
        "Print the canonical layout of a shape, as JSON.",
        "fib-quant-kv layout key_shape.json",
    )
    sub.add_argument("shape", metavar="SHAPE", help="a shape document")

    sub = add(
        "geometry",
        cmd_geometry,
        "Print a page geometry for a shape, as JSON.",
        "fib-quant-kv geometry key_shape.json --tokens-per-page 256 --encoded-block-bytes 72",
    )
    sub.add_argument("shape", metavar="SHAPE", help="a shape document")
    sub.add_argument("--tokens-per-page", type=_positive, required=True, metavar="N")
    sub.add_argument("--encoded-block-bytes", type=_positive, required=True, metavar="N")

    sub = add(
        "page-count",
        cmd_page_count,
        "Print the number of pages a geometry needs for a shape.",
        "fib-quant-kv page-count --shape key_shape.json page_geometry.json",
    )
    sub.add_argument("--shape", metavar="SHAPE", required=True, help="a shape document")
    sub.add_argument("geometry", metavar="GEOMETRY", help="a page geometry document")

    sub = add(
        "plan",
        cmd_plan,
        "Plan a model's KV cache from its config.json: shapes, layouts, a geometry, sizes.",
        "fib-quant-kv plan config.json --tokens 8192 --tokens-per-page 256 "
        "--encoded-block-bytes 72 --out kv/",
    )
    sub.add_argument("config", metavar="CONFIG", help="a Hugging Face config.json")
    sub.add_argument("--tokens", type=_positive, required=True, metavar="N")
    sub.add_argument("--batch", type=_positive, default=1, metavar="B")
    sub.add_argument(
        "--dtype", choices=("f16", "bf16", "f32"), help="source dtype (default: torch_dtype)"
    )
    sub.add_argument("--tokens-per-page", type=_positive, metavar="P")
    sub.add_argument("--encoded-block-bytes", type=_positive, metavar="E")
    sub.add_argument("--out", metavar="DIR", help="write the documents here")
    sub.add_argument("--format", choices=("json", "cbor"), default="json", help="for --out")

    sub = add(
        "schema",
        cmd_schema,
        "List the shipped schema markers, or print one schema.",
        "fib-quant-kv schema fib_quant_kv_cache_layout_v1",
    )
    sub.add_argument("marker", nargs="?", metavar="MARKER")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except Invalid as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_INVALID
    except Unusable as exc:
        sys.stderr.write(f"fib-quant-kv: {exc}\n")
        return EXIT_USAGE
    except BrokenPipeError:
        # `fib-quant-kv validate dir | head`: the reader left; say nothing more.
        sys.stderr.close()
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


__all__ = ["STDIN", "build_parser", "main"]
