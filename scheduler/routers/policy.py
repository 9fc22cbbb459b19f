"""The policy set in force: show it, check a request against it, change it.

- ``GET /v1/policy`` (``policy.read``): version, every policy's id, reason and effect, and
  the history of changes.
- ``POST /v1/policy/check`` (``policy.check``): a request as ``cntrust policy check`` reads
  it (principal, action, resource, context, entities) -> the decision with its reasons.
- ``PUT /v1/policy`` (``policy.change``): a new set, either ``PolicySet.export()`` text or
  ``{"schema": <schema text>, "files": {"name.cedar": <text>, ...}}``. It is validated
  before it takes effect; an invalid set is refused with 422 listing every problem and the
  set in force stays. An accepted change is recorded (old hash -> new hash, who, when)
  durably before it is put in force.

Every route answers 404 when the scheduler's authorizer is not policy-driven.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from sqlmodel import Session

from policies import (
    PolicyError,
    PolicyLoadError,
    PolicySet,
    PolicySwap,
    policy_set_from_export,
    policy_set_from_sources,
)
from policies import (
    Request as PolicyRequest,
)
from scheduler.app import Caller
from scheduler.authz import Resource
from scheduler.errors import InvalidRequest, NotFound
from scheduler.policy_authz import PolicyAuthorizer
from scheduler.policy_changes import history, record_change
from scheduler.policy_decisions import store_version_text
from scheduler.policy_wiring import record_change_provenance
from scheduler.service import Service

router = APIRouter()

MAX_CHECK_BYTES = 1024 * 1024


def _change_lock(request: Request) -> asyncio.Lock:
    """One change at a time per app, so old -> new is recorded exactly."""
    lock = getattr(request.app.state, "policy_change_lock", None)
    if lock is None:
        lock = request.app.state.policy_change_lock = asyncio.Lock()
    return lock


def _authorizer(service: Service) -> PolicyAuthorizer:
    authorizer = service.authorizer
    if not isinstance(authorizer, PolicyAuthorizer):
        raise NotFound("the policy engine is not enabled on this scheduler")
    return authorizer


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(f"the body is not JSON: {exc}") from None


@router.get("/v1/policy")
def show_policy(request: Request, who: Caller) -> dict[str, Any]:
    service: Service = request.app.state.service
    authorizer = _authorizer(service)
    service.authorize(who, "policy.read", Resource("policy"))
    current = authorizer.store.current
    return {
        "version": current.version,
        "policies": [
            {"id": p.id, "reason": p.reason, "effect": p.effect} for p in current.policies
        ],
        "history": history(service),
    }


@router.post("/v1/policy/check")
async def check_policy(request: Request, who: Caller) -> dict[str, Any]:
    service: Service = request.app.state.service
    authorizer = _authorizer(service)
    service.authorize(who, "policy.check", Resource("policy"))
    raw = await request.body()
    if len(raw) > MAX_CHECK_BYTES:
        raise InvalidRequest(f"the request is {len(raw)} bytes, limit {MAX_CHECK_BYTES}")
    try:
        policy_request = PolicyRequest.from_dict(_json_body(raw))
    except PolicyError as exc:
        raise InvalidRequest(f"malformed policy request: {exc}") from None
    decision = authorizer.store.engine.decide(policy_request)
    return decision.to_dict()


@router.put("/v1/policy")
async def change_policy(request: Request, who: Caller) -> dict[str, Any]:
    service: Service = request.app.state.service
    authorizer = _authorizer(service)
    service.authorize(who, "policy.change", Resource("policy"))
    raw = await request.body()
    try:
        new_set = _parse_set(raw)
    except PolicyLoadError as exc:
        raise InvalidRequest(
            f"policy set refused, {len(exc.problems)} problem(s); the set in force stays",
            problems=[
                {"file": p.file, "line": p.line, "policy_id": p.policy_id, "message": p.message}
                for p in exc.problems
            ],
        ) from None
    store = authorizer.store
    async with _change_lock(request):
        swap = PolicySwap(store.version, new_set.version)
        now = service.clock()

        def op(session: Session) -> None:
            row = record_change(session, swap, new_set, who.label, now)
            store_version_text(session, new_set, now)
            record_change_provenance(service, session, swap, who.label, now, row.id or 0)

        await service.write(op)
        store.swap(new_set)
    return {
        "old_version": swap.old_version,
        "new_version": swap.new_version,
        "changed": swap.changed,
        "changed_by": who.label,
        "changed_at": now,
    }


def _parse_set(raw: bytes) -> PolicySet:
    """Body -> validated set. Raises PolicyLoadError (InvalidRequest for a wrong shape)."""
    doc = _json_body(raw)
    if isinstance(doc, dict) and "format" in doc:
        return policy_set_from_export(raw.decode("utf-8", errors="replace"))
    if isinstance(doc, dict) and isinstance(doc.get("files"), dict):
        schema, files = doc.get("schema"), doc["files"]
        if not isinstance(schema, str) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items()
        ):
            raise InvalidRequest('"schema" must be text and "files" map names to Cedar text')
        return policy_set_from_sources(schema, sorted(files.items()))
    raise InvalidRequest(
        'expected an exported policy set ("format": ...) or {"schema": ..., "files": {...}}'
    )
