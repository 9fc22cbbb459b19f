"""Demo steps of the identity layer: agents on mTLS with their SVIDs, and a revoked node
locked out within 2 s (``cntrust demo`` runs these when its agents use mTLS)."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

import httpx

from identity.errors import IdentityError
from scheduler.agent_identity import AgentIdentity

if TYPE_CHECKING:
    from scheduler.demo import Scenario

LOCKOUT_BUDGET_S = 2.0


def identity_steps(scenario: Scenario) -> None:
    d = scenario.d
    if d.tls_url is None:
        return
    scenario.console.rule("[bold]node identity: mTLS with X.509-SVIDs, revocation")
    # an earlier step killed one agent: bring it back, so the node revoked below is one the
    # later steps can spare (not the only node of its region)
    for spec in d.nodes:
        if spec.name not in d.agents:
            d.start_agent(spec)
    local = {spec.name for spec in d.nodes}  # the deployment's own agents (not the demo's
    # extra token-based agents, e.g. the attestation step's drifting node)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not local <= {
        n["id"] for n in scenario.admin.nodes() if n["status"] == "online"
    }:
        time.sleep(0.1)
    nodes = [n for n in scenario.admin.nodes() if n["status"] == "online" and n["id"] in local]
    identities: dict[str, AgentIdentity] = {}
    for node in nodes:
        try:
            identities[node["id"]] = AgentIdentity.load(d.settings.data_dir / "nodes" / node["id"])
        except IdentityError:
            continue
    scenario.check(
        "local agents enrolled with join tokens",
        "every online local node holds an X.509-SVID",
        f"{len(identities)} of {len(nodes)}: "
        + ", ".join(f"…/node/{i.node_id}" for i in identities.values()),
        bool(nodes) and len(identities) == len(nodes),
    )
    if not identities:
        return
    regions = Counter(spec.region for spec in d.nodes)
    region_of = {spec.name: spec.region for spec in d.nodes}
    node_id, identity = max(  # a node whose region keeps another node; the last by name
        identities.items(), key=lambda item: (regions[region_of[item[0]]] > 1, item[0])
    )
    with httpx.Client(base_url=d.tls_url, verify=identity.ssl_context(), timeout=10) as client:
        before = client.post("/v1/agent/heartbeat", json={"running": []})
        scenario.check(
            f"{node_id}'s SVID authenticates it over mTLS (no token)",
            "200",
            str(before.status_code),
            before.status_code == 200,
        )
        started = time.monotonic()
        scenario.admin.request(
            "POST", f"/v1/nodes/{node_id}/revoke", json={"reason": "demo: key leaked"}
        )
        resp = client.post("/v1/agent/heartbeat", json={"running": []})
        while resp.status_code != 401 and time.monotonic() - started < LOCKOUT_BUDGET_S:
            time.sleep(0.05)
            resp = client.post("/v1/agent/heartbeat", json={"running": []})
        elapsed = time.monotonic() - started
        reason = resp.json().get("reason") if resp.status_code == 401 else resp.status_code
        scenario.check(
            f"{node_id} revoked: its SVID is refused",
            f"401 revoked within {LOCKOUT_BUDGET_S:g} s",
            f"{resp.status_code} {reason} after {elapsed:.2f} s",
            resp.status_code == 401 and reason == "revoked" and elapsed < LOCKOUT_BUDGET_S,
        )
