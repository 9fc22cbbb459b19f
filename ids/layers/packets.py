"""Decoded packet summaries and flow records: the input of the perimeter detectors.

A `PacketSummary` is the few fields the behavioural detectors need (time, addresses,
ports, protocol, TCP flags, payload length, DNS query name). `decode_frame` builds one from
a captured frame with `struct` (Ethernet, 802.1Q/802.1ad VLAN, Linux SLL, raw IP; IPv4,
IPv6; TCP, UDP, ICMP); `read_pcap` walks a classic pcap file.

Invariants:
- Every length is checked before it is used; a truncated or bogus frame raises
  `PacketDecodeError`, never IndexError/struct.error.
- Frames that are not IP (ARP, LLDP, ...) and non-first IPv4 fragments decode to None.
- `read_pcap` never loads more than one record at a time and caps a record at
  `MAX_RECORD_BYTES`; a file that ends mid-record stops the walk and is reported in
  `PcapStats.truncated_tail`.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from ids.layers.errors import PacketDecodeError, PcapFormatError

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_PSH = 0x08
TCP_ACK = 0x10

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113

MAX_RECORD_BYTES = 262_144
MAX_QNAME_LEN = 255


@dataclass(frozen=True, slots=True)
class PacketSummary:
    """One decoded packet. Ports are 0 for protocols without ports (ICMP type/code not kept)."""

    ts: float
    src: str
    dst: str
    sport: int
    dport: int
    proto: int
    tcp_flags: int = 0
    payload_len: int = 0
    dns_qname: str | None = None

    @property
    def is_syn(self) -> bool:
        """A connection opening: SYN set, ACK clear."""
        return self.proto == PROTO_TCP and (self.tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN

    @property
    def is_handshake_ack(self) -> bool:
        """A client ACK without SYN/RST (completes or continues an established connection)."""
        flags = self.tcp_flags
        return self.proto == PROTO_TCP and bool(flags & TCP_ACK) and not flags & (TCP_SYN | TCP_RST)


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """A connection summary (e.g. from a flow exporter). `established` means the client's
    handshake ACK was seen; `packets_to_server`/`bytes_to_server` count client data."""

    ts_start: float
    ts_end: float
    src: str
    dst: str
    sport: int
    dport: int
    proto: int
    established: bool
    packets_to_server: int = 1
    bytes_to_server: int = 0


def flow_to_packets(flow: FlowRecord) -> tuple[PacketSummary, ...]:
    """The opening packets a flow stands for: a SYN (TCP) or first datagram, plus the
    client's handshake ACK when the flow was established."""
    if flow.proto != PROTO_TCP:
        return (
            PacketSummary(
                flow.ts_start,
                flow.src,
                flow.dst,
                flow.sport,
                flow.dport,
                flow.proto,
                payload_len=flow.bytes_to_server,
            ),
        )
    opening = PacketSummary(
        flow.ts_start, flow.src, flow.dst, flow.sport, flow.dport, PROTO_TCP, TCP_SYN
    )
    if not flow.established:
        return (opening,)
    ack = PacketSummary(
        flow.ts_start, flow.src, flow.dst, flow.sport, flow.dport, PROTO_TCP, TCP_ACK
    )
    return (opening, ack)


def _need(data: bytes, end: int, what: str) -> None:
    if end > len(data):
        raise PacketDecodeError(f"truncated {what}: need {end} bytes, have {len(data)}", end)


def parse_dns_qname(payload: bytes) -> str | None:
    """The first question's name of a DNS query message, lower-cased, or None when the
    payload is not a query with one question. Raises `PacketDecodeError` on a bad name."""
    if len(payload) < 12:
        return None
    flags, qdcount = struct.unpack_from("!HH", payload, 2)
    if flags & 0x8000 or qdcount < 1:
        return None
    labels: list[str] = []
    pos = 12
    total = 0
    while True:
        _need(payload, pos + 1, "DNS label length")
        length = payload[pos]
        if length == 0:
            break
        if length & 0xC0:
            raise PacketDecodeError("compressed or reserved label in DNS question", pos)
        _need(payload, pos + 1 + length, "DNS label")
        total += length + 1
        if total > MAX_QNAME_LEN:
            raise PacketDecodeError("DNS name longer than 255 bytes", pos)
        labels.append(payload[pos + 1 : pos + 1 + length].decode("latin-1").lower())
        pos += 1 + length
    return ".".join(labels)


def _decode_transport(
    ts: float, src: str, dst: str, proto: int, data: bytes, off: int, end: int
) -> PacketSummary:
    if proto == PROTO_TCP:
        _need(data, off + 20, "TCP header")
        sport, dport = struct.unpack_from("!HH", data, off)
        data_off = (data[off + 12] >> 4) * 4
        if data_off < 20:
            raise PacketDecodeError("TCP data offset below 20", off + 12)
        _need(data, off + data_off, "TCP options")
        flags = data[off + 13]
        payload_len = max(0, end - off - data_off)
        return PacketSummary(ts, src, dst, sport, dport, proto, flags, payload_len)
    if proto == PROTO_UDP:
        _need(data, off + 8, "UDP header")
        sport, dport, ulen = struct.unpack_from("!HHH", data, off)
        if ulen < 8:
            raise PacketDecodeError("UDP length below 8", off + 4)
        payload_end = min(end, off + ulen)
        payload = data[off + 8 : payload_end]
        qname = parse_dns_qname(payload) if dport == 53 else None
        return PacketSummary(ts, src, dst, sport, dport, proto, 0, len(payload), qname)
    return PacketSummary(ts, src, dst, 0, 0, proto, 0, max(0, end - off))


