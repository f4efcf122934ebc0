# Generated from schemas/*.schema.json by datamodel-code-generator. Do not edit by hand:
# change the schema (or add a new version beside it), then run `nox -s generate`.

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr


class SetDocumentKind(StrEnum):
    """
    The kind of a contract document.
    """

    shape = "shape"
    layout = "layout"
    geometry = "geometry"


class SetRole(StrEnum):
    """
    Which attention cache a shape or layout describes.
    """

    key = "key"
    value = "value"


class SetEntry(BaseModel):
    """
    One document of a contract set.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
    )
    path: Annotated[StrictStr, Field(min_length=1)]
    """
    The document's file name in the set file's folder: a set lists the documents of one folder.
    """
    kind: SetDocumentKind
    role: SetRole | None
    """
    key or value for a shape and its layout; null for a page geometry, which serves both caches.
    """
    digest: Annotated[StrictStr, Field(pattern="^blake3:[0-9a-f]{64}$")]
    """
    The document's digest (the reference's JSON digest, whatever encoding the file has).
    """
    shapes: list[StrictStr]
    """
    For a layout, the one shape it is bound to; for a geometry, every shape it is judged against; empty for a shape. File names, as in path.
    """


class ContractSetV1(BaseModel):
    """
    A set of FibQuant v1 KV contract documents in one folder: which documents belong together, their digests, and the shape each layout and geometry is bound to. A fib-quant-kv project document, not a reference contract: its marker is the set_format field, and it has no schema_version. Version 1.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
    )
    set_format: Literal["fib-quant-kv/contract-set/v1"]
    """
    Format marker; always fib-quant-kv/contract-set/v1.
    """
    digest: Annotated[StrictStr, Field(pattern="^blake3:[0-9a-f]{64}$")]
    """
    The digest of the whole set: BLAKE3 over the set's canonical form, which names each document by its digest (not its path), so equal sets have equal digests wherever they are stored.
    """
    documents: list[SetEntry]
    """
    Every contract document of the set, in the order they are listed.
    """
