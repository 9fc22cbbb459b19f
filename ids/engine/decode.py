"""Fast-path packet decoder written with `struct`: link layer to transport payload.

Link types: Ethernet (1) with 802.1Q / 802.1ad / QinQ tags and NSH, Linux SLL (113) and
SLL2 (276), raw IP (12, 14, 101, 228, 229), BSD loopback (0, 108). Network: IPv4 (options
skipped, checksum not verified, fragments reassembled), IPv6 (extension headers skipped, fragments
reassembled).
Transport: TCP (flags, options kept raw), UDP, ICMP, ICMPv6. Tunnels (GRE, IP-in-IP) are
not decapsulated: such packets are matched on their outer header only.

Invariants: `Decoder.decode` never raises on packet bytes. Every truncated, malformed or
bogus-length header is counted in `Decoder.events` under a dotted name (Suricata's decoder
event names where one exists) and the packet is returned as far as it decoded, or None when
not even an IP header was found.
"""

from __future__ import annotations

import struct

from ids.engine.frag import Defragmenter
from ids.engine.packet import (
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    Packet,
)

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_SLL = 113
LINKTYPE_SLL2 = 276
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
_RAW_LINKTYPES = frozenset({12, 14, LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6})

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_VLAN = frozenset({0x8100, 0x88A8, 0x9100})
_ETH_NSH = 0x894F
_MAX_VLAN_DEPTH = 3
_MAX_ENCAP_DEPTH = 3
_IPV6_EXT = frozenset({0, 43, 60, 51, 135, 139, 140})

_ICMP4_ERRORS = frozenset({3, 4, 5, 11, 12})
_ICMP6_ERRORS = frozenset({1, 2, 3, 4})

_u16 = struct.Struct("!H").unpack_from
_ipv4_hdr = struct.Struct("!BBHHHBB").unpack_from
_ipv4_fast = struct.Struct("!2xHHHBB").unpack_from
_tcp_hdr = struct.Struct("!HHIIBBH").unpack_from
_udp_hdr = struct.Struct("!HHH").unpack_from
_icmp_hdr = struct.Struct("!BBHHH").unpack_from


