"""``GET /v1/tasks/{task_id}/placement/replay``: re-evaluate the task's stored placement
decision with its stored inputs under its stored policy version (``task.read``: tenants
their own tasks, regulators, analysts, admins). 404 problem+json for an unknown task
(also another tenant's), a task with no recorded decision, or a missing policy text."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from scheduler.app import Caller, task_resource
from scheduler.errors import NotFound
from scheduler.models import Task
from scheduler.policy_decisions import replay_task
from scheduler.service import Service

router = APIRouter()


@router.get("/v1/tasks/{task_id}/placement/replay", tags=["policy"])
def replay_placement(task_id: str, request: Request, who: Caller) -> dict[str, Any]:
    service: Service = request.app.state.service
    with service.read() as session:
        task = session.get(Task, task_id) if len(task_id) <= 40 else None
    if task is None:
        raise NotFound(f"task {task_id} not found")
    try:
        service.authorize(who, "task.read", task_resource(task))
    except Exception as exc:
        if who.role == "tenant":  # do not reveal other tenants' task ids
            raise NotFound(f"task {task_id} not found") from exc
        raise
    return replay_task(service, task_id)
