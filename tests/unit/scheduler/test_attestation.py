"""The attestation layer in the scheduler: nonces, evidence appraisal, results, the gate,
reference values, and every refusal with its specific problem type."""

from __future__ import annotations

import base64
import hashlib

import pytest
from sqlmodel import col, select

from identity import SigningKey
from identity.attestation import MeasurementLog
from scheduler.models import Node, Task, TaskEvent
from scheduler.tables.attestation import AttestationNonce, AttestationResultRow
from tests.conftest import bearer
from tests.unit.identity.test_attest_support import SoftTpm
from tests.unit.scheduler import attest_helpers as ah
from tests.unit.scheduler.helpers import add_node, add_tenant, admin, claim, submit

PROBLEM = "https://cntrust.dev/problems/"
MALFORMED = "attestation-evidence-malformed"


def problem_type(resp) -> str:
    assert resp.headers["content-type"] == "application/problem+json", resp.text
    return resp.json()["type"].removeprefix(PROBLEM)


def node_row(service, name: str) -> Node:
    with service.read() as session:
        node = session.get(Node, name)
        assert node is not None
        return node


def task_row(service, task_id: str) -> Task:
    with service.read() as session:
        task = session.get(Task, task_id)
        assert task is not None
        return task


def test_an_attested_node_gets_work_and_the_task_carries_the_result(api, service):
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1")
    current = node_row(service, "n1")
    assert current.attestation_status == "affirming"  # EAT-only: no hardware claim
    assert current.attestation_expires_at == pytest.approx(service.clock() + 90)
    task = submit(api, alice)
    assert task["node_id"] == "n1"
    placed = task_row(service, task["id"])
    assert placed.attestation_id == current.attestation_id
    assert placed.attestation_status == "affirming"
    body = api.get("/v1/attestation/nodes/n1", headers=admin(service)).json()
    assert body["attestation"]["permits_work"] and body["identity"]["attestation_key"]["alg"]
    reasons = body["history"][0]["reasons"]
    assert any("component agent matches default@1" in r for r in reasons["executables"])
    assert reasons["hardware"] == ["no hardware root of trust (software-signed EAT)"]
    assert claim(api, node)[0]["id"] == task["id"]


def test_an_unattested_node_gets_no_work_and_the_exclusion_says_why(api, service):
    alice = add_tenant(api, service, "alice")
    add_node(api, service, "n1", attested=False)
    task = submit(api, alice)
    assert task["state"] == "admitted"
    assert "attestation: no attestation result" in task["reason"]


def test_drifted_measurements_exclude_the_node_and_requeue_its_work(api, service):
    alice = add_tenant(api, service, "alice")
    n1 = add_node(api, service, "n1", cpu_cores=8)
    task = submit(api, alice)
    assert task["node_id"] == "n1"
    claim(api, n1)
    drifted = {"agent": ah.AGENT_DRIFTED, "runtime": ah.RUNTIME}
    result = ah.attest(api, service, n1, "n1", measurements=drifted)
    assert result["status"] == "contraindicated" and not result["permits_work"]
    assert any("component agent drifted" in r for r in result["reasons"]["executables"])
    # the same commit requeued the running task, naming the result
    moved = task_row(service, task["id"])
    assert moved.state.value == "admitted" and moved.attempt == 1
    assert "excluded by attestation (attestation contraindicated" in moved.reason
    assert result["result_id"] in moved.reason
    # a healthy node takes it; the drifted one is excluded with the stage's reason
    add_node(api, service, "n2")
    service.write_sync(lambda s: __import__("scheduler.store").store.place_pending(
        s, service.clock(), service.pipeline))  # fmt: skip
    assert task_row(service, task["id"]).node_id == "n2"
    waiting = submit(api, alice, cpu=6)
    assert "attestation: attestation contraindicated" in waiting["reason"]
    # the failed result was fed to the trust engine
    gates = [
        g["code"] for g in api.get("/v1/nodes/n1/trust", headers=admin(service)).json()["gates"]
    ]
    assert "trust.gate.attestation_contraindicated" in gates
    # a good result lets the node back in
    assert ah.attest(api, service, n1, "n1")["status"] == "affirming"


