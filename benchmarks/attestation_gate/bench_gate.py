"""Time from a failed appraisal (or an expired result) to the node's exclusion.

Runs the scheduler API in-process (real clock, the maintenance loop running, SQLite in a
temp dir) and, per round, a node that attests, holds a running task, then:

- ``failed``: sends evidence with a drifted agent digest; exclusion = the moment its task
  is observed requeued and a placement excludes the node, measured from sending the
  evidence;
- ``expired``: stops attesting (result TTL 1 s); exclusion = the task observed requeued,
  measured from the result's ``expires_at`` (found by the periodic sweep, no new evidence).

Usage: python -m benchmarks.attestation_gate.bench_gate [--rounds 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from scheduler.app import create_app
from scheduler.models import Node, Task, TaskState
from scheduler.service import Service
from scheduler.settings import Settings
from tests.unit.scheduler import attest_helpers as ah
from tests.unit.scheduler.helpers import add_node, add_tenant, claim, submit


def _requeued(service: Service, task_id: str) -> bool:
    with service.read() as session:
        task = session.get(Task, task_id)
        return task is not None and task.state == TaskState.ADMITTED


def _wait(service: Service, task_id: str, timeout: float = 10.0) -> float:
    deadline = time.perf_counter() + timeout
    while not _requeued(service, task_id):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"task {task_id} was never requeued")
        time.sleep(0.005)
    return time.perf_counter()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run(rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"failed": [], "expired": []}
    with tempfile.TemporaryDirectory(prefix="cntrust-gate-") as tmp:
        settings = Settings(data_dir=Path(tmp), attestation_result_ttl_s=1.0, claim_wait_s=0)
        service = Service(settings)
        try:
            with TestClient(create_app(service)) as api:
                alice = add_tenant(api, service, "alice")
                for i in range(rounds):
                    for kind in ("failed", "expired"):
                        name = f"{kind[0]}{i}"
                        node = add_node(api, service, name, cpu_cores=64)
                        task = submit(api, alice, cpu=48)  # fits only the fresh node
                        assert task["node_id"] == name, task
                        claim(api, node)
                        if kind == "failed":
                            drifted = {"agent": ah.AGENT_DRIFTED, "runtime": ah.RUNTIME}
                            started = time.perf_counter()
                            ah.attest(api, service, node, name, measurements=drifted)
                            out[kind].append(_wait(service, task["id"]) - started)
                        else:
                            with service.read() as session:
                                row = session.get(Node, name)
                                assert row is not None and row.attestation_expires_at
                                expires = row.attestation_expires_at
                            seen = _wait(service, task["id"])
                            lag = time.time() - (time.perf_counter() - seen) - expires
                            out[kind].append(lag)
                        # drain: the requeued task must not pile up for the next round
                        api.post(f"/v1/tasks/{task['id']}/cancel", headers=alice)
        finally:
            service.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    results = run(args.rounds)
    for kind, values in results.items():
        print(
            f"{kind:8s} n={len(values)} p50={statistics.median(values) * 1000:.1f} ms "
            f"p95={pct(values, 95) * 1000:.1f} ms max={max(values) * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
