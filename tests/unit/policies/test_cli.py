"""`cntrust policy` commands via typer's CliRunner: exit codes, messages, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from policies import default_policy_dir, node, placement_request, task
from scheduler.cli.policy_cmd import MAX_REQUEST_FILE_BYTES, app

runner = CliRunner()


def _request_file(tmp_path: Path, trust: float) -> Path:
    n = node("n1", region="eu", operator_id="o", trust=trust, uncertainty=0.1,
             attestation_status="affirming", attestation_age_s=10)  # fmt: skip
    t = task("t1", tenant_id="a", classification="secret", data_region="eu")
    path = tmp_path / f"req-{trust}.json"
    path.write_text(json.dumps(placement_request(t, n).to_dict()))
    return path


def test_validate_default_pack() -> None:
    result = runner.invoke(app, ["validate", str(default_policy_dir())])
    assert result.exit_code == 0
    assert "valid: 60 policies, version sha256:" in result.output


def test_validate_reports_every_problem(pack_copy: Path) -> None:
    (pack_copy / "bad.cedar").write_text(
        '@id("one")\n@reason("x")\npermit (principal,;\n\n'
        '@id("two")\n@reason("x")\nforbid (principal, action, resource) when { 1 + };\n'
    )
    result = runner.invoke(app, ["validate", str(pack_copy)])
    assert result.exit_code == 1
    assert "bad.cedar:1 [one]: syntax error" in result.stderr
    assert "bad.cedar:5 [two]: syntax error" in result.stderr
    assert "2 problem(s)" in result.stderr
    assert "Traceback" not in result.output


def test_validate_missing_directory() -> None:
    result = runner.invoke(app, ["validate", "/nonexistent/policies"])
    assert result.exit_code == 1 and "not a directory" in result.stderr


def test_test_runs_default_cases() -> None:
    result = runner.invoke(app, ["test", str(default_policy_dir())])
    assert result.exit_code == 0, result.output
    assert "125 passed, 0 failed" in result.output


def test_test_fails_on_a_wrong_case(pack_copy: Path) -> None:
    path = pack_copy / "cases" / "api.json"
    doc = json.loads(path.read_text())
    doc["cases"][0]["expect"] = "deny"
    path.write_text(json.dumps(doc))
    result = runner.invoke(app, ["test", str(pack_copy)])
    assert result.exit_code == 1
    assert "124 passed, 1 failed" in result.output


def test_test_refuses_malformed_case_file(pack_copy: Path) -> None:
    (pack_copy / "cases" / "zz.json").write_text('{"cases": [{"expect": "maybe"}]}')
    result = runner.invoke(app, ["test", str(pack_copy)])
    assert result.exit_code == 2 and 'expect must be "allow" or "deny"' in result.stderr


def test_check_allow_and_deny(tmp_path: Path) -> None:
    allowed = runner.invoke(app, ["check", "--request", str(_request_file(tmp_path, 0.9))])
    assert allowed.exit_code == 0 and "ALLOW" in allowed.output
    assert "policy: placement.permit" in allowed.output
    denied = runner.invoke(app, ["check", "--request", str(_request_file(tmp_path, 0.5))])
    assert denied.exit_code == 1 and "DENY" in denied.output
    assert "reason: secret tasks run only on nodes with trust >= 0.800" in denied.output


def test_check_json_with_policies_dir(tmp_path: Path) -> None:
    path = _request_file(tmp_path, 0.5)
    args = ["check", "--request", str(path), "--json", "--policies", str(default_policy_dir())]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["decision"] == "deny" and doc["policy_ids"] == ["placement.secret.trust"]


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "is not JSON"), ('{"action": 3}', "action"), (None, "cannot read")],
)
def test_check_bad_request_file(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    result = runner.invoke(app, ["check", "--request", str(path)])
    assert result.exit_code == 2 and message in result.stderr


def test_check_too_large_request_file(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(" " * (MAX_REQUEST_FILE_BYTES + 1))
    result = runner.invoke(app, ["check", "--request", str(path)])
    assert result.exit_code == 2 and "limit" in result.stderr


def test_check_unknown_action_is_a_deny(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    req = {"principal": {"type": "Admin", "id": "a"}, "action": "delete_everything",
           "resource": {"type": "PolicySet", "id": "p"},
           "entities": [{"uid": {"type": "Admin", "id": "a"}, "attrs": {}},
                        {"uid": {"type": "PolicySet", "id": "p"}, "attrs": {}}]}  # fmt: skip
    path.write_text(json.dumps(req))
    result = runner.invoke(app, ["check", "--request", str(path)])
    assert result.exit_code == 1 and "delete_everything" in result.output


def test_check_deeply_nested_request_file(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    result = runner.invoke(app, ["check", "--request", str(path)])
    assert result.exit_code == 2 and "is not JSON" in result.stderr
