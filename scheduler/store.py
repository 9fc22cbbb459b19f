"""Write operations on the scheduler's state, each a function of a session.

Every function here runs inside the :class:`~scheduler.db.Committer`'s
transaction: it checks first and raises before it writes, so a refused
operation leaves nothing behind. Every task state change goes through
:func:`transition`, which enforces :data:`~scheduler.models.TRANSITIONS`,
keeps the node's resource counters in step and records a
:class:`~scheduler.models.TaskEvent` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlalchemy.orm.attributes import set_attribute
from sqlmodel import Session, SQLModel, col, select

from scheduler import node_results
from scheduler.db import SHARED_KEY, insert_at_commit
from scheduler.errors import Conflict, InvalidRequest, NotFound, SchedulerError
from scheduler.models import (
    ACTIVE_STATES,
    TRANSITIONS,
    Node,
    NodeStatus,
    Task,
    TaskEvent,
    TaskState,
    Tenant,
)
from scheduler.placement import (
    Exclusion,
    NodeView,
    PlacementPipeline,
    PlacementResult,
    TaskRequest,
)

_NODES_KEY = "cntrust.online_nodes"
_KEEP_KEY = "cntrust.keep"  # strong references for the transaction (see _keep)
# tasks this transaction moved into ADMITTED / PLACED (by node), not yet flushed (see _moved)
_ADMITTED_KEY = "cntrust.admitted"
_PLACED_KEY = "cntrust.placed"

_PLACE_CHUNK = 16
_TASK_EVENTS = TaskEvent.__table__  # type: ignore[attr-defined]

# The hot path's queries, built once: building a statement and its cache key cost more
# than running it (SQLAlchemy memoizes the cache key on the statement object).
_ONLINE_NODES = select(Node).where(Node.status == NodeStatus.ONLINE).order_by(col(Node.id))
_TASKS_BY_ID = select(Task).where(col(Task.id).in_(bindparam("ids", expanding=True)))
_ADMITTED = (
    select(Task)
    .where(Task.state == TaskState.ADMITTED)
    .order_by(col(Task.submitted_at), col(Task.id))
    .limit(bindparam("limit"))
)
# the next page after (at, id): a cursor, not an offset, so a flush between pages (a
# placement hook's query) cannot make a page skip rows
_ADMITTED_AFTER = _ADMITTED.where(
    sa.tuple_(col(Task.submitted_at), col(Task.id)) > sa.tuple_(bindparam("at"), bindparam("id"))
)
_PLACED_ON_NODE = (
    select(Task)
    .where(Task.node_id == bindparam("node_id"), Task.state == TaskState.PLACED)
    .order_by(col(Task.submitted_at))
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)


@dataclass(frozen=True)
class Transition:
    task_id: str
    node_id: str | None
    to_state: TaskState


M = TypeVar("M", bound=SQLModel)


def _set(obj: SQLModel, **values: Any) -> None:
    """Assign mapped attributes through SQLAlchemy's instrumentation directly.

    SQLModel's ``__setattr__`` adds pydantic bookkeeping a table model does not
    need (table models are not validated on assignment); on the hot path it
    cost more than the SQL. Change tracking is the same: the instrumented
    attribute records the change and the object is flushed as usual. Every
    object passed here is already in the session."""
    for key, value in values.items():
        set_attribute(obj, key, value)


def _get(session: Session, model: type[M], key: str) -> M | None:
    """Primary-key lookup without an autoflush: the identity map already holds pending rows,
    so pending writes wait for the batch's one flush instead of one flush per lookup."""
    with session.no_autoflush:
        found = session.get(model, key)
    if found is not None:
        _keep(session, (found,))
    return found


def _keep(session: Session, objects: Sequence[SQLModel]) -> None:
    """Hold ``objects`` for the rest of the transaction.

    The session's identity map holds clean objects weakly: once a flush has written an
    object and nothing else refers to it, it is collected, and the next lookup of the same
    row in the same batch goes back to the database. A batch looks the same rows up
    several times (a report, then the claim that follows it; the node of each task)."""
    session.info.setdefault(_KEEP_KEY, []).extend(objects)


def record_event(
    session: Session,
    task_id: str,
    from_state: str | None,
    to_state: str,
    at: float,
    reason: str,
    node_id: str | None,
) -> None:
    """Queue a TaskEvent row; the committer inserts all of a batch's events in one statement
    just before it commits, in the same transaction."""
    insert_at_commit(
        session,
        _TASK_EVENTS,
        {
            "task_id": task_id,
            "from_state": from_state,
            "to_state": to_state,
            "at": at,
            "reason": reason,
            "node_id": node_id,
        },
    )


def transition(
    session: Session,
    task: Task,
    to: TaskState,
    now: float,
    reason: str,
    *,
    node: Node | None = None,
) -> Transition:
    """Move ``task`` to ``to``; raises Conflict on an illegal move."""
    if to not in TRANSITIONS[task.state]:
        raise Conflict(
            f"task {task.id} cannot go from {task.state.value} to {to.value}",
            task_state=task.state.value,
        )
    was_active = task.state in ACTIVE_STATES
    will_be_active = to in ACTIVE_STATES
    if was_active and not will_be_active and task.node_id is not None:
        holder = node if node is not None and node.id == task.node_id else None
        holder = holder or _get(session, Node, task.node_id)
        if holder is not None:
            _set(
                holder,
                active_tasks=max(0, holder.active_tasks - 1),
                cpu_used=max(0.0, holder.cpu_used - task.cpu),
                memory_used_mb=max(0, holder.memory_used_mb - task.memory_mb),
                gpu_used=max(0, holder.gpu_used - task.gpu),
            )
    if not was_active and will_be_active:
        if node is None:
            raise Conflict(f"task {task.id} needs a node to become {to.value}")
        _set(
            node,
            active_tasks=node.active_tasks + 1,
            cpu_used=node.cpu_used + task.cpu,
            memory_used_mb=node.memory_used_mb + task.memory_mb,
            gpu_used=node.gpu_used + task.gpu,
        )
        _set(task, node_id=node.id)
    record_event(session, task.id, task.state.value, to.value, now, reason, task.node_id)
    _set(
        task,
        node_id=None if to == TaskState.ADMITTED else task.node_id,
        state=to,
        reason=reason,
        updated_at=now,
    )
    if to == TaskState.ADMITTED:
        session.info.setdefault(_ADMITTED_KEY, []).append(task)
    elif to == TaskState.PLACED:
        session.info.setdefault(_PLACED_KEY, {}).setdefault(task.node_id, []).append(task)
    return Transition(task.id, task.node_id, to)


def _moved(
    found: Sequence[Task], moved: Sequence[Task], state: TaskState, node_id: str | None
) -> list[Task]:
    """``found`` (a query's rows, run without an autoflush) and ``moved`` (the tasks this
    transaction moved into ``state``), those still in ``state`` (on ``node_id``) as they
    are now in memory, oldest first.

    The hot path's queries do not flush the transaction's pending writes first: the
    committer flushes once, at commit, so a task placed and claimed in one batch is
    written once. A query then sees the database as the last flush left it, and the
    session knows the rest: rows are kept only if their in-memory state still matches,
    and the tasks moved into the state since are added."""
    merged = {t.id: t for t in (*found, *moved)}
    return sorted(
        (
            t
            for t in merged.values()
            if t.state == state and (node_id is None or t.node_id == node_id)
        ),
        key=lambda t: (t.submitted_at, t.id),
    )


def node_view(node: Node | sa.Row[Any], *, labels: bool = True) -> NodeView:
    """Placement's view of a node row (a ``Node``, or a Core row of its columns). Without
    ``labels`` the node's own claims about itself are left out (and need not be selected)."""
    accels: dict[str, int] = {}
    for acc in node.accelerators:
        kind = str(acc.get("kind", "gpu"))
        accels[kind] = accels.get(kind, 0) + int(acc.get("count", 1))
    return NodeView(
        id=node.id,
        region=node.region,
        operator=node.operator,
        cpu_cores=node.cpu_cores,
        memory_mb=node.memory_mb,
        accelerators=tuple(sorted(accels.items())),
        cpu_used=node.cpu_used,
        memory_used_mb=node.memory_used_mb,
        gpu_used=node.gpu_used,
        active_tasks=node.active_tasks,
        attributes=dict(node.labels) if labels else {},
        attestation_status=node.attestation_status,
        attested_at=node.attested_at,
        attestation_expires_at=node.attestation_expires_at,
    )


def task_request(task: Task) -> TaskRequest:
    return TaskRequest(
        id=task.id,
        tenant=task.tenant,
        cpu=task.cpu,
        memory_mb=task.memory_mb,
        gpu=task.gpu,
        accelerator_kind=task.accelerator_kind,
        classification=task.classification.value,
        region=task.region,
        replica_of=task.replica_of,
    )


