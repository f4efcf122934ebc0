"""Shared fixtures: the command line run in process, and a repository of planned contracts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

from tests.shared import CONFIGS, Cli

# Mutation testing reruns the suite once per mutant: the same examples every time, fewer of them.
settings.register_profile("mutation", derandomize=True, max_examples=40, deadline=None)


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
