"""The seams later layers plug into: finished-task hooks and commit hooks."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from scheduler.db import after_commit, before_commit
from scheduler.models import Tenant
from tests.unit.scheduler.helpers import add_node, add_tenant, claim, report, submit


def test_finished_hook_runs_in_the_reporting_transaction(api, service):
    seen: list[tuple[str, str]] = []

    def hook(session: Session, task) -> None:
        seen.append((task.id, task.state.value))
        session.add(Tenant(name=f"from-hook-{len(seen)}", created_at=0))  # same transaction

    service.finished_hooks.append(hook)
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1")
    task = submit(api, alice)
    claim(api, node)
    assert report(api, node, task["id"]).status_code == 200
    assert seen == [(task["id"], "succeeded")]
    with service.read() as session:
        assert session.get(Tenant, "from-hook-1") is not None
    # a refused report runs no hook
    assert report(api, node, task["id"]).status_code == 409
    assert len(seen) == 1


def test_commit_hooks_run_once_per_transaction_and_after_only_on_success(service):
    calls: list[str] = []

    def before(session: Session) -> None:
        calls.append("before")

    def after() -> None:
        calls.append("after")

    def op(session: Session) -> None:
        for _ in range(3):  # registered three times, runs once
            before_commit(session, before)
            after_commit(session, after)

    service.write_sync(op)
    assert calls == ["before", "after"]

    def failing(session: Session) -> None:
        after_commit(session, after)
        raise ValueError("refused")

    calls.clear()
    with pytest.raises(ValueError, match="refused"):
        service.write_sync(failing)
    assert calls == []


def test_a_cancelled_caller_does_not_stop_the_committer(service):
    """A caller that gave up (shutdown, client gone) must not kill the writer thread."""
    import threading

    gate = threading.Event()

    def slow(session: Session) -> str:
        gate.wait(5)
        return "slow"

    first = service.committer.submit(slow)
    second = service.committer.submit(lambda s: "cancelled before it ran")
    assert second.cancel()
    gate.set()
    assert first.result(10) == "slow"
    assert service.write_sync(lambda s: "still writing") == "still writing"
