"""``cntrust up``: its own agents attest through the real path (push mode, EAT) and get
work; the reference set for their measurements is made once per data dir."""

from __future__ import annotations

import time

from scheduler.client import ApiError, Client
from tests.integration.deploy import UpProcess


def test_local_agents_attest_and_work_out_of_the_box(tmp_path, database_url):
    env = {"CNTRUST_DATABASE_URL": database_url, "CNTRUST_ATTESTATION_INTERVAL_S": "1"}
    dep = UpProcess(tmp_path / "data", nodes=2, env=env).start()
    try:
        admin = Client(dep.url, dep.admin_token())
        deadline = time.monotonic() + 40
        statuses: dict = {}
        while True:
            try:
                nodes = {
                    n: admin.request("GET", f"/v1/attestation/nodes/{n}")
                    for n in ("node-1", "node-2")
                }
            except ApiError:  # not registered yet
                nodes = {}
            statuses = {n: b["attestation"]["status"] for n, b in nodes.items()}
            if nodes and all(len(b["history"]) >= 2 for b in nodes.values()):
                break
            assert time.monotonic() < deadline, f"agents did not attest: {statuses}"
            time.sleep(0.2)
        assert statuses == {"node-1": "affirming", "node-2": "affirming"}
        assert nodes["node-1"]["identity"]["attestation_key"]["alg"] == "EdDSA"
        sets = admin.request("GET", "/v1/refvalues")
        assert [(s["id"], s["added_by"], s["state"]) for s in sets] == [
            ("default@1", "cntrust-up", "current")
        ]
        admin.add_tenant("alice")
        alice = Client(dep.url, dep.token("tenant", "alice"))
        task = alice.submit(["true"])
        deadline = time.monotonic() + 30
        while alice.task(task["id"])["state"] != "succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert dep.stop() == 0
        # a restart on the same data dir reuses the set (same measurements)
        again = UpProcess(tmp_path / "data", nodes=0, env=env).start()
        try:
            sets = Client(again.url, again.admin_token()).request("GET", "/v1/refvalues")
            assert [s["id"] for s in sets] == ["default@1"]
        finally:
            again.stop()
    finally:
        if dep.proc is not None and dep.proc.poll() is None:
            dep.stop()