class Decoder:
    """Decode raw frames into `Packet`s, counting decode events instead of raising."""

    def __init__(self, defrag: Defragmenter | None = None) -> None:
        self.events: dict[str, int] = {}
        self.counters: dict[str, int] = {
            "pkts": 0,
            "ipv4": 0,
            "ipv6": 0,
            "tcp": 0,
            "udp": 0,
            "icmpv4": 0,
            "icmpv6": 0,
            "vlan": 0,
            "ipv4_reassembled": 0,
            "ipv6_reassembled": 0,
        }
        self.defrag = defrag if defrag is not None else Defragmenter(self.events)
        if defrag is not None:
            defrag.events = self.events

    def _event(self, name: str) -> None:
        ev = self.events
        ev[name] = ev.get(name, 0) + 1

    def decode(self, raw: bytes, ts: float, linktype: int) -> Packet | None:
        """Decode one frame. Returns None when no IP packet could be decoded."""
        counters = self.counters
        counters["pkts"] += 1
        if linktype == LINKTYPE_ETHERNET:
            fast = self._fast_ether_ipv4(raw, ts, counters)
            if fast is not None:
                return fast
        return self._decode_general(raw, ts, linktype)

    def _fast_ether_ipv4(self, raw: bytes, ts: float, counters: dict[str, int]) -> Packet | None:
        """Inline path for the common case: Ethernet (one optional VLAN tag), IPv4 without
        options or fragmentation, TCP or UDP with sane lengths. None means "take the general
        path", never "bad packet"; the general path does the counting of anything unusual."""
        n = len(raw)
        if n < 42:
            return None
        etype = (raw[12] << 8) | raw[13]
        off = 14
        vlan = 0
        if etype == 0x8100:
            etype = (raw[16] << 8) | raw[17]
            off = 18
            vlan = 1
        if etype != 0x0800 or raw[off] != 0x45:
            return None
        total, ip_id, frag, ttl, proto = _ipv4_fast(raw, off)
        end = off + total
        if total < 28 or n < end or frag & 0x3FFF:
            return None
        l4 = off + 20
        if proto == PROTO_TCP:
            if end - l4 < 20:
                return None
            sport, dport, seq, ack, doff, flags, win = _tcp_hdr(raw, l4)
            hlen = (doff >> 4) * 4
            if hlen < 20 or hlen > end - l4:
                return None
            pkt = Packet(ts, LINKTYPE_ETHERNET, raw)
            pkt.tcp_seq = seq
            pkt.tcp_ack = ack
            pkt.tcp_flags = flags
            pkt.tcp_win = win
            if hlen > 20:
                pkt.tcp_options = raw[l4 + 20 : l4 + hlen]
            pkt.payload = raw[l4 + hlen : end]
            counters["tcp"] += 1
        elif proto == PROTO_UDP:
            sport, dport, ulen = _udp_hdr(raw, l4)
            if ulen < 8 or ulen > end - l4:
                return None
            pkt = Packet(ts, LINKTYPE_ETHERNET, raw)
            pkt.payload = raw[l4 + 8 : l4 + ulen]
            counters["udp"] += 1
        else:
            return None
        pkt.sport = sport
        pkt.dport = dport
        pkt.ipver = 4
        pkt.l3_off = off
        pkt.src = raw[off + 12 : off + 16]
        pkt.dst = raw[off + 16 : off + 20]
        pkt.ttl = ttl
        pkt.ip_id = ip_id
        pkt.proto = proto
        counters["ipv4"] += 1
        if vlan:
            counters["vlan"] += 1
        return pkt

    def _decode_general(self, raw: bytes, ts: float, linktype: int) -> Packet | None:
        pkt = Packet(ts, linktype, raw)
        if linktype == LINKTYPE_ETHERNET:
            ok = self._ether(pkt, raw, 0, 0)
        elif linktype in _RAW_LINKTYPES:
            ok = self._ip(pkt, raw, 0, 0)
        elif linktype == LINKTYPE_SLL:
            if len(raw) < 16:
                self._event("sll.pkt_too_small")
                return None
            ok = self._ethertype(pkt, raw, 16, _u16(raw, 14)[0], 0)
        elif linktype == LINKTYPE_SLL2:
            if len(raw) < 20:
                self._event("sll2.pkt_too_small")
                return None
            ok = self._ethertype(pkt, raw, 20, _u16(raw, 0)[0], 0)
        elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
            if len(raw) < 4:
                self._event("null.pkt_too_small")
                return None
            ok = self._ip(pkt, raw, 4, 0)
        else:
            self._event("decoder.unsupported_linktype")
            return None
        return pkt if ok else None

    def _ether(self, pkt: Packet, raw: bytes, off: int, depth: int) -> bool:
        if len(raw) < off + 14:
            self._event("ethernet.pkt_too_small")
            return False
        return self._ethertype(pkt, raw, off + 14, _u16(raw, off + 12)[0], depth)

    def _ethertype(self, pkt: Packet, raw: bytes, off: int, etype: int, depth: int) -> bool:
        vlans = 0
        while etype in _ETH_VLAN:
            vlans += 1
            if vlans > _MAX_VLAN_DEPTH:
                self._event("vlan.too_many_layers")
                return False
            if len(raw) < off + 4:
                self._event("vlan.header_too_small")
                return False
            self.counters["vlan"] += 1
            etype = _u16(raw, off + 2)[0]
            off += 4
        if etype in (_ETH_IPV4, _ETH_IPV6):
            return self._ip(pkt, raw, off, depth)
        if etype == _ETH_NSH:
            return self._nsh(pkt, raw, off, depth)
        self._event("ethernet.unknown_ethertype")
        return False

    def _nsh(self, pkt: Packet, raw: bytes, off: int, depth: int) -> bool:
        if len(raw) < off + 8:
            self._event("nsh.header_too_small")
            return False
        hlen = (raw[off + 1] & 0x3F) * 4
        nxt = raw[off + 3]
        if hlen < 8 or len(raw) < off + hlen or depth >= _MAX_ENCAP_DEPTH:
            self._event("nsh.bad_header_length")
            return False
        if nxt in (1, 2):
            return self._ip(pkt, raw, off + hlen, depth + 1)
        if nxt == 3:
            return self._ether(pkt, raw, off + hlen, depth + 1)
        self._event("nsh.unknown_payload")
        return False

    def _ip(self, pkt: Packet, raw: bytes, off: int, depth: int) -> bool:
        if len(raw) <= off:
            self._event("ip.pkt_too_small")
            return False
        ver = raw[off] >> 4
        if ver == 4:
            return self._ipv4(pkt, raw, off, depth)
        if ver == 6:
            return self._ipv6(pkt, raw, off, depth)
        self._event("ip.invalid_version")
        return False

    def _ipv4(self, pkt: Packet, raw: bytes, off: int, depth: int) -> bool:
        if len(raw) < off + 20:
            self._event("ipv4.pkt_too_small")
            return False
        vhl, _tos, total, ip_id, frag, ttl, proto = _ipv4_hdr(raw, off)
        hlen = (vhl & 0x0F) * 4
        if hlen < 20:
            self._event("ipv4.hlen_too_small")
            return False
        if total < hlen:
            self._event("ipv4.iplen_smaller_than_hlen")
            return False
        if len(raw) < off + total:
            self._event("ipv4.trunc_pkt")
            return False
        self.counters["ipv4"] += 1
        pkt.ipver = 4
        pkt.l3_off = off
        pkt.src = raw[off + 12 : off + 16]
        pkt.dst = raw[off + 16 : off + 20]
        pkt.ttl = ttl
        pkt.ip_id = ip_id
        pkt.proto = proto
        end = off + total
        more = bool(frag & 0x2000)
        foff = (frag & 0x1FFF) * 8
        if more or foff:
            key = (pkt.src, pkt.dst, ip_id, proto)
            done = self.defrag.add(
                key, pkt.ts, raw[off : off + hlen], foff, more, raw[off + hlen : end]
            )
            if done is None:
                pkt.is_frag = True
                return True  # a fragment: IP layer only, no transport
            _header, body = done
            self.counters["ipv4_reassembled"] += 1
            pkt.pseudo = True
            return self._transport(pkt, body, 0, len(body), proto, depth)
        return self._transport(pkt, raw, off + hlen, end, proto, depth)

    def _ipv6(self, pkt: Packet, raw: bytes, off: int, depth: int) -> bool:
        if len(raw) < off + 40:
            self._event("ipv6.pkt_too_small")
            return False
        plen = _u16(raw, off + 4)[0]
        nxt = raw[off + 6]
        end = off + 40 + plen
        if len(raw) < end:
            self._event("ipv6.trunc_pkt")
            return False
        self.counters["ipv6"] += 1
        pkt.ipver = 6
        pkt.l3_off = off
        pkt.src = raw[off + 8 : off + 24]
        pkt.dst = raw[off + 24 : off + 40]
        pkt.ttl = raw[off + 7]
        return self._ipv6_chain(pkt, raw, off + 40, end, nxt, depth, False)

    def _ipv6_chain(
        self, pkt: Packet, raw: bytes, cur: int, end: int, nxt: int, depth: int, whole: bool
    ) -> bool:
        """Walk extension headers from `cur`; fragments go to reassembly (once per datagram:
        `whole` marks a reassembled payload, in which a fragment header is bogus)."""
        hops = 0
        while nxt in _IPV6_EXT or nxt == 44:
            hops += 1
            if hops > 8 or cur + 8 > end:
                self._event("ipv6.exthdr_invalid")
                pkt.proto = nxt
                return True
            if nxt == 44:
                frag = _u16(raw, cur + 2)[0]
                if frag & 0xFFF9 and not whole:
                    return self._ipv6_fragment(pkt, raw, cur, end, frag, depth)
                nxt = raw[cur]
                cur += 8
                continue
            hl = (raw[cur + 1] + 2) * 4 if nxt == 51 else (raw[cur + 1] + 1) * 8
            nxt = raw[cur]
            cur += hl
        if cur > end:
            self._event("ipv6.exthdr_invalid")
            return True
        pkt.proto = nxt
        return self._transport(pkt, raw, cur, end, nxt, depth)

    def _ipv6_fragment(
        self, pkt: Packet, raw: bytes, cur: int, end: int, frag: int, depth: int
    ) -> bool:
        fnxt = raw[cur]
        ident = struct.unpack_from("!I", raw, cur + 4)[0]
        offset = frag & 0xFFF8
        more = bool(frag & 1)
        pkt.proto = fnxt
        key = (pkt.src, pkt.dst, ident, -1)
        first = bytes([fnxt]) if offset == 0 else b""
        done = self.defrag.add(key, pkt.ts, first, offset, more, raw[cur + 8 : end])
        if done is None:
            pkt.is_frag = True
            return True
        header, body = done
        self.counters["ipv6_reassembled"] += 1
        pkt.pseudo = True
        return self._ipv6_chain(pkt, body, 0, len(body), header[0], depth, True)

    def _transport(
        self, pkt: Packet, raw: bytes, off: int, end: int, proto: int, depth: int
    ) -> bool:
        avail = end - off
        if proto == PROTO_TCP:
            if avail < 20:
                self._event("tcp.pkt_too_small")
                return True
            sport, dport, seq, ack, doff, flags, win = _tcp_hdr(raw, off)
            hlen = (doff >> 4) * 4
            if hlen < 20 or hlen > avail:
                self._event("tcp.invalid_optlen" if hlen >= 20 else "tcp.hlen_too_small")
                return True
            self.counters["tcp"] += 1
            pkt.sport = sport
            pkt.dport = dport
            pkt.tcp_seq = seq
            pkt.tcp_ack = ack
            pkt.tcp_flags = flags
            pkt.tcp_win = win
            if hlen > 20:
                pkt.tcp_options = raw[off + 20 : off + hlen]
            pkt.payload = raw[off + hlen : end]
            return True
        if proto == PROTO_UDP:
            if avail < 8:
                self._event("udp.pkt_too_small")
                return True
            sport, dport, ulen = _udp_hdr(raw, off)
            if ulen < 8 or ulen > avail:
                self._event("udp.len_invalid")
                return True
            self.counters["udp"] += 1
            pkt.sport = sport
            pkt.dport = dport
            pkt.payload = raw[off + 8 : off + ulen]
            return True
        if proto in (PROTO_ICMP, PROTO_ICMPV6):
            if avail < 4:
                self._event("icmp.pkt_too_small")
                return True
            self.counters["icmpv4" if proto == PROTO_ICMP else "icmpv6"] += 1
            pkt.icmp_type = raw[off]
            pkt.icmp_code = raw[off + 1]
            if avail >= 8:
                _t, _c, _ck, ident, seq = _icmp_hdr(raw, off)
                pkt.icmp_id = ident
                pkt.icmp_seq = seq
                pkt.payload = raw[off + 8 : end]
                errs = _ICMP4_ERRORS if proto == PROTO_ICMP else _ICMP6_ERRORS
                if pkt.icmp_type in errs:
                    pkt.icmp_emb = _embedded(raw, off + 8, end)
            return True
        return True


def _embedded(raw: bytes, off: int, end: int) -> tuple[int, bytes, int, bytes, int] | None:
    """The (proto, src, sport, dst, dport) of the packet quoted in an ICMP error, if whole."""
    if end - off < 1:
        return None
    ver = raw[off] >> 4
    if ver == 4 and end - off >= 20:
        hlen = (raw[off] & 0x0F) * 4
        proto = raw[off + 9]
        src, dst = raw[off + 12 : off + 16], raw[off + 16 : off + 20]
        t = off + hlen
    elif ver == 6 and end - off >= 40:
        proto = raw[off + 6]
        src, dst = raw[off + 8 : off + 24], raw[off + 24 : off + 40]
        t = off + 40
    else:
        return None
    if proto in (PROTO_TCP, PROTO_UDP) and t + 4 <= end and hlen_ok(ver, raw, off):
        sport, dport = struct.unpack_from("!HH", raw, t)
        return proto, src, sport, dst, dport
    return None


def hlen_ok(ver: int, raw: bytes, off: int) -> bool:
    """True when an embedded IPv4 header length is sane (IPv6 has a fixed header)."""
    return ver == 6 or (raw[off] & 0x0F) >= 5
