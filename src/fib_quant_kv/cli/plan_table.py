"""How `plan` shows a plan: what its groups hold, and its size table."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fib_quant_kv.hf.plan import Group, Plan


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
