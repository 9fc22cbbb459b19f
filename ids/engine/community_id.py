"""Community ID flow hashing, version 1 (https://github.com/corelight/community-id-spec).

`community_id_v1(saddr, daddr, proto, sport, dport)` hashes with SHA-1:
seed (2 bytes, network order) | ordered src addr | ordered dst addr | proto (1) | pad (1) |
src port (2) | dst port (2), and returns "1:" + base64(digest). Endpoints are ordered so
both directions of a flow hash alike; ICMP/ICMPv6 types and codes map to port equivalents
(request/reply pairs become two-way) as Zeek does. Ports are omitted for protocols other
than TCP, UDP, SCTP, ICMP and ICMPv6.
"""

from __future__ import annotations

import base64
import hashlib
import struct

_PORT_PROTOS = frozenset({1, 6, 17, 58, 132})

_ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
_ICMP6_PAIRS = {
    128: 129,
    129: 128,
    130: 131,
    131: 130,
    133: 134,
    134: 133,
    135: 136,
    136: 135,
    139: 140,
    140: 139,
    144: 145,
    145: 144,
}


def community_id_v1(
    saddr: bytes, daddr: bytes, proto: int, sport: int, dport: int, seed: int = 0
) -> str:
    """Community ID v1 of a flow tuple (addresses as 4/16 raw bytes; for ICMP, sport is the
    type and dport the code). Never raises for well-sized addresses."""
    one_way = False
    if proto == 1 or proto == 58:
        pairs = _ICMP4_PAIRS if proto == 1 else _ICMP6_PAIRS
        mapped = pairs.get(sport)
        if mapped is None:
            one_way = True
        else:
            dport = mapped
    if not one_way and (saddr > daddr or (saddr == daddr and sport > dport)):
        saddr, daddr, sport, dport = daddr, saddr, dport, sport
    data = struct.pack("!H", seed & 0xFFFF) + saddr + daddr + struct.pack("!BB", proto, 0)
    if proto in _PORT_PROTOS:
        data += struct.pack("!HH", sport & 0xFFFF, dport & 0xFFFF)
    return "1:" + base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()
