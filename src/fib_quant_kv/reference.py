"""The contract reference, made from the schemas and the rule declarations: `rule` and docs/.

Nothing here is written by hand about a field or a rule: each page and each explanation is
rendered from the shipped schemas, the rules' own declarations, and the library run on worked
examples, so the reference cannot drift from what the code does (`nox -s docs` writes docs/,
and a default session fails when docs/ differs from what it would write).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from fib_quant_kv.codec.limits import DECODE_RULES
from fib_quant_kv.contracts import (
    CONTRACTS,
    SCHEMA_RULES,
    SHAPE_SCHEMA,
    UNKNOWN_FIELD,
    markers,
    of_kind,
    shared_schema,
)
from fib_quant_kv.errors import Rule
from fib_quant_kv.files import SET_FILE
from fib_quant_kv.rules import RULES, rule_kind
from fib_quant_kv.rules.sets import NO_SHAPE, RULES as SET_RULES, SET_FORMAT, SET_SCHEMA, SET_STEP

_STEPS = (
    "1 decoding, 2 the schema, 3 to 9 the reference's rules in its order (a layout's or "
    "geometry's shape first), 10 sets of documents"
)


def _text(value: Any) -> str:
    return json.dumps(dict(value) if isinstance(value, Mapping) else value, separators=(", ", ": "))


def rule_contract(rule: Rule) -> str | None:
    """The marker of the contract a rule belongs to (the first of its kind registered); None for
    rules every document meets."""
    kind = rule_kind(rule)
    return None if kind is None else of_kind(kind)[0].marker


def _example(marker: str) -> dict[str, Any]:
    return dict(CONTRACTS[marker].example)


def failing_example(rule: Rule) -> tuple[bytes, bytes | None] | None:
    """The bytes of a document that fails the rule, and of the shape it is judged against."""
    marker = rule_contract(rule) or SHAPE_SCHEMA
    if rule.breaks is None and rule.breaks_shape is None:
        return None
    if isinstance(rule.breaks, str):
        return rule.breaks.encode("utf-8"), None
    doc = _changed(_example(marker), rule.breaks or {})
    against = None
    if CONTRACTS[marker].needs_shape:
        against = _changed(_example(SHAPE_SCHEMA), rule.breaks_shape or {})
    return _text(doc).encode(), None if against is None else _text(against).encode()


def _changed(base: Mapping[str, Any], changes: Mapping[str, object]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if value is ...:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def judge_example(document: bytes, against: bytes | None) -> list[tuple[str, str, str]]:
    """(rule id, pointer, message) of each violation the library finds in an example."""
    from fib_quant_kv.verdict import Checker

    checker = Checker() if against is None else Checker.for_shape(against, strict=False)
    return [(v.rule, v.pointer, v.message) for v in checker.check(document).violations]


def explain(rule: Rule) -> str:
    """What `fib-quant-kv rule ID` prints: the rule, when it runs, and examples run live."""
    marker = rule_contract(rule)
    lines = [
        rule.id,
        f"  step:     {rule.step} (the order of checks: {_STEPS})",
        f"  category: {' or '.join(rule.codes)}",
        f"  applies:  {marker or _applies(rule)}",
        f"  checks:   {rule.checks}",
        "",
    ]
    example = failing_example(rule)
    if example is None:
        lines.append("  No single document shows it failing: " + _why_no_example(rule))
    else:
        document, against = example
        lines.append("  Fails, for example:")
        lines.append(f"    {document.decode('utf-8', 'replace')}")
        if against is not None:
            lines.append(f"    against the shape {against.decode()}")
        for rule_id, where, message in judge_example(document, against):
            lines.append(f"    -> {rule_id} at {where or '(the whole document)'}: {message}")
    if rule.step < SET_STEP:
        lines.append("  Passes, for example:")
        lines.append(f"    {_text(_example(marker or SHAPE_SCHEMA))}")
    return "\n".join(lines) + "\n"


def _applies(rule: Rule) -> str:
    """Where a rule that belongs to no one contract applies."""
    if rule.step >= SET_STEP:
        return "layouts and geometries with their shapes, and set files (docs/sets.md)"
    return "every document"


def _why_no_example(rule: Rule) -> str:
    if rule.step >= SET_STEP:
        return "it concerns documents together, on disk or in a set file (docs/sets.md)."
    if rule.step == 1:
        return "the example would be larger than a screen."
    return "in a document an earlier check decides first; only a model built in code reaches it."


def rule_table() -> list[str]:
    """What `fib-quant-kv rule` prints: one line per rule id, in the order of checks."""
    width = max(len(rule_id) for rule_id in RULES)
    return [
        f"{rule.id:<{width}}  {rule.step:>2}  {'/'.join(rule.codes):<40}  {rule.checks}"
        for rule in RULES.values()
    ]


# docs/ -----------------------------------------------------------------------------------------


def _resolve(root: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in prop:
        resolved: dict[str, Any] = root["$defs"][prop["$ref"].rsplit("/", 1)[1]]
        return {**resolved, **{k: v for k, v in prop.items() if k != "$ref"}}
    return prop


def _type_of(root: dict[str, Any], prop: dict[str, Any]) -> tuple[str, str]:
    """A field's type and what it allows, in words."""
    prop = _resolve(root, prop)
    if "anyOf" in prop:
        parts = [_type_of(root, option) for option in prop["anyOf"]]
        return " or ".join(p[0] for p in parts), "; ".join(p[1] for p in parts if p[1])
    kind = prop.get("type", "")
    if "const" in prop:
        return "string", f"exactly `{prop['const']}`"
    if "enum" in prop:
        return "string", "one of " + ", ".join(f"`{v}`" for v in prop["enum"])
    if kind == "integer":
        name = {4294967295: "u32", 18446744073709551615: "u64"}.get(prop["maximum"], "integer")
        return name, f"{prop.get('minimum', 0)}..={prop['maximum']}"
    if kind == "array":
        item, allowed = _type_of(root, prop["items"])
        return f"array of {item}", allowed
    if kind == "string" and "pattern" in prop:
        return "string", f"matching `{prop['pattern']}`"
    if kind == "string" and "minLength" in prop:
        return "string", f"at least {prop['minLength']} character"
    return kind or "object", ""


