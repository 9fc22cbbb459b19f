"""The attestation loop around the appraisal: the periodic expiry check in the API's own
maintenance loop, nonces across replicas, what reaches the trust engine and the response
hooks, and the node agent's side (keys, measurements)."""

from __future__ import annotations

import importlib
import sys
import time

import pytest
from fastapi.testclient import TestClient

from scheduler.app import create_app
from scheduler.attest_agent import Attester, accelerator_claims, agent_digest
from scheduler.models import Task
from scheduler.service import Service
from scheduler.settings import Settings
from scheduler.tables.trust import TrustEvidence
from tests.unit.scheduler import attest_helpers as ah
from tests.unit.scheduler.helpers import add_node, add_tenant, claim, submit


def test_the_maintenance_loop_requeues_work_when_a_result_expires(api, service, clock):
    service.settings.heartbeat_timeout_s = 10_000  # the node stays online; only its result ages
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1")
    task = submit(api, alice)
    claim(api, node)
    clock.advance(90)  # the result's expiry: nobody calls the sweep, the loop finds it
    deadline = time.monotonic() + 5
    while True:
        with service.read() as session:
            row = session.get(Task, task["id"])
            assert row is not None
        if row.state.value == "admitted":
            break
        assert time.monotonic() < deadline, "the expired result was not detected"
        time.sleep(0.05)
    assert "attestation result expired" in row.reason
    assert service.attestation.last_sweep == {"n1": [task["id"]]}


def test_a_nonce_issued_by_one_replica_is_single_use_on_every_replica(
    api, service, tmp_path, database_url, clock
):
    other = Service(
        Settings(data_dir=service.settings.data_dir, database_url=database_url), clock=clock
    )
    try:
        with TestClient(create_app(other)) as replica:
            node = add_node(api, service, "n1")
            issued = ah.new_nonce(api, node)  # replica 1 issues
            token = ah.eat_for(service, "n1", issued)
            first = ah.send(replica, node, issued["nonce"], token)  # replica 2 accepts
            assert first.status_code == 200, first.text
            again = ah.send(api, node, issued["nonce"], token)  # replica 1 refuses the replay
            assert again.json()["type"].endswith("/attestation-nonce-replayed")
    finally:
        other.close()


def test_trust_hears_of_changes_not_of_every_round(api, service):
    node = add_node(api, service, "n1")
    for _ in range(3):
        ah.attest(api, service, node, "n1")
    drifted = {"agent": ah.AGENT_DRIFTED, "runtime": ah.RUNTIME}
    ah.attest(api, service, node, "n1", measurements=drifted)
    ah.attest(api, service, node, "n1", measurements=drifted)
    with service.read() as session:
        kinds = [
            e.kind
            for e in session.exec(
                TrustEvidence.__table__.select().where(TrustEvidence.node_id == "n1")  # type: ignore[attr-defined]
            )
        ]
    assert sorted(kinds) == [
        "trust.evidence.attestation_affirming",
        "trust.evidence.attestation_contraindicated",
    ]


def test_exclusion_and_readmission_are_response_actions(api, service):
    seen = []
    service.response_hooks.append(lambda session, action: seen.append(action))
    node = add_node(api, service, "n1")
    assert seen == []  # a new node's first (passing) result starts placement: no response
    drifted = {"agent": ah.AGENT_DRIFTED, "runtime": ah.RUNTIME}
    ah.attest(api, service, node, "n1", measurements=drifted)
    ah.attest(api, service, node, "n1", measurements=drifted)  # no change: no new action
    ah.attest(api, service, node, "n1")
    assert [(a.action, a.source, a.subject) for a in seen] == [
        ("response.quarantine", "attestation", "n1"),
        ("response.release", "attestation", "n1"),
    ]
    assert "component agent drifted" not in seen[0].reason  # ids only in detail
    assert seen[0].detail["claims"]["executables"] == "contraindicated"


def test_the_agent_keeps_its_key_and_ueid_private_and_stable(tmp_path):
    first = Attester(tmp_path, accelerators=[{"kind": "gpu", "model": "sim-a100"}])
    again = Attester(tmp_path)
    assert first.key.public().to_jwk() == again.key.public().to_jwk()
    assert first.ueid == again.ueid and first.ueid[0] == 0x01
    for name in ("attestation.key", "attestation.json"):
        assert oct((tmp_path / name).stat().st_mode & 0o777) == "0o600"
    (claims,) = accelerator_claims([{"kind": "gpu", "model": "sim-a100", "count": 1}])
    assert (claims.kind, claims.model, claims.firmware_version) == ("GPU", "sim-a100", "1.0")


def test_the_agent_digest_follows_the_code_on_disk(tmp_path, monkeypatch):
    module = tmp_path / "fake_agent_mod.py"
    module.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    before = agent_digest(("fake_agent_mod",))
    assert agent_digest(("fake_agent_mod",)) == before
    module.write_text("X = 2\n")
    assert agent_digest(("fake_agent_mod",)) != before
    sys.modules.pop("fake_agent_mod", None)
    from scheduler.attest_agent import AttestError

    with pytest.raises(AttestError, match="not found"):
        agent_digest(("no_such_module_here",))


def test_an_expiry_that_requeues_work_is_a_response_action(api, service, clock):
    service.settings.heartbeat_timeout_s = 10_000  # the node stays online; only its result ages
    seen = []
    service.response_hooks.append(lambda session, action: seen.append(action))
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1")
    task = submit(api, alice)
    claim(api, node)
    clock.advance(91)
    # the API's maintenance loop or this explicit pass: whichever runs first requeues it
    service.write_sync(lambda s: service.attestation.maintain(s, clock()))
    expired = [a for a in seen if a.action == "response.quarantine"]
    assert len(expired) == 1 and "attestation result expired" in expired[0].reason
    assert expired[0].detail["requeued"] == [task["id"]]
