"""A large `validate` on both cores: the later half of the paths judged in a forked process.

Judging is pure Python, so a thread would not help; a forked child starts with everything this
process has imported and read, at a cost of milliseconds. The child judges the later half of the
paths (in the order the run gives them) and sends back its report as text, with its tally and
what its run noted; the parent judges the first half meanwhile, then writes the child's text
after its own, so the output is the same, in the same order, as one process writes (a test
holds the two to equal output). If the child fails in any way, the parent judges its half.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from fib_quant_kv.cli.report import Reporter
    from fib_quant_kv.files import Named, UnreadablePath
    from fib_quant_kv.sets import Finding, Run

# Below a few thousand small files the fork and the hand-over cost about what the second core
# saves; from this many on, the split is a clear gain.
PARALLEL_FROM = 4096


@dataclass(slots=True)
class Tally:
    """How many paths a run judged, found invalid, and could not read."""

    checked: int = 0
    invalid: int = 0
    unreadable: int = 0

    def add(self, finding: Finding) -> None:
        if finding.unreadable is not None:
            self.unreadable += 1
        else:
            self.checked += 1
            self.invalid += not finding.valid


def worth_it(items: Sequence[object], out: TextIO) -> bool:
    """Whether to split: enough paths, two cores, fork, and output that is not a terminal
    (colour and progress belong to one process)."""
    return (
        len(items) >= PARALLEL_FROM
        and (os.cpu_count() or 1) > 1
        and hasattr(os, "fork")
        and not out.isatty()
    )


def judge(
    run: Run,
    items: Sequence[Named | UnreadablePath],
    reporter: Reporter,
    tally: Tally,
    make_reporter: Callable[[TextIO, TextIO], Reporter],
) -> None:
    """Judge `items` with `run`, the later half in a child, reporting in order to `reporter`."""
    import pickle  # here, not at the top: only a run this large pays for the import

    half = len(items) // 2
    first, second = items[:half], items[half:]
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: judge the second half, send the report, tally and notes
        os.close(read_end)
        status = 1
        try:
            out, err = io.StringIO(), io.StringIO()
            child_reporter, child_tally = make_reporter(out, err), Tally()
            for finding in run.judge_items(second):
                child_tally.add(finding)
                child_reporter.report(finding)
            payload = (out.getvalue(), err.getvalue(), child_tally, run.notes())
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(pickle.dumps(payload, pickle.HIGHEST_PROTOCOL))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    for finding in run.judge_items(first):
        tally.add(finding)
        reporter.report(finding)
    with os.fdopen(read_end, "rb") as pipe:
        received = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not received:
        for finding in run.judge_items(second):  # the child failed: its half is judged here
            tally.add(finding)
            reporter.report(finding)
        return
    text, errors, child_tally, notes = pickle.loads(received)
    sys.stdout.write(text)
    sys.stderr.write(errors)
    tally.checked += child_tally.checked
    tally.invalid += child_tally.invalid
    tally.unreadable += child_tally.unreadable
    run.absorb(notes)
