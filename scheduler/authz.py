"""The one authorization seam: ``authorize(principal, action, resource)``.

Every API route calls :meth:`Authorizer.authorize` before it reads or writes.
The built-in rules (tenants see and act on their own tasks only, nodes only on
tasks assigned to them, admins do everything) are the fail-closed baseline;
the Cedar engine plugs in behind the same seam. Anything not explicitly
allowed is denied, with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

ROLES = ("admin", "tenant", "node", "operator", "analyst", "regulator")


@dataclass(frozen=True)
class Principal:
    role: str
    name: str
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def label(self) -> str:
        return f"{self.role}:{self.name}"


@dataclass(frozen=True)
class Resource:
    kind: str  # "task", "node", "tenant", "log", ...
    id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class AuthzDecision:
    allowed: bool
    reasons: tuple[str, ...]
    policy_ids: tuple[str, ...] = ()


class AuthorizationDenied(Exception):
    def __init__(self, decision: AuthzDecision) -> None:
        super().__init__("; ".join(decision.reasons) or "denied")
        self.decision = decision


class Authorizer(Protocol):
    def decide(self, principal: Principal, action: str, resource: Resource) -> AuthzDecision: ...


# action -> roles allowed before any ownership check
_ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "task.submit": frozenset({"tenant", "admin"}),
    "task.read": frozenset({"tenant", "admin", "node", "regulator", "analyst"}),
    "task.list": frozenset({"tenant", "admin", "regulator", "analyst"}),
    "task.cancel": frozenset({"tenant", "admin"}),
    "task.claim": frozenset({"node"}),
    "task.report": frozenset({"node"}),
    "node.register": frozenset({"node", "node-register"}),
    "node.heartbeat": frozenset({"node"}),
    "node.read": frozenset({"admin", "operator", "analyst", "regulator", "node"}),
    "node.list": frozenset({"admin", "operator", "analyst", "regulator"}),
    "node.cordon": frozenset({"admin"}),
    "node.release": frozenset({"admin"}),
    "tenant.manage": frozenset({"admin"}),
    "policy.read": frozenset({"admin", "analyst", "regulator"}),
    "policy.check": frozenset({"admin", "analyst"}),
    "policy.change": frozenset({"admin"}),
    "identity.operator.manage": frozenset({"admin"}),
    "identity.join_token.create": frozenset({"admin"}),
    "node.revoke": frozenset({"admin"}),
    "identity.svid.renew": frozenset({"node"}),
    "node.attest": frozenset({"node"}),
    "node.attest.reset": frozenset({"admin"}),
    "refvalues.manage": frozenset({"admin"}),
    "refvalues.read": frozenset({"admin", "operator", "analyst", "regulator"}),
    "alert.ingest": frozenset({"sensor", "admin"}),
    "alert.read": frozenset({"analyst", "admin", "regulator"}),
    "alert.triage": frozenset({"analyst", "admin"}),
    "alert.suppress": frozenset({"analyst", "admin"}),
    "quarantine.read": frozenset({"analyst", "admin", "regulator", "operator"}),
    "quarantine.manage": frozenset({"analyst", "admin"}),
    "telemetry.ingest": frozenset({"node"}),
}


class BuiltinAuthorizer:
    """Role and ownership rules; deny by default."""

    def decide(self, principal: Principal, action: str, resource: Resource) -> AuthzDecision:
        allowed_roles = _ROLE_ACTIONS.get(action)
        if allowed_roles is None:
            return AuthzDecision(False, (f"unknown action {action}",), ("builtin.default_deny",))
        if principal.role not in allowed_roles:
            return AuthzDecision(
                False, (f"role {principal.role} may not {action}",), ("builtin.roles",)
            )
        attrs = resource.attributes
        targeted = resource.id is not None
        if principal.role == "tenant" and resource.kind == "task" and targeted:  # noqa: SIM102
            if attrs.get("tenant") != principal.name:
                return AuthzDecision(
                    False, ("tenants act on their own tasks only",), ("builtin.tenant_own_tasks",)
                )
        if principal.role == "node" and resource.kind == "task" and targeted:  # noqa: SIM102
            if attrs.get("node_id") != principal.name:
                return AuthzDecision(
                    False, ("task is not assigned to this node",), ("builtin.node_own_tasks",)
                )
        if principal.role == "node" and resource.kind == "node" and targeted:  # noqa: SIM102
            if resource.id != principal.name:
                return AuthzDecision(
                    False, ("nodes act on themselves only",), ("builtin.node_self",)
                )
        return AuthzDecision(True, (f"role {principal.role} may {action}",), ("builtin.roles",))


def authorize(
    authorizer: Authorizer, principal: Principal, action: str, resource: Resource
) -> AuthzDecision:
    """Decide and raise :class:`AuthorizationDenied` unless allowed."""
    try:
        decision = authorizer.decide(principal, action, resource)
    except Exception as exc:  # fail closed: an engine error is a deny with a reason
        decision = AuthzDecision(False, (f"authorization engine error: {type(exc).__name__}",))
    if not decision.allowed:
        raise AuthorizationDenied(decision)
    return decision
