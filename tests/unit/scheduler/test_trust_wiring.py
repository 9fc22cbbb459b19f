"""The trust layer in the scheduler: evidence from finished tasks, placement by trust,
quarantine (cordon + requeue), release, restart, and the trust routes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session, col, select

import trust
from scheduler.models import Node, NodeStatus, Task, TaskEvent, TaskState
from scheduler.tables.trust import TrustEvidence, TrustQuarantine
from scheduler.trust_wiring import TrustLayer, evidence_task_id
from tests.conftest import bearer
from tests.unit.scheduler.helpers import add_node, add_tenant, admin, claim, report, submit


@pytest.fixture
def service(tmp_path, database_url, clock):
    """These tests pin the trust layer's own arithmetic (scores from task outcomes), so the
    attestation gate is off and nodes do not attest here: attestation results as trust
    evidence are covered in test_attestation.py."""
    from scheduler.service import Service
    from scheduler.settings import Settings

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        heartbeat_timeout_s=10,
        claim_wait_s=0.2,
        max_body_bytes=16 * 1024,
        attestation_gate=False,
    )
    svc = Service(settings, clock=clock)
    yield svc
    svc.close()


@pytest.fixture
def layer(service) -> TrustLayer:
    """The service's trust layer (installed here unless the app already installed one)."""
    installed = getattr(service, "trust", None)
    return installed if isinstance(installed, TrustLayer) else TrustLayer.install(service)


def trust_of(api: Any, service: Any, node: str, **params: Any) -> dict[str, Any]:
    resp = api.get(f"/v1/nodes/{node}/trust", params=params, headers=admin(service))
    assert resp.status_code == 200, resp.text
    return resp.json()


def node_status(service: Any, node: str) -> NodeStatus:
    with service.read() as session:
        row = session.get(Node, node)
        assert row is not None
        return row.status


def tasks_on(service: Any, node: str) -> list[Task]:
    with service.read() as session:
        return list(
            session.exec(
                select(Task).where(Task.node_id == node, col(Task.state).in_(["placed", "running"]))
            )
        )


def test_a_new_cluster_places_every_task(api, service, layer):
    alice = add_tenant(api, service, "alice")
    for name in ("n1", "n2", "n3"):
        add_node(api, service, name, cpu_cores=4)
    tasks = [submit(api, alice) for _ in range(9)]
    assert all(t["state"] == "placed" for t in tasks)
    # every node is a newcomer with the same score: load spreads the work over all three
    assert {t["node_id"] for t in tasks} == {"n1", "n2", "n3"}
    body = trust_of(api, service, "n1")
    assert body["score"] == pytest.approx(0.5) and body["uncertainty"] == pytest.approx(1.0)
    assert body["placement"]["eligible"] and not body["trusted"]


