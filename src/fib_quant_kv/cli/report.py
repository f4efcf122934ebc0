"""Reporters for `validate`: one line per finding as text, or one JSON object per document."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from fib_quant_kv.verdict import Verdict


@dataclass(frozen=True, slots=True)
class Outcome:
    """What `validate` says of one path: a verdict, or why the path could not be read."""

    path: str
    verdict: Verdict | None = None
    unreadable: str | None = None


def display_path(path: str) -> str:
    """A path as it can be printed: bytes that were not UTF-8 are shown as \\xNN escapes.

    os.walk hands such names over with surrogate escapes, which a UTF-8 stream refuses and a
    JSON reader would not accept.
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return path


class Reporter(Protocol):
    """Says what `validate` found, one outcome at a time, then a summary."""

    def report(self, outcome: Outcome) -> None: ...

    def finish(self, checked: int, invalid: int, unreadable: int) -> None: ...


def _use_colour(stream: TextIO) -> bool:
    # https://no-color.org, and never into a pipe or a file.
    return stream.isatty() and "NO_COLOR" not in os.environ


class TextReporter:
    """`path: valid <kind> <digest>`, or `path::/pointer: message` for each error."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out, self.err = out, err
        colour = _use_colour(out)
        self.green = "\033[32m" if colour else ""
        self.red = "\033[31m" if colour else ""
        self.yellow = "\033[33m" if colour else ""
        self.reset = "\033[0m" if colour else ""
        self.progress = err.isatty()
        self.count = 0

    def _progress(self) -> None:
        self.count += 1
        if self.progress and self.count % 250 == 0:
            self.err.write(f"\rchecked {self.count} documents...")
            self.err.flush()

    def _clear_progress(self) -> None:
        if self.progress and self.count >= 250:
            self.err.write("\r\033[K")

    def report(self, outcome: Outcome) -> None:
        self._progress()
        verdict = outcome.verdict
        path = display_path(outcome.path)
        if verdict is None:
            self._clear_progress()
            self.err.write(f"{self.red}{path}: cannot read: {outcome.unreadable}{self.reset}\n")
            return
        for v in verdict.violations:
            self.out.write(f"{self.red}{path}::{v.pointer}: {v.message}{self.reset}\n")
        if verdict.violations:
            return
        if not verdict.shape_checked:
            self.out.write(
                f"{self.yellow}{path}: {verdict.kind} structure valid; "
                f"shape rules not run (pass --shape){self.reset}\n"
            )
        else:
            self.out.write(
                f"{self.green}{path}: valid {verdict.kind} {verdict.digest}{self.reset}\n"
            )

    def finish(self, checked: int, invalid: int, unreadable: int) -> None:
        self._clear_progress()
        if checked + unreadable > 1:
            parts = [f"{checked} documents checked", f"{invalid} invalid"]
            if unreadable:
                parts.append(f"{unreadable} unreadable")
            self.err.write(", ".join(parts) + "\n")


class JsonReporter:
    """JSON Lines: one object per path with path, kind, valid, digest, shape_checked and errors."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out

    def report(self, outcome: Outcome) -> None:
        verdict = outcome.verdict
        path = display_path(outcome.path)
        if verdict is not None and not verdict.violations:
            # The common line, written without building and serialising a dict.
            digest = "null" if verdict.digest is None else f'"{verdict.digest}"'
            checked = "true" if verdict.shape_checked else "false"
            self.out.write(
                f'{{"path": {encode_basestring(path)}, "kind": "{verdict.kind}", "valid": true, '
                f'"digest": {digest}, "shape_checked": {checked}, "errors": []}}\n'
            )
            return
        record: dict[str, Any]
        if verdict is None:
            record = {
                "path": path,
                "kind": None,
                "valid": False,
                "digest": None,
                "shape_checked": False,
                "errors": [{"code": "unreadable", "pointer": "", "message": outcome.unreadable}],
            }
        else:
            record = {
                "path": path,
                "kind": verdict.kind,
                "valid": False,
                "digest": None,
                "shape_checked": verdict.shape_checked,
                "errors": [v.to_json() for v in verdict.violations],
            }
        self.out.write(json.dumps(record, ensure_ascii=False) + "\n")

    def finish(self, checked: int, invalid: int, unreadable: int) -> None:
        return None


REPORTERS: dict[str, Callable[[TextIO, TextIO], Reporter]] = {
    "text": TextReporter,
    "json": JsonReporter,
}
