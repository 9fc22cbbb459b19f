"""Simulator scenarios: a JSON document, validated with every error naming its field.

Required fields: ``nodes``, ``operators``, ``malicious_fraction``, ``behaviours``,
``rounds``, ``tasks_per_round``, ``exploration_share``, ``verified_share``, ``seed``.
``behaviours`` is a list of behaviour names (``"mixed"`` means all of them, in equal shares)
or an object mapping names to relative weights. Optional fields have defaults (see
:class:`Scenario`). Unknown fields are refused, so a typo never silently falls back to a
default.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from trust.errors import ScenarioError

MAX_SCENARIO_BYTES = 1 << 20

BEHAVIOURS = (
    "always_bad",
    "on_off",
    "bad_mouthing",
    "ballot_stuffing",
    "sybil_burst",
    "whitewashing",
    "honest_turned_bad",
)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario. Rounds are abstract time steps of ``round_s`` seconds."""

    nodes: int
    operators: int
    malicious_fraction: float
    behaviours: Mapping[str, float]
    rounds: int
    tasks_per_round: int
    exploration_share: float
    verified_share: float
    seed: int
    name: str = "scenario"
    pretrusted: int = 0
    on_off_good_rounds: int = 40
    on_off_bad_rounds: int = 10
    collusion_bad_probability: float = 0.5
    sybil_round_fraction: float = 0.6
    whitewash_delay_rounds: int = 2
    honest_failure_rate: float = 0.02
    ratings_per_node: int = 1
    half_life_rounds: float = 50.0
    round_s: float = 60.0
    recompute_every: int = 1
    steady_state_from: float = 0.5
    node_capacity_factor: float = 2.0

    @property
    def node_capacity(self) -> int:
        """Tasks one node can take per round: the fair share times the capacity factor."""
        return max(1, math.ceil(self.node_capacity_factor * self.tasks_per_round / self.nodes))

    @property
    def pretrusted_count(self) -> int:
        return self.pretrusted or max(3, self.nodes // 100)


_INT_RANGES: dict[str, tuple[int, int]] = {
    "nodes": (10, 1_000_000),
    "operators": (1, 1_000_000),
    "rounds": (4, 100_000),
    "tasks_per_round": (1, 10_000_000),
    "seed": (0, 2**63 - 1),
    "pretrusted": (0, 1_000_000),
    "on_off_good_rounds": (1, 100_000),
    "on_off_bad_rounds": (1, 100_000),
    "whitewash_delay_rounds": (0, 100_000),
    "ratings_per_node": (0, 100),
    "recompute_every": (1, 100_000),
}
_FLOAT_RANGES: dict[str, tuple[float, float]] = {
    "malicious_fraction": (0.0, 0.9),
    "exploration_share": (0.0, 1.0),
    "verified_share": (0.0, 1.0),
    "collusion_bad_probability": (0.0, 1.0),
    "sybil_round_fraction": (0.0, 1.0),
    "honest_failure_rate": (0.0, 0.5),
    "half_life_rounds": (0.5, 1e9),
    "round_s": (1e-3, 1e9),
    "steady_state_from": (0.0, 0.95),
    "node_capacity_factor": (1.0, 1000.0),
}
_REQUIRED = (
    "nodes",
    "operators",
    "malicious_fraction",
    "behaviours",
    "rounds",
    "tasks_per_round",
    "exploration_share",
    "verified_share",
    "seed",
)
_KNOWN = frozenset(f.name for f in fields(Scenario))


def _behaviours(value: Any) -> Mapping[str, float]:
    if isinstance(value, list):
        if not value:
            raise ScenarioError("must name at least one behaviour", field="behaviours")
        names: list[str] = []
        for k, item in enumerate(value):
            if item == "mixed":
                names.extend(BEHAVIOURS)
            elif isinstance(item, str) and item in BEHAVIOURS:
                names.append(item)
            else:
                raise ScenarioError(
                    f"unknown behaviour {item!r} (known: mixed, {', '.join(BEHAVIOURS)})",
                    field=f"behaviours[{k}]",
                )
        return MappingProxyType(dict.fromkeys(dict.fromkeys(names), 1.0))
    if isinstance(value, dict):
        if not value:
            raise ScenarioError("must name at least one behaviour", field="behaviours")
        out: dict[str, float] = {}
        for name, weight in value.items():
            if name not in BEHAVIOURS:
                raise ScenarioError(f"unknown behaviour {name!r}", field=f"behaviours.{name}")
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise ScenarioError("weight must be a number", field=f"behaviours.{name}")
            if not (math.isfinite(weight) and weight > 0):
                raise ScenarioError("weight must be > 0", field=f"behaviours.{name}")
            out[name] = float(weight)
        return MappingProxyType(out)
    raise ScenarioError("must be a list of names or an object of weights", field="behaviours")


def parse_scenario(data: Any) -> Scenario:
    """Validate a decoded JSON document.

    Raises:
        ScenarioError: the first invalid field, named in ``field`` (dotted path).
    """
    if not isinstance(data, dict):
        raise ScenarioError("a scenario must be a JSON object", field="(root)")
    for key in data:
        if key not in _KNOWN:
            shown = str(key)[:50] or "(empty name)"
            raise ScenarioError(f"unknown field (known: {', '.join(sorted(_KNOWN))})", field=shown)
    for key in _REQUIRED:
        if key not in data:
            raise ScenarioError("missing required field", field=key)
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key in _INT_RANGES:
            lo, hi = _INT_RANGES[key]
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise ScenarioError("must be an integer", field=key)
            if not lo <= raw <= hi:
                raise ScenarioError(f"must be within [{lo}, {hi}]", field=key)
            values[key] = raw
        elif key in _FLOAT_RANGES:
            flo, fhi = _FLOAT_RANGES[key]
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise ScenarioError("must be a number", field=key)
            if not (math.isfinite(raw) and flo <= raw <= fhi):
                raise ScenarioError(f"must be within [{flo:g}, {fhi:g}]", field=key)
            values[key] = float(raw)
        elif key == "behaviours":
            values[key] = _behaviours(raw)
        elif key == "name":
            if not isinstance(raw, str) or not 0 < len(raw) <= 100:
                raise ScenarioError("must be a string of 1..100 chars", field=key)
            values[key] = raw
    if values["operators"] > values["nodes"]:
        raise ScenarioError("cannot exceed nodes", field="operators")
    if values.get("pretrusted", 0) > values["nodes"] // 2:
        raise ScenarioError("cannot exceed half the nodes", field="pretrusted")
    return Scenario(**values)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file (at most 1 MiB); ``name`` defaults to the file stem.

    Raises:
        ScenarioError: unreadable, too large, not JSON (field ``(file)``), or an invalid field.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_SCENARIO_BYTES:
            raise ScenarioError(f"file is {size} bytes, limit {MAX_SCENARIO_BYTES}", field="(file)")
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read {p}: {exc.strerror}", field="(file)") from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError("file is not UTF-8", field="(file)") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"not JSON: {exc.msg} at line {exc.lineno}", field="(file)") from exc
    if isinstance(data, dict) and "name" not in data:
        data["name"] = p.stem[:100] or "scenario"
    return parse_scenario(data)
