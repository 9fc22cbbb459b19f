"""The catalog of cntrust detections: stable dotted id -> EVE signature fields.

Dotted ids are the public names (like Zeek notice types); signature ids sit in the range
Suricata reserves for local rules (1,000,000-1,999,999): perimeter 1,990,0xx, element
1,991,0xx, whole network 1,992,0xx. Severity uses Suricata's scale (1 high .. 3 low).
"""

from __future__ import annotations

from dataclasses import dataclass

from ids.layers.eve import SEVERITY_HIGH, SEVERITY_LOW, SEVERITY_MEDIUM


@dataclass(frozen=True, slots=True)
class DetectionInfo:
    """EVE ``alert`` fields for one detection."""

    detection: str
    signature_id: int
    signature: str
    category: str
    severity: int
    layer: str


def _d(detection: str, sid: int, signature: str, category: str, severity: int) -> DetectionInfo:
    layer = detection.split(".")[1]
    return DetectionInfo(detection, sid, signature, category, severity, layer)


SYN_SCAN = _d(
    "ids.perimeter.syn_scan",
    1_990_001,
    "CNTRUST PERIMETER TCP SYN scan from one source",
    "Detection of a Network Scan",
    SEVERITY_MEDIUM,
)
DISTRIBUTED_SCAN = _d(
    "ids.perimeter.distributed_scan",
    1_990_002,
    "CNTRUST PERIMETER distributed scan from many sources",
    "Detection of a Network Scan",
    SEVERITY_MEDIUM,
)
SYN_FLOOD = _d(
    "ids.perimeter.syn_flood",
    1_990_003,
    "CNTRUST PERIMETER spoofed TCP SYN flood (half-open)",
    "Attempted Denial of Service",
    SEVERITY_HIGH,
)
UDP_FLOOD = _d(
    "ids.perimeter.udp_flood",
    1_990_004,
    "CNTRUST PERIMETER UDP flood",
    "Attempted Denial of Service",
    SEVERITY_HIGH,
)
DNS_TUNNEL = _d(
    "ids.perimeter.dns_tunnel",
    1_990_005,
    "CNTRUST PERIMETER DNS tunneling (long/high-entropy names, high rate)",
    "Potentially Bad Traffic",
    SEVERITY_MEDIUM,
)
BRUTE_FORCE = _d(
    "ids.perimeter.brute_force",
    1_990_006,
    "CNTRUST PERIMETER brute force against an API port",
    "Attempted User Privilege Gain",
    SEVERITY_MEDIUM,
)
LATERAL_MOVEMENT = _d(
    "ids.perimeter.lateral_movement",
    1_990_007,
    "CNTRUST PERIMETER node-to-node connection on an admin port",
    "Attempted Administrator Privilege Gain",
    SEVERITY_HIGH,
)

MEASUREMENT_DRIFT = _d(
    "ids.element.measurement_drift",
    1_991_001,
    "CNTRUST ELEMENT measurement drift since last attestation",
    "A System Integrity Violation",
    SEVERITY_HIGH,
)
UNEXPECTED_LISTENER = _d(
    "ids.element.unexpected_listener",
    1_991_002,
    "CNTRUST ELEMENT unexpected listening socket",
    "Misc activity",
    SEVERITY_MEDIUM,
)
LEFTOVER_PROCESS = _d(
    "ids.element.leftover_process",
    1_991_003,
    "CNTRUST ELEMENT process left running by an ended task",
    "Misc activity",
    SEVERITY_MEDIUM,
)
WRITE_OUTSIDE_SCRATCH = _d(
    "ids.element.write_outside_scratch",
    1_991_004,
    "CNTRUST ELEMENT task wrote outside its scratch directory",
    "A System Integrity Violation",
    SEVERITY_HIGH,
)
RESOURCE_OVERUSE = _d(
    "ids.element.resource_overuse",
    1_991_005,
    "CNTRUST ELEMENT task uses more CPU or memory than requested",
    "Misc activity",
    SEVERITY_LOW,
)
MINING_SUSPECTED = _d(
    "ids.element.mining_suspected",
    1_991_006,
    "CNTRUST ELEMENT sustained CPU near limit with no output (mining-style abuse)",
    "Potential Corporate Privacy Violation",
    SEVERITY_MEDIUM,
)
AUTH_FAILURES = _d(
    "ids.element.auth_failures",
    1_991_007,
    "CNTRUST ELEMENT repeated authentication failures against the node agent",
    "Attempted User Privilege Gain",
    SEVERITY_MEDIUM,
)

CATALOG: dict[str, DetectionInfo] = {
    info.detection: info
    for info in (
        SYN_SCAN,
        DISTRIBUTED_SCAN,
        SYN_FLOOD,
        UDP_FLOOD,
        DNS_TUNNEL,
        BRUTE_FORCE,
        LATERAL_MOVEMENT,
        MEASUREMENT_DRIFT,
        UNEXPECTED_LISTENER,
        LEFTOVER_PROCESS,
        WRITE_OUTSIDE_SCRATCH,
        RESOURCE_OVERUSE,
        MINING_SUSPECTED,
        AUTH_FAILURES,
    )
}
