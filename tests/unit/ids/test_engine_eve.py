"""EVE JSON output: fields, key order, timestamps, determinism, flow and stats records."""

from __future__ import annotations

import json
from pathlib import Path

import communityid
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from ids.engine import EngineConfig, eve_dumps, scan_pcap
from ids.engine.eve import format_timestamp

RULES = (
    'alert tcp any any -> any any (msg:"evil"; content:"evil"; classtype:attempted-admin; '
    "sid:1001; rev:4;)\n"
    'alert icmp any any -> any any (msg:"ping"; itype:8; sid:1002;)\n'
)


def write_capture(path: Path) -> None:
    eth = Ether()
    pkts = [
        eth / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=4000, dport=80, flags="S"),
        eth / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=80, dport=4000, flags="SA"),
        eth / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=4000, dport=80, flags="A"),
        eth / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=4000, dport=80, flags="PA") / b"evil",
        eth / IP(src="10.0.0.3", dst="10.0.0.4") / ICMP(type=8),
    ]
    for i, p in enumerate(pkts):
        p.time = 1_700_000_000 + i + 0.25
    wrpcap(str(path), pkts)


def test_alert_record_fields_and_order(tmp_path: Path) -> None:
    pcap = tmp_path / "c.pcap"
    write_capture(pcap)
    events = list(scan_pcap([str(pcap)], RULES, config=EngineConfig(node_id="node-7")))
    tcp_alert, icmp_alert = events
    assert list(tcp_alert)[:11] == [
        "timestamp",
        "flow_id",
        "pcap_cnt",
        "event_type",
        "src_ip",
        "src_port",
        "dest_ip",
        "dest_port",
        "proto",
        "community_id",
        "direction",
    ]
    assert tcp_alert["timestamp"] == "2023-11-14T22:13:23.250000+0000"
    assert tcp_alert["pcap_cnt"] == 4 and tcp_alert["event_type"] == "alert"
    assert (tcp_alert["src_ip"], tcp_alert["src_port"]) == ("10.0.0.1", 4000)
    assert (tcp_alert["dest_ip"], tcp_alert["dest_port"], tcp_alert["proto"]) == (
        "10.0.0.2",
        80,
        "TCP",
    )
    ref = communityid.CommunityID().calc(communityid.FlowTuple(6, "10.0.0.1", "10.0.0.2", 4000, 80))
    assert tcp_alert["community_id"] == ref
    assert tcp_alert["alert"] == {
        "action": "allowed",
        "gid": 1,
        "signature_id": 1001,
        "rev": 4,
        "signature": "evil",
        "category": "Attempted Administrator Privilege Gain",
        "severity": 1,
    }
    assert tcp_alert["cntrust"] == {"layer": "perimeter", "node_id": "node-7"}
    assert icmp_alert["icmp_type"] == 8 and "src_port" not in icmp_alert
    assert icmp_alert["proto"] == "ICMP"


def test_same_input_gives_byte_identical_output(tmp_path: Path) -> None:
    pcap = tmp_path / "c.pcap"
    write_capture(pcap)
    cfg = EngineConfig(log_flows=True)

    def run() -> str:
        return "\n".join(
            eve_dumps(e) for e in scan_pcap([str(pcap)], RULES, config=cfg, log_stats=True)
        )

    first = run()
    assert first == run() == run()
    assert all(json.loads(line) for line in first.splitlines())


def test_flow_and_stats_records(tmp_path: Path) -> None:
    pcap = tmp_path / "c.pcap"
    write_capture(pcap)
    scan = scan_pcap([str(pcap)], RULES, config=EngineConfig(log_flows=True), log_stats=True)
    events = list(scan)
    flows = [e for e in events if e["event_type"] == "flow"]
    stats = [e for e in events if e["event_type"] == "stats"]
    tcp_flow = next(f for f in flows if f["proto"] == "TCP")
    assert tcp_flow["flow"]["alerted"] is True and tcp_flow["tcp"]["state"] == "established"
    assert tcp_flow["flow"]["pkts_toserver"] == 3 and tcp_flow["flow"]["pkts_toclient"] == 1
    assert len(stats) == 1 and stats[0]["stats"]["packets"] == 5
    assert scan.stats.alerts == 2 and scan.stats.flows_created == 2


def test_timestamp_format() -> None:
    assert format_timestamp(0.0) == "1970-01-01T00:00:00.000000+0000"
    assert format_timestamp(1_600_000_000.000001) == "2020-09-13T12:26:40.000001+0000"


def test_alert_packet_can_be_explained(tmp_path: Path) -> None:
    import pytest

    from ids.engine import ExplainError, describe_packet

    pcap = tmp_path / "c.pcap"
    write_capture(pcap)
    [alert, _icmp] = list(scan_pcap([str(pcap)], RULES, config=EngineConfig(log_packet=True)))
    assert alert["packet_info"] == {"linktype": 1}
    text = describe_packet(alert)
    assert "###[ TCP ]###" in text and "dport     = http" in text
    with pytest.raises(ExplainError):
        describe_packet({"packet": "!!notbase64"})
    with pytest.raises(ExplainError):
        describe_packet({})
