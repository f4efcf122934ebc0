"""The `plan` command: a model's config.json to contract files, digests and a memory table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import fib_quant_kv as fqk
from fib_quant_kv.cli import main
from fib_quant_kv.hf.plan import Group, plan_from_hf_config
from tests.shared import CONFIGS, PAGED_PLAN, run

LLAMA = str(CONFIGS / "llama-3.1-8b.json")
GEMMA2 = str(CONFIGS / "gemma-2-2b.json")
NAMES = ["key_shape", "key_layout", "value_shape", "value_layout", "page_geometry"]
HEADER = [
    "group",
    "layers",
    "tokens",
    "KV heads",
    "head size",
    "elements",
    "source bytes",
    "raw f32 bytes",
    "pages per stream",
    "pages",
    "encoded",
    "ratio",
]
SET_FILE = "fib-quant-kv-set.json"


def digest_lines(out: str) -> dict[str, str]:
    """The `name: digest` lines printed before the memory table."""
    head = out.split("\n\n", 1)[0]
    return dict(line.rsplit(": ", 1) for line in head.splitlines())


def table(out: str) -> list[list[str]]:
    """The memory table's rows (header first), split on runs of two or more spaces."""
    body = out.rsplit("\n\n", 1)[1]
    rows = []
    for line in body.splitlines():
        cells = [cell.strip() for cell in line.strip().split("  ") if cell.strip()]
        rows.append(cells)
    return rows


def human(n: int) -> str:
    """Sizes as the table prints them: binary units with one decimal, plain bytes below 1 KiB."""
    if n < 1024:
        return f"{n} B"
    size = n / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def expected_row(group: Group) -> list[str]:
    size = group.size
    return [
        group.name or "all",
        str(len(group.layers)),
        str(group.tokens),
        str(group.key_shape.kv_heads),
        str(group.key_shape.head_dim),
        f"{size.elements:,}",
        human(size.source_bytes),
        human(size.raw_f32_bytes),
        "-" if size.pages_per_stream is None else f"{size.pages_per_stream:,}",
        "-" if size.pages is None else f"{size.pages:,}",
        "-" if size.encoded_bytes is None else human(size.encoded_bytes),
        "-" if size.compression is None else f"{size.compression:.2f}x",
    ]


# Files written, and what `validate` makes of them --------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "cbor"])
def test_plan_writes_what_the_library_computes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str
) -> None:
    out_dir = tmp_path / "kv"
    code, out, err = run(
        capsys,
        "plan",
        LLAMA,
        "--tokens",
        "1000",
        "--batch",
        "2",
        "--tokens-per-page",
        "256",
        "--encoded-block-bytes",
        "72",
        "--out",
        str(out_dir),
        "--format",
        fmt,
    )
    assert code == 0, err
    assert err == ""
    plan = plan_from_hf_config(
        LLAMA, tokens=1000, batch=2, tokens_per_page=256, encoded_block_bytes=72
    )
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        [SET_FILE, *(f"{n}.{fmt}" for n in NAMES)]
    )
    printed = digest_lines(out)
    set_digest = printed.pop(str(out_dir / SET_FILE))
    assert printed == {str(out_dir / f"{n}.{fmt}"): plan.digests[n] for n in NAMES}
    assert json.loads((out_dir / SET_FILE).read_text())["digest"] == set_digest
    for name in NAMES:
        data = (out_dir / f"{name}.{fmt}").read_bytes()
        doc = plan.documents[name]
        assert data == fqk.encode(doc, fmt) + (b"\n" if fmt == "json" else b"")  # type: ignore[arg-type]
        assert fqk.decode(data) == doc
    key = fqk.decode((out_dir / f"key_shape.{fmt}").read_bytes())
    assert isinstance(key, fqk.KvTensorShapeV1)
    assert (key.batch, key.tokens, key.layers, key.kv_heads, key.head_dim) == (2, 1000, 32, 8, 128)

    # `validate` accepts every file with the key shape, and finds the digests `plan` printed.
    key_shape = str(out_dir / f"key_shape.{fmt}")
    code, out, err = run(capsys, "validate", "--shape", key_shape, "--format", "json", str(out_dir))
    assert code == 0, out + err
    records = [json.loads(line) for line in out.splitlines()]
    records = [r for r in records if r["kind"] != "set"]  # the set file is checked as well
    assert len(records) == len(NAMES)
    # And with no --shape, through the set file plan wrote, which it checks too.
    code, out, err = run(capsys, "validate", "--format", "json", str(out_dir))
    assert code == 0, out + err
    paired = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in paired].count(str(out_dir / SET_FILE)) == 1
    assert all(r["valid"] for r in paired)
    for record in records:
        assert record["valid"] is True
        assert record["shape_checked"] is True
        assert record["errors"] == []
        assert record["digest"] == plan.digests[Path(record["path"]).stem]
    assert {r["kind"] for r in records} == {"shape", "layout", "geometry"}

    code, out, _ = run(capsys, "validate", "--shape", key_shape, str(out_dir))
    assert code == 0
    lines = [line for line in out.splitlines() if ": valid set " not in line]
    assert len(lines) == len(NAMES)
    for line in lines:
        path, rest = line.split(": ", 1)
        assert rest.startswith("valid ")
        # `valid KIND DIGEST`, and for a layout or geometry ` against SHAPE SHAPE_DIGEST`.
        assert rest.split()[2] == plan.digests[Path(path).stem]
        if "_shape." not in path:
            assert rest.endswith(f"against {key_shape} {plan.digests['key_shape']}")


