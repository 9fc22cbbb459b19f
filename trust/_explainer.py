"""Builds :class:`~trust.explain.TrustScore` objects and score arrays from engine state.

Kept apart from :mod:`trust.engine` so the intake path stays small; it reads the engine's
state and never writes it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from trust.evidence import EvidenceKind
from trust.explain import EvidenceContribution, TrustScore, verified_tasks_needed
from trust.opinion import Opinion
from trust.verification import verification_share

if TYPE_CHECKING:
    from trust.engine import ScoreArrays, TrustEngine

_LN2 = math.log(2.0)


def _expected(pos: float, neg: float, w: float, a: float) -> float:
    return (max(pos, 0.0) + w * a) / (max(pos, 0.0) + max(neg, 0.0) + w)


def contributions(engine: TrustEngine, i: int, now: float) -> list[EvidenceContribution]:
    """Leave-one-out effect of each recent evidence item (and of all feedback) on the score."""
    cfg = engine.config
    t = engine._t
    r, s, fr, fs = engine._counts_at(i, now)
    w, a = cfg.prior_weight, engine._base_rate(i)
    pos, neg = r + fr, s + fs
    full = _expected(pos, neg, w, a)
    out: list[EvidenceContribution] = []
    for evidence_id, kind, observed_at, mass in t.recent[i]:
        m = mass * math.exp(-_LN2 * max(0.0, now - observed_at) / cfg.half_life_s)
        without = _expected(pos - m, neg, w, a) if m >= 0 else _expected(pos, neg + m, w, a)
        out.append(EvidenceContribution(evidence_id, str(kind), observed_at, m, full - without))
    if fr + fs > 0:
        without = _expected(r, s, w, a)
        out.append(
            EvidenceContribution(
                "feedback:aggregate", "trust.evidence.feedback", now, fr - fs, full - without
            )
        )
    out.sort(key=lambda c: abs(c.contribution), reverse=True)
    return out[: cfg.explain_top]


def build_score(engine: TrustEngine, i: int, now: float) -> TrustScore:
    cfg = engine.config
    t = engine._t
    r, s, fr, fs = engine._counts_at(i, now)
    a = engine._base_rate(i)
    opinion = Opinion.from_counts(r + fr, s + fs, prior_weight=cfg.prior_weight, base_rate=a)
    gates = tuple(engine._gates(i, now))
    signals = tuple(engine._sybil_signals(i))
    trusted = (
        opinion.expected >= cfg.trust_threshold
        and opinion.uncertainty <= cfg.max_trusted_uncertainty
    )
    steps: list[str] = []
    for gate in gates:
        if gate.code == "trust.gate.attestation_contraindicated":
            steps.append("re-attest with the current reference values (last appraisal failed)")
        elif gate.code == "trust.gate.attestation_missing":
            steps.append(
                f"attest the node: results expire after {cfg.attestation_ttl_s / 3600:g} h"
            )
        elif gate.code == "trust.gate.identity_revoked":
            steps.append("revocation is final: enroll the device again under a new identity")
        elif gate.code == "trust.gate.quarantined":
            steps.append("resolve the incident behind the quarantine, then request release")
    if not trusted:
        n = verified_tasks_needed(
            r + fr,
            s + fs,
            prior_weight=cfg.prior_weight,
            base_rate=a,
            threshold=cfg.trust_threshold,
            max_uncertainty=cfg.max_trusted_uncertainty,
            mass_per_task=cfg.weights[EvidenceKind.TASK_VERIFIED],
        )
        steps.append(
            f"{n} verified successful tasks needed to reach {cfg.trust_threshold:g} "
            "(at no further negative evidence)"
        )
        if s > 0:
            steps.append(
                f"or wait: all evidence halves every {cfg.half_life_s / 3600:g} h, "
                "so old failures weigh less over time"
            )
    if t.burst_keys[i]:
        steps.append("joined in a burst: exploration is shared across the burst's nodes")
    return TrustScore(
        node_id=t.ids[i],
        at=now,
        score=opinion.expected,
        opinion=opinion,
        trusted=trusted and not gates,
        placeable=not gates,
        verification_share=verification_share(
            opinion, min_share=cfg.min_verification_share, max_share=cfg.max_verification_share
        ),
        gates=gates,
        signals=signals,
        top_evidence=tuple(contributions(engine, i, now)),
        path_back=tuple(steps),
    )


def score_arrays(engine: TrustEngine, now: float) -> ScoreArrays:
    from trust.engine import ATT_AFFIRMING, ATT_WARNING, ScoreArrays

    cfg = engine.config
    t = engine._t
    k = engine._decay(now)
    r = np.asarray(t.r) * k + np.asarray(t.prior_r)
    s = np.asarray(t.s) * k
    fr = (np.asarray(t.pr) + np.asarray(t.tr)) * k
    fs = (np.asarray(t.ps) + np.asarray(t.ts)) * k
    w = cfg.prior_weight
    cap = cfg.feedback_cap_ratio * (r + s + w)
    fmass = fr + fs
    scale = np.where(fmass > cap, cap / np.maximum(fmass, 1e-300), 1.0)
    pos = r + fr * scale
    neg = s + fs * scale
    n_op = np.asarray(t.op_nodes, dtype=np.float64)
    op_factor = np.maximum(0.1, 1.0 - np.asarray(t.op_quarantined) / np.maximum(n_op, 1.0))
    node_op_factor = op_factor[np.asarray(t.op_of, dtype=np.int64)]
    burst = np.array(
        [max((engine._bursts.burst_size(key) for key in keys), default=0) for keys in t.burst_keys],
        dtype=np.float64,
    )
    flagged = burst > 0
    a = cfg.base_rate * node_op_factor * np.where(flagged, cfg.sybil_base_rate_factor, 1.0)
    total = pos + neg + w
    status = np.asarray(t.att_status)
    att_ok = ((status == ATT_AFFIRMING) | (status == ATT_WARNING)) & (
        now - np.asarray(t.att_at) <= cfg.attestation_ttl_s
    )
    placeable = att_ok & ~np.asarray(t.revoked, dtype=bool) & ~np.asarray(t.quarantined, dtype=bool)
    probe_weight = node_op_factor / np.maximum(burst, 1.0)
    return ScoreArrays(
        node_ids=list(t.ids),
        expected=(pos + w * a) / total,
        uncertainty=w / total,
        disbelief=neg / total,
        direct_expected=(r + w * a) / (r + s + w),
        placeable=placeable,
        probe_weight=probe_weight,
    )
