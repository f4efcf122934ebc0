"""Strict JSON: exactly what serde_json accepts for the v1 documents."""

from __future__ import annotations

import json
import re
from typing import Any

from fib_quant_kv.codec.limits import (
    DATA_MODEL,
    DEPTH_LIMIT,
    DUPLICATE_KEY,
    MALFORMED,
    MAX_DEPTH,
    MAX_INTEGER_DIGITS,
    check_size,
)
from fib_quant_kv.errors import DecodeError, Violation, pointer, pointer_tokens

_BOM = b"\xef\xbb\xbf"

# The json module's terse messages, said as what was expected.
_EXPLAINED = {
    "Extra data": "trailing data after the document: expected exactly one JSON value",
    "Expecting value": "expected a JSON value",
    "Invalid control character at": "raw control character in a string: expected it escaped",
}


class OversizedInteger(int):
    """An integer literal with more digits than any u64; stands in for it without converting it."""

    digits: int
    negative: bool

    def __new__(cls, digits: int, negative: bool = False) -> OversizedInteger:
        # Any value past u64 (or below 0) fails the schema's bounds the same way, so one
        # stands for all of them.
        self = super().__new__(
            cls, -(10**MAX_INTEGER_DIGITS) if negative else 10**MAX_INTEGER_DIGITS
        )
        self.digits = digits
        self.negative = negative
        return self

    def __repr__(self) -> str:
        return f"<{'negative ' if self.negative else ''}integer of {self.digits} digits>"

    __str__ = __repr__


class _Duplicate(dict[str, Any]):
    """An object that had a repeated key; only built when locating the error."""

    key: str


def _parse_int(literal: str) -> int | float:
    if literal[0] == "-":
        if literal == "-0":
            # JSON's integer grammar admits -0, serde_json's u32/u64 do not. As a float it stays
            # a JSON number that the structural layer refuses with a pointer to where it is.
            return -0.0
        digits = len(literal) - 1
    else:
        digits = len(literal)
    if digits > MAX_INTEGER_DIGITS:
        return OversizedInteger(digits, negative=literal[0] == "-")
    return int(literal)


def _reject_constant(name: str) -> Any:
    raise DecodeError(
        f"{name} is not valid JSON: expected a plain integer or string value", rule=DATA_MODEL.id
    )


def _strict_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(key)
            seen.add(key)
    return obj