def _field_table(root: dict[str, Any], properties: dict[str, Any]) -> list[str]:
    lines = ["| # | field | type | allowed | description |", "|---|---|---|---|---|"]
    for number, (name, prop) in enumerate(properties.items(), 1):
        kind, allowed = _type_of(root, prop)
        description = _resolve(root, prop).get("description", "")
        lines.append(f"| {number} | `{name}` | {kind} | {allowed} | {description} |")
    return lines


def _rules_table(rules: list[Rule]) -> list[str]:
    lines = ["| step | rule id | category | checks |", "|---|---|---|---|"]
    for rule in rules:
        lines.append(
            f"| {rule.step} | [`{rule.id}`](rules.md#{rule_anchor(rule.id)}) | "
            f"{', '.join(rule.codes)} | {rule.checks} |"
        )
    return lines


def rule_anchor(rule_id: str) -> str:
    return rule_id.replace(".", "")


def _contract_page(marker: str) -> str:
    from fib_quant_kv.digests import encode
    from fib_quant_kv.verdict import decode, digest
    from fib_quant_kv_models import KvTensorShapeV1

    root = shared_schema(marker)
    contract = CONTRACTS[marker]
    model: Any = decode(_text(contract.example).encode())
    against = None
    if contract.needs_shape:
        against = decode(_text(_example(SHAPE_SCHEMA)).encode(), KvTensorShapeV1)
    cbor = encode(model, "cbor")
    lines = [
        f"# {root['title']}: `{marker}`",
        "",
        root["description"],
        "",
        f"- marker (`schema_version`, also the digest domain): `{marker}`",
        f"- `$id`: `{root['$id']}`",
        f"- schema: [`schemas/{marker}.schema.json`](../schemas/{marker}.schema.json)",
        f"- every field is required; no other field is allowed (rule `{UNKNOWN_FIELD.id}`)",
        "",
        "## Fields, in contract order",
        "",
        "The order is part of the contract: it is the order of the canonical JSON that is "
        "digested.",
        "",
        *_field_table(root, root["properties"]),
        "",
        "## Rules, in the order they are checked",
        "",
        *_rules_table([*DECODE_RULES, *SCHEMA_RULES, *contract.rules.RULES]),
        "",
        "## Worked example",
        "",
    ]
    if against is not None:
        lines += [
            "Judged against the shape of [the shape page's example](fib_quant_kv_tensor_shape_v1.md"
            f"#worked-example) (digest `{digest(against)}`).",
            "",
        ]
    canonical = encode(model).decode()
    lines += [
        "```json",
        json.dumps(json.loads(canonical), indent=2),
        "```",
        "",
        f"- canonical JSON (what is digested after `{marker}` and a 0x00 byte): `{canonical}`",
        f"- digest: `{digest(model, against)}`",
        f"- deterministic CBOR ({len(cbor)} bytes): `{cbor.hex()}`",
        f"- digest of the CBOR bytes (on request only): `{digest(model, against, 'cbor')}`",
        "",
    ]
    return "\n".join(lines)


