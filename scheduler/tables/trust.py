"""Tables of the trust layer: accepted trust evidence and trust quarantines.

Invariants:
- A :class:`TrustEvidence` row exists for every evidence item the trust engine accepted, written
  in the same transaction as whatever produced it (a finished task, an alert), so the engine
  can be rebuilt from the table after a restart. ``evidence_id`` is the engine's replay key:
  one row per id, never two.
- A :class:`TrustQuarantine` row is written in the transaction that cordons the node on a
  trust decision; ``released_at`` is set when an administrator releases it. A node is in
  trust quarantine while it has a row with ``released_at`` unset.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class TrustEvidence(SQLModel, table=True):
    __tablename__ = "trust_evidence"

    evidence_id: str = Field(primary_key=True, max_length=200)
    node_id: str = Field(index=True, max_length=200)
    kind: str = Field(max_length=64)
    observed_at: float = Field(index=True)
    recorded_at: float
    # the trust.Evidence fields as JSON (source, severity, rating, rater_id, detail)
    body: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class TrustQuarantine(SQLModel, table=True):
    __tablename__ = "trust_quarantine"

    id: int | None = Field(default=None, primary_key=True)
    node_id: str = Field(index=True, max_length=200)
    at: float
    evidence_id: str = Field(max_length=200)
    direct_score: float
    threshold: float
    reason: str = Field(max_length=1000)
    requeued: int = 0
    released_at: float | None = None
    released_by: str | None = Field(default=None, max_length=200)
