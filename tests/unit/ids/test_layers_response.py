"""Response decisions for incidents."""

from __future__ import annotations

import dataclasses

import pytest

from ids.layers import Incident, LayersConfigError, ResponsePolicy, decide_response
from ids.layers.correlator import DDOS, LATERAL_MOVEMENT, NODE_INTEGRITY


def incident(
    kind: str = NODE_INTEGRITY, severity: int = 1, nodes: tuple[str, ...] = ("node-01",)
) -> Incident:
    return Incident(
        incident_id="inc-1",
        kind=kind,
        severity=severity,
        first_seen=0.0,
        last_seen=1.0,
        group_key="node-01",
        alert_count=1,
        alert_keys=("k",),
        node_ids=nodes,
        sources=("10.0.0.11",),
        signature_ids=(1_991_001,),
        reasons=("r",),
    )


def test_high_severity_node_incident_quarantines() -> None:
    decision = decide_response(incident())
    assert decision.action == "quarantine" and decision.quarantine and not decision.revoke
    assert decision.node_ids == ("node-01",)
    assert any("running tasks rescheduled" in r for r in decision.reasons)


def test_revocation_only_when_configured() -> None:
    lateral = incident(LATERAL_MOVEMENT, nodes=("node-01", "node-02"))
    off = decide_response(lateral)
    assert off.action == "quarantine"
    assert any("revoke_enabled is false" in r for r in off.reasons)
    on = decide_response(lateral, ResponsePolicy(revoke_enabled=True))
    assert on.action == "quarantine_and_revoke" and on.revoke
    assert on.node_ids == ("node-01", "node-02")


def test_lower_severity_or_victim_kinds_do_nothing_with_reasons() -> None:
    low = decide_response(incident(severity=2))
    assert low.action == "none" and low.node_ids == ()
    assert any("below the quarantine threshold" in r for r in low.reasons)
    ddos = decide_response(incident(DDOS))
    assert ddos.action == "none"
    assert any("victims" in r for r in ddos.reasons)
    relaxed = decide_response(incident(severity=2), ResponsePolicy(quarantine_severity_at_most=2))
    assert relaxed.action == "quarantine"


def test_protected_nodes_are_left_alone() -> None:
    pol = ResponsePolicy(protected_nodes=frozenset({"node-01"}))
    only = decide_response(incident(), pol)
    assert only.action == "none" and any("protected" in r for r in only.reasons)
    both = decide_response(incident(nodes=("node-01", "node-02")), pol)
    assert both.action == "quarantine" and both.node_ids == ("node-02",)


def test_decision_is_frozen_and_policy_validated() -> None:
    decision = decide_response(incident())
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.action = "none"  # type: ignore[misc]
    with pytest.raises(LayersConfigError):
        ResponsePolicy(quarantine_severity_at_most=0)
