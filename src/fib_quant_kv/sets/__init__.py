"""Sets of documents: which shape each layout and geometry is judged against, and set files.

In the reference a layout names only its shape's marker and a geometry names nothing: the
binding to one shape is made by other documents. This module makes it, in this order:

1. a shape given for every document (`--shape`);
2. else a set file (`fib-quant-kv-set.json`) in the document's folder that lists it;
3. else the naming convention `plan` writes: `<prefix>layout.*` belongs to `<prefix>shape.*`
   (`key_layout.json` to `key_shape.json`, `llama_value_layout.cbor` to
   `llama_value_shape.cbor`), and `<prefix>geometry.*` or `<prefix>page_geometry.*` is judged
   against every `<prefix>...shape.*` in its folder (`page_geometry.json` against all of them).

A layout or geometry for which none finds a shape is invalid (rule `set.no_shape`) unless the
caller accepts structure-only checks. Everything here reads through a `Store`, so the same
engine judges files on disk and documents held in memory.

One module per job: `rules` (the set rules and the set file's marker), `stores` (where documents
are read from), `names` (pairing by name), `setfile` (a set file read and its bindings checked),
`pairing` (each document's shapes, each read once), `finding` (what a run says of a path), `run`
(the judging, and the library's entry points) and `write` (a folder's set file made).
"""

from fib_quant_kv.rules.sets import (
    NO_SHAPE,
    RULES,
    SET_FORMAT,
    SET_SCHEMA,
    SET_STEP,
    no_shape,
)
from fib_quant_kv.sets.finding import Bound, Finding
from fib_quant_kv.sets.run import Run, validate_documents, validate_paths
from fib_quant_kv.sets.setfile import LoadedSet, load_set, set_digest
from fib_quant_kv.sets.stores import Files, Memory, Store
from fib_quant_kv.sets.write import create_set, set_text

__all__ = [
    "NO_SHAPE",
    "RULES",
    "SET_FORMAT",
    "SET_SCHEMA",
    "SET_STEP",
    "Bound",
    "Files",
    "Finding",
    "LoadedSet",
    "Memory",
    "Run",
    "Store",
    "create_set",
    "load_set",
    "no_shape",
    "set_digest",
    "set_text",
    "validate_documents",
    "validate_paths",
]
