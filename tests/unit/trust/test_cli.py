"""`cntrust trust simulate` and `scenarios` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from scheduler.cli.trust_cmd import app

runner = CliRunner()

SMALL = {
    "name": "small",
    "nodes": 120,
    "operators": 8,
    "malicious_fraction": 0.3,
    "behaviours": ["mixed"],
    "rounds": 6,
    "tasks_per_round": 240,
    "exploration_share": 0.1,
    "verified_share": 0.2,
    "seed": 3,
}


def _write(tmp_path: Path, data: object, name: str = "s.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return p


def test_simulate_table_shows_engine_and_baselines(tmp_path: Path) -> None:
    res = runner.invoke(app, ["simulate", "--scenario", str(_write(tmp_path, SMALL))])
    assert res.exit_code == 0, res.output
    for word in ("engine", "no_trust", "beta_verified", "eigentrust", "tasks on malicious"):
        assert word in res.output
    assert "engine targets:" in res.output


def test_simulate_json(tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "simulate",
            "--scenario",
            str(_write(tmp_path, SMALL)),
            "--json",
            "--strategies",
            "engine,no_trust",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["scenario"] == "small"
    assert [r["strategy"] for r in data["results"]] == ["engine", "no_trust"]
    assert 0.0 <= data["results"][0]["malicious_task_share"] <= 1.0


def test_bad_scenario_names_field_and_exits_2(tmp_path: Path) -> None:
    bad = {**SMALL, "malicious_fraction": "lots"}
    res = runner.invoke(app, ["simulate", "--scenario", str(_write(tmp_path, bad))])
    assert res.exit_code == 2
    assert "malicious_fraction" in res.stderr
    assert "Traceback" not in res.output


def test_missing_file_and_unknown_strategy_exit_2(tmp_path: Path) -> None:
    res = runner.invoke(app, ["simulate", "--scenario", str(tmp_path / "nope.json")])
    assert res.exit_code == 2 and "cannot read" in res.stderr
    res = runner.invoke(
        app,
        ["simulate", "--scenario", str(_write(tmp_path, SMALL)), "--strategies", "engine,oracle"],
    )
    assert res.exit_code == 2 and "oracle" in res.stderr


def test_scenarios_lists_bundled_files() -> None:
    res = runner.invoke(app, ["scenarios"])
    assert res.exit_code == 0
    names = [line.split("\t")[0] for line in res.stdout.splitlines()]
    assert "mixed" in names and "on_off" in names
