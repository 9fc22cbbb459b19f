"""The scheduler's one quarantine path: cordon a node, requeue its work, record why.

Every quarantine, whatever triggered it (``trust`` decision, network ``incident``, failed
``attestation``, an ``analyst``), goes through :func:`quarantine_node`; every release goes
through :func:`release_node`. Both are functions of a session, run inside the caller's
transaction, and hand a :class:`~scheduler.service.ResponseAction` to
``service.record_response`` in that same transaction (the provenance layer logs it).

Invariants:
- Quarantining cordons the node (no new placements) and requeues every task it holds
  (placed or running), each with a reason naming the source and the reason.
- A node stays cordoned while any active quarantine remains; releasing the last one (or a
  release with none left) puts it back online.
- Quarantining again for the same ``(node, source, reference_id)`` while that quarantine is
  active changes nothing and returns the active row (an incident seen twice is one action).
- Releases are by a named principal with a note; the rows stay (``released_at`` set).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from scheduler import store
from scheduler.errors import Conflict, InvalidRequest, NotFound
from scheduler.models import ACTIVE_STATES, Node, NodeStatus, Task
from scheduler.service import ResponseAction
from scheduler.tables.quarantine import NodeQuarantine

log = logging.getLogger(__name__)

SOURCES = ("trust", "incident", "attestation", "analyst")
ACTION_QUARANTINE = "response.quarantine"
ACTION_RELEASE = "response.release"
MAX_REASON = 1000
MAX_NOTE = 2000


def _node(session: Session, node_id: str) -> Node:
    with session.no_autoflush:
        node = session.get(Node, node_id) if len(node_id) <= 64 else None
    if node is None:
        raise NotFound(f"node {node_id} not found")
    return node


def active_quarantines(
    session: Session, node_id: str, sources: Sequence[str] | None = None
) -> list[NodeQuarantine]:
    """The node's active quarantines (of `sources` when given), oldest first."""
    stmt = select(NodeQuarantine).where(
        NodeQuarantine.node_id == node_id, col(NodeQuarantine.released_at).is_(None)
    )
    if sources is not None:
        stmt = stmt.where(col(NodeQuarantine.source).in_(list(sources)))
    with session.no_autoflush:
        return list(session.exec(stmt.order_by(col(NodeQuarantine.id))))


def quarantine_node(
    service: Any,
    session: Session,
    node_id: str,
    *,
    source: str,
    reason: str,
    reference_id: str = "",
    actor: str,
    at: float | None = None,
    detail: dict[str, Any] | None = None,
) -> NodeQuarantine:
    """Quarantine ``node_id``: cordon it, requeue its placed and running tasks, store the
    quarantine and record the response action, all in ``session``'s transaction.
    ``detail`` adds ids and figures to the recorded action (e.g. the trust score).

    Raises:
        InvalidRequest: an unknown source or an empty reason.
        NotFound: no such node.
    """
    if source not in SOURCES:
        raise InvalidRequest(f"unknown quarantine source {source!r}; one of {', '.join(SOURCES)}")
    if not reason.strip():
        raise InvalidRequest("a quarantine needs a reason")
    node = _node(session, node_id)
    for row in active_quarantines(session, node_id, [source]):
        if row.reference_id == reference_id[:200]:
            return row  # the same trigger again: one action, not two
    now = service.clock() if at is None else at
    if node.status != NodeStatus.CORDONED:
        store.set_node_status(session, node_id, NodeStatus.CORDONED, now)
    why = f"requeued: node {node_id} quarantined by {source} ({reason})"[:1000]
    held = session.exec(
        select(Task).where(Task.node_id == node_id, col(Task.state).in_(ACTIVE_STATES))
    )
    requeued = 0
    for task in list(held):
        store.requeue(session, task, now, why)
        requeued += 1
    row = NodeQuarantine(
        node_id=node_id,
        source=source,
        reason=reason[:MAX_REASON],
        reference_id=reference_id[:200],
        actor=actor[:200],
        at=now,
        requeued=requeued,
    )
    session.add(row)
    session.flush()
    service.record_response(
        session,
        ResponseAction(
            action=ACTION_QUARANTINE,
            subject=node_id,
            reason=reason[:MAX_REASON],
            actor=actor[:200],
            source=source,
            at=now,
            detail={
                **(detail or {}),
                "quarantine_id": row.id,
                # the trigger (trust evidence, incident, attestation result) is the action's
                # evidence; an analyst's reference names the analyst and stays in the row
                "evidence_id": "" if source == "analyst" else reference_id,
                "requeued": requeued,
            },
        ),
    )
    log.warning(
        "node %s quarantined by %s: %s (%d tasks requeued)", node_id, source, reason, requeued
    )
    return row


def release_node(
    service: Any,
    session: Session,
    node_id: str,
    *,
    by: str,
    note: str,
    sources: Sequence[str] | None = None,
    quarantine_id: int | None = None,
    source: str = "analyst",
) -> list[NodeQuarantine]:
    """Release the node's active quarantines (those of `sources`, or the one
    `quarantine_id`, or all), record the release, and put the node back online when no
    active quarantine remains. Returns the rows released.

    Raises:
        NotFound: no such node, or no such active quarantine id on it.
        Conflict: nothing to release (no matching active quarantine and not cordoned).
    """
    node = _node(session, node_id)
    now = service.clock()
    matching = active_quarantines(session, node_id, sources)
    if quarantine_id is not None:
        matching = [q for q in matching if q.id == quarantine_id]
        if not matching:
            raise NotFound(f"no active quarantine {quarantine_id} on node {node_id}")
    if not matching and node.status != NodeStatus.CORDONED:
        raise Conflict(f"node {node_id} is not quarantined")
    for row in matching:
        row.released_at = now
        row.released_by = by[:200]
        row.release_note = note[:MAX_NOTE]
        session.add(row)
    released_ids = {q.id for q in matching}
    remaining = [q for q in active_quarantines(session, node_id) if q.id not in released_ids]
    if not remaining and node.status == NodeStatus.CORDONED:
        store.set_node_status(session, node_id, NodeStatus.ONLINE, now)
    service.record_response(
        session,
        ResponseAction(
            action=ACTION_RELEASE,
            subject=node_id,
            reason=note[:MAX_NOTE] or "released",
            actor=by[:200],
            source=source,
            at=now,
            detail={
                "quarantine_ids": sorted(i for i in released_ids if i is not None),
                "still_quarantined_by": sorted({q.source for q in remaining}),
            },
        ),
    )
    return matching


def view(row: NodeQuarantine) -> dict[str, Any]:
    """A quarantine as the API shows it."""
    return {
        "id": row.id,
        "node_id": row.node_id,
        "source": row.source,
        "reason": row.reason,
        "reference_id": row.reference_id,
        "actor": row.actor,
        "at": row.at,
        "requeued": row.requeued,
        "active": row.released_at is None,
        "released_at": row.released_at,
        "released_by": row.released_by,
        "release_note": row.release_note,
    }
