"""Models made from what the fast path matched, as `model_construct` makes them: no second
validation, and held by tests to the models pydantic validates."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, cast, get_origin

from fib_quant_kv.contracts import field_names

if TYPE_CHECKING:
    from fib_quant_kv.contracts import Document
    from fib_quant_kv.fastpath import Table, _Compiled as Compiled
    from fib_quant_kv.rules import DocumentFields

_new_instance = object.__new__


def _slot_setter(model: type, name: str) -> Callable[[object, object], None]:
    """The setter of an instance slot (or of __dict__) the model class inherits."""
    descriptor = next(k.__dict__[name] for k in model.__mro__ if name in k.__dict__)
    setter: Callable[[object, object], None] = descriptor.__set__
    return setter


# What would make a model's validation do more than its schema: the maker refuses such a model.
_VALIDATOR_KINDS = ("validators", "field_validators", "root_validators", "model_validators")


class ModelMaker:
    """Models of one contract made from a match, as `model_construct` makes them.

    The match has proven everything the model's validator checks (every field once, of its
    type, within its bounds, one of its allowed values, nothing else), so validating again
    would only repeat it. The instance gets what `model_construct` gives it (its fields in
    order, all of them set, no extra and no private values) without `model_construct`'s
    per-field loop or a second parse. A model whose validation could do more (a validator, a
    post-init hook, private attributes, a field of another type than int, Literal or enum)
    is refused with a ValueError when its maker is first made, as the tests make it; and they
    hold every made model equal, type for type, to the one pydantic validates.
    """

    def __init__(self, compiled: Compiled) -> None:
        contract = compiled.contract
        model = contract.model
        names = field_names(contract.marker)
        decorators = model.__pydantic_decorators__
        if (
            list(model.model_fields) != names
            or model.model_config.get("extra") != "forbid"
            or model.__pydantic_root_model__
            or model.__pydantic_post_init__ is not None
            or model.__private_attributes__
            or any(getattr(decorators, kind) for kind in _VALIDATOR_KINDS)
        ):
            raise ValueError(f"{contract.model_name}: validation does more than the pattern")
        self.model = model
        self.names = names
        # What model_construct sets, through the slots' own descriptors (object.__setattr__
        # would look each name up on the class first).
        self.set_dict = _slot_setter(model, "__dict__")
        self.set_fields_set = _slot_setter(model, "__pydantic_fields_set__")
        self.set_extra = _slot_setter(model, "__pydantic_extra__")
        self.set_private = _slot_setter(model, "__pydantic_private__")
        # Copied for each model: pydantic adds to a model's own set as fields are assigned.
        self.fields_set = set(names)
        # Each model's __dict__ is a copy of this one, its values then replaced: copying a dict
        # of the same keys and replacing the values is about twice as fast as building it from
        # pairs (no growth, no new key slots).
        self.prototype: dict[str, object] = dict.fromkeys(names)
        # Each enum field's members by value: a plain string and its str-enum member hash and
        # compare alike, so either finds the member.
        self.members: dict[str, dict[object, enum.Enum]] = {}
        for name, info in model.model_fields.items():
            kind = info.annotation
            if isinstance(kind, type) and issubclass(kind, enum.Enum):
                self.members[name] = {member.value: member for member in kind}
            # An int's bounds and a Literal's (the marker's) value are the pattern's to prove.
            elif kind is not int and get_origin(kind) is not Literal:
                raise ValueError(f"{contract.model_name}.{name}: a type the maker cannot make")
        # The enum fields by position, for plain fields to be given their members.
        self.members_at = [(names.index(name), members) for name, members in self.members.items()]
        self.view = compiled.fields

        def members_of(name: str, texts: dict[str, dict[bytes, str]]) -> Table:
            """A table from a field's matched text to its enum member."""
            members = self.members[name]
            return {raw: members[value] for raw, value in texts[name].items()}

        # The patterns' tables, with each enum field's giving its member.
        self.json_tables = [
            members_of(name, compiled.json_texts) if name in self.members else table
            for name, table in zip(names, compiled.json_tables, strict=True)
        ]
        self.cbor_tables = [
            members_of(name, compiled.cbor_texts) if name in self.members else table
            for name, table in zip(names, compiled.cbor_tables, strict=True)
        ]

    def make(self, fields: DocumentFields) -> Document:
        """The model of fields in contract order (the contract's named tuple, or any tuple of
        its values), enum fields already members."""
        made: Document = _new_instance(self.model)
        values = self.prototype.copy()
        # Not strict: the patterns fix the number of values, and the check costs per document.
        values.update(zip(self.names, fields))  # type: ignore[call-overload]  # noqa: B905
        self.set_dict(made, values)
        self.set_fields_set(made, self.fields_set.copy())
        self.set_extra(made, None)
        self.set_private(made, None)
        return made

    def of_fields(self, fields: DocumentFields) -> tuple[Document, DocumentFields]:
        """The model of the fields `read_json` or `read_cbor` gave (enum fields as strings),
        and its fields as it holds them (enum fields as members)."""
        # The fields are the contract's named tuple: a tuple, read by attribute.
        values = list(cast("tuple[object, ...]", fields))
        for index, members in self.members_at:
            values[index] = members[values[index]]
        held = self.view(values)
        return self.make(held), held
