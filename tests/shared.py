"""What the tests share as plain values: paths, the reference's vectors, the CLI runner.

Fixtures are in conftest.py; this module is imported by the test modules that need its names.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

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


CONFIGS = DATA / "hf_configs"
# The options of a plan the tests write to disk: 8192 tokens, paged 256 to a page, 72 bytes a block.
PAGED_PLAN = ("--tokens", "8192", "--tokens-per-page", "256", "--encoded-block-bytes", "72")


class Cli:
    """The command line run in process: exit code, standard output and standard error."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        return run(self.capsys, *argv)

    def records(self, *argv: str) -> tuple[int, list[dict[str, Any]]]:
        """`validate --format json ARGV`: the exit code and one record per line."""
        code, out, _ = self("validate", "--format", "json", *argv)
        return code, [json.loads(line) for line in out.splitlines()]


def git(repo: Path, *args: str) -> str:
    """What git prints for these arguments in this repository (a failure raises)."""
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout
