"""Several operations in one transaction, as the committer runs a batch.

The hot path's queries (placement's admitted chunk, a node's claim) run without flushing
the batch's pending writes; these tests pin that a batch still sees what its own earlier
operations did: a task placed and claimed in one batch, capacity freed and reused in one
batch, a task cancelled or claimed earlier in the batch not handed out again."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from scheduler import store
from scheduler.models import Node, Task, TaskEvent, TaskState
from tests.unit.scheduler.helpers import task_row


def _node(name: str, now: float, cpu: float = 1.0) -> Node:
    return Node(
        id=name, name=name, cpu_cores=cpu, memory_mb=4096, registered_at=now, last_heartbeat=now
    )


def _task(now: float) -> Task:
    return task_row(now)  # type: ignore[no-any-return]


def _setup(service: Any, clock: Any, *nodes: str) -> None:
    now = clock()
    service.write_sync(lambda s: store.add_tenant(s, "t", now))
    for name in nodes:
        service.write_sync(lambda s, name=name: store.register_node(s, _node(name, now)))


def _submit(service: Any, s: Session, task: Task, now: float) -> store.PlacementResult | None:
    return store.submit_task(s, task, now, service.pipeline, "admitted")[1]


def _report(service: Any, s: Session, node: str, task_id: str, now: float) -> list[Any]:
    done = store.Report(task_id=task_id, exit_code=0, output_digest="sha256:" + "0" * 64, usage={})
    outcomes, _placed = store.report_tasks(s, node, [done], now, service.pipeline)
    return outcomes


def _read(service: Any, task_id: str) -> tuple[Task, list[str]]:
    with Session(service.engine) as s:
        task = s.get(Task, task_id)
        assert task is not None
        events = s.exec(select(TaskEvent).where(TaskEvent.task_id == task_id)).all()
        return task, [e.to_state for e in sorted(events, key=lambda e: e.id or 0)]


def test_a_task_placed_in_a_batch_is_claimed_in_the_same_batch(service, clock):
    _setup(service, clock, "n1")
    now = clock()
    task = _task(now)

    def batch(s: Session) -> list[str]:
        placement = _submit(service, s, task, now)
        assert placement is not None and placement.node_id == "n1"
        return [t.id for t in store.claim_tasks(s, "n1", now, 4)]

    assert service.write_sync(batch) == [task.id]
    stored, events = _read(service, task.id)
    assert stored.state == TaskState.RUNNING and stored.node_id == "n1"
    assert events == ["submitted", "admitted", "placed", "running"]


def test_capacity_freed_in_a_batch_goes_to_a_task_admitted_in_that_batch(service, clock):
    _setup(service, clock, "n1")  # one CPU: one task at a time
    now = clock()
    first, second = _task(now), _task(now + 1)
    service.write_sync(lambda s: _submit(service, s, first, now))
    assert [t.id for t in service.write_sync(lambda s: store.claim_tasks(s, "n1", now, 4))] == [
        first.id
    ]

    def batch(s: Session) -> list[str]:
        assert _submit(service, s, second, now + 1).node_id is None  # type: ignore[union-attr]
        assert isinstance(_report(service, s, "n1", first.id, now + 2)[0], Task)
        return [t.id for t in store.claim_tasks(s, "n1", now + 2, 4)]

    assert service.write_sync(batch) == [second.id]
    assert _read(service, first.id)[0].state == TaskState.SUCCEEDED
    stored, events = _read(service, second.id)
    assert stored.state == TaskState.RUNNING
    assert events == ["submitted", "admitted", "placed", "running"]
    with Session(service.engine) as s:
        node = s.get(Node, "n1")
        assert node is not None and node.active_tasks == 1 and node.cpu_used == 1.0


def test_a_task_cancelled_earlier_in_the_batch_is_not_claimed(service, clock):
    _setup(service, clock, "n1")
    now = clock()
    task = _task(now)
    service.write_sync(lambda s: _submit(service, s, task, now))  # placed, committed

    def batch(s: Session) -> list[Task]:
        store.cancel_task(s, task.id, now, "t")
        return store.claim_tasks(s, "n1", now, 4)

    assert service.write_sync(batch) == []
    assert _read(service, task.id)[0].state == TaskState.CANCELLED


def test_two_claims_in_one_batch_never_hand_out_a_task_twice(service, clock):
    _setup(service, clock, "n1")
    service.write_sync(lambda s: store.register_node(s, _node("n1", clock(), cpu=4.0)))
    now = clock()
    tasks = [_task(now + i) for i in range(3)]
    for t in tasks:
        service.write_sync(lambda s, t=t: _submit(service, s, t, now))

    def batch(s: Session) -> tuple[list[str], list[str]]:
        a = [t.id for t in store.claim_tasks(s, "n1", now, 2)]
        b = [t.id for t in store.claim_tasks(s, "n1", now, 2)]
        return a, b

    a, b = service.write_sync(batch)
    assert a == [t.id for t in tasks[:2]]  # oldest first
    assert not set(a) & set(b)
    claimed = (
        set(a)
        | set(b)
        | {t.id for t in service.write_sync(lambda s: store.claim_tasks(s, "n1", now, 4))}
    )
    assert claimed == {t.id for t in tasks}


def test_a_task_requeued_in_a_batch_is_placed_in_the_same_batch(service, clock):
    _setup(service, clock, "n1", "n2")
    now = clock()
    task = _task(now)
    service.write_sync(lambda s: _submit(service, s, task, now))
    holder = _read(service, task.id)[0].node_id
    other = "n2" if holder == "n1" else "n1"

    def batch(s: Session) -> list[store.Transition]:
        found = s.get(Task, task.id)
        assert found is not None
        store.requeue(s, found, now + 1, "test: its node went away")
        store.set_node_status(s, holder, store.NodeStatus.CORDONED, now + 1)  # type: ignore[arg-type]
        return store.place_pending(s, now + 1, service.pipeline)

    placed = service.write_sync(batch)
    assert [(p.task_id, p.node_id) for p in placed] == [(task.id, other)]
    stored, events = _read(service, task.id)
    assert stored.state == TaskState.PLACED and stored.node_id == other
    assert events == ["submitted", "admitted", "placed", "admitted", "placed"]


def test_a_long_backlog_is_placed_oldest_first_even_when_a_hook_flushes(service, clock):
    """Pages follow a cursor, not an offset: a placement hook whose query flushes the
    placements of the first page must not make the second page skip waiting tasks."""
    now = clock()
    service.write_sync(lambda s: store.add_tenant(s, "t", now))
    backlog = [_task(now + i) for i in range(40)]
    for t in backlog:  # no node yet: every task waits, admitted
        service.write_sync(lambda s, t=t: _submit(service, s, t, now))
    flushes = []

    def flushing_hook(s: Session, task: Task, node: Node) -> None:
        s.exec(select(Node)).all()  # a query: the session autoflushes first
        flushes.append(task.id)

    service.pipeline.placed_hooks.append(flushing_hook)
    service.write_sync(lambda s: store.register_node(s, _node("n1", now, cpu=20.0)))
    placed = service.write_sync(lambda s: store.place_pending(s, now, service.pipeline))
    assert [p.task_id for p in placed] == [t.id for t in backlog[:20]]
    assert len(flushes) == 20
    assert [_read(service, t.id)[0].state for t in backlog[19:21]] == [
        TaskState.PLACED,
        TaskState.ADMITTED,
    ]
