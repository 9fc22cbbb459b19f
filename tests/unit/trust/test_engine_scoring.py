"""Scores: newcomers, decay, gates, quarantine, feedback bounds, explanations."""

from __future__ import annotations

import pytest

from trust import (
    EngineConfig,
    EvidenceKind,
    TrustEngine,
    explain,
    from_peer_feedback,
)

from .conftest import T0, FakeClock, attest, ev, feed


def test_newcomer_uncertain_and_not_trusted(engine: TrustEngine) -> None:
    s = engine.score("n0")
    assert s.opinion.uncertainty == pytest.approx(2 / 3, rel=0.01)  # one attestation only
    assert not s.trusted and s.placeable
    assert s.score < engine.config.trust_threshold
    assert s.verification_share > 0.5  # newcomers are mostly verified


def test_verified_work_earns_trust(engine: TrustEngine) -> None:
    feed(engine, "n0", EvidenceKind.TASK_VERIFIED, 10)
    s = engine.score("n0")
    assert s.trusted and s.score > 0.9
    assert s.verification_share < 0.25


def test_unverified_success_earns_little(engine: TrustEngine) -> None:
    feed(engine, "n0", EvidenceKind.TASK_SUCCEEDED, 20)
    assert not engine.score("n0").trusted


def test_decay_halves_evidence(clock: FakeClock, engine: TrustEngine) -> None:
    feed(engine, "n0", EvidenceKind.TASK_VERIFIED, 9)
    u0 = engine.opinion("n0").uncertainty
    clock.now = T0 + engine.config.half_life_s
    u1 = engine.opinion("n0").uncertainty
    # mass 10 (9 verified + 1 attestation) -> 5 after one half-life: u = 2/12 -> 2/7
    assert u0 == pytest.approx(2 / 12)
    assert u1 == pytest.approx(2 / 7)


def test_out_of_order_evidence_decays_by_its_own_timestamp(engine: TrustEngine) -> None:
    other = TrustEngine(engine.config, clock=lambda: T0)
    for eng in (engine, other):
        eng.register_node("x", operator="o")
    engine.ingest(ev("x", EvidenceKind.TASK_VERIFIED, T0), authenticated=True)
    engine.ingest(ev("x", EvidenceKind.TASK_VERIFIED, T0 - 3600), authenticated=True)
    other.ingest(ev("x", EvidenceKind.TASK_VERIFIED, T0 - 3600), authenticated=True)
    other.ingest(ev("x", EvidenceKind.TASK_VERIFIED, T0), authenticated=True)
    assert engine.opinion("x", T0).belief == pytest.approx(other.opinion("x", T0).belief)
    # 1 + 0.5 mass after decay
    assert engine.opinion("x", T0).belief == pytest.approx(1.5 / 3.5)


def test_epoch_rebase_keeps_scores(clock: FakeClock) -> None:
    eng = TrustEngine(EngineConfig(half_life_s=1.0), clock=clock)
    eng.register_node("x", operator="o")
    for k in range(5):
        clock.now = T0 + 500.0 * k  # far beyond the float range of 2**t without rebasing
        eng.ingest(ev("x", EvidenceKind.TASK_VERIFIED, clock.now), authenticated=True)
    assert eng.opinion("x").belief == pytest.approx(1 / 3)


def test_wrong_result_yields_quarantine_once(engine: TrustEngine) -> None:
    feed(engine, "n0", EvidenceKind.TASK_VERIFIED, 30)
    res = engine.ingest(ev("n0", EvidenceKind.TASK_WRONG_RESULT), authenticated=True)
    assert res.quarantine is not None
    assert res.quarantine.direct_score < engine.config.quarantine_threshold
    assert "task_wrong_result" in res.quarantine.reason
    again = engine.ingest(ev("n0", EvidenceKind.TASK_WRONG_RESULT), authenticated=True)
    assert again.quarantine is None  # edge-triggered: the scheduler already has it
    engine.quarantine("n0")
    s = engine.score("n0")
    assert not s.placeable and any(g.code == "trust.gate.quarantined" for g in s.gates)
    engine.release("n0")
    assert engine.score("n0").placeable


def test_single_honest_failure_does_not_quarantine(engine: TrustEngine) -> None:
    res = engine.ingest(ev("n0", EvidenceKind.TASK_FAILED), authenticated=True)
    assert res.quarantine is None


def test_hard_gates_beat_any_score(clock: FakeClock, engine: TrustEngine) -> None:
    for node in ("n0", "n1", "n2"):
        feed(engine, node, EvidenceKind.TASK_VERIFIED, 50)
        assert engine.score(node).trusted
    engine.ingest(
        ev("n0", EvidenceKind.ATTESTATION_CONTRAINDICATED, source="v"), authenticated=True
    )
    engine.ingest(ev("n1", EvidenceKind.IDENTITY_REVOKED, source="ca"), authenticated=True)
    s0, s1 = engine.score("n0"), engine.score("n1")
    assert s0.score > 0.8 and not s0.placeable and not s0.trusted
    assert [g.code for g in s0.gates] == ["trust.gate.attestation_contraindicated"]
    assert "re-attest" in " ".join(s0.path_back)
    assert [g.code for g in s1.gates] == ["trust.gate.identity_revoked"]
    # a fresh affirming result lifts the attestation gate; an older one does not
    engine.ingest(attest("n0", T0 - 10), authenticated=True)
    assert not engine.score("n0").placeable
    clock.now = T0 + 1
    engine.ingest(attest("n0", T0 + 1), authenticated=True)
    assert engine.score("n0").placeable
    # attestation results expire
    clock.now = T0 + engine.config.attestation_ttl_s + 10
    assert [g.code for g in engine.score("n2").gates] == ["trust.gate.attestation_missing"]


