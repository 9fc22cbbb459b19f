"""cntrust perimeter engine: pcap/live packet decode, flows, Suricata rules, EVE alerts.

Public API::

    Engine(rules, vars=None, clock=None, config=None).process(packet_bytes, ts, linktype)
    scan_pcap(paths, rules, vars=None, config=None) -> PcapScan (iterate for EVE dicts; .stats)
    parse_rules(text, vars) -> RuleSet(rules, errors)
    community_id_v1(saddr, daddr, proto, sport, dport)
"""

from ids.engine.community_id import community_id_v1
from ids.engine.decode import Decoder
from ids.engine.engine import Engine, EngineConfig
from ids.engine.errors import (
    EngineConfigError,
    EngineError,
    PcapFormatError,
    RuleParseError,
    SensorError,
    UnsupportedRuleError,
)
from ids.engine.eve import dumps as eve_dumps
from ids.engine.explain import ExplainError, describe_packet
from ids.engine.flow import Flow, FlowTable
from ids.engine.packet import Packet
from ids.engine.pcap import PcapReader, read_pcap
from ids.engine.rules.model import Rule
from ids.engine.rules.parser import RuleSet, parse_rule, parse_rules
from ids.engine.scan import PcapScan, ScanStats, scan_pcap

__all__ = [
    "Decoder",
    "Engine",
    "EngineConfig",
    "EngineConfigError",
    "EngineError",
    "ExplainError",
    "Flow",
    "FlowTable",
    "Packet",
    "PcapFormatError",
    "PcapReader",
    "PcapScan",
    "Rule",
    "RuleParseError",
    "RuleSet",
    "ScanStats",
    "SensorError",
    "UnsupportedRuleError",
    "community_id_v1",
    "describe_packet",
    "eve_dumps",
    "parse_rule",
    "parse_rules",
    "read_pcap",
    "scan_pcap",
]
