"""`ids-scenarios generate|score` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from scheduler.cli.ids_scenarios_cmd import app

runner = CliRunner()


def test_generate_writes_pcaps_and_answer_key(tmp_path: Path) -> None:
    out = tmp_path / "scen"
    result = runner.invoke(
        app,
        [
            "generate",
            "--out",
            str(out),
            "--seed",
            "4",
            "--scenario",
            "lateral_movement",
            "--scenario",
            "benign",
        ],
    )
    assert result.exit_code == 0, result.output
    key = json.loads((out / "answer_key.json").read_text())
    assert key["seed"] == 4
    assert [e["name"] for e in key["scenarios"]] == ["lateral_movement", "benign"]
    assert (out / "lateral_movement.pcap").exists() and (out / "scenario.rules").exists()
    assert "benign" in result.output and "(nothing)" in result.output

    scored = runner.invoke(app, ["score", str(out)])
    assert scored.exit_code == 0, scored.output
    assert "1.00" in scored.output


def test_bad_input_exits_2_without_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--out", str(tmp_path), "--scenario", "nope"])
    assert result.exit_code == 2
    assert "unknown scenario 'nope'" in result.output
    assert "Traceback" not in result.output
    file_path = tmp_path / "f"
    file_path.write_text("x")
    result = runner.invoke(app, ["generate", "--out", str(file_path)])
    assert result.exit_code == 2 and "not a directory" in result.output
    result = runner.invoke(app, ["generate", "--out", str(tmp_path), "--seed", "-1"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["score", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "cannot read answer key" in result.output


def test_score_runs_the_rule_engine_for_the_exploit_scenario(tmp_path: Path) -> None:
    out = tmp_path / "scen"
    made = runner.invoke(
        app, ["generate", "--out", str(out), "--seed", "2", "--scenario", "exploit_payload"]
    )
    assert made.exit_code == 0, made.output
    scored = runner.invoke(app, ["score", str(out)], env={"COLUMNS": "200"})
    assert scored.exit_code == 0, scored.output
    row = next(line for line in scored.output.splitlines() if "exploit_payload" in line)
    assert row.count("1.00") == 2 and "skipped" not in row
