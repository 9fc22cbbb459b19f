"""Property tests: EigenTrust and graph compaction against naive dense references."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trust import Edges, FeedbackGraph, eigentrust

edge = st.tuples(
    st.integers(min_value=0, max_value=11),
    st.integers(min_value=0, max_value=11),
    st.sampled_from([-1.0, -0.5, 0.5, 1.0]),
    st.floats(min_value=0, max_value=1000),
)


def _dense(n: int, edges: list[tuple[int, int, float, float]], now: float, hl: float) -> np.ndarray:
    s = np.zeros((n, n))
    for a, b, v, t in edges:
        s[a, b] += v * 2.0 ** (-(now - t) / hl)
    return s


@settings(max_examples=80, deadline=None)
@given(st.lists(edge, max_size=60), st.sets(st.integers(min_value=0, max_value=11), max_size=3))
def test_eigentrust_matches_dense_power_iteration(
    edges: list[tuple[int, int, float, float]], pre: set[int]
) -> None:
    n = 12
    g = FeedbackGraph()
    for a, b, v, t in edges:
        g.add(a, b, v, t)
    compact = g.compact(n, now=1000.0, half_life_s=500.0)
    s = _dense(n, edges, 1000.0, 500.0)
    # compaction keeps exactly the non-zero pair sums
    got = np.zeros((n, n))
    got[compact.src, compact.dst] = compact.value
    assert np.allclose(got, s, atol=1e-9)
    pre_idx = np.array(sorted(pre), dtype=np.int64)
    p = np.zeros(n)
    if len(pre_idx):
        p[pre_idx] = 1.0 / len(pre_idx)
    else:
        p[:] = 1.0 / n
    c = np.maximum(s, 0.0)
    for i in range(n):
        row = c[i].sum()
        c[i] = c[i] / row if row > 1e-300 else p
    t = p.copy()
    for _ in range(600):
        t = 0.85 * c.T @ t + 0.15 * p
    res = eigentrust(
        n,
        Edges(compact.src, compact.dst, compact.value),
        pre_idx,
        alpha=0.15,
        tol=1e-14,
        max_iter=600,
    )
    assert np.allclose(res.trust, t, atol=1e-8)
    assert abs(res.trust.sum() - 1.0) < 1e-9
