from __future__ import annotations

import math

import pytest

from trust import (
    Evidence,
    EvidenceError,
    EvidenceKind,
    from_attestation_result,
    from_capacity_check,
    from_ids_alert,
    from_peer_feedback,
    from_task_outcome,
    from_tenant_feedback,
    identity_revoked,
)

T = 1_800_000_000.0


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("affirming", EvidenceKind.ATTESTATION_AFFIRMING),
        ("warning", EvidenceKind.ATTESTATION_WARNING),
        ("contraindicated", EvidenceKind.ATTESTATION_CONTRAINDICATED),
        ("missing", EvidenceKind.ATTESTATION_MISSING),
    ],
)
def test_attestation_statuses(status: str, kind: EvidenceKind) -> None:
    ev = from_attestation_result(
        evidence_id="a1", node_id="n", status=status, observed_at=T, verifier="v"
    )
    assert ev.kind is kind and ev.source == "v"


def test_unknown_attestation_status_names_field() -> None:
    with pytest.raises(EvidenceError) as err:
        from_attestation_result(
            evidence_id="a", node_id="n", status="ok", observed_at=T, verifier="v"
        )
    assert err.value.field == "status"


def test_task_outcomes() -> None:
    def kind(outcome: str, verified: bool) -> EvidenceKind:
        return from_task_outcome(
            evidence_id="t",
            node_id="n",
            outcome=outcome,
            verified=verified,
            observed_at=T,
            scheduler="s",
        ).kind

    assert kind("succeeded", False) is EvidenceKind.TASK_SUCCEEDED
    assert kind("succeeded", True) is EvidenceKind.TASK_VERIFIED
    assert kind("failed", False) is EvidenceKind.TASK_FAILED
    assert kind("wrong_result", True) is EvidenceKind.TASK_WRONG_RESULT
    assert kind("sla_miss", False) is EvidenceKind.TASK_SLA_MISS
    assert kind("timeout", False) is EvidenceKind.TASK_TIMEOUT
    with pytest.raises(EvidenceError) as err:
        kind("wrong_result", False)
    assert err.value.field == "outcome"
    with pytest.raises(EvidenceError):
        kind("exploded", False)


def test_ids_alert_severity_checked() -> None:
    ev = from_ids_alert(evidence_id="i", node_id="n", severity=1, observed_at=T, sensor="ids")
    assert ev.kind is EvidenceKind.IDS_ALERT
    inc = from_ids_alert(
        evidence_id="i2", node_id="n", severity=2, observed_at=T, sensor="ids", incident=True
    )
    assert inc.kind is EvidenceKind.INCIDENT
    with pytest.raises(EvidenceError) as err:
        from_ids_alert(evidence_id="i", node_id="n", severity=4, observed_at=T, sensor="ids")
    assert err.value.field == "severity"


def test_feedback_checks() -> None:
    fb = from_tenant_feedback(
        evidence_id="f", node_id="n", tenant_id="t1", rating=-0.5, observed_at=T
    )
    assert fb.rater_id == "t1" and fb.source == "t1"
    with pytest.raises(EvidenceError) as err:
        from_peer_feedback(
            evidence_id="f", node_id="n", rater_node_id="m", rating=2.0, observed_at=T
        )
    assert err.value.field == "rating"
    with pytest.raises(EvidenceError) as err:
        from_peer_feedback(
            evidence_id="f", node_id="n", rater_node_id="n", rating=1.0, observed_at=T
        )
    assert err.value.field == "rater_id"


def test_capacity_and_revocation() -> None:
    ok = from_capacity_check(
        evidence_id="c", node_id="n", claim_held=True, observed_at=T, scheduler="s"
    )
    bad = from_capacity_check(
        evidence_id="c2", node_id="n", claim_held=False, observed_at=T, scheduler="s"
    )
    assert ok.kind is EvidenceKind.CAPACITY_CONFIRMED and bad.kind is EvidenceKind.CAPACITY_REFUTED
    rev = identity_revoked(evidence_id="r", node_id="n", observed_at=T, authority="ca")
    assert rev.kind is EvidenceKind.IDENTITY_REVOKED


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"evidence_id": ""}, "evidence_id"),
        ({"node_id": "x" * 201}, "node_id"),
        ({"source": ""}, "source"),
        ({"observed_at": math.nan}, "observed_at"),
        ({"observed_at": math.inf}, "observed_at"),
        ({"detail": "d" * 1001}, "detail"),
        ({"severity": 2}, "severity"),
    ],
)
def test_malformed_evidence_names_field(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {
        "evidence_id": "e",
        "kind": EvidenceKind.TASK_FAILED,
        "node_id": "n",
        "observed_at": T,
        "source": "s",
    }
    base.update(kwargs)
    with pytest.raises(EvidenceError) as err:
        Evidence(**base)  # type: ignore[arg-type]
    assert err.value.field == field


def test_evidence_is_frozen() -> None:
    ev = Evidence("e", EvidenceKind.TASK_FAILED, "n", T, "s")
    with pytest.raises(AttributeError):
        ev.node_id = "m"  # type: ignore[misc]
