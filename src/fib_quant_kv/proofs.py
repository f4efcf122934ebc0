"""What is remembered of a proven model: its field values then, so a model is validated once.

A model this package proved (decoded, derived, or validated once) is remembered, so the next
call that receives it does not validate it again. The memory is safe: it is keyed by the
object's identity, holds it weakly, and keeps a snapshot of its field values, so a model built
with `model_construct`, changed by `model_copy(update=...)`, or altered in place is checked
afresh.
"""

from __future__ import annotations

import operator
import weakref
from typing import TYPE_CHECKING, TypeVar

from fib_quant_kv.contracts import contract_of
from fib_quant_kv.errors import Violation
from fib_quant_kv.fastpath import fields_of

if TYPE_CHECKING:
    from fib_quant_kv.contracts import Document
    from fib_quant_kv.rules import DocumentFields

D = TypeVar("D", bound="Document")


class Proof(weakref.ref["Document"]):
    """A model whose schema holds, held weakly (calling the proof gives the model while it
    lives): its field values then, and what was learnt of it since.

    One object, a weak reference with slots, rather than a reference, a callback bound to the
    model's key and a record: proving a model is on every decode's path.
    """

    __slots__ = ("canonical", "digest", "fields", "key", "own")

    key: int
    # The values as the hot path's fields (the contract's named tuple): the rules read them
    # there, at a tuple's speed, where a pydantic model's every attribute read passes its
    # __getattr__ hook; as a tuple, they are the snapshot the model is held to.
    fields: DocumentFields
    # Its canonical JSON, once known (the hot path knows it from the bytes).
    canonical: bytes | None
    # Its digest, once written.
    digest: str | None
    # A shape's own rule violations, once run: they depend on nothing else.
    own: list[Violation] | None


def _forget(proof: Proof) -> None:
    """Drop a proof from the table as its model is freed (a weak reference's callback)."""
    PROOFS.pop(proof.key, None)


# Proofs by the model's id, each dropped as its model is freed: the proof's callback runs while
# the model is being freed, before its id can be another object's. So the table holds live
# models only, whatever the caller keeps, and the memory of models that are gone is freed with
# them. A proof replaced by a newer one of the same model is freed with its callback, unless
# something still holds it: then both callbacks drop the one key, once each.
#
# The key is the id without its low four bits (id >> 4), which are always zero: objects are
# 16-byte aligned, and two live models lie further apart than that. An int hashes to itself
# and a dict probes from the low bits; with them all zero, and entries coming and going as
# models do, a lookup walked long chains of freed slots (object.__hash__ rotates an address
# for the same reason).
PROOFS: dict[int, Proof] = {}


def remember(model: D, canonical: bytes | None = None) -> D:
    """Record that a model's schema holds (the caller has just proven it); returns the model."""
    return remember_fields(model, fields_of(contract_of(model), model.__dict__.values()), canonical)


def remember_fields(model: D, fields: DocumentFields, canonical: bytes | None) -> D:
    """remember, given the model's fields (which the hot path has already)."""
    proof = Proof(model, _forget)
    proof.key = key = id(model) >> 4  # see PROOFS
    proof.fields, proof.canonical, proof.digest, proof.own = fields, canonical, None, None
    PROOFS[key] = proof
    return model


def proof_of(model: Document) -> Proof | None:
    """What is remembered of this very model, unless it changed since."""
    proof = PROOFS.get(id(model) >> 4)
    if proof is None or proof() is not model:
        return None
    # The very objects it held when proven: equal values are not enough (True == 1, 128.0 ==
    # 128), and the snapshot keeps them alive, so an identity cannot be reused.
    now = model.__dict__
    held: tuple[object, ...] = proof.fields  # type: ignore[assignment]  # a named tuple
    if len(now) != len(held) or not all(map(operator.is_, now.values(), held)):
        return None
    return proof
