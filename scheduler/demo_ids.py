"""The demo's attack steps: perimeter pcaps through the sensor, a task that abuses its node.

Called by :mod:`scheduler.demo` after its own steps, against the same local deployment:

1. a SYN scan and a spoofed SYN flood (``ids.scenarios`` pcaps) go through the perimeter
   sensor (rule engine + behavioural detectors) and are shipped to ``POST /v1/alerts`` by
   the sensor's ``AlertShipper``; the flood's thousands of matched packets arrive as a few
   aggregated alerts, and the correlator opens a DDoS incident whose victim is left alone;
2. a tenant's task busy-loops far beyond its CPU request and leaves a listening socket;
   the node agent's element sensor reports it (signed telemetry), the correlator opens a
   node-integrity incident, the node is quarantined and the work it held is rescheduled;
3. an analyst releases the quarantine with a note and the node is back online.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from scheduler.client import ApiError, Client

if TYPE_CHECKING:
    from scheduler.demo import Scenario

FLOOD_TARGET = "10.0.0.80"  # the scenario's web server, played here by a demo node
SYN_SID = 9_100_001
SYN_RULE = (
    'alert tcp any any -> any 443 (msg:"CNTRUST DEMO SYN to 443"; flags:S; '
    f"classtype:attempted-dos; sid:{SYN_SID}; rev:1;)\n"
)
ABUSE = (
    "import socket, time\n"
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
    "end = time.time() + 10\n"
    "while time.time() < end:\n"
    "    pass\n"
)


def _wait(probe: Callable[[], Any], timeout: float, step: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    value = probe()
    while not value and time.monotonic() < deadline:
        time.sleep(step)
        value = probe()
    return value


def _ship(scenario: Scenario, alerts: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """POST alerts like ``cntrust ids sensor`` does; returns (shipped, incident ids)."""
    from ids.engine.sensor import AlertShipper

    d = scenario.d
    assert d.service is not None
    token = d.service.issue_token("sensor", "perimeter-demo", timedelta(minutes=10))
    incidents: list[str] = []

    def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        resp = httpx.post(url, content=body, headers=headers, timeout=30)
        if resp.status_code == 200:
            incidents.extend(resp.json().get("incidents", []))
        return resp.status_code

    shipper = AlertShipper(d.url, token, post, batch_size=500)
    shipper.add(alerts)
    shipper.flush()
    return shipper.shipped, incidents


def perimeter_steps(scenario: Scenario, victim: str, workdir: Path) -> None:
    from ids.engine import EngineConfig, scan_pcap
    from ids.layers import PerimeterConfig, PerimeterSensor
    from ids.scenarios import RULES_FILE, generate_scenarios

    out, admin = scenario.console, scenario.admin
    out.rule("[bold]an attack from outside (perimeter sensor)")
    generate_scenarios(workdir, seed=7, only=["syn_scan", "syn_flood"])
    rules = RULES_FILE.read_text() + SYN_RULE
    shipped: dict[str, int] = {}
    incidents: list[str] = []
    matched = 0
    for name in ("syn_scan", "syn_flood"):
        pcap = workdir / f"{name}.pcap"
        events = scan_pcap(str(pcap), rules, config=EngineConfig(node_id=victim))
        found = [e for e in events if e.get("event_type") == "alert"]
        matched += sum(e["alert"]["signature_id"] == SYN_SID for e in found)
        sensor = PerimeterSensor(PerimeterConfig(node_ips={FLOOD_TARGET: victim}))
        found += sensor.observe_pcap(pcap)
        shipped[name], opened = _ship(scenario, found)
        incidents += opened
    listed = admin.request("GET", "/v1/alerts", params={"node": victim, "limit": 1000})
    syn = [a for a in listed if a["signature_id"] == SYN_SID]
    scenario.check(
        "a spoofed SYN flood and a SYN scan go through the perimeter sensor",
        "every alert shipped; the flood's matches in >= 100x fewer aggregated alerts",
        f"{sum(shipped.values())} alerts shipped; {matched} SYN matches -> {len(syn)} "
        f"aggregate(s), count {sum(a['count'] for a in syn)}",
        bool(syn) and sum(a["count"] for a in syn) == matched and len(syn) * 100 <= matched,
    )
    kinds = admin.request("GET", "/v1/incidents", params={"node": victim})
    ddos = [i for i in kinds if i["kind"] == "ids.network.ddos"]
    scenario.check(
        f"the flood on {victim} becomes an incident; the victim is not punished",
        "a DDoS incident naming the node, response none, node still online",
        (
            f"{ddos[0]['id']}: {len(ddos[0]['sources'])} sources, response "
            f"{ddos[0]['response'].get('action')}; node {admin.node(victim)['status']}"
            if ddos
            else f"incidents: {[i['kind'] for i in kinds]}"
        ),
        bool(ddos)
        and ddos[0]["response"].get("action") == "none"
        and admin.node(victim)["status"] == "online",
    )


def abuse_steps(scenario: Scenario) -> None:
    out, admin = scenario.console, scenario.admin
    out.rule("[bold]a task abuses its node (element sensor, whole-network response)")
    mallory = scenario.tenant("mallory")
    abuse = mallory.submit([sys.executable, "-c", ABUSE], cpu=0.05, region="west", timeout_s=15)
    running = scenario.wait_for(mallory, abuse["id"], ("running", "succeeded", "failed"))
    node = str(running.get("node_id") or "")
    # more work lands on the node too; the tasks free to move must move when it is quarantined
    bystanders = [mallory.submit(["sleep", "10"], cpu=1.0, timeout_s=20) for _ in range(6)]
    held = [t["id"] for t in bystanders if t.get("node_id") == node]

    def cordoned() -> bool:
        return bool(node) and admin.node(node)["status"] == "cordoned"

    ok = running["state"] == "running" and _wait(cordoned, 30)
    active = admin.request("GET", "/v1/quarantines", params={"node": node}) if node else []
    incidents = admin.request("GET", "/v1/incidents", params={"node": node}) if node else []
    integrity = [i for i in incidents if i["kind"] == "ids.network.node_integrity"]
    scenario.check(
        f"a task asking 0.05 CPU busy-loops a whole core and leaves a listener on {node}",
        "element alerts -> node-integrity incident -> node quarantined",
        (
            f"incident {integrity[0]['id']} (severity {integrity[0]['severity']}, "
            f"{integrity[0]['alert_count']} alerts); node {node} quarantined by "
            f"{', '.join(sorted({q['source'] for q in active}))}"
            if integrity and active
            else f"node {node}: {admin.node(node)['status'] if node else '-'}, "
            f"incidents {[i['kind'] for i in incidents]}"
        ),
        bool(ok and integrity and active)
        and any(q["source"] == "incident" for q in active)
        and integrity[0]["response"].get("action") == "quarantine",
    )
    moved = scenario.wait_for(mallory, abuse["id"], ("admitted", "placed", "succeeded"), 10)
    requeue = [
        e["reason"] for e in moved.get("events", []) if "quarantined by" in (e.get("reason") or "")
    ]
    elsewhere = [_moved_later(mallory, t, node) for t in held]
    scenario.check(
        f"the work {node} held is rescheduled",
        "the abusive task requeued (no other west node); the others run elsewhere",
        f"abusive task {moved['state']} (attempt {moved['attempt']}): "
        f"{(requeue or ['no requeue event'])[0][:60]}; "
        f"{sum(bool(e) for e in elsewhere)}/{len(held)} other tasks moved off {node}",
        moved["attempt"] >= 1 and bool(requeue) and all(elsewhere),
    )
    for task in [abuse, *bystanders]:
        with contextlib.suppress(ApiError):  # already finished: nothing to clean up
            mallory.cancel(task["id"])

    assert scenario.d.service is not None
    analyst = Client(
        scenario.d.url,
        scenario.d.service.issue_token("analyst", "demo-analyst", timedelta(minutes=10)),
    )
    for q in active:
        analyst.request(
            "POST", f"/v1/quarantines/{q['id']}/release", json={"note": "demo: abuser removed"}
        )
    status = admin.node(node)["status"] if node else "-"
    scenario.check(
        "an analyst releases the quarantine with a note",
        "node back online",
        f"{len(active)} quarantine(s) released; node {node} {status}",
        status == "online" and bool(active),
    )


def _moved_later(client: Client, task_id: str, node: str) -> bool:
    """Whether the task was requeued off ``node`` and placed elsewhere (waits up to 20 s)."""

    def moved() -> bool:
        task = client.task(task_id)
        return bool(task["attempt"] >= 1 and task.get("node_id") not in (None, node))

    return bool(_wait(moved, 20))


def run(scenario: Scenario) -> None:
    """The attack steps (see the module docstring)."""
    d = scenario.d
    assert d.service is not None
    # the demo's own steps killed one agent: bring it back so every region has a node
    for spec in d.nodes:
        if spec.name not in d.agents:
            d.start_agent(spec)
    scenario.wait_nodes(len(d.nodes))
    perimeter_steps(scenario, "node-1", d.settings.data_dir / "ids-scenarios")
    abuse_steps(scenario)
