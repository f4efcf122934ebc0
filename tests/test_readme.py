"""The README's library example runs as written, from the repository root, and type-checks."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

from tests.shared import ROOT


def python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks: list[str] = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README has no Python example"
    return blocks


def test_readme_python_example_runs() -> None:
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out):
            for block in python_blocks():
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


# A line that must fail to type-check where the package's types are seen: if it passes, mypy saw
# the package as untyped (Any), and the blocks' passing would prove nothing.
SENTINEL = 'wrong: int = fib_quant_kv.decode(b"")  # the one error expected\n'


def test_readme_python_blocks_pass_mypy_strict(tmp_path: Path) -> None:
    """A typed user can copy every Python block of the README (run by `nox -s typecheck`)."""
    api = pytest.importorskip("mypy.api", reason="mypy is installed by `nox -s typecheck`")
    source = tmp_path / "readme_blocks.py"
    source.write_text("import fib_quant_kv\n" + SENTINEL + "\n".join(python_blocks()))
    # As a user's project: its own (empty) settings, not this repository's.
    settings = tmp_path / "mypy.ini"
    settings.write_text("[mypy]\n")
    out, err, status = api.run(
        ["--strict", "--no-incremental", "--config-file", str(settings), str(source)]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1, out + err
    assert errors[0].startswith(f"{source}:2: error: Incompatible types in assignment"), out
    assert status == 1


def layout_modules() -> set[str]:
    """The modules the README's layout names under src/fib_quant_kv/, as paths from there."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1].split("```\n", 2)[1]
    found: set[str] = set()
    folders: list[str] = []
    inside = False
    for line in block.splitlines():
        name = line.split()[0] if line.strip() else ""
        depth = (len(line) - len(line.lstrip())) // 2
        if depth == 0:
            inside = name == "src/fib_quant_kv/"
            continue
        if not inside or not name or line[depth * 2 :].startswith(" "):
            continue  # outside the package, or a description's second line
        folders = folders[: depth - 1]
        if name.endswith("/"):
            folders.append(name)
        elif name.endswith(".py"):
            found.add("".join(folders) + name)
    return found


def test_the_layout_names_every_module_of_the_package() -> None:
    package = ROOT / "src" / "fib_quant_kv"
    modules = {p.relative_to(package).as_posix() for p in package.rglob("*.py")}
    assert layout_modules() == modules
