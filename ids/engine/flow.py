"""Bidirectional flow table with TCP state, direction and bounded memory.

A flow is keyed by its 5-tuple in canonical (sorted endpoint) order, so both directions find
the same flow. ICMP and other port-less protocols key on addresses and protocol only, as
Suricata does. The client is the sender of the first packet, except a first TCP SYN/ACK,
whose receiver is the client.

Invariants:
- At most `max_flows` flows are held. A new flow when the table is full evicts the least
  recently used flow (reason "evicted"); flows idle longer than their timeout are expired
  (reason "timeout"). Every removed flow is appended to `ended` for the caller to log.
- `flow_id` is a deterministic function of the canonical tuple and the first packet's time,
  so the same capture always yields the same ids.
- TCP state follows the handshake: syn_sent -> syn_recv -> established -> closing/closed.
  A session picked up without a SYN is established only when `midstream` is enabled.
"""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict

from ids.engine.community_id import community_id_v1
from ids.engine.errors import EngineConfigError
from ids.engine.packet import (
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    Packet,
)

FlowKey = tuple[int, bytes, int, bytes, int]

TCP_NONE = "none"
TCP_SYN_SENT = "syn_sent"
TCP_SYN_RECV = "syn_recv"
TCP_ESTABLISHED = "established"
TCP_CLOSING = "closing"
TCP_CLOSED = "closed"

_PORT_PROTOS = frozenset({PROTO_TCP, PROTO_UDP, 132})
_STATE_FLAGS = TCP_SYN | TCP_FIN | TCP_RST
_FROZEN_ACTIONS = frozenset({"drop", "bypass", "reject"})


class Flow:
    """State of one bidirectional flow."""

    state: str = "new"
    tcp_state: str = TCP_NONE
    pkt_established: bool = False
    midstream: bool = False
    fin_seen: int = 0
    pkts_toserver: int = 0
    pkts_toclient: int = 0
    bytes_toserver: int = 0
    bytes_toclient: int = 0
    action: str = ""
    app_proto: str = ""
    app_tries: int = 0
    alerted: bool = False
    community_id: str = ""
    _start_ts_text: str = ""
    tails: list[bytes] | None = None
    next_seq: list[int] | None = None

    def __init__(self, key: FlowKey, pkt: Packet, swap: bool) -> None:
        self.key = key
        self.proto = pkt.proto
        if swap:
            self.client, self.client_port = pkt.dst, pkt.dport
            self.server, self.server_port = pkt.src, pkt.sport
        else:
            self.client, self.client_port = pkt.src, pkt.sport
            self.server, self.server_port = pkt.dst, pkt.dport
        self.first_ts = pkt.ts
        self.last_ts = pkt.ts
        self.flowbits: set[str] = set()
        self.flowints: dict[str, int] = {}
        self.flow_id = flow_id_of(key, pkt.ts)

    @property
    def established(self) -> bool:
        """True once the TCP handshake completed, or both directions were seen (others)."""
        return self.state == "established"

    def start_timestamp(self) -> str:
        """EVE timestamp of the first packet (computed once)."""
        if not self._start_ts_text:
            from ids.engine.eve import format_timestamp

            self._start_ts_text = format_timestamp(self.first_ts)
        return self._start_ts_text

    def get_community_id(self) -> str:
        """Community ID v1 of this flow (computed once)."""
        if not self.community_id:
            if self.proto in _PORT_PROTOS:
                sp, dp = self.client_port, self.server_port
            else:
                sp, dp = 0, 0
            self.community_id = community_id_v1(self.client, self.server, self.proto, sp, dp)
        return self.community_id


def flow_id_of(key: FlowKey, ts: float) -> int:
    """Deterministic 51-bit flow id from the canonical tuple and the first packet's time."""
    proto, a, ap, b, bp = key
    data = struct.pack("!BHHq", proto, ap, bp, round(ts * 1e6)) + a + b
    return ((zlib.crc32(data) << 19) ^ zlib.adler32(data)) & ((1 << 51) - 1)


def icmp_community_id(flow: Flow, pkt: Packet) -> str:
    """Community ID for an ICMP packet: ICMP maps type/code to port equivalents per packet."""
    return community_id_v1(pkt.src, pkt.dst, pkt.proto, pkt.icmp_type, pkt.icmp_code)


