"""Shared pieces of the perimeter detectors: the detector protocol and alert emission.

A perimeter detector consumes `PacketSummary` objects in capture order and returns the
EVE alerts (``cntrust.layer == "perimeter"``) that packet caused. It fires at most once
per key per window, so a flood yields a handful of alerts, not one per packet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ids.layers.catalog import DetectionInfo
from ids.layers.eve import make_alert
from ids.layers.packets import PacketSummary

MAX_LISTED = 32  # sources/ports named in one alert's cntrust object


class PerimeterDetector(Protocol):
    """What `PerimeterSensor` needs from a detector."""

    info: DetectionInfo

    def observe(self, pkt: PacketSummary) -> list[dict[str, Any]]:
        """Alerts caused by this packet (usually none)."""

    def tracked_keys(self) -> int:
        """How many keys the detector holds state for now (bounded by its config)."""


def perimeter_alert(
    info: DetectionInfo,
    pkt: PacketSummary,
    reasons: Sequence[str],
    *,
    node_id: str | None = None,
    src: str | None = None,
    dst: str | None = None,
    dport: int | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An EVE alert for `info` triggered by `pkt` (addresses overridable)."""
    src_ip = src if src is not None else pkt.src
    dest_ip = dst if dst is not None else pkt.dst
    keep_ports = src is None and dst is None and pkt.proto in (6, 17)
    return make_alert(
        ts=pkt.ts,
        src_ip=src_ip,
        dest_ip=dest_ip,
        proto=pkt.proto,
        src_port=pkt.sport if keep_ports else None,
        dest_port=dport if dport is not None else (pkt.dport if pkt.proto in (6, 17) else None),
        signature_id=info.signature_id,
        signature=info.signature,
        category=info.category,
        severity=info.severity,
        layer="perimeter",
        node_id=node_id,
        detection=info.detection,
        reasons=reasons,
        extra=extra,
    )


def crossed(name: str, value: float, threshold_name: str, threshold: float) -> str:
    """A reason string: ``"name=value >= threshold_name=threshold"``."""
    return f"{name}={value:g} >= {threshold_name}={threshold:g}"
