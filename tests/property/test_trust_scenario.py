"""Fuzzing the scenario parser: any input gives a Scenario or a ScenarioError naming a field."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trust import ScenarioError
from trust.simulate import load_scenario, parse_scenario

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)

FIELDS = [
    "nodes",
    "operators",
    "malicious_fraction",
    "behaviours",
    "rounds",
    "tasks_per_round",
    "exploration_share",
    "verified_share",
    "seed",
    "name",
    "pretrusted",
    "on_off_good_rounds",
]


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=12))
def test_parse_never_crashes(data: dict[str, object]) -> None:
    try:
        sc = parse_scenario(data)
    except ScenarioError as exc:
        assert exc.field
    else:
        assert sc.nodes >= 10


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_load_never_crashes_on_bytes(tmp_path: Path, raw: bytes) -> None:
    p = tmp_path / "fuzz.json"
    p.write_bytes(raw)
    try:
        load_scenario(p)
    except ScenarioError as exc:
        assert exc.field


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(json_values)
def test_load_never_crashes_on_json(tmp_path: Path, value: object) -> None:
    p = tmp_path / "fuzz.json"
    p.write_text(json.dumps(value))
    try:
        load_scenario(p)
    except ScenarioError as exc:
        assert exc.field
