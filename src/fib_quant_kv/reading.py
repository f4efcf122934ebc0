"""Reading: a document's bytes decoded and held to its schema, the stages that need no shape."""

from __future__ import annotations

import gc
import os
from typing import TYPE_CHECKING, TypeAlias, TypeVar, overload

from fib_quant_kv.codec import Encoding, decode_value, detect
from fib_quant_kv.contracts import CONTRACTS, MARKER, SHAPE_SCHEMA, Contract
from fib_quant_kv.errors import FibQuantKvError, SchemaError, Violation
from fib_quant_kv.fastpath import FastRead, decode_cbor, decode_json, read_cbor, read_json
from fib_quant_kv.proofs import remember, remember_fields

# Pydantic (the models and the structural stage) is imported only where a document leaves the
# hot path: a CLI run over documents the hot path reads starts without it.
if TYPE_CHECKING:
    from fib_quant_kv.contracts import Document
    from fib_quant_kv.structure import Structure

D = TypeVar("D", bound="Document")

# What a document is read from: its bytes (a bytes-like object), or a file's path.
Source: TypeAlias = "bytes | bytearray | memoryview | os.PathLike[str]"

# A document as the first stages leave it: the hot path's fields, the structural stage's
# findings, or the decoding stage's refusal.
Reading: TypeAlias = "FastRead | Structure | Violation"


def source_bytes(data: Source) -> bytes:
    """A document's bytes: as given, or read from a path (with the document size limit)."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        raise TypeError(
            "expected a document's bytes (bytes, bytearray or memoryview) or a pathlib.Path, "
            "got str: pass Path(...) to read a file, or the text's .encode()"
        )
    if isinstance(data, os.PathLike):
        from fib_quant_kv.files import read_limited

        return read_limited(os.fspath(data))
    raise TypeError(
        "expected a document's bytes (bytes, bytearray or memoryview) or a pathlib.Path, "
        f"got {type(data).__name__}"
    )


def read(data: bytes, encoding: Encoding | None = None) -> Reading:
    """Decode a document and check its schema: the stages that need no shape."""
    encoding = encoding or detect(data)
    fast = read_json(data) if encoding == "json" else read_cbor(data)
    if fast is not None:
        return fast
    return strict(data, encoding)


# Documents the reference writes are a few hundred bytes. What a text past this size decodes to
# may hold hundreds of thousands of containers: they hold no cycles, yet the cyclic collector,
# run every few hundred containers built, would scan them all while they are parsed (doubling
# the parse) and again before they are dropped. It is paused from the decoding until the value
# is judged and dropped, unless the caller has paused it already.
_PAUSE_COLLECTOR_PAST = 1 << 12


def strict(data: bytes, encoding: Encoding) -> Structure | Violation:
    """The strict path: the codec, then the structural stage."""
    if len(data) <= _PAUSE_COLLECTOR_PAST or not gc.isenabled():
        return _strict(data, encoding)
    gc.disable()
    try:
        return _strict(data, encoding)
    finally:
        gc.enable()


def _strict(data: bytes, encoding: Encoding) -> Structure | Violation:
    try:
        value = decode_value(data, encoding, document=True)
    except FibQuantKvError as exc:
        return exc.violation
    from fib_quant_kv.structure import check_structure

    return check_structure(value)


def reading_contract(reading: Reading) -> Contract | None:
    """The contract a document read as, if its marker names one."""
    if isinstance(reading, tuple):
        return reading[0]
    if isinstance(reading, Violation):
        return None
    return reading.contract


@overload
def decode(data: Source, encoding: Encoding | None = None) -> Document: ...


@overload
def decode(data: Source, expected: type[D], encoding: Encoding | None = None) -> D: ...


def decode(  # type: ignore[misc]  # the second argument is an encoding or a model class
    data: Source,
    expected: type[Document] | Encoding | None = None,
    encoding: Encoding | None = None,
) -> Document:
    """Strictly decode one JSON or CBOR document (detected from the bytes) into its model.

    `data` is the document's bytes or a file's path. With a model class as `expected`
    (`decode(data, KvTensorShapeV1)`), a document of another contract is a SchemaError and the
    result is typed as that class. Raises DecodeError when the bytes are not one well-formed
    document, SchemaError when the document breaks its schema. Semantic rules are
    `validate`'s; the model is remembered as proven, so `validate` and `digest` do not check
    its schema again.
    """
    if isinstance(expected, str):  # decode(data, "cbor"): the encoding, given positionally
        expected, encoding = None, expected
    document = _decode(source_bytes(data), encoding)
    if expected is not None and not isinstance(document, expected):
        wanted = next(c for c in CONTRACTS.values() if c.model is expected)
        raise expected_contract(wanted.marker, document.schema_version)
    return document


def _decode(data: bytes, encoding: Encoding | None) -> Document:
    encoding = encoding or detect(data)
    made = decode_json(data) if encoding == "json" else decode_cbor(data)
    if made is not None:
        return remember_fields(*made)
    reading = strict(data, encoding)
    if isinstance(reading, Violation):
        raise reading.to_error()
    if reading.model is None:
        raise reading.violations[0].to_error()
    return remember(reading.model)


def expected_contract(marker: str, got: str) -> SchemaError:
    """The error for a document given where another contract is expected."""
    return SchemaError(
        f"expected a {marker} (a {CONTRACTS[marker].kind}), got a {got}",
        pointer="/schema_version",
        rule=MARKER.id,
    )


def not_a_shape(got: str) -> SchemaError:
    """The error for a document given as a shape that is another contract."""
    return expected_contract(SHAPE_SCHEMA, got)
