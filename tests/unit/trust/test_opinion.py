from __future__ import annotations

import pytest

from trust import Opinion, TrustError, decay_factor, verified_tasks_needed


def test_newcomer_is_fully_uncertain() -> None:
    o = Opinion.from_counts(0.0, 0.0)
    assert (o.belief, o.disbelief, o.uncertainty) == (0.0, 0.0, 1.0)
    assert o.expected == 0.5


def test_counts_map_to_josang_opinion() -> None:
    o = Opinion.from_counts(8.0, 0.0, prior_weight=2.0, base_rate=0.5)
    assert o.belief == pytest.approx(0.8)
    assert o.uncertainty == pytest.approx(0.2)
    assert o.expected == pytest.approx(0.9)  # (r + W a) / (r + s + W)
    assert o.to_dict()["expected"] == pytest.approx(0.9)


def test_bad_counts_refused() -> None:
    with pytest.raises(TrustError):
        Opinion.from_counts(-1.0, 0.0)
    with pytest.raises(TrustError):
        Opinion.from_counts(float("nan"), 0.0)
    with pytest.raises(TrustError):
        Opinion.from_counts(1.0, 0.0, prior_weight=0.0)


def test_decay_halves_per_half_life() -> None:
    assert decay_factor(3600.0, 3600.0) == pytest.approx(0.5)
    assert decay_factor(7200.0, 3600.0) == pytest.approx(0.25)
    assert decay_factor(-5.0, 3600.0) == 1.0


def test_verified_tasks_needed_reaches_threshold() -> None:
    n = verified_tasks_needed(
        0.0,
        0.0,
        prior_weight=2.0,
        base_rate=0.5,
        threshold=0.8,
        max_uncertainty=0.2,
        mass_per_task=1.0,
    )
    after = Opinion.from_counts(float(n), 0.0)
    assert after.expected >= 0.8 and after.uncertainty <= 0.2
    before = Opinion.from_counts(float(n - 1), 0.0)
    assert before.expected < 0.8 or before.uncertainty > 0.2
