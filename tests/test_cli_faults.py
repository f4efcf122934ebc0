"""Every I/O and usage fault of the command line: one line naming the path and what to do, exit 2,
never a traceback."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from fib_quant_kv.cli import main
from tests.shared import CONFIGS, EXAMPLES, Cli

KEY_SHAPE = str(EXAMPLES / "key_shape.json")
LLAMA = str(CONFIGS / "llama-3.1-8b.json")


def every_command(folder: Path) -> dict[str, list[str]]:
    """A valid call of each subcommand, writing nothing outside `folder`."""
    shutil.copytree(EXAMPLES, folder / "kv")
    return {
        "validate": ["validate", str(folder / "kv")],
        "digest": ["digest", str(folder / "kv" / "key_layout.cbor")],
        "convert": ["convert", "--to", "json", KEY_SHAPE],
        "layout": ["layout", KEY_SHAPE],
        "geometry": ["geometry", KEY_SHAPE, "--tokens-per-page", "8", "--encoded-block-bytes", "9"],
        "page-count": ["page-count", "--shape", KEY_SHAPE, str(EXAMPLES / "page_geometry.json")],
        "plan": ["plan", LLAMA, "--tokens", "64", "--out", str(folder / "plan")],
        "set": ["set", str(folder / "kv")],
        "rule": ["rule", "layout.canonical"],
        "schema": ["schema"],
    }


def spawn(argv: list[str], **streams: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "fib_quant_kv", *argv],
        capture_output="stdout" not in streams,
        timeout=60,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
        **streams,  # type: ignore[call-overload]
    )


def test_every_subcommand_with_standard_output_full_or_closed(tmp_path: Path) -> None:
    for name, argv in every_command(tmp_path).items():
        with open("/dev/full", "wb") as full:
            proc = spawn(argv, stdout=full, stderr=subprocess.PIPE)
        err = proc.stderr.decode()
        assert proc.returncode == 2, (name, err)
        assert err == "fib-quant-kv: cannot write standard output: No space left on device\n", name

        # Closed (`>&-`): the program starts with no standard output at all.
        closed = subprocess.run(
            ["sh", "-c", 'exec "$0" -m fib_quant_kv "$@" >&-', sys.executable, *argv],
            capture_output=False,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
        assert closed.returncode == 2, name
        assert closed.stderr.decode() == (
            "fib-quant-kv: standard output is closed: expected somewhere to write\n"
        ), name


def test_standard_input_closed_or_asked_for_twice(cli: Cli) -> None:
    closed = subprocess.run(
        ["sh", "-c", 'exec "$0" -m fib_quant_kv validate - <&-', sys.executable],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert closed.returncode == 2
    assert closed.stderr.decode() == (
        "-: cannot read: standard input is closed: expected a document on it\n"
    )
    for argv in (
        ["validate", "--shape", "-", "-"],
        ["digest", "--shape", "-", "-"],
        ["convert", "--to", "cbor", "--shape", "-", "-"],
        ["page-count", "--shape", "-", "-"],
    ):
        code, out, err = cli(*argv)
        assert (code, out) == (2, ""), argv
        assert err == "fib-quant-kv: standard input can be read once: name at most one input as -\n"


def test_plan_out_onto_a_file_under_a_file_and_in_a_folder_it_cannot_write(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    plan = ["plan", LLAMA, "--tokens", "64", "--out"]
    code, out, err = cli(*plan, str(afile))
    assert (code, out) == (2, "")
    assert err == f"fib-quant-kv: {afile}: not a folder: expected a folder to write the plan into\n"
    code, out, err = cli(*plan, str(afile / "sub"))
    assert (code, out) == (2, "")
    assert err == f"fib-quant-kv: {afile / 'sub'}: cannot make the folder: Not a directory\n"

    # As root every folder is writable: the refusal is made where the file is created.
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    code, out, err = cli(*plan, str(tmp_path / "locked"))
    assert code == 2
    target = tmp_path / "locked" / "key_shape.json"
    assert err == f"fib-quant-kv: {target}: cannot write: Permission denied\n"
    assert "Traceback" not in out + err


def test_convert_writes_standard_output_for_dash(cli: Cli, tmp_path: Path) -> None:
    os.chdir(tmp_path)
    code, out, _ = cli("convert", "--to", "json", "-o", "-", str(EXAMPLES / "key_shape.cbor"))
    assert code == 0
    assert json.loads(out)["schema_version"] == "fib_quant_kv_tensor_shape_v1"
    assert not (tmp_path / "-").exists()


def test_convert_never_writes_binary_to_a_terminal(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    code, out, err = cli("convert", "--to", "cbor", KEY_SHAPE)
    assert (code, out) == (2, "")
    assert err == (
        "fib-quant-kv: will not write binary CBOR to a terminal: pass -o FILE, or redirect "
        "standard output\n"
    )


def test_convert_refuses_what_the_rules_refuse_unless_told(cli: Cli, tmp_path: Path) -> None:
    layout = tmp_path / "key_layout.json"
    doc = json.loads((EXAMPLES / "key_layout.json").read_text())
    layout.write_text(json.dumps({**doc, "dim_stride": 2}))
    shutil.copy(EXAMPLES / "key_shape.json", tmp_path / "key_shape.json")
    code, out, err = cli("convert", "--to", "json", str(layout))
    assert (code, out) == (1, "")
    assert err.startswith(f"{layout}::/dim_stride: only canonical contiguous kv layout")
    code, out, _ = cli("convert", "--to", "json", "--structure-only", str(layout))
    assert code == 0
    assert json.loads(out)["dim_stride"] == 2
    # With no shape to judge it against, a layout is not converted either.
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(EXAMPLES / "key_layout.json", alone / "key_layout.json")
    code, _, err = cli(
        "convert", "--to", "cbor", "-o", str(tmp_path / "x.cbor"), str(alone / "key_layout.json")
    )
    assert code == 1
    assert "a layout is judged against its shape: no shape: looked for key_shape.json" in err
    assert not (tmp_path / "x.cbor").exists()


def test_plan_format_without_out_is_a_usage_error(cli: Cli) -> None:
    code, out, err = cli("plan", LLAMA, "--tokens", "64", "--format", "cbor")
    assert (code, out) == (2, "")
    assert err == (
        "fib-quant-kv: --format cbor chooses the encoding of the files --out writes: pass --out\n"
    )


def test_layout_and_geometry_given_a_layout_name_the_document_not_an_option(cli: Cli) -> None:
    layout = str(EXAMPLES / "key_layout.json")
    for argv in (
        ["layout", layout],
        ["geometry", layout, "--tokens-per-page", "8", "--encoded-block-bytes", "9"],
    ):
        code, _, err = cli(*argv)
        assert code == 1
        assert err == (
            f"{layout}::/schema_version: expected a fib_quant_kv_tensor_shape_v1 (a shape), "
            "got a fib_quant_kv_cache_layout_v1 [schema.marker]\n"
        )
    code, _, err = cli(
        "geometry", KEY_SHAPE, "--tokens-per-page", "9000", "--encoded-block-bytes", "9"
    )
    assert code == 2
    assert err == (
        "fib-quant-kv: --tokens-per-page: tokens_per_page must be in 1..=8192 (the shape's "
        "tokens), got 9000\n"
    )


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        pytest.param(
            # Random bytes in a .cbor file are read as CBOR, and said to be none.
            "key_shape.cbor",
            b"garbage",
            "truncated: an item claims 7 bytes, 6 bytes remain (at byte 1); the file is named "
            ".cbor but is not a CBOR document (first byte 0x67)",
            id="cbor-named-garbage",
        ),
        pytest.param(
            # A .cbor file that opens as JSON does is read as JSON, and said to be so.
            "key_shape.cbor",
            b'{"schema_version": ',
            "; the file is named .cbor but its content reads as JSON (first byte 0x7b): "
            "expected CBOR",
            id="cbor-named-json-content",
        ),
        pytest.param(
            "key_shape.json",
            (EXAMPLES / "key_shape.json").read_text().encode("utf-16"),
            "; the file is named .json but its content reads as CBOR (first byte 0xff): "
            "expected JSON",
            id="utf-16-json",
        ),
    ],
)
def test_content_and_extension_that_disagree_are_both_named(
    cli: Cli, tmp_path: Path, name: str, data: bytes, says: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    for argv in (
        ["validate", str(path)],
        ["digest", str(path)],
        ["convert", "--to", "json", str(path)],
    ):
        code, out, err = cli(*argv)
        assert code == 1
        assert says in out + err


def test_one_root_pointer_and_rules_not_run_on_undecodable_bytes(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad_shape.json"
    bad.write_text("{")
    code, records = cli.records(str(bad))
    assert code == 1
    (record,) = records
    assert record["errors"][0]["pointer"] == ""
    assert record["shape_checked"] is False
    code, out, _ = cli("validate", str(bad))
    assert out.startswith(f"{bad}::: malformed JSON")


def test_every_option_has_help_and_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    from fib_quant_kv.cli import build_parser

    _, commands = build_parser()
    for name, parser in commands.items():
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no help"
        text = parser.format_help()
        assert "exit codes: 0 every document valid; 1 a document invalid (this wins over 2)" in text
        for action in parser._actions:
            if action.option_strings and action.default not in (None, False, "==SUPPRESS=="):
                assert f"(default: {action.default})" in text, (name, action.dest)


def test_a_stray_argument_shows_its_commands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["validate", KEY_SHAPE, "--bogus"])
    assert usage.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: fib-quant-kv validate ")
    assert err.endswith("fib-quant-kv validate: error: unrecognized arguments: --bogus\n")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"fib-quant-kv {version('fib-quant-kv')}\n"


def test_an_invalid_document_wins_over_an_unreadable_path(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad_shape.json"
    bad.write_text("{")
    code, _, err = cli("validate", str(bad), str(tmp_path / "missing.json"))
    assert code == 1
    assert "missing.json: cannot read: cannot open: No such file or directory" in err
    code, _, _ = cli("validate", KEY_SHAPE, str(tmp_path / "missing.json"))
    assert code == 2
