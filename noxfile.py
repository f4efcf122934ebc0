"""Sessions that generate, check, test, lint, type-check and benchmark fib-quant-kv."""

from __future__ import annotations

import filecmp
import json
import shutil
import tempfile
from pathlib import Path

import nox

ROOT = Path(__file__).parent
GENERATED = ROOT / "generated" / "fib_quant_kv_models"

# The generator is pinned exactly: its output is committed and checked byte for byte.
GENERATOR = "datamodel-code-generator==0.89.0"
RUFF = "ruff==0.17.6"
MYPY = "mypy==2.4.1"

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
# `generate` rewrites files, so a plain `nox` only checks.
nox.options.sessions = ["check_generated", "lint", "typecheck", "tests", "wheel"]


def _generate(session: nox.Session, output: Path) -> None:
    session.install(GENERATOR)
    # Settings live in pyproject.toml; only the output folder is chosen here.
    session.run("datamodel-codegen", "--output", str(output), silent=True)


@nox.session
def generate(session: nox.Session) -> None:
    """Delete generated/ and regenerate the models from schemas/."""
    shutil.rmtree(GENERATED.parent, ignore_errors=True)
    _generate(session, GENERATED)


def _tree(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


@nox.session
def check_generated(session: nox.Session) -> None:
    """Fail when regenerating the models would change, add or remove any file in generated/."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh_root = Path(tmp) / "fib_quant_kv_models"
        _generate(session, fresh_root)
        fresh, committed = _tree(fresh_root), _tree(GENERATED)
        drift = sorted(
            [f"missing: {name}" for name in fresh.keys() - committed.keys()]
            + [f"not generated: {name}" for name in committed.keys() - fresh.keys()]
            + [
                f"differs: {name}"
                for name in fresh.keys() & committed.keys()
                if not filecmp.cmp(fresh[name], committed[name], shallow=False)
            ]
        )
    if drift:
        session.error(
            "generated/ has drifted from schemas/ (run `nox -s generate` and commit):\n  "
            + "\n  ".join(drift)
        )


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against the installed package (not the source tree)."""
    session.install(".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check (generated code is excluded; it is the generator's style)."""
    session.install(RUFF)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over src/ and generated/."""
    session.install(MYPY, "types-jsonschema", ".[test]")
    session.run("mypy", "--strict")


@nox.session
def wheel(session: nox.Session) -> None:
    """Build the wheel, reinstall it over the session's copy, and use it from another directory."""
    with tempfile.TemporaryDirectory() as tmp:
        session.run("python", "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp, str(ROOT))
        wheel_file = next(Path(tmp).glob("*.whl"))
        session.install(str(wheel_file), "--force-reinstall")
        session.chdir(tmp)
        session.run(
            "python", "-c", "import fib_quant_kv, fib_quant_kv_models; fib_quant_kv.KvTensorShapeV1"
        )
        session.run("fib-quant-kv", "schema", "fib_quant_kv_cache_layout_v1", silent=True)
        session.run("python", "-m", "fib_quant_kv", "schema")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmark our path beside python-jsonschema, pydantic and check-jsonschema; prints ratios."""
    session.install(".", "check-jsonschema")
    session.run("python", "tests/benchmarks/bench.py", *session.posargs)


@nox.session
def fuzz(session: nox.Session) -> None:
    """Fuzz decode, validate, digest and the CLI's file handling with a large budget."""
    session.install(".[test]")
    examples = session.posargs[0] if session.posargs else "20000"
    session.run(
        "pytest",
        "tests/test_fuzz.py",
        "-p",
        "no:cacheprovider",
        "--hypothesis-show-statistics",
        env={"FIB_QUANT_KV_FUZZ_EXAMPLES": examples},
    )


@nox.session
def mutation(session: nox.Session) -> None:
    """Mutation testing of the rules, codecs and fast path (settings in pyproject.toml)."""
    session.install(".[test]", "mutmut==3.8.1")
    shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    # The mutated copy of src/ must win over the installed package; generated/ is not mutated.
    env = {"PYTHONPATH": str(ROOT / "generated")}
    session.run("pip", "uninstall", "-y", "-q", "fib-quant-kv")
    session.run("mutmut", "run", "--max-children", "2", env=env, silent=True)
    session.run("mutmut", "export-cicd-stats", env=env, silent=True)
    stats = json.loads((ROOT / "mutants" / "mutmut-cicd-stats.json").read_text())
    score = stats["killed"] / stats["total"]
    session.log(f"mutation score: {stats['killed']}/{stats['total']} killed ({score:.1%})")
    session.log("survivors (each explained as equivalent, or to be killed):")
    session.run("mutmut", "results", env=env, success_codes=[0, 1])


# torch is installed first and alone: this machine's pip resolves it to a local CPU wheel,
# and transformers then finds it satisfied instead of pulling a CUDA build.
TORCH = "torch==2.13.0"
TRANSFORMERS = "transformers==5.24.0"


@nox.session(python="3.11")
def transformers(session: nox.Session) -> None:
    """Derived KV shapes against the real caches of tiny transformers models (CPU torch)."""
    session.install(TORCH)
    session.run("python", "-c", "import torch; assert torch.version.cuda is None, torch.version")
    session.install(TRANSFORMERS, ".[test]")
    session.run(
        "pytest",
        "tests/test_transformers_caches.py",
        "-p",
        "no:cacheprovider",
        "-q",
        *session.posargs,
        # Here a missing transformers fails the run instead of skipping the module.
        env={"FIB_QUANT_KV_REQUIRE_TRANSFORMERS": "1", "TRANSFORMERS_VERBOSITY": "error"},
    )


nox.options.sessions.append("transformers")
