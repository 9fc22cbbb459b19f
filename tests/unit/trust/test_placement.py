from __future__ import annotations

import numpy as np
import pytest

from trust import PlacementPolicy, PlacementView, TrustError, plan_placement, pools
from trust.placement import systematic_sample
from trust.simulate import gini


def _view(
    expected: list[float],
    uncertainty: list[float],
    placeable: list[bool] | None = None,
    probe: list[float] | None = None,
) -> PlacementView:
    n = len(expected)
    return PlacementView(
        np.array(expected),
        np.array(uncertainty),
        np.array(placeable if placeable is not None else [True] * n),
        np.array(probe if probe is not None else [1.0] * n),
    )


def test_pools() -> None:
    view = _view(
        [0.95, 0.5, 0.2, 0.95, 0.3], [0.05, 1.0, 0.05, 0.05, 0.6], [True, True, True, False, True]
    )
    trusted, exploring = pools(view, PlacementPolicy())
    assert trusted.tolist() == [True, False, False, False, False]
    assert exploring.tolist() == [False, True, False, False, True]


def test_systematic_sample_gives_floor_or_ceil() -> None:
    rng = np.random.default_rng(1)
    w = np.array([1.0, 2.0, 3.0, 4.0])
    counts = np.bincount(systematic_sample(w, 1000, rng), minlength=4)
    fair = 1000 * w / w.sum()
    assert (np.abs(counts - fair) <= 1).all()


def test_honest_load_is_balanced() -> None:
    rng = np.random.default_rng(2)
    n = 500
    expected = rng.uniform(0.85, 0.97, n)
    view = _view(expected.tolist(), [0.05] * n)
    load = np.zeros(n)
    for _ in range(50):
        load += np.bincount(plan_placement(view, 1000, PlacementPolicy(), rng), minlength=n)
    assert gini(load) < 0.05
    assert load.min() > 0


def test_exploration_budget_and_sybil_split() -> None:
    rng = np.random.default_rng(3)
    # 100 trusted, 100 honest newcomers, 100 newcomers of one burst (weight 1/100 each)
    expected = [0.95] * 100 + [0.5] * 200
    unc = [0.05] * 100 + [1.0] * 200
    probe = [1.0] * 200 + [0.01] * 100
    view = _view(expected, unc, probe=probe)
    policy = PlacementPolicy(exploration_share=0.1)
    burst = newcomers = 0
    for _ in range(200):
        picks = plan_placement(view, 1000, policy, rng)
        assert len(picks) == 1000
        newcomers += int(((picks >= 100) & (picks < 200)).sum())
        burst += int((picks >= 200).sum())
    assert newcomers / 200 == pytest.approx(99, rel=0.1)  # ~budget of 100 minus the burst's share
    assert burst / 200 == pytest.approx(1.0, rel=0.3)  # the whole burst gets about one probe


def test_capacity_spills_to_exploring_then_stops() -> None:
    rng = np.random.default_rng(4)
    view = _view([0.95] * 2 + [0.5] * 3 + [0.1], [0.05] * 2 + [1.0] * 3 + [0.05])
    policy = PlacementPolicy(exploration_share=0.0, max_tasks_per_node=4)
    picks = plan_placement(view, 100, policy, rng)
    counts = np.bincount(picks, minlength=6)
    assert counts.tolist() == [4, 4, 4, 4, 4, 0]


def test_bootstrap_without_trusted_nodes() -> None:
    rng = np.random.default_rng(5)
    view = _view([0.5] * 10, [1.0] * 10)
    picks = plan_placement(view, 100, PlacementPolicy(), rng)
    assert np.bincount(picks, minlength=10).tolist() == [10] * 10


def test_bad_arguments() -> None:
    rng = np.random.default_rng(6)
    with pytest.raises(TrustError):
        plan_placement(_view([0.5], [1.0]), -1, PlacementPolicy(), rng)
    with pytest.raises(TrustError):
        PlacementPolicy(exploration_share=1.5)
    with pytest.raises(TrustError):
        PlacementPolicy(max_tasks_per_node=0)
    bad = PlacementView(np.zeros(2), np.zeros(3), np.ones(2, dtype=bool), np.ones(2))
    with pytest.raises(TrustError):
        plan_placement(bad, 1, PlacementPolicy(), rng)


def test_gini() -> None:
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.array([0.0] * 9 + [1.0])) == pytest.approx(0.9)
    assert gini(np.zeros(0)) == 0.0


def test_one_task_at_a_time_keeps_the_exploration_share() -> None:
    rng = np.random.default_rng(9)
    view = _view([0.95] * 10 + [0.5] * 10, [0.05] * 10 + [1.0] * 10)
    policy = PlacementPolicy(exploration_share=0.1)
    explored = 0
    for _ in range(4000):
        picks = plan_placement(view, 1, policy, rng)
        assert len(picks) == 1
        explored += int(picks[0] >= 10)
    assert explored / 4000 == pytest.approx(0.1, abs=0.02)
