"""Sybil bursts and rating rings surface as signals on scores."""

from __future__ import annotations

import pytest

from trust import (
    BurstTracker,
    EngineConfig,
    EvidenceKind,
    TrustEngine,
    TrustError,
    from_peer_feedback,
)

from .conftest import T0, FakeClock, attest, ev, feed


def test_burst_tracker_window() -> None:
    bt = BurstTracker(window_s=10.0, burst_min=3)
    assert bt.register(0, ("k",), 0.0) == []
    assert bt.register(1, ("k",), 20.0) == []  # the first one left the window
    assert bt.register(2, ("k",), 21.0) == []
    flags = bt.register(3, ("k",), 22.0)
    assert sorted(f.index for f in flags) == [1, 2, 3]
    assert [f.index for f in bt.register(4, ("k",), 23.0)] == [4]
    assert bt.burst_size("k") == 4 and bt.burst_size("other") == 0
    with pytest.raises(TrustError):
        BurstTracker(window_s=0.0, burst_min=3)


def test_rating_ring_is_flagged_and_loses_credibility(clock: FakeClock) -> None:
    eng = TrustEngine(EngineConfig(), clock=clock)
    good = [f"g{k}" for k in range(5)]
    ring = [f"r{k}" for k in range(3)]
    for k, node in enumerate(good + ring):
        eng.register_node(
            node, operator=f"op{k}", registered_at=T0 - 86400 * (k + 1), pretrusted=node == "g0"
        )
        eng.ingest(attest(node), authenticated=True)
    for node in good:
        feed(eng, node, EvidenceKind.TASK_VERIFIED, 20)
    for node in ring:
        eng.ingest(ev(node, EvidenceKind.TASK_WRONG_RESULT), authenticated=True)
    n = 0
    for rater in ring:
        for target in ring + good:
            if target != rater:
                rating = 1.0 if target in ring else -1.0
                n += 1
                fb = from_peer_feedback(
                    evidence_id=f"fb{n}",
                    node_id=target,
                    rater_node_id=rater,
                    rating=rating,
                    observed_at=T0,
                )
                assert eng.ingest(fb, authenticated=True).accepted
    for rater in good:
        for target in good:
            if target != rater:
                n += 1
                fb = from_peer_feedback(
                    evidence_id=f"fb{n}",
                    node_id=target,
                    rater_node_id=rater,
                    rating=1.0,
                    observed_at=T0,
                )
                eng.ingest(fb, authenticated=True)
    result = eng.recompute()
    assert [sorted(r) for r in result.rings] == [sorted(ring)]
    signals = [s.code for s in eng.score("r0").signals]
    assert "trust.signal.rating_ring" in signals
    assert eng.score("g1").signals == ()
    # the ring's down-ratings carry no weight: the good nodes stay trusted
    for node in good:
        assert eng.score(node).trusted
