"""Bad evidence on the scheduler's path (issue 6, "Bad input"): about unknown nodes, from
unauthenticated sources, with future or stale timestamps, or replayed — each refused, counted
by reason, never stored and never moving a score. (Replays across scheduler replicas and
after a restart: test_trust_sync.py and test_trust_wiring.py; the replication path:
test_replication.py.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session, select

import trust
from scheduler import store
from scheduler.db import commit
from scheduler.models import Node
from scheduler.tables.trust import TrustEvidence
from scheduler.trust_wiring import TrustLayer


@pytest.fixture
def layer(service: Any) -> TrustLayer:
    now = service.clock()
    node = Node(
        id="n1", name="n1", cpu_cores=4, memory_mb=4096, registered_at=now, last_heartbeat=now
    )
    service.write_sync(lambda s: store.register_node(s, node))
    return TrustLayer.install(service)  # registers n1 in the engine


def failure(node: str, observed_at: float, eid: str = "task:t1:0") -> trust.Evidence:
    return trust.from_task_outcome(
        evidence_id=eid,
        node_id=node,
        outcome="failed",
        verified=False,
        observed_at=observed_at,
        scheduler="scheduler",
    )


def stored(service: Any) -> list[str]:
    with service.read() as session:
        return [r.evidence_id for r in session.exec(select(TrustEvidence))]


CASES: list[tuple[str, Callable[[float], trust.Evidence], bool, trust.IntakeReason]] = [
    ("unknown node", lambda now: failure("ghost", now), True, trust.IntakeReason.UNKNOWN_NODE),
    ("unauthenticated", lambda now: failure("n1", now), False, trust.IntakeReason.UNAUTHENTICATED),
    (
        "future timestamp",
        lambda now: failure("n1", now + 3600),
        True,
        trust.IntakeReason.FUTURE_TIMESTAMP,
    ),
    ("stale", lambda now: failure("n1", now - 8 * 86400), True, trust.IntakeReason.STALE),
]


@pytest.mark.parametrize(
    ("case", "make", "authenticated", "reason"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_evidence_is_refused_counted_and_not_stored(
    service, layer, case, make, authenticated, reason
):
    before = layer.engine.opinion("n1").expected
    ev = make(service.clock())
    result = service.write_sync(lambda s: layer.record(s, ev, authenticated=authenticated))
    assert not result.accepted and result.reason == reason and result.quarantine is None
    assert layer.refused == {reason.value: 1}
    assert stored(service) == []
    assert layer.engine.opinion("n1").expected == pytest.approx(before)
    # refused, not remembered: the same id arriving properly later is accepted once
    good = failure("n1", service.clock())
    assert service.write_sync(lambda s: layer.record(s, good)).accepted
    assert stored(service) == ["task:t1:0"]


def test_a_replayed_item_is_refused_and_counted_once_per_delivery(service, layer):
    ev = failure("n1", service.clock())
    assert service.write_sync(lambda s: layer.record(s, ev)).accepted
    score = layer.engine.opinion("n1").expected
    for _ in range(3):
        again = service.write_sync(lambda s: layer.record(s, ev))
        assert again.reason == trust.IntakeReason.REPLAYED
    assert layer.refused == {"replayed": 3} and layer.replayed_in_store == 3
    assert stored(service) == ["task:t1:0"]
    assert layer.engine.opinion("n1").expected == pytest.approx(score)
    # the same id in one transaction twice: the engine refuses the second before any commit
    twice = failure("n1", service.clock(), eid="task:t2:0")

    def both(session: Any) -> tuple[bool, trust.IntakeReason]:
        layer.record(session, twice)
        second = layer.record(session, twice)
        return second.accepted, second.reason

    assert service.write_sync(both) == (False, trust.IntakeReason.REPLAYED)
    assert sorted(stored(service)) == ["task:t1:0", "task:t2:0"]


def test_an_id_queued_in_the_transaction_is_a_replay_even_after_a_rebuild(service, layer):
    """The engine remembers ids only until it is rebuilt (a sync failure marks it stale
    while a batch runs); the transaction's own queue still refuses the second item, so the
    batch commits one row instead of failing on the unique index."""
    ev = failure("n1", service.clock())

    def replayed_across_a_rebuild(session: Any) -> tuple[bool, trust.IntakeReason]:
        assert layer.record(session, ev).accepted
        layer.restore()  # rebuilt from the committed rows: the engine forgot the item
        assert not layer.engine.has_seen(ev.evidence_id)
        second = layer.record(session, ev)
        return second.accepted, second.reason

    assert service.write_sync(replayed_across_a_rebuild) == (False, trust.IntakeReason.REPLAYED)
    assert stored(service) == ["task:t1:0"]
    assert layer.refused == {"replayed": 1}


def test_evidence_of_a_rolled_back_transaction_is_not_written_by_the_next(service, layer):
    rolled_back = failure("n1", service.clock(), eid="task:gone:0")
    kept = failure("n1", service.clock(), eid="task:kept:0")
    with Session(service.engine, expire_on_commit=False) as session:
        assert layer.record(session, rolled_back).accepted
        session.rollback()
        assert layer.record(session, kept).accepted
        for hook in commit(session):
            hook()
    assert stored(service) == ["task:kept:0"]
