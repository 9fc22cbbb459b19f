"""Helpers for the alert handling tests: EVE alerts, tokens, posting."""

from __future__ import annotations

from typing import Any

from ids.layers import make_alert
from tests.conftest import bearer

T0 = 1_800_000_000.0


def alert(
    sid: int = 2_000_001,
    src: str = "203.0.113.5",
    dst: str = "10.0.0.80",
    dport: int | None = 443,
    node: str | None = None,
    ts: float = T0,
    severity: int = 2,
    layer: str = "perimeter",
    signature: str = "ET SCAN SYN flood",
) -> dict[str, Any]:
    return make_alert(
        ts=ts,
        src_ip=src,
        dest_ip=dst,
        proto=6,
        src_port=40000,
        dest_port=dport,
        signature_id=sid,
        signature=signature,
        category="Attempted Denial of Service",
        severity=severity,
        layer=layer,
        node_id=node,
    )


def sensor(service: Any) -> dict[str, str]:
    return bearer(service, "sensor", "edge-1")


def analyst(service: Any) -> dict[str, str]:
    return bearer(service, "analyst", "ana")


def post(api: Any, service: Any, alerts: list[Any], headers: dict[str, str] | None = None):
    return api.post("/v1/alerts", json=alerts, headers=headers or sensor(service))


def ingest(api: Any, service: Any, alerts: list[Any]) -> dict[str, Any]:
    resp = post(api, service, alerts)
    assert resp.status_code == 200, resp.text
    return resp.json()


def stored(service: Any) -> int:
    """How many aggregates the table holds."""
    from sqlmodel import func, select

    from scheduler.tables.alerts import AlertAggregate

    with service.read() as session:
        return int(session.exec(select(func.count()).select_from(AlertAggregate)).one())
