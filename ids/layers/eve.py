"""Suricata EVE JSON alert records: construction, field access, keys and export.

Every layer speaks the same alert shape, the one Suricata writes with
``event_type: "alert"``::

    {"timestamp", "flow_id", "event_type": "alert", "src_ip", "src_port", "dest_ip",
     "dest_port", "proto", "community_id",
     "alert": {"action", "gid", "signature_id", "rev", "signature", "category", "severity"},
     "cntrust": {"layer", "node_id", "detection", "reasons", ...}}

Invariants:
- `make_alert` is deterministic: the same arguments give an equal dict (and the same
  `alert_key`); the timestamp is rendered from the event time, never from a wall clock.
- `community_id` follows the Community ID v1 spec (seed 0 by default), so alerts join with
  Zeek/Suricata logs of the same flow.
- Severity uses Suricata's scale: 1 is the highest, 3 the lowest.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from ids.layers.errors import AlertFormatError

PROTO_NUMBERS: dict[str, int] = {"ICMP": 1, "TCP": 6, "UDP": 17, "IPV6-ICMP": 58, "SCTP": 132}
PROTO_NAMES: dict[int, str] = {v: k for k, v in PROTO_NUMBERS.items()}

# Community ID: ICMP type pairs that are each other's reply (spec section "ICMP").
_ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17, 10: 9, 9: 10}
_ICMP6_PAIRS = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130}

SEVERITY_HIGH = 1
SEVERITY_MEDIUM = 2
SEVERITY_LOW = 3


def community_id(
    proto: int,
    src_ip: str,
    dest_ip: str,
    src_port: int | None,
    dest_port: int | None,
    seed: int = 0,
) -> str:
    """Return the Community ID v1 flow hash (``"1:" + base64(sha1(...))``).

    Raises `AlertFormatError` when an address is not an IPv4/IPv6 literal.
    """
    try:
        saddr = ipaddress.ip_address(src_ip).packed
        daddr = ipaddress.ip_address(dest_ip).packed
    except ValueError as exc:
        raise AlertFormatError("src_ip/dest_ip", f"not an IP address: {exc}") from exc
    has_ports = proto in (1, 6, 17, 58, 132) and src_port is not None and dest_port is not None
    sport = int(src_port or 0)
    dport = int(dest_port or 0)
    one_way = False
    if proto in (1, 58) and has_ports:
        pairs = _ICMP4_PAIRS if proto == 1 else _ICMP6_PAIRS
        if sport in pairs:
            dport = pairs[sport]
        else:
            one_way = True
    if not one_way and (saddr, sport) > (daddr, dport):
        saddr, daddr, sport, dport = daddr, saddr, dport, sport
    data = struct.pack("!H", seed) + saddr + daddr + struct.pack("!BB", proto, 0)
    if has_ports:
        data += struct.pack("!HH", sport, dport)
    return "1:" + base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()


def flow_id_for(cid: str) -> int:
    """A deterministic positive 51-bit flow id derived from the community id."""
    digest = hashlib.sha256(cid.encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 13


def eve_timestamp(ts: float) -> str:
    """Render epoch seconds as Suricata does: ``2026-01-01T00:00:00.000000+0000``."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")


def parse_eve_timestamp(value: str) -> float:
    """Parse an EVE timestamp (ISO 8601 with a UTC offset) back to epoch seconds.

    Raises `AlertFormatError` for anything else, including a time without an offset.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise AlertFormatError("timestamp", f"not an EVE timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        raise AlertFormatError("timestamp", f"timestamp without UTC offset: {value!r}")
    return parsed.timestamp()


def make_alert(
    *,
    ts: float,
    src_ip: str,
    dest_ip: str,
    proto: int,
    signature_id: int,
    signature: str,
    category: str,
    severity: int,
    layer: str,
    src_port: int | None = None,
    dest_port: int | None = None,
    node_id: str | None = None,
    detection: str | None = None,
    reasons: Sequence[str] = (),
    gid: int = 1,
    rev: int = 1,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build one EVE alert dict. `extra` keys are merged into the ``cntrust`` object.

    Raises `AlertFormatError` for a non-IP address.
    """
    cid = community_id(proto, src_ip, dest_ip, src_port, dest_port)
    record: dict[str, Any] = {
        "timestamp": eve_timestamp(ts),
        "flow_id": flow_id_for(cid),
        "event_type": "alert",
        "src_ip": src_ip,
    }
    if src_port is not None:
        record["src_port"] = src_port
    record["dest_ip"] = dest_ip
    if dest_port is not None:
        record["dest_port"] = dest_port
    record["proto"] = PROTO_NAMES.get(proto, str(proto))
    record["community_id"] = cid
    record["alert"] = {
        "action": "allowed",
        "gid": gid,
        "signature_id": signature_id,
        "rev": rev,
        "signature": signature,
        "category": category,
        "severity": severity,
    }
    cntrust: dict[str, Any] = {"layer": layer, "node_id": node_id}
    if detection is not None:
        cntrust["detection"] = detection
    cntrust["reasons"] = list(reasons)
    if extra:
        cntrust.update(extra)
    record["cntrust"] = cntrust
    return record


