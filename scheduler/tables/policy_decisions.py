"""Placement decisions and the text of every policy set version they were made under.

Invariants:
- One ``PlacementDecision`` row per placement, written in the transaction that placed
  the task; the task's ``placement_decision_id`` and ``policy_version`` name it.
- ``request`` holds the full Cedar request (task and node entities, as the filter saw
  them) and ``decision`` Cedar's answer: with the stored set they replay the decision.
- ``PolicyVersionText`` keeps each version's ``PolicySet.export()`` once, keyed by its
  content hash, and is never deleted: any stored decision can be replayed.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class PlacementDecision(SQLModel, table=True):
    __tablename__ = "policy_placement_decision"

    id: str = Field(primary_key=True, max_length=64)
    task_id: str = Field(index=True, max_length=40)
    node_id: str = Field(max_length=64)
    attempt: int = 0
    decided_at: float
    policy_version: str = Field(max_length=80)
    allowed: bool
    policy_ids: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    reasons: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    request: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    decision: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class PolicyVersionText(SQLModel, table=True):
    __tablename__ = "policy_version_text"

    version: str = Field(primary_key=True, max_length=80)
    first_seen: float
    policy_text: str = Field(sa_type=sa.Text)


class PolicyChangeCommitment(SQLModel, table=True):
    """The salt that opens a policy change's provenance ``detail`` (a commitment to who
    changed the set): the public log shows the commitment, this row lets an auditor with
    database access open it."""

    __tablename__ = "policy_change_commitment"

    change_id: int = Field(primary_key=True)
    commitment: str = Field(max_length=80)
    salt_hex: str = Field(max_length=80)
