"""Alert handling wired into the scheduler: ingest, suppress, triage, enrich, export.

The library (`ids.layers`) owns the semantics -- the aggregation key, suppression matching,
the triage state machine, filters, inventory enrichment and EVE output; this module owns
validation at the API edge and the database operations (each a function of a session run
by the group committer, so one request is one durable write).

Invariants:
- An ingest batch is validated whole before anything is written: one bad alert refuses the
  batch with its index named (`InvalidRequest`), nothing is stored.
- ``received == stored + aggregated_into_existing + suppressed`` for every ingest, where
  ``stored`` counts new aggregates and ``aggregated_into_existing`` counts alerts folded
  into an aggregate that already existed (in the table or earlier in the same batch).
- Suppressions apply at the scheduler's clock: an expired one stops suppressing.
- Triage moves go through ``ids.layers.transition`` and each one is audited in the same
  transaction as the state change.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from ids.layers import (
    Aggregator,
    AlertFilter,
    AlertFormatError,
    InvalidTriageTransitionError,
    Inventory,
    LayersConfigError,
    NodeInfo,
    Suppression,
    SuppressionSet,
    TriageRecord,
    TriageState,
    aggregation_key,
    enrich_alert,
    transition,
)
from ids.layers.aggregation import TRACKS
from ids.layers.eve import eve_timestamp, parse_eve_timestamp
from scheduler.errors import Conflict, InvalidRequest, NotFound, SchedulerError
from scheduler.models import Node
from scheduler.tables.alerts import AlertAggregate, AlertAudit, AlertSuppression

MAX_ALERTS_PER_REQUEST = 1000
MAX_TEXT = 1024
MAX_SOURCES_KEPT = 64
MAX_ERRORS_LISTED = 20
MAX_SUPPRESSION_TTL_S = 90 * 86400.0
MAX_EPOCH_S = 2.0**33  # year 2242: every time renders back as an EVE timestamp


class TooManyAlerts(SchedulerError):
    status = 413
    type_slug = "too-large"
    title = "Too many alerts"


class MalformedJson(SchedulerError):
    status = 400
    type_slug = "malformed-json"
    title = "Malformed JSON"


@dataclass(frozen=True)
class AlertsConfig:
    """Alert handling settings of one deployment.

    `track` is the aggregation key choice of ``ids.layers.aggregation_key``: ``by_both``
    (default), ``by_src``, ``by_dst`` (right for spoofed floods), ``by_rule``.
    """

    track: str = "by_both"
    max_alerts_per_request: int = MAX_ALERTS_PER_REQUEST
    max_export: int = 10_000

    def __post_init__(self) -> None:
        if self.track not in TRACKS:
            raise LayersConfigError("track", self.track, f"must be one of {', '.join(TRACKS)}")
        if not 1 <= self.max_alerts_per_request <= MAX_ALERTS_PER_REQUEST:
            raise LayersConfigError(
                "max_alerts_per_request", self.max_alerts_per_request, "must be 1..1000"
            )


def config_of(state: Any) -> AlertsConfig:
    """The deployment's config: ``app.state.alerts_config`` when set, else the defaults
    with the track from the service's settings (``CNTRUST_ALERTS_TRACK``)."""
    cfg = getattr(state, "alerts_config", None)
    if isinstance(cfg, AlertsConfig):
        return cfg
    settings = getattr(getattr(state, "service", None), "settings", None)
    track = getattr(settings, "alerts_track", None)
    return AlertsConfig(track=track) if isinstance(track, str) else AlertsConfig()


# -- parsing and validation at the edge ----------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_alert_batch(raw: bytes, limit: int) -> list[dict[str, Any]]:
    """Parse and validate a POSTed batch: a JSON list of EVE alert objects.

    Raises `MalformedJson` (not JSON), `TooManyAlerts` (more than `limit`), and
    `InvalidRequest` naming the index and field of every bad alert (up to 20 listed).
    """
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise MalformedJson("the body is not valid JSON") from exc
    if not isinstance(body, list):
        raise InvalidRequest("the body must be a JSON list of EVE alert objects")
    if len(body) > limit:
        raise TooManyAlerts(f"{len(body)} alerts in one request; at most {limit} are accepted")
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(body):
        problem = alert_problem(item)
        if problem is not None:
            errors.append({"index": index, "field": problem[0], "reason": problem[1]})
    if errors:
        first = errors[0]
        raise InvalidRequest(
            f"alert {first['index']}: {first['field']}: {first['reason']}"
            + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
            errors=errors[:MAX_ERRORS_LISTED],
        )
    return body


