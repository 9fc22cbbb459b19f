"""The scheduler's one quarantine path: cordon, requeue, record, release by an analyst."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import col, select

from scheduler import quarantine
from scheduler.errors import InvalidRequest
from scheduler.models import Node, NodeStatus, TaskEvent
from scheduler.service import ResponseAction
from scheduler.tables.quarantine import NodeQuarantine
from tests.conftest import bearer
from tests.unit.scheduler.helpers import add_node, add_tenant, admin, submit


@pytest.fixture
def recorded(service) -> list[ResponseAction]:
    seen: list[ResponseAction] = []
    service.response_hooks.append(lambda _session, action: seen.append(action))
    return seen


def analyst(service: Any) -> dict[str, str]:
    return bearer(service, "analyst", "ana")


def status(service: Any, node: str) -> NodeStatus:
    with service.read() as session:
        row = session.get(Node, node)
        assert row is not None
        return row.status


def test_analyst_quarantine_cordons_requeues_and_is_recorded(api, service, recorded):
    alice = add_tenant(api, service, "alice")
    add_node(api, service, "n1", cpu_cores=2)
    tasks = [submit(api, alice, ["sleep", "1"]) for _ in range(2)]
    assert {t["node_id"] for t in tasks} == {"n1"}
    resp = api.post(
        "/v1/nodes/n1/quarantine", json={"reason": "odd traffic"}, headers=analyst(service)
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["source"] == "analyst" and body["requeued"] == 2 and body["active"]
    assert status(service, "n1") == NodeStatus.CORDONED
    for t in tasks:
        task = api.get(f"/v1/tasks/{t['id']}", headers=admin(service)).json()
        assert task["state"] == "admitted" and task["attempt"] == 1
        assert "quarantined by analyst (odd traffic)" in task["reason"]
    assert [(a.action, a.subject, a.source) for a in recorded] == [
        ("response.quarantine", "n1", "analyst")
    ]
    assert recorded[0].detail["requeued"] == 2 and recorded[0].actor == "analyst:ana"

    listed = api.get("/v1/quarantines", headers=analyst(service)).json()
    assert [q["id"] for q in listed] == [body["id"]]
    released = api.post(
        f"/v1/quarantines/{body['id']}/release",
        json={"note": "false positive: backup job"},
        headers=analyst(service),
    )
    assert released.status_code == 200, released.text
    out = released.json()
    assert not out["active"] and out["release_note"] == "false positive: backup job"
    assert out["released_by"] == "analyst:ana" and out["node_still_quarantined_by"] == []
    assert status(service, "n1") == NodeStatus.ONLINE
    assert recorded[-1].action == "response.release" and recorded[-1].reason.startswith("false")
    # the requeued work is placed again on the released node
    for t in tasks:
        assert api.get(f"/v1/tasks/{t['id']}", headers=admin(service)).json()["state"] == "placed"
    assert api.get("/v1/quarantines", headers=analyst(service)).json() == []
    history = api.get(
        "/v1/quarantines", params={"include_released": True}, headers=analyst(service)
    ).json()
    assert len(history) == 1


def test_node_stays_cordoned_while_any_quarantine_remains(service, recorded):
    now = service.clock()
    service.write_sync(
        lambda s: s.add(
            Node(
                id="n1", name="n1", cpu_cores=1, memory_mb=1, registered_at=now, last_heartbeat=now
            )
        )
    )

    def q(source: str, ref: str) -> NodeQuarantine:
        return service.write_sync(
            lambda s: quarantine.quarantine_node(
                service, s, "n1", source=source, reason=f"{source} says so", reference_id=ref,
                actor="test",
            )
        )  # fmt: skip

    first, second = q("incident", "inc-1"), q("attestation", "ear-1")
    again = q("incident", "inc-1")
    assert again.id == first.id  # same trigger while active: one quarantine, one record
    assert [a.source for a in recorded] == ["incident", "attestation"]
    service.write_sync(
        lambda s: quarantine.release_node(
            service, s, "n1", by="ana", note="checked", quarantine_id=first.id
        )
    )
    assert status(service, "n1") == NodeStatus.CORDONED  # the attestation one remains
    assert recorded[-1].detail["still_quarantined_by"] == ["attestation"]
    service.write_sync(
        lambda s: quarantine.release_node(
            service, s, "n1", by="ana", note="re-attested", quarantine_id=second.id
        )
    )
    assert status(service, "n1") == NodeStatus.ONLINE
    with pytest.raises(InvalidRequest):
        service.write_sync(
            lambda s: quarantine.quarantine_node(
                service, s, "n1", source="rumour", reason="x", actor="t"
            )
        )


def test_trust_quarantine_goes_through_the_one_path_and_releases_through_trust(
    api, service, recorded
):
    from scheduler.trust_wiring import TrustLayer

    layer = service.trust if isinstance(getattr(service, "trust", None), TrustLayer) else None
    assert layer is not None
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "bad", cpu_cores=1)
    from tests.unit.scheduler.helpers import claim, report

    for _ in range(10):
        submit(api, alice, ["true"])
        for item in claim(api, node):
            report(api, node, item["id"], exit_code=137)
        if status(service, "bad") == NodeStatus.CORDONED:
            break
    assert status(service, "bad") == NodeStatus.CORDONED
    rows = api.get("/v1/quarantines", headers=analyst(service)).json()
    assert [r["source"] for r in rows] == ["trust"]
    assert recorded and recorded[0].source == "trust"
    assert recorded[0].actor == "spiffe://cntrust.local/scheduler/trust"  # the deciding service
    out = api.post(
        f"/v1/quarantines/{rows[0]['id']}/release",
        json={"note": "hardware replaced"},
        headers=analyst(service),
    )
    assert out.status_code == 200, out.text
    assert status(service, "bad") == NodeStatus.ONLINE
    trust_body = api.get("/v1/nodes/bad/trust", headers=admin(service)).json()
    assert trust_body["quarantine"] is None and trust_body["placement"]["eligible"], trust_body
    with service.read() as session:
        moved = session.exec(
            select(TaskEvent).where(col(TaskEvent.reason).contains("quarantined by trust"))
        ).all()
    assert all("requeued: node bad" in e.reason for e in moved)


def test_bad_quarantine_requests_are_problems(api, service):
    add_node(api, service, "n1")
    alice = add_tenant(api, service, "alice")
    ana = analyst(service)
    cases = [
        api.post("/v1/nodes/ghost/quarantine", json={"reason": "x"}, headers=ana),
        api.post("/v1/nodes/n1/quarantine", json={"reason": ""}, headers=ana),
        api.post("/v1/nodes/n1/quarantine", json={"reason": "x", "extra": 1}, headers=ana),
        api.post(
            "/v1/nodes/n1/quarantine",
            content=b"{nope",
            headers={**ana, "Content-Type": "application/json"},
        ),
        api.post("/v1/nodes/n1/quarantine", json={"reason": "x"}, headers=alice),
        api.post("/v1/quarantines/999/release", json={"note": "x"}, headers=ana),
        api.post("/v1/quarantines/abc/release", json={"note": "x"}, headers=ana),
        api.get("/v1/quarantines", headers=alice),
        api.get("/v1/quarantines", params={"limit": 0}, headers=ana),
    ]
    assert [r.status_code for r in cases] == [404, 422, 422, 400, 403, 404, 422, 403, 422]
    for r in cases:
        assert r.headers["content-type"] == "application/problem+json"
    made = api.post("/v1/nodes/n1/quarantine", json={"reason": "x"}, headers=ana).json()
    no_note = api.post(f"/v1/quarantines/{made['id']}/release", json={}, headers=ana)
    assert no_note.status_code == 422
    ok = api.post(f"/v1/quarantines/{made['id']}/release", json={"note": "ok"}, headers=ana)
    assert ok.status_code == 200
    twice = api.post(f"/v1/quarantines/{made['id']}/release", json={"note": "ok"}, headers=ana)
    assert twice.status_code == 409
    assert twice.headers["content-type"] == "application/problem+json"
