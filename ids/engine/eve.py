"""Suricata EVE JSON records: alert, flow and stats events, and their serialisation.

Invariants: every record is a plain dict built in a fixed key order, containing only str,
int, bool, dict and list values; `dumps` renders it compactly without sorting, so the same
input always gives byte-identical lines. Timestamps are the packet (pcap) time in UTC in
Suricata's format `YYYY-MM-DDTHH:MM:SS.ffffff+0000`.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from ids.engine.flow import Flow
from ids.engine.packet import PROTO_ICMP, PROTO_ICMPV6, PROTO_NAMES, Packet, format_ip
from ids.engine.rules.model import Rule

_PORT_PROTOS = frozenset({6, 17, 132})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_second_cache: dict[int, str] = {}


def format_timestamp(ts: float) -> str:
    """Suricata's EVE timestamp for `ts` seconds since the epoch (UTC)."""
    micros = round(ts * 1_000_000)
    sec, us = divmod(micros, 1_000_000)
    prefix = _second_cache.get(sec)
    if prefix is None:
        try:
            dt = datetime.fromtimestamp(sec, tz=UTC)
        except (OverflowError, OSError, ValueError):
            dt = _EPOCH
        prefix = dt.strftime("%Y-%m-%dT%H:%M:%S")
        if len(_second_cache) >= 4096:
            _second_cache.clear()
        _second_cache[sec] = prefix
    return f"{prefix}.{us:06d}+0000"


def proto_name(proto: int) -> str:
    """EVE `proto` value: TCP, UDP, ICMP, IPv6-ICMP, or the number as text."""
    return PROTO_NAMES.get(proto, str(proto))


def _header(
    pkt: Packet, flow: Flow | None, pcap_cnt: int | None, event_type: str
) -> dict[str, Any]:
    """The fields every packet record starts with, in Suricata's key order."""
    ev: dict[str, Any] = {"timestamp": format_timestamp(pkt.ts)}
    if flow is not None:
        ev["flow_id"] = flow.flow_id
    if pcap_cnt is not None:
        ev["pcap_cnt"] = pcap_cnt
    ev["event_type"] = event_type
    ev["src_ip"] = format_ip(pkt.src)
    if pkt.proto in _PORT_PROTOS:
        ev["src_port"] = pkt.sport
    ev["dest_ip"] = format_ip(pkt.dst)
    if pkt.proto in _PORT_PROTOS:
        ev["dest_port"] = pkt.dport
    ev["proto"] = proto_name(pkt.proto)
    return ev


def alert_event(
    rule: Rule,
    pkt: Packet,
    flow: Flow | None,
    to_server: bool,
    pcap_cnt: int | None,
    blocked: bool,
    node_id: str | None,
) -> dict[str, Any]:
    """Build one EVE alert record for `rule` matching `pkt`."""
    ev = _header(pkt, flow, pcap_cnt, "alert")
    if pkt.proto in (PROTO_ICMP, PROTO_ICMPV6) and pkt.icmp_type >= 0:
        ev["icmp_type"] = pkt.icmp_type
        ev["icmp_code"] = pkt.icmp_code
    if flow is not None:
        ev["community_id"] = community_id_for(flow, pkt)
        ev["direction"] = "to_server" if to_server else "to_client"
    if flow is not None and flow.app_proto:
        ev["app_proto"] = flow.app_proto
    alert: dict[str, Any] = {
        "action": "blocked" if blocked else "allowed",
        "gid": rule.gid,
        "signature_id": rule.sid,
        "rev": rule.rev,
        "signature": rule.msg,
        "category": rule.category,
        "severity": rule.priority,
    }
    if rule.target:
        src_is_target = rule.target == "src_ip"
        a = {"ip": format_ip(pkt.src), "port": pkt.sport}
        b = {"ip": format_ip(pkt.dst), "port": pkt.dport}
        alert["source"], alert["target"] = (b, a) if src_is_target else (a, b)
    if rule.metadata:
        alert["metadata"] = _metadata(rule.metadata)
    ev["alert"] = alert
    if flow is not None:
        ev["flow"] = {
            "pkts_toserver": flow.pkts_toserver,
            "pkts_toclient": flow.pkts_toclient,
            "bytes_toserver": flow.bytes_toserver,
            "bytes_toclient": flow.bytes_toclient,
            "start": flow.start_timestamp(),
        }
    ev["payload"] = base64.b64encode(pkt.payload).decode()
    ev["stream"] = 0
    ev["pkt_src"] = "wire/pcap"
    cn: dict[str, Any] = {"layer": "perimeter"}
    if node_id is not None:
        cn["node_id"] = node_id
    ev["cntrust"] = cn
    return ev


