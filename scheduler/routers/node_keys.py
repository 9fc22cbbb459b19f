"""``POST /v1/agent/result-key``: a node registers the Ed25519 key that signs its results.

Authenticated with the node's own token (action ``node.heartbeat`` on itself). The first
key registered for a node stays: the same key again answers 200, a different one 409
problem+json (``conflict``, reason ``key_mismatch``). See :mod:`scheduler.node_results`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import Field

from scheduler.app import Caller
from scheduler.authz import Resource
from scheduler.node_results import decode_public_key, register_result_key
from scheduler.schemas import Strict
from scheduler.service import Service

router = APIRouter()


class ResultKey(Strict):
    public_key: str = Field(min_length=1, max_length=64, description="Raw Ed25519 key, base64.")


class ResultKeyOut(Strict):
    node_id: str
    key_id: str


@router.post("/v1/agent/result-key", tags=["nodes"])
async def result_key(body: ResultKey, request: Request, who: Caller) -> ResultKeyOut:
    """Register the key this node signs its task results with (once; same key is a no-op)."""
    service: Service = request.app.state.service
    service.authorize(who, "node.heartbeat", Resource("node", who.name))
    public_key = decode_public_key(body.public_key)
    now = service.clock()
    row = await service.write(lambda s: register_result_key(s, who.name, public_key, now))
    return ResultKeyOut(node_id=row.node_id, key_id=row.key_id)
