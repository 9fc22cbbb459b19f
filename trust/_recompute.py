"""Full recomputation for :meth:`trust.TrustEngine.recompute` (kept apart from the intake path).

Steps: compact the feedback graph (decay, one sum per rater/ratee pair); EigenTrust with the
pre-trusted nodes; each rater's agreement with verified evidence; rating rings; credibility
= min(1, global trust x n) x own verified score x agreement, zero for quarantined, revoked or
ring members; then every node's peer-feedback mass rebuilt from the graph with those
credibilities. Vectorized throughout: O(nodes + edges).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from trust.intake import PropagationResult
from trust.propagation import detect_rating_rings, eigentrust, rater_agreement

if TYPE_CHECKING:
    from trust.engine import TrustEngine


def recompute(engine: TrustEngine, now: float) -> PropagationResult:
    started = time.perf_counter()
    t = engine._t
    n = len(t.ids)
    if n == 0:
        return PropagationResult(now, 0, 0, 0, 0.0, (), 0.0)
    cfg = engine.config
    edges = engine._graph.compact(n, now, cfg.half_life_s)
    k = engine._decay(now)
    r = np.asarray(t.r) * k + np.asarray(t.prior_r)
    s = np.asarray(t.s) * k
    w = cfg.prior_weight
    u = w / (r + s + w)
    direct = (r + w * cfg.base_rate) / (r + s + w)
    quarantined = np.asarray(t.quarantined, dtype=bool) | np.asarray(t.revoked, dtype=bool)
    good = (direct >= cfg.trust_threshold) & (u <= 0.5) & ~quarantined
    bad = quarantined | ((direct < cfg.explore_floor) & (u <= 0.5))
    pre = np.flatnonzero(np.asarray(t.pretrusted, dtype=bool)).astype(np.int64)
    et = eigentrust(n, edges, pre, alpha=cfg.eigentrust_alpha)
    agreement = rater_agreement(n, edges, good, bad)
    rings = detect_rating_rings(n, edges, agreement)
    cred = np.minimum(1.0, et.trust * n) * np.clip(direct, 0.0, 1.0) * agreement
    cred[quarantined] = 0.0
    for ring in rings:
        cred[list(ring.members)] = 0.0
    engine._rings = tuple(tuple(t.ids[m] for m in ring.members) for ring in rings)
    g = 1.0 / k
    contrib = edges.value * cred[edges.src] * cfg.peer_feedback_weight * g
    t.pr = np.bincount(edges.dst, weights=np.maximum(contrib, 0.0), minlength=n).tolist()
    t.ps = np.bincount(edges.dst, weights=np.maximum(-contrib, 0.0), minlength=n).tolist()
    t.cred = cred.tolist()
    return PropagationResult(
        now,
        n,
        len(edges.src),
        et.iterations,
        et.residual,
        engine._rings,
        time.perf_counter() - started,
    )
