"""``cntrust refvalues``, ``cntrust node attest`` and ``cntrust node show`` against the
in-process API; bad input gives a message and a non-zero exit, never a traceback."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from scheduler.attest_agent import local_measurements
from scheduler.cli import app
from tests.unit.scheduler import attest_helpers as ah
from tests.unit.scheduler.helpers import add_node, admin

runner = CliRunner()


@pytest.fixture
def cli(api, service, monkeypatch):
    real_client, real_async = httpx.Client, httpx.AsyncClient

    def in_process(*args, **kwargs):
        return real_client(*args, transport=api._transport, **kwargs)

    def in_process_async(*args, **kwargs):
        return real_async(*args, transport=httpx.ASGITransport(app=api.app), **kwargs)

    monkeypatch.setattr("scheduler.client.httpx.Client", in_process)
    monkeypatch.setattr("httpx.AsyncClient", in_process_async)
    token = admin(service)["Authorization"].split()[1]

    def invoke(*args: str, auth: bool = True):
        extra = ["--server", "http://testserver"] + (["--token", token] if auth else [])
        return runner.invoke(app, [*args, *extra])

    return invoke


def test_refvalues_add_list_retire(cli, tmp_path):
    path = tmp_path / "rv.json"
    path.write_text(json.dumps(ah.refset(1)))
    added = cli("refvalues", "add", str(path))
    assert added.exit_code == 0 and "default@1" in added.output
    path.write_text(json.dumps(ah.refset(2, agent=ah.AGENT_DRIFTED)))
    assert cli("refvalues", "add", str(path)).exit_code == 0
    listed = cli("refvalues", "list", "--json")
    states = {r["id"]: r["state"] for r in json.loads(listed.output)}
    assert states == {"default@1": "update-window", "default@2": "current"}
    retired = cli("refvalues", "retire", "default", "1")
    assert retired.exit_code == 0 and "retired" in retired.output
    again = cli("refvalues", "add", str(path))
    assert again.exit_code == 1 and "409" in again.output


def test_refvalues_bad_input(cli, tmp_path):
    missing = cli("refvalues", "add", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "cannot read" in missing.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"node_class": "BAD CLASS", "version": 1}))
    refused = cli("refvalues", "add", str(bad))
    assert refused.exit_code == 1 and "reference values refused" in refused.output
    assert cli("refvalues", "retire", "default", "7").exit_code == 1


def test_node_attest_runs_one_round_and_node_show_prints_it(cli, api, service, tmp_path):
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    # the node's agent state, as `cntrust node agent` leaves it after registering
    headers = add_node(api, service, "n1", attested=False)
    token = headers["Authorization"].split()[1]
    (node_dir / "agent.json").write_text(json.dumps({"node_id": "n1", "token": token}))
    no_values = cli("node", "attest", "--dir", str(node_dir), auth=False)
    assert no_values.exit_code == 1 and "contraindicated" in no_values.output
    values = {
        "node_class": "default",
        "version": 1,
        "components": {k: [v.hex()] for k, v in local_measurements().items()},
        "accelerator_firmware_minimums": {},
    }
    assert (
        api.post("/v1/refvalues", json={"values": values}, headers=admin(service)).status_code
        == 201
    )
    ok = cli("node", "attest", "--dir", str(node_dir), auth=False)
    assert ok.exit_code == 0, ok.output
    assert "affirming" in ok.output and "component agent matches default@1" in ok.output
    shown = cli("node", "show", "n1")
    assert shown.exit_code == 0, shown.output
    assert "attestation: affirming" in shown.output and "history" in shown.output
    assert "contraindicated" in shown.output  # the first round is in the history


def test_node_attest_bad_input(cli, tmp_path):
    empty = cli("node", "attest", "--dir", str(tmp_path), auth=False)
    assert empty.exit_code == 2 and "no agent state" in empty.output
    (tmp_path / "agent.json").write_text(json.dumps({"node_id": "ghost", "token": "x.y.z"}))
    refused = cli("node", "attest", "--dir", str(tmp_path), auth=False)
    assert refused.exit_code == 2 and "attestation refused" in refused.output
