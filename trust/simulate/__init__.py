"""Attack simulator: runs the real :class:`trust.TrustEngine` (and three baselines, same seed)
in a simulated compute network and measures them against the issue's targets.

Scenario files for each behaviour ship in ``trust/scenarios/`` (:func:`bundled_scenarios`).
"""

from __future__ import annotations

from pathlib import Path

from trust.simulate.metrics import TARGETS, SimulationReport, StrategyMetrics, gini
from trust.simulate.runner import ALL_STRATEGIES, run_strategy, simulate
from trust.simulate.scenario import BEHAVIOURS, Scenario, load_scenario, parse_scenario


def bundled_scenarios() -> dict[str, Path]:
    """Name -> path of the scenario files shipped with the package."""
    folder = Path(__file__).resolve().parent.parent / "scenarios"
    return {p.stem: p for p in sorted(folder.glob("*.json"))}


__all__ = [
    "ALL_STRATEGIES",
    "BEHAVIOURS",
    "TARGETS",
    "Scenario",
    "SimulationReport",
    "StrategyMetrics",
    "bundled_scenarios",
    "gini",
    "load_scenario",
    "parse_scenario",
    "run_strategy",
    "simulate",
]
