"""Sets of documents: each layout and geometry judged against its shape, and set files."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fib_quant_kv as fqk
from fib_quant_kv.files import SET_FILE
from tests.shared import CONFIGS, DATA, EXAMPLES, Cli


def by_name(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Records keyed by `folder/file`, the last two parts of their paths."""
    return {"/".join(Path(r["path"]).parts[-2:]): r for r in records}


def shape_names(record: dict[str, Any]) -> list[str]:
    return ["/".join(Path(s["path"]).parts[-2:]) for s in record["shapes"]]


def plan(cli: Cli, out: Path, tokens: int = 8192, *extra: str) -> None:
    code, _, err = cli(
        "plan",
        str(CONFIGS / "llama-3.1-8b.json"),
        "--tokens",
        str(tokens),
        "--out",
        str(out),
        *extra,
    )
    assert code == 0, err


def rewrite(path: Path, **changes: Any) -> None:
    """Change fields of a JSON document in place, keeping it in field order."""
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")


def copy_examples(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "kv"
    folder.mkdir()
    for name in names:
        shutil.copy(EXAMPLES / name, folder / name)
    return folder


# A repository of several models, validated with no arguments ---------------------------------


def test_a_multi_model_tree_pairs_every_document_with_its_own_shape(cli: Cli, models: Path) -> None:
    code, records = cli.records(str(models))
    assert code == 0
    found = by_name(records)
    assert set(found) == {
        f"{model}/{name}"
        for model in ("llama", "qwen")
        for name in (
            "key_shape.json",
            "value_shape.json",
            "key_layout.json",
            "value_layout.json",
            "page_geometry.json",
            SET_FILE,
        )
    }
    for model in ("llama", "qwen"):
        assert shape_names(found[f"{model}/key_layout.json"]) == [f"{model}/key_shape.json"]
        assert shape_names(found[f"{model}/value_layout.json"]) == [f"{model}/value_shape.json"]
        assert shape_names(found[f"{model}/page_geometry.json"]) == [
            f"{model}/key_shape.json",
            f"{model}/value_shape.json",
        ]
        for record in found.values():
            assert record["valid"] is True
            assert record["shape_checked"] is True
        shape_digest = found[f"{model}/key_shape.json"]["digest"]
        assert found[f"{model}/key_layout.json"]["shapes"][0]["digest"] == shape_digest


def test_one_shape_for_every_document_names_the_shape_in_each_failure(
    cli: Cli, models: Path
) -> None:
    llama = models / "llama" / "key_shape.json"
    code, out, _ = cli("validate", "--shape", str(llama), str(models / "qwen"))
    assert code == 1
    failing = [line for line in out.splitlines() if "[layout.canonical]" in line]
    assert failing, out
    for line in failing:
        # The expected and the actual stride, and the shape they were computed from.
        assert "expected " in line
        assert ", got " in line
        assert line.endswith(f"against {llama} {fqk.digest(fqk.decode(llama.read_bytes()))}")


# The pre-commit hook passes only changed files -------------------------------------------------


def test_a_geometry_passed_alone_finds_its_shapes(cli: Cli, models: Path) -> None:
    geometry = models / "llama" / "page_geometry.json"
    rewrite(geometry, tokens_per_page=9000)
    code, out, _ = cli("validate", str(geometry))
    assert code == 1
    assert "::/tokens_per_page: tokens_per_page must be in 1..=8192" in out
    assert "[geometry.tokens_per_page_range]" in out
    assert f"against {models / 'llama' / 'key_shape.json'}" in out


def test_a_layout_with_a_wrong_stride_passed_alone_fails(cli: Cli, models: Path) -> None:
    layout = models / "qwen" / "value_layout.json"
    rewrite(layout, token_stride=64)
    code, out, _ = cli("validate", str(layout))
    assert code == 1
    assert "::/token_stride: only canonical contiguous kv layout" in out
    assert "expected token_stride 128, got 64" in out


def test_a_changed_shape_passed_alone_rechecks_its_dependents(cli: Cli, models: Path) -> None:
    shape = models / "llama" / "key_shape.json"
    rewrite(shape, tokens=100)  # the geometry's 256 tokens per page no longer fit
    code, records = cli.records(str(shape))
    assert code == 1
    found = by_name(records)
    # Valid on its own, it no longer agrees with the value shape of its cache.
    assert [(e["rule"], e["pointer"]) for e in found["llama/key_shape.json"]["errors"]] == [
        ("set.cache_agrees", "/tokens")
    ]
    geometry = found["llama/page_geometry.json"]
    assert geometry["dependent_of"] == str(shape)
    assert [e["rule"] for e in geometry["errors"]] == ["geometry.tokens_per_page_range"]
    layout = found["llama/key_layout.json"]
    assert {e["rule"] for e in layout["errors"]} == {"layout.canonical"}
    # The set file records the old shape's digest, and says so.
    assert "set.document_digest" in {e["rule"] for e in found[f"llama/{SET_FILE}"]["errors"]}
    assert "llama/value_layout.json" not in found  # it belongs to the value shape


# Pairing by name -------------------------------------------------------------------------------


def test_prefixed_names_pair_within_their_prefix(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for prefix, model in (("llama_", "llama-3.1-8b.json"), ("qwen-", "qwen2.5-7b.json")):
        code, _, err = cli(
            "plan", str(CONFIGS / model), "--tokens", "512", "--tokens-per-page", "64",
            "--encoded-block-bytes", "72", "--out", str(tmp_path / prefix),
        )  # fmt: skip
        assert code == 0, err
        for made in (tmp_path / prefix).glob("*_*.json"):
            shutil.copy(made, folder / f"{prefix}{made.name}")
    code, records = cli.records(str(folder))
    assert code == 0, records
    found = {Path(r["path"]).name: r for r in records}
    assert shape_names(found["llama_key_layout.json"]) == ["mixed/llama_key_shape.json"]
    assert shape_names(found["qwen-value_layout.json"]) == ["mixed/qwen-value_shape.json"]
    assert shape_names(found["llama_page_geometry.json"]) == [
        "mixed/llama_key_shape.json",
        "mixed/llama_value_shape.json",
    ]


def test_a_geometry_without_prefix_is_judged_against_every_shape_of_its_folder(
    cli: Cli, tmp_path: Path
) -> None:
    folder = copy_examples(tmp_path, "key_shape.json", "value_shape.json", "page_geometry.json")
    (folder / "draft_shape.json").write_bytes((EXAMPLES / "key_shape.json").read_bytes())
    rewrite(folder / "draft_shape.json", head_dim=64)
    code, records = cli.records(str(folder / "page_geometry.json"))
    assert code == 1
    (geometry,) = records
    assert shape_names(geometry) == [
        "kv/draft_shape.json",
        "kv/key_shape.json",
        "kv/value_shape.json",
    ]
    assert [e["rule"] for e in geometry["errors"]] == ["geometry.head_dim_matches"]
    assert "expected 64, got 128" in geometry["errors"][0]["message"]


def test_a_document_prefers_the_shape_in_its_own_encoding(cli: Cli, tmp_path: Path) -> None:
    folder = copy_examples(
        tmp_path, "key_shape.json", "key_shape.cbor", "key_layout.cbor", "key_layout.json"
    )
    _, records = cli.records(str(folder / "key_layout.cbor"), str(folder / "key_layout.json"))
    assert [shape_names(r) for r in records] == [["kv/key_shape.cbor"], ["kv/key_shape.json"]]


def test_a_set_file_binds_documents_whatever_their_names(cli: Cli, tmp_path: Path) -> None:
    folder = copy_examples(tmp_path, "key_shape.json")
    shutil.copy(EXAMPLES / "key_layout.json", folder / "strides.json")
    code, _, err = cli("validate", str(folder / "strides.json"))
    assert code == 1
    assert "no shape: strides.json is not named like <prefix>layout.json" in err + _
    # A set file written by hand (or by a tool) binds it.
    key = fqk.decode((folder / "key_shape.json").read_bytes())
    layout = fqk.decode((folder / "strides.json").read_bytes())
    entries = [("key_shape.json", "shape", fqk.digest(key), [])]
    entries.append(("strides.json", "layout", fqk.digest(layout, key), ["key_shape.json"]))  # type: ignore[arg-type]
    write_set(folder, entries)
    code, records = cli.records(str(folder / "strides.json"))
    assert code == 0, records
    assert shape_names(records[0]) == ["kv/key_shape.json"]


# No silent pass --------------------------------------------------------------------------------


def test_a_layout_without_a_shape_is_invalid_and_says_what_was_looked_for(
    cli: Cli, tmp_path: Path
) -> None:
    folder = copy_examples(tmp_path, "key_layout.json")
    code, out, _ = cli("validate", str(folder / "key_layout.json"))
    assert code == 1
    assert f"{folder / 'key_layout.json'}::: a layout is judged against its shape" in out
    assert f"looked for key_shape.json or key_shape.cbor in {folder}" in out
    assert "name one (--shape FILE)" in out
    assert "[set.no_shape]" in out
    code, records = cli.records(str(folder / "key_layout.json"))
    assert [(e["rule"], e["code"], e["pointer"], e["message"]) for e in records[0]["errors"]] == [
        (
            "set.no_shape",
            "set",
            "",
            f"a layout is judged against its shape: no shape: looked for key_shape.json or "
            f"key_shape.cbor in {folder}; name one (--shape FILE), list it in a set file "
            f"({SET_FILE}), or accept the schema's checks alone (--structure-only)",
        )
    ]
    code, out, _ = cli("validate", "--structure-only", str(folder / "key_layout.json"))
    assert code == 0
    assert "layout structure valid; no shape found, its rules not run (--structure-only)" in out
    code, records = cli.records("--structure-only", str(folder / "key_layout.json"))
    assert records[0]["valid"] is True
    assert records[0]["structure_only"] is True
    assert records[0]["digest"] is None


# What a walk judges ----------------------------------------------------------------------------


def test_a_walk_judges_contract_documents_only(cli: Cli, tmp_path: Path) -> None:
    folder = copy_examples(tmp_path, "key_shape.json")
    broken = b'{"schema_version": "fib_quant_kv_tensor_shape_v1"}'
    for hidden in (".cache", "node_modules", "__pycache__", "venv"):
        (folder / hidden).mkdir()
        (folder / hidden / "key_shape.json").write_bytes(broken)
    (folder / "venv" / "pyvenv.cfg").write_text("home = /usr\n")
    (folder / "package.json").write_text('{"name": "not a contract"}')
    (folder / "notes.cbor").write_bytes(b"\xa1\x61a\x01")
    (folder / "draft_shape.json").write_text("not even JSON")  # named like one: judged
    code, out, err = cli("validate", str(folder))
    assert code == 1
    assert "draft_shape.json::: malformed JSON" in out
    assert "key_shape.json: valid shape" in out
    for skipped in (".cache", "node_modules", "__pycache__", "venv", "package.json", "notes"):
        assert skipped not in out
    assert (
        "2 documents checked, 1 invalid, 2 skipped (JSON or CBOR files that are no contract)" in err
    )
    # Named on the command line, a file is always judged.
    code, out, _ = cli("validate", str(folder / "package.json"))
    assert code == 1
    assert "package.json::/name: unknown field 'name': no contract" in out


# Set files -------------------------------------------------------------------------------------


def write_set(folder: Path, entries: list[tuple[str, str, str, list[str]]], **top: Any) -> Path:
    """A set file for (path, kind, digest, shapes) entries, with the digest it should have."""
    from fib_quant_kv.sets import set_digest

    roles = {}
    for path, kind, _, _ in entries:
        if kind == "shape":
            roles[path] = json.loads((folder / path).read_text())["role"]
    documents = [
        {
            "path": path,
            "kind": kind,
            "role": None if kind == "geometry" else roles.get(path) or roles[shapes[0]],
            "digest": digest,
            "shapes": shapes,
        }
        for path, kind, digest, shapes in entries
    ]
    digests = {path: digest for path, _, digest, _ in entries}
    body = {
        "set_format": "fib-quant-kv/contract-set/v1",
        "digest": set_digest(
            (d["kind"], d["role"], d["digest"], [digests[s] for s in d["shapes"]])
            for d in documents
        ),
        "documents": documents,
        **top,
    }
    target = folder / SET_FILE
    target.write_text(json.dumps(body, indent=2))
    return target


def test_set_command_writes_a_set_that_validates(cli: Cli, tmp_path: Path) -> None:
    folder = copy_examples(
        tmp_path, "key_shape.json", "key_layout.json", "value_shape.cbor", "page_geometry.json"
    )
    code, out, err = cli("set", str(folder))
    assert code == 0, err
    written = json.loads((folder / SET_FILE).read_text())
    assert out == f"{folder / SET_FILE}: {written['digest']}\n"
    assert [(d["path"], d["kind"], d["role"], d["shapes"]) for d in written["documents"]] == [
        ("key_layout.json", "layout", "key", ["key_shape.json"]),
        ("key_shape.json", "shape", "key", []),
        ("page_geometry.json", "geometry", None, ["key_shape.json", "value_shape.cbor"]),
        ("value_shape.cbor", "shape", "value", []),
    ]
    code, records = cli.records(str(folder))
    assert code == 0
    assert by_name(records)[f"kv/{SET_FILE}"]["digest"] == written["digest"]


def test_the_set_digest_names_the_documents_not_their_files(cli: Cli, tmp_path: Path) -> None:
    one = copy_examples(tmp_path, "key_shape.json", "key_layout.json")
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(EXAMPLES / "key_shape.cbor", other / "llama_key_shape.cbor")
    shutil.copy(EXAMPLES / "key_layout.cbor", other / "llama_key_layout.cbor")
    assert fqk.create_set(one).digest == fqk.create_set(other).digest
    rewrite(one / "key_layout.json", token_stride=128)  # unchanged value, same document
    assert fqk.create_set(one).digest == fqk.create_set(other).digest


def test_a_consistent_but_different_pair_swapped_in_is_caught_by_the_digests(
    cli: Cli, tmp_path: Path
) -> None:
    plan(cli, tmp_path / "kv", 8192)
    plan(cli, tmp_path / "other", 4096)
    for name in ("key_shape.json", "key_layout.json"):
        shutil.copy(tmp_path / "other" / name, tmp_path / "kv" / name)
    code, records = cli.records(str(tmp_path / "kv"))
    assert code == 1
    found = by_name(records)
    # The swapped pair is valid on its own, and with each other...
    assert found["kv/key_layout.json"]["valid"] is True
    # ...but not what the set recorded.
    errors = found[f"kv/{SET_FILE}"]["errors"]
    assert [(e["rule"], e["pointer"]) for e in errors] == [
        ("set.document_digest", "/documents/0/digest"),
        ("set.document_digest", "/documents/1/digest"),
    ]


def test_an_unlisted_document_beside_a_set_is_reported(cli: Cli, tmp_path: Path) -> None:
    plan(cli, tmp_path / "kv")
    shutil.copy(EXAMPLES / "page_geometry.json", tmp_path / "kv" / "old_page_geometry.json")
    code, records = cli.records(str(tmp_path / "kv"))
    assert code == 1
    (error,) = by_name(records)[f"kv/{SET_FILE}"]["errors"]
    assert error["rule"] == "set.unlisted"
    assert error["message"] == "old_page_geometry.json is in the folder but not in the set"


BAD_SETS = [
    pytest.param(
        lambda body: "{not json",
        ("set.malformed", "", "malformed JSON at line 1 column 2"),
        id="malformed",
    ),
    pytest.param(
        lambda body: {**body, "set_format": "fib_quant_kv_tensor_shape_v1"},
        ("set.malformed", "/set_format", "Input should be 'fib-quant-kv/contract-set/v1'"),
        id="wrong-marker",
    ),
    pytest.param(
        lambda body: _entry(body, 0, path="missing_shape.json"),
        ("set.missing_document", "/documents/0/path", "missing_shape.json: cannot open"),
        id="missing-file",
    ),
    pytest.param(
        lambda body: _entry(body, 0, path="../key_shape.json"),
        ("set.path", "/documents/0/path", "'../key_shape.json': expected the name of a file in"),
        id="outside-folder",
    ),
    pytest.param(
        lambda body: _entry(body, 0, path="/etc/key_shape.json"),
        ("set.path", "/documents/0/path", "'/etc/key_shape.json': expected the name of a file"),
        id="absolute",
    ),
    pytest.param(
        lambda body: _entry(body, 0, path="sub/key_shape.json"),
        ("set.path", "/documents/0/path", "'sub/key_shape.json': expected the name of a file"),
        id="in-a-subfolder",
    ),
    pytest.param(
        lambda body: _entry(body, 1, shapes=["key_shape.json\u0000x"]),
        ("set.path", "/documents/1/shapes/0", "a control character in a file name"),
        id="nul-byte",
    ),
    pytest.param(
        lambda body: _entry(body, 2, role="key"),
        ("set.kind", "/documents/2/role", "a geometry has role key: expected null"),
        id="geometry-with-a-role",
    ),
    pytest.param(
        lambda body: [body],
        ("set.malformed", "", "Input should be a valid dictionary"),
        id="not-an-object",
    ),
    pytest.param(
        lambda body: _entry(body, 1, kind="geometry", role=None),
        ("set.kind", "/documents/1/kind", "is a layout: expected a geometry"),
        id="wrong-kind",
    ),
    pytest.param(
        lambda body: _entry(body, 0, digest="blake3:" + "0" * 64),
        ("set.document_digest", "/documents/0/digest", "key_shape.json has digest blake3:"),
        id="digest-differs",
    ),
    pytest.param(
        lambda body: _entry(body, 2, shapes=["key_layout.json"]),
        ("set.binding", "/documents/2/shapes/0", "key_layout.json is a layout: expected a"),
        id="bound-to-a-layout",
    ),
    pytest.param(
        lambda body: _entry(body, 1, shapes=["key_layout.json"]),
        ("set.binding", "/documents/1/shapes/0", "bound to itself: a cycle"),
        id="cycle",
    ),
    pytest.param(
        lambda body: {**body, "digest": "blake3:" + "1" * 64},
        ("set.digest", "/digest", "the digest of what is listed"),
        id="set-digest",
    ),
]


def _entry(body: dict[str, Any], index: int, **changes: Any) -> dict[str, Any]:
    documents = [dict(d) for d in body["documents"]]
    documents[index].update(changes)
    return {**body, "documents": documents}


@pytest.mark.parametrize(("spoil", "want"), BAD_SETS)
def test_every_bad_set_file_is_named_with_its_entry(
    cli: Cli, tmp_path: Path, spoil: Any, want: tuple[str, str, str]
) -> None:
    folder = copy_examples(tmp_path, "key_shape.json", "key_layout.json", "page_geometry.json")
    key = fqk.decode((folder / "key_shape.json").read_bytes())
    entries = [
        ("key_shape.json", "shape", fqk.digest(key), []),
        ("key_layout.json", "layout", fqk.digest(EXAMPLE_LAYOUT, key), ["key_shape.json"]),
        ("page_geometry.json", "geometry", fqk.digest(EXAMPLE_GEOMETRY, key), ["key_shape.json"]),
    ]
    target = write_set(folder, entries)
    spoilt = spoil(json.loads(target.read_text()))
    target.write_text(spoilt if isinstance(spoilt, str) else json.dumps(spoilt))
    code, out, err = cli("validate", str(folder))
    assert code == 1, out + err
    assert "Traceback" not in out + err
    rule, where, message = want
    lines = [line for line in out.splitlines() if line.startswith(f"{target}::{where}: ")]
    assert any(message in line and line.endswith(f"[{rule}]") for line in lines), out


EXAMPLE_LAYOUT = fqk.decode((EXAMPLES / "key_layout.json").read_bytes())
EXAMPLE_GEOMETRY = fqk.decode((EXAMPLES / "page_geometry.json").read_bytes())


# plan --out replaces an earlier plan's set -----------------------------------------------------


def test_plan_out_replaces_an_earlier_plan_and_leaves_no_stale_geometry(
    cli: Cli, tmp_path: Path
) -> None:
    out = tmp_path / "kv"
    plan(cli, out, 8192, "--tokens-per-page", "256", "--encoded-block-bytes", "72")
    assert (out / "page_geometry.json").exists()
    plan(cli, out, 4096, "--format", "cbor")
    assert sorted(p.name for p in out.iterdir()) == [
        SET_FILE,
        "key_layout.cbor",
        "key_shape.cbor",
        "value_layout.cbor",
        "value_shape.cbor",
    ]
    code, _ = cli.records(str(out))
    assert code == 0


def test_plan_out_refuses_a_folder_of_unlisted_documents(cli: Cli, tmp_path: Path) -> None:
    out = copy_examples(tmp_path, "page_geometry.json")
    code, _, err = cli(
        "plan", str(CONFIGS / "llama-3.1-8b.json"), "--tokens", "64", "--out", str(out)
    )
    assert code == 2
    assert f"{out}: holds contract documents no set file lists (page_geometry.json)" in err
    assert sorted(p.name for p in out.iterdir()) == ["page_geometry.json"]


# The library -----------------------------------------------------------------------------------


def test_documents_in_memory_with_their_bindings() -> None:
    documents = {
        name: (EXAMPLES / f"{name}.json").read_bytes()
        for name in ("key_shape", "value_shape", "key_layout", "page_geometry")
    }
    found = fqk.validate_documents(
        documents, {"key_layout": ["key_shape"], "page_geometry": ["key_shape", "value_shape"]}
    )
    assert all(f.valid for f in found.values())
    assert [b.path for b in found["page_geometry"].shapes] == ["key_shape", "value_shape"]
    unbound = fqk.validate_documents(documents, {"page_geometry": ["key_shape"]})
    assert [v.rule for v in unbound["key_layout"].violations] == ["set.no_shape"]
    missing = fqk.validate_documents(documents, {"key_layout": ["gone_shape"]})
    assert [(v.rule, v.code, v.message) for v in missing["key_layout"].violations] == [
        (
            "layout.shape_valid",
            "set",
            "the shape is missing: gone_shape: cannot read: no such document",
        )
    ]


def test_documents_in_memory_pair_by_name_without_bindings() -> None:
    documents = {
        f"kv/{name}.cbor": (EXAMPLES / f"{name}.cbor").read_bytes()
        for name in ("value_shape", "value_layout")
    }
    found = fqk.validate_documents(documents)
    assert [b.path for b in found["kv/value_layout.cbor"].shapes] == ["kv/value_shape.cbor"]
    assert found["kv/value_layout.cbor"].valid


def test_pairing_by_name_indexes_a_folder_once_however_many_documents_it_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 300 planned models in one folder: each layout, geometry and shape finds its partners
    # from the folder's names, which are listed once and read once each, not once a document.
    from fib_quant_kv.sets import names, pairing, stores

    calls: Counter[str] = Counter()
    for module in (names, pairing):
        split = module.split_name

        def counted(name: str, split: Callable[..., Any] = split) -> Any:
            calls["split_name"] += 1
            return split(name)

        monkeypatch.setattr(module, "split_name", counted)
    listed = stores.Memory.names

    def counted_names(store: stores.Memory, folder: str) -> list[str]:
        calls["names"] += 1
        return listed(store, folder)

    monkeypatch.setattr(stores.Memory, "names", counted_names)
    models = 300
    kinds = ("key_shape", "value_shape", "key_layout", "value_layout", "page_geometry")
    documents = {
        f"kv/m{index:03d}_{name}.json": (EXAMPLES / f"{name}.json").read_bytes()
        for index in range(models)
        for name in kinds
    }
    found = fqk.validate_documents(documents)
    assert all(f.valid for f in found.values())
    assert [b.path for b in found["kv/m123_key_layout.json"].shapes] == ["kv/m123_key_shape.json"]
    assert [b.path for b in found["kv/m007_page_geometry.json"].shapes] == [
        "kv/m007_key_shape.json",
        "kv/m007_value_shape.json",
    ]
    assert calls["names"] <= 2  # the folder's listing (and its set file looked for)
    assert calls["split_name"] <= 3 * len(documents)  # was a scan of the folder a document


def test_validate_paths_is_what_validate_reports(cli: Cli, models: Path) -> None:
    findings = fqk.validate_paths([models])
    _, records = cli.records(str(models))
    assert [(f.path, f.valid, f.digest) for f in findings] == [
        (r["path"], r["valid"], r["digest"]) for r in records
    ]


def test_create_set_refuses_a_document_without_its_shape(tmp_path: Path) -> None:
    folder = copy_examples(tmp_path, "key_shape.json", "value_layout.json")
    with pytest.raises(fqk.SetError) as raised:
        fqk.create_set(folder)
    assert raised.value.path == str(folder / "value_layout.json")
    assert raised.value.rule == "set.no_shape"
    assert "value_layout.json cannot join a set: a layout is judged against its shape" in str(
        raised.value
    )


# Both cores for a large run -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json", "github", "sarif"])
def test_a_run_split_across_two_processes_says_what_one_process_says(
    cli: Cli, models: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    from fib_quant_kv.cli import parallel

    extra = models / "extra"
    extra.mkdir()
    for index in range(30):
        data = (EXAMPLES / "key_shape.json").read_bytes()
        if index % 7 == 0:
            data = data.replace(b'"gqa"', b'"mha"')
        (extra / f"n{index:02d}_shape.json").write_bytes(data)
    (extra / "notes.json").write_text("{}")  # skipped: no contract
    (extra / "z_layout.json").write_bytes((EXAMPLES / "key_layout.json").read_bytes())  # no shape
    argv = ("validate", "--format", fmt, str(models), str(EXAMPLES / "key_shape.json"))
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 10**9)
    alone = cli(*argv)
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 4)
    forks = []
    fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or fork())
    split = cli(*argv)
    assert forks == [1]
    assert split == alone
    assert alone[0] == 1
    assert len(alone[1].splitlines()) > 40