def drop_event(
    pkt: Packet,
    flow: Flow | None,
    pcap_cnt: int | None,
    reason: str,
    alert: dict[str, Any] | None,
    node_id: str | None,
) -> dict[str, Any]:
    """Build an EVE drop record (Suricata's drop log) for a dropped packet."""
    ev = _header(pkt, flow, pcap_cnt, "drop")
    if flow is not None:
        ev["community_id"] = community_id_for(flow, pkt)
    drop: dict[str, Any] = {"len": len(pkt.raw) - pkt.l3_off, "ttl": pkt.ttl, "ipid": pkt.ip_id}
    if pkt.proto == 6:
        f = pkt.tcp_flags
        drop.update(
            tcpseq=pkt.tcp_seq,
            tcpack=pkt.tcp_ack,
            tcpwin=pkt.tcp_win,
            syn=bool(f & 0x02),
            ack=bool(f & 0x10),
            psh=bool(f & 0x08),
            rst=bool(f & 0x04),
            urg=bool(f & 0x20),
            fin=bool(f & 0x01),
        )
    drop["reason"] = reason
    ev["drop"] = drop
    if alert is not None:
        ev["alert"] = alert
    cn: dict[str, Any] = {"layer": "perimeter"}
    if node_id is not None:
        cn["node_id"] = node_id
    ev["cntrust"] = cn
    return ev


def add_packet(event: dict[str, Any], pkt: Packet) -> None:
    """Add the raw frame (base64) and its link type to an alert, before `cntrust`."""
    cn = event.pop("cntrust")
    event["packet"] = base64.b64encode(pkt.raw).decode()
    event["packet_info"] = {"linktype": pkt.linktype}
    event["cntrust"] = cn


def community_id_for(flow: Flow, pkt: Packet) -> str:
    """Community ID of the packet's flow (ICMP: of the packet's type/code tuple)."""
    if pkt.proto in (PROTO_ICMP, PROTO_ICMPV6):
        from ids.engine.community_id import community_id_v1

        return community_id_v1(pkt.src, pkt.dst, pkt.proto, pkt.icmp_type, pkt.icmp_code)
    return flow.get_community_id()


def _metadata(items: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        for part in item.split(","):
            bits = part.strip().split(None, 1)
            if len(bits) == 2:
                out.setdefault(bits[0], []).append(bits[1])
    return out


def flow_event(flow: Flow, reason: str, node_id: str | None) -> dict[str, Any]:
    """Build the EVE flow record logged when `flow` ends (`reason`: timeout, evicted,
    shutdown)."""
    ports = flow.proto in _PORT_PROTOS
    ev: dict[str, Any] = {
        "timestamp": format_timestamp(flow.first_ts),
        "flow_id": flow.flow_id,
        "event_type": "flow",
        "src_ip": format_ip(flow.client),
    }
    if ports:
        ev["src_port"] = flow.client_port
    ev["dest_ip"] = format_ip(flow.server)
    if ports:
        ev["dest_port"] = flow.server_port
    ev["proto"] = proto_name(flow.proto)
    if flow.app_proto:
        ev["app_proto"] = flow.app_proto
    state = {"new": "new", "established": "established", "closed": "closed"}[flow.state]
    if flow.action == "bypass":
        state = "bypassed"
    fl: dict[str, Any] = {
        "pkts_toserver": flow.pkts_toserver,
        "pkts_toclient": flow.pkts_toclient,
        "bytes_toserver": flow.bytes_toserver,
        "bytes_toclient": flow.bytes_toclient,
        "start": format_timestamp(flow.first_ts),
        "end": format_timestamp(flow.last_ts),
        "age": int(flow.last_ts) - int(flow.first_ts),
        "state": state,
        "reason": {"evicted": "forced"}.get(reason, reason),
        "alerted": flow.alerted,
    }
    if flow.action in ("pass", "drop"):
        fl["action"] = flow.action
    ev["flow"] = fl
    if flow.proto == 6:
        ev["tcp"] = {"state": flow.tcp_state}
    ev["community_id"] = flow.get_community_id()
    cn: dict[str, Any] = {"layer": "perimeter"}
    if node_id is not None:
        cn["node_id"] = node_id
    ev["cntrust"] = cn
    return ev


def dumps(event: dict[str, Any]) -> str:
    """Serialise an EVE record as one compact JSON line (no trailing newline)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)
