"""Whole-network correlation of alerts and enrollments into incidents."""

from __future__ import annotations

import pytest

from ids.layers import (
    AlertFormatError,
    Correlator,
    CorrelatorConfig,
    EnrollmentEvent,
    LayersConfigError,
    make_alert,
)
from ids.layers.correlator import (
    DDOS,
    DISTRIBUTED_SCAN,
    LATERAL_MOVEMENT,
    MULTI_NODE_PROBE,
    NODE_INTEGRITY,
    SAME_ATTACK_MULTI_NODE,
    SYBIL_ENROLLMENT,
)

T0 = 1_767_225_600.0
NODES = {f"10.0.0.{10 + i}": f"node-{i:02d}" for i in range(1, 9)}


def alert(
    ts: float,
    src: str,
    dst: str,
    sid: int = 2_000_001,
    *,
    dport: int = 80,
    category: str = "Attempted Information Leak",
    severity: int = 2,
    layer: str = "perimeter",
    node_id: str | None = None,
    detection: str | None = None,
    extra: dict | None = None,
) -> dict:
    return make_alert(
        ts=ts,
        src_ip=src,
        dest_ip=dst,
        proto=6,
        src_port=40000,
        dest_port=dport,
        signature_id=sid,
        signature=f"sig {sid}",
        category=category,
        severity=severity,
        layer=layer,
        node_id=node_id,
        detection=detection,
        extra=extra,
    )


def feed(corr: Correlator, alerts: list[dict]) -> list:
    opened = []
    for a in alerts:
        opened.extend(corr.ingest(a))
    return opened


def kinds(incidents: list) -> list[str]:
    return sorted(i.kind for i in incidents)


def test_one_source_probing_many_nodes() -> None:
    corr = Correlator(CorrelatorConfig(node_ips=NODES))
    opened = feed(corr, [alert(T0 + i, "203.0.113.5", f"10.0.0.{11 + i}") for i in range(3)])
    probe = [i for i in opened if i.kind == MULTI_NODE_PROBE]
    assert len(probe) == 1
    inc = probe[0]
    assert inc.node_ids == ("node-01", "node-02", "node-03")
    assert inc.sources == ("203.0.113.5",) and inc.alert_count == 3
    assert inc.first_seen == T0 and inc.last_seen == T0 + 2
    assert "min_nodes_probed=3" in inc.reasons[0]
    assert len(inc.alert_keys) == 3


def test_same_attack_on_three_nodes() -> None:
    corr = Correlator(CorrelatorConfig(node_ips=NODES))
    srcs = ["203.0.113.1", "198.51.100.2", "192.0.2.3"]
    opened = feed(corr, [alert(T0 + i, srcs[i], f"10.0.0.{11 + i}", 9_000_001) for i in range(3)])
    same = [i for i in opened if i.kind == SAME_ATTACK_MULTI_NODE]
    assert len(same) == 1 and same[0].signature_ids == (9_000_001,)
    assert same[0].node_ids == ("node-01", "node-02", "node-03")
    assert MULTI_NODE_PROBE not in kinds(opened)  # three different sources


def test_many_sources_probing_one_service_is_a_distributed_scan() -> None:
    corr = Correlator(CorrelatorConfig(node_ips=NODES))
    opened = feed(
        corr, [alert(T0 + i, f"198.51.100.{i}", "10.0.0.11", dport=22) for i in range(25)]
    )
    scans = [i for i in opened if i.kind == DISTRIBUTED_SCAN]
    assert len(scans) == 1
    assert len(scans[0].sources) == 20  # opened at the threshold
    final = next(i for i in corr.incidents() if i.kind == DISTRIBUTED_SCAN)
    assert len(final.sources) == 25 and final.alert_count == 25


def test_perimeter_distributed_scan_alert_listing_sources_opens_incident() -> None:
    corr = Correlator(CorrelatorConfig(node_ips=NODES))
    sources = [f"198.51.100.{i}" for i in range(24)]
    opened = corr.ingest(
        alert(
            T0,
            sources[0],
            "10.0.0.11",
            1_990_002,
            detection="ids.perimeter.distributed_scan",
            extra={"sources": sources},
        )
    )
    assert kinds(opened) == [DISTRIBUTED_SCAN]


def test_ddos_from_many_sources_across_sensors() -> None:
    corr = Correlator(CorrelatorConfig(node_ips=NODES))
    flood = "Attempted Denial of Service"
    first = alert(
        T0,
        "100.64.0.1",
        "10.0.0.12",
        1_990_003,
        category=flood,
        severity=1,
        extra={"sources": [f"100.64.0.{i}" for i in range(10)], "distinct_sources": 12},
    )
    assert corr.ingest(first) == []
    second = alert(
        T0 + 1,
        "100.65.0.1",
        "10.0.0.12",
        1_990_003,
        category=flood,
        severity=1,
        extra={"sources": [f"100.65.0.{i}" for i in range(10)], "distinct_sources": 15},
    )
    opened = corr.ingest(second)
    assert kinds(opened) == [DDOS]
    assert opened[0].severity == 1 and opened[0].node_ids == ("node-02",)
    assert DISTRIBUTED_SCAN not in kinds(corr.incidents())


def test_ddos_uses_claimed_distinct_sources() -> None:
    corr = Correlator(CorrelatorConfig(node_ips=NODES))
    flood = alert(
        T0,
        "100.64.0.1",
        "10.0.0.12",
        1_990_003,
        category="Attempted Denial of Service",
        extra={"sources": ["100.64.0.1"], "distinct_sources": 1500},
    )
    assert kinds(corr.ingest(flood)) == [DDOS]


