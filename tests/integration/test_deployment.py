"""A real deployment: `cntrust up` with real agent processes."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from scheduler.client import Client
from tests.integration.deploy import UpProcess


def wait_state(client: Client, task_id: str, states: set[str], timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    task = client.task(task_id)
    while task["state"] not in states and time.monotonic() < deadline:
        time.sleep(0.1)
        task = client.task(task_id)
    return task


def db_env(database_url: str) -> dict[str, str]:
    return {"CNTRUST_DATABASE_URL": database_url}


@pytest.fixture
def up(tmp_path, database_url):
    dep = UpProcess(tmp_path / "data", nodes=3, env=db_env(database_url)).start()
    yield dep
    dep.stop()


def test_agents_run_tasks_side_by_side(up):
    admin = Client(up.url, up.admin_token())
    admin.add_tenant("alice")
    alice = Client(up.url, up.token("tenant", "alice"))
    deadline = time.monotonic() + 30
    while sum(n["status"] == "online" for n in admin.nodes()) < 3:
        assert time.monotonic() < deadline, "agents did not register"
        time.sleep(0.1)
    ids = [alice.submit(["sh", "-c", f"echo {i}"])["id"] for i in range(30)]
    done = [wait_state(alice, i, {"succeeded", "failed"}) for i in ids]
    assert all(t["state"] == "succeeded" for t in done)
    assert len({t["node_id"] for t in done}) >= 2, "work was not spread over the agents"
    # each agent keeps its own data dir
    dirs = sorted(p.name for p in (up.data_dir / "nodes").iterdir())
    assert dirs == ["node-1", "node-2", "node-3"]
    for d in dirs:
        state = up.data_dir / "nodes" / d / "agent.json"
        assert oct(state.stat().st_mode & 0o777) == "0o600"


def test_agent_killed_mid_task_is_rescheduled(tmp_path, database_url):
    dep = UpProcess(tmp_path / "data", nodes=0, env=db_env(database_url)).start()
    try:
        admin = Client(dep.url, dep.admin_token())
        admin.add_tenant("alice")
        alice = Client(dep.url, dep.token("tenant", "alice"))
        agents = []
        import subprocess
        import sys

        for name in ("a1", "a2"):
            cmd = [
                sys.executable, "-m", "scheduler.cli", "node", "agent", "--server", dep.url,
                "--token", dep.token("node-register", name), "--dir", str(tmp_path / name),
                "--cpu", "2",
            ]  # fmt: skip
            agents.append(subprocess.Popen(cmd, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 30
        while sum(n["status"] == "online" for n in admin.nodes()) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        task = alice.submit(["sleep", "2"])
        running = wait_state(alice, task["id"], {"running"})
        victim = {"a1": agents[0], "a2": agents[1]}[running["node_id"]]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(5)
        # the default heartbeat timeout is 10 s
        done = wait_state(alice, task["id"], {"succeeded", "failed"}, timeout=40)
        assert done["state"] == "succeeded"
        assert done["node_id"] != running["node_id"] and done["attempt"] == 1
        reasons = [e["reason"] for e in alice.task(task["id"])["events"]]
        assert any("stopped heartbeating" in r for r in reasons)
    finally:
        for proc in agents:
            proc.kill()
        dep.stop()


def test_up_resumes_state_on_the_same_data_dir(tmp_path, database_url):
    dep = UpProcess(tmp_path / "data", nodes=0, env=db_env(database_url)).start()
    Client(dep.url, dep.admin_token()).add_tenant("alice")
    task = Client(dep.url, dep.token("tenant", "alice")).submit(["true"])
    assert dep.stop() == 0
    again = UpProcess(tmp_path / "data", nodes=0, env=db_env(database_url)).start()
    try:
        alice = Client(again.url, again.token("tenant", "alice"))
        assert alice.task(task["id"])["state"] == "admitted"
    finally:
        again.stop()


def test_up_on_a_busy_port_fails_cleanly(tmp_path, database_url):
    first = UpProcess(tmp_path / "one", nodes=0, env=db_env(database_url)).start()
    try:
        second = UpProcess(tmp_path / "two", nodes=0, env=db_env(database_url))
        second.port = first.port
        second.url = first.url
        with pytest.raises(RuntimeError):
            second.start(timeout=15)
        assert second.proc is not None and second.proc.returncode not in (0, None)
        assert httpx.get(first.url + "/healthz").status_code == 200
    finally:
        first.stop()


def test_up_without_layers_runs_the_bare_scheduler(tmp_path, database_url):
    dep = UpProcess(tmp_path / "data", nodes=0, env=db_env(database_url), layers=False).start()
    try:
        admin = Client(dep.url, dep.admin_token())
        admin.add_tenant("alice")
        task = Client(dep.url, dep.token("tenant", "alice")).submit(["true"])
        assert task["state"] == "admitted"
        assert httpx.get(dep.url + "/log/key").status_code == 404  # no provenance layer
    finally:
        dep.stop()


def test_up_with_layers_serves_the_provenance_log(tmp_path, database_url):
    dep = UpProcess(tmp_path / "data", nodes=0, env=db_env(database_url)).start()
    try:
        key = httpx.get(dep.url + "/log/key")
        assert key.status_code == 200 and key.text.startswith("cntrust.local/log+")
    finally:
        dep.stop()
