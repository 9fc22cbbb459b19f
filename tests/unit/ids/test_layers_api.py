"""The public surface of ids.layers and ids.scenarios is deliberate: pin it."""

from __future__ import annotations

import ids.layers
import ids.scenarios
from ids.errors import IdsError
from ids.layers import errors


def test_layers_exports_are_pinned() -> None:
    assert sorted(ids.layers.__all__) == sorted(
        [
            "CATALOG",
            "INCIDENT_KINDS",
            "AggregatedAlert",
            "Aggregator",
            "AlertFilter",
            "AlertFormatError",
            "AuthFailure",
            "BruteForceConfig",
            "Correlator",
            "CorrelatorConfig",
            "DetectionInfo",
            "DistributedScanConfig",
            "DnsTunnelConfig",
            "ElementConfig",
            "EnrollmentEvent",
            "Inventory",
            "NodeInfo",
            "enrich_alert",
            "FileWrite",
            "FlowRecord",
            "Incident",
            "InvalidTriageTransitionError",
            "LateralMovementConfig",
            "LayersConfigError",
            "LayersError",
            "ListeningSocket",
            "PacketDecodeError",
            "PacketSummary",
            "PcapFormatError",
            "PcapStats",
            "PerimeterConfig",
            "PerimeterSensor",
            "ProcCollector",
            "ProcessSample",
            "ResponseDecision",
            "ResponsePolicy",
            "SignedTelemetry",
            "SourceGroup",
            "Suppression",
            "SuppressionOutcome",
            "SuppressionSet",
            "SynFloodConfig",
            "SynScanConfig",
            "TaskSpec",
            "TaskUsage",
            "TelemetryError",
            "TelemetryParseError",
            "TelemetryRecord",
            "TelemetryVerificationError",
            "TriageRecord",
            "TriageState",
            "UdpFloodConfig",
            "aggregate_alerts",
            "aggregation_key",
            "alert_key",
            "community_id",
            "decide_response",
            "decode_frame",
            "detect_element",
            "detection_of",
            "encode_signed_telemetry",
            "filter_alerts",
            "group_by_source",
            "make_alert",
            "parse_signed_telemetry",
            "read_pcap",
            "sign_telemetry",
            "to_eve_line",
            "transition",
            "verify_telemetry",
            "write_eve_lines",
        ]
    )
    for name in ids.layers.__all__:
        assert getattr(ids.layers, name) is not None


def test_scenarios_exports_are_pinned() -> None:
    assert sorted(ids.scenarios.__all__) == sorted(
        [
            "EXPLOIT_SID",
            "RULES_FILE",
            "SCENARIOS",
            "ScenarioResult",
            "ScenarioScore",
            "generate_scenarios",
            "score_detections",
        ]
    )


def test_every_layers_error_descends_from_ids_error() -> None:
    classes = [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type)
        and issubclass(obj, Exception)
        and obj.__module__ == errors.__name__
    ]
    assert len(classes) >= 9
    for cls in classes:
        assert issubclass(cls, errors.LayersError) and issubclass(cls, IdsError)


def test_detection_catalog_ids_are_dotted_and_unique() -> None:
    sids = [info.signature_id for info in ids.layers.CATALOG.values()]
    assert len(set(sids)) == len(sids)
    for name, info in ids.layers.CATALOG.items():
        assert name == info.detection
        assert name.startswith(("ids.perimeter.", "ids.element.")) and info.layer in name
        assert 1_000_000 <= info.signature_id < 2_000_000
        assert info.severity in (1, 2, 3)