def test_json_and_cbor_plans_print_the_same_digests(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    digests = {}
    for fmt in ("json", "cbor"):
        args = ["plan", LLAMA, "--tokens", "4096", "--tokens-per-page", "128"]
        args += ["--encoded-block-bytes", "40", "--out", str(tmp_path / fmt), "--format", fmt]
        code, out, _ = run(capsys, *args)
        assert code == 0
        digests[fmt] = {Path(p).stem: d for p, d in digest_lines(out).items()}
    assert digests["json"] == digests["cbor"]
    # The key shape at 4096 tokens is the contract's worked example.
    assert digests["json"]["key_shape"] == (
        "blake3:388d99e611df08a63740c3eac1466a3428465ccc46022071b57cde066f026fdc"
    )
    json_bytes = (tmp_path / "json" / "key_layout.json").read_bytes()
    cbor_bytes = (tmp_path / "cbor" / "key_layout.cbor").read_bytes()
    assert json_bytes != cbor_bytes
    assert fqk.decode(json_bytes) == fqk.decode(cbor_bytes)


def test_plan_flags_reach_the_documents(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_dir = tmp_path / "gpt2"
    code, _, err = run(
        capsys,
        "plan",
        str(CONFIGS / "gpt2.json"),
        "--tokens",
        "64",
        "--batch",
        "3",
        "--dtype",
        "f32",
        "--out",
        str(out_dir),
    )
    assert code == 0, err
    for role in ("key", "value"):
        shape = fqk.decode((out_dir / f"{role}_shape.json").read_bytes())
        expected = fqk.shape_from_hf_config(
            CONFIGS / "gpt2.json", role=role, tokens=64, batch=3, dtype="f32"
        )
        assert shape == expected
        assert (shape.batch, shape.tokens, shape.dtype, shape.attention_kind) == (
            3,
            64,
            "f32",
            "mha",
        )
    assert not (out_dir / "page_geometry.json").exists()


def test_plan_without_out_prints_names_and_digests(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "plan", LLAMA, "--tokens", "512")
    assert code == 0
    plan = plan_from_hf_config(LLAMA, tokens=512)
    assert digest_lines(out) == plan.digests
    assert set(plan.digests) == {"key_shape", "key_layout", "value_shape", "value_layout"}
    assert list(tmp_path.iterdir()) == []  # nothing written


# The memory table -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "argv"),
    [
        ("llama-3.1-8b.json", ["--tokens", "8192", "--tokens-per-page", "256"]),
        ("qwen2.5-7b.json", ["--tokens", "4097", "--batch", "2", "--tokens-per-page", "128"]),
        ("gemma-2-2b.json", ["--tokens", "100", "--dtype", "f32", "--tokens-per-page", "7"]),
        ("gemma-2-2b.json", ["--tokens", "8192", "--tokens-per-page", "256"]),
    ],
)
def test_memory_table_has_a_row_per_group(
    capsys: pytest.CaptureFixture[str], config: str, argv: list[str]
) -> None:
    code, out, _ = run(capsys, "plan", str(CONFIGS / config), *argv, "--encoded-block-bytes", "72")
    assert code == 0
    rows = table(out)
    assert rows[0] == HEADER
    opts = dict(zip(argv[::2], argv[1::2], strict=True))
    plan = plan_from_hf_config(
        CONFIGS / config,
        tokens=int(opts["--tokens"]),
        batch=int(opts.get("--batch", "1")),
        dtype=opts.get("--dtype"),
        tokens_per_page=int(opts["--tokens-per-page"]),
        encoded_block_bytes=72,
    )
    groups = [expected_row(group) for group in plan.groups]
    assert rows[1 : 1 + len(groups)] == groups
    if len(groups) > 1:
        total = plan.total
        assert rows[-1] == [
            "total",
            str(len(plan.kv_layers)),
            f"{total.elements:,}",
            human(total.source_bytes),
            human(total.raw_f32_bytes),
            "-",
            f"{total.pages:,}",
            human(total.encoded_bytes or 0),
            f"{total.compression:.2f}x",
        ]
    else:
        assert len(rows) == 2


def test_memory_table_of_llama_at_8192_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "plan",
        LLAMA,
        *PAGED_PLAN,
    )
    assert code == 0
    rows = table(out)
    # Keys and values together: 2 x 32 layers x 8 KV heads x 8192 tokens x 128.
    assert rows[1] == [
        "all",
        "32",
        "8192",
        "8",
        "128",
        "536,870,912",
        "1.0 GiB",
        "2.0 GiB",
        "32",
        "16,384",
        "288.0 MiB",
        "3.56x",
    ]


