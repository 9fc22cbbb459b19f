"""Incident and quarantine routes (the whole-network layer's response, for analysts).

- ``GET /v1/incidents`` (``alert.read``): incidents, newest first; filters ``kind``,
  ``node``, ``severity`` (at most); ``GET /v1/incidents/{id}`` one with its alerts' ids,
  nodes, reasons and the response taken.
- ``GET /v1/quarantines`` (``quarantine.read``): quarantines of every source, active only
  unless ``include_released``; filter ``node``.
- ``POST /v1/nodes/{id}/quarantine`` (``quarantine.manage``): an analyst quarantines a node
  (source ``analyst``) with a reason.
- ``POST /v1/quarantines/{id}/release`` (``quarantine.manage``): an analyst releases one
  quarantine with a note; the node goes back online when no other quarantine remains, and
  waiting work is placed. A trust quarantine is released through the trust layer (its
  engine forgets the quarantine too).

Revocations are not reversible here: a revoked certificate stays revoked, and the node
comes back by re-enrolling with a new join token.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from scheduler import quarantine, store
from scheduler.app import Caller
from scheduler.authz import Resource
from scheduler.errors import Conflict, NotFound
from scheduler.incidents import incident_view
from scheduler.tables.incidents import IncidentRecord
from scheduler.tables.quarantine import NodeQuarantine

router = APIRouter(tags=["incidents"])


class QuarantineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=1000)


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(min_length=1, max_length=2000)


@router.get("/v1/incidents")
def list_incidents(
    request: Request,
    who: Caller,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    node: Annotated[str | None, Query(max_length=64)] = None,
    severity: Annotated[int | None, Query(ge=1, le=4)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Incidents, most recently active first."""
    service = request.app.state.service
    service.authorize(who, "alert.read", Resource("incident"))
    stmt = select(IncidentRecord)
    if kind is not None:
        stmt = stmt.where(IncidentRecord.kind == kind)
    if severity is not None:
        stmt = stmt.where(IncidentRecord.severity <= severity)
    stmt = stmt.order_by(col(IncidentRecord.last_seen).desc(), col(IncidentRecord.id))
    with service.read() as session:
        rows = list(session.exec(stmt.limit(limit if node is None else 10_000)))
    if node is not None:
        rows = [r for r in rows if node in r.node_ids][:limit]
    return [incident_view(r) for r in rows]


@router.get("/v1/incidents/{incident_id}")
def show_incident(incident_id: str, request: Request, who: Caller) -> dict[str, Any]:
    service = request.app.state.service
    service.authorize(who, "alert.read", Resource("incident", incident_id))
    with service.read() as session:
        row = session.get(IncidentRecord, incident_id) if len(incident_id) <= 64 else None
        if row is None:
            raise NotFound(f"incident {incident_id} not found")
        body = incident_view(row)
        body["quarantines"] = [
            quarantine.view(q)
            for q in session.exec(
                select(NodeQuarantine)
                .where(NodeQuarantine.reference_id == incident_id)
                .order_by(col(NodeQuarantine.id))
            )
        ]
    return body


@router.get("/v1/quarantines")
def list_quarantines(
    request: Request,
    who: Caller,
    node: Annotated[str | None, Query(max_length=64)] = None,
    include_released: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    service = request.app.state.service
    service.authorize(who, "quarantine.read", Resource("quarantine"))
    stmt = select(NodeQuarantine)
    if node is not None:
        stmt = stmt.where(NodeQuarantine.node_id == node)
    if not include_released:
        stmt = stmt.where(col(NodeQuarantine.released_at).is_(None))
    stmt = stmt.order_by(col(NodeQuarantine.id).desc()).limit(limit)
    with service.read() as session:
        return [quarantine.view(q) for q in session.exec(stmt)]


@router.post("/v1/nodes/{node_id}/quarantine", status_code=201)
async def quarantine_node(
    node_id: str, body: QuarantineIn, request: Request, who: Caller
) -> dict[str, Any]:
    """An analyst quarantines a node: cordoned, its work requeued."""
    service = request.app.state.service
    service.authorize(who, "quarantine.manage", Resource("node", node_id))

    def op(session: Session) -> dict[str, Any]:
        row = quarantine.quarantine_node(
            service,
            session,
            node_id,
            source="analyst",
            reason=body.reason,
            reference_id=f"analyst:{who.label}:{service.clock():.6f}",
            actor=who.label,
        )
        return quarantine.view(row)

    out: dict[str, Any] = await service.write(op)
    return out


@router.post("/v1/quarantines/{quarantine_id}/release")
async def release_quarantine(
    quarantine_id: int, body: ReleaseIn, request: Request, who: Caller
) -> dict[str, Any]:
    """Release one quarantine with a note; place waiting work on the freed node."""
    service = request.app.state.service
    with service.read() as session:
        row = session.get(NodeQuarantine, quarantine_id)
        if row is None:
            raise NotFound(f"quarantine {quarantine_id} not found")
        node_id, source = row.node_id, row.source
        if row.released_at is not None:
            raise Conflict(f"quarantine {quarantine_id} was released already")
    service.authorize(who, "quarantine.manage", Resource("node", node_id))
    trust_layer = getattr(service, "trust", None)

    def op(session: Session) -> tuple[dict[str, Any], list[store.Transition]]:
        if source == "trust" and trust_layer is not None:
            trust_layer.release(session, node_id, who.label, body.note)
        else:
            quarantine.release_node(
                service, session, node_id, by=who.label, note=body.note, quarantine_id=quarantine_id
            )
        released = session.get(NodeQuarantine, quarantine_id)
        if released is None:
            raise NotFound(f"quarantine {quarantine_id} not found")
        placed = store.place_pending(session, service.clock(), service.pipeline)
        return quarantine.view(released), placed

    view, placed = await service.write(op)
    notifier = getattr(request.app.state, "notifier", None)
    for transition in placed:
        if notifier is not None:
            notifier.wake(transition.node_id)
    with service.read() as session:
        remaining = quarantine.active_quarantines(session, node_id)
    view["node_still_quarantined_by"] = sorted({q.source for q in remaining})
    return view
