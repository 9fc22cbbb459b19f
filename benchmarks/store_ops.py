# ruff: noqa: E402  (sys.path is set before the project imports)
"""CPU per task of the scheduler's write path, in process (no HTTP, no agents).

The committer thread is the scheduler's serial resource: every submit, claim and report
runs there, one transaction per batch. This replays the steady state of the end-to-end
benchmark (a backlog of admitted work, three 4-CPU nodes, each batch reporting finished
tasks and claiming the next ones) against a fresh SQLite file and prints the committer's
CPU per task for each kind of operation. Deterministic enough to compare two commits
(run each a few times; the host's speed moves).

    python benchmarks/store_ops.py [--tasks 6000] [--database-url URL]

On PostgreSQL it works in a schema of its own and drops it at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

# the checkout, not benchmarks/: its folders are named like the packages they measure
sys.path[0] = str(Path(__file__).resolve().parents[1])

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session

from scheduler import node_results, store
from scheduler.agent_signing import ResultSigner
from scheduler.app import install_layers
from scheduler.authz import BuiltinAuthorizer
from scheduler.db import commit
from scheduler.models import Classification, Node, NodeStatus, Task, TaskState, new_row
from scheduler.provenance import ProvenanceLayer
from scheduler.service import Service
from scheduler.settings import LAYERS, Settings
from tests.conftest import fresh_database

NODES = ("node-1", "node-2", "node-3")


def batch(service: Service, op: object) -> object:
    with Session(service.engine, expire_on_commit=False) as session:
        session.info["cntrust.shared"] = service.committer.shared
        result = op(session)  # type: ignore[operator]
        for hook in commit(session):
            hook()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=6000)
    parser.add_argument("--submits-per-batch", type=int, default=8)
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--layers",
        default="",
        help="comma list of security layers to install, as `cntrust up` does (trust, "
        "policy, provenance, ids, identity); default none. Attestation is left out: its "
        "gate would need real evidence, and it adds nothing on this path.",
    )
    args = parser.parse_args()
    layers = [x for x in args.layers.split(",") if x]
    if args.database_url:  # fresh_database reads it from there
        os.environ["CNTRUST_DATABASE_URL"] = args.database_url
    with (
        tempfile.TemporaryDirectory(prefix="cntrust-store-") as tmp,
        fresh_database(Path(tmp) / "db.sqlite") as url,  # PostgreSQL: a schema of its own
    ):
        settings = Settings(
            data_dir=Path(tmp) / "data",
            database_url=url,
            layers_off=[x for x in LAYERS if x not in layers],
        )
        service = Service(settings) if layers else Service(settings, authorizer=BuiltinAuthorizer())
        if layers:
            install_layers(service)
        provenance = ProvenanceLayer.for_service(service) if "provenance" in layers else None
        try:
            run(service, args.tasks, args.submits_per_batch)
            print(f"layers: {','.join(layers) or 'off'}")
        finally:
            if provenance is not None:
                provenance.stop()
            service.close()


def run(service: Service, total: int, per_batch: int) -> None:
    now = time.time()
    batch(service, lambda s: store.add_tenant(s, "bench", now))
    for name in NODES:
        node = Node(
            id=name,
            name=name,
            operator="local",
            region="east",
            cpu_cores=4.0,
            memory_mb=4096,
            accelerators=[],
            labels={},
            status=NodeStatus.ONLINE,
            last_heartbeat=now,
            registered_at=now,
        )
        batch(service, lambda s, node=node: store.register_node(s, node))
    # as the agents do: each node signs its results, the scheduler verifies each signature
    signers = {name: ResultSigner(Ed25519PrivateKey.generate()) for name in NODES}
    for name, signer in signers.items():
        batch(
            service,
            lambda s, name=name, key=signer.public_key: node_results.register_result_key(
                s, name, key, now
            ),
        )
    pipeline = service.pipeline
    cpu = {"submit": 0.0, "exchange": 0.0}
    running: dict[str, list[str]] = {n: [] for n in NODES}
    submitted = finished = 0
    while finished < total:
        if submitted < total:
            tasks = [
                new_row(
                    Task,
                    id=uuid.uuid4().hex,
                    tenant="bench",
                    state=TaskState.SUBMITTED,
                    command=["true"],
                    cpu=1.0,
                    memory_mb=64,
                    gpu=0,
                    accelerator_kind=None,
                    classification=Classification.INTERNAL,
                    region=None,
                    timeout_s=60.0,
                    submitted_at=time.time(),
                    updated_at=time.time(),
                    trace_parent=None,
                    idempotency_key=None,
                )
                for _ in range(per_batch)
            ]
            t0 = time.thread_time()
            batch(
                service,
                lambda s, tasks=tasks: [
                    store.submit_task(s, t, time.time(), pipeline, "admitted") for t in tasks
                ],
            )
            cpu["submit"] += time.thread_time() - t0
            submitted += per_batch
        for node_id in NODES:
            digest, at = "sha256:" + "0" * 64, time.time()
            reports = [
                store.Report(
                    task_id=i,
                    exit_code=0,
                    output_digest=digest,
                    usage={},
                    started_at=at,
                    finished_at=at,
                    node_signature=signers[node_id].sign(
                        task_id=i,
                        attempt=0,
                        exit_code=0,
                        output_digest=digest,
                        usage={},
                        started_at=at,
                        finished_at=at,
                    ),
                )
                for i in running[node_id]
            ]

            def op(s: Session, node_id: str = node_id, reports: list = reports) -> list[Task]:
                hooks = service.finished_hooks  # provenance, trust evidence, replication
                store.report_tasks(s, node_id, reports, time.time(), pipeline, hooks)
                return store.claim_tasks(s, node_id, time.time(), 4)

            t0 = time.thread_time()
            claimed = batch(service, op)
            cpu["exchange"] += time.thread_time() - t0
            finished += len(reports)
            running[node_id] = [t.id for t in claimed]  # type: ignore[attr-defined]
    print(f"tasks: {total}")
    for name, seconds in cpu.items():
        print(f"{name}_cpu_ms_per_task: {seconds / total * 1000:.3f}")
    print(f"total_cpu_ms_per_task: {sum(cpu.values()) / total * 1000:.3f}")


if __name__ == "__main__":
    main()
