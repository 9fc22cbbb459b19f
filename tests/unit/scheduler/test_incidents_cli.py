"""`cntrust incidents ...` and `cntrust quarantine ...` against the in-process API."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from scheduler.cli.app import app
from scheduler.cli.common import console
from tests.unit.scheduler.alerts_helpers import analyst
from tests.unit.scheduler.helpers import add_node, add_tenant, submit
from tests.unit.scheduler.test_incidents import element_alerts, post

runner = CliRunner()
SERVER = ("--server", "http://testserver")


@pytest.fixture
def cli(api, service, monkeypatch):
    import httpx

    real_client = httpx.Client

    def in_process(*args, **kwargs):
        return real_client(*args, transport=api._transport, **kwargs)

    monkeypatch.setattr("scheduler.client.httpx.Client", in_process)
    monkeypatch.setattr(console, "width", 240)
    token = analyst(service)["Authorization"].split()[1]

    def invoke(*args: str):
        return runner.invoke(app, [*args, *SERVER, "--token", token])

    return invoke


def test_incident_and_quarantine_commands(cli, api, service):
    alice = add_tenant(api, service, "alice")
    add_node(api, service, "n1", cpu_cores=2)
    add_node(api, service, "n2", cpu_cores=2)
    t0 = service.clock() - 60
    post(api, service, element_alerts("n1", t0) + element_alerts("n1", t0 + 2))
    listed = cli("incidents", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [r["kind"] for r in rows] == ["ids.network.node_integrity"]
    human = cli("incidents", "list", "--node", "n1")
    assert human.exit_code == 0 and "node_integrity" in human.output and "n1" in human.output
    shown = cli("incidents", "show", rows[0]["id"])
    assert shown.exit_code == 0 and "quarantine" in shown.output and "incident" in shown.output

    task = submit(api, alice, ["sleep", "9"], cpu=2)
    assert task["node_id"] == "n2"
    added = cli("quarantine", "add", "n2", "--reason", "suspicious login", "--json")
    assert added.exit_code == 0, added.output
    made = json.loads(added.output)
    assert made["requeued"] == 1 and made["source"] == "analyst"
    active = json.loads(cli("quarantine", "list", "--json").output)
    assert {q["node_id"] for q in active} >= {"n1", "n2"}
    released = cli("quarantine", "release", str(made["id"]), "--note", "user confirmed")
    assert released.exit_code == 0 and "back online" in released.output
    history = cli("quarantine", "list", "--all", "--node", "n2")
    assert history.exit_code == 0 and "user confirmed" in history.output


def test_bad_cli_input_exits_non_zero(cli, api, service):
    cases = {
        ("incidents", "show", "not-an-id"): 2,
        ("incidents", "show", "inc-0000"): 1,  # 404 from the API
        ("incidents", "list", "--kind", "ddos"): 2,
        ("incidents", "list", "--severity", "9"): 2,
        ("quarantine", "release", "1", "--note", " "): 2,
        ("quarantine", "release", "0", "--note", "x"): 2,
        ("quarantine", "release", "77", "--note", "x"): 1,
        ("quarantine", "add", "ghost", "--reason", "x"): 1,
        ("quarantine", "add", "ghost", "--reason", ""): 2,
    }
    for args, code in cases.items():
        result = cli(*args)
        assert result.exit_code == code, (args, result.output)
    unreachable = runner.invoke(
        app, ["incidents", "list", "--server", "http://127.0.0.1:9", "--token", "x"]
    )
    assert unreachable.exit_code in (1, 3)
