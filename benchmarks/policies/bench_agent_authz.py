"""CPU of ``Service.authorize`` for a node agent's requests, in process.

Every agent request is authorized with the node as principal and (for claims, reports and
heartbeats) the node itself as resource, so the node's facts are read from the database on
each call. This replays what the agent routes pass: an exchange (``task.report`` then
``task.claim``, as ``record_reports`` does), a claim, and a heartbeat, over three nodes.

    python -m benchmarks.policies.bench_agent_authz [--calls 6000] [--layers trust,policy]

Prints CPU per call (this process, ``time.process_time``) and wall p50/p99. ``--layers``
installs the security layers as ``cntrust up`` does (default: trust, policy, identity;
attestation is left out: its gate would need real evidence).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from scheduler.authz import AuthorizationDenied, Principal, Resource

NODES = ("node-1", "node-2", "node-3")
AGENT_ACTIONS = (("task.report", "task.claim"), ("task.claim",), ("node.heartbeat",))
"""One agent request each: the actions its route authorizes, in order."""


def make_service(root: Path, layers: list[str]) -> Any:
    from scheduler import store
    from scheduler.app import install_layers
    from scheduler.models import Node
    from scheduler.service import Service
    from scheduler.settings import LAYERS, Settings

    settings = Settings(data_dir=root / "data", layers_off=[x for x in LAYERS if x not in layers])
    service = Service(settings)
    install_layers(service)
    now = time.time()
    for name in NODES:
        node = Node(id=name, name=name, operator="local", region="east", cpu_cores=4.0,
                    memory_mb=4096, registered_at=now, last_heartbeat=now)  # fmt: skip
        service.write_sync(lambda s, node=node: store.register_node(s, node))
    return service


def agent_request(service: Any, node_id: str, actions: tuple[str, ...]) -> bool:
    who = Principal("node", node_id)
    try:
        for action in actions:
            service.authorize(who, action, Resource("node", node_id))
    except AuthorizationDenied:
        return False
    return True


def measure(service: Any, calls: int) -> tuple[float, float, float, int]:
    """(CPU µs per request, wall p50 µs, wall p99 µs, requests allowed)."""
    timings: list[float] = []
    allowed = 0
    cpu0 = time.process_time()
    for i in range(calls):
        node_id, actions = NODES[i % len(NODES)], AGENT_ACTIONS[i % len(AGENT_ACTIONS)]
        started = time.perf_counter()
        allowed += agent_request(service, node_id, actions)
        timings.append((time.perf_counter() - started) * 1e6)
    cpu = (time.process_time() - cpu0) / calls * 1e6
    timings.sort()
    return cpu, statistics.median(timings), timings[int(len(timings) * 0.99) - 1], allowed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=6000)
    parser.add_argument("--layers", default="trust,policy,identity")
    args = parser.parse_args()
    layers = [x for x in args.layers.split(",") if x]
    with tempfile.TemporaryDirectory() as root:
        service = make_service(Path(root), layers)
        try:
            measure(service, min(args.calls, 1000))  # warm up
            cpu, p50, p99, allowed = measure(service, args.calls)
        finally:
            service.close()
    print(f"agent authorize ({','.join(layers)}), {args.calls} requests, {allowed} allowed: "
          f"CPU {cpu:.1f} us/request, wall p50 {p50:.1f} us, p99 {p99:.1f} us")  # fmt: skip


if __name__ == "__main__":
    main()
