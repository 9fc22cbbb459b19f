"""Tables that let scheduler replicas sharing one database correlate as one network layer
(:mod:`scheduler.incident_sync`).

Invariants:
- An :class:`IncidentFeed` row is what one replica fed its correlator in one transaction: the
  alerts an ingest kept (compacted, each entry naming its aggregate) or one enrollment. It is
  written in the transaction that stored them; ``origin`` names the writing replica (random per
  incident layer), ``id`` grows with every insert (the others tail the table by ``id``, keeping
  the ids they skipped as gaps). Rows older than the retention are deleted.
- An :class:`IncidentGroup` row exists per incident kind and group key once an incident of the
  group was stored; storing an incident locks it first, so replicas resolve and update one
  group's incidents one at a time. Rows are never deleted (a lock row must not vanish).
- An :class:`IncidentAlias` row maps a correlator's incident id to the stored incident it
  belongs to (itself when it created the row): written once, never changed.
- An :class:`IncidentResponseClaim` row ``(incident_id, node_id, action)`` is inserted,
  conditionally, in the transaction that takes the action: its primary key lets one
  transaction across all replicas take it, once; it stays after an analyst's release.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class IncidentFeed(SQLModel, table=True):
    __tablename__ = "incident_feed"

    id: int | None = Field(default=None, primary_key=True)
    origin: str = Field(index=True, max_length=32)
    kind: str = Field(index=True, max_length=16)  # alerts | enrollment
    at: float = Field(index=True)
    body: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class IncidentGroup(SQLModel, table=True):
    __tablename__ = "incident_group"

    id: str = Field(primary_key=True, max_length=64)  # sha256 of kind and group key
    kind: str = Field(max_length=64)
    group_key: str = Field(max_length=300)
    created_at: float


class IncidentAlias(SQLModel, table=True):
    __tablename__ = "incident_alias"

    id: str = Field(primary_key=True, max_length=64)  # the correlator's incident id
    incident_id: str = Field(index=True, max_length=64)  # the stored incident (IncidentRecord)
    at: float


class IncidentResponseClaim(SQLModel, table=True):
    __tablename__ = "incident_response_claim"

    incident_id: str = Field(primary_key=True, max_length=64)
    node_id: str = Field(primary_key=True, max_length=64)
    action: str = Field(primary_key=True, max_length=16)  # quarantine | revoke
    origin: str = Field(max_length=32)
    at: float
