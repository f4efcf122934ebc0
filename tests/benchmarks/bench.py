"""Side-by-side benchmark of the data path against python-jsonschema, pydantic and check-jsonschema.

Run with `nox -s bench`. Every peer runs in this one process (or, for the CLIs, in one run of this
script) on the same documents, interleaved and repeated; the table reports the best of the
repeats per document, and ratios, since absolute times on a shared machine are noise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from blake3 import blake3
from pydantic import BaseModel

import fib_quant_kv as fqk
from fib_quant_kv.codec import cbor as cbor_codec, json as json_codec
from fib_quant_kv.contracts import CONTRACTS, schema
from fib_quant_kv.digests import domain_digest, encode
from fib_quant_kv.fastpath import read_cbor, read_json
from fib_quant_kv.rules import semantic_violations
from fib_quant_kv.structure import check_structure

# The tests' CBOR builder: this script runs from its own folder, outside the test package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests import cbor_builder

# Public config.json facts: layers, query heads, KV heads, head size.
MODELS = {
    "llama-3.1-8b": (32, 32, 8, 128),
    "llama-3.1-70b": (80, 64, 8, 128),
    "mistral-7b": (32, 32, 8, 128),
    "qwen2.5-7b": (28, 28, 4, 128),
    "gemma-2b": (18, 8, 1, 256),
    "falcon-7b": (32, 71, 1, 64),
    "gpt2": (12, 12, 12, 64),
    "phi-3-mini": (32, 32, 32, 96),
}
TOKENS = (128, 512, 2048, 4096, 8192, 32768, 131072)


def corpus(count: int) -> list[tuple[bytes, bytes, Any, fqk.Checker, type[BaseModel]]]:
    """(JSON, CBOR, parsed JSON, a checker holding the shape, model) for `count` documents."""
    docs: list[tuple[bytes, bytes, Any, fqk.Checker, type[BaseModel]]] = []
    i = 0
    while len(docs) < count:
        name = list(MODELS)[i % len(MODELS)]
        layers, q, kv, head_dim = MODELS[name]
        role = "key" if i % 2 == 0 else "value"
        shape = fqk.KvTensorShapeV1.model_validate(
            {
                "schema_version": "fib_quant_kv_tensor_shape_v1",
                "role": role,
                "attention_kind": "mha" if q == kv else "mqa" if kv == 1 else "gqa",
                "batch": 1 + i % 8,
                "layers": layers,
                "kv_heads": kv,
                "query_heads": q,
                "tokens": TOKENS[i % len(TOKENS)],
                "head_dim": head_dim,
                "dtype": ("bf16", "f16", "f32")[i % 3],
                "rope_state": ("post_rope" if i % 4 == 0 else "pre_rope")
                if role == "key"
                else "not_applicable",
            }
        )
        checker = fqk.Checker(shape)
        per_page = min((16, 64, 128, 256)[i % 4], shape.tokens)
        geometry = fqk.new_page_geometry(per_page, head_dim, head_dim // 2 + 8)
        for doc in (shape, fqk.canonical_layout(shape), geometry):
            text = encode(doc)
            docs.append((text, encode(doc, "cbor"), json.loads(text), checker, type(doc)))
        i += 1
    return docs[:count]


def per_doc(fn: Callable[[], None], n: int) -> float:
    """One run of fn (which handles n documents), in microseconds a document."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / n * 1e6


