"""Tables of the whole-network layer: incidents and the element-telemetry keys of nodes.

Invariants:
- An :class:`IncidentRecord` is one correlated incident (``ids.layers.Incident``); its id is
  the correlator's deterministic id, so an incident rebuilt after a restart updates the same
  row. ``alert_ids`` are the ids of the alert aggregates it groups (``alert_aggregate``),
  ``node_ids`` the nodes it names, ``response`` the decision taken (``decide_response``)
  with every reason and the quarantine / revocation it caused.
- A :class:`NodeTelemetryKey` is the Ed25519 public key a node signs its element telemetry
  with, registered once by the node itself (authenticated); ``last_seq`` only grows, so a
  replayed record is refused.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class IncidentRecord(SQLModel, table=True):
    __tablename__ = "incident"

    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(index=True, max_length=64)
    severity: int = Field(index=True)
    first_seen: float = Field(index=True)
    last_seen: float = Field(index=True)
    group_key: str = Field(max_length=300)
    alert_count: int = Field(sa_type=sa.BigInteger)
    node_ids: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    sources: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    signature_ids: list[int] = Field(default_factory=list, sa_type=sa.JSON)
    reasons: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    alert_ids: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    response: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: float
    updated_at: float


class NodeTelemetryKey(SQLModel, table=True):
    __tablename__ = "node_telemetry_key"

    node_id: str = Field(primary_key=True, max_length=64)
    public_key: str = Field(max_length=64)  # raw Ed25519 key, base64url
    registered_at: float
    last_seq: int = Field(default=0, sa_type=sa.BigInteger)
    last_at: float | None = None
    records: int = 0
