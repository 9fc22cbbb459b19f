"""Triage, suppressions (with expiry), filters, grouping, enrichment, export, roles."""

from __future__ import annotations

import json

import pytest

from scheduler.alerts import AlertsConfig
from tests.conftest import bearer
from tests.unit.scheduler.alerts_helpers import T0, alert, analyst, ingest, post
from tests.unit.scheduler.helpers import add_node, add_tenant, admin


def _one(api, service, **kw) -> str:
    return ingest(api, service, [alert(**kw)])["alert_ids"][0]


def _triage(api, service, alert_id: str, state: str, note: str = "", headers=None):
    return api.post(
        f"/v1/alerts/{alert_id}/triage",
        json={"state": state, "note": note},
        headers=headers or analyst(service),
    )


# -- triage ----------------------------------------------------------------------------
def test_triage_walks_the_state_machine_and_is_audited(api, service, clock):
    aid = _one(api, service)
    assert _triage(api, service, aid, "acknowledged").json()["state"] == "acknowledged"
    clock.advance(5)
    assert _triage(api, service, aid, "escalated", "looks real").json()["note"] == "looks real"
    closed = _triage(api, service, aid, "closed", "blocked at the edge")
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    shown = api.get(f"/v1/alerts/{aid}", headers=analyst(service)).json()
    moves = [(h["from_state"], h["to_state"], h["actor"]) for h in shown["history"]]
    assert moves == [
        ("new", "acknowledged", "analyst:ana"),
        ("acknowledged", "escalated", "analyst:ana"),
        ("escalated", "closed", "analyst:ana"),
    ]
    assert shown["eve"]["cntrust"]["triage"] == {"state": "closed", "note": "blocked at the edge"}


@pytest.mark.parametrize(
    ("path", "state", "note"),
    [
        ([], "new", ""),  # new -> new
        (["escalated"], "acknowledged", ""),  # no way back
        ([], "closed", ""),  # closing needs a note
    ],
)
def test_invalid_transition_is_409(api, service, path, state, note):
    aid = _one(api, service)
    for step in path:
        assert _triage(api, service, aid, step).status_code == 200
    resp = _triage(api, service, aid, state, note)
    assert resp.status_code == 409, resp.text
    body = resp.json()
    assert body["type"].endswith("/conflict") and body["to_state"] == state
    shown = api.get(f"/v1/alerts/{aid}", headers=analyst(service)).json()
    assert len(shown["history"]) == len(path)  # a refused move changes and audits nothing
    assert shown["state"] == (path[-1] if path else "new")


def test_unknown_state_and_unknown_alert(api, service):
    aid = _one(api, service)
    assert _triage(api, service, aid, "ignored").status_code == 422
    assert _triage(api, service, "f" * 32, "acknowledged").status_code == 404
    assert api.get("/v1/alerts/nope", headers=analyst(service)).status_code == 404


def test_alert_after_close_starts_a_new_aggregate_and_reopen_conflicts(api, service):
    aid = _one(api, service)
    assert _triage(api, service, aid, "closed", "false positive").status_code == 200
    again = ingest(api, service, [alert(ts=T0 + 60)])
    assert again["stored"] == 1 and again["alert_ids"] != [aid]
    resp = _triage(api, service, aid, "acknowledged", "reopen")
    assert resp.status_code == 409 and resp.json()["open_alert_id"] == again["alert_ids"][0]
    # once the newer one is closed too, the old one may reopen and takes new alerts again
    assert _triage(api, service, again["alert_ids"][0], "closed", "dup").status_code == 200
    assert _triage(api, service, aid, "acknowledged", "reopen").status_code == 200
    assert ingest(api, service, [alert(ts=T0 + 90)])["alert_ids"] == [aid]


# -- suppressions ------------------------------------------------------------------------
def _suppress(api, service, **body):
    body.setdefault("reason", "scanner we run ourselves")
    body.setdefault("ttl_s", 3600)
    return api.post("/v1/suppressions", json=body, headers=analyst(service))


def test_suppression_by_fields_with_expiry(api, service, clock):
    resp = _suppress(api, service, signature_id=2_000_001, src_ip="203.0.113.0/24", ttl_s=60)
    assert resp.status_code == 201, resp.text
    sup = resp.json()
    assert sup["owner"] == "ana" and sup["active"] and sup["created_by"] == "analyst:ana"
    out = ingest(
        api,
        service,
        [alert(), alert(src="198.51.100.1"), alert(sid=7), alert(src="203.0.113.200")],
    )
    assert out["received"] == 4 and out["suppressed"] == 2 and out["stored"] == 2
    assert out["suppressed_by"] == {sup["id"]: 2}
    clock.advance(61)  # expired: it stops suppressing
    late = ingest(api, service, [alert(ts=T0 + 61)])
    assert late["suppressed"] == 0 and late["stored"] == 1
    assert api.get("/v1/suppressions", headers=analyst(service)).json() == []
    listed = api.get("/v1/suppressions?include_expired=true", headers=analyst(service)).json()
    assert [s["id"] for s in listed] == [sup["id"]] and listed[0]["active"] is False


