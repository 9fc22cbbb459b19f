"""Packet crafting for the scenario generator (scapy, imported lazily) and a pcap writer.

`Trace` collects (timestamp, frame bytes) pairs and writes them, sorted by time, to a
classic pcap file (Ethernet, microsecond timestamps). Frames are crafted with scapy; the
writer is ours so the output bytes depend only on the inputs (no wall clock).

Invariants: deterministic given the same calls; timestamps rounded to microseconds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


def _mac(ip: str) -> str:
    """A locally administered MAC derived from an IPv4 address."""
    octets = [int(x) for x in ip.split(".")]
    return "02:00:" + ":".join(f"{o:02x}" for o in octets)


@dataclass
class Trace:
    """Frames of one scenario; `label` counts the attack frames added under each label."""

    frames: list[tuple[int, int, bytes]] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)

    def add(self, ts: float, frame: bytes, label: str = "benign") -> None:
        """Add one frame at `ts` (epoch seconds)."""
        self.frames.append((round(ts * 1_000_000), len(self.frames), frame))
        self.labels[label] = self.labels.get(label, 0) + 1

    def write(self, path: Path) -> int:
        """Write the frames sorted by time to `path`; returns the packet count."""
        with open(path, "wb") as out:
            out.write(_PCAP_HEADER)
            for ts_us, _seq, frame in sorted(self.frames):
                sec, usec = divmod(ts_us, 1_000_000)
                out.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
                out.write(frame)
        return len(self.frames)


def _ether(src: str, dst: str) -> Any:
    from scapy.layers.l2 import Ether

    return Ether(src=_mac(src), dst=_mac(dst))


def tcp_frame(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    flags: str,
    seq: int = 0,
    ack: int = 0,
    payload: bytes = b"",
) -> bytes:
    """One Ethernet/IPv4/TCP frame."""
    from scapy.layers.inet import IP, TCP
    from scapy.packet import Raw

    pkt = (
        _ether(src, dst)
        / IP(src=src, dst=dst, ttl=64)
        / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=64240)
    )
    if payload:
        pkt = pkt / Raw(load=payload)
    return bytes(pkt)


def udp_frame(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """One Ethernet/IPv4/UDP frame."""
    from scapy.layers.inet import IP, UDP
    from scapy.packet import Raw

    return bytes(
        _ether(src, dst) / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload)
    )


def dns_query_frame(src: str, dst: str, sport: int, qid: int, qname: str, qtype: str) -> bytes:
    """A DNS query (recursion desired) from `src` to the resolver `dst`."""
    from scapy.layers.dns import DNS, DNSQR
    from scapy.layers.inet import IP, UDP

    pkt = (
        _ether(src, dst)
        / IP(src=src, dst=dst)
        / UDP(sport=sport, dport=53)
        / DNS(id=qid, rd=1, qd=DNSQR(qname=qname, qtype=qtype))
    )
    return bytes(pkt)


def dns_response_frame(src: str, dst: str, dport: int, qid: int, qname: str, answer: str) -> bytes:
    """A DNS A-record response from the resolver `src` to the client `dst`."""
    from scapy.layers.dns import DNS, DNSQR, DNSRR
    from scapy.layers.inet import IP, UDP

    pkt = (
        _ether(src, dst)
        / IP(src=src, dst=dst)
        / UDP(sport=53, dport=dport)
        / DNS(id=qid, qr=1, rd=1, ra=1, qd=DNSQR(qname=qname), an=DNSRR(rrname=qname, rdata=answer))
    )
    return bytes(pkt)


def tcp_session(
    trace: Trace,
    ts: float,
    client: str,
    cport: int,
    server: str,
    sport: int,
    request: bytes,
    response: bytes,
    label: str = "benign",
    rtt_s: float = 0.002,
) -> float:
    """A full TCP exchange: handshake, one request, one response, FIN both ways.

    Returns the time of the last packet.
    """
    cseq, sseq = 1000 + cport, 5000 + sport
    t = ts
    steps: list[tuple[str, str, int, int, str, int, int, bytes]] = [
        (client, server, cport, sport, "S", cseq, 0, b""),
        (server, client, sport, cport, "SA", sseq, cseq + 1, b""),
        (client, server, cport, sport, "A", cseq + 1, sseq + 1, b""),
        (client, server, cport, sport, "PA", cseq + 1, sseq + 1, request),
        (server, client, sport, cport, "PA", sseq + 1, cseq + 1 + len(request), response),
        (
            client,
            server,
            cport,
            sport,
            "FA",
            cseq + 1 + len(request),
            sseq + 1 + len(response),
            b"",
        ),
        (
            server,
            client,
            sport,
            cport,
            "FA",
            sseq + 1 + len(response),
            cseq + 2 + len(request),
            b"",
        ),
        (client, server, cport, sport, "A", cseq + 2 + len(request), sseq + 2 + len(response), b""),
    ]
    for src, dst, sp, dp, flags, seq, ack, payload in steps:
        trace.add(t, tcp_frame(src, dst, sp, dp, flags, seq, ack, payload), label)
        t += rtt_s / 2
    return t
