"""End-to-end task benchmark: submit -> succeeded with local agents running `true`.

Starts a real `cntrust up` (API + N agent processes) on a fresh data dir, then
measures in two phases:

1. throughput (closed loop): `--concurrency` clients submit `--tasks` tasks as
   fast as they are answered; tasks/s is counted from the first submit until
   every task has succeeded;
2. latency (open loop): tasks arrive at a fixed `--rate` per second for
   `--seconds`, whatever the answers; submit latency p50/p99 is measured at
   that offered load (a closed loop would only measure its own queue: by
   Little's law 16 clients at 200/s wait 80 ms on average by construction).

    python benchmarks/e2e_tasks.py --tasks 3000 --concurrency 16 --rate 200

Prints the figures (JSON with --json), with server and agent CPU per task.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scheduler.settings import LAYERS
from tests.integration.deploy import UpProcess


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process (from /proc), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def host_speed_ms() -> float:
    """A fixed pure-Python workload (best of 5), to compare figures across hosts: the same
    machine kind has measured from ~0.5x to ~1x the speed of another (rows in RESULTS.md
    from different sessions are comparable only through this figure)."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


WARMUP_S = 2.0
SUBMIT_BODY = json.dumps({"command": ["true"]}).encode()


class Submitter:
    """One keep-alive connection that submits ``true`` tasks.

    The load generator shares the 2 cores with the system under test, so it uses the
    standard library's http.client (0.19 ms of client CPU per request here) rather than
    httpx (0.57 ms): the CPU goes to the scheduler, which is what is measured."""

    def __init__(self, url: str, token: str) -> None:
        host, _, port = url.split("//", 1)[1].partition(":")
        self.host, self.port = host, int(port or 80)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.conn: http.client.HTTPConnection | None = None

    def submit(self) -> int:
        for attempt in (1, 2):  # one reconnect if the server closed an idle connection
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.conn.request("POST", "/v1/tasks", SUBMIT_BODY, self.headers)
                resp = self.conn.getresponse()
                resp.read()
                return resp.status
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def wait_finished(url: str, admin: dict[str, str], total: int, timeout: float = 600) -> None:
    deadline = time.perf_counter() + timeout
    while True:
        stats = httpx.get(url + "/v1/stats", headers=admin).json()["tasks_by_state"]
        if stats.get("succeeded", 0) + stats.get("failed", 0) >= total:
            return
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out with {stats}")
        time.sleep(0.2)


def open_loop(
    url: str, token: str, admin: dict[str, str], rate: float, seconds: float
) -> dict[str, object]:
    """Submit at a fixed arrival rate; measure submit latency at that load.

    The first WARMUP_S seconds run at the same rate but are not measured: they
    start the client threads and their connections.
    """
    measured_from = WARMUP_S
    total = int(rate * (seconds + WARMUP_S))
    latencies: list[float] = []
    timeline: list[tuple[float, float]] = []
    lock = threading.Lock()
    slots = threading.Semaphore(64)  # at most 64 requests in flight
    clients = threading.local()

    def one(due: float) -> None:
        client = getattr(clients, "c", None)
        if client is None:
            client = clients.c = Submitter(url, token)
        try:
            status = client.submit()
            dt = time.perf_counter() - due  # from the scheduled arrival: no coordinated omission
            if status == 201 and due - start >= measured_from:
                with lock:
                    latencies.append(dt)
                    timeline.append((due - start, dt))
        finally:
            slots.release()

    from concurrent.futures import ThreadPoolExecutor

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=64) as pool:
        for i in range(total):
            due = start + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            slots.acquire()
            pool.submit(one, due)
    wait_finished(url, admin, total)
    if os.environ.get("CNTRUST_BENCH_TIMELINE"):
        for at, dt in sorted(timeline):
            print(f"{at:8.3f} {dt * 1000:8.1f}", file=sys.stderr)
    return {
        "offered_rate_per_s": rate,
        "open_loop_tasks": len(latencies),
        "open_loop_completed": len(latencies),
        "submit_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "submit_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
    }