def test_missing_attestation_is_a_gate(engine: TrustEngine) -> None:
    engine.register_node("fresh", operator="acme")
    assert [g.code for g in engine.gates("fresh")] == ["trust.gate.attestation_missing"]


def test_feedback_cannot_outvote_verified_evidence(engine: TrustEngine) -> None:
    feed(engine, "n0", EvidenceKind.TASK_VERIFIED, 20)
    for _ in range(20):  # n1 and n2 are credible raters after propagation
        feed(engine, "n1", EvidenceKind.TASK_VERIFIED, 1)
        feed(engine, "n2", EvidenceKind.TASK_VERIFIED, 1)
    engine.recompute()
    for k in range(500):
        for rater in ("n1", "n2"):
            fb = from_peer_feedback(
                evidence_id=f"bm-{rater}-{k}",
                node_id="n0",
                rater_node_id=rater,
                rating=-1.0,
                observed_at=T0,
            )
            res = engine.ingest(fb, authenticated=True)
            assert res.accepted and res.quarantine is None
    engine.recompute()
    s = engine.score("n0")
    cap = engine.config.feedback_cap_ratio
    # at most cap * (r + s + W) of negative mass: the score stays near its verified value
    assert s.score > (20 + 1 + 1) / (22 + 2 + cap * 24) - 1e-9
    assert s.placeable


def test_explanation_lists_top_evidence_and_path_back(engine: TrustEngine) -> None:
    feed(engine, "n0", EvidenceKind.TASK_VERIFIED, 3)
    engine.ingest(ev("n0", EvidenceKind.TASK_FAILED, evidence_id="the-failure"), authenticated=True)
    s = engine.score("n0")
    ids = [e.evidence_id for e in s.top_evidence]
    assert "the-failure" in ids
    failure = next(e for e in s.top_evidence if e.evidence_id == "the-failure")
    assert failure.contribution < 0 and failure.kind == "trust.evidence.task_failed"
    assert len(s.top_evidence) <= engine.config.explain_top
    assert abs(s.top_evidence[0].contribution) >= abs(s.top_evidence[-1].contribution)
    assert any("verified successful tasks needed to reach 0.8" in p for p in s.path_back)
    text = explain(s)
    assert "node n0" in text and "the-failure" in text and "path back" in text
    d = s.to_dict()
    assert d["node_id"] == "n0" and d["top_evidence"] and d["opinion"]["uncertainty"] > 0
    assert d["score_per_mille"] == round(s.score * 1000)


def test_path_back_count_is_right(engine: TrustEngine) -> None:
    s = engine.score("n1")
    n = int(next(p for p in s.path_back if "needed" in p).split()[0])
    feed(engine, "n1", EvidenceKind.TASK_VERIFIED, n)
    assert engine.score("n1").trusted
    engine.ingest(ev("n2", EvidenceKind.TASK_VERIFIED), authenticated=True)
    feed(engine, "n2", EvidenceKind.TASK_VERIFIED, n - 2)
    assert not engine.score("n2").trusted


def test_ids_alert_severity_scales(engine: TrustEngine) -> None:
    from trust import from_ids_alert

    for node, sev in (("n0", 1), ("n1", 3)):
        engine.ingest(
            from_ids_alert(
                evidence_id=f"a-{node}", node_id=node, severity=sev, observed_at=T0, sensor="ids"
            ),
            authenticated=True,
        )
    assert engine.opinion("n0").disbelief > engine.opinion("n1").disbelief


def test_incident_crosses_quarantine(engine: TrustEngine) -> None:
    from trust import from_ids_alert

    feed(engine, "n0", EvidenceKind.TASK_VERIFIED, 10)
    res = engine.ingest(
        from_ids_alert(
            evidence_id="inc", node_id="n0", severity=1, observed_at=T0, sensor="ids", incident=True
        ),
        authenticated=True,
    )
    assert res.quarantine is not None


