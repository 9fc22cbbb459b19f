"""Packet summary decoding and pcap walking."""

from __future__ import annotations

import io
import struct

import pytest

from ids.layers import PacketDecodeError, PcapFormatError, PcapStats, decode_frame, read_pcap
from ids.layers.packets import (
    LINKTYPE_RAW,
    TCP_ACK,
    TCP_SYN,
    FlowRecord,
    flow_to_packets,
    parse_dns_qname,
)

scapy_all = pytest.importorskip("scapy.all", reason="scapy not installed")
Ether, IP, IPv6, TCP, UDP, Dot1Q = (
    scapy_all.Ether,
    scapy_all.IP,
    scapy_all.IPv6,
    scapy_all.TCP,
    scapy_all.UDP,
    scapy_all.Dot1Q,
)
DNS, DNSQR, Raw = scapy_all.DNS, scapy_all.DNSQR, scapy_all.Raw
MACS = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}


def test_tcp_syn_over_ipv4() -> None:
    frame = bytes(
        Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80, flags="S")
    )
    pkt = decode_frame(1.5, frame)
    assert pkt is not None
    assert (pkt.src, pkt.dst, pkt.sport, pkt.dport, pkt.proto) == (
        "10.0.0.1",
        "10.0.0.2",
        1234,
        80,
        6,
    )
    assert pkt.tcp_flags & TCP_SYN and pkt.is_syn and not pkt.is_handshake_ack
    assert pkt.payload_len == 0


def test_tcp_payload_length_and_ack() -> None:
    frame = bytes(
        Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(flags="PA") / Raw(b"x" * 37)
    )
    pkt = decode_frame(0.0, frame)
    assert pkt is not None and pkt.payload_len == 37
    assert pkt.tcp_flags & TCP_ACK and pkt.is_handshake_ack and not pkt.is_syn


def test_vlan_and_ipv6_udp_dns_query() -> None:
    frame = bytes(
        Ether(**MACS)
        / Dot1Q(vlan=7)
        / IPv6(src="2001:db8::1", dst="2001:db8::53")
        / UDP(sport=5000, dport=53)
        / DNS(rd=1, qd=DNSQR(qname="WWW.Example.com"))
    )
    pkt = decode_frame(0.0, frame)
    assert pkt is not None
    assert (pkt.src, pkt.dst, pkt.proto) == ("2001:db8::1", "2001:db8::53", 17)
    assert pkt.dns_qname == "www.example.com"


def test_raw_ip_link_type() -> None:
    frame = bytes(IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1, dport=2) / Raw(b"abc"))
    pkt = decode_frame(0.0, frame, LINKTYPE_RAW)
    assert pkt is not None and pkt.payload_len == 3


def test_non_ip_and_later_fragments_decode_to_none() -> None:
    arp = bytes(Ether(**MACS, type=0x0806) / Raw(b"\x00" * 28))
    assert decode_frame(0.0, arp) is None
    frag = bytes(
        Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2", frag=10, proto=6) / Raw(b"x" * 20)
    )
    assert decode_frame(0.0, frag) is None


@pytest.mark.parametrize("cut", [5, 14, 20, 33, 40, 50])
def test_truncated_frames_raise_decode_error(cut: int) -> None:
    frame = bytes(Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2))
    with pytest.raises(PacketDecodeError):
        decode_frame(0.0, frame[:cut])


def test_bogus_header_lengths_raise_decode_error() -> None:
    frame = bytearray(bytes(Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP()))
    frame[14] = 0x42  # IHL 2 words
    with pytest.raises(PacketDecodeError):
        decode_frame(0.0, bytes(frame))
    frame = bytearray(bytes(Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP()))
    frame[14 + 20 + 12] = 0x20  # TCP data offset 2 words
    with pytest.raises(PacketDecodeError):
        decode_frame(0.0, bytes(frame))
    with pytest.raises(PacketDecodeError):
        decode_frame(0.0, b"\x00" * 64, linktype=999)


def test_dns_name_errors() -> None:
    header = struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0)
    assert (
        parse_dns_qname(header + b"\x03www\x07example\x03com\x00\x00\x01\x00\x01")
        == "www.example.com"
    )
    with pytest.raises(PacketDecodeError):
        parse_dns_qname(header + b"\x3fabc")
    with pytest.raises(PacketDecodeError):
        parse_dns_qname(header + b"\xc0\x0c")
    with pytest.raises(PacketDecodeError):
        parse_dns_qname(header + (b"\x3f" + b"a" * 63) * 5 + b"\x00")
    response = struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0) + b"\x00"
    assert parse_dns_qname(response) is None


def _pcap(frames: list[bytes], magic: int = 0xA1B2C3D4) -> bytes:
    out = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    for i, frame in enumerate(frames):
        out += struct.pack("<IIII", 100 + i, 500_000, len(frame), len(frame)) + frame
    return out


def test_read_pcap_counts_malformed_and_truncated_tail() -> None:
    good = bytes(Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(flags="S"))
    arp = bytes(Ether(**MACS, type=0x0806) / Raw(b"\x00" * 28))
    data = _pcap([good, good[:30], arp, good]) + b"\x01\x02\x03"
    stats = PcapStats()
    pkts = list(read_pcap(io.BytesIO(data), stats))
    assert len(pkts) == 2 and pkts[0].ts == pytest.approx(100.5)
    assert (stats.records, stats.decoded, stats.malformed, stats.not_ip) == (4, 2, 1, 1)
    assert stats.truncated_tail and stats.errors


def test_read_pcap_record_cut_mid_data() -> None:
    good = bytes(Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(flags="S"))
    stats = PcapStats()
    assert len(list(read_pcap(io.BytesIO(_pcap([good, good])[:-10]), stats))) == 1
    assert stats.truncated_tail


def test_read_pcap_rejects_bad_header_and_huge_record() -> None:
    with pytest.raises(PcapFormatError):
        list(read_pcap(io.BytesIO(b"\x00" * 24)))
    with pytest.raises(PcapFormatError):
        list(read_pcap(io.BytesIO(b"\xd4\xc3")))
    huge = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    huge += struct.pack("<IIII", 0, 0, 10_000_000, 10_000_000)
    with pytest.raises(PcapFormatError):
        list(read_pcap(io.BytesIO(huge)))


def test_flow_records_replay_as_opening_packets() -> None:
    est = FlowRecord(1.0, 2.0, "10.0.0.1", "10.0.0.2", 1000, 443, 6, established=True)
    half = FlowRecord(1.0, 1.0, "10.0.0.1", "10.0.0.2", 1000, 443, 6, established=False)
    udp = FlowRecord(1.0, 1.0, "10.0.0.1", "10.0.0.2", 1000, 53, 17, established=False)
    assert [p.is_syn for p in flow_to_packets(est)] == [True, False]
    assert flow_to_packets(est)[1].is_handshake_ack
    assert len(flow_to_packets(half)) == 1
    assert flow_to_packets(udp)[0].proto == 17
