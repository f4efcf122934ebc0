"""The released v1 JSON Schemas: well-formed, frozen, faithful to the contract and to the models."""

from __future__ import annotations

import hashlib
import json
import socket
import urllib.request
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import annotated_types
import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError
from referencing.exceptions import Unresolvable

import fib_quant_kv
import fib_quant_kv_models
from fib_quant_kv import contracts

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

U32_MAX = 4294967295
U64_MAX = 18446744073709551615

SHAPE = "fib_quant_kv_tensor_shape_v1"
LAYOUT = "fib_quant_kv_cache_layout_v1"
GEOMETRY = "fib_quant_kv_page_geometry_v1"

# The released schema files, pinned. A released schema is never edited: a change is a new
# version beside it (..._v2.schema.json), with its own marker, model and pin.
RELEASED_SCHEMA_SHA256: dict[str, str] = {
    "fib_quant_kv_cache_layout_v1.schema.json": (
        "455866a94ca56c433b72bdee32e38d463ab9cb70452eef4d4b6a35194381d786"
    ),
    "fib_quant_kv_page_geometry_v1.schema.json": (
        "cffabfefba5260bccee3cc1694b2e14ec1b9981d6d682bde80ffd496f200cf2a"
    ),
    "fib_quant_kv_tensor_shape_v1.schema.json": (
        "ecbc4b5f1ca8013ebca706007a1f138bae1500e46b47f43b0e01134df3a56c98"
    ),
    # The project's own set file, beside the contracts (not a contract: no schema_version).
    "fib_quant_kv_contract_set_v1.schema.json": (
        "4f5d3f51e51a40e9fa525598ad6f78d484d167b6f9c62cd27a68e633925e336d"
    ),
}
SET_SCHEMA_FILE = "fib_quant_kv_contract_set_v1.schema.json"

# CONTRACT.md section 1, table by table: (field, type). A type is "u32" or "u64", a tuple of
# enum values in the contract's order, or ("const", marker) for a string that must be a marker.
CONTRACT_FIELDS: dict[str, list[tuple[str, Any]]] = {
    SHAPE: [
        ("schema_version", ("const", SHAPE)),
        ("role", ("key", "value")),
        ("attention_kind", ("mha", "mqa", "gqa")),
        ("batch", "u32"),
        ("layers", "u32"),
        ("kv_heads", "u32"),
        ("query_heads", "u32"),
        ("tokens", "u32"),
        ("head_dim", "u32"),
        ("dtype", ("f16", "bf16", "f32")),
        ("rope_state", ("pre_rope", "post_rope", "not_applicable")),
    ],
    LAYOUT: [
        ("schema_version", ("const", LAYOUT)),
        ("shape_schema_version", ("const", SHAPE)),
        ("order", ("batch_layer_head_token_dim",)),
        ("batch_stride", "u64"),
        ("layer_stride", "u64"),
        ("head_stride", "u64"),
        ("token_stride", "u64"),
        ("dim_stride", "u64"),
    ],
    GEOMETRY: [
        ("schema_version", ("const", GEOMETRY)),
        ("tokens_per_page", "u32"),
        ("vectors_per_block", "u32"),
        ("head_dim", "u32"),
        ("encoded_block_bytes", "u32"),
        ("raw_vector_bytes", "u32"),
    ],
}

# The model names the contract gives each document.
CONTRACT_TITLES = {
    SHAPE: "KvTensorShapeV1",
    LAYOUT: "KvCacheLayoutV1",
    GEOMETRY: "KvPageGeometryV1",
}

# Integer fields whose zero a per-field rule of section 2 refuses (shape counts must be > 0,
# tokens_per_page >= 1, encoded_block_bytes != 0): the schema states that bound. Every other
# integer field admits 0 structurally; its rules compare it with the shape, or (vectors_per_block)
# make it dependency_unsupported rather than malformed.
POSITIVE_FIELDS = {
    SHAPE: {"batch", "layers", "kv_heads", "query_heads", "tokens", "head_dim"},
    LAYOUT: set(),
    GEOMETRY: {"tokens_per_page", "encoded_block_bytes"},
}

# One structurally valid document of each kind (the contract's worked example, its canonical
# layout, and a page geometry for it).
VALID: dict[str, dict[str, Any]] = {
    SHAPE: {
        "schema_version": SHAPE,
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
    },
    LAYOUT: {
        "schema_version": LAYOUT,
        "shape_schema_version": SHAPE,
        "order": "batch_layer_head_token_dim",
        "batch_stride": 134217728,
        "layer_stride": 4194304,
        "head_stride": 524288,
        "token_stride": 128,
        "dim_stride": 1,
    },
    GEOMETRY: {
        "schema_version": GEOMETRY,
        "tokens_per_page": 256,
        "vectors_per_block": 1,
        "head_dim": 128,
        "encoded_block_bytes": 64,
        "raw_vector_bytes": 512,
    },
}

