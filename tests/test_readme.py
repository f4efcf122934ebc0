"""The README's library example runs as written, from the repository root."""

from __future__ import annotations

import contextlib
import io
import os
import re

from tests.shared import ROOT


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
        "geometry.tokens_per_page_range corrupt_payload /tokens_per_page "
        "tokens_per_page must be in 1..=8192"
    )
    assert printed[3].startswith("True blake3:72f96f28")
    findings = [line for line in printed if line.startswith("examples/")]
    assert len(findings) == 11
    assert all(" True " in line for line in findings)
    assert (
        "examples/llama-3.1-8b/key_layout.json True ['examples/llama-3.1-8b/key_shape.json']"
        in (findings)
    )
    assert printed[-2] == "True"
    assert printed[-1] == fib_quant_kv_set_digest()


def fib_quant_kv_set_digest() -> str:
    import json

    path = ROOT / "examples" / "llama-3.1-8b" / "fib-quant-kv-set.json"
    digest: str = json.loads(path.read_text())["digest"]
    return digest
