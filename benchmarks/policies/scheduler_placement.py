"""What the policy layer adds to one placement in the scheduler, and its node filter rate.

1. Submit-and-place through the real store and committer (SQLite file, 3 nodes), with
   the policy placement filter and decision recorder off, then on; prints wall and CPU
   time per task (CPU of this process: the committer thread included).
2. ``PolicyFilter`` with the scheduler's own node facts over 10,000 nodes for one public
   and one secret task, called as the pipeline calls it (``prepare`` once, then each
   node): node decisions per second on one core.

Run: ``python -m benchmarks.policies.scheduler_placement`` (about 20 s).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

from policies import PolicyStore, load_default_policy_set
from scheduler import store
from scheduler.models import Node, Task, TaskState
from scheduler.placement import NodeView, PlacementPipeline, TaskRequest
from scheduler.policy_node_facts import SchedulerNodeFacts
from scheduler.policy_placement import PolicyFilter
from scheduler.service import Service
from scheduler.settings import Settings
from scheduler.trust_placement import NodeTrustView


def submit_and_place(policy: bool, tasks: int = 400) -> tuple[float, float]:
    tmp = Path(tempfile.mkdtemp())
    svc = Service(Settings(data_dir=tmp / "d", database_url=f"sqlite:///{tmp / 't.db'}"))
    svc.pipeline = PlacementPipeline()
    if policy:
        from scheduler.policy_wiring import install_placement

        install_placement(svc)
    now = time.time()
    svc.write_sync(lambda s: store.add_tenant(s, "a", now))
    for i in range(3):
        node = Node(id=f"n{i}", name=f"n{i}", cpu_cores=10**6, memory_mb=10**9,
                    registered_at=now, last_heartbeat=now)  # fmt: skip
        svc.write_sync(lambda s, node=node: store.register_node(s, node))
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(tasks):
        task = Task(id=uuid.uuid4().hex, tenant="a", state=TaskState.SUBMITTED,
                    command=["true"], submitted_at=now, updated_at=now)  # fmt: skip
        _, placed = svc.write_sync(
            lambda s, task=task: store.submit_task(s, task, now, svc.pipeline, "admitted")
        )
        assert placed is not None and placed.node_id is not None
    wall = (time.perf_counter() - wall0) / tasks * 1000
    cpu = (time.process_time() - cpu0) / tasks * 1000
    svc.close()
    return wall, cpu


def filter_rate(classification: str, nodes: int = 10_000) -> tuple[float, float, int]:
    now = 1_800_000_000.0
    trust = SimpleNamespace(view=lambda n: NodeTrustView(now, 0.9, 0.1, None, False))
    facts = SchedulerNodeFacts(SimpleNamespace(clock=lambda: now, trust=trust))
    flt = PolicyFilter(PolicyStore(load_default_policy_set()), facts)
    views = [
        NodeView(id=f"n{i}", region="eu" if i % 2 else "us", operator="op", cpu_cores=8,
                 memory_mb=8192, accelerators=(("gpu", 1),) if i % 3 == 0 else (), cpu_used=0,
                 memory_used_mb=0, gpu_used=0, active_tasks=0, attestation_status="affirming",
                 attested_at=now - 100)
        for i in range(nodes)
    ]  # fmt: skip
    rates: list[float] = []
    allowed = 0
    for round_ in range(3):
        task = TaskRequest(id=f"{classification}-{round_}", tenant="a", cpu=1, memory_mb=1,
                           gpu=0, accelerator_kind=None, classification=classification,
                           region="eu")  # fmt: skip
        start = time.process_time()  # CPU time: per core, whatever else runs here
        flt.prepare(task, views)  # as PlacementPipeline.place does: one pass per task
        allowed = sum(flt(task, view) is None for view in views)
        rates.append(nodes / (time.process_time() - start))
    # the first task builds every node's entity; later ones reuse them while facts hold
    return rates[0], max(rates[1:]), allowed


def main() -> None:
    for _ in range(2):
        for policy in (False, True):
            wall, cpu = submit_and_place(policy)
            side = "on " if policy else "off"
            print(f"policy placement {side}: {wall:.2f} ms wall, {cpu:.2f} ms CPU per task")
    for classification in ("public", "secret"):
        cold, warm = filter_rate(classification)[:2]
        print(f"{classification}: {cold:,.0f} node decisions/s (entities built), "
              f"{warm:,.0f}/s (entities reused)")  # fmt: skip


if __name__ == "__main__":
    main()
