"""How the command line shows results: validate's reporters (text, JSON Lines), plan's table."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from fib_quant_kv.hf.plan import Group, Plan
    from fib_quant_kv.sets import Finding


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
    """Says what `validate` found, one path at a time, then a summary."""

    def report(self, finding: Finding) -> None: ...

    def finish(self, checked: int, invalid: int, unreadable: int, skipped: int) -> None: ...


def _use_colour(stream: TextIO) -> bool:
    # https://no-color.org, and never into a pipe or a file.
    return stream.isatty() and "NO_COLOR" not in os.environ


def _against(finding: Finding) -> str:
    """` against SHAPE DIGEST, ...`: what a layout or geometry was judged against."""
    if not finding.shapes:
        return ""
    return " against " + ", ".join(
        f"{display_path(b.path)} {b.digest or '(invalid shape)'}" for b in finding.shapes
    )


class TextReporter:
    """`path: valid <kind> <digest>`, or `path::<pointer>: <message> [<rule id>]` per error.

    The pointer is RFC 6901's: empty for the whole document, so such a line reads
    `path::: message`.
    """

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

    def report(self, finding: Finding) -> None:
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
        if finding.violations:
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

    def finish(self, checked: int, invalid: int, unreadable: int, skipped: int) -> None:
        self._clear_progress()
        if checked + unreadable + skipped > 1:
            parts = [f"{checked} documents checked", f"{invalid} invalid"]
            if unreadable:
                parts.append(f"{unreadable} unreadable")
            if skipped:
                parts.append(f"{skipped} skipped (JSON or CBOR files that are no contract)")
            self.err.write(", ".join(parts) + "\n")


class JsonReporter:
    """JSON Lines: one object per path (see the README for its fields)."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out

    def report(self, finding: Finding) -> None:
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

    def finish(self, checked: int, invalid: int, unreadable: int, skipped: int) -> None:
        return None


REPORTERS: dict[str, Callable[[TextIO, TextIO], Reporter]] = {
    "text": TextReporter,
    "json": JsonReporter,
}


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.1f} {unit}" if unit != "B" else f"{n} B"
        size /= 1024
    return f"{size:.1f} TiB"


def layer_list(layers: Iterable[int]) -> str:
    """Layer indices as a short list: runs of three or more written first-last."""
    runs: list[list[int]] = []
    for index in layers:
        if runs and index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return ", ".join(
        f"{run[0]}-{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)) for run in runs
    )


def _holds(group: Group, tokens: int) -> str:
    if group.tokens >= tokens or group.window is None:
        return f"all {group.tokens} tokens" if group.tokens == tokens else f"{group.tokens} tokens"
    kind = "an attention chunk" if "chunked" in group.kinds else "a sliding window"
    return f"the last {group.tokens} of the {tokens} tokens ({kind} of {group.window})"


PLAN_HEADER = (
    "group",
    "layers",
    "tokens",
    "KV heads",
    "head size",
    "elements",
    "source bytes",
    "raw f32 bytes",
    "pages per stream",
    "pages",
    "encoded",
    "ratio",
)


def plan_lines(plan: Plan) -> list[str]:
    """What a plan says of the model's layers and groups, then its size table: a row a group
    (keys and values together), then the totals."""
    held = len(plan.kv_layers)
    lines = [
        f"{plan.model_type}: {plan.layers} decoder layers, "
        + (f"all {held}" if held == plan.layers else f"{held}")
        + " hold keys and values"
    ]
    for group in plan.groups:
        name = group.name or "all"
        lines.append(
            f"  {name} ({len(group.layers)} layers: {layer_list(group.layers)}): "
            f"{_holds(group, plan.tokens)}"
        )
    if plan.kv.defaults_taken:
        lines.append(
            "  class defaults taken (--class-defaults): "
            + ", ".join(f"{where} {value}" for where, value in plan.kv.defaults_taken.items())
        )
    reasons: dict[str, list[int]] = {}
    for index, why in sorted(plan.without_kv.items()):
        reasons.setdefault(why, []).append(index)
    if reasons:
        lines.append(
            "  without keys and values: "
            + "; ".join(f"{layer_list(layers)} ({why})" for why, layers in reasons.items())
        )
    lines.append("")
    rows = []
    for group in plan.groups:
        key, value = group.key_shape, group.value_shape
        sizes = (
            str(key.head_dim)
            if key.head_dim == value.head_dim
            else f"{key.head_dim}/{value.head_dim}"
        )
        rows.append(
            (
                group.name or "all",
                str(len(group.layers)),
                str(group.tokens),
                str(key.kv_heads),
                sizes,
                group.size,
            )
        )
    if len(plan.groups) > 1:
        rows.append(("total", str(held), "", "", "", plan.total))
    cells = [PLAN_HEADER] + [
        (
            *row[:5],
            f"{row[5].elements:,}",
            _human(row[5].source_bytes),
            _human(row[5].raw_f32_bytes),
            "-" if row[5].pages_per_stream is None else f"{row[5].pages_per_stream:,}",
            "-" if row[5].pages is None else f"{row[5].pages:,}",
            _human(row[5].encoded_bytes),
            "-" if row[5].compression is None else f"{row[5].compression:.2f}x",
        )
        for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(PLAN_HEADER))]
    return lines + [
        "  ".join(
            (cell.ljust(width) if i == 0 else cell.rjust(width))
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in cells
    ]
