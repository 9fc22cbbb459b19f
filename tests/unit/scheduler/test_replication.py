"""Adaptive verification by replication in the scheduler: which tasks are replicated, where
replicas run, how results are compared, and what the verdict does to trust — with fake node
agents that lie about their output digest."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from sqlmodel import col, select

from scheduler.models import Node, NodeStatus, Task, TaskEvent, TaskState
from scheduler.replication import Replication, ReplicationConfig
from scheduler.tables.replication import ReplicaCheck
from scheduler.tables.trust import TrustEvidence
from tests.unit.scheduler import attest_helpers
from tests.unit.scheduler.helpers import add_tenant, admin, claim, report, submit
from tests.unit.scheduler.replication_helpers import FakeAgent, drain, make_trusted


@pytest.fixture
def rep(api, service) -> Replication:
    """The app's replication, verifying every task (share 1.0, so no test depends on the
    hash of a random task id), with exploration on every task so newcomers get the work."""
    replication = service.replication
    assert isinstance(replication, Replication)
    replication.config = ReplicationConfig(min_share=1.0, max_share=1.0, max_replicas=2)
    service.trust.exploration_share = 1.0
    return replication


def score(api: Any, service: Any, node: str) -> float:
    resp = api.get(f"/v1/nodes/{node}/trust", headers=admin(service))
    assert resp.status_code == 200, resp.text
    return float(resp.json()["score"])


def status(service: Any, node: str) -> NodeStatus:
    with service.read() as session:
        row = session.get(Node, node)
        assert row is not None
        return row.status


def kinds(service: Any, node: str) -> list[str]:
    with service.read() as session:
        rows = session.exec(select(TrustEvidence).where(TrustEvidence.node_id == node))
        return [r.kind for r in rows]


def checks(service: Any) -> list[ReplicaCheck]:
    with service.read() as session:
        return list(session.exec(select(ReplicaCheck)))


def replicas(service: Any) -> list[Task]:
    with service.read() as session:
        return list(session.exec(select(Task).where(col(Task.replica_of).is_not(None))))


def test_a_node_lying_about_its_output_is_caught_and_honest_nodes_are_not(api, service, rep):
    alice = add_tenant(api, service, "alice")
    h1 = FakeAgent(api, service, "h1", operator="globex", cpu_cores=16)
    h2 = FakeAgent(api, service, "h2", operator="initech", cpu_cores=16)
    make_trusted(service, "h1")
    make_trusted(service, "h2")
    liar = FakeAgent(api, service, "liar", operator="acme", lie=True, cpu_cores=16)
    newbie = FakeAgent(api, service, "newbie", operator="umbrella", cpu_cores=16)
    before = {n: score(api, service, n) for n in ("h1", "h2", "liar", "newbie")}
    tasks = [submit(api, alice, ["echo", str(i)]) for i in range(6)]
    # exploration sends the tenant's work to the two newcomers
    assert {t["node_id"] for t in tasks} == {"liar", "newbie"}
    drain([h1, h2, liar, newbie])

    # the liar: every replicated result of it disagreed with two trusted nodes -> wrong-result
    # evidence, quarantine, trust collapsed
    assert status(service, "liar") == NodeStatus.CORDONED
    assert score(api, service, "liar") < 0.1 < before["liar"]
    assert "trust.evidence.task_wrong_result" in kinds(service, "liar")
    by_node: dict[str, list[ReplicaCheck]] = {}
    for check in checks(service):
        by_node.setdefault(check.node_id, []).append(check)
    assert set(by_node) == {"liar", "newbie"}
    for check in by_node["liar"]:
        assert check.status == "disagreed" and check.convicted == ["liar"]
        assert sorted(check.verified) == ["h1", "h2"] and len(check.replicas) == 2
    # the honest newcomer: every result matched a trusted node's -> verified, trust up
    for check in by_node["newbie"]:
        assert check.status == "agreed" and check.verified == ["newbie"] and not check.convicted
    assert status(service, "newbie") == NodeStatus.ONLINE
    assert score(api, service, "newbie") > before["newbie"]
    assert "trust.evidence.task_verified" in kinds(service, "newbie")
    assert "trust.evidence.task_wrong_result" not in kinds(service, "newbie")
    # the trusted hosts ran the replicas and lost nothing
    for host in ("h1", "h2"):
        assert status(service, host) == NodeStatus.ONLINE
        assert "trust.evidence.task_wrong_result" not in kinds(service, host)
        assert score(api, service, host) >= before[host]
    assert {t.node_id for t in replicas(service)} <= {"h1", "h2"}

    # the tenant sees its six tasks only; an administrator sees the replicas, marked
    listed = api.get("/v1/tasks", headers=alice).json()
    assert sorted(t["id"] for t in listed) == sorted(t["id"] for t in tasks)
    assert all(t["replica_of"] is None for t in listed)
    everything = api.get("/v1/tasks", params={"limit": 100}, headers=admin(service)).json()
    marked = [t for t in everything if t["replica_of"] is not None]
    assert len(marked) == len(replicas(service)) == sum(len(c.replicas) for c in checks(service))
    assert {t["replica_of"] for t in marked} <= {t["id"] for t in tasks}
    # the verdict is in the original task's history
    liar_task = by_node["liar"][0].original_task_id
    shown = api.get(f"/v1/tasks/{liar_task}", headers=alice).json()
    assert any(e["reason"].startswith("verification disagreed: liar") for e in shown["events"])


def test_the_engine_decides_the_share_and_the_cap_bounds_it(api, service):
    replication: Replication = service.replication
    replication.config = ReplicationConfig(min_share=0.05, max_share=0.3, max_replicas=2)
    service.trust.exploration_share = 1.0
    alice = add_tenant(api, service, "alice")
    big = {"cpu_cores": 64, "memory_mb": 65536}
    FakeAgent(api, service, "host", operator="globex", **big)
    make_trusted(service, "host")
    newbie = FakeAgent(api, service, "newbie", operator="acme", attested=False, **big)
    assert replication.share("newbie") == pytest.approx(0.3)  # a newcomer: the cap
    # the attestation gate gives it work only once attested, and its first (affirming)
    # result is evidence too: uncertainty 2/3 (prior weight 2), a smaller share
    attest_helpers.attest(api, service, newbie.headers, "newbie")
    assert replication.share("newbie") == pytest.approx(0.05 + 0.25 * (2 / 3) ** 2, rel=1e-4)
    assert 0.05 <= replication.share("host") < 0.07  # a well-known node: near the floor
    # exploration ranks the newcomer first while its load is low (bonus 2/3 x uncertainty:
    # the idle trusted host outranks it once 27 tasks load its 64 cores)
    tasks = [submit(api, alice, ["echo", str(i)]) for i in range(25)]
    assert {t["node_id"] for t in tasks} == {"newbie"}
    shares = []
    replicated = 0
    for _ in tasks:  # one result at a time, so each decision can be checked
        (task,) = claim(api, newbie.headers, max_tasks=1)
        resp = report(api, newbie.headers, task["id"])
        assert resp.status_code == 200, resp.text
        share = replication.share("newbie")  # what the hook saw (after this task's outcome)
        shares.append(share)
        with service.read() as session:
            check = session.get(ReplicaCheck, task["id"])
        assert (check is not None) == Replication.chosen(task["id"], share)
        if check is not None:
            replicated += 1
            assert check.share == pytest.approx(share) and check.share <= 0.3
    # more evidence, less uncertainty, a smaller share; never above the cap
    assert shares == sorted(shares, reverse=True) and shares[0] < 0.3 and shares[-1] >= 0.05
    assert replicated == len(replicas(service)) == len(checks(service))


def test_a_lying_replica_host_is_outvoted_by_the_tie_breaker(api, service, rep):
    alice = add_tenant(api, service, "alice")
    h1 = FakeAgent(api, service, "h1", operator="globex")
    make_trusted(service, "h1")
    task = submit(api, alice, ["sha256sum", "input"])
    assert task["node_id"] == "h1"
    h2 = FakeAgent(api, service, "h2", operator="initech", lie=True)
    h3 = FakeAgent(api, service, "h3", operator="umbrella")
    make_trusted(service, "h2")
    make_trusted(service, "h3")

    assert h1.step() == 1  # the original; its replica goes to h2 (equal trust and load: by id)
    (first,) = replicas(service)
    assert first.node_id == "h2" and first.replica_of == task["id"]
    assert h2.step() == 1  # h2 lies: two results disagree between trusted nodes -> tie-breaker
    (check,) = checks(service)
    assert check.status == "pending" and len(check.replicas) == 2
    assert check.reason == "2 distinct results: added a replica"
    # the first replica's result is in: handing it in again is refused and counted
    with service.read() as session:
        again = session.get(Task, first.id)
    assert again is not None
    assert service.write_sync(lambda s: rep.verify(s, again)) == "replayed"
    assert rep.counts["replayed"] == 1
    assert h3.step() == 1
    (check,) = checks(service)
    assert check.status == "disagreed" and check.convicted == ["h2"]
    assert sorted(check.verified) == ["h1", "h3"]
    assert status(service, "h2") == NodeStatus.CORDONED
    assert "trust.evidence.task_wrong_result" in kinds(service, "h2")
    for honest in ("h1", "h3"):
        assert status(service, honest) == NodeStatus.ONLINE
        assert "trust.evidence.task_wrong_result" not in kinds(service, honest)
        assert "trust.evidence.task_verified" in kinds(service, honest)


@pytest.mark.parametrize(
    ("attestations", "reason"),
    [
        (10, "no trusted majority, and no replica left to add"),  # equal trust: a tie
        (20, "a trusted node is convicted only by two agreeing results"),  # h1 outweighs h2
    ],
)
def test_two_trusted_nodes_that_disagree_without_a_tie_breaker_penalise_nobody(
    api, service, rep, attestations, reason
):
    rep.config = ReplicationConfig(min_share=1.0, max_share=1.0, max_replicas=1)
    alice = add_tenant(api, service, "alice")
    h1 = FakeAgent(api, service, "h1", operator="globex")
    make_trusted(service, "h1", attestations)
    task = submit(api, alice, ["sha256sum", "input"])
    h2 = FakeAgent(api, service, "h2", operator="initech", lie=True)
    make_trusted(service, "h2")
    before = {n: score(api, service, n) for n in ("h1", "h2")}
    drain([h1, h2])
    (check,) = checks(service)
    assert check.original_task_id == task["id"] and check.status == "unresolved"
    assert check.reason == reason
    assert check.verified == [] and check.convicted == []
    for node in ("h1", "h2"):
        assert status(service, node) == NodeStatus.ONLINE
        assert not {"trust.evidence.task_wrong_result", "trust.evidence.task_verified"} & set(
            kinds(service, node)
        )
        assert score(api, service, node) >= before[node] - 1e-9


def test_no_replica_without_an_independent_trusted_node(api, service, rep):
    alice = add_tenant(api, service, "alice")
    a = FakeAgent(api, service, "a", operator="acme")
    b = FakeAgent(api, service, "b", operator="globex")
    for i in range(4):
        submit(api, alice, ["echo", str(i)])
    drain([a, b])  # two newcomers: nobody is high-trust, nothing can verify them
    assert replicas(service) == [] and checks(service) == []
    assert rep.counts["no_host"] == 4


def test_no_replica_when_no_trusted_node_has_the_accelerator(api, service, rep):
    alice = add_tenant(api, service, "alice")
    FakeAgent(api, service, "cpu-host", operator="globex")
    make_trusted(service, "cpu-host")
    gpu = FakeAgent(
        api, service, "gpu-box", operator="acme", accelerators=[{"kind": "gpu", "count": 1}]
    )
    assert submit(api, alice, ["nvidia-smi"], gpu=1)["node_id"] == "gpu-box"
    cpu_task = submit(api, alice, ["echo", "x"])
    assert gpu.step() == 1 + (cpu_task["node_id"] == "gpu-box")
    # the GPU task cannot be re-run on the trusted CPU-only host: no replica waits forever
    assert rep.counts["no_host"] == 1
    assert all(c.original_task_id == cpu_task["id"] for c in checks(service))


def test_bad_replica_reports_are_refused_and_counted(api, service, rep):
    alice = add_tenant(api, service, "alice")
    host = FakeAgent(api, service, "host", operator="globex")
    make_trusted(service, "host")
    newbie = FakeAgent(api, service, "newbie", operator="acme")
    task = submit(api, alice, ["echo", "x"])
    drain([host, newbie])
    (check,) = checks(service)
    assert check.status == "agreed"
    (replica,) = replicas(service)
    with service.read() as session:
        evidence_before = len(list(session.exec(select(TrustEvidence))))
        original = session.get(Task, task["id"])
        stored = session.get(Task, replica.id)
    assert original is not None and stored is not None
    # 1. the host reports the replica a second time: the API refuses it, nothing changes
    resp = report(api, host.headers, replica.id)
    assert resp.status_code == 409
    assert resp.headers["content-type"].startswith("application/problem+json")
    # 2. the same replica handed to verification again: the check is decided already
    assert service.write_sync(lambda s: rep.verify(s, stored)) == "already_decided"
    # 3. a task that is not a replica handed to verification
    assert service.write_sync(lambda s: rep.verify(s, original)) == "not_a_replica"
    # 4. a task that claims to be a replica of the original but is none of its replicas
    forged = original.model_copy(update={"id": "f" * 32, "replica_of": original.id})
    assert service.write_sync(lambda s: rep.verify(s, forged)) == "not_a_replica"
    assert rep.counts["already_decided"] == 1 and rep.counts["not_a_replica"] == 2
    stats = api.get("/v1/trust/stats", headers=admin(service))
    assert stats.status_code == 200, stats.text
    counts = stats.json()["replication"]["counts"]
    assert counts["agreed"] == 1 and counts["not_a_replica"] == 2
    assert api.get("/v1/trust/stats", headers=alice).status_code == 403
    with service.read() as session:
        assert len(list(session.exec(select(TrustEvidence)))) == evidence_before
        assert session.get(ReplicaCheck, task["id"]) == check


def test_a_replica_nobody_trusted_can_take_is_abandoned(api, service, rep, clock):
    service.trust.sync.periodic.remove(rep.periodic_sweep)  # this test sweeps by hand
    alice = add_tenant(api, service, "alice")
    FakeAgent(api, service, "host", operator="globex")
    make_trusted(service, "host")
    newbie = FakeAgent(api, service, "newbie", operator="acme")
    submit(api, alice, ["echo", "x"])
    assert newbie.step() == 1
    (replica,) = replicas(service)
    assert replica.node_id == "host" and replica.state == TaskState.PLACED
    # the host goes silent: its replica is requeued and no other trusted node can take it
    clock.advance(service.settings.heartbeat_timeout_s + 1)
    api.post("/v1/agent/heartbeat", json={"running": []}, headers=newbie.headers)
    from scheduler import store

    service.write_sync(
        lambda s: store.expire_nodes(s, clock(), service.settings.heartbeat_timeout_s)
    )
    with service.read() as session:
        waiting = session.get(Task, replica.id)
    assert waiting is not None and waiting.state == TaskState.ADMITTED
    assert rep.sweep() == 0  # not waited long enough
    clock.advance(rep.config.abandon_after_s + 1)
    assert rep.sweep() == 1
    (check,) = checks(service)
    assert check.status == "abandoned" and check.verified == []
    with service.read() as session:
        cancelled = session.get(Task, replica.id)
        assert cancelled is not None and cancelled.state == TaskState.CANCELLED
        events = session.exec(select(TaskEvent).where(TaskEvent.task_id == replica.id))
        assert any("abandoned" in e.reason for e in events)
    assert rep.sweep() == 0


def test_replication_is_on_with_the_layers_and_can_be_switched_off(tmp_path, database_url, clock):
    from fastapi.testclient import TestClient

    from scheduler.app import create_app
    from scheduler.service import Service
    from scheduler.settings import Settings

    assert Settings().replication is True
    with pytest.raises(ValidationError, match="replication_min_share must be <="):
        Settings(replication_min_share=0.6, replication_max_share=0.5)
    with pytest.raises(ValidationError, match="replication_max_share"):
        Settings(replication_max_share=1.5)
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, replication=False, claim_wait_s=0
    )
    svc = Service(settings, clock=clock)
    try:
        with TestClient(create_app(svc)) as api:
            assert getattr(svc, "trust", None) is not None
            assert getattr(svc, "replication", None) is None
            svc.trust.exploration_share = 1.0
            alice = add_tenant(api, svc, "alice")
            host = FakeAgent(api, svc, "host", operator="globex")
            make_trusted(svc, "host")
            newbie = FakeAgent(api, svc, "newbie", operator="acme")
            for i in range(6):
                submit(api, alice, ["echo", str(i)])
            drain([host, newbie])
            assert replicas(svc) == [] and checks(svc) == []
            assert len(newbie.ran) == 4 and len(host.ran) == 2  # newbie: 4 CPUs
    finally:
        svc.close()


def test_a_replica_made_by_one_scheduler_replica_is_judged_by_another(api, service, rep, clock):
    """Agents may talk to any scheduler replica: the check lives in the shared database."""
    import copy

    from fastapi.testclient import TestClient

    from scheduler.app import create_app
    from scheduler.service import Service
    from scheduler.store import task_request

    alice = add_tenant(api, service, "alice")
    host = FakeAgent(api, service, "host", operator="globex")
    make_trusted(service, "host")
    liar = FakeAgent(api, service, "liar", operator="acme", lie=True)
    task = submit(api, alice, ["echo", "x"])
    assert task["node_id"] == "liar" and liar.step() == 1  # replica made by replica one
    (replica,) = replicas(service)
    other = Service(service.settings, clock=clock)
    try:
        with TestClient(create_app(other)) as api2:
            two: Replication = other.replication
            two.config = rep.config
            # replica two knows where the replica may run from the check alone
            found = two.constraint(task_request(replica))
            assert found.excluded == frozenset({"liar"}) and found.operators == {"acme"}
            via_two = copy.copy(host)
            via_two.api = api2
            assert via_two.step() == 1  # the host hands the replica's result to replica two
            (check,) = checks(service)
            # one trusted host and no tie-breaker left: the untrusted liar is outvoted
            assert check.status == "disagreed" and check.convicted == ["liar"]
            assert two.counts["disagreed"] == 1 and "disagreed" not in rep.counts
            assert status(service, "liar") == NodeStatus.CORDONED
            service.trust.sync.sync()  # replica one follows (if its thread has not yet)
            body = api.get("/v1/nodes/liar/trust", headers=admin(service)).json()
            assert body["placement"]["reason"].startswith("quarantined by trust")
    finally:
        other.close()