def test_suppression_by_node_and_destination(api, service):
    _suppress(api, service, node_id="node-7")
    _suppress(api, service, dest_ip="10.9.9.9", owner="soc-team")
    out = ingest(
        api,
        service,
        [alert(node="node-7"), alert(node="node-8"), alert(dst="10.9.9.9"), alert()],
    )
    assert out["suppressed"] == 2 and out["stored"] == 2
    owners = sorted(s["owner"] for s in api.get("/v1/suppressions", headers=admin(service)).json())
    assert owners == ["ana", "soc-team"]


def test_deleting_a_suppression_is_audited_and_stops_it(api, service):
    from sqlmodel import select

    from scheduler.tables.alerts import AlertAudit

    sup = _suppress(api, service, signature_id=2_000_001).json()
    assert ingest(api, service, [alert()])["suppressed"] == 1
    resp = api.delete(f"/v1/suppressions/{sup['id']}", headers=analyst(service))
    assert resp.status_code == 204
    assert api.delete(f"/v1/suppressions/{sup['id']}", headers=analyst(service)).status_code == 404
    assert ingest(api, service, [alert()])["suppressed"] == 0
    with service.read() as session:
        actions = [(a.action, a.actor) for a in session.exec(select(AlertAudit))]
    assert actions == [
        ("suppression.create", "analyst:ana"),
        ("suppression.delete", "analyst:ana"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {},  # no match field: would hide every alert
        {"src_ip": "not-a-network"},
        {"signature_id": 1, "reason": ""},
        {"signature_id": 1, "ttl_s": 0},
        {"signature_id": 1, "ttl_s": 10**9},
        {"signature_id": -1},
        {"signature_id": 1, "colour": "red"},
    ],
)
def test_bad_suppressions_are_422(api, service, body):
    assert _suppress(api, service, **body).status_code == 422


def test_suppression_roles(api, service):
    sensor = bearer(service, "sensor", "edge-1")
    body = {"signature_id": 1, "reason": "r", "ttl_s": 60}
    assert api.post("/v1/suppressions", json=body, headers=sensor).status_code == 403
    regulator = bearer(service, "regulator", "reg")
    assert api.post("/v1/suppressions", json=body, headers=regulator).status_code == 403
    assert api.get("/v1/suppressions", headers=regulator).status_code == 403  # no alert reads


# -- filters, grouping, enrichment ---------------------------------------------------------
def test_filters_by_severity_state_node_layer_time(api, service):
    ids = ingest(
        api,
        service,
        [
            alert(sid=1, severity=1, node="n1", ts=T0),
            alert(sid=2, severity=2, node="n2", ts=T0 + 100, layer="element"),
            alert(sid=3, severity=3, ts=T0 + 200),
        ],
    )["alert_ids"]
    _triage(api, service, ids[1], "escalated")

    def sids(query: str) -> list[int]:
        resp = api.get("/v1/alerts" + query, headers=analyst(service))
        assert resp.status_code == 200, resp.text
        return sorted(a["signature_id"] for a in resp.json())

    assert sids("") == [1, 2, 3]
    assert sids("?severity=1") == [1]
    assert sids("?severity=2") == [1, 2]
    assert sids("?state=escalated") == [2]
    assert sids("?state=new&state=escalated") == [1, 2, 3]
    assert sids("?node=n1&node=n2") == [1, 2]
    assert sids("?layer=element") == [2]
    assert sids(f"?since={T0 + 50}") == [2, 3]
    assert sids(f"?until={T0 + 150}") == [1, 2]
    assert sids("?since=2027-01-15T08:01:00%2B00:00&until=2027-01-15T08:03:00%2B00:00") == [2]
    assert sids("?src=203.0.113.5") == [1, 2, 3]
    assert sids("?limit=1") == [3]  # most recently seen first
    for bad in ("?severity=9", "?state=ignored", "?since=yesterday", "?since=2027-01-15T08:00"):
        assert api.get("/v1/alerts" + bad, headers=analyst(service)).status_code == 422, bad
    assert (
        api.get(f"/v1/alerts?since={T0}&until={T0 - 1}", headers=analyst(service)).status_code
        == 422
    )


def test_group_by_source(api, service):
    ingest(
        api,
        service,
        [alert(sid=1), alert(sid=1), alert(sid=2, severity=1), alert(src="198.51.100.7")],
    )
    groups = api.get("/v1/alerts?group_by=source", headers=analyst(service)).json()
    assert [(g["src_ip"], g["aggregates"], g["events"]) for g in groups] == [
        ("203.0.113.5", 2, 3),
        ("198.51.100.7", 1, 1),
    ]
    assert groups[0]["highest_severity"] == 1 and groups[0]["signature_ids"] == [1, 2]


