"""How `validate` says what it found: reporters chosen from a registry, each told begin, every
finding in order, and finish, once, however the run was split across processes."""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from fib_quant_kv.errors import Violation
    from fib_quant_kv.sets import Finding

# Where the reference's rules are published (docs/rules.md, rendered from the rules' own
# declarations), for links from a report to a rule.
DOCS_URL = "https://schemas.fib-quant.dev/kv/docs/"


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


def counted(count: int, noun: str) -> str:
    """`1 document`, `2 documents`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@dataclass(slots=True)
class Tally:
    """What a run judged: documents checked, found invalid, paths it could not read, and JSON
    or CBOR files it skipped as no contract."""

    checked: int = 0
    invalid: int = 0
    unreadable: int = 0
    skipped: int = 0
    # Why the run failed as a whole, when it did (nothing to judge): said by the command line
    # on standard error, and by a format that has a place for it (SARIF's notifications).
    failure: str | None = None

    def add(self, finding: Finding) -> None:
        if finding.unreadable is not None:
            self.unreadable += 1
        else:
            self.checked += 1
            self.invalid += not finding.valid

    def line(self) -> str:
        """The summary: `3 documents checked, 1 invalid, 1 skipped (...)`."""
        parts = [f"{counted(self.checked, 'document')} checked", f"{self.invalid} invalid"]
        if self.unreadable:
            parts.append(f"{self.unreadable} unreadable")
        if self.skipped:
            parts.append(
                f"{self.skipped} skipped ("
                + (
                    "a JSON or CBOR file that is"
                    if self.skipped == 1
                    else "JSON or CBOR files that are"
                )
                + " no contract)"
            )
        return ", ".join(parts)


class Reporter(Protocol):
    """The contract every reporter keeps: `begin` once, `finding` for each path in the run's
    order, `finish` once with the tally. A reporter may write as it goes or hold everything
    for `finish`; the parallel runner hands it the findings of every process, in order."""

    def begin(self) -> None: ...

    def finding(self, finding: Finding) -> None: ...

    def finish(self, tally: Tally) -> None: ...


def _use_colour(stream: TextIO) -> bool:
    # https://no-color.org, and never into a pipe or a file.
    return stream.isatty() and "NO_COLOR" not in os.environ


def _against(finding: Finding) -> str:
    """` against SHAPE DIGEST, ...`: what a layout or geometry was judged against (a shape
    with no digest is broken or missing: its violations say which)."""
    if not finding.shapes:
        return ""
    return " against " + ", ".join(
        f"{display_path(b.path)} {b.digest or '(no valid shape)'}" for b in finding.shapes
    )


class TextReporter:
    """`path: valid <kind> <digest>`, or `path::<pointer>: <message> [<rule id>]` per error.

    The pointer is RFC 6901's: empty for the whole document, so such a line reads
    `path::: message`. Quiet: problems only, and the summary.
    """

    def __init__(self, out: TextIO, err: TextIO, quiet: bool = False) -> None:
        self.out, self.err, self.quiet = out, err, quiet
        colour = _use_colour(out)
        self.green = "\033[32m" if colour else ""
        self.red = "\033[31m" if colour else ""
        self.yellow = "\033[33m" if colour else ""
        self.reset = "\033[0m" if colour else ""
        self.progress = err.isatty()
        self.count = 0

    def begin(self) -> None:
        return None

    def _progress(self) -> None:
        self.count += 1
        if self.progress and self.count % 250 == 0:
            self.err.write(f"\rchecked {self.count} documents...")
            self.err.flush()

    def _clear_progress(self) -> None:
        if self.progress and self.count >= 250:
            self.err.write("\r\033[K")

    def finding(self, finding: Finding) -> None:
        self._progress()
        path = display_path(finding.path)
        if finding.unreadable is not None:
            self._clear_progress()
            self.err.write(f"{self.red}{path}: cannot read: {finding.unreadable}{self.reset}\n")
            return
        against = _against(finding)
        for v in finding.violations:
            self.out.write(
                f"{self.red}{path}::{v.pointer}: {v.message} [{v.rule}]{against}{self.reset}\n"
            )
        if finding.violations or self.quiet:
            return
        if finding.structure_only:
            self.out.write(
                f"{self.yellow}{path}: {finding.kind} structure valid; no shape found, its rules "
                f"not run (--structure-only){self.reset}\n"
            )
            return
        also = f" (belongs to {display_path(finding.dependent_of)})" if finding.dependent_of else ""
        self.out.write(
            f"{self.green}{path}: valid {finding.kind} {finding.digest}{against}{also}"
            f"{self.reset}\n"
        )

    def finish(self, tally: Tally) -> None:
        self._clear_progress()
        if tally.checked + tally.unreadable + tally.skipped > 1:
            self.err.write(tally.line() + "\n")


class JsonReporter:
    """JSON Lines: one object per path (see the README for its fields). Quiet: the paths with
    problems only."""

    def __init__(self, out: TextIO, err: TextIO, quiet: bool = False) -> None:
        self.out, self.quiet = out, quiet

    def begin(self) -> None:
        return None

    def finding(self, finding: Finding) -> None:
        if self.quiet and finding.valid:
            return
        path = display_path(finding.path)
        if finding.valid and finding.kind == "shape" and finding.dependent_of is None:
            # The common line (a valid shape), written without building and serialising a dict.
            self.out.write(
                f'{{"path": {encode_basestring(path)}, "kind": "{finding.kind}", "valid": true, '
                f'"digest": "{finding.digest}", "shape_checked": true, "structure_only": false, '
                '"shapes": [], "errors": []}\n'
            )
            return
        record: dict[str, Any] = {
            "path": path,
            "kind": finding.kind,
            "valid": finding.valid,
            "digest": finding.digest,
            "shape_checked": finding.rules_run,
            "structure_only": finding.structure_only,
            "shapes": [{"path": display_path(b.path), "digest": b.digest} for b in finding.shapes],
            "errors": [v.to_json() for v in finding.violations],
        }
        if finding.dependent_of is not None:
            record["dependent_of"] = display_path(finding.dependent_of)
        if finding.unreadable is not None:
            record["errors"] = [
                {"code": "unreadable", "rule": "", "pointer": "", "message": finding.unreadable}
            ]
        self.out.write(json.dumps(record, ensure_ascii=False) + "\n")

    def finish(self, tally: Tally) -> None:
        return None


def _escape_data(text: str) -> str:
    # GitHub's workflow commands: a message escapes %, CR and LF (the runner decodes %25 last).
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    # A property value escapes also the characters that delimit properties.
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


class GithubReporter:
    """GitHub Actions workflow commands: `::error file=…,line=…,col=…,title=RULE::message` for
    each violation, which the runner shows on the file's line; a valid document is a plain log
    line (none when quiet), the summary the last."""

    def __init__(self, out: TextIO, err: TextIO, quiet: bool = False) -> None:
        self.out, self.quiet = out, quiet

    def begin(self) -> None:
        return None

    def _error(self, path: str, title: str, message: str, v: Violation | None = None) -> None:
        where = f"file={_escape_property(display_path(path))}"
        if v is not None and v.position is not None:
            where += f",line={v.position[0]},col={v.position[1]}"
        self.out.write(
            f"::error {where},title={_escape_property(title)}::{_escape_data(message)}\n"
        )

    def finding(self, finding: Finding) -> None:
        if finding.unreadable is not None:
            self._error(finding.path, "unreadable", f"cannot read: {finding.unreadable}")
            return
        against = _against(finding)
        for v in finding.violations:
            pointer = f"at {v.pointer}: " if v.pointer else ""
            self._error(finding.path, v.rule, f"{pointer}{v.message}{against}", v)
        if not finding.violations and not self.quiet:
            self.out.write(f"{display_path(finding.path)}: valid {finding.kind} {finding.digest}\n")

    def finish(self, tally: Tally) -> None:
        self.out.write(tally.line() + "\n")


class SarifReporter:
    """SARIF 2.1.0, for code scanning: one run whose tool lists every rule of the reference (id,
    short and full description, a link to its entry), and a result for each violation, at its
    line and column where the document is JSON; unreadable paths are the run's notifications.
    Written whole at finish."""

    def __init__(self, out: TextIO, err: TextIO, quiet: bool = False) -> None:
        self.out = out
        self.results: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []
        self.rule_index: dict[str, int] = {}

    def begin(self) -> None:
        from fib_quant_kv.rules import RULES

        self.rule_index = {rule_id: index for index, rule_id in enumerate(RULES)}

    def finding(self, finding: Finding) -> None:
        uri = _artifact_uri(finding.path)
        if finding.unreadable is not None:
            self.notes.append(
                {
                    "level": "error",
                    "message": {"text": f"{display_path(finding.path)}: {finding.unreadable}"},
                    "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}}}],
                }
            )
            return
        for v in finding.violations:
            location: dict[str, Any] = {"artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%"}}
            if v.position is not None:
                location["region"] = {"startLine": v.position[0], "startColumn": v.position[1]}
            pointer = f" at {v.pointer}" if v.pointer else ""
            result: dict[str, Any] = {
                "ruleId": v.rule,
                "level": "error",
                "message": {"text": f"{v.message}{pointer}"},
                "locations": [{"physicalLocation": location}],
            }
            if v.rule in self.rule_index:
                result["ruleIndex"] = self.rule_index[v.rule]
            self.results.append(result)

    def finish(self, tally: Tally) -> None:
        if tally.failure is not None:
            self.notes.append({"level": "error", "message": {"text": tally.failure}})
        self.out.write(json.dumps(sarif_log(self.results, self.notes), indent=2) + "\n")


def _artifact_uri(path: str) -> str:
    """A path as a URI reference relative to the working directory, percent-encoded."""
    if path == "-":
        return "-"
    from urllib.parse import quote  # SARIF's alone: the other formats start without it

    relative = os.path.relpath(path).replace(os.sep, "/")
    return quote(posixpath.normpath(relative), safe="/")


def sarif_rules() -> list[dict[str, Any]]:
    """Every rule of the reference, as SARIF's tool.driver.rules lists them."""
    from fib_quant_kv.reference import explain, rule_anchor
    from fib_quant_kv.rules import RULES

    rules = []
    for rule in RULES.values():
        short = rule.checks.split(". ")[0].rstrip(".") + "."
        rules.append(
            {
                "id": rule.id,
                "shortDescription": {"text": short},
                "fullDescription": {"text": rule.checks},
                "helpUri": f"{DOCS_URL}rules.md#{rule_anchor(rule.id)}",
                "help": {"text": explain(rule)},
                "properties": {"categories": list(rule.codes)},
            }
        )
    return rules


