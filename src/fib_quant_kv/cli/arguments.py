"""Each command's arguments, one function a command, and the parser made from their table."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from fib_quant_kv.cli import commands
from fib_quant_kv.cli.commands import EXIT_USAGE
from fib_quant_kv.cli.reporters import REPORTERS
from fib_quant_kv.codec import ENCODINGS

EXIT_CODES = (
    "exit codes: 0 every document valid; 1 a document invalid (this wins over 2); "
    "2 a usage error, an unreadable path, or output that cannot be written"
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class _Help(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; each option's help says its default where it has one."""


def _count(text: str) -> int:
    """A whole number for a u32 count (at least 1)."""
    from fib_quant_kv.rules.geometry import U32_MAX

    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= U32_MAX:
        raise argparse.ArgumentTypeError(f"expected a number in 1..={U32_MAX}, got {value}")
    return value


class _Version(argparse.Action):
    """--version, looked up only when asked for: importlib.metadata costs a tenth of start-up."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("fib-quant-kv")
        except PackageNotFoundError:  # run from a source tree that was never installed
            found = "unknown"
        sys.stdout.write(f"{parser.prog} {found}\n")
        parser.exit()


def _shape_option(sub: argparse.ArgumentParser, what: str) -> None:
    sub.add_argument(
        "--shape",
        metavar="FILE",
        help=f"the shape {what} (default: the one its set file binds it to, or the one "
        "named like it beside it)",
    )


def _structure_only(sub: argparse.ArgumentParser, what: str) -> None:
    sub.add_argument(
        "--structure-only",
        action="store_true",
        help=f"accept the schema's checks alone for {what}",
    )


def _validate_arguments(sub: argparse.ArgumentParser) -> None:
    _shape_option(sub, "every layout and geometry is checked against")
    _structure_only(sub, "layouts and geometries whose shape cannot be found")
    formats = "; ".join(f"{name}: {what}" for name, (_, what) in REPORTERS.items())
    sub.add_argument(
        "--output-format",
        "--format",
        choices=tuple(REPORTERS),
        default="text",
        metavar="FORMAT",
        help=f"how to report: {formats} (default: text)",
    )
    sub.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="report problems only, and at most one summary line",
    )
    sub.add_argument(
        "--git",
        action="store_true",
        help="judge every contract document git tracks under the PATHs (default: the whole "
        "repository) and what the commit being made deletes or renames: the pre-commit hook",
    )
    sub.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="a file, a folder (walked for contract documents), or - for standard input",
    )


def _digest_arguments(sub: argparse.ArgumentParser) -> None:
    _shape_option(sub, "a layout or geometry is validated against")
    sub.add_argument(
        "--encoding",
        choices=ENCODINGS,
        default="json",
        help="digest the canonical JSON (the document digest) or the deterministic CBOR "
        "(default: json)",
    )
    sub.add_argument("file", metavar="FILE", help="a document, or - for standard input")


def _convert_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--to", choices=ENCODINGS, required=True, help="the encoding to write")
    sub.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        default="-",
        help="the file to write (atomically), or - for standard output; binary CBOR is never "
        "written to a terminal (default: -)",
    )
    _shape_option(sub, "a layout or geometry is validated against")
    _structure_only(sub, "the document (the reference's rules are not run)")
    sub.add_argument("file", metavar="FILE", help="a document, or - for standard input")


def _layout_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("shape", metavar="SHAPE", help="a shape document")


def _geometry_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("shape", metavar="SHAPE", help="a shape document")
    sub.add_argument(
        "--tokens-per-page", type=_count, required=True, metavar="N", help="tokens per page"
    )
    sub.add_argument(
        "--encoded-block-bytes",
        type=_count,
        required=True,
        metavar="N",
        help="encoded bytes reserved per block (one vector per block)",
    )


def _page_count_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--shape", metavar="SHAPE", required=True, help="a shape document")
    sub.add_argument("geometry", metavar="GEOMETRY", help="a page geometry document")


def _plan_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "config",
        metavar="CONFIG",
        help="a Hugging Face config.json, or a model folder holding one",
    )
    sub.add_argument(
        "--tokens",
        type=_count,
        required=True,
        metavar="N",
        help="the prompt's tokens: each layer holds them, or the window it keeps of them",
    )
    sub.add_argument(
        "--batch", type=_count, default=1, metavar="B", help="sequences cached (default: 1)"
    )
    sub.add_argument(
        "--dtype",
        type=commands.dtype,
        metavar="DTYPE",
        help="the cache's source dtype, as the contract spells it (f16, bf16, f32) or as "
        "configs do (float16, bfloat16, float32, ...) (default: the config's torch_dtype or "
        "dtype)",
    )
    sub.add_argument(
        "--tokens-per-page", type=_count, metavar="P", help="tokens per page, for a geometry"
    )
    sub.add_argument(
        "--encoded-block-bytes",
        type=_count,
        metavar="E",
        help="encoded bytes per block, for a geometry",
    )
    sub.add_argument(
        "--out",
        metavar="DIR",
        help="write the documents and their set file here, replacing an earlier plan's set",
    )
    sub.add_argument(
        "--format",
        choices=ENCODINGS,
        default="json",
        help="the encoding of the files --out writes (default: json)",
    )
    sub.add_argument(
        "--family",
        metavar="NAME",
        help="read the config as this family (a transformers model_type), whatever its "
        "model_type says (default: its model_type)",
    )
    sub.add_argument(
        "--class-defaults",
        action="store_true",
        help="where the config leaves out a value that sizes the cache (a head count, a head "
        "size), take its config class's default, as transformers would, and say so (without "
        "it, such a config is refused)",
    )


def _set_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("folder", metavar="DIR", help="a folder of contract documents")


def _rule_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("rule_id", nargs="?", metavar="ID", help="a rule id (default: list them)")


def _schema_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("marker", nargs="?", metavar="MARKER", help="a schema (default: list them)")


# Each command: its name, its handler, its summary, an example, and its arguments.
Command = tuple[
    str,
    Callable[[argparse.Namespace], int],
    str,
    str,
    Callable[[argparse.ArgumentParser], None],
]
COMMANDS: tuple[Command, ...] = (
    (
        "validate",
        commands.validate,
        "Check documents against their schemas and the reference's semantic rules; each "
        "layout and geometry against its shape.",
        "fib-quant-kv validate examples/",
        _validate_arguments,
    ),
    (
        "digest",
        commands.digest,
        "Print the digest of a valid document.",
        "fib-quant-kv digest key_layout.cbor",
        _digest_arguments,
    ),
    (
        "convert",
        commands.convert,
        "Write a valid document's canonical bytes: compact JSON in field order, or "
        "deterministic CBOR.",
        "fib-quant-kv convert --to cbor -o key_shape.cbor key_shape.json",
        _convert_arguments,
    ),
    (
        "layout",
        commands.layout,
        "Print the canonical layout of a shape, as JSON.",
        "fib-quant-kv layout key_shape.json",
        _layout_arguments,
    ),
    (
        "geometry",
        commands.geometry,
        "Print a page geometry for a shape, as JSON.",
        "fib-quant-kv geometry key_shape.json --tokens-per-page 256 --encoded-block-bytes 72",
        _geometry_arguments,
    ),
    (
        "page-count",
        commands.page_count,
        "Print how many pages one stream of tokens needs: one (batch, layer, KV head) of "
        "the shape.",
        "fib-quant-kv page-count --shape key_shape.json page_geometry.json",
        _page_count_arguments,
    ),
    (
        "plan",
        commands.plan,
        "Plan a model's KV cache from its config.json: shapes, layouts, a geometry, sizes.",
        "fib-quant-kv plan config.json --tokens 8192 --tokens-per-page 256 "
        "--encoded-block-bytes 72 --out kv/",
        _plan_arguments,
    ),
    (
        "set",
        commands.make_set,
        "Write the set file of a folder's documents: each bound to its shape by name, with "
        "every digest and the set's own.",
        "fib-quant-kv set kv/",
        _set_arguments,
    ),
    (
        "rule",
        commands.rule,
        "List the rule ids, or explain one: what it checks, when, and examples.",
        "fib-quant-kv rule layout.canonical",
        _rule_arguments,
    ),
    (
        "schema",
        commands.schema,
        "List the shipped schemas, or print one.",
        "fib-quant-kv schema fib_quant_kv_cache_layout_v1",
        _schema_arguments,
    ),
)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser, and each command's own parser (which reports that command's misuse)."""
    parser = _Parser(
        prog="fib-quant-kv",
        description="Validate, digest and derive FibQuant v1 KV-cache contract documents "
        "(tensor shapes, cache layouts, page geometries), in JSON or CBOR.",
        epilog=EXIT_CODES,
    )
    parser.add_argument(
        "--version", action=_Version, nargs=0, help="print the version of fib-quant-kv and exit"
    )
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    by_name: dict[str, argparse.ArgumentParser] = {}
    for name, handler, summary, example, arguments in COMMANDS:
        sub = by_name[name] = subparsers.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=f"example:\n  {example}\n\n{EXIT_CODES}",
            formatter_class=_Help,
        )
        sub.set_defaults(handler=handler)
        arguments(sub)
    return parser, by_name