def _decode_ip(ts: float, data: bytes, off: int) -> PacketSummary | None:
    _need(data, off + 1, "IP version")
    version = data[off] >> 4
    if version == 4:
        _need(data, off + 20, "IPv4 header")
        ihl = (data[off] & 0x0F) * 4
        if ihl < 20:
            raise PacketDecodeError("IPv4 header length below 20", off)
        total_len, _ident, frag = struct.unpack_from("!HHH", data, off + 2)
        if total_len < ihl:
            raise PacketDecodeError("IPv4 total length below header length", off + 2)
        _need(data, off + ihl, "IPv4 options")
        if frag & 0x1FFF:
            return None
        proto = data[off + 9]
        src = str(ipaddress.IPv4Address(data[off + 12 : off + 16]))
        dst = str(ipaddress.IPv4Address(data[off + 16 : off + 20]))
        end = min(len(data), off + total_len)
        return _decode_transport(ts, src, dst, proto, data, off + ihl, end)
    if version == 6:
        _need(data, off + 40, "IPv6 header")
        payload_len = struct.unpack_from("!H", data, off + 4)[0]
        proto = data[off + 6]
        src = str(ipaddress.IPv6Address(data[off + 8 : off + 24]))
        dst = str(ipaddress.IPv6Address(data[off + 24 : off + 40]))
        end = min(len(data), off + 40 + payload_len)
        return _decode_transport(ts, src, dst, proto, data, off + 40, end)
    raise PacketDecodeError(f"unknown IP version {version}", off)


def decode_frame(ts: float, data: bytes, linktype: int = LINKTYPE_ETHERNET) -> PacketSummary | None:
    """Decode one captured frame; None for non-IP frames and non-first fragments.

    Raises `PacketDecodeError` for truncated or malformed frames and unknown link types.
    """
    if linktype == LINKTYPE_RAW:
        return _decode_ip(ts, data, 0)
    if linktype == LINKTYPE_LINUX_SLL:
        _need(data, 16, "Linux SLL header")
        ethertype = struct.unpack_from("!H", data, 14)[0]
        off = 16
    elif linktype == LINKTYPE_ETHERNET:
        _need(data, 14, "Ethernet header")
        ethertype = struct.unpack_from("!H", data, 12)[0]
        off = 14
        for _ in range(2):
            if ethertype not in (0x8100, 0x88A8):
                break
            _need(data, off + 4, "VLAN tag")
            ethertype = struct.unpack_from("!H", data, off + 2)[0]
            off += 4
    else:
        raise PacketDecodeError(f"unsupported link type {linktype}")
    if ethertype not in (0x0800, 0x86DD):
        return None
    return _decode_ip(ts, data, off)


@dataclass
class PcapStats:
    """What a pcap walk saw: records read, frames skipped as non-IP, malformed frames."""

    records: int = 0
    decoded: int = 0
    not_ip: int = 0
    malformed: int = 0
    truncated_tail: bool = False
    errors: list[str] = field(default_factory=list)


def read_pcap(stream: BinaryIO, stats: PcapStats | None = None) -> Iterator[PacketSummary]:
    """Yield packet summaries from a classic pcap stream (µs or ns timestamps, either byte
    order). Malformed frames are counted in `stats` (first 20 reasons kept) and skipped.

    Raises `PcapFormatError` when the global header is bad or a record claims more than
    `MAX_RECORD_BYTES`.
    """
    st = stats if stats is not None else PcapStats()
    header = stream.read(24)
    if len(header) < 24:
        raise PcapFormatError("pcap global header truncated", len(header))
    magic = header[:4]
    formats = {
        b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
        b"\xa1\xb2\xc3\xd4": (">", 1e-6),
        b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
        b"\xa1\xb2\x3c\x4d": (">", 1e-9),
    }
    if magic not in formats:
        raise PcapFormatError(f"not a classic pcap file (magic {magic.hex()})")
    order, frac_unit = formats[magic]
    linktype = struct.unpack_from(order + "I", header, 20)[0] & 0x0FFFFFFF
    rec_fmt = order + "IIII"
    offset = 24
    while True:
        rec = stream.read(16)
        if not rec:
            return
        if len(rec) < 16:
            st.truncated_tail = True
            return
        sec, frac, incl_len, _orig_len = struct.unpack(rec_fmt, rec)
        if incl_len > MAX_RECORD_BYTES:
            raise PcapFormatError(f"record length {incl_len} exceeds {MAX_RECORD_BYTES}", offset)
        data = stream.read(incl_len)
        if len(data) < incl_len:
            st.truncated_tail = True
            return
        offset += 16 + incl_len
        st.records += 1
        try:
            pkt = decode_frame(sec + frac * frac_unit, data, linktype)
        except PacketDecodeError as exc:
            st.malformed += 1
            if len(st.errors) < 20:
                st.errors.append(f"record {st.records}: {exc}")
            continue
        if pkt is None:
            st.not_ip += 1
            continue
        st.decoded += 1
        yield pkt
