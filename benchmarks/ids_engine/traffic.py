"""Generate benchmark inputs: a mixed-traffic pcap and N content rules.

Packets are crafted once with scapy as templates, then each flow's copies get their own
addresses and ports patched in with `struct` (checksums are left stale: the engine does not
verify them, like Suricata with `-k none`). This writes ~100k packets per second instead of
scapy's few thousand. The mix (seeded, deterministic): TCP sessions (handshake, HTTP-like
request and response, FIN), DNS-like UDP query/answer, ICMP echo, bare SYNs — small packets
dominate, like the "mixed small packets" Suricata figure in the issue. Rules are
`alert tcp/udp` with one random 8-12 byte content each; `matching` of them hit rare strings.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

_ETH = 14


def _templates() -> dict[str, list[tuple[bytes, bool]]]:
    """Template flows as lists of (frame bytes, sent by client)."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import Ether

    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    c, s = "10.0.0.1", "192.168.0.1"
    req = b"GET /index.html HTTP/1.1\r\nHost: example.org\r\nUser-Agent: bench\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world!"
    query = (
        bytes.fromhex("123401000001000000000000") + b"\x03www\x07example\x03org\x00\x00\x01\x00\x01"
    )

    def tcp(src: str, dst: str, sp: int, dp: int, flags: str, data: bytes = b"") -> bytes:
        return bytes(eth / IP(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags=flags) / data)

    return {
        "tcp": [
            (tcp(c, s, 40000, 80, "S"), True),
            (tcp(s, c, 80, 40000, "SA"), False),
            (tcp(c, s, 40000, 80, "A"), True),
            (tcp(c, s, 40000, 80, "PA", req), True),
            (tcp(s, c, 80, 40000, "PA", resp), False),
            (tcp(c, s, 40000, 80, "FA"), True),
        ],
        "dns": [
            (bytes(eth / IP(src=c, dst=s) / UDP(sport=40000, dport=53) / query), True),
            (bytes(eth / IP(src=s, dst=c) / UDP(sport=53, dport=40000) / query), False),
        ],
        "icmp": [
            (bytes(eth / IP(src=c, dst=s) / ICMP(type=8, id=7) / (b"x" * 32)), True),
            (bytes(eth / IP(src=s, dst=c) / ICMP(type=0, id=7) / (b"x" * 32)), False),
        ],
        "syn": [(tcp(c, s, 40000, 22, "S"), True)],
    }


def _patch(frame: bytes, from_client: bool, c: bytes, s: bytes, cp: int, sp: int) -> bytes:
    buf = bytearray(frame)
    src, dst = (c, s) if from_client else (s, c)
    buf[_ETH + 12 : _ETH + 16] = src
    buf[_ETH + 16 : _ETH + 20] = dst
    if buf[_ETH + 9] in (6, 17):
        p1, p2 = (cp, sp) if from_client else (sp, cp)
        struct.pack_into("!HH", buf, _ETH + 20, p1, p2)
    return bytes(buf)


def write_mixed_pcap(path: Path, n_packets: int, seed: int = 7) -> int:
    """Write `n_packets` packets (classic pcap, Ethernet) to `path`; return the count."""
    rng = random.Random(seed)
    tmpl = _templates()
    kinds = ["tcp"] * 55 + ["dns"] * 25 + ["icmp"] * 10 + ["syn"] * 10
    ts_us = 1_700_000_000 * 1_000_000
    written = 0
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        while written < n_packets:
            kind = rng.choice(kinds)
            c = bytes((10, rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)))
            s = bytes((192, 168, rng.randrange(4), rng.randrange(1, 255)))
            cport = rng.randrange(1024, 65535)
            sport = {"tcp": rng.choice((80, 443, 8080)), "dns": 53}.get(kind, 22)
            for frame, from_client in tmpl[kind]:
                if written >= n_packets:
                    break
                data = _patch(frame, from_client, c, s, cport, sport)
                ts_us += 10
                f.write(
                    struct.pack(
                        "<IIII", ts_us // 1_000_000, ts_us % 1_000_000, len(data), len(data)
                    )
                )
                f.write(data)
                written += 1
    return written


def content_rules(n: int, seed: int = 11, matching: int = 2) -> str:
    """`n` content rules; the first `matching` hit strings in the traffic ("User-Agent: bench"
    in every HTTP request, "hello world!" in every response), the rest are random."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-"
    hits = ["User-Agent: bench", "hello world!"]
    lines = []
    for i in range(n):
        if i < matching:
            pat = hits[i % len(hits)]
        else:
            pat = "".join(rng.choice(alphabet) for _ in range(rng.randrange(8, 13)))
        proto = "udp" if i % 5 == 3 else "tcp"
        nocase = " nocase;" if i % 7 == 0 else ""
        lines.append(
            f'alert {proto} any any -> any any (msg:"bench {i}"; content:"{pat}";{nocase} '
            f"sid:{1_000_000 + i}; rev:1;)"
        )
    return "\n".join(lines) + "\n"
