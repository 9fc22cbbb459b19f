"""Generate benchmark inputs: a mixed-traffic pcap (written with scapy) and N content rules.

Traffic mix (deterministic, seeded): TCP sessions (handshake, HTTP-like requests and
responses, FIN), DNS-like UDP queries/answers, ICMP echo, bare SYNs; small packets dominate,
like the "mixed small packets" Suricata figure in the issue. Rules are `alert tcp/udp` with
one random 8-12 byte content each (a few match), so the prefilter does the work.
"""

from __future__ import annotations

import random
from pathlib import Path


def write_mixed_pcap(path: Path, n_packets: int, seed: int = 7) -> int:
    """Write about `n_packets` packets to `path`; return the number written."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapWriter

    rng = random.Random(seed)
    pkts: list[bytes] = []
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    # Build a small set of templates then vary addresses by patching raw bytes with scapy.
    t = 1_700_000_000.0
    writer = PcapWriter(str(path), linktype=1, sync=False)
    count = 0
    while count < n_packets:
        kind = rng.random()
        c = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        s = f"192.168.{rng.randrange(4)}.{rng.randrange(1, 255)}"
        sp = rng.randrange(1024, 65535)
        if kind < 0.55:
            dp = rng.choice((80, 443, 8080, 22))
            seq, ack = rng.randrange(2**32), rng.randrange(2**32)
            body = b"GET /index%d.html HTTP/1.1\r\nHost: example.org\r\n\r\n" % rng.randrange(999)
            resp = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world!"
            pkts = [
                eth / IP(src=c, dst=s) / TCP(sport=sp, dport=dp, flags="S", seq=seq),
                eth / IP(src=s, dst=c) / TCP(sport=dp, dport=sp, flags="SA", seq=ack, ack=seq + 1),
                eth
                / IP(src=c, dst=s)
                / TCP(sport=sp, dport=dp, flags="A", seq=seq + 1, ack=ack + 1),
                eth / IP(src=c, dst=s) / TCP(sport=sp, dport=dp, flags="PA", seq=seq + 1) / body,
                eth / IP(src=s, dst=c) / TCP(sport=dp, dport=sp, flags="PA", seq=ack + 1) / resp,
                eth
                / IP(src=c, dst=s)
                / TCP(sport=sp, dport=dp, flags="FA", seq=seq + 1 + len(body)),
            ]
        elif kind < 0.8:
            q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03org\x00\x00\x01\x00\x01"
            pkts = [
                eth / IP(src=c, dst=s) / UDP(sport=sp, dport=53) / q,
                eth / IP(src=s, dst=c) / UDP(sport=53, dport=sp) / (q + b"\xc0\x0c\x00\x01"),
            ]
        elif kind < 0.9:
            pkts = [
                eth / IP(src=c, dst=s) / ICMP(type=8, id=rng.randrange(65535)) / (b"x" * 32),
                eth / IP(src=s, dst=c) / ICMP(type=0) / (b"x" * 32),
            ]
        else:
            pkts = [eth / IP(src=c, dst=s) / TCP(sport=sp, dport=rng.randrange(1, 1024), flags="S")]
        for p in pkts:
            t += 0.00001
            p.time = t
            writer.write(p)
            count += 1
    writer.close()
    return count


def content_rules(n: int, seed: int = 11, matching: int = 5) -> str:
    """`n` content rules; the first `matching` ones hit strings present in the traffic."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-"
    hits = ["index7", "Host: example", "hello world", "\\x07example", "200 OK"]
    lines = []
    for i in range(n):
        if i < matching:
            pat = hits[i % len(hits)].replace("\\x07", "|07|")
        else:
            pat = "".join(rng.choice(alphabet) for _ in range(rng.randrange(8, 13)))
        proto = "udp" if i % 5 == 3 else "tcp"
        nocase = " nocase;" if i % 7 == 0 else ""
        lines.append(
            f'alert {proto} any any -> any any (msg:"bench {i}"; content:"{pat}";{nocase} '
            f"sid:{1_000_000 + i}; rev:1;)"
        )
    return "\n".join(lines) + "\n"
