"""Table of the scheduler's one quarantine path (:mod:`scheduler.quarantine`).

Invariants:
- A :class:`NodeQuarantine` row is written in the transaction that cordons the node and
  requeues its work; ``released_at`` is set (with who and a note) when an analyst releases
  it. A quarantine is active while ``released_at`` is unset.
- A node stays cordoned while it has any active quarantine, whatever its source.
- ``(node_id, source, reference_id)`` names one active quarantine: quarantining again for
  the same reference while one is active returns the active one.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class NodeQuarantine(SQLModel, table=True):
    __tablename__ = "node_quarantine"

    id: int | None = Field(default=None, primary_key=True)
    node_id: str = Field(index=True, max_length=64)
    source: str = Field(index=True, max_length=16)  # trust | incident | attestation | analyst
    reason: str = Field(max_length=1000)
    reference_id: str = Field(default="", max_length=200)
    actor: str = Field(max_length=200)
    at: float = Field(index=True)
    requeued: int = 0
    released_at: float | None = Field(default=None, index=True)
    released_by: str | None = Field(default=None, max_length=200)
    release_note: str | None = Field(default=None, max_length=2000)