def _text(value: Any, name: str, *, required: bool = True, max_len: int = MAX_TEXT) -> str | None:
    if value is None:
        if required:
            raise AlertFormatError(name, "missing")
        return None
    if not isinstance(value, str):
        raise AlertFormatError(name, "not a string")
    if len(value) > max_len:
        raise AlertFormatError(name, f"longer than {max_len} characters")
    if "\x00" in value:
        raise AlertFormatError(name, "contains a NUL character")
    return value


def _int(value: Any, name: str, low: int, high: int, *, required: bool = True) -> int | None:
    if value is None:
        if required:
            raise AlertFormatError(name, "missing")
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise AlertFormatError(name, "not an integer")
    if not low <= value <= high:
        raise AlertFormatError(name, f"out of range {low}..{high}")
    return value


def _ip(value: Any, name: str) -> None:
    text = _text(value, name, max_len=64)
    try:
        ipaddress.ip_address(str(text))
    except ValueError as exc:
        raise AlertFormatError(name, "not an IP address") from exc


def check_alert(item: Any) -> None:
    """Raise `AlertFormatError` unless `item` is an EVE alert this scheduler stores."""
    if not isinstance(item, dict):
        raise AlertFormatError("<root>", "not a JSON object")
    if item.get("event_type") != "alert":
        raise AlertFormatError("event_type", 'must be "alert"')
    stamp = _text(item.get("timestamp"), "timestamp", max_len=64)
    if not 0 <= parse_eve_timestamp(str(stamp)) < MAX_EPOCH_S:
        raise AlertFormatError("timestamp", "before 1970 or after 2242")
    _ip(item.get("src_ip"), "src_ip")
    _ip(item.get("dest_ip"), "dest_ip")
    _int(item.get("src_port"), "src_port", 0, 65535, required=False)
    _int(item.get("dest_port"), "dest_port", 0, 65535, required=False)
    _text(item.get("proto"), "proto", max_len=16)
    inner = item.get("alert")
    if not isinstance(inner, dict):
        raise AlertFormatError("alert", "missing or not an object")
    _int(inner.get("signature_id"), "alert.signature_id", 0, 2**32 - 1)
    _text(inner.get("signature"), "alert.signature")
    _text(inner.get("category"), "alert.category", required=False)
    _int(inner.get("severity"), "alert.severity", 1, 255)
    _int(inner.get("gid"), "alert.gid", 0, 2**32 - 1, required=False)
    _int(inner.get("rev"), "alert.rev", 0, 2**32 - 1, required=False)
    cnt = item.get("cntrust")
    if cnt is not None:
        if not isinstance(cnt, dict):
            raise AlertFormatError("cntrust", "not an object")
        _text(cnt.get("node_id"), "cntrust.node_id", required=False, max_len=64)
        _text(cnt.get("layer"), "cntrust.layer", required=False, max_len=32)
    aggregation_key(item)  # the library's own check of the fields it keys on


def alert_problem(item: Any) -> tuple[str, str] | None:
    """``(field, reason)`` of the first problem with `item`, or None when it is valid."""
    try:
        check_alert(item)
    except AlertFormatError as exc:
        return exc.field, exc.reason
    return None


# -- ingest ----------------------------------------------------------------------------------
@dataclass
class IngestResult:
    received: int = 0
    stored: int = 0
    aggregated_into_existing: int = 0
    suppressed: int = 0
    alert_ids: list[str] = field(default_factory=list)
    suppressed_by: dict[str, int] = field(default_factory=dict)
    # the alerts not suppressed, each with the id of the aggregate it went into, and the
    # aggregates this ingest created (the incident and trust wiring read these)
    kept: list[tuple[Mapping[str, Any], str]] = field(default_factory=list)
    new_ids: list[str] = field(default_factory=list)


def dedup_key(track: str, key: Sequence[object]) -> str:
    """Hex sha256 of the track and the library's aggregation key."""
    return hashlib.sha256(json.dumps([track, *key]).encode()).hexdigest()


