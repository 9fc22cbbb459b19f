"""Property tests: intake never double-counts, every submission is counted once."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trust import EngineConfig, Evidence, EvidenceKind, TrustEngine

T0 = 1_800_000_000.0

submission = st.tuples(
    st.integers(min_value=0, max_value=15),  # evidence id (collisions = replays)
    st.sampled_from(["a", "b", "ghost"]),  # node (ghost is unknown)
    st.booleans(),  # authenticated
    st.floats(min_value=-100, max_value=100),  # observed offset from now
)


@settings(max_examples=80, deadline=None)
@given(st.lists(submission, max_size=60))
def test_each_valid_id_counts_once(subs: list[tuple[int, str, bool, float]]) -> None:
    cfg = EngineConfig(max_clock_skew_s=30.0)
    eng = TrustEngine(cfg, clock=lambda: T0)
    for node in ("a", "b"):
        eng.register_node(node, operator="o")
    accepted_ids: set[int] = set()
    for eid, node, auth, dt in subs:
        res = eng.ingest(
            Evidence(f"id{eid}", EvidenceKind.TASK_VERIFIED, node, T0 + dt, "s"), authenticated=auth
        )
        valid = auth and node != "ghost" and dt <= 30.0
        assert res.accepted == (valid and eid not in accepted_ids)
        if res.accepted:
            accepted_ids.add(eid)
    counts = eng.intake_counts()
    assert sum(counts.values()) == len(subs)
    assert counts["accepted"] == len(accepted_ids)
    # the positive mass equals the accepted items (up to decay over their time offsets)
    total = sum(eng.opinion(n).belief / eng.opinion(n).uncertainty * 2 for n in ("a", "b"))
    assert abs(total - len(accepted_ids)) < 1e-3  # items up to 100 s old or 30 s ahead
