"""The policy layer in a running scheduler: placement decided by the Cedar filter on the
scheduler's own node facts, every placement recorded and replayable, policy changes on
every replica within 2 s and in the provenance log.

With all layers, the attestation gate (placement stage ``attestation``) excludes a node
without a passing, unexpired result before Cedar sees it; the tests of Cedar's own
attestation rules run with the gate off (``GATE_OFF``), and the others show both in force."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from scheduler import store
from scheduler.app import create_app
from scheduler.models import Node, Task
from scheduler.policy_authz import PolicyAuthorizer
from scheduler.policy_wiring import placement_of
from scheduler.tables.policy_decisions import PlacementDecision, PolicyVersionText
from scheduler.trust_placement import NodeTrustView
from tests.conftest import bearer
from tests.unit.scheduler.helpers import add_node, add_tenant, admin, submit, task_row
from tests.unit.scheduler.policy_fixtures import GATE_OFF, service

__all__ = ["service"]


@pytest.fixture
def api(service: Any) -> Any:
    with TestClient(create_app(service)) as client:
        yield client


def attest(service: Any, node_id: str, status: str | None, age_s: float = 60.0, **kw: Any) -> None:
    now = service.clock()

    def op(session: Session) -> None:
        node = session.get(Node, node_id)
        assert node is not None
        node.attestation_status = status
        node.attested_at = None if status is None else now - age_s
        node.attestation_expires_at = kw.get("expires_at")
        session.add(node)

    service.write_sync(op)


def trusted(service: Any, score: float = 0.95, uncertainty: float = 0.05) -> None:
    """Make the trust layer see every node as trusted (its engine needs days of evidence)."""
    service.trust.view = lambda node: NodeTrustView(
        service.clock(), score, uncertainty, None, False
    )


def decision_of(service: Any, task_id: str) -> tuple[Task, PlacementDecision]:
    with service.read() as session:
        task = session.get(Task, task_id)
        assert task is not None and task.placement_decision_id is not None
        row = session.get(PlacementDecision, task.placement_decision_id)
        assert row is not None
        return task, row


def secret_task(api: Any, service: Any) -> dict[str, Any]:
    """A secret task of tenant alice (cleared for secret work), tagged with region eu."""
    token = service.issue_token(
        "tenant", "alice", timedelta(minutes=5), cntrust_clearance=["public", "internal", "secret"]
    )
    return submit(api, {"Authorization": f"Bearer {token}"}, classification="secret", region="eu")


def test_the_policy_filter_and_recorder_are_installed_with_the_layers(api, service):
    installed = placement_of(service)
    assert installed is not None
    assert installed.filter in service.pipeline.filters
    assert installed.recorder in service.pipeline.placed_hooks
    assert installed.store is service.authorizer.store  # one set for API and placement


@GATE_OFF
def test_public_placement_is_recorded_with_inputs_and_policy_text(api, service):
    alice = add_tenant(api, service, "alice")
    add_node(api, service, "n1", region="eu")
    placed = submit(api, alice)
    assert placed["node_id"] == "n1"
    task, row = decision_of(service, placed["id"])
    version = service.authorizer.store.version
    assert task.policy_version == version == row.policy_version
    assert row.allowed and row.policy_ids == ["placement.permit"] and row.node_id == "n1"
    node_attrs = row.request["entities"][1]["attrs"]
    # no attestation result, no attestation gate: unappraised, cautious trust
    assert node_attrs["attestation_status"] == "unappraised"
    assert "attestation_age_s" not in node_attrs
    assert node_attrs["revoked"] is False and node_attrs["region"] == "eu"
    with service.read() as session:
        assert session.get(PolicyVersionText, version) is not None


@GATE_OFF
def test_two_placements_in_one_transaction_store_the_policy_text_once(api, service, clock):
    """The first placements under a policy version, in one transaction (a report placing
    several waiting tasks): the version's text is stored once and the transaction commits."""
    add_tenant(api, service, "alice")
    add_node(api, service, "n1")
    now = clock()
    tasks = [task_row(now + i, "alice") for i in range(3)]

    def op(session: Session) -> list[str | None]:
        placed = [
            store.submit_task(session, t, now, service.pipeline, "admitted")[1] for t in tasks
        ]
        return [p.node_id if p is not None else None for p in placed]

    assert service.write_sync(op) == ["n1", "n1", "n1"]
    with service.read() as session:
        assert len(session.exec(select(PolicyVersionText)).all()) == 1
        decisions = session.exec(select(PlacementDecision)).all()
        assert sorted(d.task_id for d in decisions) == sorted(t.id for t in tasks)


