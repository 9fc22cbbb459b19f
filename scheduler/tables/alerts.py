"""Tables of alert handling: aggregated IDS alerts, suppressions, and the analysts' audit trail.

Invariants:
- An :class:`AlertAggregate` is one row per aggregation key (``ids.layers.aggregation_key``
  under the deployment's track) while it is open: ``open_key`` equals ``dedup_key`` for an
  open aggregate and is NULL once it is closed, and it is unique, so new alerts fold into the
  one open aggregate and an alert after closing starts a new one.
- ``node_id`` names the node the alert is about; the trust engine reads alerts by it.
- Every triage move and every suppression created or deleted writes an
  :class:`AlertAudit` row in the same transaction.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class AlertAggregate(SQLModel, table=True):
    __tablename__ = "alert_aggregate"

    id: str = Field(primary_key=True, max_length=32)
    dedup_key: str = Field(index=True, max_length=64)
    open_key: str | None = Field(default=None, unique=True, max_length=64)
    track: str = Field(max_length=16)
    count: int = Field(sa_type=sa.BigInteger)
    first_seen: float = Field(index=True)
    last_seen: float = Field(index=True)
    severity: int = Field(index=True)
    signature_id: int = Field(sa_type=sa.BigInteger, index=True)
    signature: str = Field(sa_type=sa.Text)
    category: str = Field(default="", sa_type=sa.Text)
    src_ip: str | None = Field(default=None, index=True, max_length=64)
    src_port: int | None = None
    dest_ip: str | None = Field(default=None, max_length=64)
    dest_port: int | None = None
    proto: str = Field(default="", max_length=16)
    node_id: str | None = Field(default=None, index=True, max_length=64)
    layer: str | None = Field(default=None, index=True, max_length=32)
    state: str = Field(default="new", index=True, max_length=16)
    note: str = Field(default="", sa_type=sa.Text)
    sources: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    sources_overflow: int = 0
    sensor: str = Field(default="", max_length=128)
    created_at: float
    updated_at: float
    last_raw: str = Field(sa_type=sa.Text)


class AlertSuppression(SQLModel, table=True):
    __tablename__ = "alert_suppression"

    id: str = Field(primary_key=True, max_length=32)
    signature_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    src_ip: str | None = Field(default=None, max_length=64)
    dest_ip: str | None = Field(default=None, max_length=64)
    node_id: str | None = Field(default=None, max_length=64)
    owner: str = Field(max_length=128)
    reason: str = Field(sa_type=sa.Text)
    created_at: float
    expires_at: float = Field(index=True)
    created_by: str = Field(max_length=128)


class AlertAudit(SQLModel, table=True):
    __tablename__ = "alert_audit"

    id: int | None = Field(default=None, primary_key=True)
    at: float = Field(index=True)
    actor: str = Field(max_length=128)
    action: str = Field(max_length=32)
    target_id: str = Field(index=True, max_length=32)
    from_state: str | None = Field(default=None, max_length=16)
    to_state: str | None = Field(default=None, max_length=16)
    note: str = Field(default="", sa_type=sa.Text)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
