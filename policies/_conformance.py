"""Check entities against the schema in Python, as Cedar does before it evaluates.

The compiled placement filter must refuse exactly what Cedar refuses: an entity whose type
is undeclared, that lacks a required attribute, carries an undeclared one, holds a value of
the wrong type, or names a parent of a type it may not belong to. ``EntityChecker.check``
raises ``PolicyRequestError`` naming the entity and attribute, else returns whether every
entity reference inside the attributes is already namespace-qualified (so callers copy and
qualify only when needed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from policies._model import LONG_MAX, LONG_MIN, Entity, EntityUid
from policies.errors import PolicyRequestError

_Check = Callable[[Any], bool]
"""Returns True when the value holds no unqualified entity reference; raises _Mismatch."""


class UnsupportedSchemaError(Exception):
    """The schema uses a type this checker does not model (the caller falls back to Cedar)."""


class _Mismatch(Exception):
    """A value does not have its declared type (message says what was expected)."""


class _Shape:
    __slots__ = ("checks", "declared", "parents", "required")

    def __init__(
        self, checks: dict[str, _Check], required: frozenset[str], parents: frozenset[str]
    ) -> None:
        self.checks = checks
        self.declared = frozenset(checks)
        self.required = required
        self.parents = parents


class EntityChecker:
    """Per-entity-type conformance checks built once from a JSON schema namespace."""

    def __init__(self, namespace: str, namespace_schema: Mapping[str, Any]) -> None:
        self._ns = namespace
        self._common = namespace_schema.get("commonTypes", {}) or {}
        self._types: dict[str, _Shape] = {}
        for name, spec in (namespace_schema.get("entityTypes", {}) or {}).items():
            shape = spec.get("shape") or {"type": "Record", "attributes": {}}
            if shape.get("type") != "Record" or spec.get("tags") or spec.get("enum"):
                raise UnsupportedSchemaError(f"entity type {name} shape")
            attributes = shape.get("attributes") or {}
            checks = {attr: self._compile(a) for attr, a in attributes.items()}
            required = frozenset(a for a, s in attributes.items() if s.get("required", True))
            parents = frozenset(self.qualify(t) for t in spec.get("memberOfTypes", []) or [])
            self._types[self.qualify(name)] = _Shape(checks, required, parents)

    def qualify(self, name: str) -> str:
        return name if "::" in name else f"{self._ns}::{name}"

    def check(self, entity: Entity) -> bool:
        """Raise PolicyRequestError unless ``entity`` conforms to the schema.

        Returns True when no entity reference in its attributes lacks a namespace.
        """
        etype = self.qualify(entity.uid.type)
        shape = self._types.get(etype)
        if shape is None:
            raise PolicyRequestError(
                str(entity.uid), f"entity type {etype} is not declared in the schema"
            )
        attrs = entity.attrs
        keys = attrs.keys()
        if not shape.required <= keys or not keys <= shape.declared:
            missing = sorted(shape.required - keys)
            if missing:
                raise PolicyRequestError(
                    f"{entity.uid}.{missing[0]}", "required attribute is missing"
                )
            extra = sorted(keys - shape.declared)
            raise PolicyRequestError(
                f"{entity.uid}.{extra[0]}", "attribute not declared in the schema"
            )
        clean = True
        checks = shape.checks
        for name, value in attrs.items():
            try:
                if not checks[name](value):
                    clean = False
            except _Mismatch as exc:
                raise PolicyRequestError(f"{entity.uid}.{name}", str(exc)) from None
        for parent in entity.parents:
            if self.qualify(parent.type) not in shape.parents:
                raise PolicyRequestError(str(entity.uid), f"may not be a member of {parent.type}")
        return clean

    def record_checker(self, spec: Mapping[str, Any], where: str) -> Callable[[Any], bool]:
        """A check for a value of type ``spec`` (e.g. an action's context record) that raises
        PolicyRequestError naming ``where``; raises UnsupportedSchemaError for unmodelled types.
        """
        check = self._compile(spec)

        def checked(value: Any) -> bool:
            try:
                return check(value)
            except _Mismatch as exc:
                raise PolicyRequestError(where, str(exc)) from None

        return checked

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
            attributes = spec.get("attributes") or {}
            fields = {k: self._compile(v) for k, v in attributes.items()}
            required = frozenset(k for k, v in attributes.items() if v.get("required", True))
            return _record_check(fields, required)
        if kind in self._common:
            return self._compile(self._common[kind])
        raise UnsupportedSchemaError(f"attribute type {kind}")

    def _entity_check(self, qualified: str) -> _Check:
        def check(value: Any) -> bool:
            if not isinstance(value, EntityUid) or self.qualify(value.type) != qualified:
                raise _Mismatch(f"expected an entity of type {qualified}")
            return "::" in value.type

        return check


def _is_string(value: Any) -> bool:
    if type(value) is not str:
        raise _Mismatch(f"expected a String, got {type(value).__name__}")
    return True


def _is_long(value: Any) -> bool:
    if type(value) is not int or not LONG_MIN <= value <= LONG_MAX:
        raise _Mismatch(f"expected a Long, got {value!r}")
    return True


def _is_bool(value: Any) -> bool:
    if type(value) is not bool:
        raise _Mismatch(f"expected a Boolean, got {value!r}")
    return True


def _set_check(element: _Check) -> _Check:
    strings = element is _is_string

    def check(value: Any) -> bool:
        if not isinstance(value, frozenset | set | tuple | list):
            raise _Mismatch(f"expected a Set, got {type(value).__name__}")
        if strings:
            if all(type(v) is str for v in value):
                return True
            raise _Mismatch("expected a Set of String")
        clean = True
        for item in value:
            if not element(item):
                clean = False
        return clean

    return check


def _record_check(fields: dict[str, _Check], required: frozenset[str]) -> _Check:
    def check(value: Any) -> bool:
        if not isinstance(value, Mapping):
            raise _Mismatch(f"expected a Record, got {type(value).__name__}")
        keys = value.keys()
        if not required <= keys or not keys <= fields.keys():
            raise _Mismatch(f"record attributes {sorted(keys)} do not match the schema")
        clean = True
        for name, item in value.items():
            if not fields[name](item):
                clean = False
        return clean

    return check