def test_failing_node_is_quarantined_and_its_work_goes_elsewhere(api, service, layer):
    alice = add_tenant(api, service, "alice")
    bad = add_node(api, service, "bad", cpu_cores=8, operator="acme")
    for _ in range(8):
        assert submit(api, alice)["node_id"] == "bad"
    good = add_node(api, service, "good", cpu_cores=4, operator="globex")
    scores = [trust_of(api, service, "bad")["score"]]
    failures = 0
    while node_status(service, "bad") != NodeStatus.CORDONED:
        assert failures < 10, "the failing node was never quarantined"
        held = claim(api, bad, max_tasks=1)
        if not held:
            submit(api, alice)
            continue
        assert report(api, bad, held[0]["id"], exit_code=137).status_code == 200
        failures += 1
        scores.append(trust_of(api, service, "bad")["score"])
    assert failures == 5  # five unverified failures cross the quarantine threshold
    assert len(scores) == 6
    assert scores == sorted(scores, reverse=True) and scores[-1] < 0.35 < scores[0]
    # nothing is left on the quarantined node: its placed work was requeued and moved
    assert tasks_on(service, "bad") == []
    with service.read() as session:
        moved = list(
            session.exec(select(TaskEvent).where(col(TaskEvent.reason).contains("quarantined")))
        )
        assert moved and all("quarantined by trust" in e.reason for e in moved)
        for event in moved:
            task = session.get(Task, event.task_id)
            assert task is not None and task.node_id != "bad"
            assert task.state in (TaskState.PLACED, TaskState.ADMITTED)
        quarantine = session.exec(select(TrustQuarantine)).one()
        assert quarantine.node_id == "bad" and quarantine.requeued == len(moved)
    body = trust_of(api, service, "bad", explain="true")
    assert body["status"] == "cordoned" and not body["placement"]["eligible"]
    assert body["placement"]["reason"].startswith("quarantined by trust: verified-evidence score")
    assert "trust.gate.quarantined" in [g["code"] for g in body["gates"]]
    assert body["quarantine"]["evidence_id"].startswith("task:")
    # the good node keeps getting work, and a re-registration does not bypass the quarantine
    add_node(api, service, "bad", cpu_cores=8, operator="acme")
    assert node_status(service, "bad") == NodeStatus.ONLINE
    for _ in range(3):
        for task in claim(api, good):
            assert report(api, good, task["id"]).status_code == 200
        fresh = submit(api, alice)
        assert fresh["node_id"] == "good"
    assert trust_of(api, service, "good")["score"] > 0.5


def test_succeeding_node_gains_trust_and_keeps_getting_work(api, service, layer):
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1", cpu_cores=2)
    before = trust_of(api, service, "n1")
    for _ in range(12):
        task = submit(api, alice)
        assert task["node_id"] == "n1"
        (held,) = claim(api, node)
        assert report(api, node, held["id"]).status_code == 200
    after = trust_of(api, service, "n1")
    assert after["score"] > before["score"] and after["uncertainty"] < before["uncertainty"]
    assert after["top_evidence"][0]["kind"] == "trust.evidence.task_succeeded"
    assert after["gates"] == [
        {"code": "trust.gate.attestation_missing", "detail": "no attestation result"}
    ]
    assert after["placement"]["eligible"]  # attestation is not required until it is fed


def test_known_good_node_wins_and_a_newcomer_still_gets_exploration_tasks(api, service, layer):
    layer.exploration_share = 0.3
    alice = add_tenant(api, service, "alice")
    old = add_node(api, service, "old", cpu_cores=128)
    for _ in range(20):
        submit(api, alice)
        (held,) = claim(api, old)
        assert report(api, old, held["id"]).status_code == 200
    add_node(api, service, "new", cpu_cores=128)
    placed: dict[bool, list[str]] = {True: [], False: []}
    while len(placed[True]) < 2 or len(placed[False]) < 2:
        task = submit(api, alice)
        placed[layer.exploration_task(task["id"])].append(task["node_id"])
        assert sum(map(len, placed.values())) < 60
    # the better-known node takes ordinary work; exploration tasks probe the newcomer
    assert set(placed[False]) == {"old"} and set(placed[True]) == {"new"}


def test_hook_dedups_a_replayed_task_outcome(api, service, layer):
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1")
    task_id = submit(api, alice)["id"]
    claim(api, node)
    assert report(api, node, task_id, exit_code=137).status_code == 200
    score = trust_of(api, service, "n1")["score"]
    with service.read() as session:
        task = session.get(Task, task_id)
    assert task is not None
    # the same finished task reported again (the API refuses this anyway): counted once
    service.write_sync(lambda s: layer.on_task_finished(s, task))
    assert layer.replayed_in_store == 1
    assert trust_of(api, service, "n1")["score"] == pytest.approx(score)
    with service.read() as session:
        rows = list(session.exec(select(TrustEvidence)))
    assert [r.evidence_id for r in rows] == [evidence_task_id(task)] == [f"task:{task_id}:0"]
    assert rows[0].kind == "trust.evidence.task_failed"
    # the engine refuses it too when the store is not consulted (e.g. another replica wrote it)
    ev = trust.from_task_outcome(
        evidence_id=f"task:{task_id}:0",
        node_id="n1",
        outcome="failed",
        verified=False,
        observed_at=service.clock(),
        scheduler="scheduler",
    )
    with layer.lock:
        assert layer.engine.ingest(ev, authenticated=True).reason == trust.IntakeReason.REPLAYED
    # a later attempt of the same task is new evidence
    task.attempt = 1
    service.write_sync(lambda s: layer.on_task_finished(s, task))
    with service.read() as session:
        assert len(list(session.exec(select(TrustEvidence)))) == 2


