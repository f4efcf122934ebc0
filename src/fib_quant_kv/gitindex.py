"""A git repository's contract documents: what git tracks, and what a commit deletes or renames.

A pre-commit hook is handed the files that still exist, so a commit that deletes or renames a
shape its layouts and set file still need would pass it. The hook judges instead every contract
document git tracks (so a document left without its shape fails on its own), and asks git which
documents the commit deletes or renames, to say which of them are still needed and by what.
"""

from __future__ import annotations

import os
import posixpath
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from fib_quant_kv.files import HOOK_PATTERN, Named, UnreadablePath, read_limited


class GitUnavailable(Exception):
    """git cannot say what it tracks here (no repository, no git): the run cannot see a commit."""


def _git(*args: str) -> bytes:
    try:
        done = subprocess.run(["git", *args], capture_output=True, check=False, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise GitUnavailable(f"cannot run git: {exc}") from None
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitUnavailable(f"git {args[0]} failed: {reason[-1] if reason else 'no reason given'}")
    return done.stdout


def _paths(output: bytes) -> list[str]:
    return [os.fsdecode(p) for p in output.split(b"\0") if p]


@dataclass(frozen=True, slots=True)
class Removal:
    """A contract document the commit deletes, or renames (to `renamed_to`)."""

    path: str
    renamed_to: str | None = None


class Tracked:
    """The contract documents and set files git tracks under some paths, as a run reads them:
    from the working tree (which pre-commit makes the commit's by stashing what is unstaged),
    listing only tracked files, so an untracked file never stands in for a tracked one."""

    def __init__(self, paths: list[str]) -> None:
        listed = _paths(_git("ls-files", "-z", "--cached", "--deduplicate", "--", *paths))
        self._tracked = set(listed)
        self.files = sorted(p for p in listed if HOOK_PATTERN.search(p))
        self._folders: dict[str, list[str]] = {}
        for path in self.files:
            folder, name = posixpath.split(path)
            self._folders.setdefault(folder, []).append(name)

    def items(self) -> Iterator[Named]:
        """The tracked documents, as a walk yields them (not named: a stray JSON is skipped)."""
        for path in self.files:
            yield Named(path, named=False)

    def is_tracked(self, path: str) -> bool:
        """Whether git tracks this path (a set file may name a shape outside the paths given)."""
        path = posixpath.normpath(path)
        if path not in self._tracked and _paths(_git("ls-files", "-z", "--cached", "--", path)):
            self._tracked.add(path)
        return path in self._tracked

    def read(self, path: str, *, regular: bool = False) -> bytes:
        if not self.is_tracked(path):
            raise UnreadablePath(path, "not tracked by git, so not part of the commit")
        return read_limited(path, regular=regular)

    def names(self, folder: str) -> list[str]:
        return list(self._folders.get(folder, ()))

    def has(self, path: str) -> bool:
        folder, name = posixpath.split(path)
        return name in self._folders.get(folder, ())

    def is_link(self, path: str) -> bool:
        return os.path.islink(path)


def removals() -> list[Removal]:
    """The contract documents the commit being made deletes or renames away: the index against
    HEAD, or, when pre-commit judges a range (PRE_COMMIT_FROM_REF and PRE_COMMIT_TO_REF), that
    range."""
    start, end = os.environ.get("PRE_COMMIT_FROM_REF"), os.environ.get("PRE_COMMIT_TO_REF")
    diff = ["diff", "--name-status", "-z", "-M", "--diff-filter=DR", "--relative"]
    if start and end:
        output = _git(*diff, f"{start}...{end}", "--")
    else:
        output = _git(*diff, "--cached", "--")
    fields = _paths(output)
    found: list[Removal] = []
    index = 0
    while index < len(fields):
        status = fields[index]
        if status.startswith("R"):
            old, new = fields[index + 1], fields[index + 2]
            index += 3
            if HOOK_PATTERN.search(old):
                found.append(Removal(old, new))
        else:
            old = fields[index + 1]
            index += 2
            if HOOK_PATTERN.search(old):
                found.append(Removal(old))
    return found
