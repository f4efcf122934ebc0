"""One owner for the verdict: each document validated once, and what it remembers is safe."""

from __future__ import annotations

import importlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import fib_quant_kv as fqk
from fib_quant_kv import proofs, structure, verdict
from fib_quant_kv.hf.plan import plan_from_hf_config
from fib_quant_kv.rules import shape as shape_rules
from tests.shared import CONFIGS, EXAMPLES


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often the schema stage and a shape's rules run, by the contract they ran for."""
    counted: Counter[str] = Counter()
    check_structure = structure.check_structure
    shape_violations = shape_rules.violations

    def counting_structure(value: Any, contract: Any = None) -> Any:
        marker = contract.marker if contract is not None else value.get("schema_version")
        counted[f"structure {marker}"] += 1
        return check_structure(value, contract)

    def counting_rules(shape: Any, against: None = None) -> Any:
        counted["shape rules"] += 1
        return shape_violations(shape)

    monkeypatch.setattr(structure, "check_structure", counting_structure)
    monkeypatch.setattr(shape_rules, "violations", counting_rules)
    return counted


def test_a_plan_validates_each_shape_once(calls: Counter[str]) -> None:
    planned = plan_from_hf_config(
        CONFIGS / "llama-3.1-8b.json", tokens=8192, tokens_per_page=256, encoded_block_bytes=72
    )
    assert len(planned.documents) == 5
    # Built through their validating constructors, the shapes need no second schema check,
    # and each one's rules run once, however many layouts, geometries and digests ask.
    assert calls == Counter({"shape rules": 2})


def test_a_decoded_model_is_not_validated_again(calls: Counter[str]) -> None:
    for name in ("key_shape.json", "key_shape.cbor"):
        shape = fqk.decode((EXAMPLES / name).read_bytes())
        fqk.validate(shape)
        assert fqk.digest(shape) == fqk.digest(shape)
        assert fqk.collect_violations(shape) == []
    layout = fqk.decode((EXAMPLES / "key_layout.json").read_bytes())
    fqk.validate(layout, shape)  # type: ignore[arg-type]
    assert calls == Counter({"shape rules": 2})  # the rules of each decoded shape, once


def test_a_model_built_past_its_schema_is_checked_then_remembered(calls: Counter[str]) -> None:
    fields = json.loads((EXAMPLES / "key_shape.json").read_text())
    built = fqk.KvTensorShapeV1.model_construct(**fields)
    fqk.validate(built)
    fqk.validate(built)
    assert calls["structure fib_quant_kv_tensor_shape_v1"] == 1


def test_model_copy_with_an_update_is_not_trusted() -> None:
    shape = fqk.decode((EXAMPLES / "key_shape.json").read_bytes())
    changed = shape.model_copy(update={"tokens": 0})
    with pytest.raises(fqk.SchemaError) as raised:
        fqk.validate(changed)
    assert raised.value.pointer == "/tokens"
    assert [v.rule for v in fqk.collect_violations(changed)] == ["schema.bound"]


def test_a_model_changed_in_place_is_checked_afresh() -> None:
    shape = fqk.decode((EXAMPLES / "key_shape.json").read_bytes())
    digest = fqk.digest(shape)
    object.__setattr__(shape, "tokens", 0)  # past frozen, as careless code can
    with pytest.raises(fqk.SchemaError):
        fqk.digest(shape)
    object.__setattr__(shape, "tokens", 8192)
    assert fqk.digest(shape) == digest


def test_the_memory_forgets_each_model_as_it_is_freed() -> None:
    import gc

    data = (EXAMPLES / "key_shape.json").read_bytes()
    gc.collect()  # what earlier tests left in cycles, gone before counting
    before = len(proofs.PROOFS)
    kept = [fqk.decode(data) for _ in range(300)]
    assert len(proofs.PROOFS) == before + 300
    del kept[100:]
    assert len(proofs.PROOFS) == before + 100
    for _ in range(5000):
        fqk.digest(fqk.decode(data))  # freed at once, whatever address the next one gets
    cycle: list[object] = [fqk.decode(data)]
    cycle.append(cycle)  # freed by the collector, not by its count
    del cycle
    gc.collect()
    assert len(proofs.PROOFS) == before + 100
    assert all(proof() is not None for proof in proofs.PROOFS.values())
    # A model proven again keeps one entry, dropped when it goes.
    model = kept[0]
    fqk.Checker(model)  # type: ignore[arg-type]  # a shape
    verdict.remember(model)
    del kept, model
    assert len(proofs.PROOFS) == before


