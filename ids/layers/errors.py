"""Errors raised by `ids.layers`.

Tree::

    IdsError                         (ids.errors)
    └── LayersError
        ├── LayersConfigError          a threshold or policy value is out of range
        ├── PacketDecodeError          a frame or pcap record could not be decoded
        │   └── PcapFormatError        the pcap file header or a record header is bad
        ├── TelemetryError
        │   ├── TelemetryParseError          telemetry bytes/JSON are malformed or too big
        │   └── TelemetryVerificationError   a telemetry signature or binding check failed
        ├── AlertFormatError           a dict is not an EVE alert this package can handle
        └── InvalidTriageTransitionError     a triage state change is not allowed
"""

from __future__ import annotations

from ids.errors import IdsError


class LayersError(IdsError):
    """Root of every error `ids.layers` raises."""


class LayersConfigError(LayersError):
    """A configuration value (threshold, window, cap, policy) is invalid."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"invalid {field}={value!r}: {reason}")
        self.field = field
        self.value = value
        self.reason = reason


class PacketDecodeError(LayersError):
    """A captured frame could not be decoded (truncated, bogus length, unknown link type)."""

    def __init__(self, reason: str, offset: int = 0) -> None:
        super().__init__(f"{reason} (at byte {offset})")
        self.reason = reason
        self.offset = offset


class PcapFormatError(PacketDecodeError):
    """The pcap global header or a record header is malformed."""


class TelemetryError(LayersError):
    """Base for telemetry problems."""


class TelemetryParseError(TelemetryError):
    """Telemetry bytes are too large, not JSON, or do not have the telemetry shape."""

    def __init__(self, reason: str, path: str = "") -> None:
        where = f" at {path}" if path else ""
        super().__init__(f"malformed telemetry{where}: {reason}")
        self.reason = reason
        self.path = path


class TelemetryVerificationError(TelemetryError):
    """A signed telemetry record failed verification (first failing step named in `step`)."""

    def __init__(
        self, step: str, reason: str, expected: object = None, calculated: object = None
    ) -> None:
        super().__init__(f"telemetry verification failed at {step}: {reason}")
        self.step = step
        self.reason = reason
        self.expected = expected
        self.calculated = calculated


class AlertFormatError(LayersError):
    """An alert dict lacks a field this package needs, or has it with the wrong type."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"alert field {field!r}: {reason}")
        self.field = field
        self.reason = reason


class InvalidTriageTransitionError(LayersError):
    """A triage state change that the state machine does not allow."""

    def __init__(self, from_state: str, to_state: str, reason: str) -> None:
        super().__init__(f"cannot move alert from {from_state} to {to_state}: {reason}")
        self.from_state = from_state
        self.to_state = to_state
        self.reason = reason
