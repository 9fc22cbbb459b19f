"""Table of adaptive verification by replication: one check per replicated tenant task.

Invariants:
- A :class:`ReplicaCheck` row exists for every tenant task the scheduler chose to verify,
  written in the transaction that created its first replica (a :class:`~scheduler.models.Task`
  whose ``replica_of`` names the original). ``replicas`` lists every replica task id in the
  order they were created; ``excluded`` the nodes that already produced a result (the next
  replica may not run there).
- ``status`` moves only from ``pending`` to one final value (``agreed``, ``disagreed``,
  ``unresolved``, ``abandoned``), in the transaction that recorded the replica's result and
  any trust evidence the comparison produced; a final check is never decided again.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

PENDING = "pending"
AGREED = "agreed"
DISAGREED = "disagreed"
UNRESOLVED = "unresolved"
ABANDONED = "abandoned"
FINAL = frozenset({AGREED, DISAGREED, UNRESOLVED, ABANDONED})


class ReplicaCheck(SQLModel, table=True):
    __tablename__ = "replica_check"

    original_task_id: str = Field(primary_key=True, max_length=40)
    node_id: str = Field(index=True, max_length=64)  # the node whose result is verified
    share: float  # the share of this node's tasks the engine asked to verify
    created_at: float
    updated_at: float = Field(index=True)
    status: str = Field(default=PENDING, index=True, max_length=16)
    replicas: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    excluded: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    operators: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    # node -> "exit_code:output_digest" of every result compared
    results: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    verified: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    convicted: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    reason: str = Field(default="", max_length=500)
    decided_at: float | None = None
