"""ids.layers: the three detection layers around the packet engine, and alert handling.

- perimeter: behavioural detectors over packet summaries / flow records
  (`PerimeterSensor`, `ids.perimeter.*`);
- element: per-node detections over signed telemetry (`detect_element`,
  `sign_telemetry` / `verify_telemetry`, `ProcCollector` reading /proc);
- whole network: `Correlator` grouping alerts and enrollments into `Incident` objects;
- handling: aggregation, suppression, triage, filters, inventory enrichment, EVE export,
  `decide_response`.

Everything speaks Suricata EVE alert dicts with a ``cntrust`` object {layer, node_id,
detection, reasons}. Plain library code: no web stack, no database, no clock reads.
"""

from ids.layers.aggregation import AggregatedAlert, Aggregator, aggregate_alerts, aggregation_key
from ids.layers.catalog import CATALOG, DetectionInfo
from ids.layers.collector import ProcCollector, TaskSpec
from ids.layers.correlator import (
    INCIDENT_KINDS,
    Correlator,
    CorrelatorConfig,
    EnrollmentEvent,
    Incident,
)
from ids.layers.element import ElementConfig, detect_element
from ids.layers.enrichment import Inventory, NodeInfo, enrich_alert
from ids.layers.errors import (
    AlertFormatError,
    InvalidTriageTransitionError,
    LayersConfigError,
    LayersError,
    PacketDecodeError,
    PcapFormatError,
    TelemetryError,
    TelemetryParseError,
    TelemetryVerificationError,
)
from ids.layers.eve import (
    alert_key,
    community_id,
    detection_of,
    make_alert,
    to_eve_line,
    write_eve_lines,
)
from ids.layers.packets import FlowRecord, PacketSummary, PcapStats, decode_frame, read_pcap
from ids.layers.perimeter import PerimeterConfig, PerimeterSensor
from ids.layers.perimeter_flood import SynFloodConfig, UdpFloodConfig
from ids.layers.perimeter_scan import DistributedScanConfig, SynScanConfig
from ids.layers.perimeter_services import (
    BruteForceConfig,
    DnsTunnelConfig,
    LateralMovementConfig,
)
from ids.layers.response import ResponseDecision, ResponsePolicy, decide_response
from ids.layers.suppression import Suppression, SuppressionOutcome, SuppressionSet
from ids.layers.telemetry import (
    AuthFailure,
    FileWrite,
    ListeningSocket,
    ProcessSample,
    SignedTelemetry,
    TaskUsage,
    TelemetryRecord,
    encode_signed_telemetry,
    parse_signed_telemetry,
    sign_telemetry,
    verify_telemetry,
)
from ids.layers.triage import (
    AlertFilter,
    SourceGroup,
    TriageRecord,
    TriageState,
    filter_alerts,
    group_by_source,
    transition,
)

__all__ = [
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
    "FileWrite",
    "FlowRecord",
    "Incident",
    "InvalidTriageTransitionError",
    "Inventory",
    "LateralMovementConfig",
    "LayersConfigError",
    "LayersError",
    "ListeningSocket",
    "NodeInfo",
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
    "enrich_alert",
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
