"""Policy set changes: every swap of the set in force (old hash -> new hash, who, when).

Invariants:
- One row per accepted change, written in the same transaction as nothing else and before
  the new set is put in force; a refused (invalid) set leaves no row.
- ``policy_text`` is the new set's ``PolicySet.export()``: the latest row is what a replica
  or a restarted scheduler puts in force, and what a replay of a decision made under
  ``new_version`` needs.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class PolicyChange(SQLModel, table=True):
    __tablename__ = "policy_change"

    id: int | None = Field(default=None, primary_key=True)
    old_version: str = Field(max_length=80)
    new_version: str = Field(index=True, max_length=80)
    changed_by: str = Field(max_length=160)
    changed_at: float
    policy_text: str = Field(sa_type=sa.Text)