def test_an_expired_result_is_detected_without_new_evidence(api, service, clock):
    service.settings.heartbeat_timeout_s = 10_000  # the node stays online; only its result ages
    alice = add_tenant(api, service, "alice")
    n1 = add_node(api, service, "n1")
    task = submit(api, alice)
    claim(api, n1)
    clock.advance(91)
    layer = service.attestation
    service.write_sync(lambda s: layer.maintain(s, clock()))
    moved = task_row(service, task["id"])
    assert moved.state.value == "admitted"
    assert "attestation result expired" in moved.reason
    assert "expired" in submit(api, alice)["reason"]


def test_results_are_kept_as_history(api, service):
    n1 = add_node(api, service, "n1")
    ah.attest(api, service, n1, "n1")
    with service.read() as session:
        rows = session.exec(
            select(AttestationResultRow).where(AttestationResultRow.node_id == "n1")
        )
        assert len(list(rows)) == 2
    body = api.get("/v1/attestation/nodes/n1", headers=admin(service)).json()
    assert len(body["history"]) == 2


def test_a_replayed_nonce_is_refused(api, service):
    n1 = add_node(api, service, "n1")
    issued = ah.new_nonce(api, n1)
    token = ah.eat_for(service, "n1", issued)
    assert ah.send(api, n1, issued["nonce"], token).status_code == 200
    again = ah.send(api, n1, issued["nonce"], token)
    assert again.status_code == 422 and problem_type(again) == "attestation-nonce-replayed"


def test_an_expired_nonce_is_refused(api, service, clock):
    n1 = add_node(api, service, "n1")
    issued = ah.new_nonce(api, n1)
    clock.advance(61)
    resp = ah.send(api, n1, issued["nonce"], ah.eat_for(service, "n1", issued))
    assert resp.status_code == 422 and problem_type(resp) == "attestation-nonce-expired"


def test_an_unknown_nonce_is_refused(api, service):
    n1 = add_node(api, service, "n1")
    issued = {**ah.new_nonce(api, n1), "nonce": ah.b64u(b"\x07" * 32)}
    resp = ah.send(api, n1, issued["nonce"], ah.eat_for(service, "n1", issued))
    assert problem_type(resp) == "attestation-nonce-unknown"


def test_evidence_of_node_a_presented_by_node_b_is_refused(api, service):
    a = add_node(api, service, "node-a")
    b = add_node(api, service, "node-b")
    before = node_row(service, "node-b").attestation_id
    issued = ah.new_nonce(api, a)
    token_a = ah.eat_for(service, "node-a", issued)
    # A's token sent by B: not signed by B's enrolled key
    resp = ah.send(api, b, issued["nonce"], token_a)
    assert resp.status_code == 422 and problem_type(resp) == "attestation-evidence-signature"
    # B signs a token naming A: the token is bound to another node
    own = ah.new_nonce(api, b)
    key_b, _ = ah.node_key(service, "node-b")
    forged = ah.eat_for(service, "node-b", own, subject="node-a", key=key_b)
    resp = ah.send(api, b, own["nonce"], forged)
    assert problem_type(resp) == "attestation-evidence-node-binding"
    # B answers A's nonce with its own token: the nonce is A's
    resp = ah.send(api, b, issued["nonce"], ah.eat_for(service, "node-b", issued))
    assert problem_type(resp) == "attestation-nonce-node"
    # nothing changed for either node, and A's nonce still works for A
    assert node_row(service, "node-b").attestation_id == before
    assert ah.send(api, a, issued["nonce"], token_a).status_code == 200


def test_a_wrong_signature_is_refused(api, service):
    n1 = add_node(api, service, "n1")
    issued = ah.new_nonce(api, n1)
    token = ah.eat_for(service, "n1", issued, key=SigningKey.generate("EdDSA"))
    resp = ah.send(api, n1, issued["nonce"], token)
    assert resp.status_code == 422 and problem_type(resp) == "attestation-evidence-signature"


