"""The whole-network layer in the scheduler: alerts -> incidents -> response, evidence."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from ids.layers import TaskUsage, TelemetryRecord, detect_element, make_alert
from scheduler.incidents import IncidentLayer
from scheduler.models import Node, NodeStatus
from scheduler.tables.incidents import IncidentRecord
from scheduler.tables.trust import TrustEvidence
from tests.conftest import bearer
from tests.unit.scheduler.alerts_helpers import T0, alert, sensor
from tests.unit.scheduler.helpers import add_node, add_tenant, admin, submit


def analyst(service: Any) -> dict[str, str]:
    return bearer(service, "analyst", "ana")


def post(api: Any, service: Any, batch: list[dict[str, Any]]) -> dict[str, Any]:
    resp = api.post("/v1/alerts", json=batch, headers=sensor(service))
    assert resp.status_code == 200, resp.text
    return resp.json()


def element_alerts(node: str, ts: float) -> list[dict[str, Any]]:
    """Mining-style abuse plus a listener left by the task: two element detections."""
    from ids.layers import ListeningSocket

    record = TelemetryRecord(
        node_id=node,
        node_ip="10.0.0.11",
        seq=1,
        collected_at_ms=int(ts * 1000),
        listening=(ListeningSocket("tcp", "0.0.0.0", 4444, 1, 99),),
        tasks=(TaskUsage("t1", "running", "/scratch/t1", 250, 0, 2000, 2000, 0, 0, (99,)),),
    )
    return detect_element(record)


def status(service: Any, node: str) -> NodeStatus:
    with service.read() as session:
        row = session.get(Node, node)
        assert row is not None
        return row.status


def test_element_incident_quarantines_the_node_and_moves_its_work(api, service):
    alice = add_tenant(api, service, "alice")
    add_node(api, service, "n1", cpu_cores=2)
    task = submit(api, alice, ["sleep", "5"])
    assert task["node_id"] == "n1"
    t0 = service.clock() - 60  # trust takes evidence from the recent past only
    found = element_alerts("n1", t0)
    assert {a["cntrust"]["detection"] for a in found} == {
        "ids.element.unexpected_listener",
        "ids.element.resource_overuse",
    }
    out = post(api, service, found + element_alerts("n1", t0 + 2))
    assert len(out["incidents"]) == 1 and out["quarantined"] == ["n1"]
    assert out["trust_evidence"] >= 1
    assert status(service, "n1") == NodeStatus.CORDONED
    moved = api.get(f"/v1/tasks/{task['id']}", headers=admin(service)).json()
    # the element alerts are trust evidence too: trust may cordon first; both are recorded
    assert moved["state"] == "admitted" and "quarantined by" in moved["reason"]

    incidents = api.get("/v1/incidents", headers=analyst(service)).json()
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc["kind"] == "ids.network.node_integrity" and inc["severity"] == 1
    assert inc["node_ids"] == ["n1"] and inc["response"]["action"] == "quarantine"
    assert inc["response"]["quarantined"] == ["n1"]
    assert set(inc["alert_ids"]) == set(out["alert_ids"])  # the incident groups its alerts
    detail = api.get(f"/v1/incidents/{inc['id']}", headers=analyst(service)).json()
    assert [q["source"] for q in detail["quarantines"]] == ["incident"]
    # the same incident seen again is not a second quarantine
    again = post(api, service, element_alerts("n1", t0 + 4))
    assert again["quarantined"] == []
    # the analyst releases each with a note; the node stays cordoned until the last one
    active = api.get("/v1/quarantines", params={"node": "n1"}, headers=analyst(service)).json()
    assert sorted(q["source"] for q in active) in (["incident"], ["incident", "trust"])
    for q in sorted(active, key=lambda q: q["source"]):
        assert status(service, "n1") == NodeStatus.CORDONED
        rel = api.post(
            f"/v1/quarantines/{q['id']}/release", json={"note": "load test"},
            headers=analyst(service),
        )  # fmt: skip
        assert rel.status_code == 200, rel.text
    assert status(service, "n1") == NodeStatus.ONLINE
    # the incident already answered does not quarantine the node again
    post(api, service, element_alerts("n1", t0 + 6))
    assert status(service, "n1") == NodeStatus.ONLINE


def test_a_flood_on_a_node_is_an_incident_but_the_victim_is_not_punished(api, service):
    add_node(api, service, "n1")
    flood = [
        alert(src=f"198.51.100.{i % 250}", dst="10.0.0.11", node="n1", ts=T0 + i * 0.01,
              severity=1)
        for i in range(1000)
    ]  # fmt: skip
    out = post(api, service, flood)
    assert len(out["incidents"]) == 1 and out["quarantined"] == []
    assert out["trust_evidence"] == 0  # a perimeter alert about a target blames no node
    inc = api.get(f"/v1/incidents/{out['incidents'][0]}", headers=analyst(service)).json()
    assert inc["kind"] == "ids.network.ddos" and inc["response"]["action"] == "none"
    assert any("victims, not culprits" in r for r in inc["response"]["reasons"])
    assert status(service, "n1") == NodeStatus.ONLINE


def test_alerts_blaming_a_node_are_evidence_once_per_aggregate(api, service):
    add_node(api, service, "n1")
    add_node(api, service, "n2")
    t0 = service.clock() - 600
    lateral = [
        make_alert(
            ts=t0 + i, src_ip="10.0.0.11", dest_ip="10.0.0.12", proto=6, src_port=40000 + i,
            dest_port=22, signature_id=1_990_007, signature="lateral", category="x",
            severity=2, layer="perimeter", node_id="n2",
            extra={"src_node_id": "n1", "dest_node_id": "n2"},
        )
        for i in range(500)
    ]  # fmt: skip
    out = post(api, service, lateral)
    assert out["stored"] == 1 and out["aggregated_into_existing"] == 499
    with service.read() as session:
        rows = list(session.exec(select(TrustEvidence)))
    by_node = sorted(r.node_id for r in rows)
    # one piece for the aggregate (against the source node), one for the incident's nodes
    assert by_node.count("n1") <= 2 and len(rows) <= 3
    assert any(r.evidence_id.startswith("eve:agg:") and r.node_id == "n1" for r in rows)
    assert not any(r.evidence_id.startswith("eve:agg:") and r.node_id == "n2" for r in rows)
    again = post(api, service, lateral)
    assert again["trust_evidence"] == 0


def test_revocation_when_configured_and_it_is_final(api, service):
    service.incidents.policy = type(service.incidents.policy)(revoke_enabled=True)
    actions: list[Any] = []
    service.response_hooks.append(lambda _s, action: actions.append(action))
    n1 = add_node(api, service, "n1")
    add_node(api, service, "n2")
    lateral = make_alert(
        ts=T0, src_ip="10.0.0.11", dest_ip="10.0.0.12", proto=6, src_port=40000, dest_port=22,
        signature_id=1_990_007, signature="lateral", category="x", severity=1,
        layer="perimeter", node_id="n2", detection="ids.perimeter.lateral_movement",
        extra={"src_node_id": "n1", "dest_node_id": "n2"},
    )  # fmt: skip
    out = post(api, service, [lateral])
    assert sorted(out["revoked"]) == ["n1", "n2"] and sorted(out["quarantined"]) == ["n1", "n2"]
    recorded = sorted((a.action, a.subject) for a in actions if a.source == "incident")
    assert recorded == [
        ("response.quarantine", "n1"),
        ("response.quarantine", "n2"),
        ("response.revoke", "n1"),
        ("response.revoke", "n2"),
    ]
    refused = api.post("/v1/agent/heartbeat", json={"running": []}, headers=n1)
    assert refused.status_code == 401 and refused.json()["reason"] == "revoked"
    inc = api.get(f"/v1/incidents/{out['incidents'][0]}", headers=analyst(service)).json()
    assert any("re-enrolls" in r for r in inc["response"]["reasons"])


def test_revocation_is_off_by_default(api, service):
    assert service.settings.incident_revoke is False
    assert service.incidents.policy.revoke_enabled is False


def test_restart_rebuilds_the_correlator_and_keeps_incidents(api, service):
    add_node(api, service, "n1")
    post(api, service, element_alerts("n1", T0))
    with service.read() as session:
        assert list(session.exec(select(IncidentRecord))) == []  # one record: not yet an incident
    fresh = IncidentLayer(service)
    replayed = fresh.restore()
    assert replayed == 2
    service.incidents = fresh
    out = post(api, service, element_alerts("n1", T0 + 2))
    assert out["quarantined"] == ["n1"]  # the group survived the "restart"


def test_bad_incident_requests_are_problems(api, service):
    alice = add_tenant(api, service, "alice")
    ana = analyst(service)
    cases = [
        api.get("/v1/incidents/inc-nope", headers=ana),
        api.get("/v1/incidents/" + "x" * 100, headers=ana),
        api.get("/v1/incidents", params={"severity": 9}, headers=ana),
        api.get("/v1/incidents", params={"limit": "many"}, headers=ana),
        api.get("/v1/incidents", headers=alice),
        api.get("/v1/incidents"),
    ]
    assert [r.status_code for r in cases] == [404, 404, 422, 422, 403, 401]
    assert all(r.headers["content-type"] == "application/problem+json" for r in cases)


@pytest.mark.parametrize("track", ["by_dst", "by_src"])
def test_track_setting_is_used(tmp_path, database_url, clock, track):
    from fastapi.testclient import TestClient

    from scheduler.app import create_app
    from scheduler.service import Service
    from scheduler.settings import Settings

    svc = Service(
        Settings(data_dir=tmp_path / "d", database_url=database_url, alerts_track=track),
        clock=clock,
    )
    try:
        with TestClient(create_app(svc)) as client:
            flood = [alert(src=f"198.51.100.{i}", ts=T0 + i) for i in range(50)]
            out = post(client, svc, flood)
        assert out["stored"] == (1 if track == "by_dst" else 50)
    finally:
        svc.close()


def test_track_setting_is_validated(tmp_path):
    from pydantic import ValidationError

    from scheduler.settings import Settings

    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, alerts_track="by_moon")


def test_revocation_follows_the_settings_flag(tmp_path, database_url, clock):
    from scheduler.service import Service
    from scheduler.settings import Settings

    svc = Service(
        Settings(data_dir=tmp_path / "d", database_url=database_url, incident_revoke=True),
        clock=clock,
    )
    try:
        assert IncidentLayer.install(svc).policy.revoke_enabled
        assert IncidentLayer.install(svc) is svc.incidents  # one correlator per service
    finally:
        svc.close()


def test_a_burst_of_enrollments_from_one_operator_is_a_sybil_incident(api, service):
    from tests.unit.scheduler.test_identity import add_operator, enrolled

    add_operator(api, service, "acme")
    for i in range(5):
        enrolled(api, service, "acme", f"sybil-{i}")
    rows = api.get(
        "/v1/incidents", params={"kind": "ids.network.sybil_enrollment"}, headers=analyst(service)
    ).json()
    by_operator = [r for r in rows if r["group_key"] == "operator:acme"]
    assert len(by_operator) == 1
    inc = by_operator[0]
    assert inc["node_ids"] == [f"sybil-{i}" for i in range(5)] and inc["alert_count"] == 5
    assert inc["response"]["action"] == "none"  # medium severity: for an analyst to judge
