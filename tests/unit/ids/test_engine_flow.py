"""Flow table (direction, TCP state, eviction, ids) and Community ID v1."""

from __future__ import annotations

import ipaddress
import struct
import tracemalloc

import communityid
import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from ids.engine import Decoder, FlowTable, community_id_v1
from ids.engine.packet import Packet

ETH = Ether()


def pkt(src: str, dst: str, sport: int, dport: int, flags: str = "A", ts: float = 0.0) -> Packet:
    p = Decoder().decode(
        bytes(ETH / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags)), ts, 1
    )
    assert p is not None
    return p


def udp(src: str, dst: str, sport: int, dport: int, ts: float = 0.0) -> Packet:
    p = Decoder().decode(bytes(ETH / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport)), ts, 1)
    assert p is not None
    return p


def test_both_directions_share_a_flow_with_direction() -> None:
    ft = FlowTable()
    f1, d1 = ft.lookup(pkt("10.0.0.1", "10.0.0.2", 4000, 80, "S"))
    f2, d2 = ft.lookup(pkt("10.0.0.2", "10.0.0.1", 80, 4000, "SA"))
    assert f1 is f2 and d1 is True and d2 is False
    assert (f1.pkts_toserver, f1.pkts_toclient) == (1, 1)
    assert len(ft) == 1


def test_tcp_handshake_reaches_established_on_the_third_packet() -> None:
    ft = FlowTable()
    flow, _ = ft.lookup(pkt("10.0.0.1", "10.0.0.2", 4000, 80, "S"))
    assert flow.tcp_state == "syn_sent"
    ft.lookup(pkt("10.0.0.2", "10.0.0.1", 80, 4000, "SA"))
    assert flow.tcp_state == "syn_recv"
    ft.lookup(pkt("10.0.0.1", "10.0.0.2", 4000, 80, "A"))
    assert flow.tcp_state == "established"
    assert not flow.pkt_established  # the handshake's last packet is not yet established
    ft.lookup(pkt("10.0.0.1", "10.0.0.2", 4000, 80, "PA"))
    assert flow.pkt_established
    ft.lookup(pkt("10.0.0.1", "10.0.0.2", 4000, 80, "FA"))
    ft.lookup(pkt("10.0.0.2", "10.0.0.1", 80, 4000, "FA"))
    assert flow.tcp_state == "closed" and flow.state == "closed"


def test_midstream_pickup_only_when_enabled() -> None:
    off = FlowTable(midstream=False)
    f_off, _ = off.lookup(pkt("10.0.0.1", "10.0.0.2", 4000, 80, "PA"))
    assert not f_off.pkt_established and f_off.midstream
    on = FlowTable(midstream=True)
    f_on, to_server = on.lookup(pkt("10.0.0.2", "10.0.0.1", 80, 4000, "PA"))
    assert f_on.pkt_established
    assert to_server is False  # a reply from a well-known port: the sender is the server


def test_synack_first_makes_its_receiver_the_client() -> None:
    ft = FlowTable()
    flow, to_server = ft.lookup(pkt("10.0.0.2", "10.0.0.1", 80, 4000, "SA"))
    assert to_server is False and flow.client_port == 4000


def test_udp_established_after_both_directions() -> None:
    ft = FlowTable()
    f, _ = ft.lookup(udp("10.0.0.1", "10.0.0.2", 5000, 53))
    assert not f.pkt_established
    ft.lookup(udp("10.0.0.2", "10.0.0.1", 53, 5000))
    assert f.pkt_established


def test_lru_eviction_bounds_the_table() -> None:
    ft = FlowTable(max_flows=50)
    dec = Decoder()
    for i, frame in enumerate(syn_frames(300)):
        p = dec.decode(frame, i * 1e-4, 1)
        assert p is not None
        ft.lookup(p)
        assert len(ft) <= 50
    assert ft.evicted == 250 and ft.created == 300
    assert [reason for _f, reason in ft.ended][:1] == ["evicted"]


def test_idle_flows_time_out() -> None:
    ft = FlowTable(timeout_new_s=30.0)
    ft.lookup(udp("10.0.0.1", "10.0.0.2", 1, 2, ts=0.0))
    ft.lookup(udp("10.0.0.3", "10.0.0.4", 1, 2, ts=100.0))
    assert len(ft) == 1 and ft.timed_out == 1


