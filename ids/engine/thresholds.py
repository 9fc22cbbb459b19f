"""Alert thresholds (`threshold` types limit / threshold / both) and `detection_filter`.

Semantics follow Suricata: counting is per (gid, sid, track key) — track by_src, by_dst,
by_both, by_rule or by_flow — in fixed windows of `seconds` that start at the first match
(not sliding); a match more than `seconds` after the window start opens a new window.
- limit N: alert on the first N matches of a window;
- threshold N: alert on every Nth match (the count restarts after each alert);
- both N: alert once, on the Nth match of a window;
- detection_filter N: alert on every match after the Nth in a window.
Invariant: at most `max_entries` track keys are held; the oldest is forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ids.engine.flow import Flow
from ids.engine.packet import Packet
from ids.engine.rules.model import Rule


class ThresholdTable:
    """Window counters for rules that carry a threshold or detection filter."""

    def __init__(self, max_entries: int = 65_536) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[Any, ...], list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def allow(self, rule: Rule, pkt: Packet, flow: Flow | None) -> bool:
        """Count this match of `rule`; True when it should raise an alert."""
        th = rule.threshold
        if th is None:
            return True
        track = th.track
        if track == "by_src":
            tk: Any = pkt.src
        elif track == "by_dst":
            tk = pkt.dst
        elif track == "by_both":
            tk = (pkt.src, pkt.dst)
        elif track == "by_flow":
            tk = flow.flow_id if flow is not None else None
        else:
            tk = None
        key = (rule.gid, rule.sid, tk)
        table = self._entries
        entry = table.get(key)
        ts = pkt.ts
        if entry is None or ts - entry[0] > th.seconds:
            entry = [ts, 0.0]
            table[key] = entry
            table.move_to_end(key)
            if len(table) > self.max_entries:
                table.popitem(last=False)
        entry[1] += 1
        count = entry[1]
        if th.type == "limit":
            return count <= th.count
        if th.type == "threshold":
            if count >= th.count:
                entry[1] = 0.0
                return True
            return False
        if th.type == "both":
            return count == th.count
        return count > th.count
