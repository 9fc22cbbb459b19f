"""End to end: a scenario pcap through the perimeter engine, shipped by the sensor's
`AlertShipper` to POST /v1/alerts, visible as aggregated alerts."""

from __future__ import annotations

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
