"""The registry of contracts: schema marker -> kind, schema, model, rules, example, domain."""

from __future__ import annotations

import copy
import importlib
import json
import pkgutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

from fib_quant_kv.errors import Rule, Violation, pointer

if TYPE_CHECKING:
    import os

    from jsonschema.protocols import Validator
    from referencing import Registry

    from fib_quant_kv_models import KvCacheLayoutV1, KvPageGeometryV1, KvTensorShapeV1

    Document: TypeAlias = KvTensorShapeV1 | KvCacheLayoutV1 | KvPageGeometryV1

Kind = Literal["shape", "layout", "geometry"]

# Final: each is its own Literal type, which lets a comparison with a marker narrow a union.
SHAPE_SCHEMA: Final = "fib_quant_kv_tensor_shape_v1"
LAYOUT_SCHEMA: Final = "fib_quant_kv_cache_layout_v1"
PAGE_GEOMETRY_SCHEMA: Final = "fib_quant_kv_page_geometry_v1"


@dataclass(frozen=True, slots=True)
class Contract:
    """One versioned document type: everything a stage needs to know of it, in one entry.

    Its marker is also its digest domain. A new version is one more entry (`register`): every
    stage dispatches on these attributes, never on a marker's name.
    """

    marker: str
    kind: Kind
    # By name: the models import pydantic, which a document on the hot path never needs.
    model_name: str
    # Layouts and geometries are only meaningful against the shape they describe.
    needs_shape: bool
    # The module of the contract's rules, by name (it is imported on first use): its RULES,
    # `violations(document, shape)`, and for a layout or geometry SHAPE_VALID.
    rules_module: str
    # A valid document of the contract, the docs' and `rule`'s worked example.
    example: Mapping[str, Any] = field(default_factory=dict)
    # The module of the generated model, and the schema file when it is not shipped here.
    models_module: str = "fib_quant_kv_models"
    # A path by name, not pathlib's: the registry is on every command's start-up, which pathlib
    # would add milliseconds to.
    schema_file: str | os.PathLike[str] | None = None
    # The digest domain: the marker, as the reference hashes it (a field, read per digest).
    domain: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "domain", self.marker)

    @property
    def model(self) -> type[Document]:
        """The generated model class of the contract."""
        model = _MODEL_CLASSES.get(self.model_name)
        if model is None:
            # Looked up once: the hot path asks for it for every document it builds a model of.
            module = importlib.import_module(self.models_module)
            model = _MODEL_CLASSES[self.model_name] = getattr(module, self.model_name)
        return model

    @property
    def rules(self) -> ModuleType:
        """The module of the contract's rules."""
        # sys.modules first: every document's rules ask, and import_module costs a frame more.
        return sys.modules.get(self.rules_module) or importlib.import_module(self.rules_module)


# The model classes by name (each contract's class has its own name: KvTensorShapeV1, ...).
_MODEL_CLASSES: dict[str, type[Document]] = {}

# The contract's worked example (a Llama-like key cache, whose digest the reference computed)
# and what derives from it.
_EXAMPLE_SHAPE = {
    "schema_version": SHAPE_SCHEMA,
    "role": "key",
    "attention_kind": "gqa",
    "batch": 1,
    "layers": 32,
    "kv_heads": 8,
    "query_heads": 32,
    "tokens": 4096,
    "head_dim": 128,
    "dtype": "bf16",
    "rope_state": "post_rope",
}
_EXAMPLE_LAYOUT = {
    "schema_version": LAYOUT_SCHEMA,
    "shape_schema_version": SHAPE_SCHEMA,
    "order": "batch_layer_head_token_dim",
    "batch_stride": 32 * 8 * 4096 * 128,
    "layer_stride": 8 * 4096 * 128,
    "head_stride": 4096 * 128,
    "token_stride": 128,
    "dim_stride": 1,
}
_EXAMPLE_GEOMETRY = {
    "schema_version": PAGE_GEOMETRY_SCHEMA,
    "tokens_per_page": 256,
    "vectors_per_block": 1,
    "head_dim": 128,
    "encoded_block_bytes": 72,
    "raw_vector_bytes": 512,
}

