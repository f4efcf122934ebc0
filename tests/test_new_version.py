"""A new contract version is one registry entry: a synthetic fib_quant_kv_tensor_shape_v2.

Its schema is v1's with one more, optional, field (tests/data/v2). The test generates its model
with the project's own generator settings, registers it as one `Contract`, and shows every stage
takes it with no edit to v1's code: strict decoding, the rules, digests, sets, the reporters and
the docs. Its schema has a field that is not required, which the fast path cannot express: it
declines the contract, and the strict path judges it.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fib_quant_kv as fqk
from fib_quant_kv import contracts, fastpath
from fib_quant_kv.contracts import CONTRACTS, Contract, register, withdraw
from fib_quant_kv.digests import domain_digest
from fib_quant_kv.reference import render_docs
from tests.shared import DATA, ROOT, Cli

V2 = "fib_quant_kv_tensor_shape_v2"
SCHEMA = DATA / "v2" / f"{V2}.schema.json"
MODELS = "fib_quant_kv_models_v2"
EXAMPLE = {
    **CONTRACTS["fib_quant_kv_tensor_shape_v1"].example,
    "schema_version": V2,
    "sliding_window": 4096,
}


def generate(folder: Path) -> None:
    """The model of the v2 schema, generated as `nox -s generate` does (pyproject's settings)."""
    schemas = folder / "schemas"
    schemas.mkdir()
    shutil.copy(SCHEMA, schemas)
    beside = Path(sys.executable).parent / "datamodel-codegen"
    command = str(beside) if beside.exists() else shutil.which("datamodel-codegen")
    assert command is not None, "datamodel-code-generator is a test requirement (noxfile)"
    subprocess.run(
        [command, "--input", str(schemas), "--output", str(folder / MODELS)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def v2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Contract]:
    """The v2 contract, registered as one entry, and withdrawn afterwards."""
    folder = tmp_path_factory.mktemp("v2")
    generate(folder)
    sys.path.insert(0, str(folder))
    contract = Contract(
        V2,
        "shape",
        "KvTensorShapeV2",
        needs_shape=False,
        rules_module="fib_quant_kv.rules.shape",
        example=EXAMPLE,
        models_module=MODELS,
        schema_file=SCHEMA,
    )
    register(contract)
    try:
        yield contract
    finally:
        withdraw(V2)
        sys.path.remove(str(folder))
        sys.modules.pop(MODELS, None)


def text(document: dict[str, Any], **changes: object) -> bytes:
    return json.dumps({**document, **changes}, indent=2).encode()


def test_the_entry_is_all_a_new_version_needs(v2: Contract) -> None:
    # What this test added: the schema's copy and the entry above. No file of src/ names v2.
    sources = [p for p in (ROOT / "src").rglob("*.py") if V2 in p.read_text(encoding="utf-8")]
    assert sources == []
    assert V2 in fqk.markers()
    assert contracts.field_names(V2)[-1] == "sliding_window"
    assert importlib.import_module(MODELS).KvTensorShapeV2 is v2.model


def test_the_fast_path_declines_a_schema_it_cannot_express(v2: Contract) -> None:
    assert V2 not in fastpath._BY_MARKER  # an optional field: not "closed, all required"
    assert "fib_quant_kv_tensor_shape_v1" in fastpath._BY_MARKER
    data = text(EXAMPLE)
    assert fastpath.read_json(data) is None
    assert fastpath.read_json(json.dumps(EXAMPLE, separators=(",", ":")).encode()) is None


def test_strict_decoding_takes_it_with_and_without_the_optional_field(v2: Contract) -> None:
    model = fqk.decode(text(EXAMPLE))
    assert isinstance(model, v2.model)
    assert model.sliding_window == 4096  # type: ignore[union-attr]
    without = {k: v for k, v in EXAMPLE.items() if k != "sliding_window"}
    assert fqk.decode(text(without)).sliding_window is None  # type: ignore[union-attr]
    for changes, rule, where in (
        ({"sliding_window": 0}, "schema.bound", "/sliding_window"),
        ({"sliding_window": "4096"}, "schema.type", "/sliding_window"),
        ({"window": 1}, "schema.unknown_field", "/window"),
    ):
        with pytest.raises(fqk.SchemaError) as caught:
            fqk.decode(text(EXAMPLE, **changes))
        assert (caught.value.rule, caught.value.pointer) == (rule, where)


def test_the_shape_rules_judge_it(v2: Contract) -> None:
    verdict = fqk.check(text(EXAMPLE, attention_kind="mha"))
    assert verdict.kind == "shape"
    assert [(v.rule, v.pointer) for v in verdict.violations] == [
        ("shape.mha_heads_equal", "/query_heads")
    ]
    assert fqk.check(text(EXAMPLE)).valid


def test_its_digest_is_under_its_own_domain(v2: Contract) -> None:
    model = fqk.decode(text(EXAMPLE))
    canonical = fqk.encode(model)
    assert canonical.startswith(b'{"schema_version":"fib_quant_kv_tensor_shape_v2"')
    assert canonical.endswith(b',"sliding_window":4096}')
    assert fqk.digest(model) == domain_digest(V2, canonical)
    assert fqk.check(text(EXAMPLE)).digest == fqk.digest(model)
    v1 = {**EXAMPLE, "schema_version": "fib_quant_kv_tensor_shape_v1"}
    del v1["sliding_window"]
    assert fqk.digest(model) != fqk.check(text(v1)).digest


def test_a_layout_is_judged_against_it(v2: Contract) -> None:
    shape = fqk.decode(text(EXAMPLE))
    layout = fqk.decode(text(dict(CONTRACTS["fib_quant_kv_cache_layout_v1"].example)))
    verdict = fqk.Checker(shape).check(layout)  # type: ignore[arg-type]
    # The layout's rules read the shape's counts, which v2 keeps: its strides are canonical
    # for it. (A v1 layout names the v1 marker, as the reference's constant requires; a layout
    # naming v2 would be a layout v2, one entry more.)
    assert (verdict.valid, verdict.shape_digest) == (True, fqk.digest(shape))
    broken = fqk.Checker(fqk.decode(text(EXAMPLE, attention_kind="mha")))  # type: ignore[arg-type]
    assert [v.rule for v in broken.check(layout).violations] == ["layout.shape_valid"]


def test_sets_take_it(v2: Contract, cli: Cli, tmp_path: Path) -> None:
    found = fqk.validate_documents({"key_shape.json": text(EXAMPLE)})
    assert found["key_shape.json"].valid
    folder = tmp_path / "v2"
    folder.mkdir()
    (folder / "key_shape.json").write_bytes(text(EXAMPLE))
    code, _, err = cli("set", str(folder))
    assert code == 0, err
    listed = json.loads((folder / "fib-quant-kv-set.json").read_text())
    assert [(d["path"], d["kind"], d["role"]) for d in listed["documents"]] == [
        ("key_shape.json", "shape", "key")
    ]
    code, records = cli.records(str(folder))
    assert code == 0
    assert {r["path"]: r["valid"] for r in records} == {
        str(folder / "key_shape.json"): True,
        str(folder / "fib-quant-kv-set.json"): True,
    }


def test_the_reporters_take_it(v2: Contract, cli: Cli, tmp_path: Path) -> None:
    broken = tmp_path / "key_shape.json"
    broken.write_bytes(text(EXAMPLE, sliding_window=0))
    code, out, _ = cli("validate", "--format", "sarif", str(broken))
    assert code == 1
    results = json.loads(out)["runs"][0]["results"]
    assert [(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]) for r in results] == [
        ("schema.bound", {"startLine": 13, "startColumn": 21})
    ]
    code, out, _ = cli("validate", "--format", "github", str(broken))
    assert code == 1
    assert out.startswith(f"::error file={broken},line=13,col=21,title=schema.bound::")
    code, out, _ = cli("schema", V2)
    assert json.loads(out)["properties"]["sliding_window"]["minimum"] == 1


def test_the_docs_take_it(v2: Contract) -> None:
    pages = render_docs()
    page = pages[f"{V2}.md"]
    assert page.startswith(f"# KvTensorShapeV2: `{V2}`")
    assert "| `sliding_window` |" in page
    assert f"[{V2}.md]({V2}.md)" in pages["index.md"]
    assert fqk.digest(fqk.decode(text(EXAMPLE))) in page


def test_a_schema_keyword_the_fast_path_cannot_compile_is_declined(tmp_path: Path) -> None:
    # A multipleOf on a count: the patterns cannot express it, so registering such a contract
    # neither fails nor compiles it; its documents would take the strict path.
    schema = json.loads(SCHEMA.read_text())
    schema["properties"]["batch"]["multipleOf"] = 2
    path = tmp_path / "multiple.schema.json"
    path.write_text(json.dumps(schema))
    marker = "fib_quant_kv_tensor_shape_v2_multiple"
    register(
        Contract(
            marker,
            "shape",
            "KvTensorShapeV2",
            needs_shape=False,
            rules_module="fib_quant_kv.rules.shape",
            models_module=MODELS,
            schema_file=path,
        )
    )
    # A contract the patterns can express, registered after the declined one, is compiled.
    plain = json.loads((ROOT / "schemas" / "fib_quant_kv_tensor_shape_v1.schema.json").read_text())
    plain["properties"]["schema_version"]["const"] = f"{marker}_plain"
    plain_path = tmp_path / "plain.schema.json"
    plain_path.write_text(json.dumps(plain))
    register(
        Contract(
            f"{marker}_plain",
            "shape",
            "KvTensorShapeV1",
            needs_shape=False,
            rules_module="fib_quant_kv.rules.shape",
            schema_file=plain_path,
        )
    )
    try:
        assert marker not in fastpath._BY_MARKER
        assert "fib_quant_kv_tensor_shape_v1" in fastpath._BY_MARKER
        assert f"{marker}_plain" in fastpath._BY_MARKER
    finally:
        withdraw(f"{marker}_plain")
        withdraw(marker)
    assert marker not in CONTRACTS
    assert sorted(fastpath._BY_MARKER) == [  # the v1 contracts, compiled again
        "fib_quant_kv_cache_layout_v1",
        "fib_quant_kv_page_geometry_v1",
        "fib_quant_kv_tensor_shape_v1",
    ]
    v1 = CONTRACTS["fib_quant_kv_tensor_shape_v1"]
    shape = fqk.decode(json.dumps(dict(v1.example)).encode())
    for read, data in (
        (fastpath.read_json, fqk.encode(shape)),
        (fastpath.read_cbor, fqk.encode(shape, "cbor")),
    ):
        found = read(data)
        assert found is not None
        assert (found[0], found[2]) == (v1, fqk.encode(shape))
        # Each compiled contract is found by its marker too: a verdict from the hot path
        # builds its model from there.
        assert fastpath._BY_MARKER[v1.marker] is fastpath._COMPILED[v1.marker.encode()]
        assert fqk.check(data).document == shape


def test_a_declined_contracts_canonical_json_is_written_as_serde_json_writes_it(
    v2: Contract,
) -> None:
    # Compact, in field order, non-ASCII text as UTF-8 (not escaped): what the model's own
    # serializer writes for the valid document, with one text changed.
    valid = fqk.encode(fqk.decode(text(EXAMPLE)))
    values = [*EXAMPLE.values()]
    values[values.index("bf16")] = "bf16\u00e9"
    written = fastpath.canonical_of(v2, fastpath.fields_of(v2, values))
    assert written == valid.replace(b'"bf16"', '"bf16\u00e9"'.encode())
    assert written.count(b"\xc3\xa9") == 1
