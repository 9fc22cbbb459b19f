"""The decoded packet: a flat record filled by `ids.engine.decode`.

Invariants: addresses are raw network-order bytes (4 or 16 long); ports are 0 for protocols
without ports; `payload` is the transport payload (bytes, possibly empty); every field has a
class-level default, so the detection hot path never needs `getattr` defaults.
"""

from __future__ import annotations

import ipaddress

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58

PROTO_NAMES = {PROTO_ICMP: "ICMP", PROTO_TCP: "TCP", PROTO_UDP: "UDP", PROTO_ICMPV6: "IPv6-ICMP"}

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_PSH = 0x08
TCP_ACK = 0x10
TCP_URG = 0x20
TCP_ECE = 0x40
TCP_CWR = 0x80


class Packet:
    """One decoded packet (or a reassembled IPv4 datagram, `pseudo=True`).

    Fields default at class level, so the decoder only assigns what a packet has (this keeps
    per-packet work small on the hot path).
    """

    ipver: int = 0
    l3_off: int = 0
    src: bytes = b""
    dst: bytes = b""
    proto: int = 0
    ttl: int = 0
    ip_id: int = 0
    sport: int = 0
    dport: int = 0
    tcp_flags: int = 0
    tcp_seq: int = 0
    tcp_ack: int = 0
    tcp_win: int = 0
    tcp_options: bytes = b""
    icmp_type: int = -1
    icmp_code: int = -1
    icmp_id: int = -1
    icmp_seq: int = -1
    icmp_emb: tuple[int, bytes, int, bytes, int] | None = None
    payload: bytes = b""
    pseudo: bool = False
    is_frag: bool = False

    def __init__(self, ts: float, linktype: int, raw: bytes) -> None:
        self.ts = ts
        self.linktype = linktype
        self.raw = raw

    @property
    def src_ip(self) -> str:
        """Source address as text (IPv6 compressed form)."""
        return format_ip(self.src)

    @property
    def dst_ip(self) -> str:
        """Destination address as text (IPv6 compressed form)."""
        return format_ip(self.dst)


def format_ip(addr: bytes) -> str:
    """Render a 4- or 16-byte address as text."""
    if len(addr) == 4:
        return f"{addr[0]}.{addr[1]}.{addr[2]}.{addr[3]}"
    return str(ipaddress.IPv6Address(addr))


def parse_tcp_options(options: bytes) -> list[tuple[int, bytes]]:
    """Split TCP option bytes into (kind, data) pairs; a malformed tail is dropped.

    Never raises: a length byte that runs past the end stops parsing.
    """
    out: list[tuple[int, bytes]] = []
    i = 0
    n = len(options)
    while i < n:
        kind = options[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= n:
            break
        olen = options[i + 1]
        if olen < 2 or i + olen > n:
            break
        out.append((kind, options[i + 2 : i + olen]))
        i += olen
    return out
