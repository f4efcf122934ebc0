"""Schemas, strict codecs, semantic rules and stable digests for the FibQuant v1 KV contracts."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # What type checkers see: each name re-exported (`as` itself), from where it lives.
    from fib_quant_kv.arrays import check_array as check_array
    from fib_quant_kv.codec import Encoding as Encoding
    from fib_quant_kv.contracts import (
        Document as Document,
        json_schema_validator as json_schema_validator,
        markers as markers,
        schema as schema,
        schema_text as schema_text,
    )
    from fib_quant_kv.derive import (
        canonical_layout as canonical_layout,
        element_count as element_count,
        new_page_geometry as new_page_geometry,
        page_count as page_count,
        vector_count as vector_count,
    )
    from fib_quant_kv.digests import encode as encode
    from fib_quant_kv.errors import (
        ArrayMismatch as ArrayMismatch,
        ConfigError as ConfigError,
        CorruptPayload as CorruptPayload,
        DecodeError as DecodeError,
        DependencyUnsupported as DependencyUnsupported,
        FibQuantKvError as FibQuantKvError,
        ResourceLimitExceeded as ResourceLimitExceeded,
        Rule as Rule,
        SchemaError as SchemaError,
        SetError as SetError,
        Violation as Violation,
    )
    from fib_quant_kv.hf.caches import check_cache as check_cache
    from fib_quant_kv.hf.layers import (
        KvLayers as KvLayers,
        LayerCache as LayerCache,
        kv_layers_from_hf_config as kv_layers_from_hf_config,
    )
    from fib_quant_kv.hf.plan import (
        Group as Group,
        Plan as Plan,
        plan_from_hf_config as plan_from_hf_config,
        shape_from_hf_config as shape_from_hf_config,
    )
    from fib_quant_kv.rules import RULES as RULES
    from fib_quant_kv.sets import (
        Finding as Finding,
        create_set as create_set,
        validate_documents as validate_documents,
        validate_paths as validate_paths,
    )
    from fib_quant_kv.verdict import (
        Checker as Checker,
        Verdict as Verdict,
        check as check,
        check_all as check_all,
        collect_violations as collect_violations,
        decode as decode,
        digest as digest,
        validate as validate,
    )
    from fib_quant_kv.writing import (
        WriteRefused as WriteRefused,
        write_plan as write_plan,
    )
    from fib_quant_kv_models import (
        ContractSetV1 as ContractSetV1,
        KvAttentionKind as KvAttentionKind,
        KvCacheLayoutV1 as KvCacheLayoutV1,
        KvDtype as KvDtype,
        KvLayoutOrder as KvLayoutOrder,
        KvPageGeometryV1 as KvPageGeometryV1,
        KvRole as KvRole,
        KvRopeState as KvRopeState,
        KvTensorShapeV1 as KvTensorShapeV1,
    )

# What the package exports, by the module each name lives in (the block above, as data: a
# test holds the two alike). Each is imported on first use, so `import fib_quant_kv` (and the
# CLI's start) does not pay for pydantic, jsonschema or the codecs until something needs them.
_MODULES: dict[str, tuple[str, ...]] = {
    "fib_quant_kv.arrays": ("check_array",),
    "fib_quant_kv.codec": ("Encoding",),
    "fib_quant_kv.contracts": (
        "Document",
        "json_schema_validator",
        "markers",
        "schema",
        "schema_text",
    ),
    "fib_quant_kv.derive": (
        "canonical_layout",
        "element_count",
        "new_page_geometry",
        "page_count",
        "vector_count",
    ),
    "fib_quant_kv.digests": ("encode",),
    "fib_quant_kv.errors": (
        "ArrayMismatch",
        "ConfigError",
        "CorruptPayload",
        "DecodeError",
        "DependencyUnsupported",
        "FibQuantKvError",
        "ResourceLimitExceeded",
        "Rule",
        "SchemaError",
        "SetError",
        "Violation",
    ),
    "fib_quant_kv.hf.caches": ("check_cache",),
    "fib_quant_kv.hf.layers": (
        "KvLayers",
        "LayerCache",
        "kv_layers_from_hf_config",
    ),
    "fib_quant_kv.hf.plan": (
        "Group",
        "Plan",
        "plan_from_hf_config",
        "shape_from_hf_config",
    ),
    "fib_quant_kv.rules": ("RULES",),
    "fib_quant_kv.sets": (
        "Finding",
        "create_set",
        "validate_documents",
        "validate_paths",
    ),
    "fib_quant_kv.verdict": (
        "Checker",
        "Verdict",
        "check",
        "check_all",
        "collect_violations",
        "decode",
        "digest",
        "validate",
    ),
    "fib_quant_kv.writing": (
        "WriteRefused",
        "write_plan",
    ),
    "fib_quant_kv_models": (
        "ContractSetV1",
        "KvAttentionKind",
        "KvCacheLayoutV1",
        "KvDtype",
        "KvLayoutOrder",
        "KvPageGeometryV1",
        "KvRole",
        "KvRopeState",
        "KvTensorShapeV1",
    ),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name == "__all__":
        # What `from fib_quant_kv import *` takes, answered from the table: a literal list would
        # name the API a third time, and type checkers read the re-exports above instead.
        return sorted(_EXPORTS)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fib_quant_kv' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
