"""Trust-aware placement: rank by trust, explore uncertain nodes, keep honest load balanced.

Nodes fall in three pools. *Trusted*: placeable, score >= trust threshold and uncertainty <=
its maximum. *Exploring*: placeable, not trusted, and score >= explore floor or uncertainty
>= ``explore_uncertainty`` (newcomers and nodes still being learned). Everything else gets no
task. Up to ``exploration_share`` of the tasks (stochastically rounded, so one-at-a-time
placement keeps the share) go to exploring nodes as single probe tasks, each node with a
probability proportional to its weight and at most ``min(1, weight)`` (a Sybil burst shares
one node's weight, so it cannot flood the exploration budget). The rest go to trusted nodes by
systematic sampling proportional to score: every trusted node gets the floor or ceiling of its
fair share, never "always the top", so honest load stays balanced. Tasks beyond the trusted
nodes' capacity (``max_tasks_per_node``; at bootstrap, when no node is trusted yet, all of
them) spill over to exploring nodes the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trust.errors import TrustError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class PlacementView:
    """Per-node arrays (same length, same node order) that placement needs."""

    expected: FloatArray
    uncertainty: FloatArray
    placeable: BoolArray
    probe_weight: FloatArray


@dataclass(frozen=True, slots=True)
class PlacementPolicy:
    """Thresholds and exploration share used by :func:`plan_placement`."""

    trust_threshold: float = 0.8
    max_trusted_uncertainty: float = 0.2
    explore_floor: float = 0.4
    explore_uncertainty: float = 0.5
    exploration_share: float = 0.1
    max_tasks_per_node: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.exploration_share <= 1.0:
            raise TrustError("exploration_share must be within [0, 1]")
        if self.max_tasks_per_node is not None and self.max_tasks_per_node < 1:
            raise TrustError("max_tasks_per_node must be >= 1")


def pools(view: PlacementView, policy: PlacementPolicy) -> tuple[BoolArray, BoolArray]:
    """(trusted, exploring) masks."""
    trusted = (
        view.placeable
        & (view.expected >= policy.trust_threshold)
        & (view.uncertainty <= policy.max_trusted_uncertainty)
    )
    learning = (view.expected >= policy.explore_floor) | (
        view.uncertainty >= policy.explore_uncertainty
    )
    exploring = view.placeable & ~trusted & learning
    return trusted, exploring


def systematic_sample(weights: FloatArray, n: int, rng: np.random.Generator) -> IntArray:
    """``n`` indices drawn proportionally to ``weights`` with minimal variance: index i appears
    floor or ceil of ``n * w_i / sum(w)`` times."""
    total = float(weights.sum())
    if n <= 0 or total <= 0:
        return np.zeros(0, dtype=np.int64)
    cum = np.cumsum(weights) / total
    positions = (rng.random() + np.arange(n)) / n
    idx = np.searchsorted(cum, positions, side="right")
    out: IntArray = np.minimum(idx, len(weights) - 1).astype(np.int64)
    return out


def _allocate(
    weights: FloatArray, n: int, caps: IntArray | None, rng: np.random.Generator
) -> IntArray:
    """Task counts per entry, proportional to ``weights`` (floor or ceil of the fair share),
    none above its entry in ``caps``; fewer than ``n`` in total when capacity runs out."""
    counts = np.zeros(len(weights), dtype=np.int64)
    w = np.clip(weights, 0.0, None)
    remaining = n
    while remaining > 0:
        open_ = w * (counts < caps) if caps is not None else w
        if float(open_.sum()) <= 0:
            break
        counts += np.bincount(systematic_sample(open_, remaining, rng), minlength=len(w))
        if caps is None:
            break
        over = np.maximum(counts - caps, 0)
        counts -= over
        remaining = int(over.sum())
    return counts


def plan_placement(
    view: PlacementView, n_tasks: int, policy: PlacementPolicy, rng: np.random.Generator
) -> IntArray:
    """Node index for each of up to ``n_tasks`` tasks (fewer when placeable capacity runs
    out). Trusted nodes take the tasks the exploration budget leaves; what exceeds their
    capacity (``max_tasks_per_node``) spills over to exploring nodes.

    Raises:
        TrustError: arrays of different lengths or a negative task count.
    """
    n = len(view.expected)
    if n_tasks < 0:
        raise TrustError("n_tasks must be >= 0")
    if not (len(view.uncertainty) == len(view.placeable) == len(view.probe_weight) == n):
        raise TrustError("placement arrays differ in length")
    cap = policy.max_tasks_per_node
    trusted, exploring = pools(view, policy)
    trusted_idx = np.flatnonzero(trusted)
    explore_idx = np.flatnonzero(exploring)
    explore_w = np.clip(view.probe_weight[explore_idx], 0.0, 1.0)
    probe_counts = np.zeros(len(explore_idx), dtype=np.int64)
    # Stochastic rounding keeps the share right even when placing one task at a time.
    expected_budget = policy.exploration_share * n_tasks if len(trusted_idx) else 0.0
    budget = int(expected_budget) + int(rng.random() < expected_budget - int(expected_budget))
    total_w = float(explore_w.sum())
    if budget > 0 and total_w > 0:
        if budget >= total_w:
            # enough budget for every exploring node's demand: node i probes with prob. w_i
            probe_counts = (rng.random(len(explore_idx)) < explore_w).astype(np.int64)
        else:
            # scarce budget: exactly ``budget`` probes by systematic PPS sampling in random
            # order; inclusion probability budget * w_i / total_w < 1, so nobody twice
            order = rng.permutation(len(explore_idx))
            probe_counts[order[systematic_sample(explore_w[order], budget, rng)]] = 1
    rest = n_tasks - int(probe_counts.sum())
    caps = None if cap is None else np.full(len(trusted_idx), cap, dtype=np.int64)
    trusted_counts = _allocate(view.expected[trusted_idx], rest, caps, rng)
    spill = rest - int(trusted_counts.sum())
    if spill > 0 and len(explore_idx):
        spill_caps = None if cap is None else cap - probe_counts
        w = explore_w * view.expected[explore_idx]
        probe_counts += _allocate(w, spill, spill_caps, rng)
    picks = np.concatenate(
        [np.repeat(trusted_idx, trusted_counts), np.repeat(explore_idx, probe_counts)]
    )
    rng.shuffle(picks)
    return picks
