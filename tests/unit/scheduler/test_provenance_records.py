"""What the records carry: the node's own signature over its result (checked on report,
kept in the record, checked offline), what placement relied on, cancelled tasks, and the
security response actions (quarantine, release, revocation), each in its own transaction."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import select

from audit_chain import (
    ResponseAction,
    TaskExecution,
    parse_bundle,
    parse_envelope,
    parse_statement,
    verify_bundle,
)
from scheduler.agent_signing import KeyFileError, ResultSigner
from scheduler.models import Task
from scheduler.provenance import ProvenanceLayer
from scheduler.provenance_actions import record_response_action, response_action
from scheduler.tables.provenance import ProvTaskEntry
from tests.conftest import bearer
from tests.unit.scheduler.helpers import add_node, add_tenant, admin, claim, submit

DIGEST = "sha256:" + "ab" * 32
USAGE = {"wall_s": 0.25, "cpu_s": 0.125, "max_rss_kb": 1024}


@pytest.fixture
def layer(service: Any) -> Any:
    prov = ProvenanceLayer.for_service(service, checkpoint_delay_s=0.05)
    prov.start()
    yield prov
    prov.stop()


def _signer(tmp_path: Any, name: str = "n") -> ResultSigner:
    return ResultSigner.load_or_create(tmp_path / name)


def _register_key(api: Any, node: dict[str, str], signer: ResultSigner) -> Any:
    body = {"public_key": base64.b64encode(signer.public_key).decode()}
    return api.post("/v1/agent/result-key", json=body, headers=node)


def _result(task: dict[str, Any], signer: ResultSigner | None, **over: Any) -> dict[str, Any]:
    item = {
        "task_id": task["id"],
        "exit_code": 0,
        "output_digest": DIGEST,
        "usage": USAGE,
        "started_at": 1_790_000_000.125,
        "finished_at": 1_790_000_001.5,
    }
    if signer is not None:
        item["node_signature"] = signer.sign(
            task_id=task["id"],
            attempt=task.get("attempt", 0),
            exit_code=0,
            output_digest=DIGEST,
            usage=USAGE,
            started_at=item["started_at"],
            finished_at=item["finished_at"],
        )
    item.update(over)
    return item


def _running(api: Any, service: Any, tenant: str = "alice") -> tuple[dict[str, str], dict]:
    headers = add_tenant(api, service, tenant)
    node = add_node(api, service, f"node-{tenant}")
    task = submit(api, headers)
    [claimed] = claim(api, node)
    assert claimed["id"] == task["id"] and claimed["attempt"] == 0
    return node, claimed


def _report(api: Any, node: dict[str, str], item: dict[str, Any]) -> Any:
    return api.post("/v1/agent/report", json={"results": [item]}, headers=node)


def _bundle(api: Any, service: Any, task_id: str) -> bytes:
    resp = api.get(f"/v1/tasks/{task_id}/bundle", headers=admin(service))
    assert resp.status_code == 200, resp.text
    return bytes(resp.content)


def test_signed_result_is_verified_stored_and_checked_offline(api, service, layer, tmp_path):
    node, task = _running(api, service)
    signer = _signer(tmp_path)
    resp = _register_key(api, node, signer)
    assert resp.status_code == 200 and resp.json()["key_id"] == signer.key_id
    assert _report(api, node, _result(task, signer)).status_code == 200

    with service.read() as session:
        stored = session.get(Task, task["id"])
    assert stored is not None and stored.node_signature
    data = _bundle(api, service, task["id"])
    vkey = layer.log_key.verifier.vkey
    verify_bundle(data, vkey, require_anchor=False, require_node_signature=True)
    predicate = parse_statement(parse_bundle(data).envelope.payload).predicate
    assert isinstance(predicate, TaskExecution) and predicate.node_result is not None
    assert predicate.node_result.keyid == signer.key_id
    assert predicate.node_result.started_ms == 1_790_000_000_125
    assert dict(predicate.resource_usage) == {"cpuMs": 125, "maxRssBytes": 1048576, "wallMs": 250}
    assert len(data) <= 4096


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"exit_code": 1}, "exit code differs from what the node signed"),
        ({"output_digest": "sha256:" + "cd" * 32}, "output differs"),
        ({"finished_at": 1_790_000_009.0}, "end time differs"),
        ({"usage": {"wall_s": 9.0}}, "usage differs"),
        ({"node_signature": None}, "unsigned"),
        ({"node_signature": "not base64url!"}, "garbage"),
    ],
)
def test_bad_node_signature_is_refused_with_its_problem_type(
    api, service, layer, tmp_path, change, reason
):
    node, task = _running(api, service)
    signer = _signer(tmp_path)
    assert _register_key(api, node, signer).status_code == 200
    resp = _report(api, node, _result(task, signer, **change))
    assert resp.status_code == 422, (reason, resp.text)
    problem = resp.json()
    assert problem["type"].endswith("/node-signature-invalid"), problem
    assert resp.headers["content-type"].startswith("application/problem+json")
    with service.read() as session:
        stored = session.get(Task, task["id"])
        entries = list(session.exec(select(ProvTaskEntry)))
    assert stored is not None and stored.state == "running" and stored.node_signature is None
    assert entries == []


def test_signature_by_another_key_is_refused(api, service, layer, tmp_path):
    node, task = _running(api, service)
    assert _register_key(api, node, _signer(tmp_path, "a")).status_code == 200
    resp = _report(api, node, _result(task, _signer(tmp_path, "b")))
    assert resp.status_code == 422 and resp.json()["type"].endswith("/node-signature-invalid")


def test_a_second_different_key_is_refused_and_the_same_key_is_idempotent(api, service, tmp_path):
    node = add_node(api, service, "keyed")
    first = _signer(tmp_path, "a")
    assert _register_key(api, node, first).status_code == 200
    assert _register_key(api, node, first).status_code == 200
    resp = _register_key(api, node, _signer(tmp_path, "b"))
    assert resp.status_code == 409 and resp.json()["type"].endswith("/conflict")
    bad = api.post("/v1/agent/result-key", json={"public_key": "AAAA"}, headers=node)
    assert bad.status_code == 422
    tenant = api.post(
        "/v1/agent/result-key",
        json={"public_key": base64.b64encode(first.public_key).decode()},
        headers=bearer(service, "tenant", "alice"),
    )
    assert tenant.status_code == 403


def test_a_node_without_a_key_reports_unsigned_and_the_record_has_no_signature(api, service, layer):
    node, task = _running(api, service)
    assert _report(api, node, _result(task, None)).status_code == 200
    data = _bundle(api, service, task["id"])
    vkey = layer.log_key.verifier.vkey
    verify_bundle(data, vkey, require_anchor=False)
    with pytest.raises(Exception, match="node_signature"):
        verify_bundle(data, vkey, require_anchor=False, require_node_signature=True)


def test_result_key_file_is_private_and_reused(tmp_path):
    signer = _signer(tmp_path)
    path = tmp_path / "n" / "result.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert _signer(tmp_path).public_key == signer.public_key
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="group or others"):
        _signer(tmp_path)


def test_an_enrolled_ed25519_node_key_signs_the_results(tmp_path):
    from identity.pki import generate_node_key, save_node_key

    key = generate_node_key("ed25519")
    save_node_key(tmp_path / "n", key)
    signer = _signer(tmp_path)
    assert isinstance(key, Ed25519PrivateKey)
    assert signer.public_key == key.public_key().public_bytes_raw()
    assert not (tmp_path / "n" / "result.key").exists()


def test_placement_fields_reach_the_record(api, service, layer):
    node, task = _running(api, service)
    with service.read() as session:
        placed = session.get(Task, task["id"])
    assert placed is not None
    # the trust layer (installed by create_app) filled its fields at placement
    assert placed.trust_per_mille is not None and 0 <= placed.trust_per_mille <= 1000
    assert placed.trust_uncertainty_per_mille is not None

    def fill(session: Any) -> None:  # what the attestation and policy layers fill
        row = session.get(Task, task["id"])
        row.attestation_id = "ear-1234"
        row.attestation_status = "affirming"
        row.policy_version = "policy-v7"
        row.placement_decision_id = "dec-42"
        session.add(row)

    service.write_sync(fill)
    assert _report(api, node, _result(task, None)).status_code == 200
    predicate = parse_statement(parse_bundle(_bundle(api, service, task["id"])).envelope.payload)
    execution = predicate.predicate
    assert isinstance(execution, TaskExecution)
    assert execution.trust_score_permille == placed.trust_per_mille
    assert execution.trust_uncertainty_permille == placed.trust_uncertainty_per_mille
    assert execution.attestation_result_id == "ear-1234"
    assert execution.attestation_status == "affirming"
    assert execution.policy_version == "policy-v7"
    assert execution.policy_decision_ids == ("dec-42",)


def test_malformed_layer_values_are_left_out_not_fatal(api, service, layer):
    node, task = _running(api, service)

    def fill(session: Any) -> None:
        row = session.get(Task, task["id"])
        row.attestation_status = "bogus"
        row.trust_per_mille = 5000
        row.policy_version = "bad\nversion"
        session.add(row)

    service.write_sync(fill)
    assert _report(api, node, _result(task, None)).status_code == 200
    execution = parse_statement(
        parse_bundle(_bundle(api, service, task["id"])).envelope.payload
    ).predicate
    assert isinstance(execution, TaskExecution)
    assert execution.attestation_status is None and execution.trust_score_permille is None
    assert execution.policy_version is None


def test_a_cancelled_task_gets_a_record(api, service, layer):
    headers = add_tenant(api, service, "alice")
    task = submit(api, headers)  # no node: stays admitted
    resp = api.post(f"/v1/tasks/{task['id']}/cancel", headers=headers)
    assert resp.status_code == 200, resp.text
    data = _bundle(api, service, task["id"])
    verify_bundle(data, layer.log_key.verifier.vkey, require_anchor=False)
    execution = parse_statement(parse_bundle(data).envelope.payload).predicate
    assert isinstance(execution, TaskExecution)
    assert execution.outcome == "cancelled" and execution.node_spiffe_id is None


def test_a_rejected_task_gets_a_record(service, layer):
    from scheduler import store

    now = service.clock()
    task = Task(id="rej1", tenant="alice", state="submitted", submitted_at=now, updated_at=now)
    service.write_sync(
        lambda s: store.reject_task(s, task, now, "denied by policy", service.finished_hooks)
    )
    data = layer.bundle_for("rej1")
    execution = parse_statement(parse_bundle(data).envelope.payload).predicate
    assert isinstance(execution, TaskExecution) and execution.outcome == "rejected"


def _actions(layer: Any) -> list[ResponseAction]:
    out = []
    for i in range(layer.log.tree_size):
        statement = parse_statement(parse_envelope(layer.log.read_entry(i)).payload)
        if isinstance(statement.predicate, ResponseAction):
            out.append(statement.predicate)
    return out


def test_quarantine_and_release_are_records(api, service, layer):
    from trust import QuarantineDecision  # type: ignore[attr-defined]

    add_node(api, service, "bad")
    assert api.get("/v1/nodes/bad/trust", headers=admin(service)).status_code == 200  # known
    trust_layer = service.trust
    decision = QuarantineDecision("bad", service.clock(), 0.1, 0.3, "ev-1", "score 0.10 < 0.30")
    service.write_sync(lambda s: trust_layer._quarantine(s, decision))
    service.write_sync(lambda s: trust_layer.release(s, "bad", "admin:alice"))
    actions = _actions(layer)
    assert [(a.action, a.target_id) for a in actions] == [("quarantine", "bad"), ("release", "bad")]
    assert actions[0].evidence_ids == ("ev-1",) and actions[0].trust_score_permille == 100
    assert actions[0].actor == "spiffe://cntrust.local/scheduler/trust"
    assert "alice" not in actions[1].actor  # a person enters only as a commitment


def test_an_analyst_quarantine_record_names_no_one(api, service, layer):
    """The analyst's quarantine is a record whose actor and reason are commitments; the
    quarantine's reference (which names the analyst) stays in the database."""
    add_node(api, service, "n1")
    analyst = bearer(service, "analyst", "zelda")
    resp = api.post("/v1/nodes/n1/quarantine", json={"reason": "odd traffic"}, headers=analyst)
    assert resp.status_code == 201, resp.text
    assert "zelda" in resp.json()["reference_id"]
    [action] = _actions(layer)
    assert (action.action, action.target_id) == ("quarantine", "n1")
    assert action.reasons == ("response.source.analyst",) and action.evidence_ids == ()
    assert action.actor.startswith("sha256:") and action.detail is not None  # commitments
    payload = parse_envelope(layer.log.read_entry(0)).payload
    assert b"zelda" not in payload and b"odd traffic" not in payload


