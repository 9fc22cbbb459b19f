"""The demo's attestation steps: every local node attests, and a node whose agent binary
changes (measurement drift) is refused work and its running task rescheduled.

The drifting node is a real agent process run from its own copy of the agent's code
(``<data dir>/drift-agent``); the demo changes one byte of that copy's ``agent.py`` while
the node runs a task. Its next attestation round (every ``attestation_interval_s``) is
appraised contraindicated: the gate excludes the node and requeues the task elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scheduler.client import ApiError

if TYPE_CHECKING:
    from scheduler.demo import Scenario

DRIFT_NODE = "node-drift"


def attestation_of(scenario: Scenario, node: str) -> dict[str, Any]:
    return dict(scenario.admin.request("GET", f"/v1/attestation/nodes/{node}"))


def _wait_status(scenario: Scenario, node: str, want: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            body = attestation_of(scenario, node)
        except ApiError:
            body = {}
        if body.get("attestation", {}).get("status") == want:
            return body
        time.sleep(0.1)
    return body


def _start_drift_agent(scenario: Scenario) -> Path:
    import scheduler

    d = scenario.d
    root = d.settings.data_dir / "drift-agent"
    shutil.copytree(
        Path(scheduler.__file__).parent,
        root / "scheduler",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    node_dir = d.settings.data_dir / "nodes" / DRIFT_NODE
    node_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "scheduler.cli", "node", "agent", "--server", d.url,
        "--token", d.registration_token(DRIFT_NODE), "--dir", str(node_dir),
        "--cpu", "16", "--memory", "16384", "--region", "east",
    ]  # fmt: skip
    log = open(node_dir / "agent.log", "ab")  # noqa: SIM115 (owned by the process)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(  # cwd: its own copy comes first on sys.path
        cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    d.agents[DRIFT_NODE] = proc
    return root / "scheduler" / "agent.py"


def run(scenario: Scenario, alice: Any) -> None:
    """The attestation part of the demo (after the tenants exist)."""
    out = scenario.console
    out.rule("[bold]attestation")
    statuses = {}
    for name in sorted(scenario.d.agents):
        body = _wait_status(scenario, name, "affirming", 15)
        statuses[name] = body.get("attestation", {}).get("status")
    scenario.check(
        "local nodes attest (EAT with agent and runtime measurements)",
        "every node affirming",
        ", ".join(f"{n}: {s}" for n, s in statuses.items()),
        bool(statuses) and all(s == "affirming" for s in statuses.values()),
    )

    out.rule("[bold]a node's agent binary changes")
    agent_file = _start_drift_agent(scenario)
    body = _wait_status(scenario, DRIFT_NODE, "affirming", 30)
    scenario.check(
        f"{DRIFT_NODE} joins with the genuine agent",
        "affirming",
        str(body.get("attestation", {}).get("status")),
        body.get("attestation", {}).get("status") == "affirming",
    )
    for _ in range(3):  # placement ranks by load and trust: the big node wins nearly always
        task = alice.submit(["sleep", "4"], cpu=3.5, timeout_s=30)
        running = scenario.wait_for(alice, task["id"], ("running", "succeeded", "failed"), 20)
        on_drift = running["node_id"] == DRIFT_NODE and running["state"] == "running"
        if on_drift:
            break
        scenario.wait_for(alice, task["id"], timeout=20)
    if not on_drift:
        scenario.check(
            "a task runs on the node", f"running on {DRIFT_NODE}", str(running["node_id"]), False
        )
        return
    with agent_file.open("a") as fh:  # the drift: the agent's code on disk changes
        fh.write("\n# patched by an attacker\n")
    drifted_at = time.monotonic()
    body = _wait_status(scenario, DRIFT_NODE, "contraindicated", 15)
    detected_s = time.monotonic() - drifted_at
    reasons = body.get("history", [{}])[0].get("reasons", {}).get("executables", [])
    scenario.check(
        f"{DRIFT_NODE}'s agent binary digest changes",
        "appraised contraindicated: component agent drifted",
        f"{body.get('attestation', {}).get('status')} after {detected_s:.1f} s: "
        + (reasons[0][:60] if reasons else "no reason"),
        body.get("attestation", {}).get("status") == "contraindicated"
        and any("component agent drifted" in r for r in reasons),
    )
    moved = scenario.wait_for(alice, task["id"], timeout=40)
    events = scenario.admin.task(task["id"]).get("events", [])
    requeue = [e for e in events if "excluded by attestation" in e["reason"]]
    scenario.check(
        "its running task is rescheduled",
        "requeued by the attestation gate, succeeded on another node",
        f"{moved['state']} on {moved['node_id']} (attempt {moved['attempt']})",
        bool(requeue) and moved["state"] == "succeeded" and moved["node_id"] != DRIFT_NODE,
    )
    big = alice.submit(["true"], cpu=8)  # only the drifted node has 8 free CPUs
    waiting = alice.task(big["id"])
    scenario.check(
        f"{DRIFT_NODE} is refused new work",
        "not placed; exclusion names attestation",
        f"{waiting['state']}: {waiting['reason'][:80]}",
        waiting["state"] == "admitted"
        and "attestation: attestation contraindicated" in waiting["reason"],
    )
    alice.cancel(big["id"])