def test_memory_table_without_geometry_has_dashes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", LLAMA, "--tokens", "8192")
    assert code == 0
    rows = table(out)
    assert rows[0] == HEADER
    assert len(rows) == 2
    assert rows[1][5:8] == ["536,870,912", "1.0 GiB", "2.0 GiB"]
    assert rows[1][8:] == ["-", "-", "-", "-"]


def test_plan_says_what_each_group_holds(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", GEMMA2, "--tokens", "8192")
    assert code == 0
    lines = out.split("\n\n")[1].splitlines()
    assert lines[0] == "gemma2: 26 decoder layers, all 26 hold keys and values"
    assert lines[1] == (
        "  sliding (13 layers: 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24): the last 4095 of "
        "the 8192 tokens (a sliding window of 4096)"
    )
    assert lines[2] == (
        "  full (13 layers: 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25): all 8192 tokens"
    )
    code, out, _ = run(capsys, "plan", str(CONFIGS / "qwen3-next-80b-a3b.json"), "--tokens", "64")
    assert code == 0
    assert "qwen3_next: 48 decoder layers, 12 hold keys and values" in out
    assert "without keys and values: 0-2, 4-6, 8-10" in out
    assert "(linear_attention)" in out


def test_plan_writes_a_group_apart_and_validate_passes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "gemma"
    code, out, err = run(
        capsys,
        "plan",
        GEMMA2,
        *PAGED_PLAN,
        "--out",
        str(out_dir),
    )
    assert code == 0, err
    expected = {f"{group}_{name}.json" for group in ("sliding", "full") for name in NAMES} | {
        SET_FILE
    }
    assert {p.name for p in out_dir.iterdir()} == expected
    listed = json.loads((out_dir / SET_FILE).read_text())["documents"]
    bound = {d["path"]: d["shapes"] for d in listed}
    assert bound["sliding_page_geometry.json"] == [
        "sliding_key_shape.json",
        "sliding_value_shape.json",
    ]
    assert bound["full_key_layout.json"] == ["full_key_shape.json"]
    code, out, err = run(capsys, "validate", str(out_dir))
    assert code == 0, out + err
    assert "11 documents checked, 0 invalid" in err


def test_plan_reads_a_model_folder_and_a_named_family(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "TinyLlama"
    folder.mkdir()
    config = json.loads((CONFIGS / "tinyllama-1.1b-chat-v1.0.json").read_text())
    (folder / "config.json").write_text(json.dumps(config))
    code, out, _ = run(capsys, "plan", str(folder), "--tokens", "64")
    assert code == 0
    assert "llama: 22 decoder layers" in out
    config["model_type"] = "my_llama"
    (folder / "config.json").write_text(json.dumps(config))
    code, out, err = run(capsys, "plan", str(folder), "--tokens", "64")
    assert code == 1
    assert "model_type 'my_llama'" in err
    assert "--family NAME" in err
    code, out, _ = run(capsys, "plan", str(folder), "--tokens", "64", "--family", "llama")
    assert code == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run(capsys, "plan", str(empty), "--tokens", "64")
    assert code == 2
    assert "a folder without a config.json" in err


def test_plan_takes_class_defaults_only_when_asked_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    gemma = str(CONFIGS / "gemma-3-4b-it.json")
    code, out, err = run(capsys, "plan", gemma, "--tokens", "4096")
    assert code == 1
    assert "/text_config/num_attention_heads: no num_attention_heads" in err
    code, out, err = run(capsys, "plan", gemma, "--tokens", "4096", "--class-defaults")
    assert code == 0, err
    assert (
        "class defaults taken (--class-defaults): /text_config/num_attention_heads 8, "
        "/text_config/num_key_value_heads 4, /text_config/head_dim 256"
    ) in out


def test_a_page_longer_than_a_group_holds_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "kv"
    code, out, err = run(
        capsys,
        "plan",
        GEMMA2,
        "--tokens",
        "8192",
        "--tokens-per-page",
        "8192",
        "--encoded-block-bytes",
        "72",
        "--out",
        str(out_dir),
    )
    assert code == 2
    assert out == ""
    assert "the sliding layers hold: choose at most 4095" in err
    assert not out_dir.exists()


# Refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "half",
    [["--tokens-per-page", "256"], ["--encoded-block-bytes", "72"]],
    ids=["tokens-per-page-alone", "encoded-block-bytes-alone"],
)
def test_half_a_geometry_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, half: list[str]
) -> None:
    out_dir = tmp_path / "kv"
    code, out, err = run(capsys, "plan", LLAMA, "--tokens", "8192", *half, "--out", str(out_dir))
    assert code == 2
    assert "--tokens-per-page and --encoded-block-bytes go together" in err
    assert out == ""
    assert not out_dir.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--tokens", "0"],
        ["--tokens", "-5"],
        ["--tokens", "1.5"],
        ["--batch", "0", "--tokens", "8"],
        ["--tokens", "8", "--dtype", "f64"],
        ["--tokens", "8", "--format", "yaml", "--out", "x"],
        [],
    ],
)
def test_bad_arguments_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["plan", LLAMA, *argv])
    assert caught.value.code == 2
    _, err = capsys.readouterr()
    assert "error:" in err
    assert "Traceback" not in err


