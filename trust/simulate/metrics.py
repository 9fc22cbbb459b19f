"""Metrics of one simulated run, and the issue's targets.

- ``malicious_task_share``: share of tasks placed on identities controlled by an attacker at
  that round, over the steady state (rounds from ``steady_state_from``, by default the last
  half).
- ``bad_delivered_share``: share of tasks whose wrong result reached the tenant (not caught
  by verification), steady state.
- ``detect_median_rounds`` / ``detect_p90_rounds``: rounds from an identity's first verified
  bad outcome to its exclusion (quarantined or out of every placement pool); identities never
  excluded count as censored at the end of the run.
- ``honest_fp_rate``: share of honest identities quarantined at any time or out of every pool
  at any steady-state round.
- ``honest_load_gini``: Gini coefficient of primary tasks per honest identity, steady state.
- ``update_p50_us`` / ``update_p99_us``: wall time of one evidence update (engine only).
- ``recompute_mean_ms`` / ``recompute_max_ms``: full recomputation time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

TARGETS = {
    "malicious_task_share": 0.02,
    "detect_median_rounds": 2.0,
    "honest_fp_rate": 0.005,
    "honest_load_gini": 0.1,
}
UPDATE_P99_TARGET_US = 20.0


def gini(values: npt.NDArray[np.float64]) -> float:
    """Gini coefficient of non-negative values (0 = perfectly even); 0 for empty or all-zero."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    n = len(v)
    total = float(v.sum())
    if n == 0 or total <= 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float((2.0 * (ranks * v).sum()) / (n * total) - (n + 1.0) / n)


@dataclass(frozen=True, slots=True)
class StrategyMetrics:
    """Metrics of one strategy in one run (see the module docstring)."""

    strategy: str
    tasks_steady: int
    malicious_task_share: float
    bad_delivered_share: float
    detect_median_rounds: float | None
    detect_p90_rounds: float | None
    detected: int
    undetected: int
    honest_fp_rate: float
    honest_load_gini: float
    verified_share: float
    update_p50_us: float | None
    update_p99_us: float | None
    recompute_mean_ms: float | None
    recompute_max_ms: float | None
    elapsed_s: float
    malicious_share_by_behaviour: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {f: getattr(self, f) for f in self.__dataclass_fields__}
        out["malicious_share_by_behaviour"] = dict(self.malicious_share_by_behaviour)
        return out

    def target_failures(self, *, check_update_cost: bool = False) -> list[str]:
        """Which of the issue's targets this run misses (empty when all are met)."""
        out: list[str] = []
        if self.malicious_task_share > TARGETS["malicious_task_share"]:
            out.append(f"malicious_task_share {self.malicious_task_share:.4f} > 0.02")
        med = self.detect_median_rounds
        if med is not None and med > TARGETS["detect_median_rounds"]:
            out.append(f"detect_median_rounds {med} > 2")
        if self.honest_fp_rate > TARGETS["honest_fp_rate"]:
            out.append(f"honest_fp_rate {self.honest_fp_rate:.4f} > 0.005")
        if self.honest_load_gini > TARGETS["honest_load_gini"]:
            out.append(f"honest_load_gini {self.honest_load_gini:.4f} > 0.1")
        p99 = self.update_p99_us
        if check_update_cost and p99 is not None and p99 > UPDATE_P99_TARGET_US:
            out.append(f"update_p99_us {p99:.1f} > 20")
        return out


@dataclass(frozen=True, slots=True)
class SimulationReport:
    """One scenario run: the engine and the baselines, same seed, same network."""

    scenario: str
    nodes: int
    rounds: int
    seed: int
    results: tuple[StrategyMetrics, ...]

    def get(self, strategy: str) -> StrategyMetrics:
        for r in self.results:
            if r.strategy == strategy:
                return r
        raise KeyError(strategy)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "nodes": self.nodes,
            "rounds": self.rounds,
            "seed": self.seed,
            "results": [r.to_dict() for r in self.results],
        }
