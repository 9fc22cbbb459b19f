"""``PolicyAuthorizer``: the scheduler's ``authorize`` seam decided by the Cedar policy set.

Each scheduler action maps to one action of the policy schema (:data:`ACTIONS`), each
role to a principal entity, each :class:`~scheduler.authz.Resource` to a resource entity;
the ``PolicyStore``'s ``CompiledEngine`` (Cedar semantics, property-tested against Cedar)
decides, and the decision's deciding policy ids and ``@reason`` texts become the
:class:`~scheduler.authz.AuthzDecision`.

Invariants (fail closed):
- An unknown action or role, a missing or malformed attribute, a node whose facts cannot be
  read, or any engine failure is a deny whose reasons say why; never an allow.
- The set in force is read once per decision, so a policy swap never mixes two sets.
- ``install(service)`` puts the set last stored by ``PUT /v1/policy`` in force (else the
  default pack) and makes this authorizer the service's.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from policies import (
    CLASSIFICATIONS,
    Entity,
    PolicyError,
    PolicySet,
    PolicyStore,
    admin,
    alert,
    load_default_policy_set,
    operator,
    policy_set_resource,
    regulator,
    request,
    security_analyst,
    service,
    task,
    tenant,
    uid,
)
from scheduler.authz import Authorizer, AuthzDecision, Principal, Resource
from scheduler.policy_facts import absent_node_entity

if TYPE_CHECKING:
    from scheduler.policy_wiring import PolicySync
    from scheduler.service import Service

log = logging.getLogger(__name__)

ACTIONS: dict[str, str] = {
    "task.submit": "submit_task",
    "task.read": "read_task",
    "task.list": "list_tasks",
    "task.cancel": "cancel_task",
    "task.claim": "claim_task",
    "task.report": "report_task",
    "node.register": "enroll_node",
    "node.heartbeat": "heartbeat",
    "node.read": "read_node",
    "node.list": "list_nodes",
    "node.cordon": "cordon_node",
    "tenant.manage": "manage_tenant",
    "policy.read": "read_policy",
    "policy.check": "check_policy",
    "policy.change": "change_policy",
    "node.release": "release_node",
    "node.revoke": "revoke_node",
    "identity.operator.manage": "manage_operator",
    "identity.join_token.create": "create_join_token",
    "identity.ca.rotate": "rotate_ca",
    "identity.ca.revoke": "revoke_ca",
    "identity.svid.renew": "renew_svid",
    "alert.ingest": "ingest_alerts",
    "alert.read": "read_alerts",
    "alert.triage": "triage_alert",
    "alert.suppress": "suppress_alert",
    "node.attest": "attest_node",
    "node.attest.reset": "reset_attestation_key",
    "refvalues.manage": "manage_refvalues",
    "refvalues.read": "read_refvalues",
    "quarantine.read": "read_quarantines",
    "quarantine.manage": "manage_quarantine",
    "telemetry.ingest": "ingest_telemetry",
}
"""Scheduler action -> action of the default policy schema."""

CLEARANCE_CLAIM = "cntrust_clearance"
"""Token claim listing the task classifications a tenant is cleared for."""
DEFAULT_CLEARANCE = ("public", "internal")
NEW_TASK_ID = "(new)"
"""Uid of a task not yet created (the resource of ``task.submit``)."""

NodeFacts = Callable[[str], Entity | None]
"""Node id -> its entity, or None when no such node is registered."""

_LIST_RESOURCES = frozenset({"task.list", "node.list", "alert.ingest"})
_SERVICE_WIDE = frozenset({"alert", "suppression", "ca", "incident", "quarantine", "refvalues"})
"""Resource kinds that name the scheduler as a whole when no single alert or operator is
meant (alert lists, suppressions, the root CA, incidents, quarantines, reference values)."""
UNRECORDED_SEVERITY = "unrecorded"
"""Severity of an alert resource whose route authorizes before reading the alert (no rule
of the default pack reads it; a pack that does sees this value, never a guess)."""
_POLICY_RESOURCES = frozenset({"policy.read", "policy.check", "policy.change"})


class PolicyAuthorizer:
    """``Authorizer`` over ``store``'s compiled engine; ``node_facts`` describes nodes
    (principals of node agents and resources of node actions)."""

    def __init__(
        self,
        store: PolicyStore,
        node_facts: NodeFacts,
        unmapped: Authorizer | None = None,
    ) -> None:
        self.store = store
        self.node_facts = node_facts
        # an action with no Cedar action is denied ("unknown action"); ``unmapped`` (e.g.
        # the built-in role rules) may decide it instead, and the decision says so. The
        # scheduler installs None: every route is decided by the policy set.
        self.unmapped = unmapped
        # the replica's policy sync (scheduler.policy_wiring.PolicySync), polled per decision
        self.sync: PolicySync | None = None

    def decide(self, principal: Principal, action: str, resource: Resource) -> AuthzDecision:
        """Decide with the set in force. Never raises; failures are denies with a reason."""
        if self.sync is not None:
            self.sync.maybe_refresh()
        cedar_action = ACTIONS.get(action)
        if cedar_action is None:
            if self.unmapped is None:
                return AuthzDecision(False, (f"unknown action {action}",))
            builtin = self.unmapped.decide(principal, action, resource)
            note = f"{action} has no Cedar action yet: decided by the built-in role rules"
            return AuthzDecision(builtin.allowed, (*builtin.reasons, note), builtin.policy_ids)
        engine = self.store.compiled_engine
        # node facts read for this decision: a node acting on itself (every claim, report
        # and heartbeat) is read once, so principal and resource are one snapshot
        nodes: dict[str, Entity] = {}
        try:
            who = self._principal(principal, nodes)
            if who is None:
                return AuthzDecision(False, (f"unknown role {principal.role}",))
            what = self._resource(action, resource, nodes)
            decision = engine.decide(request(who, cedar_action, what))
        except (PolicyError, KeyError, TypeError, ValueError) as exc:
            return AuthzDecision(False, (f"request refused: {exc}",))
        reasons = decision.reasons or ("denied",)
        return AuthzDecision(decision.allowed, reasons, decision.policy_ids)

    # -- entities -------------------------------------------------------------------

    def _principal(self, principal: Principal, nodes: dict[str, Entity]) -> Entity | None:
        role, name = principal.role, principal.name
        if role == "tenant":
            return tenant(name, allowed_classifications=_clearance(principal.claims))
        if role == "admin":
            return admin(name)
        if role == "operator":
            return operator(name)
        if role == "analyst":
            return security_analyst(name)
        if role == "regulator":
            return regulator(name)
        if role == "sensor":
            return Entity(uid("Sensor", name))
        if role == "node":
            return self._node(name, nodes)
        if role == "node-register":
            return Entity(uid("Enrollment", name), {"node": uid("Node", name)})
        return None

    def _resource(self, action: str, resource: Resource, nodes: dict[str, Entity]) -> Entity:
        if action in _LIST_RESOURCES:
            return service()
        if action in _POLICY_RESOURCES:
            return policy_set_resource(resource.id or "active")
        kind = resource.kind
        if kind == "alert" and resource.id is not None and action != "alert.suppress":
            severity = resource.attributes.get("severity", UNRECORDED_SEVERITY)
            return alert(resource.id, severity=str(severity))
        if kind in _SERVICE_WIDE:
            return service()
        if kind == "operator":
            if resource.id is None:
                raise ValueError("an operator resource needs an id")
            return operator(resource.id)
        if kind == "task":
            return _task(resource)
        if kind == "node":
            if resource.id is None:
                raise ValueError("a node resource needs an id")
            return self._node(resource.id, nodes)
        if kind == "tenant":
            if resource.id is None:
                raise ValueError("a tenant resource needs an id")
            return tenant(resource.id)
        raise ValueError(f"resource kind {kind!r} has no policy entity")

    def _node(self, node_id: str, nodes: dict[str, Entity]) -> Entity:
        """The node's entity, read once per decision (``nodes``)."""
        entity = nodes.get(node_id)
        if entity is None:
            entity = self.node_facts(node_id)
            if entity is None:
                entity = absent_node_entity(node_id)
            nodes[node_id] = entity
        return entity