def test_whitewashing_gains_nothing(engine: TrustEngine) -> None:
    for k in range(4):
        engine.register_node(f"bad{k}", operator="shady", registered_at=T0 - 86400 * (k + 1))
        engine.ingest(attest(f"bad{k}"), authenticated=True)
        res = engine.ingest(ev(f"bad{k}", EvidenceKind.TASK_WRONG_RESULT), authenticated=True)
        assert res.quarantine is not None
        engine.quarantine(f"bad{k}")
    engine.register_node("bad-reborn", operator="shady")
    engine.ingest(attest("bad-reborn"), authenticated=True)
    reborn = engine.score("bad-reborn")
    honest_newcomer = engine.score("n0")
    assert not reborn.trusted
    assert reborn.score < honest_newcomer.score
    assert reborn.score < engine.config.explore_floor
    assert [s.code for s in reborn.signals] == ["trust.signal.operator_record"]
    assert "4 of 5 nodes in quarantine" in reborn.signals[0].detail
    snap = engine.snapshot()
    i = snap.node_ids.index("bad-reborn")
    assert snap.probe_weight[i] < 0.5  # its operator's record follows it


def test_sybil_burst_signal(clock: FakeClock) -> None:
    eng = TrustEngine(EngineConfig(sybil_burst_min=5, sybil_window_s=60.0), clock=clock)
    for k in range(5):
        reg = eng.register_node(f"s{k}", operator=f"op{k}", hardware_fingerprint="same-tpm")
    assert reg.signals and reg.signals[0].code == "trust.signal.sybil_burst"
    assert "hardware:same-tpm" in reg.signals[0].detail
    codes = [s.code for s in eng.score("s0").signals]
    assert codes == ["trust.signal.sybil_burst"]
    snap = eng.snapshot()
    assert snap.probe_weight.max() == pytest.approx(1 / 5)
    # spread-out registrations do not trigger it
    for k in range(5):
        clock.now = T0 + 1000.0 * (k + 1)
        reg = eng.register_node(f"slow{k}", operator="patient")
    assert reg.signals == ()


def test_snapshot_matches_single_scores(engine: TrustEngine) -> None:
    feed(engine, "n0", EvidenceKind.TASK_VERIFIED, 7)
    feed(engine, "n1", EvidenceKind.TASK_FAILED, 2)
    snap = engine.snapshot()
    for k, node in enumerate(snap.node_ids):
        o = engine.opinion(node)
        assert snap.expected[k] == pytest.approx(o.expected)
        assert snap.uncertainty[k] == pytest.approx(o.uncertainty)
    assert snap.placeable.all()


def test_feedback_cap_binds_for_credible_tenants(engine: TrustEngine) -> None:
    from trust import from_tenant_feedback

    feed(engine, "n0", EvidenceKind.TASK_VERIFIED, 9)  # r = 10 with the attestation
    for k in range(1000):
        fb = from_tenant_feedback(
            evidence_id=f"tf{k}", node_id="n0", tenant_id="angry", rating=-1.0, observed_at=T0
        )
        engine.ingest(fb, authenticated=True)
    s = engine.score("n0")
    cap = engine.config.feedback_cap_ratio * (10 + 2)
    assert s.opinion.disbelief == pytest.approx(cap / (10 + cap + 2))
    assert any(e.evidence_id == "feedback:aggregate" for e in s.top_evidence)
    assert engine.ingest(ev("n0", EvidenceKind.TASK_FAILED), authenticated=True).quarantine is None


def test_restore_feedback_feeds_the_next_recompute(engine: TrustEngine) -> None:
    import numpy as np

    from trust import TrustError, UnknownNodeError

    for node in ("n0", "n1", "n2"):
        feed(engine, node, EvidenceKind.TASK_VERIFIED, 10)
    engine.recompute()
    before = engine.opinion("n2").belief
    n = engine.restore_feedback(
        ["n0", "n1"], ["n2", "n2"], np.array([1.0, 1.0]), np.array([T0, T0])
    )
    assert n == 2
    result = engine.recompute()
    assert result.edges == 2 and result.nodes == 3
    assert engine.opinion("n2").belief > before
    with pytest.raises(UnknownNodeError):
        engine.restore_feedback(["zz"], ["n0"], np.array([1.0]), np.array([T0]))
    with pytest.raises(TrustError):
        engine.restore_feedback(["n0"], ["n1"], np.array([3.0]), np.array([T0]))


def test_restart_by_reingesting_stored_evidence(clock: FakeClock, engine: TrustEngine) -> None:
    """The scheduler's restart path: re-register, re-ingest stored evidence, re-apply
    quarantines. Lazy decay makes the result independent of re-ingestion order and time."""
    stored = [ev("n0", EvidenceKind.TASK_VERIFIED, T0 - 100.0 * k) for k in range(10)]
    stored += [ev("n0", EvidenceKind.TASK_FAILED, T0 - 50.0), attest("n0", T0 - 10.0)]
    for item in stored:
        engine.ingest(item, authenticated=True)
    clock.now = T0 + 1800.0
    fresh = TrustEngine(engine.config, clock=clock)
    fresh.register_node("n0", operator="acme")
    fresh.ingest(attest("n0", T0), authenticated=True)  # the fixture's enrollment attestation
    for item in reversed(stored):
        assert fresh.ingest(item, authenticated=True).accepted
    a, b = engine.opinion("n0"), fresh.opinion("n0")
    assert a.belief == pytest.approx(b.belief, rel=1e-9)
    assert a.disbelief == pytest.approx(b.disbelief, rel=1e-9)
