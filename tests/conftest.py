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


CONFIGS = DATA / "hf_configs"


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


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run the command line as a user would, in this process."""
    return Cli(capsys)


@pytest.fixture
def models(cli: Cli, tmp_path: Path) -> Path:
    """A repository holding the planned contracts of two models, each in its own folder."""
    root = tmp_path / "models"
    for name, config in (("llama", "llama-3.1-8b.json"), ("qwen", "qwen2.5-7b.json")):
        code, _, err = cli(
            "plan",
            str(CONFIGS / config),
            "--tokens",
            "8192",
            "--tokens-per-page",
            "256",
            "--encoded-block-bytes",
            "72",
            "--out",
            str(root / name),
        )
        assert code == 0, err
    return root
