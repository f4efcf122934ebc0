"""The registry of contracts: schema marker -> kind, JSON Schema, model and shape needs."""

from __future__ import annotations

import copy
import importlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

if TYPE_CHECKING:
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
    """One versioned document type. Its marker is also its digest domain."""

    marker: str
    kind: Kind
    # By name: the models import pydantic, which a document on the hot path never needs.
    model_name: str
    # Layouts and geometries are only meaningful against the shape they describe.
    needs_shape: bool

    @property
    def model(self) -> type[Document]:
        """The generated model class of the contract."""
        model: type[Document] = getattr(_models(), self.model_name)
        return model

    @property
    def schema_file(self) -> str:
        """The name of the schema file, in schemas/ and inside the package."""
        return f"{self.marker}.schema.json"


CONTRACTS: dict[str, Contract] = {
    c.marker: c
    for c in (
        Contract(SHAPE_SCHEMA, "shape", "KvTensorShapeV1", needs_shape=False),
        Contract(LAYOUT_SCHEMA, "layout", "KvCacheLayoutV1", needs_shape=True),
        Contract(PAGE_GEOMETRY_SCHEMA, "geometry", "KvPageGeometryV1", needs_shape=True),
    )
}


@cache
def _models() -> Any:
    return importlib.import_module("fib_quant_kv_models")


@cache
def _by_model() -> dict[type[Document], Contract]:
    return {c.model: c for c in CONTRACTS.values()}


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


def contract_of(doc: Document) -> Contract:
    """The contract of a model instance."""
    by_model = _by_model()
    try:
        return by_model[type(doc)]
    except KeyError:
        raise TypeError(
            f"expected a contract model ({', '.join(m.__name__ for m in by_model)}), "
            f"got {type(doc).__name__}"
        ) from None


def schema_text(marker: str) -> str:
    """The shipped JSON Schema of a marker, exactly as released."""
    contract = CONTRACTS[marker]
    return (resources.files("fib_quant_kv") / "schemas" / contract.schema_file).read_text("utf-8")


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
