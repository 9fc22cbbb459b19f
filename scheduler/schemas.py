"""API request and response models. Requests reject unknown fields and bound every size."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from scheduler.models import Classification, Node, Task, TaskEvent

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AcceleratorSpec(Strict):
    kind: Literal["gpu", "fpga", "asic"]
    model: str = Field(default="generic", max_length=64)
    count: int = Field(default=1, ge=1, le=64)


class TaskSubmit(Strict):
    command: list[str] = Field(min_length=1, max_length=64)
    cpu: float = Field(default=1.0, gt=0, le=1024)
    memory_mb: int = Field(default=256, ge=1, le=4 * 1024 * 1024)
    gpu: int = Field(default=0, ge=0, le=64)
    accelerator_kind: Literal["gpu", "fpga", "asic"] | None = None
    classification: Classification = Classification.PUBLIC
    region: str | None = Field(default=None, pattern=NAME_PATTERN)
    timeout_s: float = Field(default=60.0, gt=0, le=86400)
    idempotency_key: str | None = Field(default=None, max_length=128)

    def model_post_init(self, _context: Any) -> None:
        for arg in self.command:
            if len(arg) > 4096:
                raise ValueError("command argument longer than 4096 characters")


class TaskOut(BaseModel):
    id: str
    tenant: str
    state: str
    command: list[str]
    cpu: float
    memory_mb: int
    gpu: int
    accelerator_kind: str | None
    classification: str
    region: str | None
    timeout_s: float
    node_id: str | None
    attempt: int
    reason: str
    submitted_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    exit_code: int | None
    output_digest: str | None
    usage: dict[str, Any]
    trace_id: str | None = None
    replica_of: str | None = None  # a verification replica: the task it re-runs

    @classmethod
    def of(cls, task: Task) -> TaskOut:
        data = task.model_dump()
        data["state"] = task.state.value
        data["classification"] = task.classification.value
        tp = task.trace_parent
        data["trace_id"] = tp.split("-")[1] if tp and tp.count("-") == 3 else None
        return cls.model_validate(data)


class TaskEventOut(BaseModel):
    from_state: str | None
    to_state: str
    at: float
    reason: str
    node_id: str | None

    @classmethod
    def of(cls, event: TaskEvent) -> TaskEventOut:
        return cls.model_validate(event.model_dump())


class TaskDetail(TaskOut):
    events: list[TaskEventOut] = []


class NodeRegister(Strict):
    cpu_cores: float = Field(gt=0, le=4096)
    memory_mb: int = Field(ge=1, le=64 * 1024 * 1024)
    accelerators: list[AcceleratorSpec] = Field(default_factory=list, max_length=16)
    region: str = Field(default="local", pattern=NAME_PATTERN)
    operator: str = Field(default="local", pattern=NAME_PATTERN)
    labels: dict[str, str] = Field(default_factory=dict, max_length=32)


class NodeOut(BaseModel):
    id: str
    name: str
    operator: str
    region: str
    cpu_cores: float
    memory_mb: int
    accelerators: list[dict[str, Any]]
    status: str
    active_tasks: int
    cpu_used: float
    memory_used_mb: int
    gpu_used: int
    registered_at: float
    last_heartbeat: float
    labels: dict[str, Any]

    @classmethod
    def of(cls, node: Node) -> NodeOut:
        data = node.model_dump()
        data["status"] = node.status.value
        return cls.model_validate(data)


class Registered(BaseModel):
    node_id: str
    token: str
    heartbeat_interval_s: float


class Heartbeat(Strict):
    running: list[str] = Field(default_factory=list, max_length=4096)


class HeartbeatOut(BaseModel):
    status: str
    requeued: list[str]
    token: str | None = None


class Claim(Strict):
    max_tasks: int = Field(default=8, ge=1, le=256)
    wait_s: float = Field(default=10.0, ge=0, le=60)


class ClaimedTask(BaseModel):
    id: str
    command: list[str]
    cpu: float
    memory_mb: int
    gpu: int
    timeout_s: float
    trace_parent: str | None
    attempt: int = 0  # signed by the node with its result (scheduler/node_results.py)


class ResultReport(Strict):
    task_id: str = Field(max_length=40)
    exit_code: int = Field(ge=-255, le=255)
    output_digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    usage: dict[str, float] = Field(default_factory=dict, max_length=32)
    error: str | None = Field(default=None, max_length=2048)
    started_at: float | None = None
    finished_at: float | None = None
    # the node's Ed25519 signature over its result, base64url (scheduler/node_results.py)
    node_signature: str | None = Field(default=None, max_length=100)


class ReportBatch(Strict):
    results: list[ResultReport] = Field(min_length=1, max_length=256)


class ReportOutcome(BaseModel):
    task_id: str
    accepted: bool
    state: str | None = None
    problem: dict[str, Any] | None = None


class ExchangeBatch(Strict):
    results: list[ResultReport] = Field(min_length=1, max_length=256)
    claim_max: int = Field(default=0, ge=0, le=256)


class Exchanged(BaseModel):
    outcomes: list[ReportOutcome]
    tasks: list[ClaimedTask]


class TenantCreate(Strict):
    name: str = Field(pattern=NAME_PATTERN)
