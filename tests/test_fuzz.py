"""Fuzzing: whatever the bytes or the model fields, only the package's own errors come out.

The regular suite runs a short budget; `nox -s fuzz` sets FIB_QUANT_KV_FUZZ_EXAMPLES high and
prints how many inputs each target tried.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fib_quant_kv as fqk
from fib_quant_kv.cli import main
from tests.shared import EXAMPLES, VECTORS
from tests.strategies import ANY_BYTES

BUDGET = settings(
    max_examples=int(os.environ.get("FIB_QUANT_KV_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)

SHAPE = fqk.decode((EXAMPLES / "key_shape.json").read_bytes())
assert isinstance(SHAPE, fqk.KvTensorShapeV1)

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from(
    [*sorted({k for c in fqk.markers() for k in fqk.schema(c)["properties"]}), "x", ""]
)


@st.composite
def near_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Documents close to valid ones: a seed's fields with some replaced, dropped or added."""
    base = dict(
        json.loads(draw(st.sampled_from([c["doc"] for c in VECTORS if c["expect"]["valid"]])))
    )
    for _ in range(draw(st.integers(0, 3))):
        key = draw(FIELD_NAMES)
        if draw(st.booleans()):
            base[key] = draw(JSON_VALUES)
        else:
            base.pop(key, None)
    return base


def _only_own_errors(data: bytes) -> None:
    try:
        doc = fqk.decode(data)
    except fqk.FibQuantKvError as exc:
        assert exc.code in ("decode", "schema")
        assert exc.message
        str(exc).encode("utf-8")  # always printable
        return
    shape = SHAPE if not isinstance(doc, fqk.KvTensorShapeV1) else None
    try:
        digest = fqk.digest(doc, shape)
    except fqk.FibQuantKvError:
        assert fqk.collect_violations(doc, shape)
        return
    assert digest.startswith("blake3:")
    assert fqk.decode(fqk.encode(doc, "cbor")) == doc


@BUDGET
@given(ANY_BYTES)
def test_decode_validate_digest_raise_only_their_own_errors(data: bytes) -> None:
    _only_own_errors(data)


@BUDGET
@given(near_documents(), st.sampled_from(["json", "cbor"]))
def test_near_documents_in_either_encoding(value: dict[str, Any], encoding: str) -> None:
    try:
        data = json.dumps(value).encode() if encoding == "json" else cbor2.dumps(value)
    except (ValueError, TypeError, OverflowError):  # not encodable: nothing to decode
        return
    _only_own_errors(data)


@BUDGET
@given(ANY_BYTES)
def test_check_never_raises_and_agrees_with_decode(data: bytes) -> None:
    verdict = fqk.check(data, SHAPE)
    try:
        doc = fqk.decode(data)
    except fqk.FibQuantKvError as exc:
        assert verdict.violations[0] == exc.violation
        return
    assert verdict.document == doc
    assert (verdict.digest is None) == bool(verdict.violations)


@BUDGET
@given(st.sampled_from(["shape", "layout", "geometry"]), st.dictionaries(FIELD_NAMES, JSON_VALUES))
def test_models_built_in_code_from_anything(kind: str, changes: dict[str, Any]) -> None:
    model = {
        "shape": fqk.KvTensorShapeV1,
        "layout": fqk.KvCacheLayoutV1,
        "geometry": fqk.KvPageGeometryV1,
    }[kind]
    base = fqk.canonical_layout(SHAPE) if kind == "layout" else SHAPE
    if kind == "geometry":
        base = fqk.new_page_geometry(256, 128, 72)
    doc = model.model_construct(**{**base.model_dump(), **changes})
    shape = None if kind == "shape" else SHAPE
    try:
        fqk.validate(doc, shape)
    except fqk.FibQuantKvError as exc:
        assert exc.violation == fqk.collect_violations(doc, shape)[0]
    else:
        assert fqk.collect_violations(doc, shape) == []


@BUDGET
@given(st.lists(ANY_BYTES, min_size=1, max_size=4), st.booleans())
def test_cli_over_fuzzed_files(
    tmp_path_factory: pytest.TempPathFactory, files: list[bytes], with_shape: bool
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    named = []
    for index, data in enumerate(files):
        suffix = "cbor" if data[:1] >= b"\x80" else "json"
        (folder / f"doc{index}.{suffix}").write_bytes(data)
        named.append(str(folder / f"doc{index}.{suffix}"))
    argv = ["validate", "--format", "json"]
    if with_shape:
        argv += ["--shape", str(EXAMPLES / "key_shape.json")]
    out = io.StringIO()
    real = sys.stdout
    sys.stdout = out
    try:
        # Named one by one: a walk would skip files that are no contract document.
        code = main([*argv, *named])
    finally:
        sys.stdout = real
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(records) == len(files)
    assert code == (1 if any(not r["valid"] for r in records) else 0)
    for record in records:
        assert Path(record["path"]).parent == folder
        assert (record["digest"] is not None) == (record["valid"] and record["shape_checked"])