def test_secret_task_fails_closed_on_missing_attestation(api, service):
    add_tenant(api, service, "alice")
    add_node(api, service, "n1", region="eu", attested=False)
    trusted(service)
    waiting = secret_task(api, service)
    assert waiting["state"] == "admitted" and waiting["node_id"] is None
    assert "attestation: no attestation result" in waiting["reason"]  # the gate answers first


@GATE_OFF
def test_cedar_refuses_secret_work_on_a_node_without_attestation(api, service):
    add_tenant(api, service, "alice")
    add_node(api, service, "n1", region="eu")
    trusted(service)
    waiting = secret_task(api, service)
    assert waiting["state"] == "admitted" and waiting["node_id"] is None
    assert "placement.secret.attestation" in waiting["reason"]


@GATE_OFF
def test_node_labels_cannot_claim_trust_or_attestation(api, service):
    add_tenant(api, service, "alice")
    spoof = {"trust": "1.0", "uncertainty": "0", "attestation_status": "affirming",
             "attestation_age_s": "1"}  # fmt: skip
    add_node(api, service, "liar", region="eu", labels=spoof)
    waiting = secret_task(api, service)
    assert waiting["node_id"] is None
    reason = waiting["reason"]
    assert "placement.secret.trust" in reason and "placement.secret.attestation" in reason


def test_secret_task_placed_on_an_attested_trusted_node_and_replays(api, service, clock):
    """Gate and Cedar together: a trusted node that has not attested gets no secret task;
    one that attested through the real path (affirming) does, and replay agrees."""
    add_tenant(api, service, "alice")
    add_node(api, service, "n0", region="eu", attested=False)
    trusted(service)
    waiting = secret_task(api, service)
    assert waiting["node_id"] is None and "attestation: no attestation result" in waiting["reason"]
    add_node(api, service, "n1", region="eu")  # attests: nonce, EAT, appraisal
    add_node(api, service, "n-us", region="us")
    clock.advance(5)  # the results age (the nodes stay within their heartbeat timeout)
    placed = secret_task(api, service)
    assert placed["node_id"] == "n1"
    _, row = decision_of(service, placed["id"])
    attrs = row.request["entities"][1]["attrs"]
    assert attrs["attestation_status"] == "affirming" and attrs["attestation_age_s"] == 5
    assert attrs["trust_permille"] == 950 and attrs["uncertainty_permille"] == 50
    resp = api.get(f"/v1/tasks/{placed['id']}/placement/replay", headers=admin(service))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["same"] is True and body["differences"] == []
    assert body["replayed"]["policy_ids"] == ["placement.permit"]


@GATE_OFF
@pytest.mark.parametrize(
    ("status", "age_s", "expires_in", "policy_id"),
    [
        ("affirming", 4000, None, "placement.secret.attestation"),  # older than 1 h
        ("warning", 60, None, "placement.secret.attestation"),
        ("affirming", 60, -1.0, "placement.node-unattested"),  # expired result: none
        ("contraindicated", 60, None, "placement.node-unattested"),
        ("bogus", 60, None, "request refused"),  # malformed fact: never an allow
    ],
)
def test_stale_expired_or_bad_attestation_excludes(
    api, service, status, age_s, expires_in, policy_id
):
    add_tenant(api, service, "alice")
    add_node(api, service, "n1", region="eu")
    expires = None if expires_in is None else service.clock() + expires_in
    attest(service, "n1", status, age_s=age_s, expires_at=expires)
    trusted(service)
    waiting = secret_task(api, service)
    assert waiting["node_id"] is None and policy_id in waiting["reason"], waiting["reason"]


@pytest.mark.parametrize(
    ("status", "expires_in", "why"),
    [
        ("affirming", -1.0, "attestation: attestation result expired 1.0 s ago"),
        ("contraindicated", 60.0, "attestation: attestation contraindicated"),
        ("bogus", 60.0, "attestation: attestation bogus"),  # unknown status: never a pass
    ],
)
def test_the_gate_excludes_expired_contraindicated_or_unknown_results(
    api, service, status, expires_in, why
):
    add_tenant(api, service, "alice")
    add_node(api, service, "n1", region="eu")
    attest(service, "n1", status, expires_at=service.clock() + expires_in)
    trusted(service)
    waiting = secret_task(api, service)
    assert waiting["node_id"] is None and why in waiting["reason"], waiting["reason"]


