"""Fast-path decoder: link types, IPv4/IPv6, transports, bad input counted, fragments."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import CookedLinux, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from ids.engine import Decoder
from ids.engine.frag import Defragmenter
from ids.engine.packet import parse_tcp_options

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def test_ethernet_ipv4_tcp_fields_and_options() -> None:
    frame = bytes(
        ETH
        / IP(src="10.0.0.1", dst="10.0.0.2", ttl=33)
        / TCP(sport=1234, dport=80, flags="PA", seq=7, ack=9, window=512, options=[("MSS", 1460)])
        / b"hello"
    )
    pkt = Decoder().decode(frame, 1.5, 1)
    assert pkt is not None
    assert (pkt.src_ip, pkt.dst_ip, pkt.sport, pkt.dport) == ("10.0.0.1", "10.0.0.2", 1234, 80)
    assert (pkt.proto, pkt.ttl, pkt.tcp_flags, pkt.tcp_seq, pkt.tcp_ack) == (6, 33, 0x18, 7, 9)
    assert pkt.tcp_win == 512 and pkt.payload == b"hello" and pkt.ts == 1.5
    assert parse_tcp_options(pkt.tcp_options) == [(2, b"\x05\xb4")]


def test_ipv4_options_take_general_path() -> None:
    frame = bytes(
        ETH / IP(src="1.1.1.1", dst="2.2.2.2", options=b"\x01\x01\x01\x00") / UDP() / b"x"
    )
    pkt = Decoder().decode(frame, 0.0, 1)
    assert pkt is not None and pkt.payload == b"x" and pkt.proto == 17


@pytest.mark.parametrize(
    "link",
    [
        ETH / Dot1Q(vlan=5),
        ETH / Dot1AD(vlan=5) / Dot1Q(vlan=6),
        ETH / Dot1Q(vlan=1) / Dot1Q(vlan=2),
    ],
    ids=["802.1Q", "QinQ-88a8", "QinQ-8100"],
)
def test_vlan_and_qinq(link: object) -> None:
    frame = bytes(link / IP(src="10.1.1.1", dst="10.1.1.2") / UDP(sport=5, dport=53) / b"q")  # type: ignore[operator]
    dec = Decoder()
    pkt = dec.decode(frame, 0.0, 1)
    assert pkt is not None and pkt.dport == 53 and pkt.payload == b"q"
    assert dec.counters["vlan"] >= 1


def test_linux_sll_and_raw_ip_link_types() -> None:
    ip = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / b"z"
    dec = Decoder()
    sll = dec.decode(bytes(CookedLinux(proto=0x0800) / ip), 0.0, 113)
    raw = dec.decode(bytes(ip), 0.0, 101)
    raw4 = dec.decode(bytes(ip), 0.0, 228)
    assert sll is not None and raw is not None and raw4 is not None
    assert sll.payload == raw.payload == raw4.payload == b"z"


def test_ipv6_extension_headers_are_skipped() -> None:
    frame = bytes(
        ETH
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrDestOpt()
        / IPv6ExtHdrRouting()
        / TCP(sport=9, dport=443, flags="S")
    )
    pkt = Decoder().decode(frame, 0.0, 1)
    assert pkt is not None
    assert (pkt.ipver, pkt.proto, pkt.dport, pkt.tcp_flags) == (6, 6, 443, 2)
    assert pkt.src_ip == "2001:db8::1"


def test_icmp_and_icmpv6() -> None:
    dec = Decoder()
    p4 = dec.decode(bytes(ETH / IP() / ICMP(type=8, id=77, seq=3) / b"ping"), 0.0, 1)
    p6 = dec.decode(bytes(ETH / IPv6() / ICMPv6EchoRequest(id=5, seq=6) / b"p6"), 0.0, 1)
    assert p4 is not None and (p4.icmp_type, p4.icmp_code, p4.icmp_id, p4.icmp_seq) == (8, 0, 77, 3)
    assert p4.payload == b"ping"
    assert p6 is not None and (p6.proto, p6.icmp_type, p6.icmp_id, p6.icmp_seq) == (58, 128, 5, 6)


def test_icmp_error_quotes_embedded_tuple() -> None:
    inner = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1111, dport=53)
    frame = bytes(ETH / IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=3, code=3) / inner)
    pkt = Decoder().decode(frame, 0.0, 1)
    assert pkt is not None and pkt.icmp_emb is not None
    assert pkt.icmp_emb[0] == 17 and pkt.icmp_emb[2] == 1111 and pkt.icmp_emb[4] == 53


@pytest.mark.parametrize(
    ("frame", "event"),
    [
        (bytes(ETH)[:10], "ethernet.pkt_too_small"),
        (bytes(ETH / IP())[:25], "ipv4.pkt_too_small"),
        (bytes(ETH / IP(len=200) / UDP()), "ipv4.trunc_pkt"),
        (bytes(ETH / IP(ihl=2) / UDP()), "ipv4.hlen_too_small"),
        (bytes(ETH / IP() / UDP(len=300)), "udp.len_invalid"),
        (bytes(ETH / IP() / TCP(dataofs=15)), "tcp.invalid_optlen"),
        (bytes(ETH / IP(proto=6) / (b"\x00" * 8)), "tcp.pkt_too_small"),
        (bytes(ETH / IPv6(plen=500) / UDP()), "ipv6.trunc_pkt"),
        (bytes(Ether(type=0x1234) / (b"x" * 30)), "ethernet.unknown_ethertype"),
        (bytes(ETH)[:12] + b"\x81\x00\x00", "vlan.header_too_small"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_malformed_input_is_counted_not_raised(frame: bytes, event: str) -> None:
    dec = Decoder()
    dec.decode(frame, 0.0, 1)
    assert dec.events.get(event) == 1


def test_unknown_linktype_is_counted() -> None:
    dec = Decoder()
    assert dec.decode(b"\x00" * 40, 0.0, 9999) is None
    assert dec.events == {"decoder.unsupported_linktype": 1}


def _frags(payload: bytes, size: int = 16) -> list[bytes]:
    pkt = IP(src="10.9.9.1", dst="10.9.9.2", id=4242) / UDP(sport=7, dport=9) / payload
    return [bytes(ETH / f) for f in fragment(pkt, fragsize=size)]


@pytest.mark.parametrize("order", ["in-order", "reversed"])
def test_ipv4_fragments_reassemble(order: str) -> None:
    payload = bytes(range(48)) * 2
    frames = _frags(payload)
    if order == "reversed":
        frames.reverse()
    dec = Decoder()
    out = [dec.decode(f, 0.0, 1) for f in frames]
    assert all(p is not None for p in out)
    whole = [p for p in out if p is not None and p.pseudo]
    assert len(whole) == 1
    assert whole[0].payload == payload and whole[0].dport == 9
    assert dec.counters["ipv4_reassembled"] == 1
    assert all(p.is_frag for p in out if p is not None and not p.pseudo)


def test_overlapping_fragments_first_bytes_win_and_are_counted() -> None:
    dec = Decoder()
    d = dec.defrag
    key = (b"\x01" * 4, b"\x02" * 4, 1, 17)
    hdr = bytes(IP(src="1.1.1.1", dst="2.2.2.2", proto=17))[:20]
    assert d.add(key, 0.0, hdr, 0, True, b"A" * 16) is None
    assert d.add(key, 0.0, hdr, 8, True, b"B" * 16) is None  # overlaps bytes 8..16
    done = d.add(key, 0.0, hdr, 24, False, b"C" * 8)
    assert done is not None
    assert done[1] == b"A" * 16 + b"B" * 8 + b"C" * 8
    assert dec.events["ipv4.frag_overlap"] >= 1
    assert dec.events["ipv4.frag_overlap_conflict"] >= 1


def test_defragmenter_memory_is_bounded() -> None:
    events: dict[str, int] = {}
    d = Defragmenter(events, max_trackers=50, max_bytes=10_000)
    hdr = b"\x45" + b"\x00" * 19
    for i in range(2_000):
        d.add((b"\x01" * 4, b"\x02" * 4, i, 17), float(i) / 1000, hdr, 0, True, b"x" * 400)
        assert len(d) <= 50 and d.buffered_bytes <= 10_000
    assert events["ipv4.frag_evicted"] > 0


def test_defragmenter_times_out_and_rejects_oversize() -> None:
    events: dict[str, int] = {}
    d = Defragmenter(events, timeout_s=1.0)
    hdr = b"\x45" + b"\x00" * 19
    d.add((b"a" * 4, b"b" * 4, 1, 17), 0.0, hdr, 0, True, b"x" * 8)
    d.add((b"a" * 4, b"b" * 4, 2, 17), 5.0, hdr, 0, True, b"x" * 8)
    assert events["ipv4.frag_timeout"] == 1
    assert d.add((b"a" * 4, b"b" * 4, 3, 17), 5.0, hdr, 65_528, False, b"x" * 16) is None
    assert events["ipv4.frag_too_large"] == 1


def test_raw_payload_layer_only() -> None:
    pkt = Decoder().decode(bytes(ETH / IP(proto=253) / Raw(b"abc")), 0.0, 1)
    assert pkt is not None and pkt.proto == 253 and pkt.payload == b""


def test_ipv6_fragments_reassemble() -> None:
    from scapy.layers.inet6 import IPv6ExtHdrFragment, fragment6

    payload = bytes(range(200))
    pkt = (
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrFragment(id=7)
        / UDP(sport=5, dport=6)
        / payload
    )
    frames = [bytes(ETH / f) for f in fragment6(pkt, 120)]
    assert len(frames) > 1
    dec = Decoder()
    out = [dec.decode(f, 0.0, 1) for f in reversed(frames)]
    whole = [p for p in out if p is not None and p.pseudo]
    assert len(whole) == 1 and whole[0].payload == payload and whole[0].dport == 6
    assert dec.counters["ipv6_reassembled"] == 1
