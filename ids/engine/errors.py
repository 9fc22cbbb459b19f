"""Errors raised by `ids.engine` (the perimeter packet engine).

Tree::

    IdsError
    └── EngineError
        ├── PcapFormatError        the capture file is not a pcap/pcapng file we can read
        ├── RuleParseError         a rule could not be parsed (carries sid and line)
        │   └── UnsupportedRuleError   a rule uses a keyword or form the engine does not support
        ├── EngineConfigError      an EngineConfig value is out of range
        └── SensorError            the live sensor could not capture or ship alerts

Decode problems inside a packet are never raised: they are counted as decode events.
"""

from __future__ import annotations

from ids.errors import IdsError


class EngineError(IdsError):
    """Root of every error the perimeter engine raises."""


class PcapFormatError(EngineError):
    """The capture file's header is not a supported pcap or pcapng header."""

    def __init__(self, reason: str, path: str | None = None) -> None:
        self.reason = reason
        self.path = path
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{reason}")


class RuleParseError(EngineError):
    """A rule could not be parsed; carries the rule's sid (when known) and line number."""

    def __init__(self, reason: str, sid: int | None = None, line: int | None = None) -> None:
        self.reason = reason
        self.sid = sid
        self.line = line
        super().__init__(f"rule sid={sid} line={line}: {reason}")


class UnsupportedRuleError(RuleParseError):
    """A rule is well formed but uses something the engine does not implement."""


class EngineConfigError(EngineError, ValueError):
    """An `EngineConfig` value is invalid; carries the field name."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class SensorError(EngineError):
    """The live sensor failed to capture packets or to ship an alert batch."""
