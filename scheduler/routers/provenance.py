"""Read-only provenance routes: the log in the C2SP tlog-tiles layout under ``/log``, the
log's verifier key, and a task's proof bundle.

``/log/*`` is public (a transparency log is read by anyone; tiles hold digests and
commitments only); the bundle route authorizes like reading the task. Every route answers
404 problem+json when the provenance layer is not installed.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from audit_chain import BUNDLE_MEDIA_TYPE, TileNotFoundError, TilePathError, parse_tile_path
from scheduler.app import Caller, task_resource
from scheduler.errors import NotFound
from scheduler.models import Task
from scheduler.provenance import ProvenanceLayer, layer_of
from scheduler.service import Service

router = APIRouter()

IMMUTABLE = "public, max-age=31536000, immutable"
PARTIAL = "public, max-age=60"
CHECKPOINT = "no-cache"


def _layer(request: Request) -> ProvenanceLayer:
    layer = layer_of(request.app.state.service)
    if layer is None:
        raise NotFound("the provenance log is not enabled on this server")
    return layer


@router.get("/log/checkpoint", tags=["provenance"])
def checkpoint(request: Request) -> Response:
    """The latest signed checkpoint (C2SP tlog-checkpoint)."""
    note = _layer(request).latest_checkpoint()
    if note is None:
        raise NotFound("no checkpoint has been published yet")
    return Response(
        note, media_type="text/plain; charset=utf-8", headers={"Cache-Control": CHECKPOINT}
    )


@router.get("/log/key", tags=["provenance"])
def key(request: Request) -> Response:
    """The log's verifier key (signed-note vkey text)."""
    vkey = _layer(request).log_key.verifier.vkey
    return Response(vkey + "\n", media_type="text/plain; charset=utf-8")


@router.get("/log/tile/{rest:path}", tags=["provenance"])
def tile(rest: str, request: Request) -> Response:
    """A Merkle tile ``/log/tile/<L>/<N>[.p/<W>]`` or entry bundle
    ``/log/tile/entries/<N>[.p/<W>]``."""
    layer = _layer(request)
    try:
        tile_id = parse_tile_path(f"tile/{rest}")
    except TilePathError as exc:
        raise NotFound(f"not a tile: {exc}") from exc
    try:
        data = layer.store.read_tile(tile_id)
    except TileNotFoundError as exc:
        raise NotFound(f"tile {tile_id.path} not found") from exc
    cache = PARTIAL if tile_id.is_partial else IMMUTABLE
    return Response(data, media_type="application/octet-stream", headers={"Cache-Control": cache})


@router.get("/v1/tasks/{task_id}/bundle", tags=["provenance"])
def bundle(task_id: str, request: Request, who: Caller) -> Response:
    """The task's proof bundle (JSON), with the latest anchor covering it when one exists."""
    layer = _layer(request)
    service: Service = request.app.state.service
    with service.read() as session:
        task = session.get(Task, task_id) if len(task_id) <= 40 else None
    if task is None:
        raise NotFound(f"task {task_id} not found")
    try:
        service.authorize(
            who,
            "task.read",
            task_resource(task),
        )
    except Exception as exc:
        if who.role == "tenant":  # do not reveal other tenants' task ids
            raise NotFound(f"task {task_id} not found") from exc
        raise
    return Response(layer.bundle_for(task.id), media_type=BUNDLE_MEDIA_TYPE)
