"""CLI contract: local admin commands, error exits with messages, never a traceback."""

from __future__ import annotations

from typer.testing import CliRunner

from scheduler.cli import app

runner = CliRunner()


def invoke(*args: str, **kw):
    return runner.invoke(app, list(args), **kw)


def test_tenant_add_and_token(tmp_path, database_url):
    env = {"CNTRUST_DATABASE_URL": database_url}
    data = str(tmp_path / "d")
    result = invoke("tenant", "add", "alice", "--data-dir", data, env=env)
    assert result.exit_code == 0, result.output
    again = invoke("tenant", "add", "alice", "--data-dir", data, env=env)
    assert again.exit_code == 1 and "already exists" in again.output
    token = invoke("tenant", "token", "alice", "--ttl", "5m", "--data-dir", data, env=env)
    assert token.exit_code == 0 and token.output.count(".") == 2
    missing = invoke("tenant", "token", "bob", "--data-dir", data, env=env)
    assert missing.exit_code == 1 and "not registered" in missing.output


def test_bad_names_and_durations_exit_2(tmp_path):
    data = str(tmp_path / "d")
    bad_name = invoke("tenant", "add", "Alice/..", "--data-dir", data)
    assert bad_name.exit_code == 2 and "invalid name" in bad_name.output
    bad_ttl = invoke("tenant", "token", "alice", "--ttl", "forever", "--data-dir", data)
    assert bad_ttl.exit_code == 2 and "invalid duration" in bad_ttl.output
    too_long = invoke("admin", "token", "--ttl", "2d", "--data-dir", data)
    assert too_long.exit_code == 2 and "at most" in too_long.output


def test_unreachable_server_exits_3_with_message():
    result = invoke(
        "task", "list", "--server", "http://127.0.0.1:9", "--token", "x", catch_exceptions=False
    )
    assert result.exit_code == 3 and "cannot reach the server" in result.output


def test_bad_classification_is_refused_before_sending():
    result = invoke(
        "task", "submit", "--server", "http://127.0.0.1:9", "--classification", "top", "--", "true"
    )
    assert result.exit_code == 2 and "classification" in result.output


def test_api_errors_are_shown_not_raised(api, service, monkeypatch):
    """The CLI talks to the in-process app through the test client's transport."""
    import httpx

    from tests.unit.scheduler.helpers import add_tenant

    token = add_tenant(api, service, "alice")["Authorization"].split()[1]
    real_client = httpx.Client

    def in_process(*args, **kwargs):
        return real_client(*args, transport=api._transport, **kwargs)

    monkeypatch.setattr("scheduler.client.httpx.Client", in_process)
    result = invoke("task", "show", "nope", "--server", "http://testserver", "--token", token)
    assert result.exit_code == 1 and "404" in result.output and "Traceback" not in result.output
    listed = invoke("task", "list", "--json", "--server", "http://testserver", "--token", token)
    assert listed.exit_code == 0 and listed.output.strip() == "[]"


def test_version():
    assert invoke("version").exit_code == 0