def syn_frames(n: int) -> list[bytes]:
    """`n` Ethernet/IPv4/TCP SYNs from distinct sources, built with struct (fast)."""
    base = bytearray(
        bytes(ETH / IP(src="10.0.0.0", dst="192.168.0.1") / TCP(sport=1234, dport=80, flags="S"))
    )
    out = []
    for i in range(n):
        struct.pack_into("!I", base, 26, 0x0A000000 + i)
        out.append(bytes(base))
    return out


def test_memory_bounded_under_flood_of_new_flows() -> None:
    dec = Decoder()
    packets = [dec.decode(f, i * 1e-5, 1) for i, f in enumerate(syn_frames(20_000))]

    def peak(n: int) -> int:
        ft = FlowTable(max_flows=2_000, record_ended=False)
        tracemalloc.start()
        for p in packets[:n]:
            assert p is not None
            ft.lookup(p)
        _cur, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, big = peak(5_000), peak(20_000)
    assert big < small * 1.3  # 4x the flood, same footprint


def test_flow_id_is_deterministic_and_distinct() -> None:
    a1, _ = FlowTable().lookup(pkt("10.0.0.1", "10.0.0.2", 1, 2, ts=5.0))
    a2, _ = FlowTable().lookup(pkt("10.0.0.1", "10.0.0.2", 1, 2, ts=5.0))
    b, _ = FlowTable().lookup(pkt("10.0.0.1", "10.0.0.2", 1, 3, ts=5.0))
    assert a1.flow_id == a2.flow_id != b.flow_id
    assert 0 < a1.flow_id < 2**51


def _reference(proto: int, s: str, d: str, sp: int | None, dp: int | None) -> str:
    return communityid.CommunityID().calc(communityid.FlowTuple(proto, s, d, sp, dp))


def _ours(proto: int, s: str, d: str, sp: int, dp: int) -> str:
    return community_id_v1(
        ipaddress.ip_address(s).packed, ipaddress.ip_address(d).packed, proto, sp, dp
    )


# Known vectors from the Community ID spec's baseline (seed 0).
SPEC_VECTORS = [
    (6, "128.232.110.120", "66.35.250.204", 34855, 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    (6, "66.35.250.204", "128.232.110.120", 80, 34855, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    (17, "192.168.1.52", "8.8.8.8", 54585, 53, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
    (1, "192.168.0.89", "192.168.0.1", 8, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
    (1, "192.168.0.1", "192.168.0.89", 0, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
]


@pytest.mark.parametrize(("proto", "s", "d", "sp", "dp", "want"), SPEC_VECTORS)
def test_community_id_known_vectors(
    proto: int, s: str, d: str, sp: int, dp: int, want: str
) -> None:
    assert _ours(proto, s, d, sp, dp) == want == _reference(proto, s, d, sp, dp)


@pytest.mark.parametrize(
    ("proto", "s", "d", "sp", "dp"),
    [
        (6, "10.0.0.1", "10.0.0.1", 80, 81),
        (17, "2001:db8::1", "2001:db8::2", 53, 5353),
        (1, "10.0.0.1", "10.0.0.2", 3, 1),  # one-way ICMP (unreachable)
        (58, "fe80::1", "fe80::2", 135, 0),
        (58, "fe80::2", "fe80::1", 136, 0),
        (132, "10.1.1.1", "10.1.1.2", 7, 9),
    ],
)
def test_community_id_matches_reference_package(
    proto: int, s: str, d: str, sp: int, dp: int
) -> None:
    assert _ours(proto, s, d, sp, dp) == _reference(proto, s, d, sp, dp)


def test_community_id_without_ports_for_other_protocols() -> None:
    assert _ours(47, "10.0.0.1", "10.0.0.2", 0, 0) == _reference(
        47, "10.0.0.1", "10.0.0.2", None, None
    )


def test_icmp_flow_groups_request_and_reply() -> None:
    dec = Decoder()
    ft = FlowTable()
    req = dec.decode(bytes(ETH / IP(src="1.1.1.1", dst="2.2.2.2") / ICMP(type=8)), 0.0, 1)
    rep = dec.decode(bytes(ETH / IP(src="2.2.2.2", dst="1.1.1.1") / ICMP(type=0)), 0.1, 1)
    assert req is not None and rep is not None
    f1, d1 = ft.lookup(req)
    f2, d2 = ft.lookup(rep)
    assert f1 is f2 and d1 and not d2