def test_a_shape_gets_its_checker_only_when_a_document_pairs_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A walk of shapes alone builds no checker (most shapes of a walk pair with nothing); a
    # layout that pairs with one gets it built from the shape's own verdict, once.
    from fib_quant_kv.verdict import Checker

    made: list[str] = []
    build = Checker.for_valid_shape.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Checker], verdict: Any, *, name: str = "") -> Checker:
        made.append(name)
        return build(cls, verdict, name=name)  # type: ignore[no-any-return]

    monkeypatch.setattr(Checker, "for_valid_shape", classmethod(counted))
    shape = (EXAMPLES / "key_shape.json").read_bytes()
    alone = fqk.validate_documents({f"kv/s{i}.json": shape for i in range(20)})
    assert all(found.valid for found in alone.values())
    assert made == []
    paired = fqk.validate_documents(
        {
            "kv/key_shape.json": shape,
            "kv/key_layout.json": (EXAMPLES / "key_layout.json").read_bytes(),
            "kv/other_shape.json": shape,
        }
    )
    assert all(found.valid for found in paired.values())
    assert made == ["kv/key_shape.json"]


@pytest.mark.parametrize("split", [False, True])
def test_a_run_reads_each_document_once(
    cli: Cli, models: Path, monkeypatch: pytest.MonkeyPatch, split: bool
) -> None:
    # A shape read to judge a layout is judged from those bytes and that decoding, and the
    # set's check takes what judging each document found (from the other process too, when the
    # run is split).
    from fib_quant_kv import sets, verdict
    from fib_quant_kv.cli import parallel
    from fib_quant_kv.sets import pairing, run as judging

    decoded: list[bytes] = []
    decode = verdict.read

    def counted_decode(data: bytes, encoding: Any = None) -> Any:
        decoded.append(data)
        return decode(data, encoding)

    monkeypatch.setattr(pairing, "read", counted_decode)  # a shape read for its checker
    monkeypatch.setattr(judging, "read", counted_decode)  # a document judged
    monkeypatch.setattr(verdict, "read", counted_decode)  # as Checker.for_shape calls it
    reads: list[str] = []
    checking: list[str] = []
    read_by_check: list[str] = []
    read, check_set = sets.Files.read, sets.Run.check_set

    def counted(self: sets.Files, path: str, *, regular: bool = False) -> bytes:
        reads.append(path)
        if checking:
            read_by_check.append(path)
        return read(self, path, regular=regular)

    def check(self: sets.Run, loaded: sets.LoadedSet) -> sets.Finding:
        checking.append(loaded.path)
        try:
            return check_set(self, loaded)
        finally:
            checking.pop()

    monkeypatch.setattr(sets.Files, "read", counted)
    monkeypatch.setattr(sets.Run, "check_set", check)
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 4 if split else 10**9)
    code, records = cli.records(str(models))
    assert code == 0
    assert [r["valid"] for r in records] == [True] * 12
    assert read_by_check == []
    documents = [str(p) for p in models.glob("*/*.json") if p.name != SET_FILE]
    counts = {path: reads.count(path) for path in documents}
    # Split, this process reads only its half (and a shape its half pairs with).
    assert set(counts.values()) <= ({0, 1} if split else {1})
    assert len(decoded) == sum(counts.values())  # and decodes each once, the set files aside
    # Asked for a set file alone, the check reads its documents itself.
    code, records = cli.records(str(models / "llama" / SET_FILE))
    assert code == 0
    assert len(read_by_check) == 5


