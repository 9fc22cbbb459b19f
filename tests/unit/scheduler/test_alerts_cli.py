"""`cntrust alerts ...` against the in-process API (the test client's transport)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from scheduler.cli.alerts_cmd import app
from scheduler.cli.common import console
from tests.unit.scheduler.alerts_helpers import T0, alert, analyst, ingest

runner = CliRunner()
SERVER = ("--server", "http://testserver")


@pytest.fixture
def cli(api, service, monkeypatch):
    import httpx

    real_client = httpx.Client

    def in_process(*args, **kwargs):
        return real_client(*args, transport=api._transport, **kwargs)

    monkeypatch.setattr("scheduler.client.httpx.Client", in_process)
    monkeypatch.setattr(console, "width", 240)  # rich wraps at 80 columns without a terminal
    token = analyst(service)["Authorization"].split()[1]

    def invoke(*args: str):
        return runner.invoke(app, [*args, *SERVER, "--token", token])

    return invoke


def test_list_show_triage(cli, api, service):
    ids = ingest(api, service, [alert(), alert(), alert(sid=7, node="n1", severity=1)])["alert_ids"]
    listed = cli("list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert sorted(r["count"] for r in rows) == [1, 2]
    table = cli("list", "--severity", "1")
    assert table.exit_code == 0 and "n1" in table.output and ids[1][:12] in table.output
    assert ids[0][:12] not in table.output
    grouped = cli("list", "--group-by", "source", "--json")
    assert json.loads(grouped.output)[0]["events"] == 3
    assert cli("list", "--group-by", "source").exit_code == 0
    tri = cli("triage", ids[0], "closed", "--note", "lab traffic")
    assert tri.exit_code == 0 and "closed" in tri.output
    shown = cli("show", ids[0], "--json")
    detail = json.loads(shown.output)
    assert detail["state"] == "closed" and detail["history"][0]["note"] == "lab traffic"
    human = cli("show", ids[0])
    assert human.exit_code == 0 and "lab traffic" in human.output


def test_bad_input_exits_non_zero_with_message(cli, api, service):
    aid = ingest(api, service, [alert()])["alert_ids"][0]
    bad_state = cli("triage", aid, "ignored")
    assert bad_state.exit_code == 2 and "unknown state" in bad_state.output
    refused = cli("triage", aid, "closed")  # a note is required: the API says 409
    assert refused.exit_code == 1 and "409" in refused.output and "Traceback" not in refused.output
    missing = cli("show", "f" * 32)
    assert missing.exit_code == 1 and "404" in missing.output
    assert cli("list", "--group-by", "node").exit_code == 2
    assert cli("list", "--state", "open").exit_code == 2
    assert cli("list", "--severity", "9").exit_code == 2
    no_field = cli("suppress", "--reason", "x")
    assert no_field.exit_code == 2 and "at least one" in no_field.output
    bad_net = cli("suppress", "--reason", "x", "--src", "nope")
    assert bad_net.exit_code == 2 and "CIDR" in bad_net.output
    assert cli("suppress", "--reason", "x", "--sid", "1", "--ttl", "forever").exit_code == 2
    too_long = cli("suppress", "--reason", "x", "--sid", "1", "--ttl", "365d")
    assert too_long.exit_code == 1 and "422" in too_long.output


def test_suppress_list_unsuppress(cli, api, service):
    made = cli("suppress", "--reason", "our scanner", "--sid", "0", "--ttl", "1h", "--json")
    assert made.exit_code == 0, made.output
    sup = json.loads(made.output)
    assert sup["signature_id"] == 0 and sup["active"]
    assert ingest(api, service, [alert(sid=0)])["suppressed"] == 1
    listed = cli("suppressions")
    assert listed.exit_code == 0 and sup["id"] in listed.output
    gone = cli("unsuppress", sup["id"])
    assert gone.exit_code == 0
    assert json.loads(cli("suppressions", "--all", "--json").output) == []
    assert cli("unsuppress", sup["id"]).exit_code == 1


def test_export_to_file_and_stdout(cli, api, service, tmp_path):
    ingest(api, service, [alert(ts=T0), alert(sid=5, ts=T0 + 1)])
    out = tmp_path / "eve.json"
    result = cli("export", "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert [json.loads(x)["alert"]["signature_id"] for x in lines] == [2_000_001, 5]
    stdout = cli("export", "--node", "nobody")
    assert stdout.exit_code == 0 and stdout.output == ""


def test_export_errors_are_messages(api, service, monkeypatch):
    result = runner.invoke(app, ["export", "--server", "http://127.0.0.1:9", "--token", "x"])
    assert result.exit_code == 3 and "cannot reach" in result.output
    import httpx

    real_client = httpx.Client
    monkeypatch.setattr(
        "scheduler.client.httpx.Client",
        lambda *a, **kw: real_client(*a, transport=api._transport, **kw),
    )
    denied = runner.invoke(app, ["export", *SERVER, "--token", "garbage"])
    assert denied.exit_code == 1 and "401" in denied.output


def test_sensor_token_carries_the_sensor_role(tmp_path, database_url):
    env = {"CNTRUST_DATABASE_URL": database_url}
    data = str(tmp_path / "d")
    made = runner.invoke(
        app, ["sensor-token", "edge-1", "--ttl", "2h", "--data-dir", data], env=env
    )
    assert made.exit_code == 0, made.output
    token = made.output.strip()
    assert token.count(".") == 2
    too_long = runner.invoke(app, ["sensor-token", "edge-1", "--ttl", "2d", "--data-dir", data])
    assert too_long.exit_code == 2 and "at most 24h" in too_long.output
    bad = runner.invoke(app, ["sensor-token", "Edge/1", "--data-dir", data])
    assert bad.exit_code == 2 and "invalid name" in bad.output
    # the token carries the sensor role (checked with the deployment's own keys)
    from scheduler.service import Service
    from scheduler.settings import Settings

    svc = Service(Settings(data_dir=tmp_path / "d", database_url=database_url))
    try:
        who = svc.authenticate(f"Bearer {token}")
    finally:
        svc.close()
    assert (who.role, who.name) == ("sensor", "edge-1")
