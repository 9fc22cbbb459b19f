"""`cntrust audit bundle` + `audit key` + `audit verify`: the regulator's round trip through
the in-process app (the CLI's httpx goes through the test client's transport)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from scheduler.cli import app
from scheduler.provenance import ProvenanceLayer
from tests.conftest import bearer
from tests.unit.scheduler.helpers import add_node, add_tenant, claim, report, submit

runner = CliRunner()
SERVER = "http://testserver"


@pytest.fixture
def papi(service: Any, api: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    import httpx

    layer = ProvenanceLayer.for_service(service, checkpoint_delay_s=0.05)
    layer.start()
    real_client = httpx.Client

    def in_process(*args: Any, **kwargs: Any) -> Any:
        return real_client(*args, transport=api._transport, **kwargs)

    monkeypatch.setattr("httpx.Client", in_process)
    yield api
    layer.stop()


def finished_task(api: Any, service: Any) -> str:
    tenant = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1")
    task = submit(api, tenant)
    claim(api, node)
    assert report(api, node, task["id"]).status_code == 200
    return str(task["id"])


def test_bundle_key_verify_round_trip(papi, service, tmp_path):
    task_id = finished_task(papi, service)
    token = bearer(service, "tenant", "alice")["Authorization"].split()[1]
    out = tmp_path / "bundle.json"
    got = runner.invoke(
        app,
        ["audit", "bundle", task_id, "-o", str(out), "--server", SERVER, "--token", token],
    )
    assert got.exit_code == 0, got.output
    assert "not anchored yet" in got.output
    key = runner.invoke(app, ["audit", "key", "--server", "http://testserver"])
    assert key.exit_code == 0, key.output
    vkey = key.output.strip()
    assert vkey.startswith("cntrust.local/log+")

    ok = runner.invoke(app, ["audit", "verify", str(out), "--log-key", vkey, "--allow-unanchored"])
    assert ok.exit_code == 0, ok.output
    assert "Proof bundle verified" in ok.output
    # without --allow-unanchored an unanchored bundle is refused at the anchor step
    refused = runner.invoke(app, ["audit", "verify", str(out), "--log-key", vkey])
    assert refused.exit_code == 1 and "anchor" in refused.output

    # a tampered copy fails, naming the step
    bundle = json.loads(out.read_bytes())
    bundle["leafIndex"] = 1
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(bundle, sort_keys=True, separators=(",", ":")))
    failed = runner.invoke(
        app, ["audit", "verify", str(bad), "--log-key", vkey, "--allow-unanchored"]
    )
    assert failed.exit_code == 1 and "FAILED" in failed.output and "inclusion" in failed.output


def test_bundle_errors_exit_non_zero_without_traceback(papi, service, tmp_path):
    token = bearer(service, "tenant", "alice")["Authorization"].split()[1]
    out = tmp_path / "b.json"
    missing = runner.invoke(
        app,
        ["audit", "bundle", "deadbeef", "-o", str(out), "--server", SERVER, "--token", token],
    )
    assert missing.exit_code == 1 and "404" in missing.output and not out.exists()
    assert "Traceback" not in missing.output
    bad_id = runner.invoke(
        app, ["audit", "bundle", "../etc", "--server", "http://testserver", "-o", str(out)]
    )
    assert bad_id.exit_code == 2 and "invalid task id" in bad_id.output


def test_unreachable_server_exits_3():
    got = runner.invoke(app, ["audit", "key", "--server", "http://127.0.0.1:9"])
    assert got.exit_code == 3 and "cannot reach the server" in got.output