def test_timed_out_task_is_timeout_evidence(api, service, layer):
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1")
    task_id = submit(api, alice)["id"]
    claim(api, node)
    body = {
        "results": [
            {
                "task_id": task_id,
                "exit_code": 124,
                "output_digest": "sha256:" + "0" * 64,
                "error": "timed out after 1 s",
            }
        ]
    }
    assert api.post("/v1/agent/report", json=body, headers=node).status_code == 200
    with service.read() as session:
        row = session.exec(
            select(TrustEvidence).where(TrustEvidence.evidence_id == f"task:{task_id}:0")
        ).first()
    assert row is not None and row.kind == "trust.evidence.task_timeout"


def test_rolled_back_evidence_is_not_kept_by_the_engine(api, service, layer):
    add_node(api, service, "n1")
    ev = trust.from_task_outcome(
        evidence_id="task:x:0",
        node_id="n1",
        outcome="failed",
        verified=False,
        observed_at=service.clock(),
        scheduler="scheduler",
    )

    def failing(session: Session) -> None:
        assert layer.record(session, ev).accepted
        raise ValueError("refused after the evidence was taken")

    rebuilds = layer.rebuilds
    with pytest.raises(ValueError, match="refused after"):
        service.write_sync(failing)
    assert trust_of(api, service, "n1")["score"] == pytest.approx(0.5)
    assert layer.rebuilds > rebuilds  # the committer runs a failed operation twice
    # the same evidence, now in a transaction that commits, is accepted (not a replay)
    assert service.write_sync(lambda s: layer.record(s, ev)).accepted
    assert trust_of(api, service, "n1")["score"] < 0.5


def test_a_batch_rolled_back_by_another_operation_counts_the_evidence_once(api, service, layer):
    import threading

    add_node(api, service, "n1")
    ev = trust.from_task_outcome(
        evidence_id="task:y:0",
        node_id="n1",
        outcome="failed",
        verified=False,
        observed_at=service.clock(),
        scheduler="scheduler",
    )
    gate = threading.Event()
    rebuilds = layer.rebuilds
    blocker = service.committer.submit(lambda s: gate.wait(5))
    taken = service.committer.submit(lambda s: layer.record(s, ev).accepted)

    def refused(session: Session) -> None:
        raise ValueError("another writer's operation fails")

    other = service.committer.submit(refused)
    gate.set()  # the two queued operations now run in one batch, which rolls back
    assert blocker.result(10) and taken.result(10) is True
    with pytest.raises(ValueError):
        other.result(10)
    assert layer.rebuilds == rebuilds + 1  # the rolled-back batch left the engine stale
    assert trust_of(api, service, "n1")["score"] == pytest.approx(1 / 3)  # one failure
    with service.read() as session:
        assert [r.evidence_id for r in session.exec(select(TrustEvidence))] == ["task:y:0"]


