"""Alert handling: aggregation, suppression, triage, filters, grouping, export."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ids.layers import (
    Aggregator,
    AlertFilter,
    InvalidTriageTransitionError,
    LayersConfigError,
    PerimeterSensor,
    Suppression,
    SuppressionSet,
    TriageRecord,
    TriageState,
    aggregate_alerts,
    aggregation_key,
    filter_alerts,
    group_by_source,
    make_alert,
    read_pcap,
    transition,
    write_eve_lines,
)

T0 = 1_767_225_600.0


def alert(ts: float, src: str, dst: str = "10.0.0.80", sid: int = 2_000_001, **kw: object) -> dict:
    args: dict = dict(
        ts=ts,
        src_ip=src,
        dest_ip=dst,
        proto=6,
        src_port=40000,
        dest_port=443,
        signature_id=sid,
        signature="CNTRUST TCP SYN to web",
        category="Misc activity",
        severity=2,
        layer="perimeter",
        node_id=None,
    )
    args.update(kw)
    return make_alert(**args)


@pytest.fixture(scope="module")
def syn_flood_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ids.scenarios import generate_scenarios

    out = tmp_path_factory.mktemp("flood")
    generate_scenarios(out, seed=3, only=["syn_flood"])
    return out / "syn_flood.pcap"


def test_spoofed_syn_flood_aggregates_over_100x(syn_flood_pcap: Path) -> None:
    # A per-packet rule alert for every SYN to the web service, as a signature engine
    # without thresholds would raise; aggregation by destination folds the spoofed sources.
    with open(syn_flood_pcap, "rb") as f:
        syns = [p for p in read_pcap(f) if p.is_syn and p.dport == 443 and p.dst == "10.0.0.80"]
    matched = [alert(p.ts, p.src, p.dst) for p in syns]
    assert len(matched) >= 1500
    aggregated = aggregate_alerts(matched, track="by_dst")
    assert len(aggregated) * 100 <= len(matched)
    agg = aggregated[0]
    assert agg.count == len(matched)
    assert agg.first_seen == pytest.approx(min(p.ts for p in syns), abs=1e-6)
    assert agg.last_seen == pytest.approx(max(p.ts for p in syns), abs=1e-6)
    assert agg.sources.size > 1000
    eve = agg.to_eve()
    assert eve["cntrust"]["aggregate"]["count"] == len(matched)
    assert "aggregate" not in matched[0]["cntrust"]  # representative copied, not mutated


def test_perimeter_detector_alerts_are_100x_fewer_than_flood_packets(syn_flood_pcap: Path) -> None:
    with open(syn_flood_pcap, "rb") as f:
        packets = list(read_pcap(f))
    syns = sum(1 for p in packets if p.is_syn and p.dport == 443)
    alerts = PerimeterSensor().observe_all(packets)
    flood_alerts = [a for a in alerts if a["cntrust"]["detection"] == "ids.perimeter.syn_flood"]
    assert flood_alerts and len(flood_alerts) * 100 <= syns


def test_flood_from_few_sources_aggregates_by_both() -> None:
    matched = [alert(T0 + i * 0.001, f"203.0.113.{i % 3}") for i in range(3000)]
    aggregated = aggregate_alerts(matched)
    assert len(aggregated) == 3
    assert [a.count for a in aggregated] == [1000, 1000, 1000]
    assert aggregated[0].first_seen == pytest.approx(T0)
    assert aggregated[0].last_seen == pytest.approx(T0 + 2.997)


def test_aggregation_keys_per_track() -> None:
    a = alert(T0, "203.0.113.1", node_id="node-01")
    assert aggregation_key(a) == (2_000_001, "203.0.113.1", "10.0.0.80", 443, "node-01")
    assert aggregation_key(a, "by_src") == (2_000_001, "203.0.113.1", "node-01")
    assert aggregation_key(a, "by_dst") == (2_000_001, "10.0.0.80", 443, "node-01")
    assert aggregation_key(a, "by_rule") == (2_000_001, "node-01")
    with pytest.raises(LayersConfigError):
        aggregation_key(a, "by_moon")


def test_streaming_aggregator_is_bounded() -> None:
    agg = Aggregator(max_keys=10)
    for i in range(100):
        agg.add(alert(T0 + i, f"203.0.113.{i}"))
    assert len(agg.results()) == 10 and agg.evicted_count == 90
    assert agg.alerts_in == 100
    drained = agg.drain_evicted()
    assert len(drained) == 10 and drained[0].key[1] == "203.0.113.0"
    assert agg.drain_evicted() == []


def test_suppression_matches_field_combination_and_expires() -> None:
    sup = Suppression(
        owner="alice",
        reason="pentest window",
        created_at=T0,
        expires_at=T0 + 3600,
        signature_id=2_000_001,
        src_ip="203.0.113.0/24",
        node_id=None,
    )
    sset = SuppressionSet([sup])
    hit = alert(T0 + 10, "203.0.113.7")
    other_src = alert(T0 + 10, "198.51.100.7")
    other_sid = alert(T0 + 10, "203.0.113.7", sid=5)
    assert sset.find(hit, T0 + 10) is sup
    assert sset.find(other_src, T0 + 10) is None
    assert sset.find(other_sid, T0 + 10) is None
    assert sset.find(hit, T0 + 3600) is None  # expired: stops suppressing
    assert sset.find(hit, T0 - 1) is None  # not yet in force
    outcome = sset.apply([hit, other_src], now=T0 + 10)
    assert outcome.kept == (other_src,)
    assert outcome.suppressed == ((hit, sup.suppression_id),)
    assert sset.active(T0 + 4000) == []


def test_suppression_by_node_and_destination() -> None:
    sup = Suppression(
        owner="bob",
        reason="known noisy",
        created_at=T0,
        expires_at=T0 + 60,
        dest_ip="10.0.0.80",
        node_id="node-09",
    )
    assert sup.matches(alert(T0, "1.2.3.4", node_id="node-09"), T0)
    assert not sup.matches(alert(T0, "1.2.3.4", node_id="node-01"), T0)
    assert not sup.matches(alert(T0, "1.2.3.4", dst="10.0.0.81", node_id="node-09"), T0)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(owner="", reason="r", created_at=T0, expires_at=T0 + 1, signature_id=1),
        dict(owner="a", reason=" ", created_at=T0, expires_at=T0 + 1, signature_id=1),
        dict(owner="a", reason="r", created_at=T0, expires_at=T0, signature_id=1),
        dict(owner="a", reason="r", created_at=T0, expires_at=T0 + 1),
        dict(owner="a", reason="r", created_at=T0, expires_at=T0 + 1, src_ip="not-an-ip"),
    ],
)
def test_invalid_suppressions_rejected(kwargs: dict) -> None:
    with pytest.raises(LayersConfigError):
        Suppression(**kwargs)


def test_triage_happy_path_keeps_history() -> None:
    rec = TriageRecord("alert-1")
    rec = transition(rec, "acknowledged", "alice", T0)
    rec = transition(rec, TriageState.ESCALATED, "alice", T0 + 1, "looks real")
    rec = transition(rec, "closed", "bob", T0 + 2, "node reimaged")
    assert rec.state == TriageState.CLOSED and rec.note == "node reimaged"
    assert [(e.from_state, e.to_state, e.actor) for e in rec.history] == [
        ("new", "acknowledged", "alice"),
        ("acknowledged", "escalated", "alice"),
        ("escalated", "closed", "bob"),
    ]
    reopened = transition(rec, "acknowledged", "carol", T0 + 3, "recurred")
    assert reopened.state == TriageState.ACKNOWLEDGED


@pytest.mark.parametrize(
    ("path", "to_state", "note", "why"),
    [
        ([], "new", "", "transition not allowed"),
        (["escalated"], "acknowledged", "", "transition not allowed"),
        ([], "closed", "", "a note is required"),
        (["closed:done"], "acknowledged", "", "a note is required"),
        (["closed:done"], "escalated", "x", "transition not allowed"),
        ([], "bogus", "", "unknown state"),
    ],
)
def test_triage_invalid_transitions(path: list[str], to_state: str, note: str, why: str) -> None:
    rec = TriageRecord("a")
    for step in path:
        state, _, step_note = step.partition(":")
        rec = transition(rec, state, "alice", T0, step_note)
    with pytest.raises(InvalidTriageTransitionError) as err:
        transition(rec, to_state, "alice", T0, note)
    assert err.value.reason == why and err.value.from_state == rec.state


def test_triage_needs_actor() -> None:
    with pytest.raises(InvalidTriageTransitionError):
        transition(TriageRecord("a"), "acknowledged", " ", T0)


def test_filters_by_severity_state_node_layer_time() -> None:
    a1 = alert(T0, "203.0.113.1", severity=1, node_id="node-01") | {"alert_id": "a1"}
    a2 = alert(T0 + 50, "203.0.113.2", severity=3, node_id="node-02", layer="element") | {
        "alert_id": "a2"
    }
    a3 = alert(T0 + 100, "203.0.113.3", severity=2, node_id="node-01") | {"alert_id": "a3"}
    states = {"a3": TriageState.CLOSED}
    ids = lambda f: [a["alert_id"] for a in filter_alerts([a1, a2, a3], f, states)]  # noqa: E731
    assert ids(AlertFilter()) == ["a1", "a2", "a3"]
    assert ids(AlertFilter(severity_at_most=2)) == ["a1", "a3"]
    assert ids(AlertFilter(states=frozenset({TriageState.NEW}))) == ["a1", "a2"]
    assert ids(AlertFilter(node_ids=frozenset({"node-01"}))) == ["a1", "a3"]
    assert ids(AlertFilter(layers=frozenset({"element"}))) == ["a2"]
    assert ids(AlertFilter(since=T0 + 10, until=T0 + 100)) == ["a2"]
    with pytest.raises(LayersConfigError):
        AlertFilter(since=T0, until=T0 - 1)


def test_group_by_source() -> None:
    alerts = [alert(T0, "203.0.113.1", severity=2, node_id="node-01")] * 3 + [
        alert(T0, "198.51.100.1", severity=1, sid=7)
    ]
    groups = group_by_source(alerts)
    assert [(g.src_ip, g.count) for g in groups] == [("203.0.113.1", 3), ("198.51.100.1", 1)]
    assert groups[0].node_ids == ("node-01",) and groups[1].highest_severity == 1


def test_export_eve_lines_round_trip() -> None:
    alerts = [alert(T0 + i, f"203.0.113.{i}") for i in range(5)]
    out = io.StringIO()
    assert write_eve_lines(alerts, out) == 5
    assert [json.loads(line) for line in out.getvalue().splitlines()] == alerts


def test_enrichment_from_inventory() -> None:
    from ids.layers import Inventory, NodeInfo, enrich_alert

    inv = Inventory(
        [
            NodeInfo("node-01", "op-a", "eu-west", "active", ("10.0.0.11",)),
            NodeInfo("node-02", "op-b", "ap-east", "quarantined", ("10.0.0.12", "fd00::12")),
        ]
    )
    assert inv.node_ips() == {"10.0.0.11": "node-01", "10.0.0.12": "node-02", "fd00::12": "node-02"}
    lateral = alert(T0, "10.0.0.11", dst="10.0.0.12")
    enriched = enrich_alert(lateral, inv)
    assert enriched["cntrust"]["node_id"] == "node-02"
    assert enriched["cntrust"]["node"] == {
        "node_id": "node-02",
        "operator_id": "op-b",
        "region": "ap-east",
        "status": "quarantined",
    }
    assert enriched["cntrust"]["src_node"]["operator_id"] == "op-a"
    assert "node" not in lateral["cntrust"] and lateral["cntrust"]["node_id"] is None
    outside = enrich_alert(alert(T0, "203.0.113.1", dst="192.0.2.1"), inv)
    assert "node" not in outside["cntrust"] and "src_node" not in outside["cntrust"]
    with pytest.raises(LayersConfigError):
        Inventory(
            [NodeInfo("a", "o", "r", "s", ("1.1.1.1",)), NodeInfo("b", "o", "r", "s", ("1.1.1.1",))]
        )
