"""Plain request, entity and decision types, and their Cedar JSON encoding.

Invariants:
- Every type here is frozen; attribute values are str, int (64-bit), bool, ``EntityUid``,
  sets (``frozenset`` or ``tuple``) and records (``Mapping[str, value]``). Floats and other
  values are refused with ``PolicyRequestError``: Cedar has no floats (use per mille).
- ``to_dict``/``from_dict`` round-trip exactly, so a stored request replays bit for bit.
- A ``Decision`` is a deny unless Cedar allowed and reported no error (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policies.errors import PolicyRequestError

NAMESPACE = "Cntrust"
"""Namespace of the default pack's schema; builders qualify entity types with it."""

MAX_VALUE_DEPTH = 32
"""Deepest nesting of sets and records accepted from outside input."""

LONG_MIN = -(2**63)
LONG_MAX = 2**63 - 1


@dataclass(frozen=True, order=True)
class EntityUid:
    """A Cedar entity uid: ``type`` (e.g. ``Cntrust::Node``; unqualified names get the
    policy set's namespace) and ``id``."""

    type: str
    id: str

    def __str__(self) -> str:
        return f'{self.type}::"{self.id}"'

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id}


@dataclass(frozen=True)
class Entity:
    """An entity: its uid, attributes and parents (Cedar hierarchy)."""

    uid: EntityUid
    attrs: Mapping[str, Any] = field(default_factory=dict)
    parents: tuple[EntityUid, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Cedar JSON entity form. Raises PolicyRequestError on a value Cedar cannot hold."""
        return {
            "uid": self.uid.to_dict(),
            "attrs": {k: encode_value(v, f"{self.uid}.{k}") for k, v in self.attrs.items()},
            "parents": [p.to_dict() for p in self.parents],
        }

    @staticmethod
    def from_dict(data: Any, where: str = "entity") -> Entity:
        """Parse the Cedar JSON entity form. Raises PolicyRequestError when malformed."""
        if not isinstance(data, Mapping):
            raise PolicyRequestError(where, "expected an object with uid, attrs, parents")
        uid = uid_from_dict(data.get("uid"), f"{where}.uid")
        attrs = data.get("attrs", {})
        if not isinstance(attrs, Mapping):
            raise PolicyRequestError(f"{where}.attrs", "expected an object")
        parents = data.get("parents", [])
        if not isinstance(parents, list):
            raise PolicyRequestError(f"{where}.parents", "expected a list")
        return Entity(
            uid=uid,
            attrs={str(k): decode_value(v, f"{where}.attrs.{k}") for k, v in attrs.items()},
            parents=tuple(uid_from_dict(p, f"{where}.parents") for p in parents),
        )


@dataclass(frozen=True)
class Request:
    """An authorization request: may ``principal`` do ``action`` on ``resource``?

    ``action`` is the action's id (``"read_task"``); ``entities`` holds every entity the
    policies may read (principal, resource and the entities they refer to).
    """

    principal: EntityUid
    action: str
    resource: EntityUid
    context: Mapping[str, Any] = field(default_factory=dict)
    entities: tuple[Entity, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored with a decision for replay).

        Raises PolicyRequestError on a value Cedar cannot hold.
        """
        return {
            "principal": self.principal.to_dict(),
            "action": self.action,
            "resource": self.resource.to_dict(),
            "context": {k: encode_value(v, f"context.{k}") for k, v in self.context.items()},
            "entities": [e.to_dict() for e in self.entities],
        }

    @staticmethod
    def from_dict(data: Any) -> Request:
        """Parse ``to_dict``'s form. Raises PolicyRequestError when malformed."""
        if not isinstance(data, Mapping):
            raise PolicyRequestError("request", "expected an object")
        action = data.get("action")
        if isinstance(action, Mapping):  # Cedar's {"type": "...::Action", "id": ...} form
            action = action.get("id")
        if not isinstance(action, str) or not action:
            raise PolicyRequestError("action", "expected a non-empty action id")
        context = data.get("context", {})
        if not isinstance(context, Mapping):
            raise PolicyRequestError("context", "expected an object")
        entities = data.get("entities", [])
        if not isinstance(entities, list):
            raise PolicyRequestError("entities", "expected a list")
        return Request(
            principal=uid_from_dict(data.get("principal"), "principal"),
            action=action,
            resource=uid_from_dict(data.get("resource"), "resource"),
            context={str(k): decode_value(v, f"context.{k}") for k, v in context.items()},
            entities=tuple(Entity.from_dict(e, f"entities[{i}]") for i, e in enumerate(entities)),
        )


@dataclass(frozen=True)
class Decision:
    """The engine's answer, with everything needed to explain and replay it.

    ``policy_ids`` are the deciding policies' ``@id`` annotations (the permits that allowed,
    or the forbids that denied); ``reasons`` their ``@reason`` annotations, or the engine's
    own reason for a default or fail-closed deny; ``errors`` what went wrong, if anything;
    ``policy_set_version`` the content hash of the policy set that decided.
    """

    allowed: bool
    policy_ids: tuple[str, ...]
    reasons: tuple[str, ...]
    errors: tuple[str, ...]
    policy_set_version: str

    @property
    def effect(self) -> str:
        return "allow" if self.allowed else "deny"

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.effect,
            "policy_ids": list(self.policy_ids),
            "reasons": list(self.reasons),
            "errors": list(self.errors),
            "policy_set_version": self.policy_set_version,
        }

    @staticmethod
    def from_dict(data: Any) -> Decision:
        """Parse ``to_dict``'s form. Raises PolicyRequestError when malformed."""
        if not isinstance(data, Mapping) or data.get("decision") not in ("allow", "deny"):
            raise PolicyRequestError("decision", 'expected an object with "decision" allow|deny')
        version = data.get("policy_set_version")
        if not isinstance(version, str):
            raise PolicyRequestError("policy_set_version", "expected a string")
        return Decision(
            allowed=data["decision"] == "allow",
            policy_ids=_str_tuple(data.get("policy_ids", []), "policy_ids"),
            reasons=_str_tuple(data.get("reasons", []), "reasons"),
            errors=_str_tuple(data.get("errors", []), "errors"),
            policy_set_version=version,
        )


