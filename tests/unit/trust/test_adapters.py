"""Wire-format adapters: EVE alerts and EAR attestation results."""

from __future__ import annotations

from typing import Any

import pytest

from trust import EvidenceError, EvidenceKind, IntakeReason, TrustEngine, from_ear, from_eve_alert

EVE: dict[str, Any] = {
    "timestamp": "2027-01-15T08:00:00.000000+0000",
    "flow_id": 1234,
    "community_id": "1:abc=",
    "event_type": "alert",
    "src_ip": "10.0.0.5",
    "alert": {"signature_id": 2100498, "severity": 1, "signature": "GPL ATTACK_RESPONSE id check"},
}
EAR: dict[str, Any] = {
    "eat_profile": "tag:github.com,2023:veraison/ear",
    "iat": 1_800_000_000,
    "eat_nonce": "n-42",
    "submods": {"cpu": {"ear.status": "affirming"}, "gpu": {"ear.status": "warning"}},
}


def test_eve_alert() -> None:
    ev = from_eve_alert(
        {**EVE, "timestamp": "2027-01-15T08:00:00+00:00"}, node_id="n1", sensor="ids-1"
    )
    assert ev.kind is EvidenceKind.IDS_ALERT and ev.severity == 1
    assert ev.evidence_id == "eve:1:abc=:2100498:2027-01-15T08:00:00+00:00"
    assert "2100498" in ev.detail and ev.source == "ids-1"


def test_same_alert_twice_is_a_replay() -> None:
    t = 1_800_000_000.0
    eng = TrustEngine(clock=lambda: t + 10)
    eng.register_node("n1", operator="o")
    alert = {**EVE, "timestamp": "2027-01-15T08:00:00Z"}
    assert eng.ingest(from_eve_alert(alert, node_id="n1", sensor="s"), authenticated=True).accepted
    again = eng.ingest(from_eve_alert(alert, node_id="n1", sensor="s"), authenticated=True)
    assert again.reason is IntakeReason.REPLAYED


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event_type": "flow"}, "event_type"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": 5}, "timestamp"),
        ({"alert": "x"}, "alert"),
        ({"alert": {"signature_id": 1, "severity": 7}}, "alert.severity"),
        ({"alert": {"signature_id": "1", "severity": 2}}, "alert.signature_id"),
        ({"pad": "x" * 70_000}, "(root)"),
    ],
)
def test_bad_eve_names_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(EvidenceError) as err:
        from_eve_alert({**EVE, **change}, node_id="n1", sensor="s")
    assert err.value.field == field


def test_ear_worst_status_wins() -> None:
    ev = from_ear(EAR, node_id="n1", verifier="veraison")
    assert ev.kind is EvidenceKind.ATTESTATION_WARNING
    assert ev.evidence_id == "ear:n-42" and ev.observed_at == 1_800_000_000.0
    bad = {
        **EAR,
        "submods": {"cpu": {"ear.status": "contraindicated"}, "gpu": {"ear.status": "none"}},
    }
    assert (
        from_ear(bad, node_id="n1", verifier="v").kind is EvidenceKind.ATTESTATION_CONTRAINDICATED
    )
    none = {**EAR, "submods": {"cpu": {"ear.status": "none"}}}
    assert from_ear(none, node_id="n1", verifier="v").kind is EvidenceKind.ATTESTATION_MISSING


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"iat": "now"}, "iat"),
        ({"submods": {}}, "submods"),
        ({"submods": {"cpu": {"ear.status": "great"}}}, "submods.cpu.ear.status"),
        ({"submods": {"cpu": "affirming"}}, "submods.cpu.ear.status"),
    ],
)
def test_bad_ear_names_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(EvidenceError) as err:
        from_ear({**EAR, **change}, node_id="n1", verifier="v")
    assert err.value.field == field


def test_not_a_mapping() -> None:
    with pytest.raises(EvidenceError):
        from_ear([1, 2], node_id="n1", verifier="v")  # type: ignore[arg-type]
