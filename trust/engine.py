"""The trust engine: evidence in, subjective-logic opinion with reasons out.

State per node is a handful of plain floats in Python lists (index = registration order), so
one evidence update is O(1) and allocation-free. Decay is lazy and exact: masses are stored
scaled by ``2 ** ((t - epoch) / half_life)``, so adding evidence observed at ``t`` is one
multiply-add whatever its order, and reading at ``now`` multiplies by
``2 ** (-(now - epoch) / half_life)``. The epoch is moved forward before the scale can
overflow.

Invariants:
- Refused evidence (unauthenticated source, unknown node or rater, future timestamp beyond the
  allowed skew, older than the replay window, replayed id) changes nothing but its counter.
- An evidence id is counted at most once while it could still be accepted (ids are kept for
  the replay window; anything older is refused as stale).
- Feedback mass is capped at ``feedback_cap_ratio`` of the verified-evidence mass plus the
  prior, weighted by rater credibility, and never enters the quarantine decision: feedback
  cannot outvote verified evidence.
- Newcomers have no evidence: uncertainty 1, score = base rate < trust threshold.
- Hard gates (attestation contraindicated/missing/expired, revoked identity, quarantine) make
  a node not placeable whatever its score.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import NamedTuple

import numpy as np

from trust._state import NodeTable
from trust.config import EngineConfig
from trust.errors import DuplicateNodeError, TrustError, UnknownNodeError
from trust.evidence import MAX_ID_LEN, Evidence, EvidenceKind
from trust.explain import Gate, Signal, TrustScore
from trust.intake import (
    IntakeReason,
    IntakeResult,
    NodeRegistration,
    PropagationResult,
    QuarantineDecision,
)
from trust.opinion import Opinion
from trust.placement import PlacementPolicy, PlacementView
from trust.propagation import FeedbackGraph
from trust.sybil import BurstTracker
from trust.verification import verification_share

_LN2 = math.log(2.0)
_MAX_EXPONENT = 600.0  # rebase the epoch before 2**exponent nears float overflow (2**1023)
_ACCEPTED = IntakeReason.ACCEPTED

ATT_MISSING, ATT_AFFIRMING, ATT_WARNING, ATT_CONTRAINDICATED = 0, 1, 2, 3
_ATT_CODE = {
    EvidenceKind.ATTESTATION_AFFIRMING: ATT_AFFIRMING,
    EvidenceKind.ATTESTATION_WARNING: ATT_WARNING,
    EvidenceKind.ATTESTATION_CONTRAINDICATED: ATT_CONTRAINDICATED,
    EvidenceKind.ATTESTATION_MISSING: ATT_MISSING,
}


class ScoreArrays(NamedTuple):
    """Vectorized scores of every registered node (index = registration order)."""

    node_ids: list[str]
    expected: np.ndarray
    uncertainty: np.ndarray
    disbelief: np.ndarray
    direct_expected: np.ndarray
    placeable: np.ndarray
    probe_weight: np.ndarray

    def placement_view(self) -> PlacementView:
        return PlacementView(self.expected, self.uncertainty, self.placeable, self.probe_weight)


class TrustEngine:
    """Per-node opinions from typed evidence, with gates, signals and explanations.

    ``clock`` returns the current time in seconds since the Unix epoch; every method taking
    ``now`` uses the clock when it is omitted.
    """

    def __init__(
        self, config: EngineConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config or EngineConfig()
        self._clock = clock
        self._t = NodeTable()
        self._graph = FeedbackGraph()
        self._bursts = BurstTracker(
            window_s=self.config.sybil_window_s, burst_min=self.config.sybil_burst_min
        )
        self._epoch = clock()
        self._seen: dict[str, float] = {}
        self._seen_order: deque[tuple[float, str]] = deque()
        self._counts: dict[str, int] = {r.value: 0 for r in IntakeReason}
        self._tenant_cred: dict[str, float] = {}
        self._rings: tuple[tuple[str, ...], ...] = ()
        # Hot-path constants: one dict lookup per item gives its mass and attestation effect.
        cfg = self.config
        self._skew_s = cfg.max_clock_skew_s
        self._replay_s = cfg.replay_window_s
        self._kinds: dict[EvidenceKind, tuple[float, int]] = {
            k: (w, _ATT_CODE.get(k, -1)) for k, w in cfg.weights.items()
        }

    # -- registration and gates -------------------------------------------------------------

    def register_node(
        self,
        node_id: str,
        *,
        operator: str,
        network: str | None = None,
        hardware_fingerprint: str | None = None,
        registered_at: float | None = None,
        pretrusted: bool = False,
    ) -> NodeRegistration:
        """Register a node so evidence about it is accepted. A re-enrolled device must use a
        new id and starts as a newcomer (whitewashing gains nothing).

        Raises:
            DuplicateNodeError: the id is already registered.
            TrustError: empty or over-long (> 200 chars) node id or operator.
        """
        if not (0 < len(node_id) <= MAX_ID_LEN and 0 < len(operator) <= MAX_ID_LEN):
            raise TrustError("node_id and operator must be non-empty strings <= 200 chars")
        if node_id in self._t.index:
            raise DuplicateNodeError(node_id)
        at = self._clock() if registered_at is None else registered_at
        t = self._t
        i = t.add(node_id, operator, at, pretrusted, self.config.recent_evidence)
        if pretrusted:
            t.prior_r[i] = self.config.pretrusted_prior
            t.cred[i] = 1.0
        keys = [f"operator:{operator}"]
        if network:
            keys.append(f"network:{network}")
        if hardware_fingerprint:
            keys.append(f"hardware:{hardware_fingerprint}")
        for flag in self._bursts.register(i, tuple(keys), at):
            t.burst_keys[flag.index].append(flag.key)
        signals = tuple(self._sybil_signals(i))
        return NodeRegistration(node_id, at, signals)

    def quarantine(self, node_id: str) -> None:
        """Put the node in quarantine (a hard gate). Raises UnknownNodeError."""
        i = self._require(node_id)
        if not self._t.quarantined[i]:
            self._t.quarantined[i] = True
            self._t.op_quarantined[self._t.op_of[i]] += 1

    def release(self, node_id: str) -> None:
        """Lift a quarantine (the evidence stays). Raises UnknownNodeError."""
        i = self._require(node_id)
        if self._t.quarantined[i]:
            self._t.quarantined[i] = False
            self._t.q_recommended[i] = False
            self._t.op_quarantined[self._t.op_of[i]] -= 1

    def set_tenant_credibility(self, tenant_id: str, credibility: float) -> None:
        """Credibility in [0, 1] applied to this tenant's feedback (default 1).

        Raises:
            TrustError: credibility outside [0, 1].
        """
        if not 0.0 <= credibility <= 1.0:
            raise TrustError("credibility must be within [0, 1]")
        self._tenant_cred[tenant_id] = credibility

    # -- intake -----------------------------------------------------------------------------

    def intake_counts(self) -> Mapping[str, int]:
        """Accepted and refused evidence counts by :class:`IntakeReason` code."""
        return dict(self._counts)

    def _refuse(self, ev: Evidence, reason: IntakeReason) -> IntakeResult:
        self._counts[reason.value] += 1
        return IntakeResult(False, reason, ev.evidence_id, ev.node_id)

    def ingest(
        self, ev: Evidence, *, authenticated: bool, now: float | None = None
    ) -> IntakeResult:
        """Take one evidence item. ``authenticated`` says the caller authenticated
        ``ev.source``; anything else is refused. Never raises for refused evidence: the
        result names the reason and the refusal is counted.
        """
        now = self._clock() if now is None else now
        if not authenticated:
            return self._refuse(ev, IntakeReason.UNAUTHENTICATED)
        t = self._t
        i = t.index.get(ev.node_id)
        if i is None:
            return self._refuse(ev, IntakeReason.UNKNOWN_NODE)
        obs = ev.observed_at
        if obs > now + self._skew_s:
            return self._refuse(ev, IntakeReason.FUTURE_TIMESTAMP)
        horizon = now - self._replay_s
        if obs < horizon:
            return self._refuse(ev, IntakeReason.STALE)
        seen = self._seen
        seen_order = self._seen_order
        while seen_order and seen_order[0][0] < horizon:
            seen.pop(seen_order.popleft()[1], None)
        eid = ev.evidence_id
        if eid in seen:
            return self._refuse(ev, IntakeReason.REPLAYED)
        kind = ev.kind
        entry = self._kinds.get(kind)
        if entry is None:
            if kind is EvidenceKind.IDS_ALERT:
                entry = (self.config.ids_severity_weights[ev.severity or 3], -1)
            else:
                refused = self._ingest_feedback(ev, i, obs)
                if refused is not None:
                    return self._refuse(ev, refused)
                self._mark_seen(eid, now)
                return IntakeResult(True, _ACCEPTED, eid, ev.node_id, None)
        mass, att_code = entry
        x = (obs - self._epoch) / self.config.half_life_s
        g = math.exp(_LN2 * x) if x <= _MAX_EXPONENT else self._growth(obs)
        if mass >= 0:
            t.r[i] += mass * g
        else:
            t.s[i] -= mass * g
        if att_code >= 0:
            if obs >= t.att_at[i]:
                t.att_status[i] = att_code
                t.att_at[i] = obs
        elif kind is EvidenceKind.IDENTITY_REVOKED:
            t.revoked[i] = True
        t.recent[i].append((eid, kind, obs, mass))
        seen[eid] = now
        seen_order.append((now, eid))
        self._counts["accepted"] += 1
        decision = None
        if mass < 0 and not t.q_recommended[i] and not t.quarantined[i]:
            decision = self._check_quarantine(i, ev, now)
        return IntakeResult(True, _ACCEPTED, eid, ev.node_id, decision)

    def has_seen(self, evidence_id: str) -> bool:
        """Whether an item with this id was accepted within the replay window (so ingesting
        it again would be refused as a replay). Lets a caller that tails shared storage skip
        what this engine already counted without bumping the refusal counters."""
        return evidence_id in self._seen

    def _mark_seen(self, evidence_id: str, now: float) -> None:
        self._seen[evidence_id] = now
        self._seen_order.append((now, evidence_id))
        self._counts["accepted"] += 1

    def _ingest_feedback(self, ev: Evidence, i: int, obs: float) -> IntakeReason | None:
        t = self._t
        rater = ev.rater_id or ""
        if ev.source != rater:
            return IntakeReason.SOURCE_MISMATCH
        if ev.kind is EvidenceKind.FEEDBACK_PEER:
            j = t.index.get(rater)
            if j is None:
                return IntakeReason.UNKNOWN_RATER
            self._graph.add(j, i, ev.rating, obs)
            cred = 0.0 if t.quarantined[j] or t.revoked[j] else t.cred[j]
            mass = ev.rating * self.config.peer_feedback_weight * cred * self._growth(obs)
            if mass >= 0:
                t.pr[i] += mass
            else:
                t.ps[i] -= mass
            return None
        mass = ev.rating * self.config.tenant_feedback_weight * self._tenant_cred.get(rater, 1.0)
        mass *= self._growth(obs)
        if mass >= 0:
            t.tr[i] += mass
        else:
            t.ts[i] -= mass
        return None

    def _check_quarantine(self, i: int, ev: Evidence, now: float) -> QuarantineDecision | None:
        t = self._t
        k = self._decay(now)
        s = t.s[i] * k
        if s < self.config.quarantine_min_negative:
            return None
        r = t.r[i] * k + t.prior_r[i]
        w = self.config.prior_weight
        direct = (r + w * self._base_rate(i)) / (r + s + w)
        if direct >= self.config.quarantine_threshold:
            return None
        t.q_recommended[i] = True
        return QuarantineDecision(
            t.ids[i],
            now,
            direct,
            self.config.quarantine_threshold,
            ev.evidence_id,
            f"verified-evidence score {direct:.3f} fell below "
            f"{self.config.quarantine_threshold:.2f} after {ev.kind.value}",
        )

    def restore_feedback(
        self,
        raters: list[str],
        ratees: list[str],
        ratings: np.ndarray,
        observed_at: np.ndarray,
    ) -> int:
        """Bulk-load peer ratings already accepted earlier (restoring state from storage).

        This skips per-item intake checks, so only feed it what the engine accepted before.
        The ratings take effect at the next :meth:`recompute`. Returns the count loaded.

        Raises:
            UnknownNodeError: a rater or ratee is not registered.
            TrustError: lengths differ or a rating is outside [-1, 1].
        """
        index = self._t.index
        try:
            src = np.fromiter((index[r] for r in raters), dtype=np.int64, count=len(raters))
            dst = np.fromiter((index[r] for r in ratees), dtype=np.int64, count=len(ratees))
        except KeyError as exc:
            raise UnknownNodeError(str(exc.args[0])) from exc
        values = np.asarray(ratings, dtype=np.float64)
        if len(values) and (np.abs(values) > 1.0).any():
            raise TrustError("ratings must be within [-1, 1]")
        self._graph.extend(src, dst, values, np.asarray(observed_at, dtype=np.float64))
        return len(src)

    # -- decay helpers ----------------------------------------------------------------------

    def _growth(self, at: float) -> float:
        x = (at - self._epoch) / self.config.half_life_s
        if x > _MAX_EXPONENT:
            self._rebase(at)
            x = 0.0
        return math.exp(_LN2 * x)

    def _decay(self, now: float) -> float:
        return math.exp(-_LN2 * (now - self._epoch) / self.config.half_life_s)

    def _rebase(self, new_epoch: float) -> None:
        f = math.exp(-_LN2 * (new_epoch - self._epoch) / self.config.half_life_s)
        self._t.scale_masses(f)
        self._epoch = new_epoch

    # -- scoring ----------------------------------------------------------------------------

    def _require(self, node_id: str) -> int:
        i = self._t.index.get(node_id)
        if i is None:
            raise UnknownNodeError(node_id)
        return i

    def _operator_factor(self, op: int) -> float:
        t = self._t
        n = t.op_nodes[op]
        return max(0.1, 1.0 - t.op_quarantined[op] / n) if n else 1.0

    def _base_rate(self, i: int) -> float:
        a = self.config.base_rate * self._operator_factor(self._t.op_of[i])
        if self._t.burst_keys[i]:
            a *= self.config.sybil_base_rate_factor
        return a

    def _counts_at(self, i: int, now: float) -> tuple[float, float, float, float]:
        """(direct positive, direct negative, feedback positive, feedback negative) at now,
        feedback already capped."""
        t = self._t
        k = self._decay(now)
        r, s = t.r[i] * k + t.prior_r[i], t.s[i] * k
        fr, fs = (t.pr[i] + t.tr[i]) * k, (t.ps[i] + t.ts[i]) * k
        cap = self.config.feedback_cap_ratio * (r + s + self.config.prior_weight)
        if fr + fs > cap:
            scale = cap / (fr + fs)
            fr, fs = fr * scale, fs * scale
        return r, s, fr, fs

    def opinion(self, node_id: str, now: float | None = None) -> Opinion:
        """The node's opinion now. Raises UnknownNodeError."""
        i = self._require(node_id)
        now = self._clock() if now is None else now
        r, s, fr, fs = self._counts_at(i, now)
        return Opinion.from_counts(
            r + fr, s + fs, prior_weight=self.config.prior_weight, base_rate=self._base_rate(i)
        )

    def gates(self, node_id: str, now: float | None = None) -> tuple[Gate, ...]:
        """Hard gates the node hits now. Raises UnknownNodeError."""
        i = self._require(node_id)
        now = self._clock() if now is None else now
        return tuple(self._gates(i, now))

    def _gates(self, i: int, now: float) -> list[Gate]:
        t = self._t
        out: list[Gate] = []
        status = t.att_status[i]
        if status == ATT_CONTRAINDICATED:
            out.append(Gate("trust.gate.attestation_contraindicated", "last appraisal failed"))
        elif status == ATT_MISSING:
            out.append(Gate("trust.gate.attestation_missing", "no attestation result"))
        elif now - t.att_at[i] > self.config.attestation_ttl_s:
            out.append(Gate("trust.gate.attestation_missing", "attestation result expired"))
        if t.revoked[i]:
            out.append(Gate("trust.gate.identity_revoked", "the node's identity is revoked"))
        if t.quarantined[i]:
            out.append(Gate("trust.gate.quarantined", "the node is in quarantine"))
        return out

    def _sybil_signals(self, i: int) -> list[Signal]:
        out = [
            Signal(
                "trust.signal.sybil_burst",
                f"joined in a burst of {self._bursts.burst_size(key)} new nodes sharing {key}",
            )
            for key in self._t.burst_keys[i]
        ]
        t = self._t
        op = t.op_of[i]
        if t.op_quarantined[op]:
            out.append(
                Signal(
                    "trust.signal.operator_record",
                    f"operator {t.op_names[op]} has {t.op_quarantined[op]} of {t.op_nodes[op]} "
                    f"nodes in quarantine: base rate x{self._operator_factor(op):.2f}",
                )
            )
        name = t.ids[i]
        out.extend(
            Signal("trust.signal.rating_ring", f"member of a rating ring of {len(ring)} nodes")
            for ring in self._rings
            if name in ring
        )
        return out

    def score(self, node_id: str, now: float | None = None) -> TrustScore:
        """The node's score with its full explanation. Raises UnknownNodeError."""
        from trust._explainer import build_score

        i = self._require(node_id)
        now = self._clock() if now is None else now
        return build_score(self, i, now)

    def snapshot(self, now: float | None = None) -> ScoreArrays:
        """Scores of every node as arrays (for placement over many nodes)."""
        from trust._explainer import score_arrays

        now = self._clock() if now is None else now
        return score_arrays(self, now)

    # -- propagation ------------------------------------------------------------------------

    def recompute(self, now: float | None = None) -> PropagationResult:
        """Full recomputation: EigenTrust over the feedback graph, rater credibility
        (global trust x own verified score x agreement with verified evidence), rating-ring
        detection, and every node's feedback mass rebuilt from the graph."""
        from trust._recompute import recompute

        return recompute(self, self._clock() if now is None else now)

    def verification_share(self, node_id: str, now: float | None = None) -> float:
        """Share of this node's tasks to replicate (see :mod:`trust.verification`)."""
        return verification_share(
            self.opinion(node_id, now),
            min_share=self.config.min_verification_share,
            max_share=self.config.max_verification_share,
        )

    def placement_policy(
        self, *, exploration_share: float = 0.1, max_tasks_per_node: int | None = None
    ) -> PlacementPolicy:
        """The placement thresholds matching this engine's configuration."""
        cfg = self.config
        return PlacementPolicy(
            trust_threshold=cfg.trust_threshold,
            max_trusted_uncertainty=cfg.max_trusted_uncertainty,
            explore_floor=cfg.explore_floor,
            explore_uncertainty=cfg.explore_uncertainty,
            exploration_share=exploration_share,
            max_tasks_per_node=max_tasks_per_node,
        )

    def node_ids(self) -> list[str]:
        """Registered node ids in registration order."""
        return list(self._t.ids)