def test_latent_attention_exits_1_naming_the_file_and_the_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "minicpm3", "num_hidden_layers": 62}))
    out_dir = tmp_path / "kv"
    code, out, err = run(capsys, "plan", str(config), "--tokens", "4096", "--out", str(out_dir))
    assert code == 1
    assert out == ""
    assert err.startswith(f"{config}::/model_type: ")
    assert "latent attention" in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1
    assert not out_dir.exists()


def test_missing_torch_dtype_exits_1_and_asks_for_dtype(capsys: pytest.CaptureFixture[str]) -> None:
    gpt2 = str(CONFIGS / "gpt2.json")
    code, out, err = run(capsys, "plan", gpt2, "--tokens", "8")
    assert code == 1
    assert out == ""
    assert err.startswith(f"{gpt2}::/torch_dtype: ")
    assert "--dtype on the command line" in err
    for spelling in ("f16", "float16", "torch.float16", "half"):
        code, out, _ = run(capsys, "plan", gpt2, "--tokens", "8", "--dtype", spelling)
        assert code == 0
        assert "key_shape: blake3:" in out
    with pytest.raises(SystemExit) as usage:
        run(capsys, "plan", gpt2, "--tokens", "8", "--dtype", "int8")
    assert usage.value.code == 2
    err = capsys.readouterr().err
    assert "unknown dtype 'int8': expected one of" in err
    assert "float16" in err


