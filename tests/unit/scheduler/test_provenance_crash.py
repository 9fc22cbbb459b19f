"""kill -9 while tasks finish: every acknowledged finished task has exactly one log entry,
every finished task has one, and the log reopens consistent with its last checkpoint."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from sqlmodel import col, func, select

from audit_chain import CheckpointPublisher, TiledLog
from scheduler.models import Task, TaskState
from scheduler.provenance import ProvenanceLayer
from scheduler.service import Service
from scheduler.settings import Settings
from scheduler.tables.provenance import ProvTaskEntry

REPO = Path(__file__).resolve().parents[3]
CYCLES = 4

WORKER = textwrap.dedent(
    """
    import sys, threading, uuid
    sys.path.insert(0, sys.argv[1])
    from pathlib import Path
    from scheduler import store
    from scheduler.errors import Conflict
    from scheduler.models import Node, Task
    from scheduler.provenance import ProvenanceLayer
    from scheduler.service import Service
    from scheduler.settings import Settings

    service = Service(Settings(data_dir=Path(sys.argv[2]), database_url=sys.argv[3]))
    layer = ProvenanceLayer.for_service(service, checkpoint_delay_s=0.01)
    layer.start()
    now = service.clock()

    def setup(s):
        try:
            store.add_tenant(s, "alice", now)
        except Conflict:
            pass
        store.register_node(s, Node(id="n1", name="n1", cpu_cores=64, memory_mb=1 << 20,
                                    registered_at=now, last_heartbeat=now))
    service.write_sync(setup)
    out_lock = threading.Lock()

    def worker():
        while True:
            ids = []
            def sub(s):
                for _ in range(4):
                    t = Task(id=uuid.uuid4().hex, tenant="alice", command=["true"],
                             submitted_at=now, updated_at=now, state="submitted")
                    ids.append(store.submit_task(s, t, now, service.pipeline, "ok")[0].id)
            service.write_sync(sub)
            service.write_sync(lambda s: store.claim_tasks(s, "n1", now, 64))
            reports = [store.Report(i, 0, "sha256:" + "0" * 64, {"cpu_s": 0.01}) for i in ids]
            done = service.write_sync(
                lambda s: store.report_tasks(s, "n1", reports, service.clock(),
                                             service.pipeline, service.finished_hooks)[0])
            acked = [t.id for t in done if isinstance(t, Task)]
            with out_lock:
                sys.stdout.write("".join(f"{i}\\n" for i in acked))
                sys.stdout.flush()

    for _ in range(4):
        threading.Thread(target=worker, daemon=True).start()
    threading.Event().wait()
    """
)


def test_kill9_keeps_exactly_one_entry_per_finished_task(tmp_path: Path, database_url: str):
    data = tmp_path / "data"
    acknowledged: set[str] = set()
    rng = random.Random(11)
    for cycle in range(CYCLES):
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(REPO), str(data), database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # wait until tasks are being acknowledged
        assert first, f"cycle {cycle}: worker died: {proc.stderr.read() if proc.stderr else ''}"
        time.sleep(rng.uniform(0.2, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
        lines = (first + rest).decode().split("\n")
        acknowledged.update(line for line in lines[:-1] if line)  # a torn last line is unacked
    assert len(acknowledged) > CYCLES * 4

    service: Any = Service(Settings(data_dir=data, database_url=database_url))
    try:
        layer = ProvenanceLayer.for_service(service)  # refuses to open an inconsistent log
        with service.read() as session:
            finished = set(
                session.exec(select(Task.id).where(Task.state == TaskState.SUCCEEDED)).all()
            )
            rows = list(session.exec(select(ProvTaskEntry)))
            per_task = dict(
                session.exec(
                    select(ProvTaskEntry.task_id, func.count()).group_by(col(ProvTaskEntry.task_id))
                ).all()
            )
        assert acknowledged <= finished
        assert {r.task_id for r in rows} == finished
        assert set(per_task.values()) == {1}
        assert sorted(r.leaf_index for r in rows) == list(range(len(rows)))
        assert layer.log.tree_size == len(rows)
        # the last published checkpoint is never ahead of, nor inconsistent with, the log
        CheckpointPublisher(layer.log, layer.log_key).publish()
        assert TiledLog(layer.store).root == layer.log.root
    finally:
        service.close()
