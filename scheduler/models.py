"""Database tables of the reference scheduler (SQLModel over SQLite or PostgreSQL).

Invariants:
- A task's ``state`` only moves along :data:`TRANSITIONS`; every move writes a
  :class:`TaskEvent` with its reason in the same transaction.
- ``Node.active_tasks`` counts the node's tasks in ``placed`` or ``running``;
  it changes in the same transaction as the task's state.
- Secrets are stored hashed (join tokens) or not at all (tenant tokens are JWTs).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
import sqlalchemy.orm
from sqlalchemy.orm.attributes import set_attribute
from sqlmodel import Field, SQLModel


class TaskState(StrEnum):
    SUBMITTED = "submitted"
    ADMITTED = "admitted"
    PLACED = "placed"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


ACTIVE_STATES = (TaskState.PLACED, TaskState.RUNNING)
FINAL_STATES = (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.REJECTED, TaskState.CANCELLED)

TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.SUBMITTED: frozenset({TaskState.ADMITTED, TaskState.REJECTED, TaskState.CANCELLED}),
    TaskState.ADMITTED: frozenset({TaskState.PLACED, TaskState.REJECTED, TaskState.CANCELLED}),
    TaskState.PLACED: frozenset({TaskState.RUNNING, TaskState.ADMITTED, TaskState.CANCELLED}),
    TaskState.RUNNING: frozenset(
        {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.ADMITTED, TaskState.CANCELLED}
    ),
    TaskState.SUCCEEDED: frozenset(),
    TaskState.FAILED: frozenset(),
    TaskState.REJECTED: frozenset(),
    TaskState.CANCELLED: frozenset(),
}


class NodeStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    CORDONED = "cordoned"


class Classification(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"
    SECRET = "secret"  # noqa: S105 (a classification, not a password)


def _json_column() -> Any:
    return Field(default_factory=dict, sa_type=sa.JSON)


class Tenant(SQLModel, table=True):
    name: str = Field(primary_key=True, max_length=64)
    created_at: float


class Node(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(index=True, max_length=64)
    operator: str = Field(default="local", max_length=64)
    region: str = Field(default="local", max_length=64)
    cpu_cores: float
    memory_mb: int
    accelerators: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    status: NodeStatus = Field(default=NodeStatus.ONLINE, index=True)
    active_tasks: int = 0
    cpu_used: float = 0.0
    memory_used_mb: int = 0
    gpu_used: int = 0
    registered_at: float
    last_heartbeat: float = Field(index=True)
    labels: dict[str, Any] = _json_column()
    # The node's current attestation result (set by the attestation layer; None = missing).
    attestation_status: str | None = Field(default=None, max_length=32)
    attestation_id: str | None = Field(default=None, max_length=64)
    attested_at: float | None = None
    attestation_expires_at: float | None = None


class Task(SQLModel, table=True):
    __table_args__ = (
        # a node's placed / running work (claims, heartbeats, expiry), oldest first, without
        # reading every task the node ever ran
        sa.Index("ix_task_node_state", "node_id", "state", "submitted_at"),
        # the admitted backlog, oldest first (placement pages through it by this order)
        sa.Index("ix_task_state_submitted", "state", "submitted_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=40)
    tenant: str = Field(index=True, max_length=64)
    state: TaskState
    command: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    cpu: float = 1.0
    memory_mb: int = 256
    gpu: int = 0
    accelerator_kind: str | None = None
    classification: Classification = Classification.PUBLIC
    region: str | None = None
    timeout_s: float = 60.0
    node_id: str | None = Field(default=None, max_length=64)
    attempt: int = 0
    reason: str = ""
    submitted_at: float
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    output_digest: str | None = None
    usage: dict[str, Any] = _json_column()
    trace_parent: str | None = None
    idempotency_key: str | None = Field(default=None, index=True, max_length=128)
    # What placement relied on (filled by the layers at placement; empty when a layer is off),
    # copied into the task's provenance record.
    attestation_id: str | None = Field(default=None, max_length=64)
    attestation_status: str | None = Field(default=None, max_length=32)
    trust_per_mille: int | None = None
    trust_uncertainty_per_mille: int | None = None
    policy_version: str | None = Field(default=None, max_length=80)
    placement_decision_id: str | None = Field(default=None, max_length=64)
    # The node's own signature over its result (base64url, see scheduler/agent.py).
    node_signature: str | None = Field(default=None, max_length=200)
    # On a verification replica: the id of the task it re-runs (scheduler/replication.py).
    replica_of: str | None = Field(default=None, index=True, max_length=40)


class TaskEvent(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(index=True, max_length=40)
    from_state: str | None = None
    to_state: str
    at: float
    reason: str = ""
    node_id: str | None = None


M = TypeVar("M", bound=SQLModel)
_ROW_DEFAULTS: dict[type[SQLModel], tuple[tuple[str, Any, bool], ...]] = {}


def new_row(model: type[M], **values: Any) -> M:
    """A new, not yet added row of ``model`` from values that were validated already (an
    API schema's): the same object ``model(**values)`` makes, without SQLModel's
    per-field pydantic pass, which cost ~3x the rest of constructing a row on the submit
    path. Fields not given take their declared defaults; an unknown field raises
    TypeError, a missing required one ValueError."""
    defaults = _ROW_DEFAULTS.get(model)
    if defaults is None:
        sa.orm.configure_mappers()
        defaults = tuple(
            (name, field.default_factory or field.default, field.default_factory is not None)
            for name, field in model.model_fields.items()
            if not field.is_required()
        )
        _ROW_DEFAULTS[model] = defaults
    fields = model.model_fields
    unknown = [name for name in values if name not in fields]
    if unknown:
        raise TypeError(f"{model.__name__} has no field {unknown[0]!r}")
    missing = [n for n, f in fields.items() if f.is_required() and n not in values]
    if missing:
        raise ValueError(f"{model.__name__} needs {missing[0]!r}")
    row: M = sa.inspect(model).class_manager.new_instance()
    for name, default, factory in defaults:
        if name not in values:
            set_attribute(row, name, default() if factory else default)
    for name, value in values.items():
        set_attribute(row, name, value)
    return row
