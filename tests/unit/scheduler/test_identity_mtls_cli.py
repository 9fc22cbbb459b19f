"""`cntrust operator rotate|revoke`, `node agent` with an enrolled --dir: through CliRunner,
talking to the in-process app through the test client's transport."""

from __future__ import annotations

from typer.testing import CliRunner

from scheduler.cli.app import app as cntrust
from tests.unit.scheduler.helpers import admin
from tests.unit.scheduler.test_identity_cli import in_process  # noqa: F401 (fixture)

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(cntrust, list(args))


def test_operator_rotate_and_revoke(service, in_process, tmp_path):  # noqa: F811
    api = in_process
    resp = api.post("/v1/operators", json={"name": "acme"}, headers=admin(service))
    assert resp.status_code == 201
    token = admin(service)["Authorization"].split()[1]
    server = ("--server", "http://testserver", "--token", token)
    rotated = invoke("operator", "rotate", "acme", *server)
    assert rotated.exit_code == 0, rotated.output
    assert "CA rotated" in rotated.output
    revoked = invoke("operator", "revoke", "acme", "--reason", "key leaked", *server, "--json")
    assert revoked.exit_code == 0, revoked.output
    assert '"already_revoked": false' in revoked.output
    again = invoke("operator", "revoke", "acme", "--reason", "again", *server)
    assert again.exit_code == 0 and "already revoked: key leaked" in again.output
    refused = invoke("operator", "rotate", "acme", *server)
    assert refused.exit_code == 1 and "409" in refused.output


def test_operator_commands_refuse_bad_input(service, in_process):  # noqa: F811
    token = admin(service)["Authorization"].split()[1]
    server = ("--server", "http://testserver", "--token", token)
    unknown = invoke("operator", "rotate", "ghost", *server)
    assert unknown.exit_code == 1 and "404" in unknown.output
    no_reason = invoke("operator", "revoke", "ghost", *server)
    assert no_reason.exit_code == 2
    no_token = invoke(
        "operator", "revoke", "ghost", "--reason", "x", "--server", "http://testserver"
    )
    assert no_token.exit_code == 1 and "401" in no_token.output
    assert "Traceback" not in unknown.output + no_token.output


def test_agent_with_broken_credentials_exits_with_a_message(tmp_path):
    node = tmp_path / "node"
    node.mkdir()
    (node / "svid.pem").write_text("not a certificate")
    result = invoke("node", "agent", "--server", "https://127.0.0.1:1", "--dir", str(node))
    assert result.exit_code == 1, result.output
    assert "cannot load the node's credentials" in result.output
