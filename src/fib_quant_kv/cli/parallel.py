"""A large `validate` on both cores: the later half of the paths judged in a forked process.

Judging is pure Python, so a thread would not help; a forked child starts with everything this
process has imported and read, at a cost of milliseconds. The child judges the later half of the
paths (in the order the run gives them) and sends back its findings and what its run noted; the
parent judges the first half meanwhile, then hands the child's findings to the same reporter
after its own, so the reporter sees every finding once, in the order one process gives them,
and finishes once (a test holds the split run's output to one process's, in every format). If
the child fails in any way, the parent judges its half.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from fib_quant_kv.files import Named, UnreadablePath
    from fib_quant_kv.sets import Finding, Run

# Below a few thousand small files the fork and the hand-over cost about what the second core
# saves; from this many on, the split is a clear gain.
PARALLEL_FROM = 4096


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
    run: Run, items: Sequence[Named | UnreadablePath], report: Callable[[Finding], None]
) -> None:
    """Judge `items` with `run`, the later half in a child; `report` gets each finding in order."""
    import pickle  # here, not at the top: only a run this large pays for the import

    from fib_quant_kv.result import from_report, report_of

    half = len(items) // 2
    first, second = items[:half], items[half:]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: judge the second half, send the findings and the notes
        os.close(read_end)
        status = 1
        try:
            # What a report reads of each finding: its model and fields stay here.
            found = [report_of(finding) for finding in run.judge_items(second)]
            payload = (found, run.notes())
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(pickle.dumps(payload, pickle.HIGHEST_PROTOCOL))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    for finding in run.judge_items(first):
        report(finding)
    with os.fdopen(read_end, "rb") as pipe:
        received = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not received:
        for finding in run.judge_items(second):  # the child failed: its half is judged here
            report(finding)
        return
    reports, notes = pickle.loads(received)
    for reported in reports:
        report(from_report(*reported))
    run.absorb(notes)
