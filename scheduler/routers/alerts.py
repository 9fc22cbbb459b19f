"""Alert handling API for security teams and sensors.

- ``POST /v1/alerts`` (sensor, admin): a JSON list of EVE alert dicts, at most 1,000;
  validated whole, suppressed ones counted, the rest aggregated in one durable write.
- ``GET /v1/alerts`` (analyst, admin, regulator): filters severity (at most, 1 high),
  state, node, layer, src, since/until; ``group_by=source``; ``GET /v1/alerts/export``
  the same as EVE JSON lines; ``GET /v1/alerts/{id}`` with its raw record and audit trail.
- ``POST /v1/alerts/{id}/triage`` (analyst, admin): the ``ids.layers`` state machine;
  a move it refuses is a 409 problem.
- ``POST|GET /v1/suppressions``, ``DELETE /v1/suppressions/{id}`` (analyst, admin).

Every alert shown carries its node's operator, region and current status from the
inventory (the Node table).
"""

from __future__ import annotations

import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from ids.layers import LayersConfigError, Suppression, group_by_source, write_eve_lines
from scheduler import alerts
from scheduler.app import Caller, json_list_response, json_response
from scheduler.authz import Resource
from scheduler.errors import InvalidRequest, NotFound
from scheduler.incidents import BatchOutcome, ingest_batch
from scheduler.service import Service
from scheduler.tables.alerts import AlertAggregate, AlertSuppression

router = APIRouter(tags=["alerts"])

_BATCH_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "maxItems": alerts.MAX_ALERTS_PER_REQUEST,
                    "items": {"type": "object", "description": "Suricata EVE alert record"},
                }
            }
        },
    }
}


class NodeFacts(BaseModel):
    node_id: str
    operator_id: str
    region: str
    status: str


class AlertOut(BaseModel):
    id: str
    count: int
    first_seen: float
    last_seen: float
    severity: int
    signature_id: int
    signature: str
    category: str
    src_ip: str | None
    src_port: int | None
    dest_ip: str | None
    dest_port: int | None
    proto: str
    node_id: str | None
    layer: str | None
    state: str
    note: str
    distinct_sources: int
    sources: list[str]
    sensor: str
    node: NodeFacts | None = None

    @classmethod
    def of(cls, row: AlertAggregate, node: dict[str, Any] | None) -> AlertOut:
        return cls(
            id=row.id,
            count=row.count,
            first_seen=row.first_seen,
            last_seen=row.last_seen,
            severity=row.severity,
            signature_id=row.signature_id,
            signature=row.signature,
            category=row.category,
            src_ip=row.src_ip,
            src_port=row.src_port,
            dest_ip=row.dest_ip,
            dest_port=row.dest_port,
            proto=row.proto,
            node_id=row.node_id,
            layer=row.layer,
            state=row.state,
            note=row.note,
            distinct_sources=len(row.sources) + row.sources_overflow,
            sources=list(row.sources),
            sensor=row.sensor,
            node=NodeFacts(**node) if node else None,
        )


class AuditOut(BaseModel):
    at: float
    actor: str
    action: str
    from_state: str | None
    to_state: str | None
    note: str


class AlertDetail(AlertOut):
    eve: dict[str, Any] = Field(default_factory=dict)
    history: list[AuditOut] = Field(default_factory=list)


class SourceGroupOut(BaseModel):
    src_ip: str
    aggregates: int
    events: int
    highest_severity: int
    signature_ids: list[int]
    node_ids: list[str]
    alert_ids: list[str]


class IngestOut(BaseModel):
    received: int
    stored: int
    aggregated_into_existing: int
    suppressed: int
    alert_ids: list[str]
    suppressed_by: dict[str, int]
    incidents: list[str] = Field(default_factory=list)
    quarantined: list[str] = Field(default_factory=list)
    revoked: list[str] = Field(default_factory=list)
    trust_evidence: int = 0


class TriageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["new", "acknowledged", "escalated", "closed"]
    note: str = Field(default="", max_length=4096)


class SuppressionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signature_id: int | None = Field(default=None, ge=0, le=2**32 - 1)
    src_ip: str | None = Field(default=None, max_length=64)
    dest_ip: str | None = Field(default=None, max_length=64)
    node_id: str | None = Field(default=None, max_length=64)
    owner: str | None = Field(default=None, min_length=1, max_length=128)
    reason: str = Field(min_length=1, max_length=4096)
    ttl_s: float = Field(gt=0, le=alerts.MAX_SUPPRESSION_TTL_S)


class SuppressionOut(BaseModel):
    id: str
    signature_id: int | None
    src_ip: str | None
    dest_ip: str | None
    node_id: str | None
    owner: str
    reason: str
    created_at: float
    expires_at: float
    created_by: str
    active: bool


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


@router.post("/v1/alerts", status_code=200, response_model=IngestOut, openapi_extra=_BATCH_SCHEMA)
async def ingest_alerts(request: Request, who: Caller) -> Response:
    """Ingest a batch of EVE alerts from a sensor."""
    service = _service(request)
    service.authorize(who, "alert.ingest", Resource("alert"))
    config = alerts.config_of(request.app.state)
    batch = alerts.parse_alert_batch(await request.body(), config.max_alerts_per_request)
    outcome = await ingest_batch(service, batch, who.label, config.track)
    return json_response(ingest_out(outcome))


def ingest_out(outcome: BatchOutcome) -> IngestOut:
    result = outcome.ingest
    return IngestOut(
        received=result.received,
        stored=result.stored,
        aggregated_into_existing=result.aggregated_into_existing,
        suppressed=result.suppressed,
        alert_ids=result.alert_ids,
        suppressed_by=result.suppressed_by,
        incidents=outcome.incidents,
        quarantined=outcome.quarantined,
        revoked=outcome.revoked,
        trust_evidence=outcome.evidence,
    )


_Severity = Annotated[
    int | None, Query(ge=1, le=4, description="at most this severity (1 high): 2 = high+medium")
]
_Many = Annotated[list[str] | None, Query(max_length=50)]


def _filter(
    severity: int | None,
    state: list[str] | None,
    node: list[str] | None,
    layer: list[str] | None,
    src: list[str] | None,
    since: str | None,
    until: str | None,
) -> Any:
    return alerts.make_filter(
        severity,
        state,
        node,
        layer,
        src,
        alerts.parse_time(since, "since"),
        alerts.parse_time(until, "until"),
    )