def test_restart_restores_scores_and_quarantines(api, service, layer, clock):
    from scheduler.service import Service

    alice = add_tenant(api, service, "alice")
    bad = add_node(api, service, "bad", cpu_cores=8, operator="acme")
    fail = ok = 0
    for _ in range(5):
        submit(api, alice)
    for task in claim(api, bad):
        assert report(api, bad, task["id"], exit_code=137).status_code == 200
        fail += 1
    good = add_node(api, service, "good", cpu_cores=8, operator="globex")
    for _ in range(6):
        submit(api, alice)
    for task in claim(api, good):
        assert report(api, good, task["id"]).status_code == 200
        ok += 1
    assert (ok, fail) == (6, 5)
    before = {n: trust_of(api, service, n) for n in ("good", "bad")}
    assert before["bad"]["status"] == "cordoned"

    restarted = Service(service.settings, clock=clock)
    try:
        again = TrustLayer.install(restarted)
        summary = again.restore()
        assert summary.nodes == 2 and summary.quarantined == ("bad",)
        assert summary.accepted == summary.evidence == ok + fail
        with restarted.read() as session:
            for name in ("good", "bad"):
                node = session.get(Node, name)
                assert node is not None
                now = again.describe(session, node)
                assert now["score"] == pytest.approx(before[name]["score"])
                assert now["placement"] == before[name]["placement"]
        assert again.view(_view("bad")).exclusion is not None
        # evidence already stored is refused after the restart too
        with restarted.read() as session:
            task = session.exec(select(Task).where(Task.node_id == "good")).first()
        assert task is not None
        restarted.write_sync(lambda s: again.on_task_finished(s, task))
        assert again.replayed_in_store == 1
    finally:
        restarted.close()


def _view(node_id: str):
    from scheduler.placement import NodeView

    return NodeView(node_id, "local", "local", 2, 2048, (), 0, 0, 0, 0)


def test_admin_releases_a_quarantined_node_and_a_tenant_cannot(api, service, layer):
    alice = add_tenant(api, service, "alice")
    bad = add_node(api, service, "bad")
    while node_status(service, "bad") != NodeStatus.CORDONED:
        submit(api, alice)
        for task in claim(api, bad):
            report(api, bad, task["id"], exit_code=137)
    waiting = submit(api, alice)
    assert waiting["state"] == "admitted"
    denied = api.post("/v1/nodes/bad/release", headers=alice)
    assert denied.status_code == 403 and denied.json()["type"].endswith("/forbidden")
    as_node = api.post("/v1/nodes/bad/release", headers=bad)
    assert as_node.status_code == 403
    assert node_status(service, "bad") == NodeStatus.CORDONED
    released = api.post("/v1/nodes/bad/release", headers=admin(service))
    assert released.status_code == 200, released.text
    body = released.json()
    assert body["released"] == 1 and body["status"] == "online"
    assert body["placement"]["eligible"] and body["quarantine"] is None
    # the waiting task is placed on the released node right away
    with service.read() as session:
        task = session.get(Task, waiting["id"])
        assert task is not None and task.state == TaskState.PLACED and task.node_id == "bad"
    again = api.post("/v1/nodes/bad/release", headers=admin(service))
    assert again.status_code == 409


def test_trust_of_unknown_node_is_a_404_problem(api, service, layer):
    resp = api.get("/v1/nodes/nope/trust", headers=admin(service))
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["detail"] == "node nope not found"
    release = api.post("/v1/nodes/nope/release", headers=admin(service))
    assert release.status_code == 404


def test_trust_read_is_authorized(api, service, layer):
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1")
    add_node(api, service, "n2")
    assert api.get("/v1/nodes/n1/trust", headers=alice).status_code == 403
    assert api.get("/v1/nodes/n1/trust", headers=node).status_code == 200
    assert api.get("/v1/nodes/n2/trust", headers=node).status_code == 403
    analyst = bearer(service, "analyst", "sec")
    assert api.get("/v1/nodes/n2/trust", headers=analyst).status_code == 200


def test_explain_names_the_evidence_and_the_path_back(api, service, layer):
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1")
    task_id = submit(api, alice)["id"]
    claim(api, node)
    report(api, node, task_id, exit_code=137)
    plain = trust_of(api, service, "n1")
    assert "explanation" not in plain
    body = trust_of(api, service, "n1", explain="true")
    text = body["explanation"]
    assert text.startswith("node n1: score ")
    assert "evidence that moved the score most:" in text
    assert f"trust.evidence.task_failed  task:{task_id}:0" in text
    assert "verified successful tasks needed" in text
    assert "scheduler placement: eligible" in text
    assert body["path_back"] and body["top_evidence"][0]["contribution"] < 0


