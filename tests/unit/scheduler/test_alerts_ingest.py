"""POST /v1/alerts: validation, aggregation, size limits, roles."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import bearer
from tests.unit.scheduler.alerts_helpers import (
    T0,
    alert,
    analyst,
    ingest,
    post,
    sensor,
    stored,
)
from tests.unit.scheduler.helpers import add_tenant, admin


@pytest.fixture
def big(tmp_path: Path, database_url: str, clock: Any) -> Iterator[tuple[Any, Any]]:
    """An app whose body limit admits 1,000 alerts in one request."""
    from fastapi.testclient import TestClient

    from scheduler.app import create_app
    from scheduler.service import Service
    from scheduler.settings import Settings

    settings = Settings(
        data_dir=tmp_path / "big", database_url=database_url, max_body_bytes=2 * 1024 * 1024
    )
    svc = Service(settings, clock=clock)
    with TestClient(create_app(svc)) as client:
        yield client, svc
    svc.close()


def test_syn_flood_of_1000_identical_alerts_is_one_aggregate(big):
    api, service = big
    flood = [alert(ts=T0 + i * 0.001) for i in range(1000)]
    out = ingest(api, service, flood)
    assert out["received"] == 1000
    assert out["stored"] == 1 and out["aggregated_into_existing"] == 999
    assert out["suppressed"] == 0
    listed = api.get("/v1/alerts", headers=analyst(service)).json()
    assert len(listed) == 1  # 1000x fewer alerts than matched packets
    agg = listed[0]
    assert agg["count"] == 1000
    assert agg["first_seen"] == pytest.approx(T0)
    assert agg["last_seen"] == pytest.approx(T0 + 0.999)
    assert agg["state"] == "new" and agg["signature_id"] == 2_000_001
    # the next batch of the same flood folds into the same open aggregate
    again = ingest(api, service, [alert(ts=T0 + 5)])
    assert again["stored"] == 0 and again["aggregated_into_existing"] == 1
    assert again["alert_ids"] == [agg["id"]]
    shown = api.get(f"/v1/alerts/{agg['id']}", headers=analyst(service)).json()
    assert shown["count"] == 1001 and shown["last_seen"] == pytest.approx(T0 + 5)
    assert shown["eve"]["timestamp"].startswith("2027-01-15T08:00:05")
    assert shown["eve"]["cntrust"]["aggregate"]["count"] == 1001


def test_more_than_1000_alerts_are_refused_413(big):
    api, service = big
    resp = post(api, service, [alert()] * 1001)
    assert resp.status_code == 413
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert "at most 1000" in resp.json()["detail"]
    assert stored(service) == 0


def test_distinct_alerts_make_distinct_aggregates_with_counts(api, service):
    batch = [alert(src="203.0.113.5"), alert(src="203.0.113.6"), alert(src="203.0.113.5")]
    out = ingest(api, service, batch)
    assert (out["stored"], out["aggregated_into_existing"]) == (2, 1)
    assert len(set(out["alert_ids"])) == 2
    counts = sorted(a["count"] for a in api.get("/v1/alerts", headers=analyst(service)).json())
    assert counts == [1, 2]


def test_last_raw_record_is_the_newest_and_recorded_sensor(api, service):
    first = alert(ts=T0 + 10, signature="old text")
    out = ingest(api, service, [first])
    newer = alert(ts=T0 + 20, signature="new text")
    ingest(api, service, [newer])
    older = alert(ts=T0 + 1, signature="older text")
    ingest(api, service, [older])
    shown = api.get(f"/v1/alerts/{out['alert_ids'][0]}", headers=analyst(service)).json()
    assert shown["signature"] == "new text"
    assert shown["eve"]["alert"]["signature"] == "new text"
    assert shown["first_seen"] == pytest.approx(T0 + 1)
    assert shown["last_seen"] == pytest.approx(T0 + 20)
    assert shown["count"] == 3 and shown["sensor"] == "sensor:edge-1"


def test_out_of_order_batch_keeps_the_newest_record(api, service):
    batch = [alert(ts=T0 + 9, signature="newest"), alert(ts=T0 + 1, signature="older")]
    aid = ingest(api, service, batch)["alert_ids"][0]
    shown = api.get(f"/v1/alerts/{aid}", headers=analyst(service)).json()
    assert shown["signature"] == "newest" and shown["last_seen"] == pytest.approx(T0 + 9)
    assert shown["first_seen"] == pytest.approx(T0 + 1)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda a: a.pop("timestamp"), "timestamp"),
        (lambda a: a.update(timestamp="2026-01-01T00:00:00"), "timestamp"),
        (lambda a: a.update(timestamp="0001-01-01T00:00:00+14:00"), "timestamp"),
        (lambda a: a.update(timestamp=1800000000), "timestamp"),
        (lambda a: a.update(event_type="flow"), "event_type"),
        (lambda a: a.pop("alert"), "alert"),
        (lambda a: a["alert"].pop("signature_id"), "alert.signature_id"),
        (lambda a: a["alert"].update(signature_id="9"), "alert.signature_id"),
        (lambda a: a["alert"].update(signature_id=True), "alert.signature_id"),
        (lambda a: a["alert"].update(severity=0), "alert.severity"),
        (lambda a: a["alert"].update(signature=None), "alert.signature"),
        (lambda a: a.update(src_ip="not-an-ip"), "src_ip"),
        (lambda a: a.update(dest_ip=7), "dest_ip"),
        (lambda a: a.update(dest_port=70000), "dest_port"),
        (lambda a: a.update(cntrust=[]), "cntrust"),
        (lambda a: a["cntrust"].update(node_id=5), "cntrust.node_id"),
        (lambda a: a["alert"].update(signature="x\x00y"), "alert.signature"),
    ],
)
def test_bad_alert_is_a_422_naming_index_and_field(api, service, mutate, field):
    bad = alert(src="198.51.100.9")
    mutate(bad)
    resp = post(api, service, [alert(), alert(), bad])
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["errors"][0]["index"] == 2 and body["errors"][0]["field"] == field
    assert body["detail"].startswith("alert 2:")
    assert stored(service) == 0  # the batch is refused whole


@pytest.mark.parametrize(
    "body",
    [b'{"event_type": "alert"}', b'"alert"', b"42", b"null"],
)
def test_non_list_body_is_422(api, service, body):
    resp = api.post("/v1/alerts", content=body, headers=sensor(service))
    assert resp.status_code == 422
    assert "JSON list" in resp.json()["detail"]


@pytest.mark.parametrize("body", [b"[{", b"[NaN]", b"[" * 5000 + b"]" * 5000, b""])
def test_malformed_json_is_400_not_a_crash(api, service, body):
    resp = api.post("/v1/alerts", content=body, headers=sensor(service))
    assert resp.status_code == 400
    assert resp.json()["type"].endswith("/malformed-json")


def test_non_object_items_are_named(api, service):
    resp = post(api, service, [alert(), "x", 3, alert()])
    assert resp.status_code == 422
    assert [(e["index"], e["field"]) for e in resp.json()["errors"]] == [
        (1, "<root>"),
        (2, "<root>"),
    ]
    assert "(and 1 more)" in resp.json()["detail"]


def test_empty_list_is_accepted(api, service):
    out = ingest(api, service, [])
    assert out == {
        "received": 0,
        "stored": 0,
        "aggregated_into_existing": 0,
        "suppressed": 0,
        "alert_ids": [],
        "suppressed_by": {},
        "incidents": [],
        "quarantined": [],
        "revoked": [],
        "trust_evidence": 0,
    }


def test_sensor_batches_have_their_own_bounded_limit(api, service):
    over_app_limit = json.dumps([alert()] * 60).encode()
    assert len(over_app_limit) > service.settings.max_body_bytes
    resp = api.post("/v1/alerts", content=over_app_limit, headers=sensor(service))
    assert resp.status_code == 200, resp.text
    limit = service.settings.alerts_max_body_bytes
    huge = b"[" + b" " * limit + b"]"
    resp = api.post("/v1/alerts", content=huge, headers=sensor(service))
    assert resp.status_code == 413
    assert resp.headers["content-type"] == "application/problem+json"
    assert str(limit) in resp.json()["detail"]


def test_who_may_post_alerts(api, service):
    alice = add_tenant(api, service, "alice")
    assert post(api, service, [alert()], headers=admin(service)).status_code == 200
    assert post(api, service, [alert()], headers=alice).status_code == 403
    assert post(api, service, [alert()], headers=analyst(service)).status_code == 403
    node = bearer(service, "node", "n1")
    assert post(api, service, [alert()], headers=node).status_code == 403
    assert api.post("/v1/alerts", json=[alert()]).status_code == 401
