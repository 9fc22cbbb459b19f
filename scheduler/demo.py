"""``cntrust demo``: a fresh local deployment, a scripted scenario, a report.

Every step states what should happen and checks that it did; the demo exits 0
only when every expectation held. Later layers add their steps here.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from scheduler.client import ApiError, Client
from scheduler.local import Deployment, default_nodes, free_port
from scheduler.settings import Settings

FINAL = ("succeeded", "failed", "rejected", "cancelled")


@dataclass
class Check:
    step: str
    expected: str
    observed: str
    ok: bool


class Scenario:
    def __init__(self, deployment: Deployment, console: Console) -> None:
        self.d = deployment
        self.console = console
        self.checks: list[Check] = []
        admin_token = deployment.admin_token_path.read_text().strip()
        self.admin = Client(deployment.url, admin_token)
        self.soft_tpm: Any = None  # scheduler.demo_tpm.PendingTpm where swtpm is installed

    def check(self, step: str, expected: str, observed: str, ok: bool) -> None:
        self.checks.append(Check(step, expected, observed, ok))
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        self.console.print(f"  {mark} {step}: {observed}", highlight=False)

    def wait_for(self, client: Client, task_id: str, states: tuple[str, ...] = FINAL,
                 timeout: float = 30.0) -> dict[str, Any]:  # fmt: skip
        deadline = time.monotonic() + timeout
        task = client.task(task_id)
        while task["state"] not in states and time.monotonic() < deadline:
            time.sleep(0.1)
            task = client.task(task_id)
        return task

    def wait_nodes(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        nodes = self.admin.nodes()
        while sum(n["status"] == "online" for n in nodes) < count and time.monotonic() < deadline:
            time.sleep(0.1)
            nodes = self.admin.nodes()
        return nodes

    def tenant(self, name: str) -> Client:
        from datetime import timedelta

        from scheduler.app import issue_tenant_token

        assert self.d.service is not None
        self.admin.add_tenant(name)
        return Client(self.d.url, issue_tenant_token(self.d.service, name, timedelta(minutes=10)))

    def run(self) -> None:
        out = self.console
        out.rule("[bold]nodes enroll")
        nodes = self.wait_nodes(len(self.d.nodes))
        online = sorted(n["id"] for n in nodes if n["status"] == "online")
        self.check(
            "local node agents register",
            f"{len(self.d.nodes)} online",
            f"{len(online)} online: {', '.join(online)}",
            len(online) == len(self.d.nodes),
        )
        gpu_nodes = [n["id"] for n in nodes if any(a["kind"] == "gpu" for a in n["accelerators"])]

        out.rule("[bold]tenants submit work")
        alice, bob = self.tenant("alice"), self.tenant("bob")
        hello = alice.submit(["echo", "hello"])
        done = self.wait_for(alice, hello["id"])
        digest = "sha256:" + hashlib.sha256(b"hello\n").hexdigest()
        self.check(
            "echo hello runs on a node",
            "succeeded, output digest of 'hello\\n'",
            f"{done['state']} on {done['node_id']}, digest {str(done['output_digest'])[:19]}…",
            done["state"] == "succeeded" and done["output_digest"] == digest,
        )
        failing = self.wait_for(alice, alice.submit(["sh", "-c", "exit 3"])["id"])
        self.check(
            "a failing command is reported",
            "failed with exit code 3",
            f"{failing['state']}, exit code {failing['exit_code']}",
            failing["state"] == "failed" and failing["exit_code"] == 3,
        )
        slow = self.wait_for(alice, alice.submit(["sleep", "30"], timeout_s=1)["id"])
        self.check(
            "a task past its timeout is killed",
            "failed: timed out",
            f"{slow['state']}: {slow['reason']}",
            slow["state"] == "failed" and "timed out" in slow["reason"],
        )
        gpu = self.wait_for(alice, alice.submit(["true"], gpu=1)["id"])
        self.check(
            "a GPU task lands on a GPU node",
            f"succeeded on one of {gpu_nodes}",
            f"{gpu['state']} on {gpu['node_id']}",
            gpu["state"] == "succeeded" and gpu["node_id"] in gpu_nodes,
        )
        west = self.wait_for(alice, alice.submit(["true"], region="west")["id"])
        west_nodes = [n["id"] for n in nodes if n["region"] == "west"]
        self.check(
            "a task tagged region=west never runs elsewhere",
            f"succeeded on one of {west_nodes}",
            f"{west['state']} on {west['node_id']}",
            west["state"] == "succeeded" and west["node_id"] in west_nodes,
        )

        out.rule("[bold]isolation between tenants")
        try:
            bob.task(hello["id"])
            observed, ok = "bob could read alice's task", False
        except ApiError as exc:
            observed, ok = f"{exc.status} {exc.title}", exc.status == 404
        self.check("bob reads alice's task", "404 not found", observed, ok)
        bob_sees = {t["id"] for t in bob.tasks()}
        self.check(
            "bob lists tasks",
            "none of alice's",
            f"{len(bob_sees)} tasks visible",
            hello["id"] not in bob_sees,
        )
        raw = httpx.post(
            f"{self.d.url}/v1/tasks",
            content=b"{not json",
            headers={
                "Authorization": alice._http.headers["Authorization"],
                "Content-Type": "application/json",
            },
        )
        self.check(
            "malformed JSON is refused",
            "400 application/problem+json",
            f"{raw.status_code} {raw.headers.get('content-type')}",
            raw.status_code == 400
            and raw.headers.get("content-type") == "application/problem+json",
        )

        out.rule("[bold]a node dies mid-task")
        long = alice.submit(["sleep", "3"], timeout_s=20)
        running = self.wait_for(alice, long["id"], ("running", *FINAL))
        victim = running["node_id"]
        if running["state"] == "running" and victim in self.d.agents:
            self.d.kill_agent(victim)
            recovered = self.wait_for(alice, long["id"], timeout=40)
            self.check(
                f"agent {victim} killed with SIGKILL while running the task",
                "task rescheduled to another node and succeeded",
                f"{recovered['state']} on {recovered['node_id']} (attempt {recovered['attempt']})",
                recovered["state"] == "succeeded"
                and recovered["node_id"] != victim
                and recovered["attempt"] >= 1,
            )
        else:
            self.check("task starts running", "running", running["state"], False)

        from scheduler import attest_demo

        attest_demo.run(self, alice)

        out.rule("[bold]one trace per task")
        assert self.d.service is not None
        trace_id = done["trace_id"]
        names = {
            s.name
            for s in self.d.service.telemetry.ring.spans()
            if s.context is not None and format(s.context.trace_id, "032x") == trace_id
        }
        want = {"task.submit", "task.place", "task.report"}
        self.check(
            "submit, place and report share the task's trace",
            ", ".join(sorted(want)),
            ", ".join(sorted(names)) or "no spans",
            want <= names,
        )

        from scheduler.demo_identity import identity_steps

        identity_steps(self)
        from scheduler.demo_regulator import regulator_steps

        regulator_steps(self, hello["id"])  # bundle, offline + chain, monitor, tampered copies
        from scheduler import demo_ids  # the three IDS layers and the response loop

        demo_ids.run(self)
        from scheduler import demo_tpm  # an extra node enrolls via a software TPM

        demo_tpm.run(self, self.soft_tpm)

    def report(self) -> bool:
        table = Table("step", "expected", "observed", "", title="cntrust demo")
        for c in self.checks:
            table.add_row(
                c.step, c.expected, c.observed, "[green]ok[/]" if c.ok else "[red]FAIL[/]"
            )
        self.console.print(table)
        passed = sum(c.ok for c in self.checks)
        ok = passed == len(self.checks) and passed > 0
        colour = "green" if ok else "red"
        self.console.print(f"[bold {colour}]{passed}/{len(self.checks)} expectations held[/]")
        return ok


def run_demo(
    data_dir: Path | None, console: Console, extend: Callable[[Scenario], None] | None = None
) -> bool:
    """Run the demo; True when every expectation held."""
    with tempfile.TemporaryDirectory(prefix="cntrust-demo-") as tmp:
        root = data_dir or Path(tmp)
        if root.exists() and any(root.iterdir()):
            console.print(f"[red]error:[/] {root} is not empty; the demo needs a fresh directory")
            return False
        from scheduler import demo_tpm

        soft_tpm = demo_tpm.begin(root)  # provisioned in the background meanwhile
        settings = Settings(
            data_dir=root,
            heartbeat_timeout_s=3.0,
            heartbeat_interval_s=0.5,
            database_url=None,
            alerts_track="by_dst",  # a spoofed flood aggregates by its target
            attestation_interval_s=1.0,
            tpm_ek_ca_file=soft_tpm.ek_ca_file if soft_tpm is not None else None,
        )
        deployment = Deployment(
            settings, port=free_port(), nodes=default_nodes(3), quiet_agents=True
        )
        console.print(f"[bold]cntrust demo[/] — fresh deployment in {root}")
        scenario: Scenario | None = None
        try:
            deployment.start()
            console.print(f"API on {deployment.url}, {len(deployment.agents)} node agents")
            scenario = Scenario(deployment, console)
            scenario.soft_tpm = soft_tpm
            scenario.run()
            if extend is not None:
                extend(scenario)
        except (ApiError, httpx.HTTPError, RuntimeError) as exc:
            console.print(f"[red]demo aborted:[/] {exc}")
            if scenario is not None:
                scenario.check("scenario completes", "no errors", str(exc), False)
        finally:
            deployment.stop()
            if soft_tpm is not None:
                soft_tpm.stop()
        return scenario.report() if scenario is not None else False
