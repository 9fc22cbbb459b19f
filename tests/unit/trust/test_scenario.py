"""Scenario files: bundled ones are valid; bad ones get an error naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trust import ScenarioError
from trust.simulate import BEHAVIOURS, bundled_scenarios, load_scenario, parse_scenario

GOOD: dict[str, Any] = {
    "nodes": 100,
    "operators": 10,
    "malicious_fraction": 0.3,
    "behaviours": ["mixed"],
    "rounds": 10,
    "tasks_per_round": 200,
    "exploration_share": 0.1,
    "verified_share": 0.2,
    "seed": 1,
}


def test_bundled_scenarios_cover_every_behaviour() -> None:
    found = bundled_scenarios()
    assert set(found) == {*BEHAVIOURS, "mixed"}
    for name, path in found.items():
        sc = load_scenario(path)
        assert sc.name == name
        assert sc.nodes == 1000 and sc.malicious_fraction == 0.3
        assert sc.exploration_share == 0.1 and sc.verified_share == 0.2
        expected = set(BEHAVIOURS) if name == "mixed" else {name}
        assert set(sc.behaviours) == expected


def test_mixed_means_all_in_equal_shares() -> None:
    sc = parse_scenario(GOOD)
    assert dict(sc.behaviours) == dict.fromkeys(BEHAVIOURS, 1.0)
    weighted = parse_scenario({**GOOD, "behaviours": {"on_off": 2, "always_bad": 1}})
    assert dict(weighted.behaviours) == {"on_off": 2.0, "always_bad": 1.0}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"nodes": "many"}, "nodes"),
        ({"nodes": 5}, "nodes"),
        ({"nodes": True}, "nodes"),
        ({"rounds": 2.5}, "rounds"),
        ({"malicious_fraction": 1.5}, "malicious_fraction"),
        ({"malicious_fraction": float("nan")}, "malicious_fraction"),
        ({"exploration_share": -0.1}, "exploration_share"),
        ({"verified_share": "0.2"}, "verified_share"),
        ({"seed": -1}, "seed"),
        ({"behaviours": ["always_bad", "teleporting"]}, "behaviours[1]"),
        ({"behaviours": []}, "behaviours"),
        ({"behaviours": "mixed"}, "behaviours"),
        ({"behaviours": {"on_off": 0}}, "behaviours.on_off"),
        ({"behaviours": {"nope": 1}}, "behaviours.nope"),
        ({"operators": 1000}, "operators"),
        ({"pretrusted": 80}, "pretrusted"),
        ({"name": ""}, "name"),
        ({"tasks_per_rnd": 5}, "tasks_per_rnd"),
    ],
)
def test_bad_field_is_named(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario({**GOOD, **change})
    assert err.value.field == field
    assert str(err.value).startswith(field)


@pytest.mark.parametrize("missing", ["nodes", "behaviours", "seed", "verified_share"])
def test_missing_required_field_is_named(missing: str) -> None:
    data = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data)
    assert err.value.field == missing


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as err:
        load_scenario(tmp_path / "absent.json")
    assert err.value.field == "(file)"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ScenarioError) as err:
        load_scenario(bad)
    assert err.value.field == "(file)"
    big = tmp_path / "big.json"
    big.write_text(" " * (2 << 20))
    with pytest.raises(ScenarioError) as err:
        load_scenario(big)
    assert "limit" in str(err.value)
    arr = tmp_path / "arr.json"
    arr.write_text("[1, 2]")
    with pytest.raises(ScenarioError) as err:
        load_scenario(arr)
    assert err.value.field == "(root)"
    ok = tmp_path / "my-run.json"
    ok.write_text(json.dumps(GOOD))
    assert load_scenario(ok).name == "my-run"
