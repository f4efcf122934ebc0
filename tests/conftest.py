"""Shared fixtures: the command line run in process, and folders and git repositories of planned
contracts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import settings

from tests.shared import CONFIGS, PAGED_PLAN, Cli, git

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
            *PAGED_PLAN,
            "--out",
            str(root / name),
        )
        assert code == 0, err
    return root


@pytest.fixture
def repo(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository of three model folders as `plan` writes them, committed; the cwd."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "test@example.invalid")
    git(root, "config", "user.name", "test")
    for name, config in (
        ("llama", "llama-3.1-8b.json"),
        ("qwen", "qwen2.5-7b.json"),
        ("gemma", "gemma-2-2b.json"),
    ):
        code, _, err = cli(
            "plan", str(CONFIGS / config), "--tokens", "8192", "--tokens-per-page", "256",
            "--encoded-block-bytes", "72", "--out", str(root / "models" / name),
        )  # fmt: skip
        assert code == 0, err
    (root / "package.json").write_text('{"name": "web"}')  # not a contract: not judged
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "contracts")
    monkeypatch.chdir(root)
    monkeypatch.delenv("PRE_COMMIT_FROM_REF", raising=False)
    monkeypatch.delenv("PRE_COMMIT_TO_REF", raising=False)
    return root
