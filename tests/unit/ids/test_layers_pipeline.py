"""The three layers wired together as the scheduler would: scenario pcaps through the
perimeter sensor, node telemetry through the element layer, everything into the
correlator, then a response decision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ids.layers import (
    Correlator,
    CorrelatorConfig,
    PerimeterConfig,
    PerimeterSensor,
    ResponsePolicy,
    TaskUsage,
    TelemetryRecord,
    decide_response,
    detect_element,
    encode_signed_telemetry,
    parse_signed_telemetry,
    sign_telemetry,
    verify_telemetry,
)
from ids.layers.correlator import DISTRIBUTED_SCAN, LATERAL_MOVEMENT, NODE_INTEGRITY
from ids.scenarios import generate_scenarios


@pytest.fixture(scope="module")
def scenario_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("pipeline")
    key = generate_scenarios(out, seed=21, only=["distributed_scan", "lateral_movement"])
    return out, key


def test_perimeter_alerts_become_incidents_and_responses(
    scenario_dir: tuple[Path, dict[str, Any]],
) -> None:
    out, key = scenario_dir
    inventory = key["inventory"]
    corr = Correlator(CorrelatorConfig(node_ips=inventory))
    opened = []
    for entry in key["scenarios"]:
        sensor = PerimeterSensor(PerimeterConfig(node_ips=inventory))
        for alert in sensor.observe_pcap(out / entry["pcap"]):
            opened.extend(corr.ingest(alert))
    by_kind = {i.kind: i for i in opened}
    assert by_kind[DISTRIBUTED_SCAN].node_ids == ("node-01",)
    assert len(by_kind[DISTRIBUTED_SCAN].sources) >= 20
    lateral = by_kind[LATERAL_MOVEMENT]
    assert lateral.node_ids == ("node-01", "node-02")
    # Scanned node is a victim: no action. Lateral movement: quarantine both ends.
    assert decide_response(by_kind[DISTRIBUTED_SCAN]).action == "none"
    decision = decide_response(lateral, ResponsePolicy(revoke_enabled=True))
    assert decision.action == "quarantine_and_revoke"
    assert decision.node_ids == ("node-01", "node-02")


def test_abusive_task_telemetry_quarantines_its_node() -> None:
    key = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
    miner = TaskUsage(
        "task-9",
        "running",
        "/scratch/task-9",
        1000,
        1 << 30,
        600_000,
        595_000,
        1 << 28,
        0,
        (777,),
        (),
    )
    corr = Correlator(CorrelatorConfig(node_ips={"10.0.0.13": "node-03"}))
    previous = None
    opened = []
    for seq in range(1, 4):
        record = TelemetryRecord(
            "node-03", "10.0.0.13", seq, 1_767_225_600_000 + seq * 120_000, tasks=(miner,)
        )
        wire = encode_signed_telemetry(sign_telemetry(record, key))
        signed = parse_signed_telemetry(wire)
        verify_telemetry(
            signed,
            key.public_key(),
            expected_node_id="node-03",
            last_seq=previous.seq if previous else None,
        )
        for alert in detect_element(signed.record, previous=previous):
            opened.extend(corr.ingest(alert))
        previous = signed.record
    incident = next(i for i in opened if i.kind == NODE_INTEGRITY)
    assert incident.node_ids == ("node-03",) and incident.alert_count == 3
    assert decide_response(incident).action == "none"  # medium severity by default
    assert decide_response(incident, ResponsePolicy(quarantine_severity_at_most=2)).quarantine