@router.get("/v1/alerts", response_model=list[AlertOut] | list[SourceGroupOut])
def list_alerts(
    request: Request,
    who: Caller,
    severity: _Severity = None,
    state: _Many = None,
    node: _Many = None,
    layer: _Many = None,
    src: _Many = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
    group_by: Literal["source"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Aggregated alerts, most recently seen first (or grouped by source address)."""
    service = _service(request)
    service.authorize(who, "alert.read", Resource("alert"))
    flt = _filter(severity, state, node, layer, src, since, until)
    with service.read() as session:
        rows = alerts.query(session, flt, limit)
        inv = alerts.inventory(session, [r.node_id for r in rows])
    if group_by == "source":
        by_id = {r.id: r for r in rows}
        groups = group_by_source(alerts.eve_of(r) for r in rows)
        out = []
        for g in groups:
            ids = [a["cntrust"]["aggregate"]["id"] for a in g.alerts]
            out.append(
                SourceGroupOut(
                    src_ip=g.src_ip,
                    aggregates=g.count,
                    events=sum(by_id[i].count for i in ids),
                    highest_severity=g.highest_severity,
                    signature_ids=[int(s) for s in g.signature_ids],
                    node_ids=list(g.node_ids),
                    alert_ids=ids,
                )
            )
        return json_list_response(out)
    return json_list_response([AlertOut.of(r, alerts.node_facts(r, inv)) for r in rows])


@router.get("/v1/alerts/export", response_class=Response)
def export_alerts(
    request: Request,
    who: Caller,
    severity: _Severity = None,
    state: _Many = None,
    node: _Many = None,
    layer: _Many = None,
    src: _Many = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> Response:
    """The aggregates as EVE JSON lines (``application/x-ndjson``), oldest first."""
    service = _service(request)
    service.authorize(who, "alert.read", Resource("alert"))
    flt = _filter(severity, state, node, layer, src, since, until)
    config = alerts.config_of(request.app.state)
    with service.read() as session:
        rows = alerts.query(session, flt, min(limit, config.max_export))
    out = io.StringIO()
    write_eve_lines((alerts.eve_of(r) for r in reversed(rows)), out)
    return Response(out.getvalue(), media_type="application/x-ndjson")


@router.get("/v1/alerts/{alert_id}", response_model=AlertDetail)
def show_alert(alert_id: str, request: Request, who: Caller) -> Response:
    """One aggregate with its latest raw EVE record and its triage history."""
    service = _service(request)
    service.authorize(who, "alert.read", Resource("alert", alert_id))
    with service.read() as session:
        row = session.get(AlertAggregate, alert_id) if len(alert_id) <= 32 else None
        if row is None:
            raise NotFound(f"alert {alert_id} not found")
        inv = alerts.inventory(session, [row.node_id])
        history = alerts.audit_of(session, row.id)
    detail = AlertDetail(
        **AlertOut.of(row, alerts.node_facts(row, inv)).model_dump(),
        eve=alerts.eve_of(row),
        history=[
            AuditOut(
                at=h.at,
                actor=h.actor,
                action=h.action,
                from_state=h.from_state,
                to_state=h.to_state,
                note=h.note,
            )
            for h in history
        ],
    )
    return json_response(detail)


@router.post("/v1/alerts/{alert_id}/triage", response_model=AlertOut)
async def triage_alert(alert_id: str, body: TriageIn, request: Request, who: Caller) -> Response:
    """Move an alert to another triage state (closing and reopening need a note)."""
    service = _service(request)
    service.authorize(who, "alert.triage", Resource("alert", alert_id))
    if len(alert_id) > 32:
        raise NotFound(f"alert {alert_id} not found")
    now = service.clock()
    row = await service.write(
        lambda s: alerts.triage(s, alert_id, body.state, body.note, who.label, now)
    )
    with service.read() as session:
        inv = alerts.inventory(session, [row.node_id])
    return json_response(AlertOut.of(row, alerts.node_facts(row, inv)))


@router.post("/v1/suppressions", status_code=201, response_model=SuppressionOut)
async def create_suppression(body: SuppressionIn, request: Request, who: Caller) -> Response:
    """Suppress alerts matching every field given (sid, source, destination, node)."""
    service = _service(request)
    service.authorize(who, "alert.suppress", Resource("suppression"))
    now = service.clock()
    try:
        sup = Suppression(
            owner=body.owner or who.name,
            reason=body.reason,
            created_at=now,
            expires_at=now + body.ttl_s,
            signature_id=body.signature_id,
            src_ip=body.src_ip,
            dest_ip=body.dest_ip,
            node_id=body.node_id,
        )
    except LayersConfigError as exc:
        raise InvalidRequest(str(exc), field=exc.field) from exc
    row = await service.write(lambda s: alerts.create_suppression(s, sup, who.label, now))
    return json_response(SuppressionOut(**alerts.suppression_view(row, now)), 201)


@router.get("/v1/suppressions", response_model=list[SuppressionOut])
def list_suppressions(request: Request, who: Caller, include_expired: bool = False) -> Response:
    """Suppressions, newest first (expired ones only with ``include_expired``)."""
    service = _service(request)
    service.authorize(who, "alert.read", Resource("suppression"))
    now = service.clock()
    stmt = select(AlertSuppression).order_by(col(AlertSuppression.created_at).desc())
    if not include_expired:
        stmt = stmt.where(AlertSuppression.expires_at > now)
    with service.read() as session:
        rows = session.exec(stmt.limit(1000)).all()
    return json_list_response([SuppressionOut(**alerts.suppression_view(r, now)) for r in rows])


@router.delete("/v1/suppressions/{sup_id}", status_code=204)
async def delete_suppression(sup_id: str, request: Request, who: Caller) -> Response:
    """Delete a suppression (audited)."""
    service = _service(request)
    service.authorize(who, "alert.suppress", Resource("suppression", sup_id))
    now = service.clock()
    await service.write(lambda s: alerts.delete_suppression(s, sup_id, who.label, now))
    return Response(status_code=204)
