"""The hook as users install it: the real pre-commit builds it from this repository and runs it
on commits (`nox -s hook`, which installs pre-commit; elsewhere the module is skipped)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.shared import ROOT, git

HOOK_ID = "fib-quant-kv-validate"
HOOK_NAME = "validate FibQuant KV contract documents"

# The `hook` nox session sets this: there a missing pre-commit is a failure.
if os.environ.get("FIB_QUANT_KV_REQUIRE_PRECOMMIT") != "1" and shutil.which("pre-commit") is None:
    pytest.skip("pre-commit is not installed (nox -s hook installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def hook_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """This project as a hook repository at one commit: the files of the work tree (committed or
    not, as `pre-commit try-repo` takes them), so the hook tested is the one being changed."""
    source = tmp_path_factory.mktemp("hook-source")
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    git(source, "init", "-q", "-b", "main")
    git(source, "add", "-A")
    git(source, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "hook")
    return source, git(source, "rev-parse", "HEAD").strip()


@pytest.fixture(scope="module")
def precommit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pre-commit cache for the module, so the hook's environment is built once."""
    return tmp_path_factory.mktemp("pre-commit-home")


def precommit(repo: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "NO_COLOR": "1", "TERM": "dumb"}
    for name in ("PRE_COMMIT_FROM_REF", "PRE_COMMIT_TO_REF"):
        env.pop(name, None)
    return subprocess.run(
        ["pre-commit", *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )


def commit(repo: Path, home: Path, message: str) -> subprocess.CompletedProcess[str]:
    """`git commit` with pre-commit installed as the repository's hook."""
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run(
        ["git", "commit", "-m", message],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def hooked(repo: Path, hook_source: tuple[Path, str], precommit_home: Path) -> Path:
    """The three-model repository with the hook configured and installed, as a user sets it up."""
    source, rev = hook_source
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {source}\n    rev: {rev}\n    hooks:\n      - id: {HOOK_ID}\n"
    )
    git(repo, "add", ".pre-commit-config.yaml")
    git(repo, "commit", "-qm", "configure the hook")
    done = precommit(repo, precommit_home, "install")
    assert done.returncode == 0, done.stdout + done.stderr
    return repo


def test_a_valid_repository_passes_all_files(hooked: Path, precommit_home: Path) -> None:
    done = precommit(hooked, precommit_home, "run", "--all-files")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{HOOK_NAME}" in done.stdout
    assert "Passed" in done.stdout


def test_a_commit_that_breaks_three_folders_is_refused(hooked: Path, precommit_home: Path) -> None:
    head = git(hooked, "rev-parse", "HEAD")
    git(hooked, "rm", "-q", "models/llama/key_shape.json")
    git(hooked, "mv", "models/qwen/value_shape.json", "models/qwen/v.json")
    geometry = hooked / "models" / "gemma" / "sliding_page_geometry.json"
    geometry.write_text(
        geometry.read_text().replace('"tokens_per_page":256', '"tokens_per_page":9000')
    )
    git(hooked, "add", "-A")
    done = commit(hooked, precommit_home, "break three folders")
    output = done.stdout + done.stderr
    print(output)  # the run as a user sees it (pytest -s)
    assert done.returncode != 0, output
    assert git(hooked, "rev-parse", "HEAD") == head  # nothing was committed
    assert "Failed" in output
    assert (
        "models/llama/key_shape.json::: deleted by the commit, but "
        "models/llama/fib-quant-kv-set.json, models/llama/key_layout.json, "
        "models/llama/page_geometry.json still need it"
    ) in output
    assert "models/qwen/value_shape.json::: renamed to models/qwen/v.json by the commit" in output
    assert "models/gemma/sliding_page_geometry.json::/tokens_per_page: " in output
    assert "[geometry.tokens_per_page_range]" in output


def test_a_commit_of_only_a_deletion_is_still_judged(hooked: Path, precommit_home: Path) -> None:
    # pre-commit hands a hook no file for a commit that only deletes: the hook runs all the same.
    git(hooked, "rm", "-q", "models/qwen/key_shape.json")
    done = commit(hooked, precommit_home, "drop a shape")
    assert done.returncode != 0, done.stdout + done.stderr
    assert "models/qwen/key_shape.json::: deleted by the commit" in done.stdout + done.stderr


def test_a_commit_that_changes_no_contract_passes(hooked: Path, precommit_home: Path) -> None:
    (hooked / "package.json").write_text('{"name": "web", "version": "2"}')
    git(hooked, "add", "package.json")
    done = commit(hooked, precommit_home, "bump")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Passed" in done.stdout + done.stderr


def test_a_pushed_range_is_judged(hooked: Path, precommit_home: Path) -> None:
    start = git(hooked, "rev-parse", "HEAD").strip()
    git(hooked, "rm", "-q", "models/llama/value_shape.json")
    git(hooked, "commit", "-qm", "drop a shape", "--no-verify")
    done = precommit(hooked, precommit_home, "run", "--from-ref", start, "--to-ref", "HEAD")
    assert done.returncode != 0, done.stdout + done.stderr
    assert "models/llama/value_shape.json::: deleted by the commit" in done.stdout


def test_try_repo_runs_the_hook_of_the_work_tree(repo: Path, precommit_home: Path) -> None:
    # `pre-commit try-repo` is how a user tries a hook before pinning it.
    git(repo, "rm", "-q", "models/llama/key_shape.json")
    done = precommit(repo, precommit_home, "try-repo", str(ROOT), HOOK_ID)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "models/llama/key_shape.json::: deleted by the commit" in done.stdout