def _sets_page() -> str:
    root = shared_schema(SET_SCHEMA)
    entry = root["$defs"]["SetEntry"]
    lines = [
        f"# {root['title']}: set files (`{SET_FILE}`)",
        "",
        root["description"],
        "",
        f"- format marker (`set_format`): `{SET_FORMAT}`",
        f"- `$id`: `{root['$id']}`",
        f"- schema: [`schemas/{SET_SCHEMA}.schema.json`](../schemas/{SET_SCHEMA}.schema.json)",
        "",
        "## Fields",
        "",
        *_field_table(root, root["properties"]),
        "",
        "Each entry of `documents`:",
        "",
        *_field_table(root, entry["properties"]),
        "",
        "## Which shape a layout or geometry is judged against",
        "",
        "In the reference a layout names only its shape's marker and a geometry names nothing. "
        "fib-quant-kv binds them, in this order:",
        "",
        "1. a shape given for the whole run (`--shape FILE`);",
        f"2. else the set file `{SET_FILE}` in the document's folder, if it lists the document;",
        "3. else the naming convention: `<prefix>layout.*` belongs to `<prefix>shape.*` "
        "(`key_layout.json` to `key_shape.json`, `llama_value_layout.cbor` to "
        "`llama_value_shape.cbor`); `<prefix>geometry.*` and `<prefix>page_geometry.*` are "
        "judged against every `<prefix>*shape.*` in their folder (`page_geometry.json` against "
        "all of them). Of a shape in both encodings, the one in the document's own is used.",
        "",
        f"A layout or geometry that none of these pairs with a shape is invalid "
        f"(`{NO_SHAPE.id}`) unless `--structure-only` accepts the schema's checks alone. "
        "A shape named on the command line brings its layouts and geometries into the run.",
        "",
        "## The set's digest",
        "",
        f"`blake3:` + hex BLAKE3 over `{SET_FORMAT}` || 0x00 || the compact JSON of a sorted "
        "array with one item per document, `[kind, role, digest, [digests of its shapes, "
        "sorted]]`. Paths play no part: the same documents bound the same way have one "
        "digest wherever they are stored, so a serving system can key caches on it.",
        "",
        "## Rules",
        "",
        *_rules_table(list(SET_RULES)),
        "",
    ]
    return "\n".join(lines)


def _rules_page() -> str:
    lines = [
        "# Rules",
        "",
        "Every check has a stable id; each violation carries it (`rule` in `--format json`), "
        "and `fib-quant-kv rule ID` prints the entry below. The examples are run by the "
        "library when this page is made.",
        "",
    ]
    for rule in RULES.values():
        text = explain(rule).splitlines()
        lines += [f"## {rule.id}", "", "```", *text[1:], "```", ""]
    return "\n".join(lines)


def _index_page() -> str:
    lines = [
        "# fib-quant-kv contract reference",
        "",
        "Made by `nox -s docs` from `schemas/` and the rules' declarations; never edited by hand.",
        "",
        "| document | marker | page |",
        "|---|---|---|",
    ]
    for marker in markers():
        root = shared_schema(marker)
        lines.append(f"| {root['title']} | `{marker}` | [{marker}.md]({marker}.md) |")
    lines += [
        f"| set file | `{SET_FORMAT}` | [sets.md](sets.md) |",
        "",
        f"A document is judged in steps: {_STEPS}. The first failure in the reference's order "
        "is always among those reported.",
        "",
        "## Every rule",
        "",
        *_rules_table(list(RULES.values())),
        "",
    ]
    return "\n".join(lines)


def render_docs() -> dict[str, str]:
    """Every page of docs/, by file name."""
    pages = {"index.md": _index_page(), "rules.md": _rules_page(), "sets.md": _sets_page()}
    for marker in markers():
        pages[f"{marker}.md"] = _contract_page(marker)
    return pages


def write_docs(folder: str) -> None:
    """Write docs/ afresh: every page rendered, nothing else left in the folder."""
    os.makedirs(folder, exist_ok=True)
    pages = render_docs()
    for name in os.listdir(folder):
        if name.endswith(".md") and name not in pages:
            os.unlink(os.path.join(folder, name))
    for name, text in pages.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)


if __name__ == "__main__":
    import sys

    write_docs(sys.argv[1] if len(sys.argv) > 1 else "docs")