def online_nodes(session: Session) -> list[Node]:
    """Online nodes, loaded once per transaction (the committer's batch) and then reused."""
    cached = session.info.get(_NODES_KEY)
    if cached is None:
        cached = list(session.exec(_ONLINE_NODES))
        session.info[_NODES_KEY] = cached
        _keep(session, cached)
    return [n for n in cached if n.status == NodeStatus.ONLINE]


def _forget_nodes(session: Session) -> None:
    session.info.pop(_NODES_KEY, None)


def try_place(
    session: Session,
    task: Task,
    now: float,
    pipeline: PlacementPipeline,
    nodes: Sequence[Node] | None = None,
) -> PlacementResult:
    """Place an admitted task if a node fits; otherwise leave it admitted with the reason."""
    candidates = list(nodes) if nodes is not None else online_nodes(session)
    if candidates and not _could_fit_somewhere(task, candidates):
        # the cluster is full for this task: say so without running every filter
        free = f"{task.cpu:g} CPU and {task.memory_mb} MB free"
        result = PlacementResult(None, (), (Exclusion("*", "fit", f"no online node has {free}"),))
    else:
        result = pipeline.place(task_request(task), [node_view(n) for n in candidates])
    if result.node_id is None:
        if task.reason != result.reason:
            task.reason = result.reason
            task.updated_at = now
            session.add(task)
        return result
    node = next(n for n in candidates if n.id == result.node_id)
    transition(session, task, TaskState.PLACED, now, result.reason, node=node)
    for hook in pipeline.placed_hooks:
        hook(session, task, node)
    if node.attestation_id is not None:  # what placement relied on, for provenance
        _set(task, attestation_id=node.attestation_id, attestation_status=node.attestation_status)
    return result


def submit_task(
    session: Session,
    task: Task,
    now: float,
    pipeline: PlacementPipeline,
    admission_reason: str,
) -> tuple[Task, PlacementResult | None]:
    """Insert a task, admit it and try to place it, all in one transaction."""
    if task.idempotency_key is not None:
        existing = session.exec(
            select(Task).where(
                Task.idempotency_key == task.idempotency_key, Task.tenant == task.tenant
            )
        ).first()
        if existing is not None:
            return existing, None
    if not _tenant_exists(session, task.tenant):
        raise NotFound(f"tenant {task.tenant} is not registered")
    task.state = TaskState.SUBMITTED
    session.add(task)
    record_event(session, task.id, None, TaskState.SUBMITTED.value, now, "submitted", None)
    transition(session, task, TaskState.ADMITTED, now, admission_reason)
    return task, try_place(session, task, now, pipeline)


def _tenant_exists(session: Session, name: str) -> bool:
    """Tenants are never deleted, so a positive answer is cached for the process."""
    known: set[str] = session.info.setdefault(SHARED_KEY, {}).setdefault("tenants", set())
    if name in known:
        return True
    if _get(session, Tenant, name) is None:
        return False
    known.add(name)
    return True


def reject_task(
    session: Session,
    task: Task,
    now: float,
    reason: str,
    on_finished: Sequence[Callable[[Session, Task], None]] = (),
) -> Task:
    task.state = TaskState.SUBMITTED
    session.add(task)
    record_event(session, task.id, None, TaskState.SUBMITTED.value, now, "submitted", None)
    transition(session, task, TaskState.REJECTED, now, reason)
    task.finished_at = now
    for hook in on_finished:  # a final state: provenance records it in this transaction
        hook(session, task)
    return task


def claim_tasks(session: Session, node_id: str, now: float, limit: int) -> list[Task]:
    """Hand the node up to ``limit`` of its placed tasks and mark them running.

    Placed and running are both active states, so the node's counters do not change and
    the node row is not needed; that the node is registered is checked once per process
    (nodes are never deleted)."""
    if not _node_exists(session, node_id):
        raise NotFound(f"node {node_id} is not registered")
    with session.no_autoflush:
        found = list(session.exec(_PLACED_ON_NODE, params={"node_id": node_id, "limit": limit}))
    placed_here = session.info.get(_PLACED_KEY, {}).get(node_id, ())
    tasks = _moved(found, placed_here, TaskState.PLACED, node_id)[:limit]
    reason = f"claimed by {node_id}"
    for task in tasks:
        transition(session, task, TaskState.RUNNING, now, reason)
        _set(task, started_at=now)
    return tasks