def test_measurements_matching_no_reference_set_are_contraindicated(api, service):
    n1 = add_node(api, service, "n1")
    unknown = {"agent": hashlib.sha256(b"other").digest(), "runtime": ah.RUNTIME}
    result = ah.attest(api, service, n1, "n1", measurements=unknown)
    assert result["status"] == "contraindicated"
    assert "not in default@1" in result["reasons"]["executables"][0]
    # a node class without any reference set
    n2 = add_node(api, service, "n2", attested=False, labels={"node_class": "gpu-v9"})
    result = ah.attest(api, service, n2, "n2")
    assert result["reasons"]["executables"] == ["no accepted reference values for the node"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"type": "eat", "nonce": "!!!", "eat": "a.b.c"}, "attestation-evidence-malformed"),
        ({"type": "eat", "nonce": ah.b64u(b"x" * 8), "eat": "a.b.c"}, MALFORMED),
        ({"type": "pdf", "nonce": ah.b64u(b"x" * 32)}, "attestation-evidence-malformed"),
        ({"type": "eat", "nonce": ah.b64u(b"x" * 32)}, "attestation-evidence-malformed"),
        ({"type": "eat", "nonce": ah.b64u(b"x" * 32), "eat": "not a jws"}, MALFORMED),
        ({"type": "tpm-quote", "nonce": ah.b64u(b"x" * 32), "quote": "AA", "signature": "AA",
          "measurement_log": "[{]"}, "attestation-evidence-measurement-log"),
        ({"type": "eat", "nonce": "x", "extra": 1}, "invalid-request"),
    ],
)  # fmt: skip
def test_malformed_evidence_is_refused(api, service, body, expected):
    n1 = add_node(api, service, "n1")
    resp = api.post("/v1/attestation/evidence", json=body, headers=n1)
    assert resp.status_code == 422 and problem_type(resp) == expected


def test_oversize_evidence_is_refused(api, service):
    from scheduler.attestation import EvidenceRefused, parse_evidence

    nonce = ah.b64u(b"x" * 32)
    # inside the API's body limit but past the EAT limit: refused before any parsing
    big = "a." + "b" * (16 * 1024) + ".c"
    with pytest.raises(EvidenceRefused) as refused:
        parse_evidence({"type": "eat", "nonce": nonce, "eat": big})
    assert (
        refused.value.status == 413 and refused.value.type_slug == "attestation-evidence-too-large"
    )
    log = "[" + " " * (256 * 1024) + "]"
    with pytest.raises(EvidenceRefused) as refused:
        parse_evidence({"type": "tpm-quote", "nonce": nonce, "quote": "AA", "signature": "AA",
                        "measurement_log": log})  # fmt: skip
    assert refused.value.type_slug == "attestation-evidence-too-large"
    # past the API's body limit: refused before the route runs
    n1 = add_node(api, service, "n1")
    resp = api.post("/v1/attestation/evidence", json={"type": "eat", "nonce": nonce, "eat": big},
                    headers=n1)  # fmt: skip
    assert resp.status_code == 413 and problem_type(resp) == "too-large"


def test_a_node_cannot_replace_its_attestation_key(api, service):
    n1 = add_node(api, service, "n1")
    other = SigningKey.generate("EdDSA")
    resp = api.post(
        "/v1/attestation/key",
        json={"jwk": other.public().to_jwk(), "ueid": "01" + "ab" * 32},
        headers=n1,
    )
    assert resp.status_code == 409 and resp.json()["reason"] == "attestation_key_bound"
    # an administrator can reset the binding; the node cannot
    assert api.post("/v1/attestation/nodes/n1/key/reset", headers=n1).status_code == 403
    reset = api.post("/v1/attestation/nodes/n1/key/reset", headers=admin(service))
    assert reset.status_code == 200 and reset.json()["reset"] is True
    resp = api.post(
        "/v1/attestation/key",
        json={"jwk": other.public().to_jwk(), "ueid": "01" + "ab" * 32},
        headers=n1,
    )
    assert resp.status_code == 200
    gone = api.post("/v1/attestation/nodes/ghost/key/reset", headers=admin(service))
    assert gone.status_code == 404


def test_only_nodes_attest_and_only_admins_manage_reference_values(api, service):
    alice = add_tenant(api, service, "alice")
    assert api.post("/v1/attestation/nonce", headers=alice).status_code == 403
    resp = api.post("/v1/refvalues", json={"values": ah.refset(2)}, headers=alice)
    assert resp.status_code == 403
    op = bearer(service, "operator", "acme")
    assert api.post("/v1/refvalues", json={"values": ah.refset(2)}, headers=op).status_code == 403
    assert api.get("/v1/refvalues", headers=op).status_code == 200