def _str_tuple(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyRequestError(where, "expected a list of strings")
    return tuple(value)


def uid_from_dict(data: Any, where: str) -> EntityUid:
    """Parse ``{"type": ..., "id": ...}`` (or Cedar's ``{"__entity": {...}}``).

    Raises PolicyRequestError when malformed.
    """
    if isinstance(data, Mapping) and "__entity" in data:
        data = data["__entity"]
    if not isinstance(data, Mapping):
        raise PolicyRequestError(where, 'expected {"type": ..., "id": ...}')
    etype, eid = data.get("type"), data.get("id")
    if not isinstance(etype, str) or not etype or not isinstance(eid, str):
        raise PolicyRequestError(where, 'expected {"type": <non-empty string>, "id": <string>}')
    return EntityUid(etype, eid)


def encode_value(value: Any, where: str, namespace: str | None = None) -> Any:
    """Python attribute value -> Cedar JSON value; entity types without ``::`` get
    ``namespace`` when one is given. Raises PolicyRequestError."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not LONG_MIN <= value <= LONG_MAX:
            raise PolicyRequestError(where, f"integer {value} outside Cedar's 64-bit Long")
        return value
    if isinstance(value, EntityUid):
        return {"__entity": qualified_uid(value, namespace)}
    if isinstance(value, frozenset | set):
        encoded = [encode_value(v, where, namespace) for v in value]
        return sorted(encoded, key=repr)
    if isinstance(value, list | tuple):
        return [encode_value(v, where, namespace) for v in value]
    if isinstance(value, Mapping):
        return {str(k): encode_value(v, f"{where}.{k}", namespace) for k, v in value.items()}
    raise PolicyRequestError(
        where, f"{type(value).__name__} is not a Cedar value (Cedar has no floats: use per mille)"
    )


def qualified_uid(uid: EntityUid, namespace: str | None) -> dict[str, str]:
    """Cedar JSON uid; a type without ``::`` gets ``namespace`` when one is given."""
    if namespace is None or "::" in uid.type:
        return {"type": uid.type, "id": uid.id}
    return {"type": f"{namespace}::{uid.type}", "id": uid.id}


def decode_value(value: Any, where: str, depth: int = 0) -> Any:
    """Cedar JSON value -> Python attribute value. Raises PolicyRequestError (also for
    nesting deeper than ``MAX_VALUE_DEPTH``)."""
    if depth > MAX_VALUE_DEPTH:
        raise PolicyRequestError(where, f"value nested deeper than {MAX_VALUE_DEPTH}")
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not LONG_MIN <= value <= LONG_MAX:
            raise PolicyRequestError(where, f"integer {value} outside Cedar's 64-bit Long")
        return value
    if isinstance(value, list):
        items = [decode_value(v, where, depth + 1) for v in value]
        try:
            return frozenset(items)
        except TypeError:
            return tuple(items)
    if isinstance(value, Mapping):
        if "__entity" in value:
            return uid_from_dict(value, where)
        if "__extn" in value:
            raise PolicyRequestError(where, "extension values are not supported")
        return {str(k): decode_value(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
    raise PolicyRequestError(where, f"{type(value).__name__} is not a Cedar value")


def qualify(uid: EntityUid, namespace: str) -> EntityUid:
    """``Node::"n"`` -> ``Cntrust::Node::"n"``; qualified uids are returned unchanged."""
    return uid if "::" in uid.type else EntityUid(f"{namespace}::{uid.type}", uid.id)


def qualify_value(value: Any, namespace: str) -> Any:
    """Qualify every entity uid inside an attribute value (sets and records included)."""
    if isinstance(value, EntityUid):
        return qualify(value, namespace)
    if isinstance(value, frozenset | set):
        return frozenset(qualify_value(v, namespace) for v in value)
    if isinstance(value, tuple | list):
        return tuple(qualify_value(v, namespace) for v in value)
    if isinstance(value, Mapping):
        return {k: qualify_value(v, namespace) for k, v in value.items()}
    return value
