"""Rule ids: a stable public interface, on every violation, explained by `rule` and in docs/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fib_quant_kv as fqk
from fib_quant_kv.reference import failing_example, judge_example, render_docs
from tests.shared import ROOT, VECTORS, Cli

# The ids, in the order of checks. Renaming or removing one breaks users' configurations and
# scripts: add a new id instead, and say so in the changelog.
PINNED = [
    "decode.malformed",
    "decode.data_model",
    "decode.duplicate_key",
    "decode.size_limit",
    "decode.depth_limit",
    "schema.object",
    "schema.marker",
    "schema.missing_field",
    "schema.unknown_field",
    "schema.type",
    "schema.bound",
    "schema.enum",
    "shape.schema_version",
    "shape.counts_nonzero",
    "shape.mha_heads_equal",
    "shape.mqa_one_kv_head",
    "shape.grouped_heads_divide",
    "shape.rope_state_role",
    "shape.size_overflow",
    "layout.shape_valid",
    "layout.schema_version",
    "layout.shape_schema_version",
    "layout.canonical",
    "geometry.shape_valid",
    "geometry.schema_version",
    "geometry.tokens_per_page_range",
    "geometry.one_vector_per_block",
    "geometry.head_dim_matches",
    "geometry.raw_vector_bytes",
    "geometry.encoded_block_bytes_nonzero",
    "set.no_shape",
    "set.malformed",
    "set.path",
    "set.missing_document",
    "set.kind",
    "set.document_digest",
    "set.binding",
    "set.digest",
    "set.unlisted",
    "set.cache_agrees",
    "set.deleted",
    "set.empty",
]


def test_the_rule_ids_are_pinned() -> None:
    assert list(fqk.RULES) == PINNED
    assert all(rule.id == key for key, rule in fqk.RULES.items())


def test_rules_are_in_the_order_of_checks() -> None:
    steps = [rule.step for rule in fqk.RULES.values()]
    families = [rule.id.split(".")[0] for rule in fqk.RULES.values()]
    for family in dict.fromkeys(families):
        mine = [s for s, f in zip(steps, families, strict=True) if f == family]
        assert mine == sorted(mine), family


# What no single document can show failing: a size past the limit, what only a model built in
# code reaches (an earlier check decides first in a document), and checks of several
# documents together (tests/test_sets.py shows each of those).
WITHOUT_EXAMPLE = {
    "decode.size_limit",
    "shape.schema_version",
    "shape.counts_nonzero",
    "layout.schema_version",
    "layout.shape_schema_version",
    "geometry.schema_version",
    "geometry.encoded_block_bytes_nonzero",
    *(rule_id for rule_id in PINNED if rule_id.startswith("set.")),
}


@pytest.mark.parametrize("rule_id", PINNED)
def test_each_rule_fails_its_own_example(rule_id: str) -> None:
    rule = fqk.RULES[rule_id]
    example = failing_example(rule)
    if example is None:
        assert rule_id in WITHOUT_EXAMPLE
        return
    assert rule_id not in WITHOUT_EXAMPLE
    found = judge_example(*example)
    assert rule_id in [rule_id for rule_id, _, _ in found], found
    assert all(code in rule.codes for code in _codes(*example, rule_id))


def _codes(document: bytes, against: bytes | None, rule_id: str) -> list[str]:
    checker = fqk.Checker() if against is None else fqk.Checker.for_shape(against, strict=False)
    return [v.code for v in checker.check(document).violations if v.rule == rule_id]


def test_every_violation_of_every_vector_names_a_known_rule() -> None:
    seen = set()
    for case in VECTORS:
        shape = fqk.decode(case["shape"].encode()) if case["shape"] else None
        verdict = fqk.check(case["doc"].encode(), shape)  # type: ignore[arg-type]
        for violation in verdict.violations:
            assert violation.rule in fqk.RULES, (case["id"], violation)
            assert violation.code in fqk.RULES[violation.rule].codes, (case["id"], violation)
            seen.add(violation.rule)
    assert {rule_id.split(".")[0] for rule_id in seen} == {
        "decode",
        "schema",
        "shape",
        "layout",
        "geometry",
    }


def test_a_violation_in_json_output_carries_its_rule_and_rule_explains_it(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "key_shape.json").write_bytes(
        (ROOT / "examples/llama-3.1-8b/key_shape.json").read_bytes()
    )
    layout = json.loads((ROOT / "examples/llama-3.1-8b/key_layout.json").read_text())
    (tmp_path / "key_layout.json").write_text(json.dumps({**layout, "token_stride": 64}))
    code, records = cli.records(str(tmp_path / "key_layout.json"))
    assert code == 1
    assert records[0]["errors"] == [
        {
            "code": "corrupt_payload",
            "rule": "layout.canonical",
            "pointer": "/token_stride",
            "message": "only canonical contiguous kv layout is supported by the CPU reference "
            "codec: expected token_stride 128, got 64",
            "line": 1,
            "column": 239,
        }
    ]
    code, out, _ = cli("rule", "layout.canonical")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "layout.canonical"
    assert "  category: corrupt_payload" in lines
    assert "  applies:  fib_quant_kv_cache_layout_v1" in lines
    assert any(line.startswith("  step:     6 (") for line in lines)
    assert (
        "    -> layout.canonical at /token_stride: only canonical contiguous kv layout is "
        "supported by the CPU reference codec: expected token_stride 128, got 1" in lines
    )
    assert "  Passes, for example:" in lines


def test_rule_lists_every_id_and_refuses_an_unknown_one(cli: Cli) -> None:
    code, out, _ = cli("rule")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == PINNED
    code, out, err = cli("rule", "layout.strides")
    assert (code, out) == (2, "")
    assert (
        err == "fib-quant-kv: unknown rule id 'layout.strides': `fib-quant-kv rule` lists the ids\n"
    )


def test_docs_are_what_the_schemas_and_rules_make() -> None:
    """docs/ is generated (`nox -s docs`); a schema or rule changed without it fails here."""
    written = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md")}
    rendered = render_docs()
    assert sorted(written) == sorted(rendered)
    stale = [name for name in rendered if written[name] != rendered[name]]
    assert not stale, f"docs/ differs from what `nox -s docs` writes: {stale}"


def test_a_changed_schema_description_reaches_the_docs(monkeypatch: pytest.MonkeyPatch) -> None:
    from fib_quant_kv import contracts, reference

    marker = "fib_quant_kv_page_geometry_v1"
    changed = contracts.schema(marker)
    changed["properties"]["tokens_per_page"]["description"] = "A description changed here."
    monkeypatch.setattr(reference, "shared_schema", lambda m: changed if m == marker else _orig(m))
    page = render_docs()[f"{marker}.md"]
    assert "| 2 | `tokens_per_page` | u32 | 1..=4294967295 | A description changed here. |" in page


_orig = fqk.schema


def test_the_shape_page_shows_the_contracts_worked_example_digest() -> None:
    # CONTRACT.md section 4's worked example, digested by the reference.
    page = render_docs()["fib_quant_kv_tensor_shape_v1.md"]
    digest = "blake3:388d99e611df08a63740c3eac1466a3428465ccc46022071b57cde066f026fdc"
    assert f"- digest: `{digest}`" in page