def _to_suppression(row: AlertSuppression) -> Suppression:
    return Suppression(
        owner=row.owner,
        reason=row.reason,
        created_at=row.created_at,
        expires_at=row.expires_at,
        signature_id=row.signature_id,
        src_ip=row.src_ip,
        dest_ip=row.dest_ip,
        node_id=row.node_id,
    )


def active_suppressions(session: Session, now: float) -> SuppressionSet:
    """Suppressions in force at `now` (each row's id is the library's ``suppression_id``)."""
    rows = session.exec(
        select(AlertSuppression)
        .where(AlertSuppression.expires_at > now)
        .where(AlertSuppression.created_at <= now)
        .order_by(col(AlertSuppression.created_at), col(AlertSuppression.id))
    ).all()
    return SuppressionSet(_to_suppression(row) for row in rows)


def _merge_sources(row: AlertAggregate, new: Sequence[str], overflow: int) -> None:
    sources = list(row.sources)
    known = set(sources)
    extra = overflow
    for src in new:
        if src in known:
            continue
        if len(sources) < MAX_SOURCES_KEPT:
            sources.append(src)
            known.add(src)
        else:
            extra += 1
    row.sources = sorted(sources)
    row.sources_overflow += extra


def ingest(
    session: Session, alerts: Sequence[Mapping[str, Any]], now: float, track: str, sensor: str
) -> IngestResult:
    """Suppress, aggregate and store validated alerts (a committer operation)."""
    result = IngestResult(received=len(alerts))
    outcome = active_suppressions(session, now).apply(alerts, now)
    result.suppressed = len(outcome.suppressed)
    for _alert, sup_id in outcome.suppressed:
        result.suppressed_by[sup_id] = result.suppressed_by.get(sup_id, 0) + 1
    agg = Aggregator(track, max_keys=max(len(alerts), 1))
    latest: dict[tuple[object, ...], tuple[float, Mapping[str, Any]]] = {}
    severity: dict[tuple[object, ...], int] = {}
    key_of: list[tuple[Mapping[str, Any], tuple[object, ...]]] = []
    for alert in outcome.kept:
        group = agg.add(alert)
        key_of.append((alert, group.key))
        ts = parse_eve_timestamp(alert["timestamp"])
        if group.key not in latest or ts >= latest[group.key][0]:
            latest[group.key] = (ts, alert)
        sev = int(alert["alert"]["severity"])
        severity[group.key] = min(sev, severity.get(group.key, sev))
    row_of: dict[tuple[object, ...], str] = {}
    for group in agg.results():
        dkey = dedup_key(track, group.key)
        newest = latest[group.key][1]
        row = session.exec(select(AlertAggregate).where(AlertAggregate.open_key == dkey)).first()
        if row is None:
            row = _new_row(group.first, dkey, track, now)
            row.count = group.count
            row.first_seen, row.last_seen = group.first_seen, group.last_seen
            row.severity = severity[group.key]
            result.stored += 1
            result.new_ids.append(row.id)
            result.aggregated_into_existing += group.count - 1
        else:
            row.count += group.count
            row.first_seen = min(row.first_seen, group.first_seen)
            row.severity = min(row.severity, severity[group.key])
            result.aggregated_into_existing += group.count
        if group.last_seen >= row.last_seen or row.last_raw == "":
            _take_latest(row, newest)
            row.last_seen = max(row.last_seen, group.last_seen)
        _merge_sources(row, group.sources.sorted_sample(MAX_SOURCES_KEPT), group.sources.overflow)
        row.sensor = sensor[:128]
        row.updated_at = now
        session.add(row)
        result.alert_ids.append(row.id)
        row_of[group.key] = row.id
    result.kept = [(alert, row_of[key]) for alert, key in key_of]
    return result


def _new_row(alert: Mapping[str, Any], dkey: str, track: str, now: float) -> AlertAggregate:
    inner = alert["alert"]
    cnt = alert.get("cntrust") or {}
    return AlertAggregate(
        id=uuid.uuid4().hex,
        dedup_key=dkey,
        open_key=dkey,
        track=track,
        count=0,
        first_seen=0.0,
        last_seen=0.0,
        severity=int(inner["severity"]),
        signature_id=int(inner["signature_id"]),
        signature=str(inner["signature"]),
        category=str(inner.get("category") or ""),
        src_ip=alert.get("src_ip"),
        src_port=alert.get("src_port"),
        dest_ip=alert.get("dest_ip"),
        dest_port=alert.get("dest_port"),
        proto=str(alert.get("proto") or ""),
        node_id=cnt.get("node_id"),
        layer=cnt.get("layer"),
        created_at=now,
        updated_at=now,
        last_raw="",
    )


