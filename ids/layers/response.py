"""Response decisions: what the scheduler should do about an incident.

`decide_response(incident, policy)` returns a frozen `ResponseDecision`:

- ``quarantine``: the incident is at least as severe as `quarantine_severity_at_most`
  (EVE scale, 1 high) and of a kind in `quarantine_kinds`; the nodes named by the
  incident get no new tasks and their running tasks are rescheduled (by the scheduler).
- ``quarantine_and_revoke``: as above, and `revoke_enabled` is set and the kind is in
  `revoke_kinds`: the nodes' identities are revoked too.
- ``none``: otherwise (every reason is still listed).

Nodes in `protected_nodes` are never acted on (named in the reasons instead). Every
action is reversible by an analyst; the decision only says what to do and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ids.layers.correlator import (
    DDOS,
    LATERAL_MOVEMENT,
    MULTI_NODE_PROBE,
    NODE_INTEGRITY,
    SAME_ATTACK_MULTI_NODE,
    SYBIL_ENROLLMENT,
    Incident,
)
from ids.layers.errors import LayersConfigError

ACTION_NONE = "none"
ACTION_QUARANTINE = "quarantine"
ACTION_QUARANTINE_AND_REVOKE = "quarantine_and_revoke"


@dataclass(frozen=True)
class ResponsePolicy:
    """When to quarantine and when to revoke; raises `LayersConfigError` when invalid.

    Kinds that describe attacks *on* nodes from outside (DDoS, probes) are not in
    `quarantine_kinds` by default: the victim node is not at fault.
    """

    quarantine_severity_at_most: int = 1
    quarantine_kinds: frozenset[str] = field(
        default_factory=lambda: frozenset(
            {LATERAL_MOVEMENT, NODE_INTEGRITY, SAME_ATTACK_MULTI_NODE, SYBIL_ENROLLMENT}
        )
    )
    revoke_enabled: bool = False
    revoke_kinds: frozenset[str] = field(
        default_factory=lambda: frozenset({LATERAL_MOVEMENT, SYBIL_ENROLLMENT})
    )
    protected_nodes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not 1 <= self.quarantine_severity_at_most <= 4:
            raise LayersConfigError(
                "quarantine_severity_at_most", self.quarantine_severity_at_most, "must be 1..4"
            )


@dataclass(frozen=True)
class ResponseDecision:
    """What to do about one incident, on which nodes, and why."""

    incident_id: str
    action: str
    node_ids: tuple[str, ...]
    reasons: tuple[str, ...]

    @property
    def quarantine(self) -> bool:
        """Whether the nodes are to be quarantined."""
        return self.action in (ACTION_QUARANTINE, ACTION_QUARANTINE_AND_REVOKE)

    @property
    def revoke(self) -> bool:
        """Whether the nodes' identities are to be revoked."""
        return self.action == ACTION_QUARANTINE_AND_REVOKE


def decide_response(incident: Incident, policy: ResponsePolicy | None = None) -> ResponseDecision:
    """Decide the response to `incident` under `policy` (see the module docstring)."""
    pol = policy or ResponsePolicy()
    reasons = [f"incident {incident.incident_id} kind={incident.kind} severity={incident.severity}"]
    nodes = incident.node_ids
    severe = incident.severity <= pol.quarantine_severity_at_most
    if not severe:
        reasons.append(
            f"severity {incident.severity} is below the quarantine threshold "
            f"(quarantine_severity_at_most={pol.quarantine_severity_at_most})"
        )
    if incident.kind not in pol.quarantine_kinds:
        why = (
            " (nodes are victims, not culprits)"
            if incident.kind in (DDOS, MULTI_NODE_PROBE)
            else ""
        )
        reasons.append(f"kind {incident.kind} is not in quarantine_kinds{why}")
    protected = tuple(n for n in nodes if n in pol.protected_nodes)
    if protected:
        reasons.append(f"protected nodes left alone: {', '.join(protected)}")
    targets = tuple(n for n in nodes if n not in pol.protected_nodes)
    if not targets:
        reasons.append("no node to act on")
    if not severe or incident.kind not in pol.quarantine_kinds or not targets:
        return ResponseDecision(incident.incident_id, ACTION_NONE, (), tuple(reasons))
    reasons.append(f"quarantine {', '.join(targets)}: no new tasks, running tasks rescheduled")
    action = ACTION_QUARANTINE
    if pol.revoke_enabled and incident.kind in pol.revoke_kinds:
        action = ACTION_QUARANTINE_AND_REVOKE
        reasons.append(
            f"revoke identities of {', '.join(targets)} (revoke_enabled, kind in revoke_kinds)"
        )
    elif incident.kind in pol.revoke_kinds:
        reasons.append("revocation not configured (revoke_enabled is false)")
    return ResponseDecision(incident.incident_id, action, targets, tuple(reasons))
