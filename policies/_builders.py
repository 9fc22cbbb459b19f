"""Builders that turn the scheduler's facts into entities and requests of the default schema.

Invariants:
- Every builder returns an ``Entity`` whose attributes match the default schema's types;
  bad values raise ``PolicyRequestError`` naming the field.
- Trust and uncertainty arrive as floats in [0, 1] and are stored per mille, rounded the
  cautious way: trust down, uncertainty up (Cedar has no floats).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from policies._model import NAMESPACE, Entity, EntityUid, Request
from policies.errors import PolicyRequestError

CLASSIFICATIONS = ("public", "internal", "secret")
ATTESTATION_STATUSES = ("affirming", "warning", "contraindicated", "none", "unappraised")
"""EAR trust tiers (draft-ietf-rats-ear), plus ``none`` for a node with no (valid)
attestation result and ``unappraised`` for a node of a scheduler that appraises no
attestation at all (no verifier wired): the default pack then places public and internal
work on it and never secret work."""


def uid(entity_type: str, entity_id: str) -> EntityUid:
    """``uid("Node", "n1")`` -> ``Cntrust::Node::"n1"``."""
    if not isinstance(entity_id, str) or not entity_id:
        raise PolicyRequestError(f"{entity_type}.id", "expected a non-empty string")
    return EntityUid(f"{NAMESPACE}::{entity_type}", entity_id)


def permille_floor(value: float, field: str = "value") -> int:
    """``0.8437`` -> ``843``. Raises PolicyRequestError outside [0, 1] or for NaN."""
    return math.floor(round(_unit(value, field) * 1000, 6))


def permille_ceil(value: float, field: str = "value") -> int:
    """``0.2001`` -> ``201``. Raises PolicyRequestError outside [0, 1] or for NaN."""
    return math.ceil(round(_unit(value, field) * 1000, 6))


def _unit(value: float, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise PolicyRequestError(field, f"expected a number in [0, 1], got {value!r}")
    return float(value)


def _strings(values: Iterable[str], field: str) -> frozenset[str]:
    if isinstance(values, str):
        raise PolicyRequestError(field, "expected a collection of strings, got one string")
    items = frozenset(values)
    if not all(isinstance(v, str) and v for v in items):
        raise PolicyRequestError(field, "expected non-empty strings")
    return items


def _choice(value: str, allowed: Sequence[str], field: str) -> str:
    if value not in allowed:
        raise PolicyRequestError(field, f"expected one of {list(allowed)}, got {value!r}")
    return value


def _nonneg(value: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyRequestError(field, f"expected a non-negative integer, got {value!r}")
    return value


def tenant(
    tenant_id: str, *, allowed_classifications: Iterable[str] = ("public", "internal")
) -> Entity:
    """A tenant, cleared for the given task classifications."""
    allowed = _strings(allowed_classifications, "allowed_classifications")
    for c in allowed:
        _choice(c, CLASSIFICATIONS, "allowed_classifications")
    return Entity(uid("Tenant", tenant_id), {"allowed_classifications": allowed})


def operator(operator_id: str) -> Entity:
    """A node operator."""
    return Entity(uid("Operator", operator_id))


def security_analyst(analyst_id: str) -> Entity:
    """A member of the security team."""
    return Entity(uid("SecurityAnalyst", analyst_id))


def regulator(regulator_id: str) -> Entity:
    """A regulator or auditor (reads, never writes)."""
    return Entity(uid("Regulator", regulator_id))


def admin(admin_id: str) -> Entity:
    """A platform admin."""
    return Entity(uid("Admin", admin_id))


def node(
    node_id: str,
    *,
    region: str,
    operator_id: str,
    trust: float,
    uncertainty: float,
    attestation_status: str,
    attestation_age_s: int | None,
    accelerators: Iterable[str] = (),
    revoked: bool = False,
    quarantined: bool = False,
) -> Entity:
    """A node as placement sees it now.

    ``attestation_age_s`` is None when the node has no attestation result (then the
    attribute is absent and every rule needing a fresh attestation forbids). Raises
    PolicyRequestError on a bad value.
    """
    attrs: dict[str, Any] = {
        "region": _text(region, "region"),
        "operator": uid("Operator", operator_id),
        "trust_permille": permille_floor(trust, "trust"),
        "uncertainty_permille": permille_ceil(uncertainty, "uncertainty"),
        "attestation_status": _choice(
            attestation_status, ATTESTATION_STATUSES, "attestation_status"
        ),
        "accelerators": _strings(accelerators, "accelerators"),
        "revoked": _flag(revoked, "revoked"),
        "quarantined": _flag(quarantined, "quarantined"),
    }
    if attestation_age_s is not None:
        attrs["attestation_age_s"] = _nonneg(attestation_age_s, "attestation_age_s")
    return Entity(uid("Node", node_id), attrs)


def task(
    task_id: str,
    *,
    tenant_id: str,
    classification: str,
    data_region: str | None = None,
    required_accelerators: Iterable[str] = (),
    assigned_node: str | None = None,
) -> Entity:
    """A task. ``assigned_node`` is the node it was placed on, once placed.

    Raises PolicyRequestError on a bad value.
    """
    attrs: dict[str, Any] = {
        "tenant": uid("Tenant", tenant_id),
        "classification": _choice(classification, CLASSIFICATIONS, "classification"),
        "required_accelerators": _strings(required_accelerators, "required_accelerators"),
    }
    if data_region is not None:
        attrs["data_region"] = _text(data_region, "data_region")
    if assigned_node is not None:
        attrs["assigned_node"] = uid("Node", assigned_node)
    return Entity(uid("Task", task_id), attrs)


def alert(alert_id: str, *, severity: str, node_id: str | None = None) -> Entity:
    """An IDS alert, about a node when ``node_id`` is given."""
    attrs: dict[str, Any] = {"severity": _text(severity, "severity")}
    if node_id is not None:
        attrs["node"] = uid("Node", node_id)
    return Entity(uid("Alert", alert_id), attrs)


def provenance_log(log_id: str = "provenance") -> Entity:
    """The provenance log (resource of ``read_provenance`` for regulators)."""
    return Entity(uid("Log", log_id))


def policy_set_resource(name: str = "active") -> Entity:
    """The policy set as a resource (``read_policy``, ``change_policy``)."""
    return Entity(uid("PolicySet", name))


def service(name: str = "scheduler") -> Entity:
    """The scheduler service (resource of list actions and of ``read_alerts`` lists)."""
    return Entity(uid("Service", name))


def request(
    principal: Entity,
    action: str,
    resource: Entity,
    *,
    context: Mapping[str, Any] | None = None,
    entities: Iterable[Entity] = (),
) -> Request:
    """A request carrying principal, resource and any further ``entities``.

    An entity in ``entities`` with the principal's or the resource's uid is left out: the
    ``principal`` and ``resource`` given here are what the policies see.
    """
    extra = [e for e in entities if e.uid not in (principal.uid, resource.uid)]
    own = [principal] if principal.uid == resource.uid else [principal, resource]
    return Request(
        principal=principal.uid,
        action=action,
        resource=resource.uid,
        context=dict(context or {}),
        entities=(*own, *extra),
    )


def placement_request(task_entity: Entity, node_entity: Entity) -> Request:
    """``place_task`` request: may ``task_entity`` be placed on ``node_entity``?"""
    return request(task_entity, "place_task", node_entity)


def _text(value: str, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise PolicyRequestError(field, "expected a non-empty string")
    return value


def _flag(value: bool, field: str) -> bool:
    if not isinstance(value, bool):
        raise PolicyRequestError(field, f"expected a bool, got {value!r}")
    return value
