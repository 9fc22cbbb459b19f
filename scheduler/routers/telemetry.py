"""Element telemetry routes for node agents (authenticated as the node itself).

- ``POST /v1/agent/telemetry-key`` (``telemetry.ingest``): register the node's Ed25519
  telemetry key, once (201 new, 200 the same key again, 409 another key).
- ``POST /v1/agent/telemetry`` (``telemetry.ingest``): one signed record (the wire form of
  ``ids.layers.encode_signed_telemetry``), verified and turned into element alerts that go
  the way of every alert (aggregation, trust evidence, incidents, response). Its body
  limit is ``settings.alerts_max_body_bytes``.
- ``DELETE /v1/nodes/{id}/telemetry-key`` (``quarantine.manage``, analysts and admins): forget
  a node's telemetry key (a rebuilt node with a new key registers again).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from scheduler import alerts, element_intake
from scheduler.app import Caller
from scheduler.authz import Resource
from scheduler.errors import Forbidden

router = APIRouter(tags=["telemetry"])


class TelemetryKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    public_key: str = Field(min_length=40, max_length=64)


def _node(who: Any) -> str:
    if who.role != "node":
        raise Forbidden("only a node sends its own telemetry")
    name: str = who.name
    return name


@router.post("/v1/agent/telemetry-key")
async def register_key(body: TelemetryKeyIn, request: Request, who: Caller) -> Response:
    service = request.app.state.service
    node_id = _node(who)
    service.authorize(who, "telemetry.ingest", Resource("node", node_id))
    now = service.clock()
    new = await service.write(
        lambda s: element_intake.register_key(s, node_id, body.public_key, now)
    )
    return Response(
        json.dumps({"node_id": node_id, "registered": new}),
        status_code=201 if new else 200,
        media_type="application/json",
    )


@router.delete("/v1/nodes/{node_id}/telemetry-key", status_code=204)
async def forget_key(node_id: str, request: Request, who: Caller) -> Response:
    service = request.app.state.service
    service.authorize(who, "quarantine.manage", Resource("node", node_id))
    await service.write(lambda s: element_intake.forget_key(s, node_id))
    return Response(status_code=204)


@router.post("/v1/agent/telemetry")
async def post_telemetry(request: Request, who: Caller) -> dict[str, Any]:
    service = request.app.state.service
    node_id = _node(who)
    service.authorize(who, "telemetry.ingest", Resource("node", node_id))
    track = alerts.config_of(request.app.state).track
    outcome = await element_intake.accept(service, node_id, await request.body(), track)
    batch = outcome.batch
    return {
        "seq": outcome.seq,
        "alerts": outcome.alerts,
        "stored": batch.ingest.stored,
        "aggregated_into_existing": batch.ingest.aggregated_into_existing,
        "suppressed": batch.ingest.suppressed,
        "alert_ids": batch.ingest.alert_ids,
        "incidents": batch.incidents,
        "quarantined": batch.quarantined,
        "revoked": batch.revoked,
        "trust_evidence": batch.evidence,
    }