LONG_RESULTS = {"attestation_result_ttl_s": 7200.0, "heartbeat_timeout_s": 86400}


@pytest.mark.parametrize("service", [LONG_RESULTS], indirect=True, ids=["2h-results"])
def test_cedar_refuses_a_result_the_gate_still_accepts_for_secret_work(api, service, clock):
    """Results valid for 2 h: after 4000 s the gate still passes the node, Cedar's 1 h rule
    for secret work does not; public work still goes there."""
    add_tenant(api, service, "alice")
    add_node(api, service, "n1", region="eu")
    trusted(service)
    clock.advance(4000)
    waiting = secret_task(api, service)
    assert waiting["node_id"] is None, waiting
    assert "placement.secret.attestation" in waiting["reason"]
    assert "(attestation: " not in waiting["reason"]  # the gate passed it
    token = service.issue_token("tenant", "alice", timedelta(minutes=5))  # a fresh token
    public = submit(api, {"Authorization": f"Bearer {token}"})
    assert public["node_id"] == "n1"


def test_low_trust_excludes_secret_work(api, service):
    add_tenant(api, service, "alice")
    add_node(api, service, "n1", region="eu")  # attested, affirming: only trust is short
    trusted(service, score=0.79, uncertainty=0.05)
    assert "placement.secret.trust" in secret_task(api, service)["reason"]


def test_revoked_node_receives_nothing(api, service):
    alice = add_tenant(api, service, "alice")
    add_node(api, service, "n1", region="eu")
    resp = api.post("/v1/nodes/n1/revoke", json={"reason": "stolen"}, headers=admin(service))
    assert resp.status_code == 200, resp.text
    waiting = submit(api, alice)
    assert waiting["node_id"] is None and "placement.node-revoked" in waiting["reason"]


def test_replay_after_a_policy_change_uses_the_stored_version(api, service):
    alice = add_tenant(api, service, "alice")
    add_node(api, service, "n1", region="eu")
    placed = submit(api, alice)
    old = service.authorizer.store.version
    changed = change_policy(api, service, forbid_everything=True)
    assert changed["old_version"] == old and service.authorizer.store.version != old
    body = api.get(f"/v1/tasks/{placed['id']}/placement/replay", headers=admin(service)).json()
    assert body["same"] is True and body["policy_version"] == old
    # the new set forbids placement: the next task waits, naming the new forbid
    waiting = submit(api, alice)
    assert waiting["node_id"] is None and "test.forbid-all" in waiting["reason"]


def test_replay_says_what_differs_when_the_stored_inputs_were_altered(api, service):
    alice = add_tenant(api, service, "alice")
    add_node(api, service, "n1", region="eu")
    placed = submit(api, alice)

    def tamper(session: Session) -> None:
        row = session.exec(select(PlacementDecision)).one()
        request = dict(row.request)
        entities = [dict(e) for e in request["entities"]]
        entities[1] = {**entities[1], "attrs": {**entities[1]["attrs"], "revoked": True}}
        row.request = {**request, "entities": entities}
        session.add(row)

    service.write_sync(tamper)
    body = api.get(f"/v1/tasks/{placed['id']}/placement/replay", headers=admin(service)).json()
    assert body["same"] is False
    assert any("effect: stored allow, replayed deny" in d for d in body["differences"])
    assert "placement.node-revoked" in body["replayed"]["policy_ids"]


def test_replay_bad_input_is_problem_json(api, service):
    alice = add_tenant(api, service, "alice")
    bob = add_tenant(api, service, "bob")
    resp = api.get("/v1/tasks/nope/placement/replay", headers=admin(service))
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
    waiting = submit(api, alice)  # no node: never placed, no decision
    resp = api.get(f"/v1/tasks/{waiting['id']}/placement/replay", headers=admin(service))
    assert resp.status_code == 404 and "no recorded placement decision" in resp.json()["detail"]
    # another tenant's task is "not found", never "forbidden"
    resp = api.get(f"/v1/tasks/{waiting['id']}/placement/replay", headers=bob)
    assert resp.status_code == 404
    long_id = "x" * 500
    assert (
        api.get(f"/v1/tasks/{long_id}/placement/replay", headers=admin(service)).status_code == 404
    )


FORBID_ALL = """
@id("test.forbid-all")
@reason("test: nothing is placed")
forbid (principal, action == Cntrust::Action::"place_task", resource);
"""


