"""Property tests: placement respects placeability, capacity and the task count."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trust import PlacementPolicy, PlacementView, plan_placement, pools

node = st.tuples(
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0, max_value=1),
    st.booleans(),
    st.floats(min_value=0, max_value=1),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(node, min_size=1, max_size=40),
    st.integers(min_value=0, max_value=200),
    st.floats(min_value=0, max_value=1),
    st.one_of(st.none(), st.integers(min_value=1, max_value=10)),
    st.integers(min_value=0, max_value=2**32),
)
def test_placement_invariants(
    nodes: list[tuple[float, float, bool, float]],
    n_tasks: int,
    share: float,
    cap: int | None,
    seed: int,
) -> None:
    e, u, p, w = (np.array(col) for col in zip(*nodes, strict=True))
    view = PlacementView(e.astype(float), u.astype(float), p.astype(bool), w.astype(float))
    policy = PlacementPolicy(exploration_share=share, max_tasks_per_node=cap)
    picks = plan_placement(view, n_tasks, policy, np.random.default_rng(seed))
    assert len(picks) <= n_tasks
    trusted, exploring = pools(view, policy)
    eligible = trusted | exploring
    assert eligible[picks].all() if len(picks) else True
    counts = np.bincount(picks, minlength=len(nodes))
    if cap is not None:
        assert counts.max(initial=0) <= cap
    # everything is placed when capacity allows and some eligible node has weight
    if cap is None and trusted.any():
        assert len(picks) == n_tasks