def test_revocation_is_a_record(api, service, layer):
    add_node(api, service, "gone")
    resp = api.post("/v1/nodes/gone/revoke", json={"reason": "stolen"}, headers=admin(service))
    assert resp.status_code == 200, resp.text
    [action] = _actions(layer)
    assert action.action == "revocation" and action.target_id == "gone"
    assert "response.source.identity" in action.reasons and action.detail is not None


def test_record_response_action_is_a_no_op_without_provenance(service):
    def op(session: Any) -> bool:
        return record_response_action(
            service, session, "policy_change", "policy/v2", "policy.change.by_admin", "admin"
        )

    assert service.write_sync(op) is False


def test_policy_change_hook_records_in_the_callers_transaction(service, layer):
    def op(session: Any) -> bool:
        return record_response_action(
            service,
            session,
            "policy_change",
            "policy/v2",
            "policy.change.by_admin",
            "admin:bob",
            policy_decision_ids=("p-1",),
        )

    assert service.write_sync(op) is True
    [action] = _actions(layer)
    assert action.action == "policy_change" and action.policy_decision_ids == ("p-1",)

    def failing(session: Any) -> None:
        record_response_action(service, session, "policy_change", "policy/v3", "x.y", "admin")
        raise RuntimeError("the action failed")

    with pytest.raises(RuntimeError):
        service.write_sync(failing)
    assert len(_actions(layer)) == 1  # rolled back with the action


def test_bad_response_action_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown response action"):
        response_action("explode", "node/x", "r", "a", at=0)
    with pytest.raises(ValueError, match="subject"):
        response_action("quarantine", "planet/x", "r", "a", at=0)


def test_service_record_response_is_recorded_by_the_layer(service, layer):
    """Other layers report through Service.record_response (the service's hook point)."""
    from scheduler.service import ResponseAction as Response

    def op(session: Any) -> None:
        service.record_response(
            session,
            Response(
                action="response.revoke",
                subject="operator/acme",
                reason="operator key compromised",
                actor="admin:carol",
                source="incident",
                at=service.clock(),
                detail={"incident_id": "inc-7", "policy_decision_ids": ["d-1"]},
            ),
        )

    service.write_sync(op)
    [action] = _actions(layer)
    assert (action.action, action.target_kind, action.target_id) == (
        "revocation",
        "operator",
        "acme",
    )
    assert action.reasons == ("response.source.incident",)
    assert action.evidence_ids == ("incident_id:inc-7",)
    assert action.policy_decision_ids == ("d-1",)
    assert action.detail is not None and "carol" not in action.actor  # commitments only
