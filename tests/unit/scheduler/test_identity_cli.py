"""`cntrust operator add`, `token create`, `enroll`, `revoke` through CliRunner, with the
node-side commands talking to the in-process app through the test client's transport."""

from __future__ import annotations

import stat

import pytest
import typer
from typer.testing import CliRunner

from identity.pki import load_node_credentials
from scheduler.cli.identity_cmd import app as identity_app
from tests.unit.scheduler.helpers import admin

runner = CliRunner()

# mounted here the way the lead mounts it in scheduler/cli/app.py
cli = typer.Typer()
cli.add_typer(identity_app, name="identity")


def invoke(*args: str, **kw):
    return runner.invoke(cli, ["identity", *args], **kw)


@pytest.fixture
def in_process(api, monkeypatch):
    import httpx

    real_client = httpx.Client

    def client(*args, **kwargs):
        return real_client(*args, transport=api._transport, **kwargs)

    monkeypatch.setattr("scheduler.client.httpx.Client", client)
    return api


def test_operator_add_token_create_enroll_revoke(service, in_process, database_url, tmp_path):
    api = in_process
    env = {"CNTRUST_DATABASE_URL": database_url}
    data = str(service.settings.data_dir)
    added = invoke("operator", "add", "acme", "--data-dir", data, env=env)
    assert added.exit_code == 0, added.output
    dup = invoke("operator", "add", "acme", "--data-dir", data, env=env)
    assert dup.exit_code == 1 and "already exists" in dup.output
    created = invoke(
        "token", "create", "--operator", "acme", "--ttl", "10m", "--data-dir", data, env=env
    )
    assert created.exit_code == 0, created.output
    token = created.output.strip()
    assert token.startswith("cntj1.")

    node_dir = tmp_path / "node"
    args = ("--server", "http://testserver", "--token", token, "--dir", str(node_dir))
    result = invoke("enroll", *args, "--node-id", "n1", "--json", env=env)
    assert result.exit_code == 0, result.output
    assert '"spiffe_id": "spiffe://cntrust.local/operator/acme/node/n1"' in result.output
    creds = load_node_credentials(node_dir)  # key matches the SVID; key file 0600
    assert stat.S_IMODE(creds.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((node_dir / "node_token").stat().st_mode) == 0o600
    node_token = (node_dir / "node_token").read_text()
    registered = api.post(
        "/v1/nodes/register",
        json={"cpu_cores": 1, "memory_mb": 512},
        headers={"Authorization": f"Bearer {node_token}"},
    )
    assert registered.status_code == 201, registered.text

    reused = invoke("enroll", *args, "--node-id", "n2", env=env)
    assert reused.exit_code == 1 and "401" in reused.output and "Traceback" not in reused.output
    # a failed enrollment leaves the node's existing credentials as they were
    assert load_node_credentials(node_dir).certificate == creds.certificate

    admin_token = admin(service)["Authorization"].split()[1]
    revoke = ("revoke", "n1", "--reason", "lost", "--server", "http://testserver")
    revoked = invoke(*revoke, "--token", admin_token)
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    again = invoke(*revoke, "--token", admin_token)
    assert again.exit_code == 0 and "already revoked" in again.output
    refused = api.post(
        "/v1/agent/heartbeat",
        json={"running": []},
        headers={"Authorization": f"Bearer {registered.json()['token']}"},
    )
    assert refused.status_code == 401 and refused.json()["reason"] == "revoked"


def test_bad_input_exits_with_a_message(service, database_url, tmp_path):
    env = {"CNTRUST_DATABASE_URL": database_url}
    data = str(service.settings.data_dir)
    bad = invoke("operator", "add", "Bad/..", "--data-dir", data, env=env)
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    unknown = invoke("token", "create", "--operator", "ghost", "--data-dir", data, env=env)
    assert unknown.exit_code == 1 and "not found" in unknown.output
    long = invoke("token", "create", "--operator", "x", "--ttl", "8d", "--data-dir", data)
    assert long.exit_code == 2 and "at most" in long.output
    algo = invoke(
        "enroll", "--token", "t", "--dir", str(tmp_path), "--node-id", "n", "--key-algorithm", "rsa"
    )
    assert algo.exit_code == 2 and "unsupported key algorithm" in algo.output
