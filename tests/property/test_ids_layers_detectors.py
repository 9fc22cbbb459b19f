"""Hypothesis: detectors, the frame decoder, the correlator and aggregation take arbitrary
inputs without crashing, keep bounded state, and agree with naive references."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from ids.layers import (
    Correlator,
    CorrelatorConfig,
    PacketDecodeError,
    PacketSummary,
    PerimeterConfig,
    PerimeterSensor,
    SynScanConfig,
    aggregate_alerts,
    aggregation_key,
    decode_frame,
    make_alert,
)
from ids.layers.packets import parse_dns_qname

T0 = 1_767_225_600.0
ips = st.sampled_from([f"10.0.0.{i}" for i in range(1, 12)] + ["203.0.113.5", "2001:db8::1"])
ports = st.integers(min_value=0, max_value=65535)
packets = st.builds(
    PacketSummary,
    ts=st.floats(min_value=0, max_value=600).map(lambda x: T0 + x),
    src=ips,
    dst=ips,
    sport=ports,
    dport=st.sampled_from([22, 53, 80, 443, 8443]) | ports,
    proto=st.sampled_from([1, 6, 17, 58]),
    tcp_flags=st.integers(min_value=0, max_value=255),
    payload_len=st.integers(min_value=0, max_value=1500),
    dns_qname=st.none() | st.text(alphabet="abcdefghij0123456789.-", max_size=300),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(packets, max_size=300))
def test_sensor_never_crashes_and_state_is_bounded(stream: list[PacketSummary]) -> None:
    stream.sort(key=lambda p: p.ts)
    cfg = PerimeterConfig(
        node_ips={"10.0.0.1": "node-01", "10.0.0.2": "node-02"},
        syn_scan=SynScanConfig(max_keys=5, min_distinct_targets=3),
    )
    sensor = PerimeterSensor(cfg)
    alerts = sensor.observe_all(stream)
    assert sensor.tracked_keys()["ids.perimeter.syn_scan"] <= 5
    for alert in alerts:
        assert alert["event_type"] == "alert"
        assert alert["cntrust"]["layer"] == "perimeter" and alert["cntrust"]["reasons"]
    assert PerimeterSensor(cfg).observe_all(stream) == alerts


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([1, 101, 113, 7]))
def test_decoder_raises_only_decode_error(data: bytes, linktype: int) -> None:
    try:
        pkt = decode_frame(0.0, data, linktype)
    except PacketDecodeError:
        return
    assert pkt is None or pkt.payload_len >= 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_dns_parser_raises_only_decode_error(data: bytes) -> None:
    try:
        name = parse_dns_qname(data)
    except PacketDecodeError:
        return
    assert name is None or len(name) <= 255


alerts = st.builds(
    lambda ts, src, dst, sid, sev, dport, node: make_alert(
        ts=T0 + ts,
        src_ip=src,
        dest_ip=dst,
        proto=6,
        src_port=1,
        dest_port=dport,
        signature_id=sid,
        signature="s",
        category="Attempted Denial of Service" if sid == 3 else "c",
        severity=sev,
        layer="perimeter",
        node_id=node,
    ),
    st.floats(min_value=0, max_value=3000),
    ips,
    ips,
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=1, max_value=3),
    st.sampled_from([22, 80]),
    st.none() | st.sampled_from(["node-01", "node-02", "node-03"]),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(alerts, max_size=200))
def test_correlator_is_deterministic_and_bounded(batch: list[dict]) -> None:
    batch.sort(key=lambda a: a["timestamp"])
    cfg = CorrelatorConfig(
        node_ips={f"10.0.0.{i}": f"node-{i:02d}" for i in range(1, 6)},
        window_s=100,
        max_groups=4,
        max_closed=8,
        min_scan_sources=3,
        min_ddos_sources=3,
    )
    first, second = Correlator(cfg), Correlator(cfg)
    for a in batch:
        first.ingest(a)
        second.ingest(a)
    assert first.incidents() == second.incidents()
    assert first.tracked_groups() <= 4 * 7
    for inc in first.incidents():
        assert inc.first_seen <= inc.last_seen and inc.reasons and inc.alert_count >= 1


@settings(max_examples=100, deadline=None)
@given(st.lists(alerts, max_size=200), st.sampled_from(["by_both", "by_src", "by_dst", "by_rule"]))
def test_aggregation_matches_naive_count(batch: list[dict], track: str) -> None:
    aggregated = aggregate_alerts(batch, track)
    naive = Counter(aggregation_key(a, track) for a in batch)
    assert {a.key: a.count for a in aggregated} == dict(naive)
    assert sum(a.count for a in aggregated) == len(batch)