MARKERS = sorted(CONTRACT_FIELDS)


def _resolved(root: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
    """A property schema with a local `#/$defs/...` reference replaced by its target."""
    if "$ref" not in prop:
        return prop
    ref = prop["$ref"]
    assert ref.startswith("#/$defs/"), f"unexpected reference {ref!r}"
    return root["$defs"][ref.removeprefix("#/$defs/")]


def _field_cases(kind: str) -> list[Any]:
    """(marker, field, type) for every field of the contract whose type is `kind`."""
    cases = []
    for marker, fields in CONTRACT_FIELDS.items():
        for field, typ in fields:
            is_enum = isinstance(typ, tuple) and typ[0] != "const"
            if (kind == "enum" and is_enum) or typ == kind:
                cases.append(pytest.param(marker, field, typ, id=f"{marker}.{field}"))
    return cases


def test_markers_are_the_contracts() -> None:
    assert fib_quant_kv.markers() == MARKERS
    contracts_pinned = sorted(set(RELEASED_SCHEMA_SHA256) - {SET_SCHEMA_FILE})
    assert sorted(f"{m}.schema.json" for m in MARKERS) == contracts_pinned


@pytest.mark.parametrize("marker", MARKERS)
def test_schema_passes_the_draft_2020_12_metaschema(marker: str) -> None:
    root = fib_quant_kv.schema(marker)
    assert root["$schema"] == DRAFT_2020_12
    Draft202012Validator.check_schema(root)


@pytest.mark.parametrize("marker", MARKERS)
def test_schema_identity_and_documentation(marker: str) -> None:
    root = fib_quant_kv.schema(marker)
    parts = urlsplit(root["$id"])
    assert parts.scheme == "https", f"$id {root['$id']!r} is not an absolute https URI"
    assert parts.netloc, f"$id {root['$id']!r} has no authority"
    assert not parts.fragment, f"$id {root['$id']!r} has a fragment"
    assert parts.path.endswith(f"/{marker}.schema.json")
    assert root["title"] == CONTRACT_TITLES[marker]
    assert isinstance(root["description"], str)
    assert root["description"].strip()
    for name, definition in root.get("$defs", {}).items():
        assert definition.get("title") == name
        assert definition.get("description", "").strip(), f"$defs/{name} has no description"


@pytest.mark.parametrize("marker", MARKERS)
def test_schema_is_a_closed_object_with_every_property_required_and_described(
    marker: str,
) -> None:
    root = fib_quant_kv.schema(marker)
    assert root["type"] == "object"
    assert root["additionalProperties"] is False
    properties = root["properties"]
    assert root["required"] == list(properties)
    for name, prop in properties.items():
        description = prop.get("description")
        assert isinstance(description, str), f"property {name!r} has no description"
        assert description.strip(), f"property {name!r} has an empty description"


@pytest.mark.parametrize("marker", MARKERS)
def test_schema_version_is_the_marker_as_a_const(marker: str) -> None:
    prop = fib_quant_kv.schema(marker)["properties"]["schema_version"]
    assert prop["type"] == "string"
    assert prop["const"] == marker
    validator = fib_quant_kv.json_schema_validator(marker)
    for other in MARKERS:
        assert validator.is_valid({**VALID[marker], "schema_version": other}) is (other == marker)


@pytest.mark.parametrize("marker", MARKERS)
def test_property_order_is_the_contract_field_order(marker: str) -> None:
    expected = [field for field, _ in CONTRACT_FIELDS[marker]]
    assert list(fib_quant_kv.schema(marker)["properties"]) == expected


@pytest.mark.parametrize("marker", MARKERS)
def test_model_field_order_is_the_contract_field_order(marker: str) -> None:
    expected = [field for field, _ in CONTRACT_FIELDS[marker]]
    model = contracts.CONTRACTS[marker].model
    assert model.__name__ == CONTRACT_TITLES[marker]
    assert list(model.model_fields) == expected


@pytest.mark.parametrize(("marker", "field", "typ"), _field_cases("u32") + _field_cases("u64"))
def test_integer_field_bounds(marker: str, field: str, typ: str) -> None:
    prop = fib_quant_kv.schema(marker)["properties"][field]
    maximum = U32_MAX if typ == "u32" else U64_MAX
    minimum = 1 if field in POSITIVE_FIELDS[marker] else 0
    assert prop["type"] == "integer"
    assert prop["maximum"] == maximum
    assert prop["minimum"] == minimum
    assert "exclusiveMaximum" not in prop
    assert "exclusiveMinimum" not in prop
    # The generated model states the same bounds, as a strict integer.
    metadata = contracts.CONTRACTS[marker].model.model_fields[field].metadata
    assert annotated_types.Le(maximum) in metadata
    assert annotated_types.Ge(minimum) in metadata
    assert any(getattr(m, "strict", None) is True for m in metadata)


@pytest.mark.parametrize(("marker", "field", "typ"), _field_cases("enum"))
def test_enum_values_are_the_contracts(marker: str, field: str, typ: tuple[str, ...]) -> None:
    root = fib_quant_kv.schema(marker)
    prop = _resolved(root, root["properties"][field])
    assert prop["type"] == "string"
    assert prop["enum"] == list(typ)
    annotation = contracts.CONTRACTS[marker].model.model_fields[field].annotation
    assert isinstance(annotation, type)
    assert issubclass(annotation, StrEnum)
    assert annotation.__name__ == prop["title"]
    assert [member.value for member in annotation] == list(typ)


@pytest.mark.parametrize(
    ("marker", "field", "value"),
    [
        pytest.param(marker, field, typ[1], id=f"{marker}.{field}")
        for marker, fields in CONTRACT_FIELDS.items()
        for field, typ in fields
        if isinstance(typ, tuple) and typ[0] == "const"
    ],
)
def test_marker_fields_are_consts(marker: str, field: str, value: str) -> None:
    prop = fib_quant_kv.schema(marker)["properties"][field]
    assert prop["type"] == "string"
    assert prop["const"] == value


@pytest.mark.parametrize("name", sorted(RELEASED_SCHEMA_SHA256))
def test_released_schema_is_frozen(name: str) -> None:
    path = SCHEMAS_DIR / name
    assert path.is_file(), f"released schema {name} is missing: a released schema is never removed"
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != RELEASED_SCHEMA_SHA256[name]:
        v2 = name.replace("_v1.schema.json", "_v2.schema.json")
        pytest.fail(
            f"schemas/{name} has changed (sha256 {actual}, released as "
            f"{RELEASED_SCHEMA_SHA256[name]}). A released schema must never be edited: restore "
            f"it, and put the change in a new version beside it, schemas/{v2}, with its own "
            "marker, generated model and pinned hash."
        )


def test_every_schema_file_is_pinned() -> None:
    present = sorted(p.name for p in SCHEMAS_DIR.glob("*.schema.json"))
    unpinned = sorted(set(present) - set(RELEASED_SCHEMA_SHA256))
    assert not unpinned, (
        f"schema files without a pinned SHA-256: {unpinned}; pin each one in "
        "RELEASED_SCHEMA_SHA256 when it is released (it is frozen from then on)"
    )
    assert sorted(RELEASED_SCHEMA_SHA256) == present


@pytest.mark.parametrize("marker", MARKERS)
def test_shipped_schema_text_is_the_released_file(marker: str) -> None:
    name = f"{marker}.schema.json"
    released = (SCHEMAS_DIR / name).read_bytes()
    assert fib_quant_kv.schema_text(marker).encode("utf-8") == released
    assert (resources.files("fib_quant_kv") / "schemas" / name).read_bytes() == released
    assert fib_quant_kv.schema(marker) == json.loads(released)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Refuse every network access; the list records what was attempted."""
    attempts: list[str] = []

    def refuse(what: str) -> Any:
        def raiser(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{what}{args!r}")
            raise OSError(f"network access attempted while offline: {what}")

        return raiser

    monkeypatch.setattr(urllib.request, "urlopen", refuse("urlopen"))
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    return attempts


def test_offline_fixture_blocks_the_network(offline: list[str]) -> None:
    with pytest.raises(OSError, match="offline"):
        urllib.request.urlopen(DRAFT_2020_12)
    with socket.socket() as sock, pytest.raises(OSError, match="offline"):
        sock.connect(("127.0.0.1", 9))
    assert len(offline) == 2


@pytest.mark.parametrize("marker", MARKERS)
def test_json_schema_validator_resolves_everything_offline(
    marker: str, offline: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Build the parsed schemas and their registry afresh, while offline.
    monkeypatch.setattr(contracts, "shared_schema", contracts.shared_schema.__wrapped__)
    monkeypatch.setattr(contracts, "schema_registry", contracts.schema_registry.__wrapped__)
    validator = fib_quant_kv.json_schema_validator(marker)
    Draft202012Validator.check_schema(validator.schema)
    assert validator.is_valid(VALID[marker])
    # The const and enum checks run; enums need their local $defs references resolved.
    checked = [f for f, t in CONTRACT_FIELDS[marker] if isinstance(t, tuple)]
    errors = validator.iter_errors({**VALID[marker], **dict.fromkeys(checked, "NOT_A_VALUE")})
    assert sorted(list(e.path) for e in errors) == sorted([f] for f in checked)
    # Every shipped schema is reachable from any validator by its absolute $id.
    for other in MARKERS:
        by_id = validator.evolve(schema={"$ref": fib_quant_kv.schema(other)["$id"]})
        assert by_id.is_valid(VALID[other])
        assert not by_id.is_valid({**VALID[other], "unknown": 1})
    # Anything else is unresolvable, not fetched.
    remote = validator.evolve(schema={"$ref": "https://example.com/not-shipped.schema.json"})
    with pytest.raises(Unresolvable):
        remote.is_valid(VALID[marker])
    assert offline == []


def _schema_type_names() -> set[str]:
    names = set()
    for name in (*MARKERS, SET_SCHEMA_FILE.removesuffix(".schema.json")):
        root = json.loads(fib_quant_kv.schema_text(name))
        names.add(root["title"])
        names.update(d["title"] for d in root.get("$defs", {}).values())
    return names


def test_models_package_exports_every_model_and_enum() -> None:
    expected = _schema_type_names()
    assert set(fib_quant_kv_models.__all__) == expected
    assert len(fib_quant_kv_models.__all__) == len(expected)
    for marker in MARKERS:
        model = getattr(fib_quant_kv_models, CONTRACT_TITLES[marker])
        assert issubclass(model, BaseModel)
        assert contracts.CONTRACTS[marker].model is model
        assert getattr(fib_quant_kv, model.__name__) is model
    # The set file's types stay in fib_quant_kv_models; fib_quant_kv exports the set API.
    set_types = {"ContractSetV1", "SetEntry", "SetRole", "SetDocumentKind"}
    for name in expected - set(CONTRACT_TITLES.values()) - set_types:
        enum = getattr(fib_quant_kv_models, name)
        assert issubclass(enum, StrEnum)
        assert getattr(fib_quant_kv, name) is enum


@pytest.mark.parametrize("marker", MARKERS)
def test_models_are_frozen(marker: str) -> None:
    model = contracts.CONTRACTS[marker].model
    instance = model.model_validate(VALID[marker])
    field = next(f for f, t in CONTRACT_FIELDS[marker] if t in ("u32", "u64"))
    with pytest.raises(ValidationError) as excinfo:
        setattr(instance, field, 2)
    assert excinfo.value.errors()[0]["type"] == "frozen_instance"
    assert getattr(instance, field) == VALID[marker][field]
    with pytest.raises(ValidationError):
        instance.not_a_field = 1  # type: ignore[union-attr]
    assert instance.model_dump(mode="json") == VALID[marker]


@pytest.mark.parametrize("marker", MARKERS)
def test_models_forbid_extra_fields(marker: str) -> None:
    model = contracts.CONTRACTS[marker].model
    assert model.model_config.get("extra") == "forbid"
    with pytest.raises(ValidationError) as excinfo:
        model.model_validate({**VALID[marker], "unknown": 1})
    assert [(e["type"], e["loc"]) for e in excinfo.value.errors()] == [
        ("extra_forbidden", ("unknown",))
    ]
    with pytest.raises(ValidationError):
        model(**VALID[marker], unknown=1)


def test_package_data_is_schemas_folder_byte_for_byte() -> None:
    # The package reads its own copy of schemas/ (package data in a wheel, a copy beside the source
    # in an editable install): every file, byte for byte, none stale or extra, and a real folder,
    # since a link back into the repository is what an sdist drops.
    shipped = resources.files("fib_quant_kv") / "schemas"
    assert isinstance(shipped, Path), f"the package is not installed as files: {shipped!r}"
    assert shipped.is_dir(), f"{shipped} is missing: the package has no schemas"
    assert not shipped.is_symlink(), f"{shipped} is a link, not package data"
    assert shipped.resolve() != SCHEMAS_DIR.resolve()
    released = sorted(p.name for p in SCHEMAS_DIR.iterdir())
    assert sorted(p.name for p in shipped.iterdir()) == released, (
        f"{shipped} does not hold the files of schemas/; after changing schemas/, reinstall "
        "(`pip install -e .` refreshes an editable install's copy)"
    )
    for name in released:
        assert (shipped / name).read_bytes() == (SCHEMAS_DIR / name).read_bytes(), name
