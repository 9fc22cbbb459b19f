"""kill -9 of the scheduler during concurrent submissions loses no acknowledged task."""

from __future__ import annotations

import random
import threading
import time

import httpx

from tests.integration.deploy import UpProcess

CYCLES = 8


def test_kill9_loses_no_acknowledged_task(tmp_path, database_url):
    data = tmp_path / "data"
    env = {"CNTRUST_DATABASE_URL": database_url}
    dep = UpProcess(data, nodes=0, env=env).start()
    httpx.post(
        dep.url + "/v1/tenants",
        json={"name": "alice"},
        headers={"Authorization": f"Bearer {dep.admin_token()}"},
    ).raise_for_status()
    acknowledged: list[str] = []
    rng = random.Random(7)
    for cycle in range(CYCLES):
        token = dep.token("tenant", "alice")
        stop = threading.Event()
        lock = threading.Lock()

        def submitter(
            url: str = dep.url,
            token: str = token,
            stop: threading.Event = stop,
            lock: threading.Lock = lock,
        ) -> None:
            with httpx.Client(base_url=url, timeout=5) as client:
                while not stop.is_set():
                    try:
                        resp = client.post(
                            "/v1/tasks",
                            json={"command": ["true"]},
                            headers={"Authorization": f"Bearer {token}"},
                        )
                    except httpx.HTTPError:
                        return
                    if resp.status_code == 201:
                        with lock:
                            acknowledged.append(resp.json()["id"])

        threads = [threading.Thread(target=submitter) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.3, 0.8))
        dep.kill9()
        stop.set()
        for t in threads:
            t.join(10)
        dep = UpProcess(data, nodes=0, env=env)
        dep.start()
        assert acknowledged, f"cycle {cycle}: nothing was acknowledged"
    try:
        headers = {"Authorization": f"Bearer {dep.token('tenant', 'alice')}"}
        with httpx.Client(base_url=dep.url, headers=headers, timeout=10) as client:
            missing = [i for i in acknowledged if client.get(f"/v1/tasks/{i}").status_code != 200]
            listed = client.get("/v1/tasks", params={"limit": 1000}).json()
        assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged tasks were lost"
        assert len(acknowledged) > CYCLES * 10
        assert all(t["state"] == "admitted" for t in listed)
    finally:
        dep.stop()
