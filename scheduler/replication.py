"""Adaptive verification by replication: re-run a share of each node's tasks on an
independent high-trust node and compare the results (BOINC-style adaptive replication).

When a tenant's task finishes on node A with a result A answers for (it ran to completion:
not a timeout, a kill or a failed start), the trust engine decides the share of A's tasks to
verify (:func:`trust.verification_share` of A's opinion: the lower or more uncertain A's
trust, the larger), bounded by ``min_share`` and ``max_share`` (the cap: replicas never
exceed ``max_share`` of the tasks, so throughput stays bounded). A hash of the task id below
the share picks the task, the same way on every scheduler replica. Its *replica* is a real
second task run: a :class:`~scheduler.models.Task` with ``replica_of`` = the original's id
(the link the provenance record names), the same tenant, command and constraints, placed
only on a high-trust node that has not produced a result for the task yet, preferring
another operator (:class:`ReplicaFilter`, :class:`ReplicaRanker`). Replicas are left out of
the tenant's task listing and marked with ``replica_of`` everywhere else.

When a replica finishes, the results are compared by exit code and output digest
(:class:`~scheduler.tables.replication.ReplicaCheck` keeps them):

- all agree: each agreeing node with a trusted corroborator gets ``task_verified`` evidence;
- they differ (or a replica could not finish): another replica is added on yet another
  trusted node while ``max_replicas`` allows, so no node is convicted on a single other
  node's word while a tie-breaker exists; then :func:`trust.decide_replicas` finds the
  trust-weighted majority. The nodes that disagree with it get ``task_wrong_result``
  evidence (heavy enough to quarantine them through the trust layer's path), the agreeing
  ones with a trusted corroborator ``task_verified`` — only if the majority holds a trusted
  node, and a trusted node is convicted only by at least two agreeing results. Otherwise
  the check is ``unresolved`` and nobody's trust changes.

Invariants:
- The evidence id of a comparison is ``replica:<original task>:<node>``: one verdict per task
  and node, never counted twice (the trust layer refuses a replay).
- A check is decided once; a result for a replica that is not one of the check's, or a node
  whose result is already in, is refused and counted (:attr:`Replication.counts`).
- Non-deterministic commands (output differs between honest runs) are indistinguishable from
  lying nodes here: replication assumes deterministic tasks, as BOINC does.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

import trust
from scheduler import store
from scheduler.models import ACTIVE_STATES, Node, Task, TaskState, new_row
from scheduler.placement import NodeView, TaskRequest
from scheduler.tables.replication import (
    ABANDONED,
    AGREED,
    DISAGREED,
    FINAL,
    PENDING,
    UNRESOLVED,
    ReplicaCheck,
)
from scheduler.trust_placement import NodeTrustView
from scheduler.trust_wiring import TrustLayer, task_outcome

log = logging.getLogger(__name__)

SOURCE = "scheduler.replication"
OPERATOR_BONUS = 10.0  # outweighs trust and load: another operator wins whenever one fits
SWEEP_EVERY_S = 5.0
CONSTRAINT_CACHE = 10_000
INCOMPLETE = "incomplete"


@dataclass(frozen=True)
class ReplicationConfig:
    """Bounds of the engine's verification share, replicas per task, and how long a replica
    may wait for a trusted node before the check is abandoned.

    Raises:
        ValueError: shares outside [0, 1], min_share > max_share, max_replicas < 1, or
            abandon_after_s <= 0.
    """

    min_share: float = 0.05
    max_share: float = 0.5
    max_replicas: int = 2
    abandon_after_s: float = 600.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_share <= self.max_share <= 1.0:
            raise ValueError("need 0 <= min_share <= max_share <= 1")
        if self.max_replicas < 1 or not self.abandon_after_s > 0:
            raise ValueError("need max_replicas >= 1 and abandon_after_s > 0")

    @classmethod
    def of(cls, settings: Any) -> ReplicationConfig:
        return cls(
            min_share=settings.replication_min_share,
            max_share=settings.replication_max_share,
            max_replicas=settings.replication_max_replicas,
        )


@dataclass(frozen=True)
class Constraint:
    """Where a replica may not run (nodes with a result already) and whose operators it
    should avoid."""

    excluded: frozenset[str]
    operators: frozenset[str]


NO_CONSTRAINT = Constraint(frozenset(), frozenset())


def result_key(task: Task) -> str:
    """What replicas compare: exit code and output digest."""
    return f"{task.exit_code}:{task.output_digest}"


def completed(task: Task) -> bool:
    """The task ran to completion on its node (succeeded, or the command itself failed), so
    its result is the node's to answer for."""
    if task.node_id is None or task.state not in (TaskState.SUCCEEDED, TaskState.FAILED):
        return False
    return task_outcome(task) in ("succeeded", None)