class FlowTable:
    """Find or create the flow of each packet and track its state.

    Raises:
        EngineConfigError: `max_flows` is below 1.
    """

    def __init__(
        self,
        max_flows: int = 65_536,
        midstream: bool = False,
        timeout_new_s: float = 30.0,
        timeout_established_s: float = 300.0,
        timeout_closed_s: float = 10.0,
        record_ended: bool = True,
    ) -> None:
        if max_flows < 1:
            raise EngineConfigError("max_flows", "must be at least 1")
        self.max_flows = max_flows
        self.midstream = midstream
        self.timeout_new_s = timeout_new_s
        self.timeout_established_s = timeout_established_s
        self.timeout_closed_s = timeout_closed_s
        self._flows: OrderedDict[FlowKey, Flow] = OrderedDict()
        self.ended: list[tuple[Flow, str]] = []
        self.record_ended = record_ended
        self.created = 0
        self.evicted = 0
        self.timed_out = 0
        self._last_prune = 0.0

    def __len__(self) -> int:
        return len(self._flows)

    def _timeout(self, flow: Flow) -> float:
        if flow.state == "closed":
            return self.timeout_closed_s
        if flow.state == "established":
            return self.timeout_established_s
        return self.timeout_new_s

    def prune(self, now: float) -> None:
        """Expire idle flows from the least recently used end."""
        flows = self._flows
        while flows:
            key = next(iter(flows))
            flow = flows[key]
            if now - flow.last_ts <= self._timeout(flow):
                break
            del flows[key]
            self.timed_out += 1
            if self.record_ended:
                self.ended.append((flow, "timeout"))

    def flush(self) -> None:
        """End every flow (end of capture), oldest first."""
        if self.record_ended:
            self.ended.extend((flow, "shutdown") for flow in self._flows.values())
        self._flows.clear()

    def lookup(self, pkt: Packet) -> tuple[Flow, bool]:
        """Return (flow, to_server) for `pkt`, creating and updating the flow."""
        proto = pkt.proto
        src, dst = pkt.src, pkt.dst
        if proto in _PORT_PROTOS:
            sp, dp = pkt.sport, pkt.dport
        else:
            sp = dp = 0
        if src < dst or (src == dst and sp <= dp):
            key = (proto, src, sp, dst, dp)
        else:
            key = (proto, dst, dp, src, sp)
        flows = self._flows
        ts = pkt.ts
        emb = pkt.icmp_emb
        if emb is not None:
            eflow = self._embedded_flow(emb)
            if eflow is not None:
                eflow.last_ts = ts
                flows.move_to_end(eflow.key)
                to_server = not (emb[1] == eflow.client and emb[2] == eflow.client_port)
                self._count(eflow, to_server, len(pkt.raw))
                eflow.pkt_established = eflow.state == "established"
                return eflow, to_server
        flow = flows.get(key)
        if flow is None:
            if ts - self._last_prune >= 1.0:
                self._last_prune = ts
                self.prune(ts)
            if len(flows) >= self.max_flows:
                gone = flows.pop(next(iter(flows)))
                if self.record_ended:
                    self.ended.append((gone, "evicted"))
                self.evicted += 1
            swap = proto == PROTO_TCP and (
                (pkt.tcp_flags & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK)
                or (not pkt.tcp_flags & TCP_SYN and sp < 1024 <= dp)
            )
            flow = Flow(key, pkt, swap)
            flows[key] = flow
            self.created += 1
        else:
            flows.move_to_end(key)
        flow.last_ts = ts
        to_server = src == flow.client and sp == flow.client_port
        if src == dst and sp == dp:
            to_server = True
        if to_server:
            flow.pkts_toserver += 1
            flow.bytes_toserver += len(pkt.raw)
        else:
            flow.pkts_toclient += 1
            flow.bytes_toclient += len(pkt.raw)
        if proto == PROTO_TCP:
            before = flow.state == "established"
            if before and not pkt.tcp_flags & _STATE_FLAGS:
                flow.pkt_established = True
                return flow, to_server
            if flow.action not in _FROZEN_ACTIONS:
                self._tcp(flow, pkt.tcp_flags, to_server)
            # the packet completing the handshake is not yet "established" (Suricata)
            flow.pkt_established = before or (flow.midstream and flow.state == "established")
        else:
            if flow.state == "new" and flow.pkts_toserver and flow.pkts_toclient:
                flow.state = "established"
            flow.pkt_established = flow.state == "established"
        return flow, to_server

    @staticmethod
    def _count(flow: Flow, to_server: bool, size: int) -> None:
        if to_server:
            flow.pkts_toserver += 1
            flow.bytes_toserver += size
        else:
            flow.pkts_toclient += 1
            flow.bytes_toclient += size

    def _embedded_flow(self, emb: tuple[int, bytes, int, bytes, int]) -> Flow | None:
        proto, src, sp, dst, dp = emb
        key = (proto, src, sp, dst, dp) if (src, sp) <= (dst, dp) else (proto, dst, dp, src, sp)
        return self._flows.get(key)

    def _tcp(self, flow: Flow, flags: int, to_server: bool) -> None:
        st = flow.tcp_state
        if flags & TCP_RST:
            if st != TCP_NONE or self.midstream:
                flow.tcp_state = TCP_CLOSED
                flow.state = "closed"
            return
        if st == TCP_NONE:
            syn = flags & (TCP_SYN | TCP_ACK)
            if syn == TCP_SYN:
                flow.tcp_state = TCP_SYN_SENT
            elif syn == (TCP_SYN | TCP_ACK) and self.midstream:
                flow.tcp_state = TCP_SYN_RECV
                flow.midstream = True
            elif self.midstream and flow.pkts_toserver + flow.pkts_toclient == 1:
                flow.tcp_state = TCP_ESTABLISHED
                flow.state = "established"
                flow.midstream = True
            else:
                flow.midstream = True
            return
        if st == TCP_SYN_SENT:
            if not to_server and flags & TCP_SYN and flags & TCP_ACK:
                flow.tcp_state = TCP_SYN_RECV
            return
        if st == TCP_SYN_RECV:
            if to_server and flags & TCP_ACK and not flags & TCP_SYN:
                flow.tcp_state = TCP_ESTABLISHED
                flow.state = "established"
            return
        if flags & TCP_FIN and st in (TCP_ESTABLISHED, TCP_CLOSING):
            flow.fin_seen |= 1 if to_server else 2
            flow.tcp_state = TCP_CLOSED if flow.fin_seen == 3 else TCP_CLOSING
            if flow.fin_seen == 3:
                flow.state = "closed"


def proto_has_ports(proto: int) -> bool:
    """True for protocols whose flows are keyed by ports."""
    return proto in _PORT_PROTOS


__all__ = [
    "PROTO_ICMP",
    "PROTO_ICMPV6",
    "Flow",
    "FlowTable",
    "icmp_community_id",
    "proto_has_ports",
]
