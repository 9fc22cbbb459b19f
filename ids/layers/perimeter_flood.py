"""Flood detectors.

- `SynFloodDetector` (``ids.perimeter.syn_flood``): at least `min_syns` connection-opening
  SYNs to one (host, port) within `window_s`, from at least `min_sources` distinct
  sources (spoofing), with few handshakes completed (client ACKs / SYNs at most
  `max_completion_ratio`): the half-open signature of a spoofed flood.
- `UdpFloodDetector` (``ids.perimeter.udp_flood``): at least `min_packets` UDP datagrams to
  one host within `window_s` (any ports).

Invariants: bounded keys (`max_keys`), bounded source sets, at most one alert per key per
window, so a flood of N packets yields about N / (rate * window_s) alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ids.layers.catalog import SYN_FLOOD, UDP_FLOOD, DetectionInfo
from ids.layers.errors import LayersConfigError
from ids.layers.packets import PROTO_UDP, PacketSummary
from ids.layers.perimeter_base import MAX_LISTED, crossed, perimeter_alert
from ids.layers.windows import CappedSet, WindowedTable, require_positive


@dataclass(frozen=True)
class SynFloodConfig:
    """Thresholds for `SynFloodDetector`; raises `LayersConfigError`."""

    window_s: float = 1.0
    min_syns: int = 500
    min_sources: int = 20
    max_completion_ratio: float = 0.1
    max_keys: int = 65_536

    def __post_init__(self) -> None:
        for name in ("window_s", "min_syns", "min_sources", "max_keys"):
            require_positive(name, getattr(self, name))
        if not 0.0 <= self.max_completion_ratio <= 1.0:
            raise LayersConfigError(
                "max_completion_ratio", self.max_completion_ratio, "must be in [0, 1]"
            )


@dataclass
class _FloodState:
    sources: CappedSet[str]
    syns: int = 0
    acks: int = 0
    packets: int = 0
    bytes: int = 0
    fired: bool = False


class SynFloodDetector:
    """Many half-open connections to one service from many (likely spoofed) sources."""

    info: DetectionInfo = SYN_FLOOD

    def __init__(self, config: SynFloodConfig | None = None) -> None:
        self.config = config = config or SynFloodConfig()
        cap = max(config.min_sources, MAX_LISTED)
        self._table: WindowedTable[tuple[str, int], _FloodState] = WindowedTable(
            config.window_s, config.max_keys, lambda _ts: _FloodState(CappedSet(cap))
        )

    def observe(self, pkt: PacketSummary) -> list[dict[str, Any]]:
        """Alerts this packet causes (at most one)."""
        key = (pkt.dst, pkt.dport)
        if pkt.is_handshake_ack:
            state = self._table.peek(key)
            if state is not None:
                state.acks += 1
            return []
        if not pkt.is_syn:
            return []
        state, _ = self._table.get(key, pkt.ts)
        state.syns += 1
        state.sources.add(pkt.src)
        cfg = self.config
        if state.fired or state.syns < cfg.min_syns or state.sources.size < cfg.min_sources:
            return []
        ratio = state.acks / state.syns
        if ratio > cfg.max_completion_ratio:
            return []
        state.fired = True
        reasons = [
            crossed("syns", state.syns, "min_syns", cfg.min_syns)
            + f" within window_s={cfg.window_s:g}",
            crossed("distinct_sources", state.sources.size, "min_sources", cfg.min_sources),
            f"completion_ratio={ratio:.3f} <= max_completion_ratio={cfg.max_completion_ratio:g}",
        ]
        return [
            perimeter_alert(
                self.info,
                pkt,
                reasons,
                src=pkt.src,
                dst=pkt.dst,
                dport=pkt.dport,
                extra={
                    "sources": state.sources.sorted_sample(MAX_LISTED),
                    "distinct_sources": state.sources.size,
                    "packets": state.syns,
                },
            )
        ]

    def tracked_keys(self) -> int:
        """Services tracked now."""
        return len(self._table)


@dataclass(frozen=True)
class UdpFloodConfig:
    """Thresholds for `UdpFloodDetector`; raises `LayersConfigError`."""

    window_s: float = 1.0
    min_packets: int = 1_000
    max_keys: int = 65_536

    def __post_init__(self) -> None:
        for name in ("window_s", "min_packets", "max_keys"):
            require_positive(name, getattr(self, name))


class UdpFloodDetector:
    """A high rate of UDP datagrams to one host."""

    info: DetectionInfo = UDP_FLOOD

    def __init__(self, config: UdpFloodConfig | None = None) -> None:
        self.config = config = config or UdpFloodConfig()
        self._table: WindowedTable[str, _FloodState] = WindowedTable(
            config.window_s, config.max_keys, lambda _ts: _FloodState(CappedSet(MAX_LISTED))
        )

    def observe(self, pkt: PacketSummary) -> list[dict[str, Any]]:
        """Alerts this packet causes (at most one)."""
        if pkt.proto != PROTO_UDP:
            return []
        state, _ = self._table.get(pkt.dst, pkt.ts)
        state.packets += 1
        state.bytes += pkt.payload_len
        state.sources.add(pkt.src)
        cfg = self.config
        if state.fired or state.packets < cfg.min_packets:
            return []
        state.fired = True
        reasons = [
            crossed("packets", state.packets, "min_packets", cfg.min_packets)
            + f" within window_s={cfg.window_s:g}",
            f"payload_bytes={state.bytes}",
            f"distinct_sources={state.sources.size}",
        ]
        return [
            perimeter_alert(
                self.info,
                pkt,
                reasons,
                src=pkt.src,
                dst=pkt.dst,
                extra={
                    "sources": state.sources.sorted_sample(MAX_LISTED),
                    "distinct_sources": state.sources.size,
                    "packets": state.packets,
                },
            )
        ]

    def tracked_keys(self) -> int:
        """Hosts tracked now."""
        return len(self._table)