def _node_exists(session: Session, node_id: str) -> bool:
    """Nodes are never deleted, so a positive answer is cached for the process."""
    known: set[str] = session.info.setdefault(SHARED_KEY, {}).setdefault("nodes", set())
    if node_id in known:
        return True
    if _get(session, Node, node_id) is None:
        return False
    known.add(node_id)
    return True


@dataclass(frozen=True)
class Report:
    task_id: str
    exit_code: int
    output_digest: str
    usage: dict[str, Any]
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    node_signature: str | None = None


def report_task(session: Session, node_id: str, report: Report, now: float) -> Task:
    """Record a node's result for a task it holds; Conflict if it does not hold it."""
    task = _get(session, Task, report.task_id)
    if task is None:
        raise NotFound(f"task {report.task_id} not found")
    if task.node_id != node_id or task.state != TaskState.RUNNING:
        raise Conflict(
            f"node {node_id} does not hold task {report.task_id}",
            task_state=task.state.value,
        )
    node_results.check_report(session, node_id, task, report)  # the node's own signature
    to = TaskState.SUCCEEDED if report.exit_code == 0 else TaskState.FAILED
    reason = "exit code 0" if report.exit_code == 0 else f"exit code {report.exit_code}"
    if report.error:
        reason = f"{reason}: {report.error[:200]}"
    transition(session, task, to, now, reason)
    task.exit_code = report.exit_code
    task.output_digest = report.output_digest
    task.usage = dict(report.usage)
    task.finished_at = now
    return task


def report_tasks(
    session: Session,
    node_id: str,
    reports: Sequence[Report],
    now: float,
    pipeline: PlacementPipeline,
    on_finished: Sequence[Callable[[Session, Task], None]] = (),
) -> tuple[list[Task | SchedulerError], list[Transition]]:
    """Record a batch of results in one transaction, then place waiting work on the freed
    capacity. Each refused result (unknown task, not held) is returned as its error and
    writes nothing; the others are recorded, and each ``on_finished(session, task)`` hook
    runs for them inside the same transaction (provenance, trust evidence)."""
    if not reports:
        return [], []
    ids = [r.task_id for r in reports]
    with session.no_autoflush:  # one query; report_task then finds each in the identity map
        _keep(session, list(session.exec(_TASKS_BY_ID, params={"ids": ids})))
    online_nodes(session)  # the holders of the reported tasks, and placement's candidates
    outcomes: list[Task | SchedulerError] = []
    for item in reports:
        try:
            finished = report_task(session, node_id, item, now)
        except SchedulerError as exc:
            outcomes.append(exc)
            continue
        for hook in on_finished:
            hook(session, finished)
        outcomes.append(finished)
    return outcomes, place_pending(session, now, pipeline, limit=128)


def cancel_task(
    session: Session,
    task_id: str,
    now: float,
    by: str,
    on_finished: Sequence[Callable[[Session, Task], None]] = (),
) -> Task:
    task = _get(session, Task, task_id)
    if task is None:
        raise NotFound(f"task {task_id} not found")
    transition(session, task, TaskState.CANCELLED, now, f"cancelled by {by}")
    task.finished_at = now
    for hook in on_finished:  # a final state: provenance records it in this transaction
        hook(session, task)
    return task


def requeue(session: Session, task: Task, now: float, reason: str) -> None:
    transition(session, task, TaskState.ADMITTED, now, reason)
    task.attempt += 1
    task.started_at = None


def register_node(session: Session, node: Node) -> Node:
    _forget_nodes(session)
    existing = _get(session, Node, node.id)
    if existing is None:
        session.add(node)
        return node
    for name in ("name", "operator", "region", "cpu_cores", "memory_mb", "accelerators", "labels"):
        setattr(existing, name, getattr(node, name))
    existing.status = NodeStatus.ONLINE
    existing.last_heartbeat = node.last_heartbeat
    session.add(existing)
    return existing


def heartbeat(
    session: Session, node_id: str, running: Sequence[str], now: float, grace_s: float
) -> list[str]:
    """Mark the node alive; requeue tasks it runs no longer. Returns the requeued ids."""
    node = _get(session, Node, node_id)
    if node is None:
        raise NotFound(f"node {node_id} is not registered")
    node.last_heartbeat = now
    if node.status == NodeStatus.OFFLINE:
        node.status = NodeStatus.ONLINE
        _forget_nodes(session)
    session.add(node)
    held = set(running)
    requeued = []
    stale = session.exec(
        select(Task).where(Task.node_id == node_id, Task.state == TaskState.RUNNING)
    )
    for task in stale:
        if task.id not in held and (task.started_at or now) < now - grace_s:
            requeue(session, task, now, f"node {node_id} no longer runs the task")
            requeued.append(task.id)
    return requeued