# ----------------------------------------------------------------------------------------
# Field access (validates the shape; raises AlertFormatError)


def _alert_obj(alert: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(alert, Mapping):
        raise AlertFormatError("<root>", "alert is not a mapping")
    inner = alert.get("alert")
    if not isinstance(inner, Mapping):
        raise AlertFormatError("alert", "missing or not an object")
    return inner


def signature_id_of(alert: Mapping[str, Any]) -> int:
    """The alert's ``alert.signature_id``; raises `AlertFormatError`."""
    sid = _alert_obj(alert).get("signature_id")
    if not isinstance(sid, int) or isinstance(sid, bool):
        raise AlertFormatError("alert.signature_id", "missing or not an integer")
    return sid


def severity_of(alert: Mapping[str, Any]) -> int:
    """The alert's ``alert.severity`` (1 high .. 3 low; missing counts as 3)."""
    sev = _alert_obj(alert).get("severity", SEVERITY_LOW)
    if not isinstance(sev, int) or isinstance(sev, bool):
        raise AlertFormatError("alert.severity", "not an integer")
    return sev


def ts_of(alert: Mapping[str, Any]) -> float:
    """The alert's timestamp as epoch seconds; raises `AlertFormatError`."""
    value = alert.get("timestamp") if isinstance(alert, Mapping) else None
    if not isinstance(value, str):
        raise AlertFormatError("timestamp", "missing or not a string")
    return parse_eve_timestamp(value)


def cntrust_of(alert: Mapping[str, Any]) -> Mapping[str, Any]:
    """The alert's ``cntrust`` object (empty mapping when absent)."""
    value = alert.get("cntrust") if isinstance(alert, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def node_id_of(alert: Mapping[str, Any]) -> str | None:
    """``cntrust.node_id`` when it is a string, else None."""
    value = cntrust_of(alert).get("node_id")
    return value if isinstance(value, str) else None


def layer_of(alert: Mapping[str, Any]) -> str | None:
    """``cntrust.layer`` when it is a string, else None."""
    value = cntrust_of(alert).get("layer")
    return value if isinstance(value, str) else None


def detection_of(alert: Mapping[str, Any]) -> str:
    """The dotted detection id (``cntrust.detection``), or ``sid:<signature_id>`` for rules."""
    value = cntrust_of(alert).get("detection")
    if isinstance(value, str):
        return value
    return f"sid:{signature_id_of(alert)}"


def str_field(alert: Mapping[str, Any], name: str) -> str | None:
    """A top-level string field (``src_ip``, ``dest_ip``, ``proto``...) or None."""
    value = alert.get(name) if isinstance(alert, Mapping) else None
    return value if isinstance(value, str) else None


def int_field(alert: Mapping[str, Any], name: str) -> int | None:
    """A top-level integer field (``src_port``, ``dest_port``) or None."""
    value = alert.get(name) if isinstance(alert, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def canonical_json(value: Any) -> bytes:
    """Sorted-key, compact, UTF-8 JSON: the byte form hashed and signed in this package."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def alert_key(alert: Mapping[str, Any]) -> str:
    """A stable id for one alert record: hex sha256 of its canonical JSON, 32 chars."""
    return hashlib.sha256(canonical_json(alert)).hexdigest()[:32]


def to_eve_line(alert: Mapping[str, Any]) -> str:
    """One EVE JSON line (compact, key order preserved, no trailing newline)."""
    return json.dumps(alert, separators=(",", ":"), ensure_ascii=False)


def write_eve_lines(alerts: Iterable[Mapping[str, Any]], out: TextIO) -> int:
    """Write alerts as EVE JSON lines to `out`; returns the number of lines written."""
    count = 0
    for alert in alerts:
        out.write(to_eve_line(alert))
        out.write("\n")
        count += 1
    return count