def _take_latest(row: AlertAggregate, alert: Mapping[str, Any]) -> None:
    row.last_raw = json.dumps(alert, separators=(",", ":"))
    row.src_port = alert.get("src_port")
    row.signature = str(alert["alert"]["signature"])
    row.category = str(alert["alert"].get("category") or "")


# -- triage ------------------------------------------------------------------------------------
def _audit(session: Session, actor: str, action: str, target: str, now: float, **kw: Any) -> None:
    session.add(AlertAudit(at=now, actor=actor, action=action, target_id=target, **kw))


def triage(
    session: Session, alert_id: str, to_state: str, note: str, actor: str, now: float
) -> AlertAggregate:
    """Move an aggregate through the triage state machine (a committer operation).

    Raises `NotFound`, and `Conflict` for a move ``ids.layers.transition`` refuses or a
    reopen while another aggregate with the same key is open.
    """
    row = session.get(AlertAggregate, alert_id)
    if row is None:
        raise NotFound(f"alert {alert_id} not found")
    record = TriageRecord(row.id, TriageState(row.state))
    try:
        moved = transition(record, to_state, actor, now, note)
    except InvalidTriageTransitionError as exc:
        raise Conflict(
            str(exc), from_state=str(exc.from_state), to_state=str(exc.to_state), reason=exc.reason
        ) from exc
    if moved.state == TriageState.CLOSED:
        row.open_key = None
    elif row.open_key is None:
        other = session.exec(
            select(AlertAggregate.id).where(AlertAggregate.open_key == row.dedup_key)
        ).first()
        if other is not None:
            raise Conflict(
                f"cannot reopen alert {row.id}: alert {other} with the same key is open",
                open_alert_id=other,
            )
        row.open_key = row.dedup_key
    _audit(
        session,
        actor,
        "triage",
        row.id,
        now,
        from_state=row.state,
        to_state=moved.state.value,
        note=note,
    )
    row.state = moved.state.value
    row.note = note
    row.updated_at = now
    session.add(row)
    return row


# -- suppressions ------------------------------------------------------------------------------
def create_suppression(
    session: Session, suppression: Suppression, actor: str, now: float
) -> AlertSuppression:
    """Store a suppression and audit it (a committer operation). Raises `Conflict` when an
    identical one exists."""
    sid = suppression.suppression_id
    if session.get(AlertSuppression, sid) is not None:
        raise Conflict(f"suppression {sid} exists already")
    row = AlertSuppression(
        id=sid,
        signature_id=suppression.signature_id,
        src_ip=suppression.src_ip,
        dest_ip=suppression.dest_ip,
        node_id=suppression.node_id,
        owner=suppression.owner,
        reason=suppression.reason,
        created_at=suppression.created_at,
        expires_at=suppression.expires_at,
        created_by=actor,
    )
    session.add(row)
    _audit(
        session,
        actor,
        "suppression.create",
        sid,
        now,
        note=suppression.reason,
        detail=suppression_view(row, now),
    )
    return row


def delete_suppression(session: Session, sup_id: str, actor: str, now: float) -> None:
    """Delete a suppression and audit it (a committer operation). Raises `NotFound`."""
    row = session.get(AlertSuppression, sup_id) if len(sup_id) <= 32 else None
    if row is None:
        raise NotFound(f"suppression {sup_id} not found")
    _audit(
        session,
        actor,
        "suppression.delete",
        sup_id,
        now,
        note=row.reason,
        detail=suppression_view(row, now),
    )
    session.delete(row)


def suppression_view(row: AlertSuppression, now: float) -> dict[str, Any]:
    return {
        "id": row.id,
        "signature_id": row.signature_id,
        "src_ip": row.src_ip,
        "dest_ip": row.dest_ip,
        "node_id": row.node_id,
        "owner": row.owner,
        "reason": row.reason,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "created_by": row.created_by,
        "active": row.created_at <= now < row.expires_at,
    }


