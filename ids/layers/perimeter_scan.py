"""Scan detectors: one source sweeping many targets, and many sources sharing a sweep.

- `SynScanDetector` (``ids.perimeter.syn_scan``): one source sends connection-opening SYNs
  to at least `min_distinct_targets` distinct (host, port) pairs within `window_s`.
- `DistributedScanDetector` (``ids.perimeter.distributed_scan``): at least `min_sources`
  sources together open connections to `min_distinct_ports` ports of one host, or to one
  port on `min_distinct_hosts` hosts, within `window_s`. Sources that complete a TCP
  handshake with the target are clients and do not count; most sources must stay under
  `max_probes_per_source` (a heavy single source is a plain scan).

Invariants: state per key is bounded (`CappedSet` caps, `max_keys` LRU); each key fires at
most once per window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ids.layers.catalog import DISTRIBUTED_SCAN, SYN_SCAN, DetectionInfo
from ids.layers.packets import PacketSummary
from ids.layers.perimeter_base import MAX_LISTED, crossed, perimeter_alert
from ids.layers.windows import CappedSet, WindowedTable, require_positive


@dataclass(frozen=True)
class SynScanConfig:
    """Thresholds for `SynScanDetector`; raises `LayersConfigError` when out of range."""

    window_s: float = 10.0
    min_distinct_targets: int = 25
    max_keys: int = 65_536

    def __post_init__(self) -> None:
        require_positive("window_s", self.window_s)
        require_positive("min_distinct_targets", self.min_distinct_targets)
        require_positive("max_keys", self.max_keys)


@dataclass
class _ScanState:
    targets: CappedSet[tuple[str, int]]
    hosts: CappedSet[str]
    fired: bool = False


class SynScanDetector:
    """One source, many (host, port) targets."""

    info: DetectionInfo = SYN_SCAN

    def __init__(self, config: SynScanConfig | None = None) -> None:
        self.config = config or SynScanConfig()
        cap = self.config.min_distinct_targets
        self._table: WindowedTable[str, _ScanState] = WindowedTable(
            self.config.window_s,
            self.config.max_keys,
            lambda _ts: _ScanState(CappedSet(cap), CappedSet(cap)),
        )

    def observe(self, pkt: PacketSummary) -> list[dict[str, Any]]:
        """Alerts this packet causes (at most one)."""
        if not pkt.is_syn:
            return []
        state, _new = self._table.get(pkt.src, pkt.ts)
        if state.fired:
            return []
        state.targets.add((pkt.dst, pkt.dport))
        state.hosts.add(pkt.dst)
        cfg = self.config
        if state.targets.size < cfg.min_distinct_targets:
            return []
        state.fired = True
        reasons = [
            crossed(
                "distinct_targets",
                state.targets.size,
                "min_distinct_targets",
                cfg.min_distinct_targets,
            )
            + f" within window_s={cfg.window_s:g}",
            f"distinct_hosts={state.hosts.size}",
        ]
        single_host = state.hosts.size == 1
        return [
            perimeter_alert(
                self.info,
                pkt,
                reasons,
                src=pkt.src,
                dst=pkt.dst,
                dport=pkt.dport if single_host else None,
                extra={"hosts": state.hosts.sorted_sample(MAX_LISTED)},
            )
        ]

    def tracked_keys(self) -> int:
        """Sources tracked now."""
        return len(self._table)


@dataclass(frozen=True)
class DistributedScanConfig:
    """Thresholds for `DistributedScanDetector`; raises `LayersConfigError`."""

    window_s: float = 30.0
    min_sources: int = 20
    min_distinct_ports: int = 20
    min_distinct_hosts: int = 20
    max_probes_per_source: int = 24
    max_keys: int = 65_536

    def __post_init__(self) -> None:
        for name in (
            "window_s",
            "min_sources",
            "min_distinct_ports",
            "min_distinct_hosts",
            "max_probes_per_source",
            "max_keys",
        ):
            require_positive(name, getattr(self, name))


@dataclass
class _SpreadState:
    sources: CappedSet[str]
    spread: CappedSet[object]
    per_source: dict[str, int] = field(default_factory=dict)
    completed: set[str] = field(default_factory=set)
    fired: bool = False


class DistributedScanDetector:
    """Many sources, each with few probes, together covering many ports or hosts."""

    info: DetectionInfo = DISTRIBUTED_SCAN

    def __init__(self, config: DistributedScanConfig | None = None) -> None:
        self.config = config = config or DistributedScanConfig()
        src_cap = max(config.min_sources * 4, MAX_LISTED)

        def by_host(_ts: float) -> _SpreadState:
            return _SpreadState(CappedSet(src_cap), CappedSet(config.min_distinct_ports))

        def by_port(_ts: float) -> _SpreadState:
            return _SpreadState(CappedSet(src_cap), CappedSet(config.min_distinct_hosts))

        self._by_host: WindowedTable[str, _SpreadState] = WindowedTable(
            config.window_s, config.max_keys, by_host
        )
        self._by_port: WindowedTable[int, _SpreadState] = WindowedTable(
            config.window_s, config.max_keys, by_port
        )

    def _update(
        self, state: _SpreadState, src: str, spread_item: object, need_spread: int
    ) -> list[str] | None:
        cfg = self.config
        if state.fired:
            return None
        state.sources.add(src)
        state.spread.add(spread_item)
        if src in state.sources and len(state.per_source) < state.sources.cap:
            state.per_source[src] = state.per_source.get(src, 0) + 1
        if state.sources.size < cfg.min_sources or state.spread.size < need_spread:
            return None
        probers = [s for s in state.per_source if s not in state.completed]
        if len(probers) < cfg.min_sources:
            return None
        heavy = sum(1 for s in probers if state.per_source[s] > cfg.max_probes_per_source)
        if heavy * 2 > len(probers):
            return None
        state.fired = True
        return [
            crossed("half_open_sources", len(probers), "min_sources", cfg.min_sources)
            + f" within window_s={cfg.window_s:g}",
            f"sources_over_max_probes_per_source={heavy} of {len(probers)}",
        ]

    def _complete(self, pkt: PacketSummary) -> None:
        """A source that completes a handshake is a client, not a prober."""
        for state in (self._by_host.peek(pkt.dst), self._by_port.peek(pkt.dport)):
            if state is not None and pkt.src in state.per_source:
                state.completed.add(pkt.src)

    def observe(self, pkt: PacketSummary) -> list[dict[str, Any]]:
        """Alerts this packet causes (a host-wide and a port-wide sweep can both fire)."""
        if pkt.is_handshake_ack:
            self._complete(pkt)
            return []
        if not pkt.is_syn:
            return []
        cfg = self.config
        alerts: list[dict[str, Any]] = []
        host_state, _ = self._by_host.get(pkt.dst, pkt.ts)
        reasons = self._update(host_state, pkt.src, pkt.dport, cfg.min_distinct_ports)
        if reasons is not None:
            reasons.append(
                crossed(
                    "distinct_ports",
                    host_state.spread.size,
                    "min_distinct_ports",
                    cfg.min_distinct_ports,
                )
                + f" on host {pkt.dst}"
            )
            alerts.append(
                perimeter_alert(
                    self.info,
                    pkt,
                    reasons,
                    src=pkt.src,
                    dst=pkt.dst,
                    extra={"sources": host_state.sources.sorted_sample(MAX_LISTED)},
                )
            )
        port_state, _ = self._by_port.get(pkt.dport, pkt.ts)
        reasons = self._update(port_state, pkt.src, pkt.dst, cfg.min_distinct_hosts)
        if reasons is not None:
            reasons.append(
                crossed(
                    "distinct_hosts",
                    port_state.spread.size,
                    "min_distinct_hosts",
                    cfg.min_distinct_hosts,
                )
                + f" on port {pkt.dport}"
            )
            alerts.append(
                perimeter_alert(
                    self.info,
                    pkt,
                    reasons,
                    src=pkt.src,
                    dst=pkt.dst,
                    dport=pkt.dport,
                    extra={"sources": port_state.sources.sorted_sample(MAX_LISTED)},
                )
            )
        return alerts

    def tracked_keys(self) -> int:
        """Hosts plus ports tracked now."""
        return len(self._by_host) + len(self._by_port)