def test_reference_values_update_window_and_retirement(api, service, clock):
    n1 = add_node(api, service, "n1")
    v2 = ah.refset(2, agent=ah.AGENT_DRIFTED)
    resp = api.post("/v1/refvalues", json={"values": v2}, headers=admin(service))
    assert resp.status_code == 201 and resp.json()["state"] == "current"
    listed = {r["id"]: r["state"] for r in api.get("/v1/refvalues", headers=admin(service)).json()}
    assert listed == {"default@1": "update-window", "default@2": "current"}
    # during the window both the old and the new agent attest
    assert ah.attest(api, service, n1, "n1")["status"] == "affirming"
    new = {"agent": ah.AGENT_DRIFTED, "runtime": ah.RUNTIME}
    assert ah.attest(api, service, n1, "n1", measurements=new)["status"] == "affirming"
    # an older version is refused as a new set
    resp = api.post("/v1/refvalues", json={"values": ah.refset(2)}, headers=admin(service))
    assert resp.status_code == 409
    # after the window only the new one
    clock.advance(3601)
    n1 = bearer(service, "node", "n1")  # the node's session token was renewed meanwhile
    assert ah.attest(api, service, n1, "n1")["status"] == "contraindicated"
    assert ah.attest(api, service, n1, "n1", measurements=new)["status"] == "affirming"
    # retiring the new one leaves nothing accepted
    resp = api.post("/v1/refvalues/default/2/retire", headers=admin(service))
    assert resp.status_code == 200 and resp.json()["state"] == "retired"
    result = ah.attest(api, service, n1, "n1", measurements=new)
    assert result["reasons"]["executables"] == ["no accepted reference values for the node"]
    assert api.post("/v1/refvalues/default/9/retire", headers=admin(service)).status_code == 404


def test_a_malformed_reference_set_is_refused(api, service):
    bad = {**ah.refset(3), "components": {"agent": ["zz"]}}
    resp = api.post("/v1/refvalues", json={"values": bad}, headers=admin(service))
    assert resp.status_code == 422 and "reference values refused" in resp.json()["detail"]


def test_a_tampered_reference_set_is_not_used(api, service):
    from scheduler.tables.attestation import AttestationReferenceSet

    n1 = add_node(api, service, "n1")

    def tamper(session):
        row = session.get(AttestationReferenceSet, "default@1")
        row.signed = row.signed.replace(ah.AGENT.hex(), ah.AGENT_DRIFTED.hex())
        session.add(row)

    service.write_sync(tamper)
    drifted = {"agent": ah.AGENT_DRIFTED, "runtime": ah.RUNTIME}
    result = ah.attest(api, service, n1, "n1", measurements=drifted)
    assert result["reasons"]["executables"] == ["no accepted reference values for the node"]
    listed = api.get("/v1/refvalues", headers=admin(service)).json()
    assert listed[0]["state"] == "signature-refused"


def test_tpm_quote_evidence_is_appraised(api, service):
    tpm = SoftTpm()
    agent = hashlib.sha256(b"tpm agent").digest()
    mlog = MeasurementLog.of([(14, agent, "agent"), (14, ah.RUNTIME, "runtime")])
    tpm.replay(mlog)
    values = {**ah.refset(1, agent=agent, node_class="tpm")}
    assert (
        api.post("/v1/refvalues", json={"values": values}, headers=admin(service)).status_code
        == 201
    )
    n1 = add_node(api, service, "t1", attested=False, labels={"node_class": "tpm"})
    key, ueid = ah.node_key(service, "t1")
    body = {"jwk": key.public().to_jwk(), "ueid": ueid.hex(), "ak_public": tpm.ak_public.hex()}
    assert api.post("/v1/attestation/key", json=body, headers=n1).status_code == 200

    def send_quote(log: MeasurementLog, nonce_for: bytes | None = None):
        issued = ah.new_nonce(api, n1)
        nonce = base64.urlsafe_b64decode(issued["nonce"] + "=" * (-len(issued["nonce"]) % 4))
        quote, signature = tpm.quote(nonce_for or nonce, pcrs=(14,))
        return api.post(
            "/v1/attestation/evidence",
            json={"type": "tpm-quote", "nonce": issued["nonce"], "quote": ah.b64u(quote),
                  "signature": ah.b64u(signature), "measurement_log": log.to_json().decode()},
            headers=n1,
        )  # fmt: skip

    ok = send_quote(mlog)
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "affirming" and ok.json()["ear"]["submods"]["t1"]
    # a log that does not match the quoted PCRs: authentic, fresh, and contraindicated
    lying = MeasurementLog.of([(14, hashlib.sha256(b"clean").digest(), "agent")])
    mismatch = send_quote(lying)
    assert mismatch.status_code == 200 and mismatch.json()["status"] == "contraindicated"
    assert "pcr_digest" in mismatch.json()["reasons"]["executables"][0]
    # a quote over another nonce is refused
    stale = send_quote(mlog, nonce_for=b"\x00" * 32)
    assert problem_type(stale) == "attestation-nonce-mismatch"


