"""Check entities against the schema in Python, as Cedar does before it evaluates.

The compiled placement filter must refuse exactly what Cedar refuses: an entity whose type
is undeclared, that lacks a required attribute, carries an undeclared one, holds a value of
the wrong type, or names a parent of a type it may not belong to. ``EntityChecker.check``
returns None or raises ``PolicyRequestError`` naming the entity and attribute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from policies._model import LONG_MAX, LONG_MIN, Entity, EntityUid
from policies.errors import PolicyRequestError

_Check = Callable[[Any, str], None]


class UnsupportedSchemaError(Exception):
    """The schema uses a type this checker does not model (the caller falls back to Cedar)."""


class EntityChecker:
    """Per-entity-type conformance checks built once from a JSON schema namespace."""

    def __init__(self, namespace: str, namespace_schema: Mapping[str, Any]) -> None:
        self._ns = namespace
        self._common = namespace_schema.get("commonTypes", {}) or {}
        self._types: dict[str, tuple[dict[str, tuple[bool, _Check]], frozenset[str]]] = {}
        for name, spec in (namespace_schema.get("entityTypes", {}) or {}).items():
            shape = spec.get("shape") or {"type": "Record", "attributes": {}}
            if shape.get("type") != "Record" or spec.get("tags") or spec.get("enum"):
                raise UnsupportedSchemaError(f"entity type {name} shape")
            attrs = {
                attr: (bool(a.get("required", True)), self._compile(a))
                for attr, a in (shape.get("attributes") or {}).items()
            }
            parents = frozenset(self.qualify(t) for t in spec.get("memberOfTypes", []) or [])
            self._types[self.qualify(name)] = (attrs, parents)

    def qualify(self, name: str) -> str:
        return name if "::" in name else f"{self._ns}::{name}"

    def check(self, entity: Entity) -> None:
        """Raise PolicyRequestError unless ``entity`` conforms to the schema."""
        etype = self.qualify(entity.uid.type)
        where = f"{etype}::{entity.uid.id!r}"
        spec = self._types.get(etype)
        if spec is None:
            raise PolicyRequestError(where, f"entity type {etype} is not declared in the schema")
        attrs, parents = spec
        for name, value in entity.attrs.items():
            declared = attrs.get(name)
            if declared is None:
                raise PolicyRequestError(f"{where}.{name}", "attribute not declared in the schema")
            declared[1](value, f"{where}.{name}")
        for name, (required, _) in attrs.items():
            if required and name not in entity.attrs:
                raise PolicyRequestError(f"{where}.{name}", "required attribute is missing")
        for parent in entity.parents:
            if self.qualify(parent.type) not in parents:
                raise PolicyRequestError(where, f"may not be a member of {parent.type}")

    def _compile(self, spec: Mapping[str, Any]) -> _Check:
        kind = spec.get("type")
        if kind == "String":
            return _is_string
        if kind == "Long":
            return _is_long
        if kind == "Boolean":
            return _is_bool
        if kind == "Entity":
            return self._entity_check(self.qualify(spec["name"]))
        if kind == "Set":
            return _set_check(self._compile(spec["element"]))
        if kind == "Record":
            fields = {
                k: (bool(v.get("required", True)), self._compile(v))
                for k, v in (spec.get("attributes") or {}).items()
            }
            return _record_check(fields)
        if kind in self._common:
            return self._compile(self._common[kind])
        raise UnsupportedSchemaError(f"attribute type {kind}")

    def _entity_check(self, qualified: str) -> _Check:
        def check(value: Any, where: str) -> None:
            if not isinstance(value, EntityUid) or self.qualify(value.type) != qualified:
                raise PolicyRequestError(where, f"expected an entity of type {qualified}")

        return check


def _is_string(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise PolicyRequestError(where, f"expected a String, got {type(value).__name__}")


def _is_long(value: Any, where: str) -> None:
    if type(value) is not int or not LONG_MIN <= value <= LONG_MAX:
        raise PolicyRequestError(where, f"expected a Long, got {value!r}")


def _is_bool(value: Any, where: str) -> None:
    if type(value) is not bool:
        raise PolicyRequestError(where, f"expected a Boolean, got {value!r}")


def _set_check(element: _Check) -> _Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, frozenset | set | tuple | list):
            raise PolicyRequestError(where, f"expected a Set, got {type(value).__name__}")
        for item in value:
            element(item, where)

    return check


def _record_check(fields: dict[str, tuple[bool, _Check]]) -> _Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, Mapping):
            raise PolicyRequestError(where, f"expected a Record, got {type(value).__name__}")
        for name, item in value.items():
            if name not in fields:
                raise PolicyRequestError(f"{where}.{name}", "attribute not declared")
            fields[name][1](item, f"{where}.{name}")
        for name, (required, _) in fields.items():
            if required and name not in value:
                raise PolicyRequestError(f"{where}.{name}", "required attribute is missing")

    return check
