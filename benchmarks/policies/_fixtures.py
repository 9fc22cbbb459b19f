"""Deterministic nodes, tasks and API requests shared by the policies benchmarks."""

from __future__ import annotations

import random

from policies import (
    Entity,
    Request,
    node,
    operator,
    request,
    task,
    tenant,
)

REGIONS = ("eu", "us", "ap")


def make_nodes(count: int, seed: int = 7) -> list[Entity]:
    rng = random.Random(seed)
    return [
        node(
            f"n{i}",
            region=rng.choice(REGIONS),
            operator_id=f"o{i % 50}",
            trust=rng.random(),
            uncertainty=rng.random() * 0.4,
            attestation_status=rng.choice(("affirming", "affirming", "warning", "none")),
            attestation_age_s=rng.choice((None, 30, 600, 3000, 7200, 100_000)),
            accelerators=rng.choice(((), ("gpu",), ("gpu", "fpga"))),
            revoked=rng.random() < 0.02,
            quarantined=rng.random() < 0.03,
        )
        for i in range(count)
    ]


SECRET_TASK = task("t-secret", tenant_id="a", classification="secret", data_region="eu")
PUBLIC_TASK = task(
    "t-public", tenant_id="a", classification="public", required_accelerators=["gpu"]
)


def api_requests(count: int, seed: int = 11) -> list[Request]:
    """Distinct API requests (tenants reading tasks, operators reading nodes)."""
    rng = random.Random(seed)
    out: list[Request] = []
    for i in range(count):
        if i % 2:
            owner = f"tenant-{rng.randrange(100)}"
            t = task(f"task-{i}", tenant_id=owner, classification="internal")
            who = tenant(owner if rng.random() < 0.8 else "tenant-x")
            out.append(request(who, "read_task", t))
        else:
            op = f"o{rng.randrange(50)}"
            n = make_nodes(1, seed=i)[0]
            out.append(request(operator(op), "read_node", n))
    return out
