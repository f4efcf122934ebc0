"""What a run says of each path: the one result type (fib_quant_kv.result), by its run name."""

from __future__ import annotations

from fib_quant_kv.result import Bound, Verdict

# A run's finding for a path is a Verdict: one type, one meaning of valid, for every surface.
Finding = Verdict

__all__ = ["Bound", "Finding"]