def test_a_quote_from_a_node_without_an_ak_is_refused(api, service):
    n1 = add_node(api, service, "n1")
    issued = ah.new_nonce(api, n1)
    log = MeasurementLog.of([(14, ah.AGENT, "agent")]).to_json().decode()
    resp = api.post(
        "/v1/attestation/evidence",
        json={"type": "tpm-quote", "nonce": issued["nonce"], "quote": "AAAA",
              "signature": "AAAA", "measurement_log": log},
        headers=n1,
    )  # fmt: skip
    assert resp.status_code == 409 and resp.json()["reason"] == "attestation_ak_missing"


def test_nonces_are_stored_hashed_and_pruned(api, service, clock):
    n1 = add_node(api, service, "n1")
    issued = ah.new_nonce(api, n1)
    raw = base64.urlsafe_b64decode(issued["nonce"] + "=" * (-len(issued["nonce"]) % 4))
    with service.read() as session:
        rows = list(session.exec(select(AttestationNonce)))
    assert raw.hex() not in {r.nonce_hash for r in rows}
    assert hashlib.sha256(raw).hexdigest() in {r.nonce_hash for r in rows}
    clock.advance(121)
    service.write_sync(lambda s: service.attestation.maintain(s, clock()))
    with service.read() as session:
        assert list(session.exec(select(AttestationNonce))) == []


def test_the_bare_scheduler_has_no_gate(tmp_path, database_url, clock):
    from fastapi.testclient import TestClient

    from scheduler.app import create_app
    from scheduler.authz import BuiltinAuthorizer
    from scheduler.service import Service
    from scheduler.settings import Settings

    svc = Service(Settings(data_dir=tmp_path / "bare", database_url=database_url), clock=clock,
                  authorizer=BuiltinAuthorizer())  # fmt: skip
    try:
        with TestClient(create_app(svc, layers=False)) as api:
            alice = add_tenant(api, svc, "alice")
            n1 = add_node(api, svc, "n1")
            assert submit(api, alice)["node_id"] == "n1"
            assert api.post("/v1/attestation/nonce", headers=n1).status_code == 404
            assert not any(f.name == "attestation" for f in svc.pipeline.filters)
    finally:
        svc.close()


def test_refusals_leave_history_untouched(api, service):
    n1 = add_node(api, service, "n1")
    issued = ah.new_nonce(api, n1)
    token = ah.eat_for(service, "n1", issued, key=SigningKey.generate("EdDSA"))
    ah.send(api, n1, issued["nonce"], token)
    with service.read() as session:
        count = len(list(session.exec(select(AttestationResultRow))))
        events = list(
            session.exec(select(TaskEvent).where(col(TaskEvent.reason).contains("attestation")))
        )
    assert count == 1 and events == []


def test_fuzzed_evidence_through_the_api_gets_a_result_or_a_specific_refusal(api, service):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    n1 = add_node(api, service, "n1")
    before = node_row(service, "n1").attestation_id
    jws = st.tuples(
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=60),
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=200),
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=90),
    ).map(".".join)
    tokens = st.one_of(jws, st.text(max_size=100))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(tokens)
    def check(token):  # type: ignore[no-untyped-def]
        issued = ah.new_nonce(api, n1)
        resp = ah.send(api, n1, issued["nonce"], token)
        assert resp.status_code in (413, 422), resp.text
        assert problem_type(resp).startswith(("attestation-", "invalid-request"))

    check()
    assert node_row(service, "n1").attestation_id == before  # nothing was recorded