def test_check_keeps_the_references_verdict_beside_the_schemas() -> None:
    # A layout whose shape marker is wrong, against a shape that breaks its own rules: the
    # schema names the marker, and the reference's own verdict (the shape first) is kept.
    shape = fqk.KvTensorShapeV1.model_construct(
        **{**json.loads((EXAMPLES / "key_shape.json").read_text()), "attention_kind": "mha"}
    )
    layout = json.loads((EXAMPLES / "key_layout.json").read_text())
    layout["shape_schema_version"] = "fib_quant_kv_tensor_shape_v2"
    found = fqk.check(json.dumps(layout).encode(), shape).violations
    assert [(v.rule, v.pointer) for v in found] == [
        ("schema.enum", "/shape_schema_version"),
        ("layout.shape_valid", ""),
    ]
    assert found[1].message.startswith("the shape is invalid at /query_heads: mha requires")


def test_a_hostile_document_is_refused_with_one_violation() -> None:
    many = ("{" + ",".join(f'"k{i}":0' for i in range(60_000)) + "}").encode()
    for found in (fqk.check(many).violations, _raised(many)):
        assert found == [
            fqk.Violation(
                "schema",
                "/k0",
                "unknown field 'k0': no contract (shape, layout, geometry) has such a field",
                "schema.unknown_field",
            )
        ]


def _raised(data: bytes) -> list[fqk.Violation]:
    """What decode raises for bytes, as a violation."""
    with pytest.raises(fqk.FibQuantKvError) as raised:
        fqk.decode(data)
    return [raised.value.violation]


def test_the_public_api_is_named_once_for_type_checkers_and_once_as_data() -> None:
    """What type checkers see (re-exports by module) and the lazy table agree, name for name
    and module for module; __all__ is the table's."""
    import ast

    source = Path(fqk.__file__).read_text()
    typed = {
        alias.name: node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom)
        and node.module
        and node.module.startswith("fib_quant_kv")
        for alias in node.names
        if alias.asname == alias.name  # re-exported as itself
    }
    assert typed == fqk._EXPORTS
    assert fqk.__all__ == sorted(typed)
    for name, module in typed.items():
        assert getattr(fqk, name) == getattr(importlib.import_module(module), name)
    star: dict[str, Any] = {}
    exec("from fib_quant_kv import *", star)
    assert set(star) - {"__builtins__"} == set(typed)


def test_a_field_swapped_for_an_equal_value_of_another_type_is_checked_afresh() -> None:
    shape = fqk.decode((EXAMPLES / "key_shape.json").read_bytes())
    fqk.digest(shape)
    object.__setattr__(shape, "batch", True)  # True == 1, but a bool is no u32
    assert [v.rule for v in fqk.collect_violations(shape)] == ["schema.type"]


def test_rules_have_not_run_for_a_layout_whose_schema_breaks_beyond_bounds() -> None:
    layout = json.loads((EXAMPLES / "key_layout.json").read_text())
    del layout["dim_stride"]
    shape = fqk.decode((EXAMPLES / "key_shape.json").read_bytes())
    verdict = fqk.check(json.dumps(layout).encode(), shape)  # type: ignore[arg-type]
    assert [v.rule for v in verdict.violations] == ["schema.missing_field"]
    assert verdict.shape_checked is False


# What a caller hands the library -----------------------------------------------------------------


def test_check_takes_a_model_as_validate_and_digest_do() -> None:
    shape = fqk.decode(EXAMPLES / "key_shape.json", fqk.KvTensorShapeV1)
    layout = fqk.canonical_layout(shape)
    verdict = fqk.check(shape)
    assert (verdict.valid, verdict.kind, verdict.digest) == (True, "shape", fqk.digest(shape))
    assert verdict.document is shape
    verdict = fqk.Checker(shape).check(layout)
    assert (verdict.valid, verdict.digest) == (True, fqk.digest(layout, shape))
    assert verdict.shape_digest == fqk.digest(shape)
    # The same as its bytes would be judged.
    assert fqk.check(layout, shape) == fqk.check(fqk.encode(layout), shape)
    broken = layout.model_copy(update={"token_stride": 64})
    assert fqk.check(broken, shape).violations == fqk.collect_violations(broken, shape)
    # Without a shape, a layout is checked as far as it can be.
    alone = fqk.check(layout)
    assert (alone.valid, alone.shape_checked, alone.violations) == (False, False, [])


