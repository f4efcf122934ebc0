"""Documents on disk: a path read with the size limit, a folder walked for contract documents."""

from __future__ import annotations

import functools
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator
from typing import NamedTuple

from fib_quant_kv.codec import Encoding, detect
from fib_quant_kv.codec.limits import MAX_DOCUMENT_BYTES, SIZE_LIMIT
from fib_quant_kv.errors import DecodeError

STDIN = "-"
SUFFIXES = (".json", ".cbor")

# The file that binds a folder's documents into a set (fib_quant_kv.sets).
SET_FILE = "fib-quant-kv-set.json"
# A file named like a contract document: key_shape.json, llama-value_layout.cbor,
# page_geometry.json.
_CONTRACT_FILE = r"([^/]*[_-])?(shape|layout|geometry)\.(json|cbor)"
CONTRACT_NAME = re.compile(rf"(^|/){_CONTRACT_FILE}$")
# The files `validate --git` (the pre-commit hook) judges: contract documents and set files.
HOOK_PATTERN = re.compile(rf"(^|/)({_CONTRACT_FILE}|{re.escape(SET_FILE)})$")

# Folders a walk never enters: tools' caches and installed packages hold JSON of their own.
SKIPPED_FOLDERS = frozenset({"node_modules", "__pycache__", "site-packages"})


def encoding_of(path: str, data: bytes) -> Encoding:
    """The encoding a file is read in: a .cbor file's is CBOR unless its content opens as JSON
    does (then JSON: a .cbor file of JSON is read as JSON); any other's, its content's."""
    if path.endswith(".cbor") and data.lstrip(b" \t\r\n")[:1] not in (b"{", b"["):
        return "cbor"
    return detect(data)


def encoding_note(path: str, data: bytes) -> str | None:
    """What to add to a decoding error about a file whose name says one encoding: what its
    content read as, where that is another, or that a .cbor file is no CBOR document."""
    named = {".json": "JSON", ".cbor": "CBOR"}.get(os.path.splitext(path)[1])
    if named is None or not data:
        return None
    found = encoding_of(path, data).upper()
    if found == named:
        if named == "CBOR":
            return (
                f"the file is named .cbor but is not a CBOR document (first byte 0x{data[0]:02x})"
            )
        return None
    return (
        f"the file is named {os.path.splitext(path)[1]} but its content reads as {found} "
        f"(first byte 0x{data[0]:02x}): expected {named}"
    )


class UnreadablePath(Exception):
    """A path that cannot be read as a document: missing, forbidden, or special."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def too_large(path: str, size: int | None) -> DecodeError:
    """The refusal of a document past the size limit: a document's fault (decode.size_limit),
    not the path's."""
    said = f"{size} bytes is larger" if size is not None else "larger"
    return DecodeError(
        f"{said} than the {MAX_DOCUMENT_BYTES}-byte document limit: refused unread",
        path=path,
        rule=SIZE_LIMIT.id,
    )


# What one read asks for: a whole document, as documents go, and the step past a file's size.
_CHUNK = 1 << 16


def read_limited(path: str, *, regular: bool = False) -> bytes:
    """Read a regular file or standard input, refusing more than the document size limit (a
    DecodeError of rule decode.size_limit); a path that cannot be read is UnreadablePath.

    `regular`: a walk has just listed the path as a regular file. Its fstat (a third of the
    cost of reading a small file, on every file of a folder) is then spared unless the file
    fills one read: a smaller one is read whole. A file swapped for something else since the
    listing is still read within the limit, and never waited on.
    """
    if path == STDIN:
        return _read_stdin()
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not hang; it is refused just below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UnreadablePath(path, f"cannot open: {exc.strerror or exc}") from None
    except ValueError:  # a NUL byte, which no file name holds
        raise UnreadablePath(path, "cannot open: a NUL byte in the file name") from None
    try:
        if regular:
            # A regular file's short read is its end (as below); a full one is read again
            # from the start, with the checks.
            first = os.read(fd, _CHUNK)
            if len(first) < _CHUNK:
                return first
            os.lseek(fd, 0, os.SEEK_SET)
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UnreadablePath(path, "is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise UnreadablePath(path, "not a regular file: expected a document file")
        if info.st_size > MAX_DOCUMENT_BYTES:
            raise too_large(path, info.st_size)
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
            want = _CHUNK
        data = b"".join(chunks)
    except OSError as exc:
        raise UnreadablePath(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_DOCUMENT_BYTES:  # it grew after fstat
        raise too_large(path, None)
    return data


def _read_stdin() -> bytes:
    # A program started with standard input closed (`<&-`) has no sys.stdin at all.
    if sys.stdin is None:
        raise UnreadablePath(STDIN, "standard input is closed: expected a document on it")
    try:
        data = sys.stdin.buffer.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise UnreadablePath(STDIN, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise too_large(STDIN, None)
    return data


def _entered(folder: str, name: str) -> bool:
    """Whether a walk goes into a sub-folder: not hidden, not a cache, not a virtualenv."""
    if name.startswith(".") or name in SKIPPED_FOLDERS:
        return False
    return not os.path.exists(os.path.join(folder, name, "pyvenv.cfg"))


class Named(NamedTuple):
    """A path to judge, and whether the user named it (a walk's files may be skipped)."""

    path: str
    named: bool
    # The walk that found it listed it as a regular file (see read_limited).
    regular: bool = False


# A walked file's Named, made in one C call (a frozen dataclass set each field through
# object.__setattr__, and a named tuple's own constructor is a Python function): a walk makes
# one for each of thousands of files.
_walked: Callable[[tuple[str, bool, bool]], Named] = functools.partial(tuple.__new__, Named)


def walk(root: str) -> Iterator[Named | UnreadablePath]:
    """JSON and CBOR files under a folder, sorted, without following symbolic links (no loops).

    Hidden folders, virtual environments, node_modules and __pycache__ are not entered. A
    folder's files come before its sub-folders'; a folder that cannot be listed is an
    UnreadablePath where its files would have been. Each file says whether its folder listed
    it as a regular file (not a link, nor anything special), which spares reading it a check.
    """
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=_name)
        except OSError as exc:
            yield UnreadablePath(exc.filename or folder, f"cannot list: {exc.strerror or exc}")
            continue
        # os.path.join(folder, name) for each name, with the separator decided once a folder.
        inside = os.path.join(folder, "")
        entered: list[str] = []
        for entry in entries:
            name = entry.name
            if _is_dir(entry):
                path = inside + name
                if _entered(folder, name) and not os.path.islink(path):
                    entered.append(path)
            elif name.endswith(SUFFIXES):
                yield _walked((inside + name, False, _is_regular(entry)))
        pending.extend(reversed(entered))  # the first sub-folder is walked next


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """Whether an entry is a folder or a link to one (listed, as os.walk lists them, but a link
    is not entered)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_regular(entry: os.DirEntry[str]) -> bool:
    """Whether the listing says an entry is a regular file itself (no system call where the
    folder's listing gives each entry's type, as on Linux)."""
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def expand(paths: list[str]) -> Iterator[Named | UnreadablePath]:
    """Each named path, with folders walked for *.json and *.cbor files."""
    for path in paths:
        if path != STDIN and os.path.isdir(path):
            yield from walk(path)
        else:
            yield Named(path, named=True)
