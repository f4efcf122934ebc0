"""The error tree and the Violation record shared by every stage of the data path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

ErrorCode = Literal[
    "decode",
    "schema",
    "corrupt_payload",
    "dependency_unsupported",
    "resource_limit_exceeded",
    "config",
    "array_mismatch",
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


@dataclass(frozen=True, slots=True)
class Violation:
    """One failure of a document: a stable code, where it is (RFC 6901) and what was expected."""

    code: ErrorCode
    pointer: str
    message: str

    def to_error(self, path: str | None = None) -> FibQuantKvError:
        """The typed exception that reports this violation."""
        return ERROR_TYPES[self.code](self.message, pointer=self.pointer, path=path)

    def to_json(self) -> dict[str, str]:
        """The violation as a plain mapping, for machine-readable reports."""
        return {"code": self.code, "pointer": self.pointer, "message": self.message}


class FibQuantKvError(Exception):
    """Base of every error this package raises for a bad document or a bad request."""

    code: ClassVar[ErrorCode]

    def __init__(self, message: str, *, pointer: str = "", path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.pointer = pointer
        self.path = path

    @property
    def violation(self) -> Violation:
        """This error as a Violation record."""
        return Violation(self.code, self.pointer, self.message)

    def __str__(self) -> str:
        # The check-jsonschema convention: file::pointer: message.
        where = self.pointer or "/"
        prefix = f"{self.path}::{where}" if self.path else where
        return f"{prefix}: {self.message}"


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
    )
}
