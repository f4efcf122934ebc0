"""The error tree and the Violation record shared by every stage of the data path."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

ErrorCode = Literal[
    "decode",
    "schema",
    "corrupt_payload",
    "dependency_unsupported",
    "resource_limit_exceeded",
    "config",
    "array_mismatch",
    "set",
]


def escape_pointer_token(token: str) -> str:
    """Escape one reference token of an RFC 6901 JSON pointer.

    A key holding a lone surrogate (which strict decoding refuses) is shown with the surrogate
    written as a \\u escape, so the message that names it can always be printed.
    """
    token = token.replace("~", "~0").replace("/", "~1")
    try:
        token.encode("utf-8")
    except UnicodeEncodeError:
        token = token.encode("utf-8", "backslashreplace").decode("utf-8")
    return token


def pointer(*tokens: str | int) -> str:
    """Build an RFC 6901 JSON pointer; no tokens is the whole document (``""``)."""
    return "".join("/" + escape_pointer_token(str(t)) for t in tokens)


def pointer_tokens(text: str) -> tuple[str, ...]:
    """The reference tokens of an RFC 6901 JSON pointer (none for the whole document)."""
    if not text:
        return ()
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in text[1:].split("/"))


@dataclass(frozen=True, slots=True)
class Rule:
    """One check of the data path, named by a stable id: part of the public interface.

    Declared once, beside the code that makes the check. `step` is its place in the order in
    which a document is judged (decoding, then the schema, then the reference's rules in the
    reference's own order); `breaks` says how to break the contract's example document so that
    it fails this rule (field changes, or raw text for what no field change can show), and
    `breaks_shape` the same for the shape a layout or geometry is judged against.
    """

    id: str
    codes: tuple[ErrorCode, ...]
    step: int
    checks: str
    breaks: Mapping[str, object] | str | None = None
    breaks_shape: Mapping[str, object] | None = None
    contracts: tuple[str, ...] = field(default=())

    def at(self, pointer: str, message: str, code: ErrorCode | None = None) -> Violation:
        """A violation of this rule; the code is the rule's own unless it reports another's."""
        return Violation(code or self.codes[0], pointer, message, self.id)


@dataclass(frozen=True, slots=True)
class Violation:
    """One failure of a document: its category, where it is (RFC 6901), what was expected, and
    the id of the rule it breaks."""

    code: ErrorCode
    pointer: str
    message: str
    rule: str
    # Where the pointer's value is in a JSON document's text (line and column, from 1), when it
    # is known: a report's, not the verdict's (equal violations of a JSON and a CBOR document
    # are equal).
    position: tuple[int, int] | None = field(default=None, compare=False)

    def to_error(self, path: str | None = None) -> FibQuantKvError:
        """The typed exception that reports this violation."""
        error = ERROR_TYPES[self.code](
            self.message, pointer=self.pointer, path=path, rule=self.rule
        )
        error.position = self.position
        return error

    def to_json(self) -> dict[str, str | int]:
        """The violation as a plain mapping, for machine-readable reports."""
        record: dict[str, str | int] = {
            "code": self.code,
            "rule": self.rule,
            "pointer": self.pointer,
            "message": self.message,
        }
        if self.position is not None:
            record["line"], record["column"] = self.position
        return record


class FibQuantKvError(Exception):
    """Base of every error this package raises for a bad document or a bad request."""

    code: ClassVar[ErrorCode]

    def __init__(
        self, message: str, *, pointer: str = "", path: str | None = None, rule: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.pointer = pointer
        self.path = path
        # The id of the rule the document breaks; empty for errors that are not a document's
        # (a model config, an array).
        self.rule = rule
        # Where in a JSON document's text (line, column), when the decoder knows it.
        self.position: tuple[int, int] | None = None

    @property
    def violation(self) -> Violation:
        """This error as a Violation record."""
        return Violation(self.code, self.pointer, self.message, self.rule, self.position)

    def __str__(self) -> str:
        # The check-jsonschema convention: file::pointer: message, with the root as "".
        prefix = f"{self.path}::{self.pointer}" if self.path else self.pointer
        return f"{prefix}: {self.message}" if prefix else self.message


class DecodeError(FibQuantKvError):
    """The bytes are not exactly one well-formed document (strict JSON or strict CBOR)."""

    code = "decode"


class SchemaError(FibQuantKvError):
    """The document breaks its JSON Schema: marker, fields, types, bounds or enums."""

    code = "schema"


class CorruptPayload(FibQuantKvError):
    """A semantic rule of the reference fails: the document contradicts itself or its shape."""

    code = "corrupt_payload"


class DependencyUnsupported(FibQuantKvError):
    """A well-formed document that the reference codec cannot serve."""

    code = "dependency_unsupported"


class ResourceLimitExceeded(FibQuantKvError):
    """A size overflows the reference's limits, or the input exceeds this package's limits."""

    code = "resource_limit_exceeded"


class ConfigError(FibQuantKvError):
    """A model configuration (config.json) that cannot be read or lacks what a shape needs."""

    code = "config"


class ArrayMismatch(FibQuantKvError):
    """An array or tensor whose dimensions, dtype or strides differ from its shape and layout."""

    code = "array_mismatch"


class SetError(FibQuantKvError):
    """A set of documents that does not hold together: its set file, a binding, a digest."""

    code = "set"


ERROR_TYPES: dict[ErrorCode, type[FibQuantKvError]] = {
    cls.code: cls
    for cls in (
        DecodeError,
        SchemaError,
        CorruptPayload,
        DependencyUnsupported,
        ResourceLimitExceeded,
        ConfigError,
        ArrayMismatch,
        SetError,
    )
}