def library_table(count: int, repeats: int) -> None:
    docs = corpus(count)
    validators = {m: fqk.json_schema_validator(m) for m in CONTRACTS}
    models = [fqk.decode(d[0]) for d in docs]
    canonical = [encode(m) for m in models]
    markers = [m.schema_version for m in models]

    def ours_json() -> None:
        for text, _, _, checker, _ in docs:
            verdict = checker.check(text)
            assert verdict.digest is not None

    def ours_cbor() -> None:
        for _, raw, _, checker, _ in docs:
            verdict = checker.check(raw)
            assert verdict.digest is not None

    def ours_json_model() -> None:
        # The hot path builds no model; this is what asking the verdict for one adds.
        for text, _, _, checker, _ in docs:
            assert checker.check(text).document is not None

    def hot_read_json() -> None:
        for text, *_ in docs:
            read_json(text)

    def hot_read_cbor() -> None:
        for _, raw, *_ in docs:
            read_cbor(raw)

    def jsonschema_structure() -> None:
        for _, _, parsed, _, _ in docs:
            validators[parsed["schema_version"]].validate(parsed)

    def pydantic_json() -> None:
        for text, _, _, _, model in docs:
            model.model_validate_json(text)

    def stage_json_decode() -> None:
        for text, *_ in docs:
            json_codec.decode(text)

    def stage_cbor_decode() -> None:
        for _, raw, *_ in docs:
            cbor_codec.decode(raw)

    def stage_structure() -> None:
        for _, _, parsed, _, _ in docs:
            check_structure(parsed)

    shapes = [d[3].shape_fields for d in docs]
    reads = [read_json(d[0]) for d in docs]

    def stage_rules() -> None:
        # As the checker runs them: on the plain fields, the shape already validated.
        for found, shape in zip(reads, shapes, strict=True):
            assert found is not None
            list(semantic_violations(found[0], found[1], shape))

    def stage_encode() -> None:
        for model in models:
            encode(model)

    def stage_digest() -> None:
        for marker, data in zip(markers, canonical, strict=True):
            domain_digest(marker, data)

    def floor() -> None:
        for text, *_ in docs:
            json.loads(text)
            blake3(text).hexdigest()

    rows = {
        "ours, full path, JSON": ours_json,
        "ours, full path, CBOR": ours_cbor,
        "ours, full path, JSON, and the model built": ours_json_model,
        "python-jsonschema validate (structure only)": jsonschema_structure,
        "pydantic model_validate_json (structure only)": pydantic_json,
        "  hot path: read JSON (decode + structure)": hot_read_json,
        "  hot path: read CBOR (+ canonical JSON)": hot_read_cbor,
        "  hot path: semantic rules on plain fields": stage_rules,
        "  hot path: BLAKE3 digest": stage_digest,
        "  strict path: JSON decode": stage_json_decode,
        "  strict path: CBOR decode": stage_cbor_decode,
        "  strict path: structure (strict model)": stage_structure,
        "  strict path: canonical JSON of a model": stage_encode,
        "floor: json.loads + BLAKE3 of the bytes": floor,
    }
    results = dict.fromkeys(rows, float("inf"))
    for _ in range(repeats):  # interleaved, so drift on the machine hits every peer alike
        for name, fn in rows.items():
            results[name] = min(results[name], per_doc(fn, len(docs)))
    js = results["python-jsonschema validate (structure only)"]
    print(f"\nLibrary, {len(docs)} documents (shapes, layouts, geometries), best of {repeats}:")
    print(f"{'':48s} {'us/doc':>8s} {'jsonschema/x':>13s}")
    for name, us in results.items():
        print(f"{name:48s} {us:8.2f} {js / us:12.1f}x")
    by_kind: dict[str, list[int]] = {}
    for index, model in enumerate(models):
        by_kind.setdefault(type(model).__name__, []).append(index)
    print("\nBy kind (ours JSON / ours CBOR vs jsonschema):")
    for kind, indices in by_kind.items():
        sub = [docs[i] for i in indices]

        def ours(sub: list[Any] = sub, col: int = 0) -> None:
            for d in sub:
                d[3].check(d[col])

        def theirs(sub: list[Any] = sub) -> None:
            for d in sub:
                validators[d[2]["schema_version"]].validate(d[2])

        o_json = min(per_doc(ours, len(sub)) for _ in range(repeats))
        o_cbor = min(per_doc(lambda: ours(col=1), len(sub)) for _ in range(repeats))
        t = min(per_doc(theirs, len(sub)) for _ in range(repeats))
        print(
            f"  {kind:18s} ours {o_json:6.2f} / {o_cbor:6.2f} us, jsonschema {t:7.2f} us: "
            f"{t / o_json:5.1f}x / {t / o_cbor:5.1f}x"
        )