# -- reading ----------------------------------------------------------------------------------
def parse_time(value: str | None, name: str) -> float | None:
    """Epoch seconds or an ISO 8601 time with an offset; raises `InvalidRequest`."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidRequest(f"{name}: not epoch seconds or an ISO 8601 time") from exc
        if parsed.tzinfo is None:
            raise InvalidRequest(f"{name}: an ISO 8601 time needs a UTC offset") from None
        return parsed.timestamp()
    if not math.isfinite(number):
        raise InvalidRequest(f"{name}: not a finite number")
    return number


def make_filter(
    severity: int | None,
    states: Sequence[str] | None,
    nodes: Sequence[str] | None,
    layers: Sequence[str] | None,
    sources: Sequence[str] | None,
    since: float | None,
    until: float | None,
) -> AlertFilter:
    """The library's `AlertFilter` for these query parameters; raises `InvalidRequest`."""
    try:
        return AlertFilter(
            severity_at_most=severity,
            states=frozenset(TriageState(s) for s in states) if states else None,
            node_ids=frozenset(nodes) if nodes else None,
            layers=frozenset(layers) if layers else None,
            src_ips=frozenset(sources) if sources else None,
            since=since,
            until=until,
        )
    except LayersConfigError as exc:
        raise InvalidRequest(str(exc), field=exc.field) from exc
    except ValueError as exc:
        raise InvalidRequest(f"unknown triage state: {exc}") from exc


def query(session: Session, flt: AlertFilter, limit: int) -> list[AlertAggregate]:
    """Aggregates passing `flt`, most recently seen first. An aggregate is in the time window
    when it was active in it (first_seen < until and last_seen >= since)."""
    stmt = select(AlertAggregate)
    if flt.severity_at_most is not None:
        stmt = stmt.where(AlertAggregate.severity <= flt.severity_at_most)
    if flt.states is not None:
        stmt = stmt.where(col(AlertAggregate.state).in_(sorted(s.value for s in flt.states)))
    if flt.node_ids is not None:
        stmt = stmt.where(col(AlertAggregate.node_id).in_(sorted(flt.node_ids)))
    if flt.layers is not None:
        stmt = stmt.where(col(AlertAggregate.layer).in_(sorted(flt.layers)))
    if flt.src_ips is not None:
        stmt = stmt.where(col(AlertAggregate.src_ip).in_(sorted(flt.src_ips)))
    if flt.since is not None:
        stmt = stmt.where(AlertAggregate.last_seen >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(AlertAggregate.first_seen < flt.until)
    stmt = stmt.order_by(col(AlertAggregate.last_seen).desc(), col(AlertAggregate.id)).limit(limit)
    return list(session.exec(stmt).all())


def inventory(session: Session, node_ids: Sequence[str | None]) -> Inventory:
    """Inventory snapshot of the nodes named (operator, region, current status)."""
    wanted = sorted({n for n in node_ids if n})
    if not wanted:
        return Inventory([])
    rows = session.exec(select(Node).where(col(Node.id).in_(wanted))).all()
    return Inventory(
        NodeInfo(node_id=n.id, operator_id=n.operator, region=n.region, status=n.status.value)
        for n in rows
    )


def eve_of(row: AlertAggregate) -> dict[str, Any]:
    """The aggregate as one EVE alert: its latest raw record with ``cntrust.aggregate`` and
    ``cntrust.triage`` filled in (the shape of ``AggregatedAlert.to_eve``)."""
    record: dict[str, Any] = json.loads(row.last_raw)
    cnt = dict(record.get("cntrust") or {})
    cnt["aggregate"] = {
        "id": row.id,
        "count": row.count,
        "first_seen": eve_timestamp(row.first_seen),
        "last_seen": eve_timestamp(row.last_seen),
        "distinct_sources": len(row.sources) + row.sources_overflow,
    }
    cnt["triage"] = {"state": row.state, "note": row.note}
    record["cntrust"] = cnt
    return record


def node_facts(row: AlertAggregate, inv: Inventory) -> dict[str, Any] | None:
    """``{node_id, operator_id, region, status}`` of the alert's node, via `enrich_alert`."""
    enriched = enrich_alert(json.loads(row.last_raw), inv) if row.node_id else {}
    node = (enriched.get("cntrust") or {}).get("node")
    return dict(node) if isinstance(node, dict) else None


def audit_of(session: Session, target_id: str) -> list[AlertAudit]:
    return list(
        session.exec(
            select(AlertAudit).where(AlertAudit.target_id == target_id).order_by(col(AlertAudit.id))
        ).all()
    )
