"""Trust routes: a node's trust score with its reasons, and the release of a quarantine.

- ``GET /v1/nodes/{id}/trust[?explain=true]`` (action ``node.read``): score, opinion
  (belief / disbelief / uncertainty), hard gates, signals, the evidence that moved the score
  most, the operator's path back, the scheduler's placement verdict and the active
  quarantine; ``explain=true`` adds the text explanation.
- ``POST /v1/nodes/{id}/release`` (action ``node.release``, administrators): lift the trust
  quarantine and the cordon, then place waiting work.
- ``GET /v1/trust/stats`` (action ``node.list``): this replica's evidence intake counts
  (accepted and refused by reason), its sync with the other replicas, and what verification
  by replication did (replicated, agreed, disagreed, refused replica results by reason).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlmodel import Session

from scheduler import store
from scheduler.app import Caller
from scheduler.authz import Resource
from scheduler.errors import NotFound
from scheduler.models import Node
from scheduler.trust_wiring import TrustLayer

router = APIRouter()


def layer_of(service: Any) -> TrustLayer:
    layer = getattr(service, "trust", None)
    if not isinstance(layer, TrustLayer):
        raise NotFound("trust scoring is not enabled on this scheduler")
    return layer


def _describe(service: Any, layer: TrustLayer, node_id: str, explain: bool) -> dict[str, Any]:
    with service.read() as session:
        node = session.get(Node, node_id) if len(node_id) <= 64 else None
        if node is None:
            raise NotFound(f"node {node_id} not found")
        return layer.describe(session, node, explain=explain)


@router.get("/v1/nodes/{node_id}/trust")
def node_trust(node_id: str, request: Request, who: Caller, explain: bool = False) -> Any:
    service = request.app.state.service
    service.authorize(who, "node.read", Resource("node", node_id))
    return _describe(service, layer_of(service), node_id, explain)


@router.post("/v1/nodes/{node_id}/release")
async def release_node(node_id: str, request: Request, who: Caller) -> Any:
    service = request.app.state.service
    service.authorize(who, "node.release", Resource("node", node_id))
    layer = layer_of(service)

    def op(session: Session) -> tuple[int, list[store.Transition]]:
        released = layer.release(session, node_id, who.label)
        return released, store.place_pending(session, service.clock(), service.pipeline)

    released, placed = await service.write(op)
    notifier = getattr(request.app.state, "notifier", None)
    for transition in placed:
        if notifier is not None:
            notifier.wake(transition.node_id)
    body = _describe(service, layer, node_id, False)
    body["released"] = released
    return body


@router.get("/v1/trust/stats")
def trust_stats(request: Request, who: Caller) -> Any:
    service = request.app.state.service
    service.authorize(who, "node.list", Resource("node"))
    layer = layer_of(service)
    with layer.lock:
        intake = dict(layer.engine.intake_counts())
        refused = dict(layer.refused)
    sync = layer.sync
    replication = getattr(service, "replication", None)
    return {
        "engine_intake": intake,  # since the engine was last rebuilt
        "refused": refused,  # since the layer started
        "rebuilds": layer.rebuilds,
        "sync": None
        if sync is None
        else {"passes": sync.passes, "applied": sync.applied, "skipped": sync.skipped},
        "replication": None
        if replication is None
        else {
            "min_share": replication.config.min_share,
            "max_share": replication.config.max_share,
            "max_replicas": replication.config.max_replicas,
            "counts": dict(replication.counts),
        },
    }
