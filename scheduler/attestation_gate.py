"""The attestation gate: nodes without a passing, fresh attestation result get no work.

- :class:`AttestationFilter` (placement stage ``attestation``) excludes a node whose current
  result is missing, expired or contraindicated, naming which;
- :func:`enforce` requeues the running and placed tasks of such nodes, each with a reason
  naming the result; it runs in the transaction that stored a failing result (so exclusion
  is effective at that commit) and from the maintenance loop every 0.5 s, which catches
  results that expired without new evidence.

Fail closed: an unknown status counts as contraindicated; a result expires at
``attestation_expires_at`` exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlmodel import Session, col, select

from scheduler import store
from scheduler.models import ACTIVE_STATES, Node, Task
from scheduler.placement import NodeView, TaskRequest

if TYPE_CHECKING:
    pass

PERMITTING = frozenset({"affirming", "warning"})
STAGE = "attestation"


def gate_reason(status: str | None, expires_at: float | None, now: float) -> str | None:
    """Why a node with this current result may not get work now, or None."""
    if status is None or expires_at is None:
        return "no attestation result"
    if status not in PERMITTING:
        return f"attestation {status}"
    if now >= expires_at:
        return f"attestation result expired {now - expires_at:.1f} s ago"
    return None


class AttestationFilter:
    """Placement filter: only nodes with a fresh affirming or warning result."""

    name = STAGE

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock

    def __call__(self, task: TaskRequest, node: NodeView) -> str | None:
        return gate_reason(node.attestation_status, node.attestation_expires_at, self.clock())


def failing_nodes(session: Session, now: float) -> list[Node]:
    """Nodes holding active tasks whose current result does not permit work."""
    busy = select(Task.node_id).where(col(Task.state).in_(ACTIVE_STATES)).distinct()
    stmt = select(Node).where(
        col(Node.id).in_(busy),
        sa.or_(
            col(Node.attestation_status).is_(None),
            col(Node.attestation_expires_at).is_(None),
            col(Node.attestation_status).not_in(sorted(PERMITTING)),
            col(Node.attestation_expires_at) <= now,
        ),
    )
    return list(session.exec(stmt))


def requeue_node(session: Session, node: Node, now: float) -> list[str]:
    """Requeue the node's placed and running tasks with the gate's reason."""
    why = gate_reason(node.attestation_status, node.attestation_expires_at, now)
    if why is None:
        return []
    reason = f"requeued: node {node.id} excluded by attestation ({why}"
    reason += f", result {node.attestation_id})" if node.attestation_id else ")"
    tasks = session.exec(
        select(Task).where(Task.node_id == node.id, col(Task.state).in_(ACTIVE_STATES))
    )
    requeued = []
    for task in list(tasks):
        store.requeue(session, task, now, reason)
        requeued.append(task.id)
    return requeued


def enforce(session: Session, now: float) -> dict[str, list[str]]:
    """Requeue the work of every node the gate excludes now; returns node -> task ids."""
    out: dict[str, list[str]] = {}
    for node in failing_nodes(session, now):
        requeued = requeue_node(session, node, now)
        if requeued:
            out[node.id] = requeued
    return out
