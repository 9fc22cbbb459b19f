"""Element telemetry at the scheduler: a node's signed records in, element alerts out.

A node registers the Ed25519 public key it signs telemetry with, once, authenticated as
itself (:func:`register_key`; a different key later is refused: the node re-enrolls).
Each record it sends (:func:`accept`) is parsed strictly (size first), verified
(``ids.layers.verify_telemetry``: algorithm, signature, node id = the caller, sequence
number above the last accepted one, freshness) and run through ``detect_element``; the
alerts then take the same path as sensor alerts (``scheduler.incidents.ingest_batch``),
and the new sequence number is stored in that same transaction, so a replayed record is
refused even across restarts.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlmodel import Session

from ids.layers import (
    ElementConfig,
    SignedTelemetry,
    TelemetryParseError,
    TelemetryVerificationError,
    detect_element,
    parse_signed_telemetry,
    verify_telemetry,
)
from scheduler import alerts
from scheduler.errors import Conflict, InvalidRequest, NotFound, SchedulerError
from scheduler.incidents import BatchOutcome, ingest_batch
from scheduler.tables.incidents import NodeTelemetryKey

MAX_AGE_MS = 300_000


class TelemetryRefused(SchedulerError):
    status = 422
    type_slug = "telemetry-refused"
    title = "Telemetry refused"


@dataclass(frozen=True)
class TelemetryOutcome:
    seq: int
    alerts: int
    batch: BatchOutcome


def decode_key(text: str) -> Ed25519PublicKey:
    """A raw Ed25519 public key from base64url; raises InvalidRequest."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("public_key is not base64url", field="public_key") from exc
    if len(raw) != 32:
        raise InvalidRequest("public_key must be a 32-byte Ed25519 key", field="public_key")
    return Ed25519PublicKey.from_public_bytes(raw)


def register_key(session: Session, node_id: str, public_key: str, now: float) -> bool:
    """Store the node's telemetry key (a committer op). True when new, False when the same
    key was registered already. Raises Conflict for a different key."""
    decode_key(public_key)
    row = session.get(NodeTelemetryKey, node_id)
    if row is not None:
        if row.public_key != public_key:
            raise Conflict(
                f"node {node_id} registered another telemetry key; re-enroll the node to change it"
            )
        return False
    session.add(NodeTelemetryKey(node_id=node_id, public_key=public_key, registered_at=now))
    return True


def forget_key(session: Session, node_id: str) -> None:
    """Delete the node's telemetry key (a committer op). Raises NotFound."""
    row = session.get(NodeTelemetryKey, node_id) if len(node_id) <= 64 else None
    if row is None:
        raise NotFound(f"node {node_id} has no telemetry key")
    session.delete(row)


def parse(body: bytes) -> SignedTelemetry:
    try:
        return parse_signed_telemetry(body)
    except TelemetryParseError as exc:
        raise InvalidRequest(str(exc), field=exc.path or None) from exc


async def accept(
    service: Any,
    node_id: str,
    body: bytes,
    track: str,
    config: ElementConfig | None = None,
) -> TelemetryOutcome:
    """Verify one signed record from ``node_id`` and ingest its element alerts.

    Raises InvalidRequest (malformed), Conflict (no key registered), TelemetryRefused
    (a verification step failed, named in ``step``)."""
    signed = parse(body)
    with service.read() as session:
        key_row = session.get(NodeTelemetryKey, node_id) if len(node_id) <= 64 else None
    if key_row is None:
        raise Conflict(f"node {node_id} has no telemetry key: POST /v1/agent/telemetry-key")
    now_ms = int(service.clock() * 1000)
    last_seq = key_row.last_seq

    def verify(last: int) -> None:
        try:
            verify_telemetry(
                signed,
                decode_key(key_row.public_key),
                expected_node_id=node_id,
                last_seq=last,
                now_ms=now_ms,
                max_age_ms=MAX_AGE_MS,
            )
        except TelemetryVerificationError as exc:
            raise TelemetryRefused(str(exc), step=exc.step) from exc

    verify(last_seq)
    record = signed.record
    try:
        ipaddress.ip_address(record.node_ip)
    except ValueError as exc:
        raise InvalidRequest("telemetry: node_ip is not an IP address", field="node_ip") from exc
    found = detect_element(record, config)
    for alert in found:
        problem = alerts.alert_problem(alert)
        if problem is not None:  # e.g. a node_ip that is not an address
            raise InvalidRequest(f"telemetry gives an invalid alert: {problem[0]}: {problem[1]}")

    def claim_seq(session: Session) -> None:
        row = session.get(NodeTelemetryKey, node_id)
        if row is None:
            raise Conflict(f"node {node_id} has no telemetry key")
        verify(row.last_seq)  # another request may have moved it since
        row.last_seq = record.seq
        row.last_at = service.clock()
        row.records += 1
        session.add(row)

    batch = await ingest_batch(service, found, f"element:{node_id}", track, before=claim_seq)
    return TelemetryOutcome(record.seq, len(found), batch)
