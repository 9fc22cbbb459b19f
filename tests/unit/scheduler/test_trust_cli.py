"""``cntrust trust show|release`` against the in-process API (through the test client's
transport), and bad input: a message and a non-zero exit, never a traceback."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from scheduler.cli import app
from scheduler.trust_wiring import TrustLayer
from tests.unit.scheduler.helpers import add_node, add_tenant, admin, claim, report, submit

runner = CliRunner()


@pytest.fixture
def cli(api, service, monkeypatch):
    import httpx

    if not isinstance(getattr(service, "trust", None), TrustLayer):
        TrustLayer.install(service)
    real_client = httpx.Client

    def in_process(*args, **kwargs):
        return real_client(*args, transport=api._transport, **kwargs)

    monkeypatch.setattr("scheduler.client.httpx.Client", in_process)
    token = admin(service)["Authorization"].split()[1]

    def invoke(*args: str):
        return runner.invoke(
            app, ["trust", *args, "--server", "http://testserver", "--token", token]
        )

    return invoke


def test_show_json_explain_and_table(cli, api, service):
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1")
    task = submit(api, alice)
    claim(api, node)
    report(api, node, task["id"], exit_code=137)  # killed by a signal: the node answers for it
    as_json = cli("show", "n1", "--json")
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.output)
    assert body["node_id"] == "n1" and body["disbelief"] > 0
    # the node's attestation result is evidence too; the failed task is among the top items
    assert f"task:{task['id']}:0" in [e["evidence_id"] for e in body["top_evidence"]]
    explained = cli("show", "n1", "--explain")
    assert explained.exit_code == 0 and explained.output.startswith("node n1: score ")
    assert "trust.evidence.task_failed" in explained.output
    table = cli("show", "n1")
    assert table.exit_code == 0 and "belief / disbelief / uncertainty" in table.output
    assert "path back" in table.output


def test_show_unknown_node_and_bad_id_exit_non_zero(cli):
    missing = cli("show", "nope")
    assert missing.exit_code == 1 and "404" in missing.output
    assert "Traceback" not in missing.output
    bad = cli("show", "../etc")
    assert bad.exit_code == 2 and "invalid node id" in bad.output


def test_release_through_the_cli(cli, api, service):
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1", cpu_cores=8)
    for _ in range(5):
        submit(api, alice)
    for task in claim(api, node):
        report(api, node, task["id"], exit_code=137)
    assert json.loads(cli("show", "n1", "--json").output)["status"] == "cordoned"
    released = cli("release", "n1")
    assert released.exit_code == 0 and "released" in released.output
    again = cli("release", "n1")
    assert again.exit_code == 1 and "409" in again.output