def test_a_run_reads_decodes_judges_and_digests_each_document_once(
    cli: Cli, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two planned models: per folder two shapes, two layouts and a geometry paged with both
    # shapes, and the set file that lists them. Each stage is counted as the run calls it.
    from fib_quant_kv import reading, result, sets
    from fib_quant_kv.cli import parallel
    from fib_quant_kv.rules import geometry, layout, shape

    monkeypatch.setattr(parallel, "PARALLEL_FROM", 10**9)
    calls: Counter[str] = Counter()

    def counting(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return function(*args, **kwargs)

        return counted

    read = sets.Files.read
    paths: Counter[str] = Counter()

    def counted_read(store: sets.Files, path: str, *, regular: bool = False) -> bytes:
        paths[path] += 1
        return read(store, path, regular=regular)

    monkeypatch.setattr(sets.Files, "read", counted_read)
    monkeypatch.setattr(reading, "read_json", counting("decode", reading.read_json))
    monkeypatch.setattr(reading, "strict", counting("decode strictly", reading.strict))
    for rules in (shape, layout, geometry):
        kind = rules.__name__.rsplit(".", 1)[1]
        monkeypatch.setattr(rules, "violations", counting(f"{kind} rules", rules.violations))
    monkeypatch.setattr(result, "domain_digest", counting("digest", result.domain_digest))
    code, records = cli.records(str(models))
    assert code == 0
    assert [r["valid"] for r in records] == [True] * 12
    assert sorted(paths.items()) == sorted((r["path"], 1) for r in records)  # set files too
    assert dict(calls) == {
        "decode": 10,
        "shape rules": 4,
        "layout rules": 4,
        "geometry rules": 4,  # each geometry against each of its two shapes
        "digest": 10,
    }


# What a careless or hostile tree does -----------------------------------------------------------


def test_a_set_file_that_cannot_be_read_is_reported_and_the_run_goes_on(
    cli: Cli, tmp_path: Path
) -> None:
    folder = copy_examples(tmp_path, "key_shape.json", "key_layout.json")
    (folder / SET_FILE).mkdir()
    code, records = cli.records(str(folder))
    assert code == 1
    found = by_name(records)
    assert found["kv/key_layout.json"]["valid"] is True
    assert found[f"kv/{SET_FILE}"]["errors"][0]["rule"] == "set.malformed"
    assert "cannot read: is a directory" in found[f"kv/{SET_FILE}"]["errors"][0]["message"]


def test_a_nul_byte_in_a_path_is_a_message_not_a_traceback(cli: Cli) -> None:
    code, _, err = cli("validate", "key\0shape.json")
    assert code == 2
    assert err == "key\0shape.json: cannot read: cannot open: a NUL byte in the file name\n"


def test_plan_out_removes_only_the_listed_contract_documents(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "kv"
    plan(cli, out, 8192, "--tokens-per-page", "256", "--encoded-block-bytes", "72")
    (out / "notes.txt").write_text("mine")
    body = json.loads((out / SET_FILE).read_text())
    body["documents"].append({**body["documents"][0], "path": "notes.txt"})
    (out / SET_FILE).write_text(json.dumps(body))
    plan(cli, out, 4096)
    assert (out / "notes.txt").read_text() == "mine"  # listed, but no contract document
    assert not (out / "page_geometry.json").exists()
    (out / "old_key_shape.json").write_bytes((EXAMPLES / "key_shape.json").read_bytes())
    code, _, err = cli(
        "plan", str(CONFIGS / "llama-3.1-8b.json"), "--tokens", "64", "--out", str(out)
    )
    assert code == 2
    assert "holds contract documents no set file lists (old_key_shape.json)" in err
    assert (out / "old_key_shape.json").exists()


def test_set_with_a_trailing_slash_replaces_the_folders_own_set(cli: Cli, tmp_path: Path) -> None:
    folder = copy_examples(tmp_path, "key_shape.json", "value_shape.json", "page_geometry.json")
    assert cli("set", str(folder))[0] == 0
    shutil.copy(EXAMPLES / "key_shape.json", folder / "other_key_shape.json")
    code, _, err = cli("set", f"{folder}/")
    assert code == 0, err
    (geometry,) = [d for d in json.loads((folder / SET_FILE).read_text())["documents"]
                   if d["kind"] == "geometry"]  # fmt: skip
    assert geometry["shapes"] == ["key_shape.json", "other_key_shape.json", "value_shape.json"]


def test_a_layout_is_not_paired_with_a_file_of_another_suffix(cli: Cli, tmp_path: Path) -> None:
    folder = copy_examples(tmp_path, "key_shape.cbor", "key_layout.json")
    (folder / "key_shape.bak").write_text("a backup")
    (folder / "key_shape").mkdir()
    _, records = cli.records(str(folder / "key_layout.json"))
    assert shape_names(records[0]) == ["kv/key_shape.cbor"]
    assert records[0]["valid"] is True


def test_a_set_entry_that_is_a_symbolic_link_is_refused(cli: Cli, tmp_path: Path) -> None:
    folder = copy_examples(tmp_path, "key_layout.json")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(EXAMPLES / "key_shape.json", outside / "key_shape.json")
    (folder / "key_shape.json").symlink_to(outside / "key_shape.json")
    assert cli("set", str(folder))[0] == 0
    code, records = cli.records(str(folder))
    assert code == 1
    errors = by_name(records)[f"kv/{SET_FILE}"]["errors"]
    assert [(e["rule"], e["pointer"]) for e in errors] == [("set.path", "/documents/1/path")]
    assert errors[0]["message"].endswith(
        "is a symbolic link: expected the document itself, in the set's folder"
    )


def test_a_named_set_file_is_checked_with_a_shape_given_too(cli: Cli) -> None:
    code, records = cli.records(
        "--shape", str(EXAMPLES / "value_shape.json"), str(EXAMPLES / SET_FILE)
    )
    assert code == 0
    assert [(Path(r["path"]).name, r["kind"], r["valid"]) for r in records] == [
        (SET_FILE, "set", True)
    ]


def test_a_document_is_never_its_own_shape(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "kv"
    folder.mkdir()
    shutil.copy(EXAMPLES / "key_layout.json", folder / "key_shape.json")  # a layout, misnamed
    code, records = cli.records(str(folder / "key_shape.json"))
    assert code == 1
    assert records[0]["kind"] == "layout"
    assert records[0]["shapes"] == []
    assert [e["rule"] for e in records[0]["errors"]] == ["set.no_shape"]


def test_a_set_that_gives_a_layout_no_role_gets_a_message_not_a_traceback(
    cli: Cli, tmp_path: Path
) -> None:
    folder = copy_examples(tmp_path, "key_shape.json", "key_layout.json", "value_shape.json")
    shutil.copy(EXAMPLES / "value_layout.json", folder / "value_layout.json")
    assert cli("set", str(folder))[0] == 0
    body = json.loads((folder / SET_FILE).read_text())
    body["documents"][0]["role"] = None  # key_layout.json, beside a layout that keeps its role
    (folder / SET_FILE).write_text(json.dumps(body))
    code, out, err = cli("validate", str(folder))
    assert code == 1
    assert "Traceback" not in out + err
    assert (
        f"{folder / SET_FILE}::/documents/0/role: a layout has role null: expected key or value"
        in out
    )
    assert "[set.digest]" in out


# One cache agrees with itself ------------------------------------------------------------------


def cache_vectors() -> list[dict[str, Any]]:
    path = DATA / "cache_agreement_vectors.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("case", cache_vectors(), ids=lambda c: c["id"])
def test_the_key_and_value_shapes_of_one_cache_agree(case: dict[str, Any]) -> None:
    documents = {
        "kv/key_shape.json": json.dumps(case["key"]).encode(),
        "kv/value_shape.json": json.dumps(case["value"]).encode(),
    }
    found = fqk.validate_documents(documents)
    expected = [(v["rule"], v["pointer"]) for v in case["expect"]["violations"]]
    for name in documents:
        assert found[name].valid is case["expect"]["valid"], name
        assert [(v.rule, v.pointer) for v in found[name].violations] == expected, name
    if expected:
        message = found["kv/value_shape.json"].violations[0].message
        assert "the key shape of this cache (kv/key_shape.json)" in message


def test_a_geometry_binds_the_shapes_of_one_cache_in_its_set(cli: Cli, tmp_path: Path) -> None:
    # Renamed so that no name pairs them: the set file's geometry binding does.
    folder = tmp_path / "kv"
    plan(cli, folder, 8192, "--tokens-per-page", "256", "--encoded-block-bytes", "72")
    for role in ("key", "value"):
        (folder / f"{role}_shape.json").rename(folder / f"{role}s.shape.json")
    listed = json.loads((folder / SET_FILE).read_text())
    for entry in listed["documents"]:
        entry["path"] = entry["path"].replace("_shape.json", "s.shape.json")
        entry["shapes"] = [s.replace("_shape.json", "s.shape.json") for s in entry["shapes"]]
    (folder / SET_FILE).write_text(json.dumps(listed, indent=2))
    rewrite(folder / "values.shape.json", batch=3)
    code, records = cli.records(str(folder / "values.shape.json"))
    assert code == 1
    (record,) = [r for r in records if r["path"].endswith("values.shape.json")]
    assert [(e["rule"], e["pointer"]) for e in record["errors"]] == [("set.cache_agrees", "/batch")]


def test_a_plan_groups_key_and_value_shapes_that_agree() -> None:
    planned = fqk.plan_from_hf_config(CONFIGS / "mimo-v2-flash.json", tokens=4096)
    found = fqk.validate_documents(
        {f"kv/{stem}.json": fqk.encode(doc) for stem, doc in planned.documents.items()}
    )
    assert all(f.valid for f in found.values()), [
        (name, f.violations) for name, f in found.items() if not f.valid
    ]


def test_a_name_splits_as_splitext_would_split_it() -> None:
    # split_name finds the extension itself (a run asks it of every shape); on every name of
    # up to four pieces, from pieces that trip a splitter up, it agrees with posixpath's.
    import itertools
    import posixpath

    from fib_quant_kv.files import SUFFIXES
    from fib_quant_kv.rules.sets import KIND_WORDS
    from fib_quant_kv.sets.names import split_name

    def plain(name: str) -> tuple[str, str, str] | None:
        stem, ext = posixpath.splitext(name)
        words = [w for w in KIND_WORDS if stem.endswith(w) and stem[: -len(w)][-1:] in "_-"]
        return (stem[: -len(words[0])], words[0], ext) if ext in SUFFIXES and words else None

    pieces = [".", "_", "-", "a", "shape", "layout", "geometry", "json", ".json", ".cbor", "key_"]
    names = ["".join(p) for n in range(1, 5) for p in itertools.product(pieces, repeat=n)]
    assert [split_name(name) for name in names] == [plain(name) for name in names]
    assert split_name("llama_key_layout.json") == ("llama_key_", "layout", ".json")
    assert split_name(".shape.json") is None


def test_each_store_has_what_its_folders_list(tmp_path: Path) -> None:
    # A run asks a store whether a folder holds its set file (one lstat on disk, not a
    # listing): each store answers as its own listing would.
    from fib_quant_kv.sets import stores

    (tmp_path / "kv").mkdir()
    (tmp_path / "kv" / SET_FILE).write_text("{}")
    (tmp_path / "kv" / "dangling_shape.json").symlink_to(tmp_path / "gone.json")
    on_disk = stores.Files()
    in_memory = stores.Memory({f"kv/{SET_FILE}": b"{}", "top_shape.json": b"{}"})
    asked = [
        (on_disk, str(tmp_path / "kv")),
        (on_disk, str(tmp_path)),
        (in_memory, "kv"),
        (in_memory, ""),
    ]
    for store, folder in asked:
        for name in (SET_FILE, "dangling_shape.json", "top_shape.json", "gone.json"):
            path = f"{folder}/{name}" if folder else name
            assert store.has(path) == (name in store.names(folder)), (folder, name)
    assert on_disk.has(str(tmp_path / "kv" / "dangling_shape.json"))
    assert in_memory.has("top_shape.json")
    assert not in_memory.has(f"other/{SET_FILE}")