def _clearance(claims: Mapping[str, Any]) -> Iterable[str]:
    cleared = claims.get(CLEARANCE_CLAIM)
    if cleared is None:
        return DEFAULT_CLEARANCE
    if not isinstance(cleared, list) or not all(c in CLASSIFICATIONS for c in cleared):
        raise ValueError(f"claim {CLEARANCE_CLAIM} must list classifications")
    return cleared


def _task(resource: Resource) -> Entity:
    attrs = resource.attributes
    for name in ("tenant", "classification"):
        if not isinstance(attrs.get(name), str):
            raise ValueError(f"task attribute {name!r} is missing")
    classification = str(getattr(attrs["classification"], "value", attrs["classification"]))
    kind = attrs.get("accelerator_kind")
    return task(
        resource.id or NEW_TASK_ID,
        tenant_id=attrs["tenant"],
        classification=classification,
        data_region=attrs.get("region"),
        required_accelerators=(kind,) if isinstance(kind, str) and kind else (),
        assigned_node=attrs.get("node_id"),
    )


def database_node_facts(service: Service) -> NodeFacts:
    """Node facts for a node's own requests: the facts placement uses
    (:class:`scheduler.policy_node_facts.SchedulerNodeFacts`: attestation from the node's
    current result, trust from the trust layer, revocation from the identity layer), never
    the labels the node registered with (they are not even read).

    The node's row is read on every request (one primary-key lookup), so a new attestation
    result, a quarantine or a revocation decides the node's very next request. The lookup
    is a Core select of the columns a ``NodeView`` needs on a pooled connection: an ORM
    session and its identity map cost five times as much per request."""
    from scheduler.models import Node
    from scheduler.policy_node_facts import SchedulerNodeFacts
    from scheduler.store import node_view

    settings = service.settings
    scheduler_facts = SchedulerNodeFacts(
        service,
        require_attestation=settings.layer_on("attestation") and settings.attestation_gate,
    )
    columns = Node.__table__.c  # type: ignore[attr-defined]
    by_id = sa.select(*(columns[name] for name in _VIEW_COLUMNS)).where(
        columns.id == sa.bindparam("node_id")
    )

    def facts(node_id: str) -> Entity | None:
        if len(node_id) > 64:
            return None
        with service.engine.connect() as connection:
            row = connection.execute(by_id, {"node_id": node_id}).first()
        return None if row is None else scheduler_facts(node_view(row, labels=False))

    return facts


