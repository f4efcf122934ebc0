"""Schemas, strict codecs, semantic rules and stable digests for the FibQuant v1 KV contracts."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fib_quant_kv.arrays import check_array
    from fib_quant_kv.codec import Encoding
    from fib_quant_kv.contracts import (
        Document,
        json_schema_validator,
        markers,
        schema,
        schema_text,
    )
    from fib_quant_kv.derive import (
        canonical_layout,
        element_count,
        new_page_geometry,
        page_count,
        vector_count,
    )
    from fib_quant_kv.digests import encode
    from fib_quant_kv.errors import (
        ArrayMismatch,
        ConfigError,
        CorruptPayload,
        DecodeError,
        DependencyUnsupported,
        FibQuantKvError,
        ResourceLimitExceeded,
        Rule,
        SchemaError,
        SetError,
        Violation,
    )
    from fib_quant_kv.hf.caches import check_cache
    from fib_quant_kv.hf.layers import KvLayers, LayerCache, kv_layers_from_hf_config
    from fib_quant_kv.hf.plan import Group, Plan, plan_from_hf_config, shape_from_hf_config
    from fib_quant_kv.rules import RULES
    from fib_quant_kv.sets import Finding, create_set, validate_documents, validate_paths
    from fib_quant_kv.verdict import (
        Checker,
        Verdict,
        check,
        check_all,
        collect_violations,
        decode,
        digest,
        validate,
    )
    from fib_quant_kv.writing import WriteRefused, write_plan
    from fib_quant_kv_models import (
        ContractSetV1,
        KvAttentionKind,
        KvCacheLayoutV1,
        KvDtype,
        KvLayoutOrder,
        KvPageGeometryV1,
        KvRole,
        KvRopeState,
        KvTensorShapeV1,
    )

# Names are resolved on first use, so `import fib_quant_kv` (and the CLI's start) does not pay
# for pydantic, jsonschema or the codecs until something needs them.
_EXPORTS: dict[str, str] = {
    "ArrayMismatch": "fib_quant_kv.errors",
    "ContractSetV1": "fib_quant_kv_models",
    "Finding": "fib_quant_kv.sets",
    "SetError": "fib_quant_kv.errors",
    "create_set": "fib_quant_kv.sets",
    "validate_documents": "fib_quant_kv.sets",
    "validate_paths": "fib_quant_kv.sets",
    "Checker": "fib_quant_kv.verdict",
    "ConfigError": "fib_quant_kv.errors",
    "CorruptPayload": "fib_quant_kv.errors",
    "DecodeError": "fib_quant_kv.errors",
    "DependencyUnsupported": "fib_quant_kv.errors",
    "Document": "fib_quant_kv.contracts",
    "Encoding": "fib_quant_kv.codec",
    "FibQuantKvError": "fib_quant_kv.errors",
    "KvAttentionKind": "fib_quant_kv_models",
    "Group": "fib_quant_kv.hf.plan",
    "KvLayers": "fib_quant_kv.hf.layers",
    "LayerCache": "fib_quant_kv.hf.layers",
    "Plan": "fib_quant_kv.hf.plan",
    "check_cache": "fib_quant_kv.hf.caches",
    "kv_layers_from_hf_config": "fib_quant_kv.hf.layers",
    "plan_from_hf_config": "fib_quant_kv.hf.plan",
    "KvCacheLayoutV1": "fib_quant_kv_models",
    "KvDtype": "fib_quant_kv_models",
    "KvLayoutOrder": "fib_quant_kv_models",
    "KvPageGeometryV1": "fib_quant_kv_models",
    "KvRole": "fib_quant_kv_models",
    "KvRopeState": "fib_quant_kv_models",
    "KvTensorShapeV1": "fib_quant_kv_models",
    "RULES": "fib_quant_kv.rules",
    "ResourceLimitExceeded": "fib_quant_kv.errors",
    "Rule": "fib_quant_kv.errors",
    "SchemaError": "fib_quant_kv.errors",
    "Verdict": "fib_quant_kv.verdict",
    "Violation": "fib_quant_kv.errors",
    "canonical_layout": "fib_quant_kv.derive",
    "check": "fib_quant_kv.verdict",
    "check_all": "fib_quant_kv.verdict",
    "check_array": "fib_quant_kv.arrays",
    "collect_violations": "fib_quant_kv.verdict",
    "decode": "fib_quant_kv.verdict",
    "digest": "fib_quant_kv.verdict",
    "element_count": "fib_quant_kv.derive",
    "encode": "fib_quant_kv.digests",
    "json_schema_validator": "fib_quant_kv.contracts",
    "markers": "fib_quant_kv.contracts",
    "new_page_geometry": "fib_quant_kv.derive",
    "page_count": "fib_quant_kv.derive",
    "schema": "fib_quant_kv.contracts",
    "schema_text": "fib_quant_kv.contracts",
    "shape_from_hf_config": "fib_quant_kv.hf.plan",
    "validate": "fib_quant_kv.verdict",
    "vector_count": "fib_quant_kv.derive",
    "WriteRefused": "fib_quant_kv.writing",
    "write_plan": "fib_quant_kv.writing",
}

__all__ = [
    "RULES",
    "ArrayMismatch",
    "Checker",
    "ConfigError",
    "ContractSetV1",
    "CorruptPayload",
    "DecodeError",
    "DependencyUnsupported",
    "Document",
    "Encoding",
    "FibQuantKvError",
    "Finding",
    "Group",
    "KvAttentionKind",
    "KvCacheLayoutV1",
    "KvDtype",
    "KvLayers",
    "KvLayoutOrder",
    "KvPageGeometryV1",
    "KvRole",
    "KvRopeState",
    "KvTensorShapeV1",
    "LayerCache",
    "Plan",
    "ResourceLimitExceeded",
    "Rule",
    "SchemaError",
    "SetError",
    "Verdict",
    "Violation",
    "WriteRefused",
    "canonical_layout",
    "check",
    "check_all",
    "check_array",
    "check_cache",
    "collect_violations",
    "create_set",
    "decode",
    "digest",
    "element_count",
    "encode",
    "json_schema_validator",
    "kv_layers_from_hf_config",
    "markers",
    "new_page_geometry",
    "page_count",
    "plan_from_hf_config",
    "schema",
    "schema_text",
    "shape_from_hf_config",
    "validate",
    "validate_documents",
    "validate_paths",
    "vector_count",
    "write_plan",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fib_quant_kv' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
