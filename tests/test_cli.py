"""The command line as a user drives it: files, directories, stdin, JSON and CBOR, exit codes."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import fib_quant_kv as fqk
from fib_quant_kv.cli import main
from fib_quant_kv.codec.json import locate
from fib_quant_kv.errors import pointer_tokens
from tests.shared import EXAMPLES, VECTORS, Cli, run

KEY_SHAPE = str(EXAMPLES / "key_shape.json")


def records(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def write(path: Path, data: str | bytes) -> str:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def test_examples_are_all_valid_with_their_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", "--shape", KEY_SHAPE, str(EXAMPLES))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 11  # five documents, each in JSON and in CBOR, and their set file
    assert all(": valid " in line and "blake3:" in line for line in lines)
    assert "11 documents checked, 0 invalid" in err


def test_json_and_cbor_of_a_document_share_one_digest(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", "--shape", KEY_SHAPE, "--format", "json", str(EXAMPLES))
    assert code == 0
    by_name: dict[str, set[str]] = {}
    for rec in records(out):
        assert rec["valid"] is True
        assert rec["shape_checked"] is True
        assert rec["errors"] == []
        if rec["kind"] != "set":
            by_name.setdefault(Path(rec["path"]).stem, set()).add(rec["digest"])
    assert set(by_name) == {
        "key_shape",
        "value_shape",
        "key_layout",
        "value_layout",
        "page_geometry",
    }
    assert all(len(digests) == 1 for digests in by_name.values())


def test_without_a_shape_layouts_are_judged_against_the_shape_named_like_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "validate", "--format", "json", str(EXAMPLES))
    assert code == 0
    assert len(records(out)) == 11
    for rec in records(out):
        assert rec["digest"] is not None
        assert rec["shape_checked"] is True
        own = Path(rec["path"]).suffix
        shapes = [Path(s["path"]).name for s in rec["shapes"]]
        if rec["kind"] in ("shape", "set"):
            assert shapes == []
        elif rec["kind"] == "layout":
            assert shapes == [Path(rec["path"]).name.replace("layout", "shape")]
        else:
            assert shapes == [f"key_shape{own}", f"value_shape{own}"]
    code, out, _ = run(capsys, "validate", str(EXAMPLES / "key_layout.json"))
    assert code == 0
    assert "valid layout blake3:72f96f28" in out
    assert f"against {EXAMPLES / 'key_shape.json'} blake3:cdb431e2" in out


def test_a_layout_against_a_broken_shape_says_it_was_judged_against_no_valid_shape(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    shape = json.loads((EXAMPLES / "key_shape.json").read_text())
    (tmp_path / "key_shape.json").write_text(json.dumps({**shape, "attention_kind": "mha"}))
    layout = (EXAMPLES / "key_layout.json").read_bytes()
    (tmp_path / "key_layout.json").write_bytes(layout)
    code, out, _ = run(capsys, "validate", str(tmp_path / "key_layout.json"))
    assert code == 1
    assert "the shape is invalid at /query_heads" in out
    # Where a shape has no digest, broken or missing (a set file may name one that is gone).
    assert out.rstrip().endswith(f"against {tmp_path / 'key_shape.json'} (no valid shape)")


def test_cli_agrees_with_the_library_on_every_vector(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for i, case in enumerate(VECTORS):
        doc = write(tmp_path / f"doc{i}.json", case["doc"])
        argv = ["validate", "--format", "json", doc]
        shape = None
        if case["shape"] is not None:
            argv[1:1] = ["--shape", write(tmp_path / f"shape{i}.json", case["shape"])]
            shape = fqk.decode(case["shape"].encode())
        code, out, _ = run(capsys, *argv)
        (rec,) = records(out)
        verdict = fqk.check(case["doc"].encode(), shape)  # type: ignore[arg-type]
        assert rec["valid"] is case["expect"]["valid"], case["id"]
        assert code == (0 if case["expect"]["valid"] else 1), case["id"]
        assert rec["digest"] == verdict.digest == case["expect"].get("digest"), case["id"]
        # A JSON document's errors say where they are, too.
        for error in rec["errors"]:
            assert (error.pop("line"), error.pop("column")) == locate(
                case["doc"].encode(), pointer_tokens(error["pointer"])
            ), case["id"]
        assert rec["errors"] == [v.to_json() for v in verdict.violations], case["id"]


def test_mixed_valid_and_invalid_documents(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    good = write(tmp_path / "good.json", (EXAMPLES / "key_shape.json").read_bytes())
    bad = write(
        tmp_path / "bad.json",
        (EXAMPLES / "key_shape.json").read_text().replace('"batch": 1', '"batch": 1.0'),
    )
    code, out, _ = run(capsys, "validate", good, bad)
    assert code == 1
    assert f"{good}: valid shape blake3:" in out
    assert f"{bad}::/batch: expected an integer in 1..=4294967295, got number 1.0" in out


def test_malformed_bytes_are_invalid_not_a_crash(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cases = {
        "empty.json": b"",
        "trailing.json": (EXAMPLES / "key_shape.json").read_bytes() + b"{}",
        "trailing.cbor": (EXAMPLES / "key_shape.cbor").read_bytes() + b"\x00",
        "binary.cbor": b"\xff\xfe\xfd",
        "text.json": b"not json at all",
    }
    paths = [write(tmp_path / name, data) for name, data in cases.items()]
    code, out, err = run(capsys, "validate", "--format", "json", *paths)
    assert code == 1
    recs = records(out)
    assert len(recs) == len(cases)
    for rec in recs:
        assert rec["valid"] is False
        assert rec["errors"][0]["code"] == "decode"
        assert rec["errors"][0]["message"]
    assert "Traceback" not in err


def test_directory_search_takes_only_json_and_cbor(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    write(nested / "shape.json", (EXAMPLES / "key_shape.json").read_bytes())
    write(tmp_path / "a" / "shape.cbor", (EXAMPLES / "key_shape.cbor").read_bytes())
    write(tmp_path / "notes.txt", "not a document")
    code, out, _ = run(capsys, "validate", "--format", "json", str(tmp_path))
    assert code == 0
    assert sorted(Path(r["path"]).name for r in records(out)) == ["shape.cbor", "shape.json"]


def test_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (EXAMPLES / "value_shape.cbor").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, _ = run(capsys, "validate", "-")
    assert code == 0
    assert out.startswith("-: valid shape blake3:")


def test_unreadable_paths_exit_2_and_the_run_goes_on(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    good = write(tmp_path / "good.json", (EXAMPLES / "key_shape.json").read_bytes())
    code, out, err = run(capsys, "validate", str(tmp_path / "missing.json"), good)
    assert code == 2
    assert "missing.json: cannot read: cannot open: No such file or directory" in err
    assert f"{good}: valid shape" in out


def test_an_invalid_document_outranks_an_unreadable_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = write(tmp_path / "bad.json", "{}")
    code, _, _ = run(capsys, "validate", str(tmp_path / "missing.json"), bad)
    assert code == 1


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["nonsense"], ["validate", "--format", "xml", KEY_SHAPE], []):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
        assert "usage:" in capsys.readouterr().err
    code, out, err = run(capsys, "validate")
    assert (code, out) == (2, "")
    assert err == "fib-quant-kv: validate needs a PATH (a file, a folder, or -), or --git\n"


@pytest.mark.parametrize(
    "command", ["validate", "digest", "convert", "layout", "geometry", "page-count", "schema"]
)
def test_every_command_has_help_with_an_example(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    with pytest.raises(SystemExit) as caught:
        main([command, "--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out
    assert f"fib-quant-kv {command}" in out


def test_digest_prints_the_digest_alone(capsys: pytest.CaptureFixture[str]) -> None:
    layout = str(EXAMPLES / "key_layout.cbor")
    code, out, _ = run(capsys, "digest", "--shape", KEY_SHAPE, layout)
    assert code == 0
    doc, shape = fqk.decode(Path(layout).read_bytes()), fqk.decode(Path(KEY_SHAPE).read_bytes())
    expected = fqk.digest(doc, shape)  # type: ignore[arg-type]
    expected_cbor = fqk.digest(doc, shape, encoding="cbor")  # type: ignore[arg-type]
    assert out == expected + "\n"
    code, out_cbor, _ = run(capsys, "digest", "--shape", KEY_SHAPE, "--encoding", "cbor", layout)
    assert code == 0
    assert out_cbor == expected_cbor + "\n"
    assert out_cbor != out


def test_digest_of_a_layout_finds_its_shape_or_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "digest", str(EXAMPLES / "key_layout.json"))
    assert (code, out) == (
        0,
        fqk.digest(
            fqk.decode((EXAMPLES / "key_layout.json").read_bytes()),
            fqk.decode(Path(KEY_SHAPE).read_bytes()),
        )
        + "\n",
    )  # type: ignore[arg-type]
    alone = write(tmp_path / "strides.json", (EXAMPLES / "key_layout.json").read_bytes())
    code, _, err = run(capsys, "digest", alone)
    assert code == 1
    assert f"{alone}::: a layout is judged against its shape: no shape: strides.json" in err
    assert "name one (--shape FILE)" in err


def test_digest_of_an_invalid_document_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = write(
        tmp_path / "layout.json",
        (EXAMPLES / "key_layout.json").read_text().replace('"dim_stride":1', '"dim_stride":2'),
    )
    code, out, err = run(capsys, "digest", "--shape", KEY_SHAPE, doc)
    assert code == 1
    assert out == ""
    assert f"{doc}::/dim_stride: only canonical contiguous kv layout" in err
    assert err.endswith(" [layout.canonical]\n")  # the id, as validate gives it


def test_convert_round_trip_and_atomic_output(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_path = tmp_path / "shape.cbor"
    code, _, _ = run(capsys, "convert", "--to", "cbor", "-o", str(out_path), KEY_SHAPE)
    assert code == 0
    assert out_path.read_bytes() == (EXAMPLES / "key_shape.cbor").read_bytes()
    code, out, _ = run(capsys, "convert", "--to", "json", str(out_path))
    assert code == 0
    assert out == fqk.encode(fqk.decode(Path(KEY_SHAPE).read_bytes())).decode() + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shape.cbor"]  # no temporary left


def test_convert_of_a_bad_document_leaves_no_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = write(tmp_path / "bad.json", "{")
    target = tmp_path / "out.cbor"
    code, _, err = run(capsys, "convert", "--to", "cbor", "-o", str(target), bad)
    assert code == 1
    assert "malformed JSON" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


def test_layout_geometry_and_page_count(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "layout", KEY_SHAPE)
    assert code == 0
    assert out.encode() == (EXAMPLES / "key_layout.json").read_bytes()
    code, out, _ = run(
        capsys, "geometry", KEY_SHAPE, "--tokens-per-page", "256", "--encoded-block-bytes", "72"
    )
    assert code == 0
    assert out.encode() == (EXAMPLES / "page_geometry.json").read_bytes()
    geometry = write(tmp_path / "g.json", out)
    code, out, _ = run(capsys, "page-count", "--shape", KEY_SHAPE, geometry)
    assert (code, out) == (0, "32\n")  # 8192 tokens / 256 per page


def test_geometry_that_cannot_fit_the_shape_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "geometry", KEY_SHAPE, "--tokens-per-page", "9000", "--encoded-block-bytes", "72"
    )
    assert code == 2
    assert out == ""
    assert "tokens_per_page must be in 1..=8192" in err
    with pytest.raises(SystemExit) as caught:
        main(["geometry", KEY_SHAPE, "--tokens-per-page", "0", "--encoded-block-bytes", "72"])
    assert caught.value.code == 2


def test_an_invalid_shape_argument_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    shape = write(tmp_path / "shape.json", Path(KEY_SHAPE).read_text().replace('"gqa"', '"mha"'))
    code, _, err = run(capsys, "layout", shape)
    assert code == 1
    assert f"{shape}::/query_heads: mha requires" in err
    layout = str(EXAMPLES / "key_layout.json")
    code, _, err = run(capsys, "layout", layout)
    assert code == 1
    assert f"{layout}::/schema_version: expected a fib_quant_kv_tensor_shape_v1 (a shape)" in err
    code, _, err = run(capsys, "validate", "--shape", shape, KEY_SHAPE)
    assert code == 1
    assert f"{shape}::/query_heads: mha requires" in err
    layout = str(EXAMPLES / "key_layout.cbor")
    code, _, err = run(capsys, "validate", "--shape", layout, KEY_SHAPE)
    assert code == 1
    assert f"{layout}::/schema_version: expected a fib_quant_kv_tensor_shape_v1 (a shape)" in err


def test_schema_lists_and_prints(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema")
    assert code == 0
    listed = [line.split("\t")[0] for line in out.splitlines()]
    assert listed == [*fqk.markers(), "fib_quant_kv_contract_set_v1"]
    code, out, _ = run(capsys, "schema", "fib_quant_kv_page_geometry_v1")
    assert code == 0
    assert json.loads(out)["title"] == "KvPageGeometryV1"
    code, _, err = run(capsys, "schema", "fib_quant_kv_page_geometry_v9")
    assert code == 2
    assert "unknown schema 'fib_quant_kv_page_geometry_v9'" in err


def test_python_dash_m_runs_the_same_cli_without_traceback(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.cbor", b"\xbb" + b"\xff" * 8)  # a map claiming 2^64-1 pairs
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "fib_quant_kv", "validate", bad, KEY_SHAPE],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"{bad}::: truncated: claims 18446744073709551615 pairs" in proc.stdout
    assert f"{KEY_SHAPE}: valid shape" in proc.stdout


def test_a_file_name_that_is_not_utf8_is_printed_escaped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = os.fsdecode(b"bad\xffname.json")
    write(tmp_path / name, (EXAMPLES / "key_shape.json").read_bytes())
    code, out, _ = run(capsys, "validate", "--format", "json", str(tmp_path))
    assert code == 0
    (rec,) = records(out)
    assert rec["path"] == f"{tmp_path}/bad\\xffname.json"
    out.encode("utf-8")  # printable on any UTF-8 stream
    code, out, _ = run(capsys, "validate", str(tmp_path))
    assert out.startswith(f"{tmp_path}/bad\\xffname.json: valid shape")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_and_progress_only_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fib_quant_kv.cli.reporters import TextReporter

    for index in range(300):
        write(tmp_path / f"s{index:03d}.json", (EXAMPLES / "key_shape.json").read_bytes())
    monkeypatch.delenv("NO_COLOR", raising=False)
    for terminal in (True, False):
        out, err = (_Terminal(), _Terminal()) if terminal else (io.StringIO(), io.StringIO())
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)
        assert main(["validate", str(tmp_path)]) == 0
        assert ("\033[32m" in out.getvalue()) is terminal
        assert ("checked 250 documents..." in err.getvalue()) is terminal
        assert "300 documents checked, 0 invalid" in err.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    assert TextReporter(_Terminal(), _Terminal()).green == ""


def test_documents_the_hot_path_reads_are_validated_without_pydantic(tmp_path: Path) -> None:
    # The bundled examples are JSON in field order and deterministic CBOR, both read as plain
    # fields: such a run never imports the models, pydantic or jsonschema, which would double
    # its start-up time. A model is built only for a document that leaves the hot path. Nor
    # what the schemas' loading, a split run, a path type or SARIF's URIs would pull in at
    # start-up for nothing.
    heavy = ("pydantic", "pydantic_core", "fib_quant_kv_models", "jsonschema", "cbor2")
    heavy += ("importlib.resources", "pickle", "pathlib", "urllib")

    def validate(*argv: str) -> list[dict[str, Any]]:
        code = (
            "import json, sys\n"
            "from fib_quant_kv.cli import main\n"
            f"main(['validate', '--format', 'json', *{argv!r}])\n"
            f"names = {{*sys.modules, *(m.split('.')[0] for m in sys.modules)}}\n"
            f"loaded = sorted(names & set({heavy!r}))\n"
            "print(json.dumps(loaded), file=sys.stderr)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        assert json.loads(proc.stderr.splitlines()[-1]) == []
        return records(proc.stdout)

    # The documents alone: a set file is checked with its generated model, which is pydantic.
    alone = tmp_path / "kv"
    shutil.copytree(EXAMPLES, alone, ignore=shutil.ignore_patterns("fib-quant-kv-set.json"))
    found = validate(str(alone))
    assert len(found) == 10
    assert all(r["errors"] == [] and r["digest"] and r["shape_checked"] for r in found)
    assert sum(bool(r["shapes"]) for r in found) == 6  # layouts and geometries, paired
    found = validate("--shape", str(EXAMPLES / "key_shape.cbor"), str(alone))
    assert len(found) == 10
    assert all(r["errors"] == [] and r["digest"] for r in found)


# Nothing to judge --------------------------------------------------------------------------------


def test_a_run_that_finds_no_contract_document_fails_saying_what_it_looked_at(
    cli: Cli, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = cli("validate", str(empty))
    assert (code, out) == (2, "")
    assert err == (
        f"fib-quant-kv: nothing to judge: no contract document under {empty}: no JSON or CBOR "
        "file named like a contract document there; expected files named like key_shape.json, "
        "value_layout.cbor or page_geometry.json, or documents with a contract marker\n"
    )
    web = tmp_path / "web"
    web.mkdir()
    (web / "package.json").write_text('{"name": "x"}')
    (web / "tsconfig.json").write_text("{}")
    code, out, err = cli("validate", "--format", "json", str(web))
    assert (code, out) == (2, "")
    assert (
        "2 JSON or CBOR files looked at, none a contract document "
        f"({web}/package.json, {web}/tsconfig.json)"
    ) in err


def test_set_refuses_a_folder_without_contract_documents(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("{}")
    code, out, err = cli("set", str(tmp_path))
    assert (code, out) == (1, "")
    assert "holds no contract document: a set lists at least one" in err
    assert err.rstrip().endswith("[set.empty]")
    assert not (tmp_path / "fib-quant-kv-set.json").exists()


def test_counts_agree_with_their_nouns(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    one = write(tmp_path / "a" / "key_shape.json", (EXAMPLES / "key_shape.json").read_bytes())
    write(tmp_path / "a" / "notes.json", b"{}")
    code, _, err = cli("validate", str(Path(one).parent))
    assert code == 0
    assert err == (
        "1 document checked, 0 invalid, 1 skipped (a JSON or CBOR file that is no contract)\n"
    )


def test_help_states_each_default_once(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("validate", "digest", "convert", "plan", "set", "rule"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "(default: None)" not in out
        assert "(default: False)" not in out
        assert "default)) (default:" not in out
