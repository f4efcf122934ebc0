"""Sessions that generate, check, test, lint, type-check and benchmark fib-quant-kv."""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

import nox
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent
GENERATED = ROOT / "generated" / "fib_quant_kv_models"

# Every Python the package supports (the classifiers in pyproject.toml name the same).
PYTHONS = ["3.11", "3.12", "3.13"]

# The generator is pinned exactly: its output is committed and checked byte for byte.
GENERATOR = "datamodel-code-generator==0.89.0"
RUFF = "ruff==0.17.6"
MYPY = "mypy==2.4.1"

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
# CI must run every supported Python; elsewhere a Python the machine lacks is skipped, not failed.
nox.options.error_on_missing_interpreters = os.environ.get("CI", "") not in ("", "0", "false")
# `generate` rewrites files, so a plain `nox` only checks.
nox.options.sessions = [
    "check_generated",
    "lint",
    "typecheck",
    "tests",
    "wheel",
    "minimum",
    "hook",
    "transformers",
]


def _runs(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", ""], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _pyenv_root() -> Path | None:
    if root := os.environ.get("PYENV_ROOT"):
        return Path(root)
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return None
    found = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
    return Path(found.stdout.strip()) if found.returncode == 0 and found.stdout.strip() else None


def _find_pythons() -> None:
    """Put pyenv's build of each supported Python on PATH where `pythonX.Y` does not run.

    nox finds an interpreter as `pythonX.Y` on PATH. pyenv's shims are on PATH for every version
    it has, but a shim only runs the versions selected (`pyenv global`), so nox would take the
    shim and fail. The newest pyenv build of that X.Y is used instead, whatever is selected.
    """
    root = _pyenv_root()
    for version in PYTHONS:
        name = f"python{version}"
        found = shutil.which(name)
        if root is None or (found is not None and _runs(found)):
            continue
        builds = [
            d
            for d in (root / "versions").glob(f"{version}.*")
            if re.fullmatch(rf"{re.escape(version)}\.\d+", d.name) and _runs(str(d / "bin" / name))
        ]
        if builds:
            newest = max(builds, key=lambda d: int(d.name.rsplit(".", 1)[1]))
            os.environ["PATH"] = f"{newest / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"


_find_pythons()


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
    # Inside the repository: the generator's formatter takes its line length from the
    # pyproject.toml above its output, so output elsewhere would wrap lines differently.
    with tempfile.TemporaryDirectory(dir=ROOT, prefix=".check-generated-") as tmp:
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


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite against the installed package (not the source tree), on each Python."""
    session.install(".[test]")
    session.run("pytest", *session.posargs)


def _floors() -> dict[str, str]:
    """The `>=` floor of every runtime and test requirement in pyproject.toml, by package."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    floors: dict[str, str] = {}
    for text in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        requirement = Requirement(text)
        found = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        if len(found) != 1:
            raise ValueError(f"{text!r} in pyproject.toml must state one floor, as `>=`")
        name = canonicalize_name(requirement.name)
        # A package listed twice (numpy: the numpy extra and the test extra) has one floor.
        if floors.setdefault(name, found[0]) != found[0]:
            raise ValueError(f"{name} has two floors in pyproject.toml: {floors[name]}, {found[0]}")
    return floors


@nox.session(python=PYTHONS[0])
def minimum(session: nox.Session) -> None:
    """Run the test suite against the lowest release of each dependency pyproject.toml allows."""
    floors = _floors()
    constraints = Path(session.create_tmp()) / "floors.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(floors.items())), "utf-8")
    # Editable, so this session also proves the package finds its schemas from a source checkout.
    session.install("-c", str(constraints), "-e", ".[test]")
    # Read back from the environment: a floor pip could not honour fails here, not silently.
    listed = session.run("python", "-m", "pip", "list", "--format=json", silent=True)
    installed = {canonicalize_name(d["name"]): d["version"] for d in json.loads(str(listed))}
    wrong = [
        f"{name} {installed.get(name, 'missing')} (floor {floor})"
        for name, floor in sorted(floors.items())
        if name not in installed or Version(installed[name]) != Version(floor)
    ]
    if wrong:
        session.error(f"not at their floors: {wrong}")
    session.log("at their floors: " + ", ".join(f"{n}=={installed[n]}" for n in sorted(floors)))
    session.run("pytest", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Write docs/ from the schemas and the rules' declarations (the suite fails on drift)."""
    session.install(".")
    session.run("python", "-m", "fib_quant_kv.reference", str(ROOT / "docs"))


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
    # The README's Python, as a typed user who copies it would check it.
    session.run("pytest", "tests/test_readme.py", "-p", "no:cacheprovider", "-q")


def _check_archives(session: nox.Session, sdist: Path, wheel_file: Path) -> None:
    """Both archives carry LICENSE as it is here; the sdist holds no link; the wheel its schemas."""
    license_text = (ROOT / "LICENSE").read_bytes()
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[-1]: m for m in tar.getmembers()}
        links = [name for name, m in members.items() if m.issym() or m.islnk()]
        if links:
            session.error(f"{sdist.name} holds links, which a wheel built from it loses: {links}")
        license_file = tar.extractfile(members["LICENSE"]) if "LICENSE" in members else None
        if license_file is None or license_file.read() != license_text:
            session.error(f"{sdist.name} lacks LICENSE, or holds another text")
    with zipfile.ZipFile(wheel_file) as archive:
        names = archive.namelist()
        licenses = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        if len(licenses) != 1 or archive.read(licenses[0]) != license_text:
            session.error(f"{wheel_file.name} lacks dist-info/licenses/LICENSE, or holds another")
        for package in ("fib_quant_kv", "fib_quant_kv_models"):
            if f"{package}/py.typed" not in names:
                session.error(f"{wheel_file.name} lacks {package}/py.typed: it would not be typed")
        schemas = sorted(p.name for p in (ROOT / "schemas").iterdir())
        shipped = sorted(
            n.rsplit("/", 1)[1] for n in names if n.startswith("fib_quant_kv/schemas/")
        )
        if shipped != schemas:
            session.error(f"{wheel_file.name} ships schemas {shipped}, not {schemas}")


@nox.session
def wheel(session: nox.Session) -> None:
    """Build the sdist and a wheel from it; install that wheel alone and test it from elsewhere."""
    session.install("build>=1")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        dist = tmp / "dist"
        # Without --sdist or --wheel, build makes the sdist and then the wheel from that sdist, so
        # whatever the sdist leaves out is missing from the wheel too, as it would be for users.
        session.run("python", "-m", "build", "--outdir", str(dist), str(ROOT))
        [sdist] = dist.glob("*.tar.gz")
        [wheel_file] = dist.glob("*.whl")
        _check_archives(session, sdist, wheel_file)

        # A fresh environment holding the wheel, its dependencies and the test tools, nothing else.
        env = tmp / "env"
        session.run("python", "-m", "venv", str(env))
        python, command = str(env / "bin" / "python"), str(env / "bin" / "fib-quant-kv")
        session.run(python, "-m", "pip", "install", "-q", f"{wheel_file}[test]", external=True)

        session.chdir(tmp)
        # The README's first command, from outside the repository.
        session.run(command, "validate", str(ROOT / "examples"), external=True)
        session.run(python, "-m", "fib_quant_kv", "schema", silent=True, external=True)
        # The suite imports the installed wheel: the repository root that pytest puts on sys.path
        # holds src/ and generated/, never the packages themselves.
        session.run(
            python,
            "-c",
            "import sys, fib_quant_kv, fib_quant_kv_models as m; "
            "assert all(x.__file__.startswith(sys.prefix) for x in (fib_quant_kv, m))",
            external=True,
        )
        session.run(
            python,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            str(ROOT / "tests"),
            *session.posargs,
            external=True,
        )


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmark our path beside python-jsonschema, pydantic and check-jsonschema; prints ratios."""
    session.install(".", "check-jsonschema", "numpy")
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
    # Editable: that install copies schemas/ into src/fib_quant_kv/, which mutmut copies whole.
    session.install("-e", ".[test]", "mutmut==3.8.1")
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


# torch is installed first and alone, and the session asserts it is a CPU build: transformers
# then finds it satisfied instead of pulling a CUDA build of several gigabytes.
TORCH = "torch==2.13.0"
TRANSFORMERS = "transformers==5.24.0"


PRE_COMMIT = "pre-commit==4.7.0"


@nox.session(python="3.11")
def hook(session: nox.Session) -> None:
    """The hook as users install it: the real pre-commit builds it from this tree and runs it."""
    session.install(PRE_COMMIT, ".[test]")
    session.run(
        "pytest",
        "tests/test_precommit.py",
        "-p",
        "no:cacheprovider",
        "-q",
        *session.posargs,
        # Here a missing pre-commit fails the run instead of skipping the module.
        env={"FIB_QUANT_KV_REQUIRE_PRECOMMIT": "1"},
    )


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
