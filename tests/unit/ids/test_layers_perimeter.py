"""Perimeter behavioural detectors: each fires on its pattern, stays quiet below
threshold, names what crossed what, and keeps bounded state."""

from __future__ import annotations

import pytest

from ids.layers import (
    BruteForceConfig,
    DistributedScanConfig,
    DnsTunnelConfig,
    FlowRecord,
    LateralMovementConfig,
    LayersConfigError,
    PacketSummary,
    PerimeterConfig,
    PerimeterSensor,
    SynFloodConfig,
    SynScanConfig,
    UdpFloodConfig,
)
from ids.layers.perimeter_flood import SynFloodDetector, UdpFloodDetector
from ids.layers.perimeter_scan import DistributedScanDetector, SynScanDetector
from ids.layers.perimeter_services import (
    BruteForceDetector,
    DnsTunnelDetector,
    LateralMovementDetector,
    shannon_entropy,
    split_qname,
)

SYN, ACK = 0x02, 0x10
T0 = 1_767_225_600.0


def syn(ts: float, src: str, dst: str, dport: int, sport: int = 40000) -> PacketSummary:
    return PacketSummary(ts, src, dst, sport, dport, 6, SYN)


def ack(ts: float, src: str, dst: str, dport: int, sport: int = 40000) -> PacketSummary:
    return PacketSummary(ts, src, dst, sport, dport, 6, ACK)


def run(detector: object, packets: list[PacketSummary]) -> list[dict]:
    alerts: list[dict] = []
    for p in packets:
        alerts.extend(detector.observe(p))  # type: ignore[attr-defined]
    return alerts


def test_syn_scan_fires_once_with_reasons() -> None:
    det = SynScanDetector(SynScanConfig(window_s=10, min_distinct_targets=25))
    alerts = run(
        det, [syn(T0 + i * 0.01, "203.0.113.5", "10.0.0.80", 1000 + i) for i in range(200)]
    )
    assert len(alerts) == 1
    a = alerts[0]
    assert a["cntrust"]["detection"] == "ids.perimeter.syn_scan"
    assert a["cntrust"]["layer"] == "perimeter"
    assert a["src_ip"] == "203.0.113.5" and a["dest_ip"] == "10.0.0.80"
    assert "distinct_targets=25 >= min_distinct_targets=25" in a["cntrust"]["reasons"][0]


def test_syn_scan_quiet_below_threshold_and_across_windows() -> None:
    det = SynScanDetector(SynScanConfig(window_s=10, min_distinct_targets=25))
    few = [syn(T0 + i, "203.0.113.5", "10.0.0.80", 1000 + i) for i in range(24)]
    assert run(det, few) == []
    det = SynScanDetector(SynScanConfig(window_s=10, min_distinct_targets=25))
    slow = [syn(T0 + i * 1.0, "203.0.113.5", "10.0.0.80", 1000 + i) for i in range(40)]
    assert run(det, slow) == []  # never 25 targets within one 10 s window


def test_syn_scan_fires_again_in_a_new_window() -> None:
    det = SynScanDetector(SynScanConfig(window_s=1, min_distinct_targets=5))
    burst1 = [syn(T0 + i * 0.01, "203.0.113.5", "10.0.0.80", 10 + i) for i in range(10)]
    burst2 = [syn(T0 + 5 + i * 0.01, "203.0.113.5", "10.0.0.80", 10 + i) for i in range(10)]
    assert len(run(det, burst1 + burst2)) == 2


def test_syn_scan_memory_is_bounded() -> None:
    det = SynScanDetector(SynScanConfig(max_keys=100))
    run(det, [syn(T0, f"100.64.{i // 250}.{i % 250}", "10.0.0.80", 80) for i in range(5000)])
    assert det.tracked_keys() == 100


def test_distributed_scan_many_sources_many_ports() -> None:
    det = DistributedScanDetector(DistributedScanConfig())
    pkts = [
        syn(T0 + i * 0.05, f"198.51.100.{10 + i % 25}", "10.0.0.11", 1000 + i) for i in range(150)
    ]
    alerts = run(det, pkts)
    assert len(alerts) == 1
    assert alerts[0]["dest_ip"] == "10.0.0.11"
    assert len(alerts[0]["cntrust"]["sources"]) >= 20
    assert "half_open_sources" in alerts[0]["cntrust"]["reasons"][0]


