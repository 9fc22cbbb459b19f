"""Service-abuse detectors: DNS tunneling, brute force on an API port, lateral movement.

- `DnsTunnelDetector` (``ids.perimeter.dns_tunnel``): per registered domain (last two
  labels), queries whose subdomain part is long (>= `long_subdomain_len`) or random-looking
  (>= `entropy_min_len` characters with Shannon entropy >= `min_entropy_bits`) reach
  `min_suspicious_queries` within `window_s`; or the domain sees `min_distinct_subdomains`
  distinct subdomains (a high query rate of unique names).
- `BruteForceDetector` (``ids.perimeter.brute_force``): one source opens at least
  `min_connections` new connections to one API port of one host within `window_s`
  (repeated short login-like exchanges).
- `LateralMovementDetector` (``ids.perimeter.lateral_movement``): a node of the inventory
  opens a connection to another node on an admin port (SSH, SMB, RDP, WinRM, Docker,
  kubelet...), unless the pair is allowed.

Invariants: bounded keys per detector (`max_keys` LRU), at most one alert per key per
window, entropy computed on at most 255 characters.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ids.layers.catalog import BRUTE_FORCE, DNS_TUNNEL, LATERAL_MOVEMENT, DetectionInfo
from ids.layers.packets import PacketSummary
from ids.layers.perimeter_base import crossed, perimeter_alert
from ids.layers.windows import CappedSet, WindowedTable, require_positive


def shannon_entropy(text: str) -> float:
    """Shannon entropy of `text` in bits per character (0.0 for the empty string)."""
    if not text:
        return 0.0
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def split_qname(qname: str) -> tuple[str, str]:
    """(subdomain part, registered domain) using the last two labels as the domain."""
    labels = [lab for lab in qname.strip(".").split(".") if lab]
    if len(labels) <= 2:
        return "", ".".join(labels)
    return ".".join(labels[:-2]), ".".join(labels[-2:])


@dataclass(frozen=True)
class DnsTunnelConfig:
    """Thresholds for `DnsTunnelDetector`; raises `LayersConfigError`."""

    window_s: float = 60.0
    long_subdomain_len: int = 48
    entropy_min_len: int = 20
    min_entropy_bits: float = 3.6
    min_suspicious_queries: int = 10
    min_distinct_subdomains: int = 200
    max_keys: int = 16_384

    def __post_init__(self) -> None:
        for name in (
            "window_s",
            "long_subdomain_len",
            "entropy_min_len",
            "min_entropy_bits",
            "min_suspicious_queries",
            "min_distinct_subdomains",
            "max_keys",
        ):
            require_positive(name, getattr(self, name))


@dataclass
class _DnsState:
    subdomains: CappedSet[str]
    suspicious: int = 0
    queries: int = 0
    longest: int = 0
    max_entropy: float = 0.0
    fired: bool = False


class DnsTunnelDetector:
    """Long or high-entropy query names, or many unique names, under one domain."""

    info: DetectionInfo = DNS_TUNNEL

    def __init__(self, config: DnsTunnelConfig | None = None) -> None:
        self.config = config = config or DnsTunnelConfig()
        self._table: WindowedTable[str, _DnsState] = WindowedTable(
            config.window_s,
            config.max_keys,
            lambda _ts: _DnsState(CappedSet(config.min_distinct_subdomains)),
        )

    def is_suspicious(self, subdomain: str) -> tuple[bool, float]:
        """Whether one subdomain part looks like encoded data, and its entropy."""
        cfg = self.config
        compact = subdomain.replace(".", "")[:255]
        if len(compact) < min(cfg.entropy_min_len, cfg.long_subdomain_len):
            return False, 0.0  # too short to carry data; entropy not computed
        entropy = shannon_entropy(compact)
        if len(compact) >= cfg.long_subdomain_len:
            return True, entropy
        return len(compact) >= cfg.entropy_min_len and entropy >= cfg.min_entropy_bits, entropy

    def observe(self, pkt: PacketSummary) -> list[dict[str, Any]]:
        """Alerts this packet causes (at most one)."""
        if pkt.dns_qname is None:
            return []
        subdomain, domain = split_qname(pkt.dns_qname)
        if not domain:
            return []
        state, _ = self._table.get(domain, pkt.ts)
        state.queries += 1
        if subdomain:
            state.subdomains.add(subdomain)
            suspicious, entropy = self.is_suspicious(subdomain)
            if suspicious:
                state.suspicious += 1
                state.longest = max(state.longest, len(subdomain))
                state.max_entropy = max(state.max_entropy, entropy)
        cfg = self.config
        if state.fired:
            return []
        reasons: list[str] = []
        if state.suspicious >= cfg.min_suspicious_queries:
            reasons.append(
                crossed(
                    "suspicious_queries",
                    state.suspicious,
                    "min_suspicious_queries",
                    cfg.min_suspicious_queries,
                )
                + f" within window_s={cfg.window_s:g}"
                + f" (longest_subdomain={state.longest}, max_entropy={state.max_entropy:.2f})"
            )
        if state.subdomains.size >= cfg.min_distinct_subdomains:
            reasons.append(
                crossed(
                    "distinct_subdomains",
                    state.subdomains.size,
                    "min_distinct_subdomains",
                    cfg.min_distinct_subdomains,
                )
                + f" within window_s={cfg.window_s:g}"
            )
        if not reasons:
            return []
        state.fired = True
        return [
            perimeter_alert(
                self.info,
                pkt,
                [f"domain={domain}", *reasons],
                src=pkt.src,
                dst=pkt.dst,
                dport=pkt.dport,
                extra={"domain": domain, "queries": state.queries},
            )
        ]

    def tracked_keys(self) -> int:
        """Domains tracked now."""
        return len(self._table)


DEFAULT_API_PORTS = (443, 6443, 8080, 8443, 9443)


@dataclass(frozen=True)
class BruteForceConfig:
    """Thresholds for `BruteForceDetector`; raises `LayersConfigError`."""

    window_s: float = 60.0
    min_connections: int = 20
    api_ports: frozenset[int] = field(default_factory=lambda: frozenset(DEFAULT_API_PORTS))
    max_keys: int = 65_536

    def __post_init__(self) -> None:
        for name in ("window_s", "min_connections", "max_keys"):
            require_positive(name, getattr(self, name))


@dataclass
class _CountState:
    count: int = 0
    fired: bool = False


class BruteForceDetector:
    """Many new connections from one source to one API port."""

    info: DetectionInfo = BRUTE_FORCE

    def __init__(self, config: BruteForceConfig | None = None) -> None:
        self.config = config = config or BruteForceConfig()
        self._table: WindowedTable[tuple[str, str, int], _CountState] = WindowedTable(
            config.window_s, config.max_keys, lambda _ts: _CountState()
        )

    def observe(self, pkt: PacketSummary) -> list[dict[str, Any]]:
        """Alerts this packet causes (at most one)."""
        cfg = self.config
        if not pkt.is_syn or pkt.dport not in cfg.api_ports:
            return []
        state, _ = self._table.get((pkt.src, pkt.dst, pkt.dport), pkt.ts)
        state.count += 1
        if state.fired or state.count < cfg.min_connections:
            return []
        state.fired = True
        reasons = [
            crossed("connections", state.count, "min_connections", cfg.min_connections)
            + f" within window_s={cfg.window_s:g} to api port {pkt.dport}"
        ]
        return [perimeter_alert(self.info, pkt, reasons, src=pkt.src, dst=pkt.dst)]

    def tracked_keys(self) -> int:
        """(source, host, port) keys tracked now."""
        return len(self._table)


DEFAULT_ADMIN_PORTS = (22, 23, 135, 139, 445, 2375, 2376, 3389, 5985, 5986, 10250)


@dataclass(frozen=True)
class LateralMovementConfig:
    """Inventory and ports for `LateralMovementDetector`.

    `node_ips` maps an IP address to its node id; `allowed_pairs` holds (src node id,
    dst node id) pairs that may talk on admin ports.
    """

    node_ips: Mapping[str, str] = field(default_factory=dict)
    admin_ports: frozenset[int] = field(default_factory=lambda: frozenset(DEFAULT_ADMIN_PORTS))
    allowed_pairs: frozenset[tuple[str, str]] = frozenset()
    window_s: float = 300.0
    max_keys: int = 16_384

    def __post_init__(self) -> None:
        for name in ("window_s", "max_keys"):
            require_positive(name, getattr(self, name))


class LateralMovementDetector:
    """Node-to-node connections on admin ports."""

    info: DetectionInfo = LATERAL_MOVEMENT

    def __init__(self, config: LateralMovementConfig | None = None) -> None:
        self.config = config = config or LateralMovementConfig()
        self._table: WindowedTable[tuple[str, str, int], _CountState] = WindowedTable(
            config.window_s, config.max_keys, lambda _ts: _CountState()
        )

    def observe(self, pkt: PacketSummary) -> list[dict[str, Any]]:
        """Alerts this packet causes (at most one per pair and port per window)."""
        cfg = self.config
        if not pkt.is_syn or pkt.dport not in cfg.admin_ports:
            return []
        src_node = cfg.node_ips.get(pkt.src)
        dst_node = cfg.node_ips.get(pkt.dst)
        if src_node is None or dst_node is None or src_node == dst_node:
            return []
        if (src_node, dst_node) in cfg.allowed_pairs:
            return []
        state, _ = self._table.get((pkt.src, pkt.dst, pkt.dport), pkt.ts)
        state.count += 1
        if state.fired:
            return []
        state.fired = True
        reasons = [
            f"node {src_node} ({pkt.src}) opened a connection to node {dst_node} "
            f"({pkt.dst}) on admin port {pkt.dport}",
            "pair not in allowed_pairs",
        ]
        return [
            perimeter_alert(
                self.info,
                pkt,
                reasons,
                node_id=dst_node,
                extra={"src_node_id": src_node, "dest_node_id": dst_node},
            )
        ]

    def tracked_keys(self) -> int:
        """(source, destination, port) keys tracked now."""
        return len(self._table)
