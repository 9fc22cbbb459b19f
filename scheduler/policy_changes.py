"""Recording and reading policy set changes (table :class:`PolicyChange`).

Invariants:
- ``record_change`` stores the new set's export with old and new versions, the principal
  and the time; it is called inside the durable write that precedes the swap.
- ``latest_policy_set`` rebuilds the last stored set and checks that it hashes to the
  version recorded; a stored set that no longer loads or hashes differently is refused
  (logged) and None is returned, so the caller falls back to the default pack.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from policies import PolicyError, PolicySet, PolicySwap, policy_set_from_export
from scheduler.tables.policy import PolicyChange

if TYPE_CHECKING:
    from scheduler.service import Service

log = logging.getLogger(__name__)


def record_change(
    session: Session, swap: PolicySwap, new_set: PolicySet, who: str, at: float
) -> PolicyChange:
    row = PolicyChange(
        old_version=swap.old_version,
        new_version=swap.new_version,
        changed_by=who,
        changed_at=at,
        policy_text=new_set.export(),
    )
    session.add(row)
    session.flush()
    return row


def latest_policy_set(service: Service) -> PolicySet | None:
    """The set of the last recorded change, or None (none recorded, or it is refused)."""
    with service.read() as session:
        row = session.exec(select(PolicyChange).order_by(col(PolicyChange.id).desc())).first()
    if row is None:
        return None
    try:
        policy_set = policy_set_from_export(row.policy_text)
    except PolicyError as exc:
        log.error("stored policy set %s refused: %s", row.new_version, exc)
        return None
    if policy_set.version != row.new_version:
        log.error("stored policy set hashes to %s, not %s", policy_set.version, row.new_version)
        return None
    return policy_set


def history(service: Service, limit: int = 100) -> list[dict[str, Any]]:
    """The latest ``limit`` changes, newest first."""
    with service.read() as session:
        rows = session.exec(
            select(PolicyChange).order_by(col(PolicyChange.id).desc()).limit(limit)
        ).all()
    return [
        {
            "id": r.id,
            "old_version": r.old_version,
            "new_version": r.new_version,
            "changed_by": r.changed_by,
            "changed_at": r.changed_at,
        }
        for r in rows
    ]