def test_distributed_scan_one_port_many_hosts() -> None:
    det = DistributedScanDetector(DistributedScanConfig())
    pkts = [syn(T0 + i * 0.05, f"198.51.100.{i % 30}", f"10.0.2.{i}", 22) for i in range(60)]
    alerts = run(det, pkts)
    assert len(alerts) == 1 and alerts[0]["dest_port"] == 22


def test_distributed_scan_ignores_clients_that_complete_handshakes() -> None:
    det = DistributedScanDetector(DistributedScanConfig())
    pkts: list[PacketSummary] = []
    for i in range(150):
        src = f"10.0.1.{i % 25}"
        pkts.append(syn(T0 + i * 0.05, src, "10.0.0.11", 1000 + i, sport=30000 + i))
        pkts.append(ack(T0 + i * 0.05 + 0.001, src, "10.0.0.11", 1000 + i, sport=30000 + i))
    assert run(det, pkts) == []


def test_syn_flood_spoofed_half_open() -> None:
    det = SynFloodDetector(SynFloodConfig())
    pkts = [
        syn(
            T0 + i * 0.001, f"100.{64 + i % 60}.{i % 250}.{i % 200 + 1}", "10.0.0.80", 443, 1024 + i
        )
        for i in range(2000)
    ]
    alerts = run(det, pkts)
    assert 1 <= len(alerts) <= 3
    reasons = alerts[0]["cntrust"]["reasons"]
    assert reasons[0].startswith("syns=500 >= min_syns=500")
    assert "completion_ratio=0.000" in reasons[2]
    assert alerts[0]["cntrust"]["distinct_sources"] >= 20


def test_syn_flood_not_raised_when_handshakes_complete() -> None:
    det = SynFloodDetector(SynFloodConfig())
    pkts: list[PacketSummary] = []
    for i in range(1000):
        src = f"100.64.{i % 250}.{i % 200 + 1}"
        pkts.append(syn(T0 + i * 0.0005, src, "10.0.0.80", 443, 1024 + i))
        pkts.append(ack(T0 + i * 0.0005, src, "10.0.0.80", 443, 1024 + i))
    assert run(det, pkts) == []


def test_syn_flood_from_one_source_is_not_spoofed_flood() -> None:
    det = SynFloodDetector(SynFloodConfig())
    pkts = [syn(T0 + i * 0.001, "203.0.113.9", "10.0.0.80", 443, 1024 + i) for i in range(1000)]
    assert run(det, pkts) == []


def test_udp_flood() -> None:
    det = UdpFloodDetector(UdpFloodConfig(window_s=1, min_packets=1000))
    pkts = [
        PacketSummary(
            T0 + i * 0.0005, f"203.0.113.{i % 8}", "10.0.0.12", 1000, i % 60000, 17, 0, 256
        )
        for i in range(3000)
    ]
    alerts = run(det, pkts)
    assert 1 <= len(alerts) <= 2
    assert alerts[0]["proto"] == "UDP"
    assert "packets=1000 >= min_packets=1000" in alerts[0]["cntrust"]["reasons"][0]
    slow = UdpFloodDetector(UdpFloodConfig(window_s=1, min_packets=1000))
    trickle = [
        PacketSummary(T0 + i * 0.01, "203.0.113.1", "10.0.0.12", 1, 2, 17) for i in range(900)
    ]
    assert run(slow, trickle) == []


def test_entropy_and_qname_split() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)
    assert split_qname("a.b.example.com.") == ("a.b", "example.com")
    assert split_qname("example.com") == ("", "example.com")


def _dns(ts: float, qname: str, src: str = "10.0.1.66") -> PacketSummary:
    return PacketSummary(ts, src, "10.0.0.53", 5353, 53, 17, 0, 60, qname)


def test_dns_tunnel_long_high_entropy_names() -> None:
    det = DnsTunnelDetector(DnsTunnelConfig())
    chunk = "mzxw6ytboi4dcnrzgq2tmnzygiztinjwg4ytsmbrgi3dqnbvgy"
    alerts = run(det, [_dns(T0 + i, f"{chunk}{i:04d}.x.badtunnel.net") for i in range(30)])
    assert len(alerts) == 1
    reasons = alerts[0]["cntrust"]["reasons"]
    assert reasons[0] == "domain=badtunnel.net"
    assert reasons[1].startswith("suspicious_queries=10 >= min_suspicious_queries=10")


