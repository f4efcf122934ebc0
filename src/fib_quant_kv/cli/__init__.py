"""The fib-quant-kv command line: the one place errors become exit codes (arguments.py parses)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from fib_quant_kv.cli.arguments import build_parser
from fib_quant_kv.cli.commands import EXIT_INVALID, EXIT_USAGE, Unusable
from fib_quant_kv.files import UnreadablePath


def _stream_problem() -> str | None:
    """Why the standard streams cannot be used, if they cannot (started with them closed)."""
    if sys.stdout is None:
        return "standard output is closed: expected somewhere to write"
    return None


def _flush() -> bool:
    """Flush standard output; False when it cannot take the bytes (a full disk, a closed pipe).

    After a failure standard output is pointed at the null device, so the interpreter's own
    flush at exit does not fail again with a traceback.
    """
    try:
        sys.stdout.flush()
    except OSError:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
        return False
    return True


def _say(message: str) -> None:
    if sys.stderr is not None:
        sys.stderr.write(message + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    from fib_quant_kv.errors import FibQuantKvError

    parser, by_name = build_parser()
    args, stray = parser.parse_known_args(argv)
    if stray:
        by_name[args.command].error(f"unrecognized arguments: {' '.join(stray)}")
    problem = _stream_problem()
    if problem is not None:
        _say(f"fib-quant-kv: {problem}")
        return EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        code = handler(args)
    except FibQuantKvError as exc:
        # As validate reports a violation: with the id `fib-quant-kv rule` explains.
        _say(f"{exc} [{exc.rule}]" if exc.rule else str(exc))
        code = EXIT_INVALID
    except (Unusable, UnreadablePath) as exc:
        _say(f"fib-quant-kv: {exc}")
        code = EXIT_USAGE
    except BrokenPipeError:
        # `fib-quant-kv validate dir | head`: the reader left; say nothing more.
        _flush()
        return EXIT_USAGE
    except OSError as exc:
        # Writing standard output failed (`> /dev/full`).
        _flush()
        _say(f"fib-quant-kv: cannot write standard output: {exc.strerror or exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    if not _flush():
        _say("fib-quant-kv: cannot write standard output")
        return EXIT_USAGE
    return code


__all__ = ["build_parser", "main"]