def test_lateral_movement_between_nodes_groups_by_source_node() -> None:
    corr = Correlator(CorrelatorConfig(node_ips=NODES))
    opened = feed(
        corr,
        [
            alert(T0, "10.0.0.11", "10.0.0.12", dport=22),
            alert(T0 + 5, "10.0.0.11", "10.0.0.13", dport=445),
        ],
    )
    lateral = [i for i in opened if i.kind == LATERAL_MOVEMENT]
    assert len(lateral) == 1 and lateral[0].severity == 1
    final = next(i for i in corr.incidents() if i.kind == LATERAL_MOVEMENT)
    assert final.node_ids == ("node-01", "node-02", "node-03")
    assert len(final.reasons) == 2 and final.group_key == "node-01"


def test_node_integrity_from_element_alerts() -> None:
    corr = Correlator(CorrelatorConfig(node_ips=NODES))
    drift = alert(
        T0,
        "10.0.0.11",
        "10.0.0.11",
        1_991_001,
        severity=1,
        layer="element",
        node_id="node-01",
        detection="ids.element.measurement_drift",
    )
    opened = corr.ingest(drift)
    assert kinds(opened) == [NODE_INTEGRITY] and opened[0].node_ids == ("node-01",)


def test_node_integrity_escalates_on_distinct_element_detections() -> None:
    corr = Correlator(CorrelatorConfig(node_ips=NODES))

    def el(ts: float, sid: int) -> dict:
        return alert(
            ts, "10.0.0.11", "10.0.0.11", sid, severity=2, layer="element", node_id="node-01"
        )

    assert corr.ingest(el(T0, 1_991_006)) == []
    assert corr.ingest(el(T0 + 1, 1_991_006)) == []
    opened = corr.ingest(el(T0 + 2, 1_991_006))
    assert kinds(opened) == [NODE_INTEGRITY] and opened[0].severity == 2
    escalated = corr.ingest(el(T0 + 3, 1_991_002))
    assert kinds(escalated) == [NODE_INTEGRITY] and escalated[0].severity == 1
    assert escalated[0].incident_id == opened[0].incident_id
    assert "severity raised to high" in escalated[0].reasons[-1]


def test_sybil_burst_by_operator_and_by_network() -> None:
    corr = Correlator(CorrelatorConfig(min_enrollments=5))
    opened = []
    for i in range(5):
        opened += corr.ingest_enrollment(
            EnrollmentEvent(T0 + i * 60, f"n{i}", "op-x", f"192.0.2.{i}")
        )
    assert kinds(opened) == [SYBIL_ENROLLMENT, SYBIL_ENROLLMENT]
    keys = sorted(i.group_key for i in opened)
    assert keys == ["network:192.0.2.0/24", "operator:op-x"]
    assert opened[0].node_ids == ("n0", "n1", "n2", "n3", "n4")
    slow = Correlator(CorrelatorConfig(min_enrollments=5, enrollment_window_s=3600))
    for i in range(10):
        assert (
            slow.ingest_enrollment(EnrollmentEvent(T0 + i * 4000, f"n{i}", "op-y", f"10.{i}.0.1"))
            == []
        )


def test_windows_close_incidents_and_new_window_gets_new_id() -> None:
    corr = Correlator(CorrelatorConfig(node_ips=NODES, window_s=60))
    batch = [alert(T0 + i, "203.0.113.5", f"10.0.0.{11 + i}") for i in range(3)]
    later = [alert(T0 + 1000 + i, "203.0.113.5", f"10.0.0.{11 + i}") for i in range(3)]
    feed(corr, batch + later)
    probes = [i for i in corr.incidents() if i.kind == MULTI_NODE_PROBE]
    assert len(probes) == 2 and probes[0].incident_id != probes[1].incident_id
    assert probes[0].last_seen < probes[1].first_seen


def test_deterministic_ids_and_order() -> None:
    stream = [alert(T0 + i, f"198.51.100.{i}", f"10.0.0.{11 + i % 8}", dport=22) for i in range(40)]
    a, b = (
        Correlator(CorrelatorConfig(node_ips=NODES)),
        Correlator(CorrelatorConfig(node_ips=NODES)),
    )
    feed(a, stream)
    feed(b, stream)
    assert a.incidents() == b.incidents() and a.incidents()


def test_bounded_groups() -> None:
    corr = Correlator(CorrelatorConfig(node_ips=NODES, max_groups=50, max_closed=10))
    feed(
        corr,
        [alert(T0 + i * 0.01, f"100.64.{i // 250}.{i % 250}", "10.0.0.11") for i in range(2000)],
    )
    assert corr.tracked_groups() <= 50 * 7
    assert len(corr.incidents()) <= 10 + 50 * 7


def test_bad_alerts_raise_format_error() -> None:
    corr = Correlator()
    with pytest.raises(AlertFormatError):
        corr.ingest({"timestamp": "2026-01-01T00:00:00.000000+0000", "alert": {}})
    good = alert(T0, "1.2.3.4", "5.6.7.8")
    del good["src_ip"]
    with pytest.raises(AlertFormatError):
        corr.ingest(good)


def test_config_validation() -> None:
    with pytest.raises(LayersConfigError):
        CorrelatorConfig(min_nodes_probed=0)
