"""The perimeter sensor: every behavioural detector over one stream of packets or flows.

`PerimeterSensor` feeds each `PacketSummary` (or `FlowRecord`, replayed as its opening
packets) to the configured detectors in a fixed order and returns their EVE alerts.
Alerts whose destination is a node of the inventory are tagged with its node id.

Invariants: deterministic (same input order, same alerts); memory bounded by the
detectors' `max_keys`; packets must arrive in capture order (time never goes backwards
within one sensor).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ids.layers.packets import FlowRecord, PacketSummary, PcapStats, flow_to_packets, read_pcap
from ids.layers.perimeter_base import PerimeterDetector
from ids.layers.perimeter_flood import (
    SynFloodConfig,
    SynFloodDetector,
    UdpFloodConfig,
    UdpFloodDetector,
)
from ids.layers.perimeter_scan import (
    DistributedScanConfig,
    DistributedScanDetector,
    SynScanConfig,
    SynScanDetector,
)
from ids.layers.perimeter_services import (
    BruteForceConfig,
    BruteForceDetector,
    DnsTunnelConfig,
    DnsTunnelDetector,
    LateralMovementConfig,
    LateralMovementDetector,
)


@dataclass(frozen=True)
class PerimeterConfig:
    """Thresholds for every perimeter detector, plus the IP -> node id inventory."""

    node_ips: Mapping[str, str] = field(default_factory=dict)
    syn_scan: SynScanConfig = field(default_factory=SynScanConfig)
    distributed_scan: DistributedScanConfig = field(default_factory=DistributedScanConfig)
    syn_flood: SynFloodConfig = field(default_factory=SynFloodConfig)
    udp_flood: UdpFloodConfig = field(default_factory=UdpFloodConfig)
    dns_tunnel: DnsTunnelConfig = field(default_factory=DnsTunnelConfig)
    brute_force: BruteForceConfig = field(default_factory=BruteForceConfig)
    lateral_movement: LateralMovementConfig | None = None


class PerimeterSensor:
    """Runs all perimeter detectors; see the module docstring."""

    def __init__(self, config: PerimeterConfig | None = None) -> None:
        self.config = config = config or PerimeterConfig()
        lateral = config.lateral_movement or LateralMovementConfig(node_ips=config.node_ips)
        self.detectors: tuple[PerimeterDetector, ...] = (
            SynScanDetector(config.syn_scan),
            DistributedScanDetector(config.distributed_scan),
            SynFloodDetector(config.syn_flood),
            UdpFloodDetector(config.udp_flood),
            DnsTunnelDetector(config.dns_tunnel),
            BruteForceDetector(config.brute_force),
            LateralMovementDetector(lateral),
        )
        self.packets = 0

    def observe(self, pkt: PacketSummary) -> list[dict[str, Any]]:
        """Alerts caused by one packet, in detector order."""
        self.packets += 1
        alerts: list[dict[str, Any]] = []
        for detector in self.detectors:
            alerts.extend(detector.observe(pkt))
        node_ips = self.config.node_ips
        for alert in alerts:
            cnt = alert["cntrust"]
            if cnt.get("node_id") is None:
                cnt["node_id"] = node_ips.get(alert["dest_ip"])
        return alerts

    def observe_all(self, packets: Iterable[PacketSummary]) -> list[dict[str, Any]]:
        """Alerts for a whole packet stream."""
        alerts: list[dict[str, Any]] = []
        for pkt in packets:
            alerts.extend(self.observe(pkt))
        return alerts

    def observe_flow(self, flow: FlowRecord) -> list[dict[str, Any]]:
        """Alerts caused by one flow record (replayed as its opening packets)."""
        alerts: list[dict[str, Any]] = []
        for pkt in flow_to_packets(flow):
            alerts.extend(self.observe(pkt))
        return alerts

    def observe_pcap(
        self, path: str | Path, stats: PcapStats | None = None
    ) -> list[dict[str, Any]]:
        """Alerts for every packet of a classic pcap file.

        Raises `PcapFormatError` for a bad file header or an oversized record; malformed
        frames are counted in `stats` and skipped.
        """
        with open(path, "rb") as stream:
            return self.observe_all(read_pcap(stream, stats))

    def tracked_keys(self) -> dict[str, int]:
        """Keys each detector holds state for, by detection id (for memory checks)."""
        return {d.info.detection: d.tracked_keys() for d in self.detectors}
