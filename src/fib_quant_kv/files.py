"""Documents on disk: a path read with the size limit, a folder walked for contract documents."""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass

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


def read_limited(path: str) -> bytes:
    """Read a regular file or standard input, refusing more than the document size limit (a
    DecodeError of rule decode.size_limit); a path that cannot be read is UnreadablePath."""
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
            want = 1 << 16
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


def walk(root: str) -> Iterator[str | UnreadablePath]:
    """JSON and CBOR files under a folder, sorted, without following symbolic links (no loops).

    Hidden folders, virtual environments, node_modules and __pycache__ are not entered.
    """
    errors: list[OSError] = []
    for folder, dirs, files in os.walk(root, onerror=errors.append):
        while errors:
            exc = errors.pop()
            yield UnreadablePath(exc.filename or folder, f"cannot list: {exc.strerror or exc}")
        dirs[:] = sorted(name for name in dirs if _entered(folder, name))
        # os.path.join(folder, name) for each name, with the separator decided once a folder.
        inside = os.path.join(folder, "")
        yield from [inside + name for name in sorted(files) if name.endswith(SUFFIXES)]
    for exc in errors:
        yield UnreadablePath(exc.filename or root, f"cannot list: {exc.strerror or exc}")


@dataclass(frozen=True, slots=True)
class Named:
    """A path to judge, and whether the user named it (a walk's files may be skipped)."""

    path: str
    named: bool


def expand(paths: list[str]) -> Iterator[Named | UnreadablePath]:
    """Each named path, with folders walked for *.json and *.cbor files."""
    for path in paths:
        if path != STDIN and os.path.isdir(path):
            for found in walk(path):
                yield found if isinstance(found, UnreadablePath) else Named(found, named=False)
        else:
            yield Named(path, named=True)
