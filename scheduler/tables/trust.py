"""Tables of the trust layer: accepted trust evidence and trust quarantines.

Invariants:
- A :class:`TrustEvidence` row exists for every evidence item the trust engine accepted, written
  in the same transaction as whatever produced it (a finished task, an alert), so the engine
  can be rebuilt from the table after a restart. ``evidence_id`` is the engine's replay key:
  one row per id, never two (a unique index, which also stops two scheduler replicas that
  accepted the same item from both storing it).
- ``id`` grows with every insert: scheduler replicas sharing the database tail the table by
  ``id`` (:mod:`scheduler.trust_sync`) to apply each other's evidence. Ids are handed out at
  insert and a transaction may commit after a later one, so a reader tracks the gaps it
  skipped until they fill or time out.
- A :class:`TrustQuarantine` row is written in the transaction that cordons the node on a
  trust decision; ``released_at`` is set when an administrator releases it. A node is in
  trust quarantine while it has a row with ``released_at`` unset.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

import trust


class TrustEvidence(SQLModel, table=True):
    __tablename__ = "trust_evidence"

    id: int | None = Field(default=None, primary_key=True)
    evidence_id: str = Field(unique=True, max_length=200)
    node_id: str = Field(index=True, max_length=200)
    kind: str = Field(max_length=64)
    observed_at: float = Field(index=True)
    recorded_at: float
    # the trust.Evidence fields as JSON (source, severity, rating, rater_id, detail)
    body: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)

    @staticmethod
    def body_of(ev: trust.Evidence) -> dict[str, Any]:
        return {
            "source": ev.source,
            "severity": ev.severity,
            "rating": ev.rating,
            "rater_id": ev.rater_id,
            "detail": ev.detail,
        }

    def evidence(self) -> trust.Evidence:
        """The stored item as trust evidence. Raises trust.EvidenceError on a damaged row."""
        body = self.body or {}
        try:
            kind = trust.EvidenceKind(self.kind)
        except ValueError as exc:
            raise trust.EvidenceError(f"unknown kind {self.kind!r}", field="kind") from exc
        return trust.Evidence(
            self.evidence_id,
            kind,
            self.node_id,
            float(self.observed_at),
            str(body.get("source", "")),
            severity=body.get("severity"),
            rating=float(body.get("rating") or 0.0),
            rater_id=body.get("rater_id"),
            detail=str(body.get("detail", "")),
        )


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
