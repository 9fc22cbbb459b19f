"""One incident per activity and one response per incident and node, across scheduler
replicas sharing one database (used by :meth:`scheduler.incidents.IncidentLayer.store`).

1. one incident per activity: two replicas' correlators can open one activity under
   different ids (an incident id hashes its group's window start: the first event *that*
   correlator saw, see :mod:`scheduler.incident_sync`). Storing an incident first locks its
   group (:func:`lock_group`: an insert-if-absent, then ``FOR UPDATE``), then resolves the
   correlator's id once (:func:`canonical`): a stored incident of the same kind and group
   key whose ``first_seen`` is within the kind's window of this one's is the same incident
   (the closest; the earlier on a tie), else the id is new. The answer is kept as an
   ``IncidentAlias`` row and never changes. One correlator's windows of a group start more
   than a window apart, so alone it merges nothing (a rebuilt correlator's incidents find
   their rows again);
2. one response per incident and node: an action (quarantine, revocation) is taken only by
   the transaction whose conditional insert of the claim ``(incident, node, action)``
   (:func:`claim`) inserted a row. Racing replicas: on PostgreSQL (READ COMMITTED) the
   second insert waits for the first transaction, then inserts nothing if it committed (the
   row if it rolled back); SQLite has one writer at a time. A claim outlives the quarantine
   it made, so an analyst's release is final on every replica.

Invariants:
- every store of an incident holds its group's lock until its transaction ends, so the
  incident row is read and merged by one transaction at a time (no lost update);
- a caller locking several groups locks them in :func:`group_id` order.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ids.layers import CorrelatorConfig, Incident
from ids.layers.correlator import SYBIL_ENROLLMENT
from scheduler.errors import SchedulerError
from scheduler.tables.incident_sync import IncidentAlias, IncidentGroup, IncidentResponseClaim
from scheduler.tables.incidents import IncidentRecord

log = logging.getLogger(__name__)


class IncidentLockError(SchedulerError):
    """An incident group could not be locked (a database without conditional inserts, or
    the lock row vanished)."""


def window_of(config: CorrelatorConfig, kind: str) -> float:
    """The correlation window of an incident kind."""
    return config.enrollment_window_s if kind == SYBIL_ENROLLMENT else config.window_s


def group_id(kind: str, group_key: str) -> str:
    """The lock row id of an incident group."""
    return hashlib.sha256(f"{kind}|{group_key[:300]}".encode()).hexdigest()


def insert_if_absent(session: Session, table: sa.Table, values: dict[str, Any]) -> bool:
    """``INSERT ... ON CONFLICT DO NOTHING`` in ``session``'s transaction; True when this
    insert wrote the row. Raises IncidentLockError on a database other than SQLite or
    PostgreSQL."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(table).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).values(**values).on_conflict_do_nothing()
    else:
        raise IncidentLockError(f"no conditional insert on {dialect}", dialect=dialect)
    # RETURNING, not rowcount: psycopg reports -1 for this statement through SQLAlchemy
    key = next(iter(table.primary_key.columns))
    return session.connection().execute(stmt.returning(key)).first() is not None


def lock_group(session: Session, inc: Incident, now: float) -> str:
    """Lock the incident's group row for the rest of the transaction (created if absent):
    a write first, so SQLite holds its one write lock and reads the latest commit; ``FOR
    UPDATE`` on PostgreSQL. Returns the group id. Raises IncidentLockError."""
    gid = group_id(inc.kind, inc.group_key)
    table = IncidentGroup.__table__  # type: ignore[attr-defined]
    insert_if_absent(
        session,
        table,
        {"id": gid, "kind": inc.kind, "group_key": inc.group_key[:300], "created_at": now},
    )
    locked = session.exec(
        select(IncidentGroup.id).where(IncidentGroup.id == gid).with_for_update()
    ).first()
    if locked is None:
        raise IncidentLockError(f"incident group {gid} vanished while locking it", group=gid)
    return gid


def canonical(session: Session, inc: Incident, window_s: float, now: float) -> Incident:
    """The incident as stored: its group locked, its id resolved to the stored incident it
    belongs to (see the module docstring, step 1). Raises IncidentLockError."""
    lock_group(session, inc, now)
    alias = session.get(IncidentAlias, inc.incident_id)
    if alias is not None:
        target = alias.incident_id
    else:
        target = _resolve(session, inc, window_s)
        session.add(IncidentAlias(id=inc.incident_id, incident_id=target, at=now))
        session.flush()
        if target != inc.incident_id:
            log.info("incident %s is stored incident %s", inc.incident_id, target)
    return inc if target == inc.incident_id else replace(inc, incident_id=target)


def _resolve(session: Session, inc: Incident, window_s: float) -> str:
    if session.get(IncidentRecord, inc.incident_id) is not None:
        return inc.incident_id
    rows = session.exec(
        select(IncidentRecord.id, IncidentRecord.first_seen).where(
            IncidentRecord.kind == inc.kind,
            IncidentRecord.group_key == inc.group_key[:300],
            col(IncidentRecord.first_seen) >= inc.first_seen - window_s,
            col(IncidentRecord.first_seen) <= inc.first_seen + window_s,
        )
    ).all()
    if not rows:
        return inc.incident_id
    best = min(rows, key=lambda r: (abs(r[1] - inc.first_seen), r[1], r[0]))
    return str(best[0])


def claim(
    session: Session, incident_id: str, node_id: str, action: str, origin: str, now: float
) -> bool:
    """Claim one response action on a node for an incident; True when this transaction took
    the claim (and so takes the action), False when a transaction took it before."""
    table = IncidentResponseClaim.__table__  # type: ignore[attr-defined]
    values = {
        "incident_id": incident_id,
        "node_id": node_id,
        "action": action,
        "origin": origin[:32],
        "at": now,
    }
    return insert_if_absent(session, table, values)