CONTRACTS: dict[str, Contract] = {
    c.marker: c
    for c in (
        Contract(
            SHAPE_SCHEMA,
            "shape",
            "KvTensorShapeV1",
            needs_shape=False,
            rules_module="fib_quant_kv.rules.shape",
            example=MappingProxyType(_EXAMPLE_SHAPE),
        ),
        Contract(
            LAYOUT_SCHEMA,
            "layout",
            "KvCacheLayoutV1",
            needs_shape=True,
            rules_module="fib_quant_kv.rules.layout",
            example=MappingProxyType(_EXAMPLE_LAYOUT),
        ),
        Contract(
            PAGE_GEOMETRY_SCHEMA,
            "geometry",
            "KvPageGeometryV1",
            needs_shape=True,
            rules_module="fib_quant_kv.rules.geometry",
            example=MappingProxyType(_EXAMPLE_GEOMETRY),
        ),
    )
}

# What each stage that keeps something per contract forgets when the registry changes.
_ON_CHANGE: list[Callable[[], None]] = []


def on_change(forget: Callable[[], None]) -> None:
    """Have `forget` called whenever a contract is registered or withdrawn."""
    _ON_CHANGE.append(forget)


def _changed() -> None:
    _MODEL_CLASSES.clear()
    _BY_MODEL.clear()
    for cached in (shared_schema, every_field, schema_registry):
        cached.cache_clear()
    for forget in _ON_CHANGE:
        forget()


def register(contract: Contract) -> None:
    """Add a contract (a new version of one, say): from then on every stage judges it."""
    if contract.marker in CONTRACTS:
        raise ValueError(f"{contract.marker} is registered already")
    CONTRACTS[contract.marker] = contract
    _changed()


def withdraw(marker: str) -> None:
    """Remove a registered contract."""
    del CONTRACTS[marker]
    _changed()


def of_kind(kind: Kind) -> list[Contract]:
    """The contracts of one kind, first registered first."""
    return [c for c in CONTRACTS.values() if c.kind == kind]


@cache
def _models() -> Any:
    return importlib.import_module("fib_quant_kv_models")


def __getattr__(name: str) -> Any:
    # `Document` at run time (fib_quant_kv.Document, a TypeVar bound): the union of the models,
    # made when first asked for, so that importing this registry does not import pydantic.
    if name == "Document":
        models = _models()
        return models.KvTensorShapeV1 | models.KvCacheLayoutV1 | models.KvPageGeometryV1
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def markers() -> list[str]:
    """Every shipped schema marker, sorted."""
    return sorted(CONTRACTS)


# Contracts by model class, filled on first use (it imports the models). A plain dict rather
# than a cached function: every digest and validation asks it.
_BY_MODEL: dict[type[Document], Contract] = {}


def contract_of(doc: Document) -> Contract:
    """The contract of a model instance."""
    found = _BY_MODEL.get(type(doc))
    if found is not None:
        return found
    if not _BY_MODEL:
        _BY_MODEL.update((c.model, c) for c in CONTRACTS.values())
        return contract_of(doc)
    models = ", ".join(m.__name__ for m in _BY_MODEL)
    raise TypeError(f"expected a contract model ({models}), got {type(doc).__name__}")


def schema_text(marker: str) -> str:
    """The shipped JSON Schema of a contract's marker (or the set file's), exactly as released."""
    # pkgutil asks the package's loader, as importlib.resources does (a zip import too), and
    # imports in a tenth of the time: this is on every command's start-up.
    contract = CONTRACTS.get(marker)
    if contract is not None and contract.schema_file is not None:
        with open(contract.schema_file, encoding="utf-8") as handle:
            return handle.read()
    data = pkgutil.get_data("fib_quant_kv", f"schemas/{marker}.schema.json")
    if data is None:  # a loader that cannot read package data
        raise FileNotFoundError(f"the schema of {marker} is not readable from this installation")
    return data.decode("utf-8")


@cache
def shared_schema(marker: str) -> dict[str, Any]:
    """The parsed schema this package itself reads from; never to be changed by anyone."""
    loaded: dict[str, Any] = json.loads(schema_text(marker))
    return loaded


def field_names(marker: str) -> list[str]:
    """A contract's fields in their contract order (the order of `properties`)."""
    return list(shared_schema(marker)["properties"])


