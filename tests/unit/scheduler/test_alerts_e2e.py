"""End to end: a scenario pcap through the perimeter engine, shipped by the sensor's
`AlertShipper` to POST /v1/alerts, visible as aggregated alerts."""

from __future__ import annotations

import json
from pathlib import Path

from ids.engine import EngineConfig, scan_pcap
from ids.engine.sensor import AlertShipper
from ids.scenarios import EXPLOIT_SID, RULES_FILE, generate_scenarios
from scheduler.alerts import AlertsConfig
from tests.unit.scheduler.alerts_helpers import analyst, sensor, stored
from tests.unit.scheduler.helpers import add_node

SYN_SID = 9_100_001
SYN_RULE = (
    'alert tcp any any -> any 443 (msg:"CNTRUST TEST SYN to 443"; flags:S; '
    f"classtype:attempted-dos; sid:{SYN_SID}; rev:1;)\n"
)


def _ship(api, service, events, batch_size: int = 15) -> AlertShipper:
    headers = sensor(service)
    token = headers["Authorization"].split()[1]

    def post(url: str, body: bytes, hdrs: dict[str, str]) -> int:
        assert url == "http://testserver/v1/alerts"
        return api.post("/v1/alerts", content=body, headers=hdrs).status_code

    shipper = AlertShipper("http://testserver", token, post, batch_size=batch_size)
    shipper.add([e for e in events if e.get("event_type") == "alert"])
    assert shipper.flush() and shipper.failed_posts == 0
    return shipper


def test_scenario_pcaps_scanned_shipped_and_aggregated(api, service, tmp_path: Path):
    add_node(api, service, "node-03", operator="op-east", region="cn-east")
    api.app.state.alerts_config = AlertsConfig(track="by_dst")  # spoofed flood: key by target
    generate_scenarios(tmp_path, seed=1, only=["syn_flood", "exploit_payload"])
    rules = RULES_FILE.read_text() + SYN_RULE
    config = EngineConfig(node_id="node-03")
    flood = list(scan_pcap(str(tmp_path / "syn_flood.pcap"), rules, config=config))
    syn_alerts = [e for e in flood if e.get("alert", {}).get("signature_id") == SYN_SID]
    assert len(syn_alerts) >= 1600
    shipper = _ship(api, service, flood)
    assert shipper.shipped == len([e for e in flood if e.get("event_type") == "alert"])

    listed = api.get("/v1/alerts?node=node-03", headers=analyst(service)).json()
    syn = [a for a in listed if a["signature_id"] == SYN_SID]
    assert sum(a["count"] for a in syn) == len(syn_alerts)
    assert len(syn) * 100 <= len(syn_alerts)  # at least 100x fewer alerts than matched packets
    top = max(syn, key=lambda a: a["count"])
    assert top["count"] >= 1600 and top["dest_port"] == 443
    assert top["node"] == {
        "node_id": "node-03",
        "operator_id": "op-east",
        "region": "cn-east",
        "status": "online",
    }

    exploit = list(scan_pcap(str(tmp_path / "exploit_payload.pcap"), rules, config=config))
    before = stored(service)
    _ship(api, service, exploit)
    hits = api.get("/v1/alerts?src=203.0.113.77", headers=analyst(service)).json()
    assert [a["signature_id"] for a in hits] == [EXPLOIT_SID]
    assert hits[0]["dest_ip"] == "10.0.0.13" and hits[0]["layer"] == "perimeter"
    assert stored(service) > before


def test_a_large_capture_arrives_whole_in_size_bounded_batches(tmp_path: Path, database_url, clock):
    """Alerts with their packets (base64) of a 1,600-SYN flood: 1,000 alerts in one batch would
    pass the alerts body limit; the sensor cuts batches by size and every alert arrives."""
    from fastapi.testclient import TestClient

    from scheduler.app import create_app
    from scheduler.service import Service
    from scheduler.settings import Settings

    limit = 64 * 1024
    svc = Service(
        Settings(data_dir=tmp_path / "d", database_url=database_url, alerts_max_body_bytes=limit),
        clock=clock,
    )
    generate_scenarios(tmp_path, seed=1, only=["syn_flood"])
    events = scan_pcap(
        str(tmp_path / "syn_flood.pcap"), SYN_RULE, config=EngineConfig(log_packet=True)
    )
    found = [e for e in events if e.get("event_type") == "alert"]
    assert len(found) >= 1600
    whole = len(json.dumps(found[:1000]).encode())
    assert whole > limit  # one count-based batch would be refused
    try:
        with TestClient(create_app(svc)) as api:
            token = sensor(svc)["Authorization"].split()[1]
            sizes: list[int] = []
            received = 0

            def post(url: str, body: bytes, hdrs: dict[str, str]) -> int:
                nonlocal received
                sizes.append(len(body))
                resp = api.post("/v1/alerts", content=body, headers=hdrs)
                if resp.status_code == 200:
                    out = resp.json()
                    assert out["received"] == out["stored"] + out["aggregated_into_existing"]
                    received += out["received"]
                return resp.status_code

            unsplit = AlertShipper("http://testserver", token, post, batch_size=1000,
                                   max_batch_bytes=10 * limit)  # fmt: skip
            unsplit.add(found[:1000])
            assert not unsplit.flush() and received == 0  # 413: too large for the endpoint
            sizes.clear()
            shipper = AlertShipper(
                "http://testserver", token, post, batch_size=1000, max_batch_bytes=limit
            )
            shipper.add(found)
            assert shipper.flush() and shipper.failed_posts == 0
            assert received == shipper.shipped == len(found)
            assert max(sizes) <= limit and len(sizes) >= whole // limit
            listed = api.get("/v1/alerts", params={"limit": 1000}, headers=analyst(svc)).json()
            assert len(listed) == 1000 and all(a["signature_id"] == SYN_SID for a in listed)
    finally:
        svc.close()
