"""The scheduler's authorize seam with PolicyAuthorizer: p99 of ``Service.authorize``.

Run as a script (prints p50/p99 over 2,000 mixed calls; the target is p99 < 1 ms):

    python -m benchmarks.policies.bench_authz_seam

or with pytest-benchmark:

    python -m pytest benchmarks/policies/bench_authz_seam.py --benchmark-only -p no:cacheprovider

Calls mix every role and the scheduler's actions as the routes pass them, including node
agents (whose facts are read from the database on each call).
"""

from __future__ import annotations

import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduler.authz import AuthorizationDenied, Principal, Resource

CALLS = 2_000
TARGET_P99_MS = 1.0


def make_service(root: Path) -> Any:
    from scheduler.models import Node
    from scheduler.service import Service
    from scheduler.settings import Settings

    service = Service(Settings(data_dir=root / "data"))
    for n in ("n1", "n2"):
        node = Node(id=n, name=n, operator="op1", cpu_cores=4, memory_mb=4096,
                    registered_at=0.0, last_heartbeat=0.0)  # fmt: skip
        service.write_sync(lambda s, node=node: s.add(node))
    return service


def calls() -> list[tuple[Principal, str, Resource]]:
    task = Resource("task", "t1", {"tenant": "alice", "node_id": "n1", "classification": "public"})
    new = Resource("task", None, {"tenant": "alice", "classification": "internal"})
    mix = [
        (Principal("tenant", "alice"), "task.submit", new),
        (Principal("tenant", "alice"), "task.read", task),
        (Principal("tenant", "bob"), "task.read", task),
        (Principal("tenant", "alice"), "task.list", Resource("task")),
        (Principal("admin", "root"), "task.cancel", task),
        (Principal("admin", "root"), "tenant.manage", Resource("tenant", "carol")),
        (Principal("regulator", "rita"), "task.submit", new),
        (Principal("analyst", "sam"), "node.list", Resource("node")),
        (Principal("operator", "op1"), "node.read", Resource("node", "n1")),
        (Principal("node", "n1"), "task.claim", Resource("node", "n1")),
        (Principal("node", "n1"), "node.heartbeat", Resource("node", "n1")),
        (Principal("node", "n2"), "task.read", task),
    ]
    return list(itertools.islice(itertools.cycle(mix), CALLS))


def authorize(service: Any, principal: Principal, action: str, resource: Resource) -> bool:
    try:
        service.authorize(principal, action, resource)
    except AuthorizationDenied:
        return False
    return True


def measure(service: Any) -> tuple[float, float]:
    timings: list[float] = []
    for principal, action, resource in calls():
        started = time.perf_counter()
        authorize(service, principal, action, resource)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.99) - 1]


@pytest.fixture(scope="module")
def seam_service() -> Iterator[Any]:
    with tempfile.TemporaryDirectory() as root:
        service = make_service(Path(root))
        yield service
        service.close()


def test_authorize_seam(benchmark: Any, seam_service: Any) -> None:
    cycle = itertools.cycle(calls())

    def one() -> bool:
        principal, action, resource = next(cycle)
        return authorize(seam_service, principal, action, resource)

    benchmark(one)


def main() -> int:
    with tempfile.TemporaryDirectory() as root:
        service = make_service(Path(root))
        try:
            measure(service)  # warm up
            p50, p99 = measure(service)
        finally:
            service.close()
    verdict = "ok" if p99 < TARGET_P99_MS else "OVER TARGET"
    print(f"authorize seam over {CALLS} calls: p50 {p50:.3f} ms, p99 {p99:.3f} ms ({verdict})")
    return 0 if p99 < TARGET_P99_MS else 1


if __name__ == "__main__":
    sys.exit(main())
