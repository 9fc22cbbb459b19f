"""Scheduler replicas sharing one database: the evidence one replica records reaches the
others' engines exactly once (also after a restart and when commits land out of id order),
and a quarantine one replica takes is honoured by the others' placement."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import Session, select

import trust
from scheduler import store
from scheduler.app import create_app
from scheduler.models import Node, NodeStatus
from scheduler.placement import NodeView
from scheduler.service import Service
from scheduler.tables.trust import TrustEvidence, TrustQuarantine
from scheduler.trust_sync import TrustSync
from scheduler.trust_wiring import TrustLayer
from tests.unit.scheduler.helpers import add_node, add_tenant, admin, claim, report, submit


def failure(service: Any, node: str, eid: str) -> trust.Evidence:
    return trust.from_task_outcome(
        evidence_id=eid,
        node_id=node,
        outcome="failed",
        verified=False,
        observed_at=service.clock(),
        scheduler="scheduler",
    )


def register(service: Any, name: str, operator: str = "local") -> None:
    now = service.clock()
    node = Node(
        id=name,
        name=name,
        operator=operator,
        cpu_cores=4,
        memory_mb=4096,
        registered_at=now,
        last_heartbeat=now,
    )
    service.write_sync(lambda s: store.register_node(s, node))


def view(layer: TrustLayer, node: str) -> Any:
    return layer.view(NodeView(node, "local", "local", 4, 4096, (), 0, 0, 0, 0))


def score(layer: TrustLayer, node: str) -> float:
    return float(view(layer, node).score)


@pytest.fixture
def replicas(service: Any, clock: Any) -> Iterator[tuple[TrustLayer, TrustLayer]]:
    """Two scheduler replicas on the test's database, each with its own trust engine; no
    sync thread, so each test decides when a replica catches up."""
    other = Service(service.settings, clock=clock)
    try:
        yield TrustLayer.install(service), TrustLayer.install(other)
    finally:
        other.close()


def test_evidence_recorded_by_one_replica_reaches_the_other_once(service, replicas, clock):
    one, two = replicas
    register(service, "n1")
    for i in range(2):
        assert service.write_sync(lambda s, i=i: one.record(s, failure(service, "n1", f"a{i}")))[0]
    assert score(two, "n1") == pytest.approx(0.5)  # not seen yet
    first = two.sync.sync()
    assert (first.applied, first.skipped, first.refused) == (2, 0, 0)
    assert score(two, "n1") == pytest.approx(score(one, "n1"))
    assert two.sync.sync().applied == 0  # applied once, never again
    # the other way round: replica two's own evidence reaches replica one
    other = two.service
    assert other.write_sync(lambda s: two.record(s, failure(other, "n1", "b0")))[0]
    back = one.sync.sync()
    assert (back.applied, back.skipped) == (1, 2)  # its own two rows are skipped by id
    assert score(one, "n1") == pytest.approx(score(two, "n1"))
    assert two.sync.sync().skipped == 1  # and replica two skips its own row
    assert one.engine.intake_counts()["accepted"] == 3 == two.engine.intake_counts()["accepted"]
    assert one.engine.intake_counts()["replayed"] == 0 == two.engine.intake_counts()["replayed"]

    # a restarted replica rebuilds from the table and then applies nothing twice
    restarted = Service(service.settings, clock=clock)
    try:
        three = TrustLayer.install(restarted)
        assert three.restore().accepted == 3
        assert three.sync.sync().applied == 0
        assert score(three, "n1") == pytest.approx(score(one, "n1"))
    finally:
        restarted.close()


def test_evidence_committed_out_of_id_order_is_applied_when_it_lands(service, replicas):
    one, two = replicas
    register(service, "n1")
    assert service.write_sync(lambda s: one.record(s, failure(service, "n1", "a0")))[0]
    two.sync.sync()
    top = two.tail.cursor
    # a transaction took id top+1 and commits late; one that inserted after it is visible
    now = service.clock()

    def row(rid: int, eid: str) -> TrustEvidence:
        return TrustEvidence(
            id=rid,
            evidence_id=eid,
            node_id="n1",
            kind="trust.evidence.task_failed",
            observed_at=now,
            recorded_at=now,
            body={"source": "scheduler"},
        )

    service.write_sync(lambda s: s.add(row(top + 2, "late-second")))
    got = two.sync.sync()
    assert got.applied == 1 and top + 1 in two.tail.gaps and two.tail.cursor == top + 2
    service.write_sync(lambda s: s.add(row(top + 1, "late-first")))
    got = two.sync.sync()
    assert got.applied == 1 and not two.tail.gaps
    assert two.sync.sync().applied == 0
    assert two.engine.intake_counts()["accepted"] == 3


def test_a_quarantine_decided_across_replicas_is_taken_once(service, replicas):
    one, two = replicas
    other = two.service
    register(service, "n1")
    # three failures land on each replica: neither alone crosses the quarantine threshold
    for i in range(3):
        assert service.write_sync(lambda s, i=i: one.record(s, failure(service, "n1", f"a{i}")))[0]
        assert other.write_sync(lambda s, i=i: two.record(s, failure(other, "n1", f"b{i}")))[0]
    with service.read() as session:
        assert list(session.exec(select(TrustQuarantine))) == []
    got = one.sync.sync()  # replica one now sees six failures: it takes the quarantine
    assert got.applied == 3 and got.taken == ("n1",)
    got = two.sync.sync()  # replica two reaches the same decision: already taken, mirrored
    assert got.applied == 3 and got.taken == () and got.quarantined == ("n1",)
    with service.read() as session:
        rows = list(session.exec(select(TrustQuarantine)))
        node = session.get(Node, "n1")
    assert len(rows) == 1 and rows[0].node_id == "n1"
    assert node is not None and node.status == NodeStatus.CORDONED
    for layer in (one, two):
        assert view(layer, "n1").exclusion.startswith("quarantined by trust: verified-evidence")
    assert one.sync.sync().quarantined == ()  # replica one knew its own row already


def test_a_release_committed_while_a_pass_reads_is_not_undone(service, replicas):
    """A sync pass that read a quarantine row as active before this replica released the
    node must not put the quarantine back (placement would exclude a released node until
    the next pass)."""
    one, _ = replicas
    register(service, "n1")
    assert view(one, "n1").exclusion is None
    decision = trust.QuarantineDecision("n1", service.clock(), 0.1, 0.3, "ev-1", "score 0.10")  # type: ignore[attr-defined]

    def take(session: Session) -> None:  # as the layer takes one (no pass mirrored it yet)
        with one.lock:
            one._mutated(session)
            one._quarantine(session, decision)

    service.write_sync(take)
    assert view(one, "n1").exclusion.startswith("quarantined by trust")
    read_active = one.sync._active
    released: list[int] = []

    def read_then_release(session: Session) -> list[TrustQuarantine]:
        rows = read_active(session)  # the pass reads the row as active ...
        released.append(service.write_sync(lambda s: one.release(s, "n1", "admin:a")))
        return rows  # ... and the release commits before the pass mirrors what it read

    one.sync._active = read_then_release  # type: ignore[method-assign]
    got = one.sync.sync()
    assert released == [1] and [r.node_id for r in read_active_rows(service)] == []
    assert got.quarantined == () and view(one, "n1").exclusion is None
    one.sync._active = read_active  # type: ignore[method-assign]
    again = one.sync.sync()  # a fresh read: nothing active, nothing to undo
    assert again.quarantined == again.released == () and view(one, "n1").exclusion is None


def read_active_rows(service: Any) -> list[TrustQuarantine]:
    with service.read() as session:
        return TrustSync(service.trust)._active(session)


def test_a_quarantine_taken_by_one_replica_is_honoured_by_the_others_placement(api, service, clock):
    alice = add_tenant(api, service, "alice")
    bad = add_node(api, service, "bad", operator="acme", cpu_cores=8)
    for _ in range(5):
        submit(api, alice)
    for task in claim(api, bad):
        assert report(api, bad, task["id"], exit_code=137).status_code == 200
    add_node(api, service, "good", operator="globex")
    assert api.get("/v1/nodes/bad", headers=admin(service)).json()["status"] == "cordoned"

    other = Service(service.settings, clock=clock)
    two = TrustLayer.install(other)  # before the app: no thread, synced by hand below
    try:
        with TestClient(create_app(other)) as api2:
            assert two.sync.sync().quarantined == ()  # the restart already has it
            # the node re-registers through replica two: online again, still excluded
            add_node(api2, other, "bad", operator="acme")
            assert api2.get("/v1/nodes/bad", headers=admin(other)).json()["status"] == "online"
            for _ in range(3):
                assert submit(api2, alice)["node_id"] == "good"
            # replica one releases it; replica two places on it after its next pass
            released = api.post("/v1/nodes/bad/release", headers=admin(service))
            assert released.status_code == 200, released.text
            assert two.sync.sync().released == ("bad",)
            assert view(two, "bad").exclusion is None
            placed = {submit(api2, alice)["node_id"] for _ in range(6)}
            assert "bad" in placed
            # and a new quarantine by replica one reaches replica two's engine
            body = api2.get("/v1/nodes/bad/trust", headers=admin(other)).json()
            assert body["placement"]["eligible"]
            ev = failure(service, "bad", "incident-1")
            incident = trust.Evidence(
                "incident-1",
                trust.EvidenceKind.INCIDENT,
                "bad",
                ev.observed_at,
                "analyst",
                severity=1,
            )
            assert service.write_sync(lambda s: service.trust.record(s, incident)).quarantine
            got = two.sync.sync()
            assert got.applied == 1 and got.quarantined == ("bad",) and got.taken == ()
            assert view(two, "bad").exclusion.startswith("quarantined by trust")
    finally:
        other.close()


def test_replicas_catch_up_on_their_own(api, service, clock):
    """The app's sync thread (every trust_sync_interval_s) brings the other replica's
    evidence in without being asked."""
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1")
    other = Service(service.settings, clock=clock)
    try:
        with TestClient(create_app(other)) as api2:
            assert other.trust.sync is not None and other.trust.sync.loop.running
            task_id = submit(api, alice)["id"]
            claim(api, node)
            assert report(api, node, task_id, exit_code=137).status_code == 200
            want = api.get("/v1/nodes/n1/trust", headers=admin(service)).json()["score"]
            deadline = time.monotonic() + 10
            while True:
                got = api2.get("/v1/nodes/n1/trust", headers=admin(other)).json()["score"]
                if got == pytest.approx(want) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert got == pytest.approx(want) and want < 0.5
    finally:
        other.close()
    assert not other.trust.sync.loop.running  # close() stopped it


def test_an_item_another_replica_stored_is_refused_as_a_replay(service, replicas):
    one, two = replicas
    other = two.service
    register(service, "n1")
    ev = failure(service, "n1", "eve:1:2100498:x")
    assert service.write_sync(lambda s: one.record(s, ev)).accepted
    # replica two has not applied it yet; the same item delivered to it is still refused
    again = other.write_sync(lambda s: two.record(s, ev))
    assert again.reason == trust.IntakeReason.REPLAYED and two.refused == {"replayed": 1}
    assert two.sync.sync().applied == 1
    assert score(two, "n1") == pytest.approx(score(one, "n1"))
    # and the table itself holds one row per evidence id, whoever writes
    with pytest.raises(sa.exc.IntegrityError), Session(service.engine) as session:
        session.add(
            TrustEvidence(
                evidence_id=ev.evidence_id,
                node_id="n1",
                kind=ev.kind.value,
                observed_at=ev.observed_at,
                recorded_at=ev.observed_at,
            )
        )
        session.commit()


def test_a_pass_with_gaps_still_checks_releases_against_the_release_sequence(
    service, replicas, monkeypatch
):
    """Regression: the gap-expiry loop reused the name of the release sequence a pass
    remembers, so with a gap open the pass compared releases against a clock reading and
    could mirror a quarantine an analyst had just released."""
    _one, two = replicas
    assert two.sync is not None
    two.release_seq = 7
    two.tail.gaps[10_000_000] = time.monotonic()  # an id skipped by a transaction in flight
    seen: list[int] = []
    monkeypatch.setattr(
        two.sync, "_mirror", lambda session, active, tail, since: (seen.append(since), ([], []))[1]
    )
    two.sync.sync()
    assert seen == [7]