def public_paths_table(count: int, repeats: int) -> None:
    """The paths a library user writes, on pretty-printed shapes (where jsonschema is slowest)."""
    shapes = [d for d in corpus(count * 3) if d[4] is fqk.KvTensorShapeV1][:count]
    texts = [json.dumps(d[2], indent=2).encode() for d in shapes]
    cbors = [d[1] for d in shapes]
    parsed = [d[2] for d in shapes]
    validator = fqk.json_schema_validator("fib_quant_kv_tensor_shape_v1")

    def over(data: list[Any], fn: Callable[[Any], object]) -> Callable[[], None]:
        def run() -> None:
            for item in data:
                fn(item)

        return run

    rows: dict[str, Callable[[], None]] = {
        "python-jsonschema validate (structure only)": over(parsed, validator.validate),
        "check(data).digest, JSON": over(texts, lambda d: fqk.check(d).digest),
        "check(data).digest, CBOR": over(cbors, lambda d: fqk.check(d).digest),
        "digest(decode(data)), JSON": over(texts, lambda d: fqk.digest(fqk.decode(d))),
        "digest(decode(data)), CBOR": over(cbors, lambda d: fqk.digest(fqk.decode(d))),
        "validate(decode(data)), JSON": over(texts, lambda d: fqk.validate(fqk.decode(d))),
        "validate(decode(data)), CBOR": over(cbors, lambda d: fqk.validate(fqk.decode(d))),
    }
    targets = {"check": 15.0, "digest": 12.0, "validate": 12.0}
    results = dict.fromkeys(rows, float("inf"))
    for _ in range(repeats):
        for name, fn in rows.items():
            results[name] = min(results[name], per_doc(fn, len(texts)))
    js = results["python-jsonschema validate (structure only)"]
    print(
        f"\nPublic paths, {len(texts)} pretty-printed shapes (and their CBOR), best of {repeats}:"
    )
    print(f"{'':48s} {'us/doc':>8s} {'jsonschema/x':>13s}  target")
    for name, us in results.items():
        target = targets.get(name.split("(")[0].split(".")[0])
        mark = (
            ""
            if target is None
            else f"  >= {target:.0f}x {'met' if js / us >= target else 'NOT met'}"
        )
        print(f"{name:48s} {us:8.2f} {js / us:12.1f}x{mark}")


def hostile_table(repeats: int) -> None:
    """Documents under the size limit built to be slow to refuse: each within 50 ms."""
    cases = {
        "60,000 unknown JSON keys": (
            "{" + ",".join(f'"k{i}":0' for i in range(60_000)) + "}"
        ).encode(),
        "100,000 unknown CBOR keys": cbor_builder.head(5, 100_000)
        + b"".join(cbor_builder.text(f"k{i}") + b"\x00" for i in range(100_000)),
        "a CBOR array of 1,000,000 zeros under an unknown key": cbor_builder.head(5, 1)
        + cbor_builder.text("x")
        + cbor_builder.head(4, 1_000_000)
        + b"\x00" * 1_000_000,
        "300,000 empty JSON arrays": ("[" + ",".join(["[]"] * 300_000) + "]").encode(),
    }
    print(f"\nHostile documents, best of {repeats} (target: each refused within 50 ms):")
    for name, data in cases.items():
        times = []
        for refuse in (_decode_refused, lambda d: fqk.check(d).violations):
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                refuse(data)
                best = min(best, time.perf_counter() - start)
            times.append(best * 1000)
        verdict = "met" if max(times) <= 50 else "NOT met"
        print(
            f"  {name:52s} {len(data):>9,} bytes  decode {times[0]:6.1f} ms  "
            f"check {times[1]:6.1f} ms  {verdict}"
        )


def _decode_refused(data: bytes) -> object:
    try:
        fqk.decode(data)
    except fqk.FibQuantKvError as exc:
        return exc
    raise AssertionError("a hostile document was accepted")


