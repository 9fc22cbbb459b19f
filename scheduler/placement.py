"""Placement: a pipeline of filters then rankers over candidate nodes.

Each filter removes nodes and says why; each ranker adds to a node's score.
Later layers (attestation gate, Cedar policy filter, trust ranking) plug in as
more filters and rankers. The result carries every exclusion reason, so
``cntrust task show`` can answer "why is my task not placed?".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class NodeView:
    """What placement knows of a node (plain data, built from the store)."""

    id: str
    region: str
    operator: str
    cpu_cores: float
    memory_mb: int
    accelerators: tuple[tuple[str, int], ...]  # (kind, count)
    cpu_used: float
    memory_used_mb: int
    gpu_used: int
    active_tasks: int
    attributes: dict[str, object] = field(default_factory=dict)
    # the node's current attestation result (scheduler.attestation_gate reads them)
    attestation_status: str | None = None
    attestation_expires_at: float | None = None

    @property
    def gpu_total(self) -> int:
        return sum(count for kind, count in self.accelerators if kind == "gpu")

    def accelerator_count(self, kind: str) -> int:
        return sum(count for k, count in self.accelerators if k == kind)


@dataclass(frozen=True)
class TaskRequest:
    id: str
    tenant: str
    cpu: float
    memory_mb: int
    gpu: int
    accelerator_kind: str | None
    classification: str
    region: str | None


@dataclass(frozen=True)
class Exclusion:
    node_id: str
    stage: str
    reason: str


@dataclass(frozen=True)
class PlacementResult:
    node_id: str | None
    scores: tuple[tuple[str, float], ...]
    exclusions: tuple[Exclusion, ...]

    @property
    def reason(self) -> str:
        if self.node_id is not None:
            return f"placed on {self.node_id}"
        if not self.exclusions:
            return "no nodes online"
        stages = sorted({f"{e.stage}: {e.reason}" for e in self.exclusions})
        return "no node fits (" + "; ".join(stages[:4]) + ")"


class Filter(Protocol):
    name: str

    def __call__(self, task: TaskRequest, node: NodeView) -> str | None:
        """Return a reason to exclude ``node``, or None to keep it."""


class Ranker(Protocol):
    name: str

    def __call__(self, task: TaskRequest, node: NodeView) -> float:
        """Return a score contribution (higher is better)."""


class FitFilter:
    """Capacity: free CPU, memory and accelerators must cover the request."""

    name = "fit"

    def __call__(self, task: TaskRequest, node: NodeView) -> str | None:
        if node.cpu_cores - node.cpu_used + 1e-9 < task.cpu:
            return f"cpu {task.cpu} > free {node.cpu_cores - node.cpu_used:g}"
        if node.memory_mb - node.memory_used_mb < task.memory_mb:
            return f"memory {task.memory_mb} MB > free {node.memory_mb - node.memory_used_mb} MB"
        if task.gpu:
            kind = task.accelerator_kind or "gpu"
            free = node.accelerator_count(kind) - node.gpu_used
            if free < task.gpu:
                return f"{kind} {task.gpu} > free {free}"
        return None


class RegionFilter:
    """Data residency: a task tagged with a region never runs outside it."""

    name = "region"

    def __call__(self, task: TaskRequest, node: NodeView) -> str | None:
        if task.region is not None and node.region != task.region:
            return f"node region {node.region} != task region {task.region}"
        return None


class LoadRanker:
    """Prefer the node with the most free CPU share (spreads load)."""

    name = "load"

    def __call__(self, task: TaskRequest, node: NodeView) -> float:
        if node.cpu_cores <= 0:
            return 0.0
        return 1.0 - (node.cpu_used + task.cpu) / node.cpu_cores


@dataclass
class PlacementPipeline:
    filters: list[Filter] = field(default_factory=lambda: [RegionFilter(), FitFilter()])
    rankers: list[Ranker] = field(default_factory=lambda: [LoadRanker()])

    def place(self, task: TaskRequest, nodes: Sequence[NodeView]) -> PlacementResult:
        exclusions: list[Exclusion] = []
        scored: list[tuple[float, str]] = []
        for node in nodes:
            excluded = False
            for flt in self.filters:
                reason = flt(task, node)
                if reason is not None:
                    exclusions.append(Exclusion(node.id, flt.name, reason))
                    excluded = True
                    break
            if excluded:
                continue
            score = sum(rank(task, node) for rank in self.rankers)
            scored.append((score, node.id))
        # highest score first; ties broken by node id so placement is deterministic
        scored.sort(key=lambda s: (-s[0], s[1]))
        chosen = scored[0][1] if scored else None
        return PlacementResult(
            chosen, tuple((node_id, score) for score, node_id in scored), tuple(exclusions)
        )
