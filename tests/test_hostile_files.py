"""Hostile files through the CLI: limits hold in bounded time and memory; every path is answered."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fib_quant_kv.cli import main
from fib_quant_kv.codec.limits import MAX_DEPTH, MAX_DOCUMENT_BYTES
from fib_quant_kv.errors import DecodeError
from fib_quant_kv.files import SKIPPED_FOLDERS, Named, UnreadablePath, read_limited, walk
from tests.shared import EXAMPLES

GOOD = EXAMPLES / "key_shape.json"

# Run the CLI from a small parent that reports the child's peak RSS: measured from this
# (large) test process, fork-before-exec would count the parent's pages too.
_MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, timeout=120)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
took = time.perf_counter() - start
print(json.dumps([proc.returncode, took, peak, proc.stdout.decode(), proc.stderr.decode()]))
"""


def run_cli(*argv: str) -> tuple[int, float, float, str, str]:
    """Exit code, seconds, peak MiB, stdout and stderr of `python -m fib_quant_kv ARGV`."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, sys.executable, "-m", "fib_quant_kv", *argv],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    code, seconds, rss_kib, out, err = json.loads(proc.stdout)
    return code, seconds, rss_kib / 1024, out, err


def assert_clean(code: int, seconds: float, mib: float, err: str, expected_code: int) -> None:
    assert code == expected_code
    assert "Traceback" not in err
    assert seconds < 30
    assert mib < 200


def test_a_256_mib_file_is_refused_without_being_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge.json"
    with huge.open("wb") as handle:
        handle.truncate(256 * 1024 * 1024)  # sparse: no disk is written
    code, seconds, mib, out, err = run_cli("validate", str(huge), str(GOOD))
    # An invalid document, by the rule its size breaks: exit 1, not a path that cannot be read.
    assert_clean(code, seconds, mib, err, 1)
    assert (
        f"{huge}::: 268435456 bytes is larger than the {MAX_DOCUMENT_BYTES}-byte document "
        "limit: refused unread [decode.size_limit]"
    ) in out


def test_500000_nested_cbor_arrays(tmp_path: Path) -> None:
    deep = tmp_path / "deep.cbor"
    deep.write_bytes(b"\x81" * 500_000 + b"\x00")
    code, seconds, mib, out, err = run_cli("validate", str(deep))
    assert_clean(code, seconds, mib, err, 1)
    assert f"nesting deeper than {MAX_DEPTH} levels" in out


def test_deeply_nested_json(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_bytes(b"[" * 500_000 + b"]" * 500_000)
    code, seconds, mib, out, err = run_cli("validate", str(deep))
    assert_clean(code, seconds, mib, err, 1)
    assert "nesting deeper than" in out


def test_a_100000_digit_number(tmp_path: Path) -> None:
    doc = json.loads(GOOD.read_text())
    text = json.dumps(doc).replace('"batch": 1', '"batch": ' + "9" * 100_000)
    path = tmp_path / "digits.json"
    path.write_text(text)
    code, seconds, mib, out, err = run_cli("validate", str(path))
    assert_clean(code, seconds, mib, err, 1)
    assert "/batch: expected an integer in 1..=4294967295, got <integer of 100000 digits>" in out


def test_a_length_claim_of_2_64_bytes(tmp_path: Path) -> None:
    path = tmp_path / "claim.cbor"
    path.write_bytes(b"\xa1\x65batch\x7b" + b"\xff" * 8)
    code, seconds, mib, out, err = run_cli("validate", str(path))
    assert_clean(code, seconds, mib, err, 1)
    assert "truncated: an item claims 18446744073709551615 bytes" in out


def special_files(tmp_path: Path) -> dict[str, Path]:
    """A FIFO, a socket, a symbolic-link loop, a dangling link and an empty file."""
    made = {}
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    made["fifo"] = fifo
    sock_path = tmp_path / "sock.json"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    sock.close()
    made["socket"] = sock_path
    (tmp_path / "loop_a.json").symlink_to(tmp_path / "loop_b.json")
    (tmp_path / "loop_b.json").symlink_to(tmp_path / "loop_a.json")
    made["loop"] = tmp_path / "loop_a.json"
    (tmp_path / "dangling.json").symlink_to(tmp_path / "nowhere.json")
    made["dangling"] = tmp_path / "dangling.json"
    (tmp_path / "empty.json").write_bytes(b"")
    made["empty"] = tmp_path / "empty.json"
    (tmp_path / "notes.json").write_text("this is not a document")
    made["text"] = tmp_path / "notes.json"
    return made


@pytest.mark.parametrize(
    ("kind", "message", "stream"),
    [
        ("fifo", "not a regular file", "err"),
        ("socket", "cannot open", "err"),
        ("loop", "cannot open: Too many levels of symbolic links", "err"),
        ("dangling", "cannot open: No such file or directory", "err"),
        ("empty", "expected a JSON value", "out"),
        ("text", "malformed JSON at line 1 column 1", "out"),
    ],
)
def test_special_files_named_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, message: str, stream: str
) -> None:
    path = special_files(tmp_path)[kind]
    started = time.perf_counter()
    code = main(["validate", str(path), str(GOOD)])
    assert time.perf_counter() - started < 5  # a FIFO with no writer must not block
    out, err = capsys.readouterr()
    assert code == (2 if stream == "err" else 1)
    assert message in (err if stream == "err" else out)
    assert str(path) in (err if stream == "err" else out)
    assert f"{GOOD}: valid shape" in out  # the run went on


def test_a_directory_of_hostile_files_is_walked_to_the_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    special_files(tmp_path)
    (tmp_path / "good.json").write_bytes(GOOD.read_bytes())
    (tmp_path / "empty_shape.json").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to(tmp_path)  # a directory loop, never followed
    code = main(["validate", "--format", "json", str(tmp_path)])
    out, _ = capsys.readouterr()
    paths = [Path(r["path"]) for r in map(json.loads, out.splitlines())]
    records = {Path(r["path"]).name: r for r in map(json.loads, out.splitlines())}
    assert code == 1  # fifo.json and loop_a.json cannot be read; empty_shape.json is invalid
    assert records["good.json"]["valid"] is True
    assert records["fifo.json"]["errors"][0]["code"] == "unreadable"
    assert records["loop_a.json"]["errors"][0]["code"] == "unreadable"
    # Named like a contract, an empty file is judged; unnamed and unmarked ones are skipped.
    assert records["empty_shape.json"]["errors"][0]["code"] == "decode"
    assert "empty.json" not in records
    assert "notes.json" not in records
    # Each file once, none reached through sub/up: the loop was not followed.
    assert len(paths) == len(records)
    assert not any("up" in p.relative_to(tmp_path).parts for p in paths)


def test_permission_denied_is_reported_and_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked.json"
    locked.write_bytes(GOOD.read_bytes())
    locked_dir = tmp_path / "locked_dir"
    locked_dir.mkdir()
    (locked_dir / "inside.json").write_bytes(GOOD.read_bytes())
    if os.geteuid() == 0:
        # Root reads through permission bits, so the refusals are simulated at the system call.
        real_open, real_scandir = os.open, os.scandir

        def refusing_open(path: str, *args: object, **kwargs: object) -> int:
            if str(path) == str(locked):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

        def refusing_scandir(path: str = ".") -> object:
            if str(path) == str(locked_dir):
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "open", refusing_open)
        monkeypatch.setattr(os, "scandir", refusing_scandir)
    else:
        locked.chmod(0)
        locked_dir.chmod(0)
    try:
        code = main(["validate", str(locked), str(locked_dir), str(GOOD)])
    finally:
        locked.chmod(0o644)
        locked_dir.chmod(0o755)
    out, err = capsys.readouterr()
    assert code == 2
    assert f"{locked}: cannot read: cannot open: Permission denied" in err
    assert f"{locked_dir}: cannot read: cannot list: Permission denied" in err
    assert f"{GOOD}: valid shape" in out


def test_stdin_larger_than_the_limit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr(
        sys, "stdin", io.TextIOWrapper(io.BytesIO(b" " * (MAX_DOCUMENT_BYTES + 10)))
    )
    code = main(["validate", "-"])
    out, _ = capsys.readouterr()
    assert code == 1
    assert "-::: larger than the" in out
    assert "[decode.size_limit]" in out


# Walking and reading, below the CLI -----------------------------------------------------------


def _walked_by_os_walk(root: Path) -> list[str]:
    """What a walk lists, as os.walk would find it: the specification the walk is held to."""
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and d not in SKIPPED_FOLDERS
            and not os.path.exists(os.path.join(folder, d, "pyvenv.cfg"))
        )
        found += [os.path.join(folder, f) for f in sorted(files) if f.endswith((".json", ".cbor"))]
    return found


def test_a_walk_lists_what_os_walk_finds_and_which_files_are_regular(tmp_path: Path) -> None:
    special_files(tmp_path)
    for folder in ("b", "a", "a/c", "a/c/d", ".hidden", "node_modules", "venv", "z"):
        (tmp_path / folder).mkdir()
        for name in ("key_shape.json", "x.cbor", "notes.txt"):
            (tmp_path / folder / name).write_bytes(GOOD.read_bytes())
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr\n")
    (tmp_path / "a" / "up").symlink_to(tmp_path)  # a loop: listed, never entered
    (tmp_path / "a" / "link.json").symlink_to(tmp_path / "b" / "key_shape.json")
    walked = list(walk(str(tmp_path)))
    files = [item for item in walked if isinstance(item, Named)]
    assert files == walked
    assert [item.path for item in files] == _walked_by_os_walk(tmp_path)
    regular = {os.path.relpath(item.path, tmp_path): item.regular for item in files}
    assert {name for name, is_regular in regular.items() if not is_regular} == {
        "a/link.json", "dangling.json", "fifo.json", "loop_a.json", "loop_b.json", "sock.json",
    }  # fmt: skip
    assert regular["a/c/d/key_shape.json"]
    assert regular["empty.json"]


def test_a_folder_that_cannot_be_listed_is_reported_where_its_files_would_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "key_shape.json").write_bytes(GOOD.read_bytes())
    real_scandir = os.scandir

    def refusing_scandir(path: str) -> object:
        if str(path) == str(tmp_path / "b"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", refusing_scandir)
    walked = list(walk(str(tmp_path)))
    assert [getattr(item, "path", None) for item in walked] == [
        str(tmp_path / "a" / "key_shape.json"),
        str(tmp_path / "b"),
        str(tmp_path / "c" / "key_shape.json"),
    ]
    assert isinstance(walked[1], UnreadablePath)
    assert walked[1].reason == "cannot list: Permission denied"


def test_a_walked_file_is_read_without_fstat_unless_it_fills_one_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = tmp_path / "small.json"
    small.write_bytes(GOOD.read_bytes())
    exact = tmp_path / "exact.json"
    exact.write_bytes(b" " * (1 << 16))
    large = tmp_path / "large.json"
    large.write_bytes(b"[" + b"0," * 100_000 + b"0]")
    too_large = tmp_path / "too_large.json"
    too_large.write_bytes(b" " * (MAX_DOCUMENT_BYTES + 1))
    fstats: list[int] = []
    real_fstat = os.fstat

    def counting_fstat(fd: int) -> os.stat_result:
        fstats.append(fd)
        return real_fstat(fd)

    monkeypatch.setattr(os, "fstat", counting_fstat)
    assert read_limited(str(small), regular=True) == GOOD.read_bytes()
    assert fstats == []
    for path in (exact, large):  # a full first read: read again from the start, checked
        assert read_limited(str(path), regular=True) == path.read_bytes()
        assert read_limited(str(path)) == path.read_bytes()
    assert len(fstats) == 4
    refusals = []
    for regular in (True, False):
        with pytest.raises(DecodeError) as raised:
            read_limited(str(too_large), regular=regular)
        refusals.append(raised.value.message)
    assert refusals[0] == refusals[1]
    assert f"{MAX_DOCUMENT_BYTES + 1} bytes is larger" in refusals[0]


def test_a_file_swapped_for_a_fifo_after_the_walk_is_read_without_waiting(tmp_path: Path) -> None:
    fifo = special_files(tmp_path)["fifo"]
    started = time.perf_counter()
    assert read_limited(str(fifo), regular=True) == b""  # no writer: its end, at once
    assert time.perf_counter() - started < 5
    with pytest.raises(UnreadablePath, match="not a regular file"):
        read_limited(str(fifo))