def test_dns_tunnel_high_rate_of_unique_names() -> None:
    det = DnsTunnelDetector(DnsTunnelConfig(min_distinct_subdomains=50))
    alerts = run(det, [_dns(T0 + i * 0.1, f"h{i}.tiny.example") for i in range(80)])
    assert len(alerts) == 1
    assert "distinct_subdomains=50" in alerts[0]["cntrust"]["reasons"][1]


def test_dns_tunnel_quiet_on_ordinary_names() -> None:
    det = DnsTunnelDetector(DnsTunnelConfig())
    names = ["www.example.com", "api.example.org", "a1b2c3.cdn.example.net", "mail.example.com"]
    assert run(det, [_dns(T0 + i, names[i % 4]) for i in range(500)]) == []


def test_brute_force_on_api_port() -> None:
    det = BruteForceDetector(BruteForceConfig())
    pkts = [syn(T0 + i * 0.5, "203.0.113.90", "10.0.0.10", 8443, 45000 + i) for i in range(60)]
    alerts = run(det, pkts)
    assert len(alerts) == 1
    assert "connections=20 >= min_connections=20" in alerts[0]["cntrust"]["reasons"][0]
    other_port = BruteForceDetector(BruteForceConfig())
    assert (
        run(
            other_port, [syn(T0 + i, "203.0.113.90", "10.0.0.10", 25, 45000 + i) for i in range(60)]
        )
        == []
    )


def test_lateral_movement_between_nodes() -> None:
    inventory = {"10.0.0.11": "node-01", "10.0.0.12": "node-02"}
    det = LateralMovementDetector(LateralMovementConfig(node_ips=inventory))
    alerts = run(
        det, [syn(T0, "10.0.0.11", "10.0.0.12", 22), syn(T0 + 1, "10.0.0.11", "10.0.0.12", 22)]
    )
    assert len(alerts) == 1
    a = alerts[0]
    assert a["cntrust"]["node_id"] == "node-02"
    assert a["cntrust"]["src_node_id"] == "node-01"
    assert a["alert"]["severity"] == 1
    # Not an admin port, an outside source, or an allowed pair: quiet.
    assert run(det, [syn(T0, "10.0.0.11", "10.0.0.12", 7443)]) == []
    assert run(det, [syn(T0, "203.0.113.1", "10.0.0.12", 22)]) == []
    allowed = LateralMovementDetector(
        LateralMovementConfig(node_ips=inventory, allowed_pairs=frozenset({("node-01", "node-02")}))
    )
    assert run(allowed, [syn(T0, "10.0.0.11", "10.0.0.12", 22)]) == []


@pytest.mark.parametrize(
    "factory",
    [
        lambda: SynScanConfig(window_s=0),
        lambda: SynScanConfig(min_distinct_targets=-1),
        lambda: SynFloodConfig(max_completion_ratio=1.5),
        lambda: UdpFloodConfig(min_packets=0),
        lambda: DnsTunnelConfig(min_entropy_bits=0),
        lambda: BruteForceConfig(window_s=-5),
        lambda: DistributedScanConfig(min_sources=0),
    ],
)
def test_invalid_thresholds_raise_config_error(factory: object) -> None:
    with pytest.raises(LayersConfigError):
        factory()  # type: ignore[operator]


def test_sensor_tags_node_ids_and_accepts_flows() -> None:
    sensor = PerimeterSensor(PerimeterConfig(node_ips={"10.0.0.10": "scheduler-node"}))
    alerts: list[dict] = []
    for i in range(25):
        flow = FlowRecord(
            T0 + i, T0 + i + 0.1, "203.0.113.90", "10.0.0.10", 45000 + i, 8443, 6, True
        )
        alerts.extend(sensor.observe_flow(flow))
    assert [a["cntrust"]["detection"] for a in alerts] == ["ids.perimeter.brute_force"]
    assert alerts[0]["cntrust"]["node_id"] == "scheduler-node"
    assert set(sensor.tracked_keys()) == {
        "ids.perimeter.syn_scan",
        "ids.perimeter.distributed_scan",
        "ids.perimeter.syn_flood",
        "ids.perimeter.udp_flood",
        "ids.perimeter.dns_tunnel",
        "ids.perimeter.brute_force",
        "ids.perimeter.lateral_movement",
    }


def test_sensor_is_deterministic() -> None:
    pkts = [
        syn(T0 + i * 0.001, f"100.64.{i % 250}.{i % 99 + 1}", "10.0.0.80", 443, i)
        for i in range(1200)
    ]
    first = PerimeterSensor().observe_all(pkts)
    second = PerimeterSensor().observe_all(pkts)
    assert first == second and first