_VIEW_COLUMNS = (
    "id", "region", "operator", "cpu_cores", "memory_mb", "accelerators", "cpu_used",
    "memory_used_mb", "gpu_used", "active_tasks", "attestation_status", "attested_at",
    "attestation_expires_at",
)  # fmt: skip
"""The ``Node`` columns of a ``NodeView``; not ``labels`` (what the node says of itself)."""


def install(service: Service, store: PolicyStore | None = None) -> PolicyAuthorizer:
    """Make a ``PolicyAuthorizer`` the service's authorizer and return it.

    The set in force is ``store``'s when given; else the set last stored by a policy
    change (:mod:`scheduler.tables.policy`), else the default pack. Raises PolicyLoadError
    only if the shipped default pack is invalid (a packaging defect).
    """
    from scheduler.policy_changes import latest_policy_set

    if store is None:
        store = PolicyStore(latest_policy_set(service) or default_policy_set())
    from scheduler.policy_wiring import PolicySync

    authorizer = PolicyAuthorizer(store, database_node_facts(service))
    authorizer.sync = PolicySync(service, store)
    service.authorizer = authorizer
    return authorizer


@functools.cache
def default_policy_set() -> PolicySet:
    """The shipped default pack, loaded and validated once per process (a ``PolicySet`` is
    immutable). Raises PolicyLoadError if the shipped pack is invalid."""
    return load_default_policy_set()
