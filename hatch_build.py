"""Build hook: an editable install gets the package's schemas as files beside its source."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class EditableSchemas(BuildHookInterface[Any]):
    """Copy schemas/ into src/fib_quant_kv/schemas/ when an editable wheel is built."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        # A built wheel gets schemas/ through force-include (pyproject.toml). An editable install
        # imports fib_quant_kv from src/, and the package reads its schemas from its own folder,
        # so they must be there too: copied (git ignores the copy), never linked, since a link
        # is what the sdist dropped. Each editable install refreshes the copy from schemas/.
        if version != "editable":
            return
        source = Path(self.root, "schemas")
        target = Path(self.root, "src", "fib_quant_kv", "schemas")
        if target.is_symlink():
            target.unlink()
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
