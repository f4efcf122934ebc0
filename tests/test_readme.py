"""The README's library example runs as written, from the repository root."""

from __future__ import annotations

import contextlib
import io
import os
import re

from tests.conftest import ROOT


def test_readme_python_example_runs() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README has no Python example"
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out):
            for block in blocks:
                exec(compile(block, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    printed = out.getvalue().splitlines()
    assert printed[0].startswith("blake3:72f96f28")
    assert printed[1] == "32"
    assert printed[2].startswith(
        "corrupt_payload /tokens_per_page tokens_per_page must be in 1..=8192"
    )
    assert printed[3].startswith("True blake3:72f96f28")
