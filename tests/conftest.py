"""Shared test data and helpers: the reference's vectors, the bundled examples, the CLI runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# Mutation testing reruns the suite once per mutant: the same examples every time, fewer of them.
settings.register_profile("mutation", derandomize=True, max_examples=40, deadline=None)

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
EXAMPLES = ROOT / "examples" / "llama-3.1-8b"


def load_vectors() -> list[dict[str, Any]]:
    """Every case of the shared vector file, in file order."""
    with (DATA / "fib_quant_kv_v1_vectors.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


VECTORS = load_vectors()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The command line's exit code, standard output and standard error for these arguments."""
    from fib_quant_kv.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