class _DuplicateKeyError(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _locate_duplicate(text: str) -> tuple[str | int, ...]:
    """The pointer to the first repeated key, found by parsing again with marking hooks.

    The object that holds it parsed completely, but what follows it may not (trailing data, a
    later syntax error): the second parse stops at the first value and tolerates neither.
    """
    start = len(text) - len(text.lstrip(" \t\n\r"))
    try:
        value, _ = _LOCATING.raw_decode(text, start)
    except (ValueError, _DuplicateKeyError):
        return ()
    return _find(value, _Duplicate) or ()


def _marking_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            dup = _Duplicate(obj)
            dup.key = key
            return dup
        obj[key] = value
    return obj


_STRICT = json.JSONDecoder(
    object_pairs_hook=_strict_pairs,
    parse_float=float,
    parse_int=_parse_int,
    parse_constant=_reject_constant,
)
# The same, converting integers in C: for a text with no literal that _parse_int would treat
# apart (-0, or more digits than MAX_INTEGER_DIGITS), the two read alike, and a Python call per
# integer is most of the parse of a document made of them.
_STRICT_PLAIN_INTEGERS = json.JSONDecoder(
    object_pairs_hook=_strict_pairs, parse_float=float, parse_constant=_reject_constant
)
# Digits as NUL, which a valid JSON text never holds raw: a run of NULs after translating is a
# run of digits, found in one C-level search (a regular expression tries every digit it meets,
# and took longer than the parse it was to spare).
_DIGITS_AS_NUL = str.maketrans("0123456789", "\0" * 10)
_TOO_MANY_DIGITS = "\0" * (MAX_INTEGER_DIGITS + 1)


def _integers_apart(text: str) -> bool:
    """Whether a text may hold an integer _parse_int reads apart: -0, or more digits than
    MAX_INTEGER_DIGITS. A false alarm (in a string, a fraction) costs only the slower parse."""
    return "-0" in text or _TOO_MANY_DIGITS in text.translate(_DIGITS_AS_NUL)


_LOCATING = json.JSONDecoder(
    object_pairs_hook=_marking_pairs,
    parse_float=float,
    parse_int=_parse_int,
    parse_constant=_reject_constant,
)


def _find(
    value: Any, want: type[_Duplicate] | type[str], path: tuple[str | int, ...] = ()
) -> tuple[str | int, ...] | None:
    """Where the first marked duplicate (want=_Duplicate) or lone surrogate (want=str) is."""
    if isinstance(value, _Duplicate) and want is _Duplicate:
        return (*path, value.key)
    if isinstance(value, dict):
        for key, item in value.items():
            if want is str and _has_surrogate(key):
                return (*path, key)
            found = _find(item, want, (*path, key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find(item, want, (*path, index))
            if found is not None:
                return found
    elif want is str and isinstance(value, str) and _has_surrogate(value):
        return path
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# Strings, their escapes included (an unterminated one runs to the end).
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"?')
# For str.translate: braces become brackets (depth does not care which), and every other
# ASCII character goes.
_BRACKETS_ONLY = str.maketrans(
    "{}", "[]", "".join(chr(c) for c in range(128) if chr(c) not in "[]{}")
)


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before the parser recurses into it.

    Only the brackets outside strings can nest. One `replace("[]", "")` removes every
    innermost pair, one level, so brackets that are all gone after MAX_DEPTH such passes nest
    no deeper; each pass is C-level, so 300,000 empty arrays cost milliseconds. Other brackets
    (too deep, or not balanced) are counted one by one, which stops at the first level too
    deep.
    """
    brackets = _STRINGS.sub("", text).translate(_BRACKETS_ONLY)
    reduced = brackets
    for _ in range(MAX_DEPTH):
        if not reduced:
            return
        shorter = reduced.replace("[]", "")
        if len(shorter) == len(reduced):
            break
        reduced = shorter
    if not reduced:
        return
    depth = 0
    for ch in brackets:
        if ch == "[":
            depth += 1
            if depth > MAX_DEPTH:
                raise DecodeError(f"nesting deeper than {MAX_DEPTH} levels", rule=DEPTH_LIMIT.id)
        elif ch == "]":
            depth -= 1


def _parse(text: str) -> Any:
    decoder = _STRICT if _integers_apart(text) else _STRICT_PLAIN_INTEGERS
    return decoder.decode(text)


def decode(data: bytes) -> Any:
    """Parse one strict JSON document into plain Python values (the JSON data model)."""
    check_size(data)
    if data.startswith(_BOM):
        raise DecodeError("expected a JSON value, found a UTF-8 byte order mark", rule=MALFORMED.id)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"invalid UTF-8 at byte {exc.start}: expected UTF-8 text", rule=MALFORMED.id
        ) from None
    # Only a document with more than one container can nest; one '{' is the flat v1 object.
    containers = text.count("[") + text.count("{")
    if containers > 1:
        _check_depth(text)
    try:
        value = _parse(text)
    except _DuplicateKeyError as dup:
        where = _locate_duplicate(text)
        key = where[-1] if where else dup.key
        raise DecodeError(
            f"duplicate key {key!r}: expected each key once",
            pointer=pointer(*(where or ())),
            rule=DUPLICATE_KEY.id,
        ) from None
    except json.JSONDecodeError as exc:
        what = _EXPLAINED.get(exc.msg, exc.msg)
        error = DecodeError(
            f"malformed JSON at line {exc.lineno} column {exc.colno}: {what}", rule=MALFORMED.id
        )
        error.position = exc.lineno, exc.colno
        raise error from None
    except RecursionError:  # pragma: no cover - _check_depth refuses such input first
        raise DecodeError(f"nesting deeper than {MAX_DEPTH} levels", rule=DEPTH_LIMIT.id) from None
    # serde_json refuses lone surrogate escapes; Python's json keeps them in the str.
    if "\\u" in text:
        surrogate = _find(value, str)
        if surrogate is not None:
            raise DecodeError(
                "lone UTF-16 surrogate escape: expected a valid Unicode scalar value",
                pointer=pointer(*surrogate),
                rule=MALFORMED.id,
            )
    return value


# Where a value is ---------------------------------------------------------------------------------

_WHITESPACE = " \t\n\r"
_SKIP = json.JSONDecoder()


def locate(data: bytes, tokens: tuple[str, ...]) -> tuple[int, int] | None:
    """The line and column (from 1, in characters) of the value a pointer's tokens name in a
    JSON document, or of the nearest enclosing value there is (a missing field's object).

    For reports of refused documents only: the text is walked afresh, member by member, and
    where a key appears twice the last one is taken (a duplicate's second occurrence).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    index = _skip_space(text, 0)
    if index >= len(text):
        return None
    found = index
    for token in tokens:
        inner = _member(text, found, token)
        if inner is None:
            break
        found = inner
    line = text.count("\n", 0, found) + 1
    return line, found - (text.rfind("\n", 0, found) + 1) + 1


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index


def _member(text: str, start: int, token: str) -> int | None:
    """Where the value of an object's member (or an array's item) named by a token starts."""
    opening = text[start] if start < len(text) else ""
    if opening not in "{[":
        return None
    index, count, found = _skip_space(text, start + 1), 0, None
    try:
        while index < len(text) and text[index] not in "}]":
            if opening == "{":
                key, index = json.decoder.scanstring(text, index + 1)  # type: ignore[attr-defined]
                index = _skip_space(text, _skip_space(text, index) + 1)  # past the colon
                matches = key == token
            else:
                matches = token == str(count)
            if matches:
                found = index
            _, index = _SKIP.raw_decode(text, index)
            index = _skip_space(text, index)
            if index < len(text) and text[index] == ",":
                index = _skip_space(text, index + 1)
            count += 1
    except (ValueError, IndexError):
        return found
    return found


def located(data: bytes, violations: list[Violation]) -> list[Violation]:
    """A JSON document's violations, each with the line and column its pointer names."""
    import dataclasses

    return [
        v
        if v.position is not None
        else dataclasses.replace(v, position=locate(data, pointer_tokens(v.pointer)))
        for v in violations
    ]
