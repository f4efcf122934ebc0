"""Where a run reads documents from: files on disk, or documents held in memory."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from typing import Protocol

from fib_quant_kv.files import UnreadablePath, read_limited


class Store(Protocol):
    """Where a run reads documents: files on disk, or documents held in memory."""

    def read(self, path: str, *, regular: bool = False) -> bytes:
        """The bytes of a document; raises UnreadablePath. `regular`: a walk listed the path
        as a regular file, which files on disk are read the faster for (see read_limited)."""
        ...

    def names(self, folder: str) -> list[str]:
        """The file names in a folder (empty when it cannot be listed)."""
        ...

    def has(self, path: str) -> bool:
        """Whether a folder lists this name (its set file, say), whatever it is."""
        ...

    def is_link(self, path: str) -> bool:
        """Whether a path is a symbolic link (whose document may lie outside its folder)."""
        ...


class Files:
    """Documents on disk."""

    def __init__(self) -> None:
        self._listed: dict[str, list[str]] = {}

    def read(self, path: str, *, regular: bool = False) -> bytes:
        return read_limited(path, regular=regular)

    def names(self, folder: str) -> list[str]:
        listed = self._listed.get(folder)
        if listed is None:
            try:
                listed = sorted(os.listdir(folder or "."))
            except OSError:
                listed = []
            self._listed[folder] = listed
        return listed

    def has(self, path: str) -> bool:
        # One lstat: a run asks this of each folder, and listing one of thousands costs more.
        return os.path.lexists(path)

    def is_link(self, path: str) -> bool:
        return os.path.islink(path)


class Memory:
    """Documents held in memory, by name; names with / are in folders."""

    def __init__(self, documents: Mapping[str, bytes]) -> None:
        self.documents = dict(documents)

    def read(self, path: str, *, regular: bool = False) -> bytes:
        try:
            return self.documents[path]
        except KeyError:
            raise UnreadablePath(path, "no such document") from None

    def names(self, folder: str) -> list[str]:
        return sorted(
            posixpath.basename(name) for name in self.documents if posixpath.dirname(name) == folder
        )

    def has(self, path: str) -> bool:
        return posixpath.basename(path) in self.names(posixpath.dirname(path))

    def is_link(self, path: str) -> bool:
        return False
