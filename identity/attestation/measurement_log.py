"""A simple measurement (event) log and its replay into SHA-256 PCR values.

Format: a JSON array of events ``{"pcr": int, "digest": hex, "component": str}``.
Each event extends its PCR TPM-style: ``PCR := SHA-256(PCR || digest)``,
starting from 32 zero bytes (PCRs 0-15 after TPM2_Startup(CLEAR)).

Invariants:
- Input is size-checked before parsing (``MAX_LOG_BYTES``, ``MAX_EVENTS``);
  PCR indices are 0..23, digests exactly 32 bytes, component names from a safe
  alphabet. Anything else raises :class:`EvidenceVerificationError`
  (reason ``measurement_log``).
- Replay is deterministic: the same log always yields the same PCR values.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from identity.attestation.errors import EvidenceVerificationError

MAX_LOG_BYTES = 256 * 1024
MAX_EVENTS = 1024
PCR_COUNT = 24
DIGEST_SIZE = 32
ZERO_PCR = bytes(DIGEST_SIZE)
COMPONENT_RE = re.compile(r"^[a-z0-9][a-z0-9._/:+-]{0,127}$")


def _refuse(message: str) -> EvidenceVerificationError:
    return EvidenceVerificationError(message, reason="measurement_log")


@dataclass(frozen=True, slots=True)
class MeasurementEvent:
    """One measurement: ``digest`` (SHA-256 of the component) extended into ``pcr``."""

    pcr: int
    digest: bytes
    component: str

    def __post_init__(self) -> None:
        if not 0 <= self.pcr < PCR_COUNT:
            raise _refuse(f"PCR index {self.pcr} out of range")
        if len(self.digest) != DIGEST_SIZE:
            raise _refuse(f"digest of {self.component!r} is not {DIGEST_SIZE} bytes")
        if not COMPONENT_RE.fullmatch(self.component):
            raise _refuse(f"component name {self.component!r} is not allowed")


@dataclass(frozen=True, slots=True)
class MeasurementLog:
    """An ordered list of measurement events."""

    events: tuple[MeasurementEvent, ...]

    @classmethod
    def of(cls, events: Iterable[tuple[int, bytes, str]]) -> MeasurementLog:
        """Build from ``(pcr, digest, component)`` tuples; raises EvidenceVerificationError."""
        log = cls(tuple(MeasurementEvent(p, d, c) for p, d, c in events))
        if len(log.events) > MAX_EVENTS:
            raise _refuse(f"more than {MAX_EVENTS} events")
        return log

    def to_json(self) -> bytes:
        return json.dumps(
            [
                {"pcr": e.pcr, "digest": e.digest.hex(), "component": e.component}
                for e in self.events
            ],
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> MeasurementLog:
        """Parse the JSON form; raises EvidenceVerificationError (reason ``measurement_log``)."""
        if not isinstance(data, bytes | bytearray) or len(data) > MAX_LOG_BYTES:
            raise _refuse("log missing or larger than the limit")
        try:
            items = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _refuse(f"log is not JSON: {exc}") from exc
        if not isinstance(items, list) or len(items) > MAX_EVENTS:
            raise _refuse(f"log must be an array of at most {MAX_EVENTS} events")
        events = []
        for item in items:
            if not isinstance(item, dict) or set(item) != {"pcr", "digest", "component"}:
                raise _refuse("event must have exactly pcr, digest, component")
            pcr, digest, component = item["pcr"], item["digest"], item["component"]
            if (
                type(pcr) is not int
                or not isinstance(digest, str)
                or not isinstance(component, str)
            ):
                raise _refuse("event field has the wrong type")
            if len(digest) != 2 * DIGEST_SIZE:
                raise _refuse("digest must be 64 hex characters")
            try:
                raw = bytes.fromhex(digest)
            except ValueError as exc:
                raise _refuse("digest is not hex") from exc
            events.append(MeasurementEvent(pcr, raw, component))
        return cls(tuple(events))

    def replay(self) -> dict[int, bytes]:
        """SHA-256 PCR values after extending every event in order (only PCRs touched)."""
        pcrs: dict[int, bytes] = {}
        for event in self.events:
            pcrs[event.pcr] = hashlib.sha256(pcrs.get(event.pcr, ZERO_PCR) + event.digest).digest()
        return pcrs

    def components(self) -> dict[str, tuple[bytes, ...]]:
        """Digests measured per component, in log order."""
        out: dict[str, list[bytes]] = {}
        for event in self.events:
            out.setdefault(event.component, []).append(event.digest)
        return {name: tuple(digests) for name, digests in out.items()}


def pcr_composite_digest(
    pcr_values: Mapping[int, bytes], pcrs: Sequence[int], hash_name: str = "sha256"
) -> bytes:
    """Digest of the selected PCR values concatenated in ascending index order.

    A PCR absent from ``pcr_values`` counts as its reset value (32 zero bytes).
    This is the ``pcrDigest`` a TPM puts into TPMS_QUOTE_INFO for one bank.
    """
    h = hashlib.new(hash_name)
    for index in sorted(pcrs):
        h.update(pcr_values.get(index, ZERO_PCR))
    return h.digest()
