"""The gate a commit passes: `validate --git` sees what git tracks and what the commit removes.

The real pre-commit runs the hook in tests/test_precommit.py (`nox -s hook`); here the same
command is run in process, in real git repositories.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.shared import EXAMPLES, ROOT, Cli, git


def test_an_unchanged_valid_repository_passes(cli: Cli, repo: Path) -> None:
    code, out, err = cli("validate", "--git", "--quiet")
    assert (code, out) == (0, "")
    # Llama's and Qwen's five documents and set file, Gemma 2's two groups' ten and its set file.
    assert err == "23 documents checked, 0 invalid\n"


def test_a_staged_deletion_fails_naming_what_needs_it(cli: Cli, repo: Path) -> None:
    git(repo, "rm", "-q", "models/llama/key_shape.json")
    code, out, _ = cli("validate", "--git", "--quiet")
    assert code == 1
    deleted = [line for line in out.splitlines() if line.startswith("models/llama/key_shape")]
    assert deleted == [
        "models/llama/key_shape.json::: deleted by the commit, but "
        "models/llama/fib-quant-kv-set.json, models/llama/key_layout.json, "
        "models/llama/page_geometry.json still need it: restore it, or change them with it "
        "[set.deleted]"
    ]
    # And what needs it fails on its own.
    assert any(line.startswith("models/llama/key_layout.json::") for line in out.splitlines())


def test_a_staged_rename_fails_naming_what_still_names_it(cli: Cli, repo: Path) -> None:
    git(repo, "mv", "models/qwen/value_shape.json", "models/qwen/v.json")
    code, out, _ = cli("validate", "--git", "--quiet")
    assert code == 1
    assert (
        "models/qwen/value_shape.json::: renamed to models/qwen/v.json by the commit, but "
        "models/qwen/fib-quant-kv-set.json, models/qwen/page_geometry.json, "
        "models/qwen/value_layout.json still need it"
    ) in out


def test_a_deletion_of_what_nothing_needs_passes(cli: Cli, repo: Path) -> None:
    git(repo, "rm", "-q", "-r", "models/gemma")
    code, _, err = cli("validate", "--git", "--quiet")
    assert code == 0, err


def test_each_finding_is_said_once_with_one_summary(cli: Cli, repo: Path) -> None:
    geometry = repo / "models" / "qwen" / "page_geometry.json"
    geometry.write_text(
        geometry.read_text().replace('"tokens_per_page":256', '"tokens_per_page":9000')
    )
    git(repo, "add", "-A")
    code, out, err = cli("validate", "--git", "--quiet")
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == len(set(lines)) == 2  # the geometry, and its set file's digest of it
    assert lines[0].startswith("models/qwen/page_geometry.json::/tokens_per_page: ")
    assert len(err.splitlines()) == 1


def test_an_untracked_file_never_stands_in_for_a_tracked_one(cli: Cli, repo: Path) -> None:
    shape = repo / "models" / "llama" / "key_shape.json"
    kept = shape.read_bytes()
    git(repo, "rm", "-q", "models/llama/key_shape.json")
    shape.write_bytes(kept)  # back on disk, but not in the commit
    code, out, _ = cli("validate", "--git", "--quiet")
    assert code == 1
    assert "models/llama/key_shape.json::: deleted by the commit" in out
    # The copy on disk pairs with nothing: the layout has no tracked shape.
    assert "models/llama/key_layout.json::" in out


def test_a_range_is_judged_as_pre_commit_names_it(
    cli: Cli, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "rm", "-q", "models/llama/value_shape.json")
    git(repo, "commit", "-q", "-m", "drop a shape")
    monkeypatch.setenv("PRE_COMMIT_FROM_REF", first)
    monkeypatch.setenv("PRE_COMMIT_TO_REF", "HEAD")
    code, out, _ = cli("validate", "--git", "--quiet")
    assert code == 1
    assert "models/llama/value_shape.json::: deleted by the commit" in out


def test_paths_narrow_what_git_tracks(cli: Cli, repo: Path) -> None:
    code, _, err = cli("validate", "--git", "-q", "models/qwen")
    assert code == 0
    assert err == "6 documents checked, 0 invalid\n"


def test_outside_a_repository_or_with_nothing_tracked_it_says_so(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.chdir(outside)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    code, out, err = cli("validate", "--git")
    assert (code, out) == (2, "")
    assert err.startswith("fib-quant-kv: --git: git ls-files failed: ")
    git(outside, "init", "-q")
    code, out, err = cli("validate", "--git")
    assert (code, out) == (2, "")
    assert "nothing to judge: git tracks no contract document under ." in err


def test_the_hook_runs_once_a_commit_on_what_git_tracks() -> None:
    hook = (ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    # Whatever the commit changes (a commit that only deletes a shape too), with no file names
    # handed over (pre-commit would hand only the files that still exist, split across processes).
    assert "entry: fib-quant-kv validate --git --quiet\n" in hook
    assert "pass_filenames: false\n" in hook
    assert "always_run: true\n" in hook
    assert "require_serial: true\n" in hook


def test_the_hook_judges_contract_documents_and_set_files_only() -> None:
    from fib_quant_kv.files import CONTRACT_NAME, HOOK_PATTERN

    names = [p.name for p in EXAMPLES.iterdir()]
    assert len(names) == 11  # five documents in JSON and CBOR, and their set file
    assert all(HOOK_PATTERN.search(f"repo/kv/{name}") for name in names)
    # The documents a walk always judges, and set files.
    assert [n for n in names if not CONTRACT_NAME.search(n)] == ["fib-quant-kv-set.json"]
    for other in (
        "package.json",
        "config.json",
        "tsconfig.json",
        "kv/shapes.txt",
        "fib-quant-kv-setXjson",
    ):
        assert not HOOK_PATTERN.search(other), other
