"""Bad evidence is refused or ignored, counted, and never double-counted."""

from __future__ import annotations

import pytest

from trust import (
    DuplicateNodeError,
    EvidenceKind,
    IntakeReason,
    TrustEngine,
    TrustError,
    UnknownNodeError,
    from_peer_feedback,
    from_tenant_feedback,
)

from .conftest import T0, FakeClock, ev


def _score(engine: TrustEngine, node: str = "n0") -> float:
    return engine.opinion(node).expected


def test_unknown_node_refused_and_counted(engine: TrustEngine) -> None:
    res = engine.ingest(ev("ghost", EvidenceKind.TASK_FAILED), authenticated=True)
    assert not res.accepted and res.reason is IntakeReason.UNKNOWN_NODE
    assert engine.intake_counts()["unknown_node"] == 1
    with pytest.raises(UnknownNodeError):
        engine.score("ghost")


def test_unauthenticated_source_refused_and_counted(engine: TrustEngine) -> None:
    before = _score(engine)
    res = engine.ingest(ev("n0", EvidenceKind.TASK_WRONG_RESULT), authenticated=False)
    assert res.reason is IntakeReason.UNAUTHENTICATED and res.quarantine is None
    assert _score(engine) == before
    assert engine.intake_counts()["unauthenticated"] == 1


def test_future_timestamp_beyond_skew_refused(engine: TrustEngine) -> None:
    skew = engine.config.max_clock_skew_s
    ok = engine.ingest(ev("n0", EvidenceKind.TASK_VERIFIED, T0 + skew - 1), authenticated=True)
    assert ok.accepted
    res = engine.ingest(ev("n0", EvidenceKind.TASK_VERIFIED, T0 + skew + 1), authenticated=True)
    assert res.reason is IntakeReason.FUTURE_TIMESTAMP
    assert engine.intake_counts()["future_timestamp"] == 1


def test_stale_evidence_refused(engine: TrustEngine) -> None:
    old = T0 - engine.config.replay_window_s - 1
    res = engine.ingest(ev("n0", EvidenceKind.TASK_FAILED, old), authenticated=True)
    assert res.reason is IntakeReason.STALE
    assert engine.intake_counts()["stale"] == 1


def test_replayed_evidence_never_double_counted(engine: TrustEngine) -> None:
    first = ev("n0", EvidenceKind.TASK_VERIFIED, evidence_id="dup-1")
    assert engine.ingest(first, authenticated=True).accepted
    after_one = _score(engine)
    for _ in range(5):
        res = engine.ingest(first, authenticated=True)
        assert res.reason is IntakeReason.REPLAYED
    # same id, different content is still a replay
    other = ev("n1", EvidenceKind.TASK_WRONG_RESULT, evidence_id="dup-1")
    assert engine.ingest(other, authenticated=True).reason is IntakeReason.REPLAYED
    assert _score(engine) == after_one
    assert _score(engine, "n1") == pytest.approx(engine.opinion("n2").expected)
    assert engine.intake_counts()["replayed"] == 6


def test_replay_ids_forgotten_only_once_stale(clock: FakeClock, engine: TrustEngine) -> None:
    item = ev("n0", EvidenceKind.TASK_VERIFIED, evidence_id="keep")
    assert engine.ingest(item, authenticated=True).accepted
    clock.now = T0 + engine.config.replay_window_s + 10
    # the id was pruned, but the item itself is now older than the window: still refused
    assert engine.ingest(item, authenticated=True).reason is IntakeReason.STALE


def test_feedback_source_must_be_rater(engine: TrustEngine) -> None:
    fb = from_peer_feedback(
        evidence_id="f1", node_id="n0", rater_node_id="n1", rating=1.0, observed_at=T0
    )
    forged = type(fb)(
        fb.evidence_id, fb.kind, fb.node_id, fb.observed_at, "n2", rating=1.0, rater_id="n1"
    )
    assert engine.ingest(forged, authenticated=True).reason is IntakeReason.SOURCE_MISMATCH
    unknown = from_peer_feedback(
        evidence_id="f2", node_id="n0", rater_node_id="zz", rating=1.0, observed_at=T0
    )
    assert engine.ingest(unknown, authenticated=True).reason is IntakeReason.UNKNOWN_RATER
    assert engine.ingest(fb, authenticated=True).accepted
    counts = engine.intake_counts()
    assert counts["source_mismatch"] == 1 and counts["unknown_rater"] == 1


def test_counts_add_up(engine: TrustEngine) -> None:
    start = sum(engine.intake_counts().values())
    engine.ingest(ev("n0", EvidenceKind.TASK_FAILED), authenticated=True)
    engine.ingest(ev("nope", EvidenceKind.TASK_FAILED), authenticated=True)
    engine.ingest(ev("n0", EvidenceKind.TASK_FAILED), authenticated=False)
    assert sum(engine.intake_counts().values()) == start + 3


def test_registration_errors(engine: TrustEngine) -> None:
    with pytest.raises(DuplicateNodeError):
        engine.register_node("n0", operator="acme")
    with pytest.raises(TrustError):
        engine.register_node("", operator="acme")
    with pytest.raises(TrustError):
        engine.register_node("x" * 201, operator="acme")


def test_tenant_credibility(engine: TrustEngine) -> None:
    with pytest.raises(TrustError):
        engine.set_tenant_credibility("t", 1.5)
    engine.set_tenant_credibility("liar", 0.0)
    before = _score(engine)
    fb = from_tenant_feedback(
        evidence_id="tf", node_id="n0", tenant_id="liar", rating=-1.0, observed_at=T0
    )
    assert engine.ingest(fb, authenticated=True).accepted
    assert _score(engine) == before


def test_has_seen_names_only_accepted_ids_within_the_replay_window(
    engine: TrustEngine, clock: FakeClock
) -> None:
    item = ev("n0", EvidenceKind.TASK_FAILED)
    assert not engine.has_seen(item.evidence_id)
    refused = ev("n0", EvidenceKind.TASK_FAILED)
    assert not engine.ingest(refused, authenticated=False).accepted
    assert not engine.has_seen(refused.evidence_id)  # refused: not remembered
    assert engine.ingest(item, authenticated=True).accepted
    assert engine.has_seen(item.evidence_id)
    counts = dict(engine.intake_counts())
    assert engine.has_seen(item.evidence_id)  # asking changes no counter
    assert engine.intake_counts() == counts
    clock.now += engine.config.replay_window_s + 1
    engine.ingest(ev("n1", EvidenceKind.TASK_SUCCEEDED, at=clock.now), authenticated=True)
    assert not engine.has_seen(item.evidence_id)  # forgotten once it would be stale
