"""The rules of documents judged together, and what a set file is: one home for each."""

from __future__ import annotations

from fib_quant_kv.contracts import CONTRACTS
from fib_quant_kv.errors import Rule, Violation
from fib_quant_kv.files import SET_FILE

SET_FORMAT = "fib-quant-kv/contract-set/v1"
SET_SCHEMA = "fib_quant_kv_contract_set_v1"

# The set's rules: checked after each document's own (steps 1 to 9).
SET_STEP = 10
NO_SHAPE = Rule(
    "set.no_shape",
    ("set",),
    SET_STEP,
    "A layout or geometry is judged against a shape: one given for the run, one its set file "
    "binds it to, or one the naming convention finds beside it.",
)
MALFORMED = Rule(
    "set.malformed",
    ("set",),
    SET_STEP,
    f"A set file is one strict JSON document that its schema ({SET_SCHEMA}) accepts.",
)
PATH = Rule(
    "set.path",
    ("set",),
    SET_STEP,
    "Each entry names a file of the set's own folder (a plain file name, not a link), once.",
)
MISSING = Rule(
    "set.missing_document",
    ("set",),
    SET_STEP,
    "Each listed document exists and can be read as a contract document.",
)
KIND = Rule(
    "set.kind",
    ("set",),
    SET_STEP,
    "Each listed document is of the kind and role the set records.",
)
DOCUMENT_DIGEST = Rule(
    "set.document_digest",
    ("set",),
    SET_STEP,
    "Each listed document has the digest the set records: a document changed or swapped "
    "since the set was written is caught here.",
)
BINDING = Rule(
    "set.binding",
    ("set",),
    SET_STEP,
    "A layout is bound to exactly one listed shape and a geometry to at least one; a shape "
    "to none; nothing to itself (a cycle) or to a document that is not a shape.",
)
SET_DIGEST = Rule(
    "set.digest",
    ("set",),
    SET_STEP,
    "The set's own digest is the digest of what it lists.",
)
UNLISTED = Rule(
    "set.unlisted",
    ("set",),
    SET_STEP,
    "Every contract document in a set file's folder is listed in the set.",
)
CACHE_AGREES = Rule(
    "set.cache_agrees",
    ("set",),
    SET_STEP,
    "The key and value shapes of one cache (<prefix>key_shape and <prefix>value_shape of a "
    "folder, or the shapes one geometry pages) agree on batch, layers, kv_heads, query_heads "
    "and tokens; a geometry that pages them is judged against each.",
)
DELETED = Rule(
    "set.deleted",
    ("set",),
    SET_STEP,
    "A commit does not delete or rename away a document that a layout, a geometry or a set "
    "file still needs (the pre-commit hook asks git what the commit removes).",
)
EMPTY = Rule(
    "set.empty",
    ("set",),
    SET_STEP,
    "A set lists at least one contract document: a folder without any makes no set file.",
)
RULES = (
    NO_SHAPE,
    MALFORMED,
    PATH,
    MISSING,
    KIND,
    DOCUMENT_DIGEST,
    BINDING,
    SET_DIGEST,
    UNLISTED,
    CACHE_AGREES,
    DELETED,
    EMPTY,
)

# What the key and value shapes of one cache agree on.
CACHE_FIELDS = ("batch", "layers", "kv_heads", "query_heads", "tokens")

# The words that end a contract document's name: its contract's kind.
KIND_WORDS = tuple(contract.kind for contract in CONTRACTS.values())


def no_shape(kind: str, source: str) -> Violation:
    """The violation of a layout or geometry for which no shape was found, and what to do."""
    return NO_SHAPE.at(
        "",
        f"a {kind} is judged against its shape: {source}; name one (--shape FILE), list it in "
        f"a set file ({SET_FILE}), or accept the schema's checks alone (--structure-only)",
    )