def expire_nodes(session: Session, now: float, timeout_s: float) -> list[str]:
    """Mark silent nodes offline and requeue their work. Returns the requeued task ids."""
    silent = session.exec(
        select(Node).where(
            Node.status == NodeStatus.ONLINE, col(Node.last_heartbeat) < now - timeout_s
        )
    )
    requeued: list[str] = []
    for node in silent:
        node.status = NodeStatus.OFFLINE
        session.add(node)
        tasks = session.exec(
            select(Task).where(Task.node_id == node.id, col(Task.state).in_(ACTIVE_STATES))
        )
        for task in tasks:
            requeue(session, task, now, f"node {node.id} stopped heartbeating")
            requeued.append(task.id)
    return requeued


def _could_fit_somewhere(task: Task, nodes: Sequence[Node]) -> bool:
    """A cheap necessary condition for placement (the fit filter's CPU and memory part)."""
    return any(
        n.cpu_cores - n.cpu_used + 1e-9 >= task.cpu
        and n.memory_mb - n.memory_used_mb >= task.memory_mb
        for n in nodes
    )


def place_pending(
    session: Session, now: float, pipeline: PlacementPipeline, limit: int = 500
) -> list[Transition]:
    """Try to place admitted tasks, oldest first, in chunks.

    Stops early when no node has free CPU, or when a whole chunk placed nothing
    (the cluster is full for this kind of work), so a long backlog costs little.
    The chunks are read without an autoflush (see :func:`_moved`), paged by a cursor on
    (submitted_at, id); the tasks this transaction admitted join the first chunk.
    """
    placed: list[Transition] = []
    nodes: list[Node] | None = None  # loaded only when there is waiting work
    after: tuple[float, str] | None = None  # the last row of the previous page
    seen = 0
    while seen < limit:
        if nodes is not None and not any(n.cpu_cores - n.cpu_used > 1e-9 for n in nodes):
            break
        with session.no_autoflush:
            if after is None:
                rows = list(session.exec(_ADMITTED, params={"limit": _PLACE_CHUNK}))
            else:
                at, last = after
                page = {"limit": _PLACE_CHUNK, "at": at, "id": last}
                rows = list(session.exec(_ADMITTED_AFTER, params=page))
        if after is None:  # the first page: with the tasks this transaction admitted
            chunk = _moved(rows, session.info.get(_ADMITTED_KEY, ()), TaskState.ADMITTED, None)
        else:
            chunk = [t for t in rows if t.state == TaskState.ADMITTED]
        if not chunk and len(rows) < _PLACE_CHUNK:
            break
        if nodes is None:
            nodes = online_nodes(session)
            if not any(n.cpu_cores - n.cpu_used > 1e-9 for n in nodes):
                break
        placed_in_chunk = 0
        for task in chunk:
            if not _could_fit_somewhere(task, nodes):
                continue  # no node has the free CPU and memory: skip the full pipeline
            result = try_place(session, task, now, pipeline, nodes)
            if result.node_id is not None:
                placed.append(Transition(task.id, result.node_id, TaskState.PLACED))
                placed_in_chunk += 1
        if len(rows) < _PLACE_CHUNK or placed_in_chunk == 0:
            break
        seen += len(rows)
        after = (rows[-1].submitted_at, rows[-1].id)
    return placed


def add_tenant(session: Session, name: str, now: float) -> Tenant:
    if _get(session, Tenant, name) is not None:
        raise Conflict(f"tenant {name} already exists")
    tenant = Tenant(name=name, created_at=now)
    session.add(tenant)
    return tenant


def set_node_status(session: Session, node_id: str, status: NodeStatus, now: float) -> Node:
    node = _get(session, Node, node_id)
    if node is None:
        raise NotFound(f"node {node_id} not found")
    if status == NodeStatus.CORDONED and node.status == NodeStatus.CORDONED:
        raise InvalidRequest(f"node {node_id} is already cordoned")
    node.status = status
    session.add(node)
    _forget_nodes(session)
    return node