def sarif_log(results: list[dict[str, Any]], notes: list[dict[str, Any]]) -> dict[str, Any]:
    """A SARIF 2.1.0 log of one run."""
    from importlib.metadata import PackageNotFoundError, version
    from urllib.parse import quote

    try:
        tool_version = version("fib-quant-kv")
    except PackageNotFoundError:  # a source tree never installed
        tool_version = "0"
    cwd = os.getcwd().replace(os.sep, "/")
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "fib-quant-kv",
                        "version": tool_version,
                        "informationUri": DOCS_URL,
                        "rules": sarif_rules(),
                    }
                },
                "originalUriBaseIds": {
                    "%SRCROOT%": {"uri": "file://" + quote(cwd.rstrip("/") + "/")}
                },
                "columnKind": "unicodeCodePoints",
                "invocations": [
                    {"executionSuccessful": not notes, "toolExecutionNotifications": notes}
                ],
                "results": results,
            }
        ],
    }


# Each reporter by its --output-format name, with what it writes (the choices and the help
# come from here).
REPORTERS: dict[str, tuple[Callable[[TextIO, TextIO, bool], Reporter], str]] = {
    "text": (TextReporter, "a line per document and per error"),
    "json": (JsonReporter, "JSON Lines, an object per path"),
    "github": (GithubReporter, "GitHub Actions annotations"),
    "sarif": (SarifReporter, "one SARIF 2.1.0 log, for code scanning"),
}
