"""Writing to disk: a file atomically, and a plan's folder without mixing two plans."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from fib_quant_kv.files import CONTRACT_NAME, SET_FILE

if TYPE_CHECKING:
    from fib_quant_kv.codec import Encoding
    from fib_quant_kv.hf.plan import Plan


class WriteRefused(Exception):
    """A file or folder that cannot be written as asked; the message says why and what to do."""


def write_atomic(data: bytes, path: str) -> None:
    """Write a file beside its target and rename it over the target: a reader never sees a
    partial file, and a failure leaves no temporary file behind."""
    import tempfile  # only writing needs it; validating many files starts faster without

    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fib-quant-kv-", suffix=".tmp")
    except OSError as exc:
        raise WriteRefused(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        # mkstemp makes the file private; give it the mode any new file of the user's gets.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        os.unlink(tmp)
        raise WriteRefused(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        os.unlink(tmp)
        raise


def write_plan(planned: Plan, folder: str, encoding: Encoding = "json") -> list[tuple[str, str]]:
    """Write a plan's documents and its set file into a folder, each atomically; an earlier
    plan's documents that this one does not write again are removed, and a folder holding
    contract documents no set file lists is refused (WriteRefused), so two plans never mix.

    Returns each file written, the set file last, with its digest.
    """
    from fib_quant_kv.digests import encode
    from fib_quant_kv.sets import Memory, create_set, set_text

    files = {
        f"{name}.{encoding}": encode(doc, encoding) + (b"\n" if encoding == "json" else b"")
        for name, doc in planned.documents.items()
    }
    contract_set = create_set("", Memory(files))
    stale = _earlier_plan(folder, set(files))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise WriteRefused(f"{folder}: cannot make the folder: {exc.strerror or exc}") from None
    written: list[tuple[str, str]] = []
    for name, data in files.items():
        target = os.path.join(folder, name)
        write_atomic(data, target)
        written.append((target, planned.digests[name.rsplit(".", 1)[0]]))
    set_path = os.path.join(folder, SET_FILE)
    write_atomic(set_text(contract_set), set_path)
    for name in stale:
        try:
            os.unlink(os.path.join(folder, name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise WriteRefused(f"{folder}/{name}: cannot remove: {exc.strerror or exc}") from None
    written.append((set_path, contract_set.digest))
    return written


def _earlier_plan(folder: str, writing: set[str]) -> list[str]:
    """The documents of an earlier plan in a folder that this plan does not write again.

    Only contract documents the folder's set file lists are an earlier plan's. Refused: other
    contract documents there (they may not be a plan's), and a set file that cannot be read;
    either way the folder would end up holding a mix.
    """
    from fib_quant_kv.sets import Files, load_set

    if not os.path.exists(folder):
        return []
    if not os.path.isdir(folder):
        raise WriteRefused(f"{folder}: not a folder: expected a folder to write the plan into")
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise WriteRefused(f"{folder}: cannot list: {exc.strerror or exc}") from None
    present = {name for name in names if CONTRACT_NAME.search(name)}
    listed: set[str] = set()
    if SET_FILE in names:
        loaded = load_set(Files(), os.path.join(folder, SET_FILE))
        if loaded.violations:
            first = loaded.violations[0]
            raise WriteRefused(
                f"{folder}/{SET_FILE}::{first.pointer}: {first.message}; cannot tell which "
                "documents an earlier plan wrote: fix or remove the set file"
            )
        # Entries are file names of this folder; only contract documents are ever removed.
        listed = {os.path.basename(path) for path in loaded.entries} & present
    foreign = sorted(present - listed - writing)
    if foreign:
        raise WriteRefused(
            f"{folder}: holds contract documents no set file lists ({', '.join(foreign)}): "
            "choose another folder or remove them, so the plan is not mixed with them"
        )
    return sorted(listed - writing)
