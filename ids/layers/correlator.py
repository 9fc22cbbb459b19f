"""Whole-network layer: correlate alerts from every sensor and node into incidents.

`Correlator.ingest(alert)` and `Correlator.ingest_enrollment(event)` feed groups; a group
becomes an `Incident` once it crosses its threshold within `window_s`:

- ``ids.network.multi_node_probe``: one outside source raises alerts against at least
  `min_nodes_probed` distinct nodes.
- ``ids.network.distributed_scan``: at least `min_scan_sources` distinct sources raise
  non-flood alerts against one target (node or address).
- ``ids.network.ddos``: flood alerts (category "Attempted Denial of Service") against one
  target name at least `min_ddos_sources` distinct sources in total.
- ``ids.network.same_attack_multi_node``: one signature on at least `min_attack_nodes`
  distinct nodes.
- ``ids.network.lateral_movement``: an alert whose source and destination are both nodes
  (or a perimeter lateral-movement alert); grouped by the source node.
- ``ids.network.node_integrity``: element-layer alerts about one node: opens on a
  high-severity one, or on `min_element_alerts` of any severity; raised to high severity
  when `min_element_detections` distinct detections hit the node (e.g. mining plus an
  unexpected listener).
- ``ids.network.sybil_enrollment``: at least `min_enrollments` enrollments from one
  operator, or from one network (/24 IPv4, /64 IPv6), within `enrollment_window_s`.

Invariants: deterministic (event time only; incident ids are hashes of kind, group key and
window start; lists sorted); bounded (at most `max_groups` groups per kind, `max_closed`
finished incidents, `max_alert_keys` alert keys per incident, capped source/node sets).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ids.layers.errors import AlertFormatError
from ids.layers.eve import (
    SEVERITY_HIGH,
    SEVERITY_MEDIUM,
    alert_key,
    cntrust_of,
    detection_of,
    int_field,
    node_id_of,
    severity_of,
    signature_id_of,
    str_field,
    ts_of,
)
from ids.layers.windows import CappedSet, WindowedTable, require_positive

MULTI_NODE_PROBE = "ids.network.multi_node_probe"
DISTRIBUTED_SCAN = "ids.network.distributed_scan"
DDOS = "ids.network.ddos"
SAME_ATTACK_MULTI_NODE = "ids.network.same_attack_multi_node"
LATERAL_MOVEMENT = "ids.network.lateral_movement"
SYBIL_ENROLLMENT = "ids.network.sybil_enrollment"
NODE_INTEGRITY = "ids.network.node_integrity"

INCIDENT_KINDS = (
    MULTI_NODE_PROBE,
    DISTRIBUTED_SCAN,
    DDOS,
    SAME_ATTACK_MULTI_NODE,
    LATERAL_MOVEMENT,
    SYBIL_ENROLLMENT,
    NODE_INTEGRITY,
)
_KIND_SEVERITY = {
    MULTI_NODE_PROBE: SEVERITY_MEDIUM,
    DISTRIBUTED_SCAN: SEVERITY_MEDIUM,
    DDOS: SEVERITY_HIGH,
    SAME_ATTACK_MULTI_NODE: SEVERITY_MEDIUM,
    LATERAL_MOVEMENT: SEVERITY_HIGH,
    SYBIL_ENROLLMENT: SEVERITY_MEDIUM,
    NODE_INTEGRITY: SEVERITY_MEDIUM,
}
FLOOD_CATEGORY = "Attempted Denial of Service"
_SET_CAP = 1_024


@dataclass(frozen=True, slots=True)
class EnrollmentEvent:
    """A node enrollment as the scheduler saw it."""

    ts: float
    node_id: str
    operator_id: str
    source_ip: str


@dataclass(frozen=True)
class Incident:
    """A group of correlated alerts (or enrollments), with why it is an incident.

    `severity` uses the EVE scale (1 high .. 3 low). `alert_keys` are `alert_key()` values
    (at most the correlator's `max_alert_keys`; `alert_count` counts all).
    """

    incident_id: str
    kind: str
    severity: int
    first_seen: float
    last_seen: float
    group_key: str
    alert_count: int
    alert_keys: tuple[str, ...]
    node_ids: tuple[str, ...]
    sources: tuple[str, ...]
    signature_ids: tuple[int, ...]
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class CorrelatorConfig:
    """Thresholds and inventory for `Correlator`; raises `LayersConfigError`.

    `node_ips` maps an address to its node id (the scheduler's inventory).
    """

    node_ips: Mapping[str, str] = field(default_factory=dict)
    window_s: float = 600.0
    min_nodes_probed: int = 3
    min_scan_sources: int = 20
    min_ddos_sources: int = 20
    min_attack_nodes: int = 3
    min_enrollments: int = 5
    min_element_alerts: int = 3
    min_element_detections: int = 2
    enrollment_window_s: float = 3_600.0
    enrollment_prefix_v4: int = 24
    enrollment_prefix_v6: int = 64
    max_groups: int = 10_000
    max_closed: int = 10_000
    max_alert_keys: int = 256

    def __post_init__(self) -> None:
        for name in (
            "window_s",
            "min_nodes_probed",
            "min_scan_sources",
            "min_ddos_sources",
            "min_attack_nodes",
            "min_enrollments",
            "min_element_alerts",
            "min_element_detections",
            "enrollment_window_s",
            "max_groups",
            "max_closed",
            "max_alert_keys",
        ):
            require_positive(name, getattr(self, name))


@dataclass
class _Group:
    kind: str
    key: str
    start: float
    last: float
    nodes: CappedSet[str]
    sources: CappedSet[str]
    sids: CappedSet[int]
    alert_keys: list[str] = field(default_factory=list)
    count: int = 0
    severity: int = 3
    claimed_sources: int = 0
    opened: bool = False
    reasons: list[str] = field(default_factory=list)


def _new_group(kind: str, key: str, ts: float) -> _Group:
    return _Group(kind, key, ts, ts, CappedSet(_SET_CAP), CappedSet(_SET_CAP), CappedSet(_SET_CAP))


def _network_of(ip: str, v4: int, v6: int) -> str:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    prefix = v4 if addr.version == 4 else v6
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


class Correlator:
    """See the module docstring."""

    def __init__(self, config: CorrelatorConfig | None = None) -> None:
        self.config = cfg = config or CorrelatorConfig()
        self._closed: deque[Incident] = deque(maxlen=cfg.max_closed)
        self._tables: dict[str, WindowedTable[str, _Group]] = {}
        for kind in INCIDENT_KINDS:
            window = cfg.enrollment_window_s if kind == SYBIL_ENROLLMENT else cfg.window_s
            self._tables[kind] = WindowedTable(
                window, cfg.max_groups, self._factory(kind), self._archive
            )
        self.alerts_seen = 0

    @staticmethod
    def _factory(kind: str) -> Callable[[float], _Group]:
        def make(ts: float) -> _Group:
            return _new_group(kind, "", ts)

        return make

    def _archive(self, _key: str, group: _Group) -> None:
        if group.opened:
            self._closed.append(self._incident(group))

    def _group(self, kind: str, key: str, ts: float) -> _Group:
        group, new = self._tables[kind].get(key, ts)
        if new:
            group.key = key
        return group

    def _incident(self, g: _Group) -> Incident:
        ident = hashlib.sha256(f"{g.kind}|{g.key}|{g.start:.6f}".encode()).hexdigest()[:24]
        return Incident(
            incident_id=f"inc-{ident}",
            kind=g.kind,
            severity=min(g.severity, _KIND_SEVERITY[g.kind]),
            first_seen=g.start,
            last_seen=g.last,
            group_key=g.key,
            alert_count=g.count,
            alert_keys=tuple(g.alert_keys),
            node_ids=tuple(g.nodes.sorted_sample(_SET_CAP)),
            sources=tuple(g.sources.sorted_sample(_SET_CAP)),
            signature_ids=tuple(sorted(g.sids.sorted_sample(_SET_CAP))),
            reasons=tuple(g.reasons),
        )

    def _add(
        self,
        kind: str,
        key: str,
        ts: float,
        akey: str,
        severity: int,
        nodes: Iterable[str],
        sources: Iterable[str],
        sid: int | None,
        claimed_sources: int = 0,
    ) -> _Group:
        g = self._group(kind, key, ts)
        g.last = max(g.last, ts)
        g.count += 1
        if len(g.alert_keys) < self.config.max_alert_keys:
            g.alert_keys.append(akey)
        g.severity = min(g.severity, severity)
        g.claimed_sources = max(g.claimed_sources, claimed_sources)
        for n in nodes:
            g.nodes.add(n)
        for s in sources:
            g.sources.add(s)
        if sid is not None:
            g.sids.add(sid)
        return g

    def _open(self, g: _Group, reasons: list[str], opened: list[Incident]) -> None:
        if g.opened:
            return
        g.opened = True
        g.reasons = reasons
        opened.append(self._incident(g))

    def ingest(self, alert: Mapping[str, Any]) -> list[Incident]:
        """Feed one EVE alert; returns the incidents this alert opened or escalated to high
        severity (usually none).

        Raises `AlertFormatError` when the alert lacks timestamp, addresses or signature id.
        """
        cfg = self.config
        ts = ts_of(alert)
        sid = signature_id_of(alert)
        src, dst = str_field(alert, "src_ip"), str_field(alert, "dest_ip")
        if src is None or dst is None:
            raise AlertFormatError("src_ip/dest_ip", "missing or not a string")
        self.alerts_seen += 1
        akey = alert_key(alert)
        sev = severity_of(alert)
        cnt = cntrust_of(alert)
        detection = detection_of(alert)
        dst_node = node_id_of(alert) or cfg.node_ips.get(dst)
        src_node = cfg.node_ips.get(src)
        if cnt.get("layer") == "element":
            src_node = None  # element alerts describe the node itself
        listed = cnt.get("sources")
        sources = {src}
        if isinstance(listed, list):
            sources.update(s for s in listed[:_SET_CAP] if isinstance(s, str))
        claimed = cnt.get("distinct_sources")
        claimed_n = claimed if isinstance(claimed, int) and not isinstance(claimed, bool) else 0
        target = dst_node or dst
        nodes = [dst_node] if dst_node else []
        category = alert.get("alert", {}).get("category")
        opened: list[Incident] = []

        if dst_node and src_node is None:
            g = self._add(MULTI_NODE_PROBE, src, ts, akey, sev, nodes, [src], sid)
            if g.nodes.size >= cfg.min_nodes_probed:
                self._open(
                    g,
                    [
                        f"source {src} raised alerts on {g.nodes.size} nodes >= "
                        f"min_nodes_probed={cfg.min_nodes_probed} within window_s={cfg.window_s:g}"
                    ],
                    opened,
                )
        is_flood = category == FLOOD_CATEGORY
        if is_flood:
            g = self._add(DDOS, target, ts, akey, sev, nodes, sources, sid, claimed_n)
            n_src = max(g.sources.size, g.claimed_sources)
            if n_src >= cfg.min_ddos_sources:
                self._open(
                    g,
                    [
                        f"flood alerts against {target} from {n_src} distinct sources >= "
                        f"min_ddos_sources={cfg.min_ddos_sources} within window_s={cfg.window_s:g}"
                    ],
                    opened,
                )
        elif src_node is None:
            port = int_field(alert, "dest_port")
            g = self._add(DISTRIBUTED_SCAN, target, ts, akey, sev, nodes, sources, sid)
            if g.sources.size >= cfg.min_scan_sources:
                self._open(
                    g,
                    [
                        f"{g.sources.size} distinct sources raised alerts against {target}"
                        f"{f' (last port {port})' if port is not None else ''} >= "
                        f"min_scan_sources={cfg.min_scan_sources} within window_s={cfg.window_s:g}"
                    ],
                    opened,
                )
        if dst_node:
            g = self._add(SAME_ATTACK_MULTI_NODE, detection, ts, akey, sev, nodes, [src], sid)
            if g.nodes.size >= cfg.min_attack_nodes:
                self._open(
                    g,
                    [
                        f"{detection} raised on {g.nodes.size} nodes >= "
                        f"min_attack_nodes={cfg.min_attack_nodes} within window_s={cfg.window_s:g}"
                    ],
                    opened,
                )
        if cnt.get("layer") == "element" and dst_node:
            self._node_integrity(dst_node, ts, akey, sev, src, sid, detection, opened)
        lateral_src = src_node or (
            cnt.get("src_node_id") if detection == "ids.perimeter.lateral_movement" else None
        )
        if isinstance(lateral_src, str) and dst_node and lateral_src != dst_node:
            g = self._add(
                LATERAL_MOVEMENT, lateral_src, ts, akey, sev, [lateral_src, dst_node], [src], sid
            )
            reason = f"node {lateral_src} ({src}) reached node {dst_node} ({dst}): {detection}"
            if not g.opened:
                self._open(g, [reason], opened)
            elif reason not in g.reasons and len(g.reasons) < 32:
                g.reasons.append(reason)
        return opened

    def _node_integrity(
        self,
        node: str,
        ts: float,
        akey: str,
        sev: int,
        src: str,
        sid: int,
        detection: str,
        opened: list[Incident],
    ) -> None:
        cfg = self.config
        g = self._add(NODE_INTEGRITY, node, ts, akey, sev, [node], [src], sid)
        if g.sids.size >= cfg.min_element_detections and g.severity > SEVERITY_HIGH:
            g.severity = SEVERITY_HIGH
            g.reasons.append(
                f"{g.sids.size} distinct element detections on {node} >= "
                f"min_element_detections={cfg.min_element_detections}: severity raised to high"
            )
            if g.opened:
                opened.append(self._incident(g))
        if g.opened:
            return
        if sev <= SEVERITY_HIGH:
            reason = f"high-severity element alert {detection} on node {node}"
        elif g.count >= cfg.min_element_alerts:
            reason = (
                f"{g.count} element alerts on node {node} >= "
                f"min_element_alerts={cfg.min_element_alerts} within window_s={cfg.window_s:g}"
            )
        else:
            return
        self._open(g, [reason, *g.reasons], opened)

    def ingest_enrollment(self, event: EnrollmentEvent) -> list[Incident]:
        """Feed one enrollment; returns the Sybil incidents it opened (usually none)."""
        cfg = self.config
        opened: list[Incident] = []
        network = _network_of(event.source_ip, cfg.enrollment_prefix_v4, cfg.enrollment_prefix_v6)
        akey = hashlib.sha256(
            f"{event.ts:.6f}|{event.node_id}|{event.operator_id}|{event.source_ip}".encode()
        ).hexdigest()[:32]
        for key in (f"operator:{event.operator_id}", f"network:{network}"):
            g = self._add(
                SYBIL_ENROLLMENT,
                key,
                event.ts,
                akey,
                SEVERITY_MEDIUM,
                [event.node_id],
                [event.source_ip],
                None,
            )
            if g.count >= cfg.min_enrollments:
                self._open(
                    g,
                    [
                        f"{g.count} enrollments from {key} >= min_enrollments="
                        f"{cfg.min_enrollments} within enrollment_window_s="
                        f"{cfg.enrollment_window_s:g}"
                    ],
                    opened,
                )
        return opened

    def incidents(self) -> list[Incident]:
        """Every incident still remembered (finished and open), oldest first."""
        current = [
            self._incident(g)
            for table in self._tables.values()
            for _key, g in table.items()
            if g.opened
        ]
        result = list(self._closed) + current
        return sorted(result, key=lambda i: (i.first_seen, i.kind, i.group_key))

    def tracked_groups(self) -> int:
        """Groups held now across all kinds (bounded by kinds * max_groups)."""
        return sum(len(t) for t in self._tables.values())