def test_decode_takes_bytes_a_buffer_or_a_path_and_refuses_text() -> None:
    path = EXAMPLES / "key_shape.cbor"
    data = path.read_bytes()
    expected = fqk.decode(data)
    for given in (data, bytearray(data), memoryview(data), path):
        assert fqk.decode(given) == expected
    with pytest.raises(TypeError, match="pass Path"):
        fqk.decode(str(path))  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="got int"):
        fqk.decode(3)  # type: ignore[call-overload]
    assert fqk.check(path).valid
    assert fqk.check(memoryview(data)).valid


def test_decode_as_an_expected_contract_refuses_another() -> None:
    shape = fqk.decode(EXAMPLES / "key_shape.json", fqk.KvTensorShapeV1)
    assert isinstance(shape, fqk.KvTensorShapeV1)
    assert fqk.decode(EXAMPLES / "key_shape.json", "json") == shape  # the encoding, positionally
    with pytest.raises(fqk.SchemaError) as caught:
        fqk.decode(EXAMPLES / "key_layout.json", fqk.KvTensorShapeV1)
    assert caught.value.pointer == "/schema_version"
    assert caught.value.rule == "schema.marker"


def test_the_judges_constructor_makes_what_the_plain_one_makes() -> None:
    from fib_quant_kv.contracts import contract_of
    from fib_quant_kv.result import Bound, Verdict

    shape = fqk.decode((EXAMPLES / "key_shape.json").read_bytes())
    contract = contract_of(shape)
    proof = proofs.proof_of(shape)
    assert proof is not None  # decoded, so proven
    held = (contract, proof.fields, None, shape)
    bounds = [Bound("key_shape.json", None)]
    fast = Verdict.judged(contract, [], True, bounds, held, None)  # type: ignore[arg-type]
    plain = Verdict(contract=contract, rules_run=True, shapes=bounds, held=held)  # type: ignore[arg-type]
    assert fast == plain
    assert [getattr(fast, name) for name in Verdict.__slots__] == [
        getattr(plain, name) for name in Verdict.__slots__
    ]
    assert fast.digest == plain.digest == fqk.digest(shape)


def test_a_verdict_pickles_as_its_report_and_is_rebuilt_as_the_constructor_builds_it() -> None:
    import pickle

    from fib_quant_kv.result import Bound, Verdict, from_report, report_of
    from fib_quant_kv.verdict import Checker

    checker = Checker.for_shape((EXAMPLES / "key_shape.json").read_bytes(), name="key_shape.json")
    valid = checker.check((EXAMPLES / "key_layout.json").read_bytes())
    broken = fqk.check(b'{"schema_version": "fib_quant_kv_tensor_shape_v1"}')
    unreadable = Verdict("gone.json", unreadable="cannot open: No such file or directory")
    odd = Verdict("x.json", kind="layout", structure_only=True, dependent_of="key_shape.json")
    odd.shapes = [Bound("key_shape.json", None)]
    for sent in (valid, broken, unreadable, odd):
        reported = report_of(sent)
        back = pickle.loads(pickle.dumps(sent, pickle.HIGHEST_PROTOCOL))
        plain = Verdict(
            reported[0],
            kind=reported[1],
            violations=reported[2],
            digest=reported[3],
            rules_run=reported[4],
            shapes=reported[5],
            unreadable=reported[6],
            structure_only=reported[7],
            dependent_of=reported[8],
        )
        rebuilt = from_report(*reported)
        assert back == rebuilt == plain  # the report, and no model
        assert report_of(back) == reported
        assert [getattr(rebuilt, name) for name in Verdict.__slots__] == [
            getattr(plain, name) for name in Verdict.__slots__
        ]
        assert (back.valid, back.digest, back.path) == (sent.valid, sent.digest, sent.path)
        assert back.document is None  # the report only: no model crosses a process
    assert valid.shapes == [Bound("key_shape.json", checker.shape_digest)]
    assert broken.violations
    assert not broken.valid
