"""Property tests: opinions, and the engine's lazy decay against a naive reference."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from trust import EngineConfig, Evidence, EvidenceKind, Opinion, TrustEngine

counts = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)


@given(
    counts, counts, st.floats(min_value=0.01, max_value=100), st.floats(min_value=0, max_value=1)
)
def test_opinion_is_a_distribution(r: float, s: float, w: float, a: float) -> None:
    o = Opinion.from_counts(r, s, prior_weight=w, base_rate=a)
    assert math.isclose(o.belief + o.disbelief + o.uncertainty, 1.0, rel_tol=1e-9)
    assert -1e-12 <= o.expected <= 1 + 1e-12


@given(counts, counts, st.floats(min_value=0.001, max_value=1e6))
def test_more_positive_evidence_never_lowers_the_score(r: float, s: float, extra: float) -> None:
    before = Opinion.from_counts(r, s).expected
    after = Opinion.from_counts(r + extra, s).expected
    assert after >= before - 1e-12


KINDS = [
    EvidenceKind.TASK_VERIFIED,
    EvidenceKind.TASK_SUCCEEDED,
    EvidenceKind.TASK_FAILED,
    EvidenceKind.TASK_TIMEOUT,
    EvidenceKind.TASK_SLA_MISS,
    EvidenceKind.CAPACITY_CONFIRMED,
]

items = st.lists(
    st.tuples(st.sampled_from(KINDS), st.floats(min_value=0, max_value=20_000)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(items, st.floats(min_value=0, max_value=50_000), st.floats(min_value=1, max_value=10_000))
def test_lazy_decay_matches_naive_sum(
    seq: list[tuple[EvidenceKind, float]], extra_s: float, half_life: float
) -> None:
    t0 = 1_800_000_000.0
    last = max(t for _, t in seq)
    now = t0 + last + extra_s
    cfg = EngineConfig(half_life_s=half_life, replay_window_s=1e9, max_clock_skew_s=1e9)
    eng = TrustEngine(cfg, clock=lambda: t0)
    eng.register_node("x", operator="o")
    r = s = 0.0
    for k, (kind, dt) in enumerate(seq):  # arbitrary order of observation times
        res = eng.ingest(Evidence(f"e{k}", kind, "x", t0 + dt, "s"), authenticated=True, now=now)
        assert res.accepted
        mass = cfg.weights[kind] * 2.0 ** (-(last + extra_s - dt) / half_life)
        if mass >= 0:
            r += mass
        else:
            s -= mass
    want = Opinion.from_counts(r, s, prior_weight=cfg.prior_weight, base_rate=cfg.base_rate)
    got = eng.opinion("x", now)
    assert math.isclose(got.belief, want.belief, rel_tol=1e-6, abs_tol=1e-12)
    assert math.isclose(got.disbelief, want.disbelief, rel_tol=1e-6, abs_tol=1e-12)
