"""The engine's public surface is its `__all__`; pin it so changes are deliberate."""

from __future__ import annotations

import ids.engine
from ids.errors import IdsError


def test_exported_members() -> None:
    assert sorted(ids.engine.__all__) == [
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
    for name in ids.engine.__all__:
        assert hasattr(ids.engine, name)


def test_errors_descend_from_ids_error() -> None:
    for err in (
        ids.engine.EngineError,
        ids.engine.PcapFormatError,
        ids.engine.RuleParseError,
        ids.engine.UnsupportedRuleError,
        ids.engine.SensorError,
        ids.engine.EngineConfigError,
        ids.engine.ExplainError,
    ):
        assert issubclass(err, IdsError)
    assert issubclass(ids.engine.UnsupportedRuleError, ids.engine.RuleParseError)