# A small parent spawns the command and reads its peak RSS. From this (large) process, fork
# before exec would count the parent's pages in the child's maximum.
_MEASURE = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(time.perf_counter() - start, os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def _run(argv: list[str]) -> tuple[float, int, int]:
    """Wall time, exit code and peak RSS (KiB) of one command."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *argv], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), int(out[1]), int(out[2])


def cli_table(files: int, repeats: int) -> None:
    ours = shutil.which("fib-quant-kv")
    theirs = shutil.which("check-jsonschema")
    if ours is None or theirs is None:
        print("\nCLI: fib-quant-kv or check-jsonschema not on PATH; skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        schema_file = root / "shape.schema.json"
        schema_file.write_text(json.dumps(schema("fib_quant_kv_tensor_shape_v1")))
        shapes = [d for d in corpus(files * 3) if d[4] is fqk.KvTensorShapeV1][:files]
        big, small = root / "many", root / "few"
        big.mkdir()
        small.mkdir()
        for index, (text, *_) in enumerate(shapes):
            (big / f"shape{index:05d}.json").write_bytes(text)
            if index < 10:
                (small / f"shape{index:05d}.json").write_bytes(text)
        many = sorted(str(p) for p in big.iterdir())
        few = sorted(str(p) for p in small.iterdir())
        one = many[:1]
        runs = {
            f"ours: validate --format json, {len(many)} files": [
                ours,
                "validate",
                "--format",
                "json",
                str(big),
            ],
            f"check-jsonschema --schemafile, {len(many)} files": [
                theirs,
                "--schemafile",
                str(schema_file),
                *many,
            ],
            "ours: validate, 1 file": [ours, "validate", *one],
            "check-jsonschema, 1 file": [theirs, "--schemafile", str(schema_file), *one],
            f"ours: validate --format json, {len(few)} files": [
                ours,
                "validate",
                "--format",
                "json",
                str(small),
            ],
        }
        best: dict[str, tuple[float, int, int]] = {}
        for _ in range(repeats):
            for name, argv in runs.items():
                elapsed, code, rss = _run(argv)
                if code != 0:
                    raise SystemExit(f"{name} exited {code}")
                prev = best.get(name)
                best[name] = (
                    min(elapsed, prev[0]) if prev else elapsed,
                    code,
                    max(rss, prev[2]) if prev else rss,
                )
    names = list(runs)
    print(f"\nCLI, best wall time of {repeats} runs, peak RSS:")
    for name in names:
        elapsed, _, rss = best[name]
        print(f"  {name:48s} {elapsed * 1000:9.1f} ms {rss / 1024:7.1f} MiB")
    speed_up = best[names[1]][0] / best[names[0]][0]
    single = best[names[2]][0] / best[names[3]][0]
    print(
        f"  directory speed-up over check-jsonschema: {speed_up:.1f}x "
        f"(target >= 8x: {'met' if speed_up >= 8 else 'NOT met'})"
    )
    print(
        f"  single-file run, ours / check-jsonschema: {single:.2f}x "
        f"(target <= 0.5x: {'met' if single <= 0.5 else 'NOT met'})"
    )
    print(
        f"  peak memory, {len(many)} files / {len(few)} files: "
        f"{best[names[0]][2] / best[names[4]][2]:.2f}x"
    )


def cache_table(repeats: int) -> None:
    """check_cache on a 32-layer cache (Llama 3.1 8B's, 1024 tokens) beside reading its shapes."""
    import numpy as np

    config = Path(__file__).resolve().parents[1] / "data" / "hf_configs" / "llama-3.1-8b.json"
    plan = fqk.plan_from_hf_config(config, tokens=1024, dtype="f32")
    key = plan.groups[0].key_shape
    # One array stands for every layer's keys and values: only metadata is read.
    array = np.zeros((key.batch, key.kv_heads, key.tokens, key.head_dim), np.float32)
    cache = [(array, array)] * plan.layers
    calls = 2000

    def check() -> None:
        for _ in range(calls):
            fqk.check_cache(cache, plan)

    def shapes() -> None:
        for _ in range(calls):
            for keys, values in cache:
                _ = keys.shape, values.shape

    best = {"check_cache": float("inf"), "reading .shape": float("inf")}
    for _ in range(repeats):
        best["check_cache"] = min(best["check_cache"], per_doc(check, calls))
        best["reading .shape"] = min(best["reading .shape"], per_doc(shapes, calls))
    print(f"\nA live cache, {plan.layers} layers of numpy arrays, best of {repeats}:")
    print(f"  {'check_cache(cache, plan)':46s} {best['check_cache']:8.2f} us/call")
    print(f"  {'reading every tensor .shape':46s} {best['reading .shape']:8.2f} us/call")
    print(f"  check_cache / reading .shape: {best['check_cache'] / best['reading .shape']:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=3000)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, {platform.platform()}"
    )
    library_table(args.documents, args.repeats)
    public_paths_table(args.documents, args.repeats)
    hostile_table(args.repeats)
    cache_table(args.repeats)
    cli_table(args.files, max(3, args.repeats // 2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