def test_a_service_gets_one_trust_layer(service, layer):
    with pytest.raises(RuntimeError, match="already installed"):
        TrustLayer.install(service)


def test_routes_say_when_trust_is_not_enabled(api, service):
    if getattr(service, "trust", None) is not None:
        pytest.skip("the app installs the trust layer itself")
    add_node(api, service, "n1")
    resp = api.get("/v1/nodes/n1/trust", headers=admin(service))
    assert resp.status_code == 404 and "not enabled" in resp.json()["detail"]


def _eve(sid: int, severity: int, stamp: str) -> dict[str, Any]:
    return {
        "event_type": "alert",
        "timestamp": stamp,
        "community_id": "1:abc=",
        "alert": {"signature_id": sid, "severity": severity, "signature": "scan"},
    }


def test_ids_alerts_lower_the_score_once_each(api, service, layer):
    from datetime import UTC, datetime

    add_node(api, service, "n1")
    stamp = datetime.fromtimestamp(service.clock(), UTC).isoformat()
    alert = _eve(2100498, 1, stamp)
    first = service.write_sync(
        lambda s: layer.record_eve_alert(s, alert, node_id="n1", sensor="sensor-1")
    )
    assert first.accepted
    score = trust_of(api, service, "n1")["score"]
    assert score < 0.2
    again = service.write_sync(
        lambda s: layer.record_eve_alert(s, alert, node_id="n1", sensor="sensor-1")
    )
    assert again.reason == trust.IntakeReason.REPLAYED
    assert trust_of(api, service, "n1")["score"] == pytest.approx(score)
    with pytest.raises(trust.EvidenceError) as bad:
        service.write_sync(
            lambda s: layer.record_eve_alert(
                s, {**alert, "event_type": "flow"}, node_id="n1", sensor="sensor-1"
            )
        )
    assert bad.value.field == "event_type"
    unknown = service.write_sync(
        lambda s: layer.record_eve_alert(
            s, _eve(2100499, 1, stamp), node_id="ghost", sensor="sensor-1"
        )
    )
    assert unknown.reason == trust.IntakeReason.UNKNOWN_NODE


def test_required_attestation_gates_placement_until_an_affirming_result(api, service, layer):
    layer.require_attestation = True
    alice = add_tenant(api, service, "alice")
    add_node(api, service, "n1")
    waiting = submit(api, alice)
    assert waiting["state"] == "admitted"
    assert "trust.gate.attestation_missing: no attestation result" in waiting["reason"]
    ear = {
        "iat": service.clock(),
        "eat_nonce": "n-1",
        "submods": {"os": {"ear.status": "affirming"}},
    }
    assert service.write_sync(
        lambda s: layer.record_attestation(s, ear, node_id="n1", verifier="verifier")
    ).accepted
    assert submit(api, alice)["node_id"] == "n1"
    bad = {
        "iat": service.clock(),
        "eat_nonce": "n-2",
        "submods": {"os": {"ear.status": "contraindicated"}},
    }
    service.write_sync(
        lambda s: layer.record_attestation(s, bad, node_id="n1", verifier="verifier")
    )
    body = trust_of(api, service, "n1")
    # a contraindicated result is a hard gate, and heavy enough to quarantine the node
    codes = [g["code"] for g in body["gates"]]
    assert "trust.gate.attestation_contraindicated" in codes and body["status"] == "cordoned"
    assert body["placement"]["reason"].endswith("after trust.evidence.attestation_contraindicated")
    assert submit(api, alice)["state"] == "admitted"


def test_a_tenants_failing_command_is_not_held_against_the_node(api, service, layer):
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1")
    for _ in range(8):  # more than enough failures to quarantine, were they the node's
        task_id = submit(api, alice)["id"]
        claim(api, node)
        assert report(api, node, task_id, exit_code=1).status_code == 200
    body = trust_of(api, service, "n1")
    assert body["top_evidence"] == []
    assert api.get("/v1/nodes/n1", headers=admin(service)).json()["status"] == "online"