def test_alerts_carry_their_nodes_operator_region_status(api, service):
    add_node(api, service, "n1", operator="op-a", region="cn-north")
    ingest(api, service, [alert(node="n1"), alert(node="ghost", sid=9), alert(sid=10)])
    rows = {a["signature_id"]: a for a in api.get("/v1/alerts", headers=analyst(service)).json()}
    assert rows[2_000_001]["node"] == {
        "node_id": "n1",
        "operator_id": "op-a",
        "region": "cn-north",
        "status": "online",
    }
    assert rows[9]["node"] is None and rows[10]["node"] is None
    shown = api.get(f"/v1/alerts/{rows[2_000_001]['id']}", headers=analyst(service)).json()
    assert shown["node"]["operator_id"] == "op-a"
    # evidence for the trust engine: alerts are stored by the node they name
    from sqlmodel import select

    from scheduler.tables.alerts import AlertAggregate

    with service.read() as session:
        named = session.exec(select(AlertAggregate).where(AlertAggregate.node_id == "n1")).all()
    assert [r.count for r in named] == [1]


# -- export ------------------------------------------------------------------------------
def test_export_is_eve_json_lines_that_round_trip(api, service):
    batch = [alert(sid=1, ts=T0), alert(sid=1, ts=T0 + 3), alert(sid=2, ts=T0 + 1, node="n1")]
    ids = ingest(api, service, batch)["alert_ids"]
    resp = api.get("/v1/alerts/export", headers=analyst(service))
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    lines = resp.text.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["cntrust"]["aggregate"]["id"] for r in records] == [ids[1], ids[0]]  # oldest first
    first = next(r for r in records if r["alert"]["signature_id"] == 1)
    assert first["event_type"] == "alert" and first["timestamp"].startswith("2027-01-15T08:00:03")
    assert first["cntrust"]["aggregate"]["count"] == 2
    # round trip: the exported lines are valid EVE alerts the API takes back
    out = ingest(api, service, records)
    assert out["received"] == 2 and out["stored"] == 0
    assert sorted(out["alert_ids"]) == sorted(ids)
    only = api.get("/v1/alerts/export?node=n1", headers=analyst(service)).text.splitlines()
    assert len(only) == 1 and json.loads(only[0])["alert"]["signature_id"] == 2


# -- roles ---------------------------------------------------------------------------------
def test_read_and_triage_roles(api, service):
    aid = _one(api, service)
    alice = add_tenant(api, service, "alice")
    sensor = bearer(service, "sensor", "edge-1")
    for path in ("/v1/alerts", f"/v1/alerts/{aid}", "/v1/alerts/export", "/v1/suppressions"):
        assert api.get(path, headers=alice).status_code == 403, path
        assert api.get(path, headers=sensor).status_code == 403, path
        for role in ("analyst", "admin"):
            assert api.get(path, headers=bearer(service, role, "x")).status_code == 200
        # the policy pack: regulators read provenance, tasks and policies, not alerts
        assert api.get(path, headers=bearer(service, "regulator", "x")).status_code == 403
    assert _triage(api, service, aid, "acknowledged", headers=sensor).status_code == 403
    assert _triage(api, service, aid, "acknowledged", headers=alice).status_code == 403
    regulator = bearer(service, "regulator", "reg")
    assert _triage(api, service, aid, "acknowledged", headers=regulator).status_code == 403
    # the policy pack: only security analysts triage and suppress alerts
    assert _triage(api, service, aid, "acknowledged", headers=admin(service)).status_code == 403
    assert _triage(api, service, aid, "acknowledged", headers=analyst(service)).status_code == 200


def test_track_by_dst_collapses_a_spoofed_flood(api, service):
    api.app.state.alerts_config = AlertsConfig(track="by_dst")
    flood = [alert(src=f"100.64.{i // 250}.{i % 250 + 1}", ts=T0 + i) for i in range(25)]
    out = ingest(api, service, flood)
    assert out["stored"] == 1 and out["aggregated_into_existing"] == 24
    agg = api.get("/v1/alerts", headers=analyst(service)).json()[0]
    assert agg["count"] == 25 and agg["distinct_sources"] == 25


def test_config_refuses_unknown_track():
    from ids.layers import LayersConfigError

    with pytest.raises(LayersConfigError):
        AlertsConfig(track="by_moon")
    with pytest.raises(LayersConfigError):
        AlertsConfig(max_alerts_per_request=5000)


def test_post_refuses_posting_as_non_sensor(api, service):
    assert post(api, service, [alert()], headers=analyst(service)).status_code == 403