def property_schema(marker: str, field: str) -> dict[str, Any] | None:
    """The schema of one field of a contract, with a local `$ref` (its enums) resolved."""
    root = shared_schema(marker)
    prop: dict[str, Any] | None = root["properties"].get(field)
    if prop is not None and "$ref" in prop:
        resolved: dict[str, Any] = root["$defs"][prop["$ref"].rsplit("/", 1)[1]]
        return resolved
    return prop


# The schema stage's rules: what every contract's JSON Schema checks, named once for all of them.
# Only the first two are decided here; the others come from the generated models' errors
# (fib_quant_kv.structure), and the CBOR reader stops at an unknown field early.
SCHEMA_STEP = 2
OBJECT = Rule(
    "schema.object",
    ("schema",),
    SCHEMA_STEP,
    "The document is one JSON object (one CBOR map), not an array or a bare value.",
    breaks='["fib_quant_kv_tensor_shape_v1", "key"]',
)
MARKER = Rule(
    "schema.marker",
    ("schema",),
    SCHEMA_STEP,
    "schema_version names a shipped contract: it chooses the schema the rest is checked against.",
    breaks={"schema_version": "fib_quant_kv_tensor_shape_v9"},
)
MISSING_FIELD = Rule(
    "schema.missing_field",
    ("schema",),
    SCHEMA_STEP,
    "Every field of the contract is present (all are required).",
    breaks={"rope_state": ...},
)
UNKNOWN_FIELD = Rule(
    "schema.unknown_field",
    ("schema",),
    SCHEMA_STEP,
    "No field outside the contract's (fail-closed: the reference would ignore it, so two "
    "different documents could share one digest).",
    breaks={"comment": "x"},
)
TYPE = Rule(
    "schema.type",
    ("schema",),
    SCHEMA_STEP,
    "Each field has its type: integers are plain non-negative integers (not 1.0, true or "
    '"1"), strings are strings.',
    breaks={"batch": "1"},
)
BOUND = Rule(
    "schema.bound",
    ("schema",),
    SCHEMA_STEP,
    "Each integer is within its field's bounds: u32 or u64, and at least 1 for the counts the "
    "reference requires to be nonzero.",
    breaks={"batch": 1 << 32},
)
ENUM = Rule(
    "schema.enum",
    ("schema",),
    SCHEMA_STEP,
    "Each enumerated or constant string is exactly one of the values its field allows.",
    breaks={"role": "Key"},
)
SCHEMA_RULES = (OBJECT, MARKER, MISSING_FIELD, UNKNOWN_FIELD, TYPE, BOUND, ENUM)


@cache
def every_field() -> frozenset[str]:
    """The fields of every contract: a key outside them is unknown whatever the marker."""
    return frozenset(name for marker in CONTRACTS for name in field_names(marker))


def unknown_field(key: str, contract: Contract | None) -> Violation:
    """The violation for a key its contract does not have (or that no contract has), with the
    field it was likely meant to be."""
    import difflib  # only a refused document pays for its import

    if contract is None:
        kinds = ", ".join(c.kind for c in CONTRACTS.values())
        candidates = sorted(every_field())
        expected = f"no contract ({kinds}) has such a field"
    else:
        candidates = field_names(contract.marker)
        expected = "expected only " + ", ".join(candidates)
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.75) if len(key) < 80 else []
    meant = f" (did you mean {close[0]!r}?)" if close else ""
    return UNKNOWN_FIELD.at(pointer(key), f"unknown field {key!r}{meant}: {expected}")


def schema(marker: str) -> dict[str, Any]:
    """The shipped JSON Schema of a marker, parsed: a fresh copy the caller may change."""
    return copy.deepcopy(shared_schema(marker))


@cache
def schema_registry() -> Registry[Any]:
    """A `referencing` registry of every shipped schema, so `$ref`s resolve offline."""
    from referencing import Registry, Resource

    # Each schema's absolute $id is its URI; nothing outside this registry is ever retrieved.
    pairs = [(shared_schema(m)["$id"], Resource.from_contents(shared_schema(m))) for m in markers()]
    registry: Registry[Any] = Registry().with_resources(pairs)
    return registry.crawl()


def json_schema_validator(marker: str) -> Validator:
    """A python-jsonschema Draft 2020-12 validator for a marker, resolving only shipped schemas."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(shared_schema(marker), registry=schema_registry())
