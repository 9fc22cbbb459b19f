"""Element telemetry: the agent's reporter watches a real abusive task, signs, the scheduler
verifies, detects, correlates and quarantines; every bad input is a problem."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ids.layers import TelemetryRecord, encode_signed_telemetry, sign_telemetry
from scheduler.element_agent import ElementReporter, public_key_text
from scheduler.models import Node, NodeStatus
from tests.conftest import bearer
from tests.unit.scheduler.helpers import add_node, add_tenant, admin, submit

ABUSE = """
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
end = time.time() + 30
while time.time() < end:
    pass
"""


def post_key(api: Any, node: dict[str, str], reporter: ElementReporter) -> Any:
    return api.post(
        "/v1/agent/telemetry-key", json={"public_key": public_key_text(reporter.key)}, headers=node
    )


def post_record(api: Any, node: dict[str, str], body: bytes) -> Any:
    return api.post(
        "/v1/agent/telemetry", content=body, headers={**node, "Content-Type": "application/json"}
    )


@pytest.fixture
def abusive(tmp_path: Path):
    """A real task process: busy-loops on a full core and leaves a listening socket."""
    scratch = tmp_path / "scratch" / "t-abuse"
    scratch.mkdir(parents=True)
    env = {**os.environ, "CNTRUST_TASK_ID": "t-abuse", "TMPDIR": str(scratch.resolve())}
    proc = subprocess.Popen(
        [sys.executable, "-c", ABUSE],
        cwd=scratch,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield proc
    proc.kill()
    proc.wait(10)


def test_a_real_abusive_task_gets_its_node_quarantined(api, service, tmp_path, abusive, clock):
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1", cpu_cores=2)
    victim_work = submit(api, alice, ["sleep", "30"])
    assert victim_work["node_id"] == "n1"
    reporter = ElementReporter(tmp_path / "agent", tmp_path / "scratch", clock=time.time)
    reporter.task_started("t-abuse", cpu=0.02, memory_mb=512)  # a busy loop is far above
    assert post_key(api, node, reporter).status_code == 201
    assert post_key(api, node, reporter).status_code == 200  # the same key again
    time.sleep(0.3)
    outs = []
    for _ in range(6):  # the machine may be busy: give the loop a few windows
        record = reporter.collect("n1")
        assert record is not None
        clock.now = record.collected_at_ms / 1000 + 0.5
        resp = post_record(api, node, reporter.signed_body(record))
        assert resp.status_code == 200, resp.text
        outs.append(resp.json())
        if status(service, "n1") == NodeStatus.CORDONED:
            break
        time.sleep(1.0)
    usage = record.tasks[0]
    assert usage.pids and abusive.pid in usage.pids
    assert any(s.pid == abusive.pid for s in record.listening)
    assert status(service, "n1") == NodeStatus.CORDONED
    incidents = api.get("/v1/incidents", headers=admin(service)).json()
    assert [i["kind"] for i in incidents] == ["ids.network.node_integrity"]
    assert incidents[0]["node_ids"] == ["n1"]
    moved = api.get(f"/v1/tasks/{victim_work['id']}", headers=admin(service)).json()
    assert moved["state"] == "admitted" and moved["attempt"] == 1
    sids = {a["signature_id"] for a in api.get("/v1/alerts", headers=admin(service)).json()}
    assert {1_991_002, 1_991_005} <= sids  # unexpected listener, CPU beyond the request
    assert 1_991_004 not in sids  # it writes nothing outside its scratch dir


def status(service: Any, node: str) -> NodeStatus:
    with service.read() as session:
        row = session.get(Node, node)
        assert row is not None
        return row.status


def _record(node: str, seq: int, at_ms: int) -> TelemetryRecord:
    return TelemetryRecord(node_id=node, node_ip="10.0.0.11", seq=seq, collected_at_ms=at_ms)


def test_bad_telemetry_is_refused_with_problems(api, service, tmp_path):
    node = add_node(api, service, "n1")
    other = add_node(api, service, "n2")
    alice = add_tenant(api, service, "alice")
    reporter = ElementReporter(tmp_path / "a1", tmp_path / "s1")
    stranger = ElementReporter(tmp_path / "a2", tmp_path / "s2")
    now_ms = int(service.clock() * 1000)
    good = encode_signed_telemetry(sign_telemetry(_record("n1", now_ms, now_ms), reporter.key))
    # no key registered yet
    assert post_record(api, node, good).status_code == 409
    assert post_key(api, node, reporter).status_code == 201
    assert post_key(api, node, stranger).status_code == 409  # another key: re-enroll
    cases = {
        "not json": post_record(api, node, b"{nope"),
        "unknown field": post_record(api, node, b'{"alg":"Ed25519","signature":"","x":1}'),
        "wrong signer": post_record(
            api, node, encode_signed_telemetry(sign_telemetry(_record("n1", now_ms, now_ms),
                                                              stranger.key))
        ),
        "other node's record": post_record(
            api, other, encode_signed_telemetry(sign_telemetry(_record("n1", now_ms, now_ms),
                                                               reporter.key))
        ),
        "stale": post_record(
            api, node, encode_signed_telemetry(sign_telemetry(_record("n1", 5, now_ms - 10**7),
                                                              reporter.key))
        ),
        "bad node ip": post_record(
            api, node, encode_signed_telemetry(sign_telemetry(
                TelemetryRecord("n1", "not-an-ip", now_ms + 1, now_ms), reporter.key))
        ),
        "tenant": post_record(api, alice, good),
        "too large": post_record(api, node, b" " * (service.settings.alerts_max_body_bytes + 1)),
        "bad key": api.post("/v1/agent/telemetry-key", json={"public_key": "!" * 43},
                            headers=other),
        "tenant key": post_key(api, alice, reporter),
    }  # fmt: skip
    codes = {name: r.status_code for name, r in cases.items()}
    assert codes == {
        "not json": 422,
        "unknown field": 422,
        "wrong signer": 422,
        "other node's record": 409,  # n2 has no key; with one it would fail node_id
        "stale": 422,
        "bad node ip": 422,
        "tenant": 403,
        "too large": 413,
        "bad key": 422,
        "tenant key": 403,
    }, codes
    for name, r in cases.items():
        assert r.headers["content-type"] == "application/problem+json", name
    assert cases["wrong signer"].json()["step"] == "signature"
    assert cases["stale"].json()["step"] == "freshness"
    # a good record is accepted once; the same record again is a replay
    assert post_record(api, node, good).status_code == 200
    replay = post_record(api, node, good)
    assert replay.status_code == 422 and replay.json()["step"] == "seq"
    # a record naming another node, signed by that node's registered key, is refused
    assert post_key(api, other, stranger).status_code == 201
    forged = encode_signed_telemetry(
        sign_telemetry(_record("n1", now_ms + 5, now_ms), stranger.key)
    )
    wrong = post_record(api, other, forged)
    assert wrong.status_code == 422 and wrong.json()["step"] == "node_id"


def test_an_analyst_forgets_a_key_so_a_rebuilt_node_registers_again(api, service, tmp_path):
    node = add_node(api, service, "n1")
    old = ElementReporter(tmp_path / "a1", tmp_path / "s1")
    new = ElementReporter(tmp_path / "a2", tmp_path / "s2")
    assert post_key(api, node, old).status_code == 201
    assert post_key(api, node, new).status_code == 409
    ana = bearer(service, "analyst", "ana")
    assert api.delete("/v1/nodes/n1/telemetry-key", headers=node).status_code == 403
    assert api.delete("/v1/nodes/n1/telemetry-key", headers=ana).status_code == 204
    gone = api.delete("/v1/nodes/n1/telemetry-key", headers=ana)
    assert gone.status_code == 404 and gone.headers["content-type"] == "application/problem+json"
    assert post_key(api, node, new).status_code == 201


def test_another_agents_process_with_the_same_task_id_is_not_ours(tmp_path, abusive):
    """Two agents on one machine can run the same task id (a requeued task winding down
    on one node while it runs on another): each claims only the processes it started."""
    mine = ElementReporter(tmp_path / "agent", tmp_path / "scratch", clock=time.time)
    other = ElementReporter(tmp_path / "other", tmp_path / "other-scratch", clock=time.time)
    for reporter in (mine, other):
        reporter.task_started("t-abuse", cpu=1.0, memory_mb=512)
    assert mine._task_pids() == {"t-abuse": [abusive.pid]}
    assert other._task_pids() == {}


def test_the_agents_own_code_drifting_between_attestations_is_reported(tmp_path):
    """With no task running, a change of the agent's measurement is still sent: a record
    with attested != measured, which the element layer turns into a drift alert."""
    from ids.layers import detect_element

    digest = ["aa" * 32]
    now = [1000.0]
    reporter = ElementReporter(
        tmp_path / "agent", tmp_path / "scratch", clock=lambda: now[0],
        measure=lambda: digest[0], measure_interval_s=10.0,
    )  # fmt: skip
    assert reporter.collect("n1") is None  # baseline taken, nothing to say
    digest[0] = "bb" * 32
    now[0] += 5
    assert reporter.collect("n1") is None  # not re-measured yet
    now[0] += 6
    record = reporter.collect("n1")
    assert record is not None and record.tasks == ()
    assert (record.attested_digest, record.measurement_digest) == ("aa" * 32, "bb" * 32)
    alerts = detect_element(record)
    assert [a["cntrust"]["detection"] for a in alerts] == ["ids.element.measurement_drift"]
    now[0] += 11
    assert reporter.collect("n1") is None  # reported once, not every round