def test_a_config_breaking_a_contract_rule_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "config.json"
    counts: dict[str, Any] = {"model_type": "llama", "num_hidden_layers": 2}
    counts["num_attention_heads"] = 32
    counts |= {"num_key_value_heads": 5, "hidden_size": 4096, "torch_dtype": "float16"}
    config.write_text(json.dumps(counts))
    code, out, err = run(capsys, "plan", str(config), "--tokens", "8")
    assert code == 1
    assert out == ""
    # At the config's own key, not at the shape's field.
    assert err.startswith(f"{config}::/num_key_value_heads: ")


def test_a_page_longer_than_the_tokens_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "plan",
        LLAMA,
        "--tokens",
        "100",
        "--tokens-per-page",
        "256",
        "--encoded-block-bytes",
        "72",
    )
    assert code == 2
    assert out == ""
    assert "--tokens-per-page 256 is more than --tokens 100" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "data", [b"not json", b"[1, 2]", b"\xff\xfe"], ids=["text", "array", "invalid-utf8"]
)
def test_a_config_that_is_not_a_json_object_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data: bytes
) -> None:
    config = tmp_path / "config.json"
    config.write_bytes(data)
    code, out, err = run(capsys, "plan", str(config), "--tokens", "8")
    assert code == 1
    assert out == ""
    assert err.startswith(f"{config}::: ")
    assert "Traceback" not in err


def test_an_unreadable_config_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    code, out, err = run(capsys, "plan", str(missing), "--tokens", "8")
    assert out == ""
    assert str(missing) in err
    assert code == 2


def test_an_unreadable_config_is_refused_without_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for path in (tmp_path / "missing.json", tmp_path):
        code, out, err = run(capsys, "plan", str(path), "--tokens", "8")
        assert code == 2
        assert out == ""
        assert err.startswith(f"fib-quant-kv: {path}: ")
        assert "cannot open" in err or "a folder without a config.json" in err
        assert "Traceback" not in err


def test_the_library_writes_a_plan_folder_as_the_command_line_does(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = json.loads((CONFIGS / "gemma-2-2b.json").read_text())
    sizes = {"tokens_per_page": 256, "encoded_block_bytes": 72}
    planned = fqk.plan_from_hf_config(config, tokens=8192, **sizes)
    written = fqk.write_plan(planned, str(tmp_path / "lib"))
    assert [Path(path).name for path, _ in written][-1] == SET_FILE
    assert len(written) == len(planned.documents) + 1
    code, out, _ = run(
        capsys, "plan", str(CONFIGS / "gemma-2-2b.json"), "--tokens", "8192",
        "--tokens-per-page", "256", "--encoded-block-bytes", "72", "--out", str(tmp_path / "cli"),
    )  # fmt: skip
    assert code == 0
    # The same files, the same bytes.
    for path, digest in written:
        name = Path(path).name
        assert (tmp_path / "cli" / name).read_bytes() == Path(path).read_bytes()
        assert f"{tmp_path / 'cli' / name}: {digest}" in out
    # A plan of one group replaces the earlier plan of two: nothing of it is left.
    mistral = json.loads((CONFIGS / "mistral-7b-v0.1.json").read_text())
    fqk.write_plan(fqk.plan_from_hf_config(mistral, tokens=8192, **sizes), str(tmp_path / "lib"))
    assert sorted(p.name for p in (tmp_path / "lib").iterdir()) == sorted(
        [SET_FILE, *(f"{name}.json" for name in NAMES)]
    )
    # A folder holding documents no set file lists is refused, and left as it was.
    (tmp_path / "lib" / SET_FILE).unlink()
    with pytest.raises(fqk.WriteRefused, match="holds contract documents no set file lists"):
        fqk.write_plan(planned, str(tmp_path / "lib"))
    assert not any(p.name.startswith("sliding_") for p in (tmp_path / "lib").iterdir())