class Replication:
    """Chooses tasks to verify, creates and places their replicas, compares the results and
    turns the verdict into trust evidence (see the module docstring)."""

    def __init__(self, service: Any, layer: TrustLayer, config: ReplicationConfig) -> None:
        self.service = service
        self.layer = layer
        self.config = config
        self.counts: dict[str, int] = {}
        self._constraints: dict[str, Constraint] = {}
        self._lock = threading.Lock()
        self._last_sweep = 0.0

    @classmethod
    def install(
        cls, service: Any, layer: TrustLayer, config: ReplicationConfig | None = None
    ) -> Replication:
        """Wire replication into ``service`` after its trust layer: the finished-task hook,
        the replica placement filter and ranker, the sweep on the trust sync thread, and
        ``service.replication``.

        Raises:
            RuntimeError: replication is already installed on this service.
        """
        if isinstance(getattr(service, "replication", None), Replication):
            raise RuntimeError("replication is already installed on this service")
        rep = cls(service, layer, config or ReplicationConfig())
        service.finished_hooks.append(rep.on_task_finished)
        service.pipeline.filters.append(ReplicaFilter(rep))
        service.pipeline.rankers.append(ReplicaRanker(rep))
        if layer.sync is not None:
            layer.sync.periodic.append(rep.periodic_sweep)
        service.replication = rep
        return rep

    def _count(self, key: str) -> str:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1
        return key

    # -- choosing ---------------------------------------------------------------------------
    def share(self, node_id: str) -> float:
        """The share of this node's tasks to verify now (the engine decides, bounded)."""
        layer = self.layer
        with layer.lock:
            layer._fresh()
            try:
                opinion = layer.engine.opinion(node_id)
            except trust.UnknownNodeError:
                return self.config.max_share
        return trust.verification_share(
            opinion, min_share=self.config.min_share, max_share=self.config.max_share
        )

    @staticmethod
    def chosen(task_id: str, share: float) -> bool:
        """Whether the task falls in the share (a hash of its id: every replica agrees)."""
        digest = hashlib.sha256(f"replicate:{task_id}".encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < share

    def on_task_finished(self, session: Session, task: Task) -> None:
        """Finished-task hook: verify a replica's result, or maybe replicate a tenant task."""
        if task.replica_of is not None:
            self.verify(session, task)
            return
        if not completed(task) or task.node_id is None:
            return
        share = self.share(task.node_id)
        if not self.chosen(task.id, share):
            return
        with session.no_autoflush:
            if session.get(ReplicaCheck, task.id) is not None:
                self._count("replayed")
                return
            node = session.get(Node, task.node_id)
        now = self.service.clock()
        check = new_row(  # built from our own values: no pydantic pass (~10x cheaper)
            ReplicaCheck,
            original_task_id=task.id,
            node_id=task.node_id,
            share=share,
            created_at=now,
            updated_at=now,
            excluded=[task.node_id],
            operators=[node.operator] if node is not None else [],
            results={task.node_id: result_key(task)},
        )
        if self._add_replica(session, task, check, now) is None:
            self._count("no_host")
            return
        session.add(check)
        self._count("replicated")

    def _add_replica(
        self, session: Session, original: Task, check: ReplicaCheck, now: float
    ) -> Task | None:
        """Create the next replica (admitted; placement puts it on a trusted node), or None
        when no online high-trust node outside ``check.excluded`` could take it."""
        if not self._host_exists(session, original, set(check.excluded)):
            return None
        replica = new_row(
            Task,
            id=uuid.uuid4().hex,
            tenant=original.tenant,
            state=TaskState.SUBMITTED,
            command=list(original.command),
            cpu=original.cpu,
            memory_mb=original.memory_mb,
            gpu=original.gpu,
            accelerator_kind=original.accelerator_kind,
            classification=original.classification,
            region=original.region,
            timeout_s=original.timeout_s,
            submitted_at=now,
            updated_at=now,
            trace_parent=original.trace_parent,
            replica_of=original.id,
        )
        session.add(replica)
        why = f"verification replica of task {original.id} (result of {check.node_id})"
        store.record_event(session, replica.id, None, TaskState.SUBMITTED.value, now, why, None)
        store.transition(session, replica, TaskState.ADMITTED, now, f"admitted: {why}")
        check.replicas = [*check.replicas, replica.id]
        self._remember(
            replica.id, Constraint(frozenset(check.excluded), frozenset(check.operators))
        )
        return replica

    def _host_exists(self, session: Session, original: Task, excluded: set[str]) -> bool:
        """An online high-trust node outside ``excluded`` that could ever run the task
        (region, total CPU, memory and accelerators; free capacity may come later)."""
        kind = original.accelerator_kind or "gpu"
        for node in store.online_nodes(session):
            if node.id in excluded or (original.region and node.region != original.region):
                continue
            view = store.node_view(node)
            if (
                view.cpu_cores < original.cpu
                or view.memory_mb < original.memory_mb
                or view.accelerator_count(kind) < original.gpu
            ):
                continue
            trust_view = self.layer.view(view)
            if trust_view.trusted and trust_view.exclusion is None:
                return True
        return False

    # -- placement constraints --------------------------------------------------------------
    def _remember(self, replica_id: str, constraint: Constraint) -> None:
        with self._lock:
            if len(self._constraints) >= CONSTRAINT_CACHE:
                self._constraints.pop(next(iter(self._constraints)))
            self._constraints[replica_id] = constraint

    def constraint(self, task: TaskRequest) -> Constraint:
        """Where this replica may not run (read from its check when another scheduler
        replica created it)."""
        with self._lock:
            known = self._constraints.get(task.id)
        if known is not None or task.replica_of is None:
            return known or NO_CONSTRAINT
        with self.service.read() as session:
            check = session.get(ReplicaCheck, task.replica_of)
        if check is None:
            log.warning("replica %s names task %s, which has no check", task.id, task.replica_of)
            return NO_CONSTRAINT
        found = Constraint(frozenset(check.excluded), frozenset(check.operators))
        self._remember(task.id, found)
        return found

    # -- comparing --------------------------------------------------------------------------
    def verify(self, session: Session, replica: Task) -> str:
        """Take a finished replica's result into its check and decide when the results
        allow. Returns what happened: ``pending`` (another replica was added), a final
        status, or the refusal code (``not_a_replica``, ``already_decided``,
        ``not_finished``, ``replayed``, ``unknown_original``), counted."""
        if replica.replica_of is None:
            return self._count("not_a_replica")
        with session.no_autoflush:
            check = session.get(ReplicaCheck, replica.replica_of)
        if check is None or replica.id not in check.replicas:
            return self._count("not_a_replica")
        if check.status in FINAL:
            return self._count("already_decided")
        node_id = replica.node_id
        if node_id is None or replica.state not in (TaskState.SUCCEEDED, TaskState.FAILED):
            return self._count("not_finished")
        if node_id in check.results:
            return self._count("replayed")
        with session.no_autoflush:
            original = session.get(Task, check.original_task_id)
            node = session.get(Node, node_id)
        if original is None:
            return self._count("unknown_original")
        now = self.service.clock()
        key = result_key(replica) if completed(replica) else f"{INCOMPLETE}:{replica.reason}"
        check.results = {**check.results, node_id: key[:300]}
        check.excluded = sorted({*check.excluded, node_id})
        if node is not None:
            check.operators = sorted({*check.operators, node.operator})
        check.updated_at = now
        session.add(check)
        return self._decide(session, original, check, now)

    def _decide(self, session: Session, original: Task, check: ReplicaCheck, now: float) -> str:
        complete = {n: k for n, k in check.results.items() if not k.startswith(INCOMPLETE)}
        if len(complete) >= 2 and len(set(complete.values())) == 1:
            return self._finish(
                session, original, check, now, AGREED, sorted(complete), (), "all results agree"
            )
        # a disagreement, or a replica that could not finish: a tie-breaker first
        if (
            len(check.replicas) < self.config.max_replicas
            and self._add_replica(session, original, check, now) is not None
        ):
            check.reason = f"{len(set(complete.values()))} distinct results: added a replica"
            self._count("escalated")
            return PENDING
        if len(complete) < 2:
            return self._finish(
                session, original, check, now, UNRESOLVED, (), (), "too few complete results"
            )
        views = {n: self._view(session, n, now) for n in complete}
        verdict = trust.decide_replicas(complete, {n: v.score for n, v in views.items()})
        trusted = {n for n, v in views.items() if v.trusted}
        if not verdict.decided:
            reason = "no trusted majority, and no replica left to add"
        elif not trusted.intersection(verdict.agreeing):
            reason = "no trusted node in the majority"
        elif trusted.intersection(verdict.disagreeing) and len(verdict.agreeing) < 2:
            reason = "a trusted node is convicted only by two agreeing results"
        else:
            return self._finish(
                session,
                original,
                check,
                now,
                DISAGREED,
                verdict.agreeing,
                verdict.disagreeing,
                f"{', '.join(verdict.disagreeing)} disagreed with the trusted majority "
                f"{', '.join(verdict.agreeing)}",
                views,
            )
        return self._finish(session, original, check, now, UNRESOLVED, (), (), reason)

    def _view(self, session: Session, node_id: str, now: float) -> NodeTrustView:
        with session.no_autoflush:
            node = session.get(Node, node_id)
        if node is None:
            return NodeTrustView(now, 0.0, 1.0, "unknown node", False, False)
        return self.layer.view(store.node_view(node))

    def _finish(
        self,
        session: Session,
        original: Task,
        check: ReplicaCheck,
        now: float,
        status: str,
        agreeing: tuple[str, ...] | list[str],
        convicted: tuple[str, ...],
        reason: str,
        views: dict[str, NodeTrustView] | None = None,
    ) -> str:
        views = views or {n: self._view(session, n, now) for n in agreeing}
        trusted = {n for n in agreeing if views[n].trusted}
        verified = [n for n in agreeing if trusted - {n}]  # a trusted node agreed with it
        majority = check.results[agreeing[0]] if agreeing else ""
        for node_id in verified:
            self._evidence(session, original, node_id, "succeeded", f"result matched {majority}")
        for node_id in convicted:
            detail = f"result {check.results[node_id]} disagrees with the majority {majority}"
            self._evidence(session, original, node_id, "wrong_result", detail)
        check.status = status
        check.verified = verified
        check.convicted = list(convicted)
        check.reason = reason[:500]
        check.decided_at = now
        session.add(check)
        # the verdict shows in the original task's history (its state does not change)
        state = original.state.value
        note = f"verification {status}: {reason}"[:300]
        store.record_event(session, original.id, state, state, now, note, original.node_id)
        return self._count(status)

    def _evidence(
        self, session: Session, original: Task, node_id: str, outcome: str, detail: str
    ) -> None:
        ev = trust.from_task_outcome(
            evidence_id=f"replica:{original.id}:{node_id}"[:200],
            node_id=node_id,
            outcome=outcome,
            verified=True,
            observed_at=self.service.clock(),
            scheduler=SOURCE,
            detail=f"task {original.id}: {detail}"[:1000],
        )
        result = self.layer.record(session, ev)
        if not result.accepted:
            self._count(f"evidence_{result.reason.value}")

    # -- abandoned replicas -----------------------------------------------------------------
    def periodic_sweep(self) -> None:
        """Sync-thread hook: :meth:`sweep` at most every ``SWEEP_EVERY_S``."""
        mono = time.monotonic()
        if mono - self._last_sweep >= SWEEP_EVERY_S:
            self._last_sweep = mono
            self.sweep()

    def sweep(self) -> int:
        """Abandon checks whose newest replica waited ``abandon_after_s`` without running
        (no trusted node took it, or it was cancelled): an admitted replica is cancelled.
        Returns how many checks were abandoned."""
        now = self.service.clock()
        horizon = now - self.config.abandon_after_s
        with self.service.read() as session:
            stale = list(
                session.exec(
                    select(ReplicaCheck.original_task_id)
                    .where(
                        ReplicaCheck.status == PENDING,
                        col(ReplicaCheck.updated_at) < horizon,
                    )
                    .limit(100)
                )
            )
        if not stale:
            return 0

        def op(session: Session) -> int:
            abandoned = 0
            for original_id in stale:
                check = session.get(ReplicaCheck, original_id)
                if check is None or check.status != PENDING:
                    continue
                replica = session.get(Task, check.replicas[-1]) if check.replicas else None
                if replica is not None and replica.state in ACTIVE_STATES:
                    continue  # running somewhere: the result will come
                if replica is not None and replica.state == TaskState.ADMITTED:
                    store.transition(
                        session,
                        replica,
                        TaskState.CANCELLED,
                        now,
                        "verification replica abandoned: no independent trusted node took it",
                    )
                    replica.finished_at = now
                check.status = ABANDONED
                check.reason = "no independent trusted node ran the replica in time"
                check.decided_at = now
                session.add(check)
                abandoned += 1
            return abandoned

        done = int(self.service.write_sync(op))
        for _ in range(done):
            self._count(ABANDONED)
        return done


class ReplicaFilter:
    """Keeps a replica off the nodes that already produced a result for its task and off
    every node that is not high-trust."""

    name = "replica"

    def __init__(self, replication: Replication) -> None:
        self.replication = replication

    def __call__(self, task: TaskRequest, node: NodeView) -> str | None:
        if task.replica_of is None:
            return None
        if node.id in self.replication.constraint(task).excluded:
            return "verification replica: the node already ran this task"
        if not self.replication.layer.view(node).trusted:
            return "verification replica: not a high-trust node"
        return None


class ReplicaRanker:
    """Prefers, for a replica, a node of an operator that has no result for its task yet."""

    name = "replica"

    def __init__(self, replication: Replication) -> None:
        self.replication = replication

    def __call__(self, task: TaskRequest, node: NodeView) -> float:
        if task.replica_of is None:
            return 0.0
        operators = self.replication.constraint(task).operators
        return OPERATOR_BONUS if node.operator not in operators else 0.0
