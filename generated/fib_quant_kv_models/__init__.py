# Generated from schemas/*.schema.json by datamodel-code-generator. Do not edit by hand:
# change the schema (or add a new version beside it), then run `nox -s generate`.

from __future__ import annotations

from .fib_quant_kv_cache_layout_v1_schema import KvCacheLayoutV1, KvLayoutOrder
from .fib_quant_kv_contract_set_v1_schema import ContractSetV1, SetDocumentKind, SetEntry, SetRole
from .fib_quant_kv_page_geometry_v1_schema import KvPageGeometryV1
from .fib_quant_kv_tensor_shape_v1_schema import (
    KvAttentionKind,
    KvDtype,
    KvRole,
    KvRopeState,
    KvTensorShapeV1,
)

__all__ = [
    "ContractSetV1",
    "KvAttentionKind",
    "KvCacheLayoutV1",
    "KvDtype",
    "KvLayoutOrder",
    "KvPageGeometryV1",
    "KvRole",
    "KvRopeState",
    "KvTensorShapeV1",
    "SetDocumentKind",
    "SetEntry",
    "SetRole",
]
