"""What the simulator compares: the real trust engine and three baselines.

- ``engine``: :class:`trust.TrustEngine` with adaptive verification, quarantine decisions
  acted on at once (as the scheduler does), EigenTrust-weighted feedback, placement by
  :func:`trust.placement.plan_placement`.
- ``no_trust``: uniform random placement, fixed verification share, nobody excluded.
- ``beta_verified``: Beta reputation (Josang & Ismail) over verified outcomes only, no decay,
  no gates, fixed verification share, same placement policy (trust threshold, exploration).
- ``eigentrust``: plain EigenTrust over peer ratings with pre-trusted nodes; tasks placed
  proportionally to global trust, the exploration share uniformly at random.

Every strategy returns a :class:`Plan` per round and takes outcomes back as integer codes.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from trust.config import EngineConfig
from trust.engine import TrustEngine
from trust.evidence import Evidence, EvidenceKind
from trust.placement import (
    PlacementPolicy,
    PlacementView,
    plan_placement,
    pools,
    systematic_sample,
)
from trust.propagation import Edges, eigentrust
from trust.simulate.scenario import Scenario
from trust.verification import verification_shares

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

SUCCEEDED, VERIFIED, WRONG, FAILED, TIMEOUT, SLA_MISS = range(6)
_KIND = {
    SUCCEEDED: EvidenceKind.TASK_SUCCEEDED,
    VERIFIED: EvidenceKind.TASK_VERIFIED,
    WRONG: EvidenceKind.TASK_WRONG_RESULT,
    FAILED: EvidenceKind.TASK_FAILED,
    TIMEOUT: EvidenceKind.TASK_TIMEOUT,
    SLA_MISS: EvidenceKind.TASK_SLA_MISS,
}


@dataclass(frozen=True, slots=True)
class Plan:
    """One round's placement: task -> identity, who is in service, verification shares, and
    the verifier pool (independent high-trust identities) with weights."""

    picks: IntArray
    in_service: BoolArray
    share: FloatArray
    verifiers: IntArray
    verifier_weight: FloatArray
    trust: FloatArray


def _grow(arr: FloatArray, size: int) -> FloatArray:
    if len(arr) >= size:
        return arr
    return np.concatenate([arr, np.zeros(max(size, 2 * len(arr)) - len(arr))])


class EngineStrategy:
    """The real engine, driven exactly as the scheduler drives it."""

    name = "engine"

    def __init__(self, sc: Scenario, start: float) -> None:
        self.now = start
        horizon = (sc.rounds + 2) * sc.round_s
        self.config = EngineConfig(
            half_life_s=sc.half_life_rounds * sc.round_s,
            min_verification_share=sc.verified_share,
            attestation_ttl_s=max(86400.0, 2 * horizon),
            replay_window_s=max(7 * 86400.0, 2 * horizon),
            sybil_window_s=max(600.0, 5 * sc.round_s),
        )
        self.engine = TrustEngine(self.config, clock=lambda: self.now)
        self.policy = self.engine.placement_policy(
            exploration_share=sc.exploration_share, max_tasks_per_node=sc.node_capacity
        )
        self._ids = itertools.count()
        self.names: dict[int, str] = {}
        self.engine_index: list[int] = []  # identity -> engine index (registration order)
        self.update_ns: list[int] = []
        self.recompute_s: list[float] = []
        self.quarantined: set[int] = set()

    def register(
        self, i: int, operator: int, network: str, hardware: str, at: float, pretrusted: bool
    ) -> None:
        name = f"node-{i}"
        attested_at = max(at, self.now)
        self.names[i] = name
        if len(self.engine_index) <= i:
            self.engine_index.extend([-1] * (i + 1 - len(self.engine_index)))
        self.engine_index[i] = len(self.names) - 1
        self.engine.register_node(
            name,
            operator=f"op-{operator}",
            network=network,
            hardware_fingerprint=hardware,
            registered_at=at,
            pretrusted=pretrusted,
        )
        ev = Evidence(
            f"att-{next(self._ids)}",
            EvidenceKind.ATTESTATION_AFFIRMING,
            name,
            attested_at,
            "verifier",
        )
        self.engine.ingest(ev, authenticated=True, now=attested_at)

    def plan(self, n_tasks: int, now: float, rng: np.random.Generator, active: BoolArray) -> Plan:
        self.now = now
        snap = self.engine.snapshot(now)
        order = np.asarray(self.engine_index[: len(active)], dtype=np.int64)
        expected, uncertainty = snap.expected[order], snap.uncertainty[order]
        view = PlacementView(
            expected, uncertainty, snap.placeable[order] & active, snap.probe_weight[order]
        )
        trusted, exploring = pools(view, self.policy)
        picks = plan_placement(view, n_tasks, self.policy, rng)
        share = verification_shares(
            expected,
            uncertainty,
            min_share=self.config.min_verification_share,
            max_share=self.config.max_verification_share,
        )
        verifiers = np.flatnonzero(trusted)
        return Plan(
            picks,
            trusted | exploring,
            share,
            verifiers,
            expected[verifiers],
            expected,
        )

    def outcomes(self, idx: list[int], codes: list[int], now: float) -> list[int]:
        """Ingest task outcomes; return identities quarantined as a result."""
        engine = self.engine
        names = self.names
        ids = self._ids
        timings = self.update_ns
        clock = time.perf_counter_ns
        out: list[int] = []
        for i, code in zip(idx, codes, strict=True):
            ev = Evidence(f"ev-{next(ids)}", _KIND[code], names[i], now, "scheduler")
            t0 = clock()
            res = engine.ingest(ev, authenticated=True, now=now)
            timings.append(clock() - t0)
            if res.quarantine is not None and i not in self.quarantined:
                engine.quarantine(names[i])
                self.quarantined.add(i)
                out.append(i)
        return out

    def feedback(self, rater: IntArray, ratee: IntArray, rating: FloatArray, now: float) -> None:
        engine = self.engine
        names = self.names
        ids = self._ids
        timings = self.update_ns
        clock = time.perf_counter_ns
        kind = EvidenceKind.FEEDBACK_PEER
        for j, i, v in zip(rater.tolist(), ratee.tolist(), rating.tolist(), strict=True):
            ev = Evidence(
                f"fb-{next(ids)}", kind, names[i], now, names[j], rating=v, rater_id=names[j]
            )
            t0 = clock()
            engine.ingest(ev, authenticated=True, now=now)
            timings.append(clock() - t0)

    def end_round(self, now: float) -> None:
        result = self.engine.recompute(now)
        self.recompute_s.append(result.elapsed_s)


class BetaStrategy:
    """Beta reputation over verified outcomes only (no decay, no gates, fixed verification)."""

    name = "beta_verified"

    def __init__(self, sc: Scenario, start: float) -> None:
        self.r = np.zeros(sc.nodes)
        self.s = np.zeros(sc.nodes)
        self.verified_share = sc.verified_share
        self.policy = PlacementPolicy(
            max_trusted_uncertainty=1.0,
            exploration_share=sc.exploration_share,
            max_tasks_per_node=sc.node_capacity,
        )
        self.update_ns: list[int] = []
        self.recompute_s: list[float] = []
        self.quarantined: set[int] = set()

    def register(
        self, i: int, operator: int, network: str, hardware: str, at: float, pretrusted: bool
    ) -> None:
        self.r = _grow(self.r, i + 1)
        self.s = _grow(self.s, i + 1)
        if pretrusted:
            self.r[i] = 10.0

    def plan(self, n_tasks: int, now: float, rng: np.random.Generator, active: BoolArray) -> Plan:
        n = len(active)
        r, s = self.r[:n], self.s[:n]
        expected = (r + 1.0) / (r + s + 2.0)
        view = PlacementView(expected, 2.0 / (r + s + 2.0), active.copy(), np.ones(n))
        trusted, exploring = pools(view, self.policy)
        verifiers = np.flatnonzero(trusted)
        return Plan(
            plan_placement(view, n_tasks, self.policy, rng),
            trusted | exploring,
            np.full(n, self.verified_share),
            verifiers,
            expected[verifiers],
            expected,
        )

    def outcomes(self, idx: list[int], codes: list[int], now: float) -> list[int]:
        i = np.asarray(idx, dtype=np.int64)
        c = np.asarray(codes, dtype=np.int64)
        np.add.at(self.r, i[c == VERIFIED], 1.0)
        np.add.at(self.s, i[c == WRONG], 1.0)
        return []

    def feedback(self, rater: IntArray, ratee: IntArray, rating: FloatArray, now: float) -> None:
        return None

    def end_round(self, now: float) -> None:
        return None


class NoTrustStrategy:
    """Uniform random placement over active nodes; nobody is ever excluded."""

    name = "no_trust"

    def __init__(self, sc: Scenario, start: float) -> None:
        self.verified_share = sc.verified_share
        self.update_ns: list[int] = []
        self.recompute_s: list[float] = []
        self.quarantined: set[int] = set()

    def register(
        self, i: int, operator: int, network: str, hardware: str, at: float, pretrusted: bool
    ) -> None:
        return None

    def plan(self, n_tasks: int, now: float, rng: np.random.Generator, active: BoolArray) -> Plan:
        idx = np.flatnonzero(active)
        n = len(active)
        return Plan(
            idx[rng.integers(0, len(idx), n_tasks)],
            active.copy(),
            np.full(n, self.verified_share),
            idx,
            np.ones(len(idx)),
            np.ones(n),
        )

    def outcomes(self, idx: list[int], codes: list[int], now: float) -> list[int]:
        return []

    def feedback(self, rater: IntArray, ratee: IntArray, rating: FloatArray, now: float) -> None:
        return None

    def end_round(self, now: float) -> None:
        return None


class EigenTrustStrategy:
    """Plain EigenTrust over peer ratings; placement proportional to global trust."""

    name = "eigentrust"

    def __init__(self, sc: Scenario, start: float) -> None:
        self.verified_share = sc.verified_share
        self.exploration_share = sc.exploration_share
        self.src: list[int] = []
        self.dst: list[int] = []
        self.val: list[float] = []
        self.pre: list[int] = []
        self.trust = np.zeros(0)
        self.update_ns: list[int] = []
        self.recompute_s: list[float] = []
        self.quarantined: set[int] = set()

    def register(
        self, i: int, operator: int, network: str, hardware: str, at: float, pretrusted: bool
    ) -> None:
        if pretrusted:
            self.pre.append(i)

    def plan(self, n_tasks: int, now: float, rng: np.random.Generator, active: BoolArray) -> Plan:
        n = len(active)
        t = np.zeros(n)
        t[: min(n, len(self.trust))] = self.trust[:n]
        if not t.any():
            t[np.asarray(self.pre, dtype=np.int64)] = 1.0
        t = t * active
        idx = np.flatnonzero(active)
        n_explore = round(self.exploration_share * n_tasks)
        explore = idx[rng.integers(0, len(idx), n_explore)]
        main = systematic_sample(t, n_tasks - n_explore, rng)
        rel = t * max(1, len(idx)) / max(float(t.sum()), 1e-300)
        verifiers = np.flatnonzero(rel >= 1.0)
        return Plan(
            np.concatenate([explore, main]),
            active & (rel >= 0.1),
            np.full(n, self.verified_share),
            verifiers,
            rel[verifiers],
            np.minimum(rel, 1.0),
        )

    def outcomes(self, idx: list[int], codes: list[int], now: float) -> list[int]:
        return []

    def feedback(self, rater: IntArray, ratee: IntArray, rating: FloatArray, now: float) -> None:
        self.src.extend(rater.tolist())
        self.dst.extend(ratee.tolist())
        self.val.extend(rating.tolist())

    def end_round(self, now: float) -> None:
        t0 = time.perf_counter()
        n = max(self.src + self.dst + self.pre, default=-1) + 1
        if n == 0:
            return
        edges = Edges(
            np.asarray(self.src, dtype=np.int64),
            np.asarray(self.dst, dtype=np.int64),
            np.asarray(self.val, dtype=np.float64),
        )
        m = sparse.coo_matrix((edges.value, (edges.src, edges.dst)), shape=(n, n)).tocsr()
        m.sum_duplicates()
        coo = m.tocoo()
        summed = Edges(coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data)
        self.trust = eigentrust(n, summed, np.asarray(self.pre, dtype=np.int64)).trust
        self.recompute_s.append(time.perf_counter() - t0)


Strategy = EngineStrategy | NoTrustStrategy | BetaStrategy | EigenTrustStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    s.name: s for s in (EngineStrategy, NoTrustStrategy, BetaStrategy, EigenTrustStrategy)
}
