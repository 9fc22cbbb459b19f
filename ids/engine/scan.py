"""Offline scanning: run the engine over capture files and yield EVE records.

`scan_pcap(paths, rules)` returns a `PcapScan`: iterate it for EVE dicts (alerts, then flow
records as flows end when `log_flows` is on, and a final stats record when `log_stats` is
on); after iteration `scan.stats` holds packets, decode events and damaged-record counts.
Files are processed in the order given, as one continuous capture (pcap_cnt keeps counting).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ids.engine.engine import Engine, EngineConfig
from ids.engine.eve import format_timestamp
from ids.engine.pcap import PcapReader
from ids.engine.rules.model import Rule
from ids.engine.rules.parser import RuleSet


@dataclass
class ScanStats:
    """Counters of one scan."""

    packets: int = 0
    alerts: int = 0
    decode_events: dict[str, int] = field(default_factory=dict)
    decode_counters: dict[str, int] = field(default_factory=dict)
    truncated_records: int = 0
    bogus_records: int = 0
    flows_created: int = 0
    flows_evicted: int = 0
    rules_loaded: int = 0
    rules_failed: int = 0

    @property
    def decode_errors(self) -> int:
        """Total decode events (truncated, malformed or bogus-length headers)."""
        return sum(self.decode_events.values())

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict form (stable key order) for EVE stats records and reports."""
        return {
            "packets": self.packets,
            "alerts": self.alerts,
            "decode_errors": self.decode_errors,
            "decode_events": dict(sorted(self.decode_events.items())),
            "decoder": dict(self.decode_counters),
            "truncated_records": self.truncated_records,
            "bogus_records": self.bogus_records,
            "flows_created": self.flows_created,
            "flows_evicted": self.flows_evicted,
            "rules_loaded": self.rules_loaded,
            "rules_failed": self.rules_failed,
        }


class PcapScan:
    """Iterable over the EVE records of a scan; `stats` is complete once iteration ends."""

    def __init__(self, paths: Sequence[str], engine: Engine, log_stats: bool) -> None:
        self.paths = list(paths)
        self.engine = engine
        self.log_stats = log_stats
        self.stats = ScanStats(rules_loaded=len(engine.rules), rules_failed=len(engine.rule_errors))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        eng = self.engine
        process = eng.process
        last_ts = 0.0
        for path in self.paths:
            with open(path, "rb") as f:
                reader = PcapReader(f, path)
                try:
                    for ts, linktype, data in reader:
                        last_ts = ts
                        alerts = process(data, ts, linktype)
                        if alerts:
                            yield from alerts
                        if eng.flows.ended:
                            yield from eng.drain_flow_events()
                finally:
                    self.stats.truncated_records += reader.truncated_records
                    self.stats.bogus_records += reader.bogus_records
        yield from eng.end_of_input()
        st = self.stats
        st.packets = eng.pcap_cnt
        st.alerts = eng.alerts_total
        st.decode_events = dict(eng.decoder.events)
        st.decode_counters = dict(eng.decoder.counters)
        st.flows_created = eng.flows.created
        st.flows_evicted = eng.flows.evicted
        if self.log_stats:
            yield {
                "timestamp": format_timestamp(last_ts),
                "event_type": "stats",
                "stats": st.as_dict(),
            }


def scan_pcap(
    paths: str | Sequence[str],
    rules: str | RuleSet | Sequence[Rule],
    vars: dict[str, str] | None = None,
    config: EngineConfig | None = None,
    log_stats: bool = False,
) -> PcapScan:
    """Scan capture files with `rules` (text, RuleSet or Rule list).

    Raises (during iteration):
        PcapFormatError: a file is not pcap/pcapng.
        OSError: a file cannot be read.
    """
    if isinstance(paths, str):
        paths = [paths]
    return PcapScan(paths, Engine(rules, vars=vars, config=config), log_stats)
