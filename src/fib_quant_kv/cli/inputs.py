"""The CLI's inputs: paths expanded to documents, each read with a size limit, one at a time."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from fib_quant_kv.codec.limits import MAX_DOCUMENT_BYTES

STDIN = "-"
SUFFIXES = (".json", ".cbor")


class UnreadablePath(Exception):
    """A path that cannot be read as a document: missing, forbidden, special, or too large."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Source:
    """One document's bytes, or why they could not be read."""

    path: str
    data: bytes | None = None
    problem: str | None = None


def read_limited(path: str) -> bytes:
    """Read a regular file or standard input, refusing more than the document size limit."""
    if path == STDIN:
        data = sys.stdin.buffer.read(MAX_DOCUMENT_BYTES + 1)
        if len(data) > MAX_DOCUMENT_BYTES:
            raise UnreadablePath(path, f"larger than the {MAX_DOCUMENT_BYTES}-byte document limit")
        return data
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not hang; it is refused just below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UnreadablePath(path, f"cannot open: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UnreadablePath(path, "is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise UnreadablePath(path, "not a regular file: expected a document file")
        if info.st_size > MAX_DOCUMENT_BYTES:
            raise UnreadablePath(
                path,
                f"{info.st_size} bytes is larger than the {MAX_DOCUMENT_BYTES}-byte document limit",
            )
        # Read what fstat promised and one byte more, to notice a file that grew (or one, like
        # those in /proc, whose size fstat does not know); never ask for the whole limit at
        # once, which would allocate a megabyte for every small file.
        chunks: list[bytes] = []
        total, want = 0, info.st_size + 1
        while total <= MAX_DOCUMENT_BYTES:
            chunk = os.read(fd, want)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total < want and info.st_size:
                break  # a short read of a regular file of known size: its end
            want = 1 << 16
        data = b"".join(chunks)
    except OSError as exc:
        raise UnreadablePath(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_DOCUMENT_BYTES:  # it grew after fstat
        raise UnreadablePath(path, f"larger than the {MAX_DOCUMENT_BYTES}-byte document limit")
    return data


def _walk(root: str) -> Iterator[str | UnreadablePath]:
    """Document files under a directory, sorted, without following symbolic links (no loops)."""
    errors: list[OSError] = []
    for folder, dirs, files in os.walk(root, onerror=errors.append):
        while errors:
            exc = errors.pop()
            yield UnreadablePath(exc.filename or folder, f"cannot list: {exc.strerror or exc}")
        dirs.sort()
        for name in sorted(files):
            if name.endswith(SUFFIXES):
                yield os.path.join(folder, name)
    for exc in errors:
        yield UnreadablePath(exc.filename or root, f"cannot list: {exc.strerror or exc}")


def expand(paths: list[str]) -> Iterator[str | UnreadablePath]:
    """Each named path, with directories searched recursively for *.json and *.cbor."""
    for path in paths:
        if path != STDIN and os.path.isdir(path):
            yield from _walk(path)
        else:
            yield path


def sources(paths: list[str]) -> Iterator[Source]:
    """Documents one at a time, so memory stays flat however many files there are."""
    for item in expand(paths):
        if isinstance(item, UnreadablePath):
            yield Source(item.path, problem=item.reason)
            continue
        try:
            yield Source(item, data=read_limited(item))
        except UnreadablePath as exc:
            yield Source(item, problem=exc.reason)