def run(
    tasks: int,
    concurrency: int,
    nodes: int,
    env: dict[str, str],
    rate: float,
    seconds: float,
    layers: bool = True,
    agent_auth: str = "mtls",
    only: str | None = None,
) -> dict[str, object]:
    """One measurement; ``only``: the layers on but this one alone (the others left out)."""
    without = [x for x in LAYERS if x != only] if only is not None else []
    with tempfile.TemporaryDirectory(prefix="cntrust-bench-") as tmp:
        dep = UpProcess(
            Path(tmp) / "data",
            nodes=nodes,
            env=env,
            layers=layers,
            agent_auth=agent_auth,
            extra_args=[arg for x in without for arg in ("--without", x)],
        ).start()
        try:
            admin = {"Authorization": f"Bearer {dep.admin_token()}"}
            httpx.post(dep.url + "/v1/tenants", json={"name": "bench"}, headers=admin)
            deadline = time.monotonic() + 60
            while True:
                listed = httpx.get(dep.url + "/v1/nodes", headers=admin).json()
                if sum(n["status"] == "online" for n in listed) >= nodes:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("agents did not come online")
                time.sleep(0.1)
            token = dep.token("tenant", "bench", ttl_s=3600)
            latency = open_loop(dep.url, token, admin, rate, seconds)
            latencies: list[float] = []
            errors = 0
            lock = threading.Lock()
            per_worker = tasks // concurrency

            def worker() -> None:
                nonlocal errors
                client = Submitter(dep.url, token)
                try:
                    for _ in range(per_worker):
                        t0 = time.perf_counter()
                        status = client.submit()
                        dt = time.perf_counter() - t0
                        with lock:
                            if status == 201:
                                latencies.append(dt)
                            else:
                                errors += 1
                finally:
                    client.close()

            assert dep.proc is not None
            agent_pids = children(dep.proc.pid)
            cpu0 = cpu_seconds(dep.proc.pid), sum(cpu_seconds(p) for p in agent_pids)
            start = time.perf_counter()
            threads = [threading.Thread(target=worker) for _ in range(concurrency)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            submitted = time.perf_counter()
            total = per_worker * concurrency
            base = int(rate * (seconds + WARMUP_S))  # the latency phase's, already finished
            wait_finished(dep.url, admin, base + total - errors)
            end = time.perf_counter()
            stats = httpx.get(dep.url + "/v1/stats", headers=admin).json()["tasks_by_state"]
            cpu1 = cpu_seconds(dep.proc.pid), sum(cpu_seconds(p) for p in agent_pids)
            return {
                "tasks": total,
                "errors": errors,
                "failed": stats.get("failed", 0),
                "concurrency": concurrency,
                "nodes": nodes,
                "tasks_per_s_end_to_end": round(total / (end - start), 1),
                "submits_per_s": round(total / (submitted - start), 1),
                "closed_loop_submit_p50_ms": round(statistics.median(latencies) * 1000, 2),
                "closed_loop_submit_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
                **latency,
                "server_cpu_ms_per_task": round((cpu1[0] - cpu0[0]) / total * 1000, 2),
                "agents_cpu_ms_per_task": round((cpu1[1] - cpu0[1]) / total * 1000, 2),
                "layers": (only + " only") if only else ("on" if layers else "off"),
                "agent_auth": agent_auth if layers else "token",
                "database": "postgresql" if env.get("CNTRUST_DATABASE_URL") else "sqlite",
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                f"Python {platform.python_version()}",
                "host_speed_ms": host_speed_ms(),
            }
        finally:
            dep.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop arrivals/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="open-loop duration")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--layers", choices=("on", "off", "both", "each"), default="on",
        help="security layers in `cntrust up`; both: off then on, with on/off ratios; "
        "each: off, then each layer alone, then all on, each with its ratio against off",
    )  # fmt: skip
    parser.add_argument(
        "--agent-auth", choices=("mtls", "token", "both"), default="mtls",
        help="with the layers on, agents use their X.509-SVIDs over mTLS or bearer tokens "
        "over plain HTTP; both: token then mtls, with the mtls/token ratios (layers on)",
    )  # fmt: skip
    args = parser.parse_args()
    env = {"CNTRUST_DATABASE_URL": args.database_url} if args.database_url else {}
    bench = (args.tasks, args.concurrency, args.nodes, env, args.rate, args.seconds)
    if args.agent_auth == "both":
        token, mtls = (run(*bench, layers=True, agent_auth=a) for a in ("token", "mtls"))
        results = [token, mtls, _ratios(mtls, token, "mtls_token")]
        _print(results, args.json)
        return
    if args.layers == "each":
        off = run(*bench, layers=False)
        results = [off]
        for name in (*LAYERS, None):
            on = run(*bench, layers=True, agent_auth=args.agent_auth, only=name)
            results += [on, _ratios(on, off, f"{name or 'all'}_off")]
        _print(results, args.json)
        return
    sides = {"on": [True], "off": [False], "both": [False, True]}[args.layers]
    results = [run(*bench, layers=side, agent_auth=args.agent_auth) for side in sides]
    if len(results) == 2:
        off, on = results
        results.append(
            {
                "ratio_tasks_per_s_on_off": round(
                    float(on["tasks_per_s_end_to_end"]) / float(off["tasks_per_s_end_to_end"]), 3
                ),
                "ratio_submit_p99_on_off": round(
                    float(on["submit_p99_ms"]) / float(off["submit_p99_ms"]), 3
                ),
            }
        )
    _print(results, args.json)


def _ratios(a: dict[str, object], b: dict[str, object], name: str) -> dict[str, object]:
    return {
        f"ratio_tasks_per_s_{name}": round(
            float(a["tasks_per_s_end_to_end"]) / float(b["tasks_per_s_end_to_end"]),
            3,  # type: ignore[arg-type]
        ),
        f"ratio_submit_p99_{name}": round(
            float(a["submit_p99_ms"]) / float(b["submit_p99_ms"]),
            3,  # type: ignore[arg-type]
        ),
    }


def _print(results: list[dict[str, object]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            for key, value in result.items():
                print(f"{key:>26}: {value}")
            print()


if __name__ == "__main__":
    main()