def change_policy(api: Any, service: Any, *, forbid_everything: bool) -> dict[str, Any]:
    from policies import default_policy_dir

    root = default_policy_dir()
    files = {p.name: p.read_text() for p in root.iterdir() if p.suffix == ".cedar"}
    if forbid_everything:
        files["zz_test.cedar"] = FORBID_ALL
    schema = next(p for p in root.iterdir() if p.name.endswith(".cedarschema.json")).read_text()
    resp = api.put("/v1/policy", json={"schema": schema, "files": files}, headers=admin(service))
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_a_change_reaches_another_replica_within_2_s(api, service, tmp_path):
    from scheduler.service import Service
    from scheduler.settings import Settings

    other = Service(
        Settings(
            data_dir=tmp_path / "replica",
            database_url=service.settings.database_url,
            max_body_bytes=64 * 1024,
        ),
        clock=service.clock,
    )
    try:
        with TestClient(create_app(other)) as replica:
            assert isinstance(other.authorizer, PolicyAuthorizer)
            before = other.authorizer.store.version
            changed = change_policy(api, service, forbid_everything=True)
            started = time.monotonic()
            # the replica notices on its next decision after its poll interval
            while other.authorizer.store.version == before:
                assert time.monotonic() - started < 2.0, "the replica kept the old set"
                replica.get("/v1/policy", headers=bearer(other, "admin", "a"))
                time.sleep(0.05)
            assert other.authorizer.store.version == changed["new_version"]
            # and its placement filter uses the same store
            assert placement_of(other).store is other.authorizer.store  # type: ignore[union-attr]
    finally:
        other.close()


def test_a_policy_change_is_a_provenance_record(api, service):
    from audit_chain import parse_envelope, parse_statement, verify_commitment
    from scheduler.provenance import ProvenanceLayer
    from scheduler.tables.policy_decisions import PolicyChangeCommitment

    layer = ProvenanceLayer.for_service(service, checkpoint_delay_s=0.05)
    layer.start()
    try:
        old = service.authorizer.store.version
        changed = change_policy(api, service, forbid_everything=True)
        assert layer.log.tree_size == 1
        statement = parse_statement(parse_envelope(layer.log.read_entry(0)).payload)
        action = statement.predicate
        assert action.action == "policy_change" and action.target_kind == "policy"
        assert action.target_id == changed["new_version"] == action.target_digest
        assert action.evidence_ids == (old,)
        with service.read() as session:
            row = session.exec(select(PolicyChangeCommitment)).one()
        assert row.commitment == action.detail
        verify_commitment(action.detail, "admin:admin", bytes.fromhex(row.salt_hex))
    finally:
        layer.stop()


def test_a_policy_change_goes_to_the_response_hooks_once(api, service):
    from scheduler.provenance import ProvenanceLayer

    layer = ProvenanceLayer.for_service(service, checkpoint_delay_s=0.05)
    seen: list[Any] = []
    service.response_hooks.append(lambda session, action: seen.append(action))
    old = service.authorizer.store.version
    changed = change_policy(api, service, forbid_everything=True)
    assert [(a.action, a.subject, a.actor, a.source) for a in seen] == [
        ("response.policy_change", changed["new_version"], "admin:admin", "admin")
    ]
    assert seen[0].detail["old_version"] == old
    assert layer.log.tree_size == 1  # the log holds the change once, with its own record


def test_a_policy_change_without_provenance_still_works(api, service):
    changed = change_policy(api, service, forbid_everything=False)
    assert changed["changed"] is False  # the same set: recorded, nothing to log


def test_a_recorded_task_not_yet_in_the_session_is_stored_naming_its_decision(api, service):
    """The recorder adds a task the session does not hold yet, and its decision row goes
    out with the transaction (a placement the filter never saw: a deny with the reason)."""
    from scheduler.policy_decisions import NO_INPUTS_REASON

    add_tenant(api, service, "alice")
    add_node(api, service, "n1")
    recorder = placement_of(service).recorder
    task = task_row(service.clock(), "alice")

    def op(session: Session) -> None:
        node = session.get(Node, "n1")
        assert task not in session
        recorder(session, task, node)

    service.write_sync(op)
    stored, row = decision_of(service, task.id)
    assert stored.policy_version == row.policy_version == service.authorizer.store.version
    assert row.task_id == task.id and row.node_id == "n1" and not row.allowed
    assert row.reasons == [NO_INPUTS_REASON] and row.request == {}
