"""Alert aggregation: a flood of identical alerts becomes one alert with a count.

The aggregation key follows Suricata's threshold ``track`` choices:
``by_both`` (signature_id, src_ip, dest_ip, dest_port, node_id) -- the default;
``by_src`` (signature_id, src_ip, node_id); ``by_dst`` (signature_id, dest_ip, dest_port,
node_id) -- right for spoofed floods, whose sources are all different; ``by_rule``
(signature_id, node_id).

An `AggregatedAlert` keeps the first alert as its representative, the count, first/last
seen, its distinct sources (1,024 stored, the rest counted) and up to `max_member_keys`
member alert keys. The representative's copy from `to_eve()` carries
``cntrust.aggregate = {id, count, first_seen, last_seen, distinct_sources}``.

Invariants: deterministic (result order = first appearance); bounded (`max_keys` groups
in the streaming `Aggregator`; the least recently updated is evicted, counted, and kept
-- at most `max_keys` of them -- until the caller takes them with `drain_evicted()`).
"""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ids.layers.errors import LayersConfigError
from ids.layers.eve import (
    alert_key,
    eve_timestamp,
    int_field,
    node_id_of,
    signature_id_of,
    str_field,
    ts_of,
)
from ids.layers.windows import CappedSet, require_positive

TRACKS = ("by_both", "by_src", "by_dst", "by_rule")


def aggregation_key(alert: Mapping[str, Any], track: str = "by_both") -> tuple[object, ...]:
    """The dedup key of `alert` under `track`; raises `LayersConfigError` for an unknown
    track and `AlertFormatError` for an alert without signature id."""
    sid = signature_id_of(alert)
    node = node_id_of(alert)
    src, dst = str_field(alert, "src_ip"), str_field(alert, "dest_ip")
    dport = int_field(alert, "dest_port")
    if track == "by_both":
        return (sid, src, dst, dport, node)
    if track == "by_src":
        return (sid, src, node)
    if track == "by_dst":
        return (sid, dst, dport, node)
    if track == "by_rule":
        return (sid, node)
    raise LayersConfigError("track", track, f"must be one of {', '.join(TRACKS)}")


@dataclass
class AggregatedAlert:
    """One aggregated alert: representative (first) alert, count, first/last seen."""

    key: tuple[object, ...]
    first: Mapping[str, Any]
    count: int
    first_seen: float
    last_seen: float
    sources: CappedSet[str]
    member_keys: list[str] = field(default_factory=list)

    @property
    def aggregate_id(self) -> str:
        """Stable id of this aggregate: hash of its key and first alert."""
        text = repr(self.key) + alert_key(self.first)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def to_eve(self) -> dict[str, Any]:
        """The representative alert with ``cntrust.aggregate`` filled in (a copy)."""
        record = copy.deepcopy(dict(self.first))
        cnt = dict(record.get("cntrust") or {})
        cnt["aggregate"] = {
            "id": self.aggregate_id,
            "count": self.count,
            "first_seen": eve_timestamp(self.first_seen),
            "last_seen": eve_timestamp(self.last_seen),
            "distinct_sources": self.sources.size,
        }
        record["cntrust"] = cnt
        return record


class Aggregator:
    """Streaming aggregation; see the module docstring."""

    def __init__(
        self, track: str = "by_both", max_keys: int = 100_000, max_member_keys: int = 64
    ) -> None:
        if track not in TRACKS:
            raise LayersConfigError("track", track, f"must be one of {', '.join(TRACKS)}")
        require_positive("max_keys", max_keys)
        self.track = track
        self.max_keys = max_keys
        self.max_member_keys = max_member_keys
        self._groups: OrderedDict[tuple[object, ...], AggregatedAlert] = OrderedDict()
        self._order: dict[tuple[object, ...], int] = {}
        self._next = 0
        self.evicted: list[AggregatedAlert] = []
        self.evicted_count = 0
        self.alerts_in = 0

    def add(self, alert: Mapping[str, Any]) -> AggregatedAlert:
        """Add one alert; returns its (possibly new) aggregate. Raises `AlertFormatError`."""
        key = aggregation_key(alert, self.track)
        ts = ts_of(alert)
        self.alerts_in += 1
        agg = self._groups.get(key)
        if agg is None:
            agg = AggregatedAlert(key, alert, 0, ts, ts, CappedSet(1024))
            self._groups[key] = agg
            self._order[key] = self._next
            self._next += 1
            if len(self._groups) > self.max_keys:
                old_key, old = self._groups.popitem(last=False)
                del self._order[old_key]
                self.evicted_count += 1
                if len(self.evicted) < self.max_keys:
                    self.evicted.append(old)
        else:
            self._groups.move_to_end(key)
        agg.count += 1
        agg.first_seen = min(agg.first_seen, ts)
        agg.last_seen = max(agg.last_seen, ts)
        src = str_field(alert, "src_ip")
        if src is not None:
            agg.sources.add(src)
        if len(agg.member_keys) < self.max_member_keys:
            agg.member_keys.append(alert_key(alert))
        return agg

    def drain_evicted(self) -> list[AggregatedAlert]:
        """Aggregates evicted since the last call (for the caller to store), oldest first."""
        taken, self.evicted = self.evicted, []
        return taken

    def results(self) -> list[AggregatedAlert]:
        """Current aggregates in order of first appearance."""
        return sorted(self._groups.values(), key=lambda a: self._order[a.key])


def aggregate_alerts(
    alerts: Iterable[Mapping[str, Any]], track: str = "by_both"
) -> list[AggregatedAlert]:
    """Aggregate a finite batch of alerts (unbounded key count: use `Aggregator` for
    streams). Raises `LayersConfigError` / `AlertFormatError`."""
    agg = Aggregator(track, max_keys=2**62)
    for alert in alerts:
        agg.add(alert)
    return agg.results()
