"""EigenTrust against a dense naive reference; rating rings; rater agreement; compaction."""

from __future__ import annotations

import numpy as np
import pytest

from trust import (
    Edges,
    FeedbackGraph,
    TrustError,
    detect_rating_rings,
    eigentrust,
    rater_agreement,
)


def naive_eigentrust(n: int, s: np.ndarray, pre: list[int], alpha: float) -> np.ndarray:
    """Kamvar et al. Algorithm 1 with dense matrices."""
    p = np.zeros(n)
    p[pre] = 1.0 / len(pre)
    c = np.maximum(s, 0.0)
    for i in range(n):
        row = c[i].sum()
        c[i] = c[i] / row if row > 0 else p
    t = p.copy()
    for _ in range(1000):
        t = (1 - alpha) * c.T @ t + alpha * p
    return t


def _edges(s: np.ndarray) -> Edges:
    src, dst = np.nonzero(s)
    return Edges(src.astype(np.int64), dst.astype(np.int64), s[src, dst].astype(np.float64))


def test_matches_naive_reference() -> None:
    rng = np.random.default_rng(5)
    n = 30
    s = rng.integers(-3, 4, (n, n)).astype(float)
    np.fill_diagonal(s, 0)
    s[7] = np.minimum(s[7], 0)  # a dangling rater (no positive rating)
    pre = [0, 3]
    got = eigentrust(
        n, _edges(s), np.array(pre, dtype=np.int64), alpha=0.2, tol=1e-13, max_iter=1000
    )
    want = naive_eigentrust(n, s, pre, 0.2)
    assert got.trust == pytest.approx(want, abs=1e-9)
    assert got.trust.sum() == pytest.approx(1.0)


def test_colluding_ring_gets_little_global_trust() -> None:
    n = 20
    s = np.zeros((n, n))
    honest, ring = range(0, 15), range(15, 20)
    for i in honest:
        for j in honest:
            if i != j:
                s[i, j] = 1
        for j in ring:
            s[i, j] = -1
    for i in ring:
        for j in ring:
            if i != j:
                s[i, j] = 10
    t = eigentrust(n, _edges(s), np.array([0, 1], dtype=np.int64)).trust
    assert t[list(ring)].sum() < 0.01


def test_bad_arguments() -> None:
    e = _edges(np.zeros((2, 2)))
    with pytest.raises(TrustError):
        eigentrust(0, e, np.zeros(0, dtype=np.int64))
    with pytest.raises(TrustError):
        eigentrust(2, e, np.array([5], dtype=np.int64))
    with pytest.raises(TrustError):
        eigentrust(2, e, np.zeros(0, dtype=np.int64), alpha=0.0)


def test_no_edges_is_pretrusted_distribution() -> None:
    t = eigentrust(4, _edges(np.zeros((4, 4))), np.array([1], dtype=np.int64)).trust
    assert t == pytest.approx([0, 1, 0, 0])


def test_rater_agreement_and_rings() -> None:
    n = 9
    good = np.zeros(n, dtype=bool)
    bad = np.zeros(n, dtype=bool)
    good[:6] = True  # 0..5 verified good
    bad[6:] = True  # 6..8 verified bad
    src, dst, val = [], [], []
    # honest raters agree with verified evidence
    for i in range(6):
        for j in range(n):
            if i != j:
                src.append(i)
                dst.append(j)
                val.append(1.0 if good[j] else -1.0)
    # ring 6..8 up-rates itself and down-rates the good nodes
    for i in range(6, 9):
        for j in range(n):
            if i != j:
                src.append(i)
                dst.append(j)
                val.append(1.0 if bad[j] else -1.0)
    e = Edges(np.array(src), np.array(dst), np.array(val))
    agree = rater_agreement(n, e, good, bad)
    assert agree[:6] == pytest.approx(1.0)
    assert (agree[6:] < 0.2).all()
    rings = detect_rating_rings(n, e, agree)
    assert [r.members for r in rings] == [(6, 7, 8)]
    assert rings[0].contradiction_share > 0.8


def test_graph_compaction_sums_and_decays() -> None:
    g = FeedbackGraph()
    g.add(0, 1, 1.0, 0.0)
    g.add(0, 1, 1.0, 100.0)
    g.add(1, 0, -1.0, 100.0)
    g.add(2, 0, 1.0, 100.0)
    g.add(2, 0, -1.0, 100.0)  # cancels out
    e = g.compact(3, now=100.0, half_life_s=100.0)
    got = {(int(a), int(b)): float(v) for a, b, v in zip(e.src, e.dst, e.value, strict=True)}
    assert got == pytest.approx({(0, 1): 1.5, (1, 0): -1.0})
    assert len(g) == 2
    again = g.compact(3, now=200.0, half_life_s=100.0)
    assert sorted(again.value.tolist()) == pytest.approx([-0.5, 0.75])
