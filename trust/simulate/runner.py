"""Runs one scenario against the engine and the baselines and measures them.

Each round: joins (the Sybil burst, whitewashers coming back under a new identity), placement
by the strategy, task outcomes drawn from each identity's behaviour, adaptive verification
(replica on an independent high-trust node; on a mismatch a third replica and the trusted
majority decide who is blamed, see :func:`trust.verification.decide_replicas`), evidence back
into the strategy, peer ratings, then the strategy's full recomputation. Identities that a
strategy excludes and that whitewash leave and rejoin after ``whitewash_delay_rounds``.

The network (who is malicious, how, where) depends only on the scenario seed, so every
strategy faces the same attackers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from trust.errors import TrustError
from trust.simulate.metrics import SimulationReport, StrategyMetrics, gini
from trust.simulate.network import COLLUDING, HONEST, SYBIL, TURNED, WHITEWASHING, Population
from trust.simulate.scenario import BEHAVIOURS, Scenario
from trust.simulate.strategies import (
    FAILED,
    SLA_MISS,
    STRATEGIES,
    SUCCEEDED,
    TIMEOUT,
    VERIFIED,
    WRONG,
    EngineStrategy,
    Plan,
    Strategy,
)
from trust.verification import decide_replicas

ProgressFn = Callable[[str, int, int], None]
START = 1_800_000_000.0
ALL_STRATEGIES = ("engine", "no_trust", "beta_verified", "eigentrust")


def _pick_verifier(plan_verifiers: np.ndarray, cum: np.ndarray, u: float, exclude: set[int]) -> int:
    k = int(np.searchsorted(cum, u * cum[-1], side="right"))
    k = min(k, len(plan_verifiers) - 1)
    for step in range(len(plan_verifiers)):
        cand = int(plan_verifiers[(k + step) % len(plan_verifiers)])
        if cand not in exclude:
            return cand
    return -1


class _Tracker:
    """Per-identity bookkeeping for the metrics; grows with the population."""

    def __init__(self, capacity: int) -> None:
        self.first_bad = np.full(capacity, -1, dtype=np.int64)
        self.detected = np.full(capacity, -1, dtype=np.int64)
        self.honest_flag = np.zeros(capacity, dtype=bool)
        self.load = np.zeros(capacity)
        self.present_all_steady = np.zeros(capacity, dtype=bool)
        self.behaviour_tasks = np.zeros(len(BEHAVIOURS) + 1, dtype=np.int64)
        self.tasks_steady = self.malicious_steady = self.bad_delivered = 0
        self.verified = self.total = 0

    def grow(self, size: int) -> None:
        if size <= len(self.first_bad):
            return
        extra = size - len(self.first_bad) + 64
        self.first_bad = np.concatenate([self.first_bad, np.full(extra, -1, dtype=np.int64)])
        self.detected = np.concatenate([self.detected, np.full(extra, -1, dtype=np.int64)])
        self.honest_flag = np.concatenate([self.honest_flag, np.zeros(extra, dtype=bool)])
        self.load = np.concatenate([self.load, np.zeros(extra)])
        self.present_all_steady = np.concatenate(
            [self.present_all_steady, np.zeros(extra, dtype=bool)]
        )


def _digest(i: int, wrong: bool, colluding: np.ndarray) -> str:
    """A replica's result: colluders agree on one wrong result, others err each their way."""
    if not wrong:
        return "ok"
    return "bad-c" if colluding[i] else f"bad-{i}"


def _execute(
    sc: Scenario,
    plan: Plan,
    p_bad: np.ndarray,
    colluding: np.ndarray,
    rng: np.random.Generator,
    track: _Tracker,
) -> tuple[list[int], list[int], np.ndarray]:
    """Run one round's tasks: outcomes, verification by replicas, the trusted majority.

    Returns (identity, outcome code) pairs for the strategy and which tasks delivered a bad
    result to the tenant.
    """
    picks = plan.picks
    n = len(picks)
    fail_u = rng.random(n)
    wrong = rng.random(n) < p_bad[picks]
    verify = rng.random(n) < plan.share[picks]
    visible = fail_u < sc.honest_failure_rate
    kind_u = fail_u / max(sc.honest_failure_rate, 1e-12)
    verifiers = plan.verifiers
    cum = np.cumsum(plan.verifier_weight) if len(verifiers) else np.zeros(0)
    idx_out: list[int] = []
    code_out: list[int] = []
    delivered_bad = np.zeros(n, dtype=bool)
    vu = rng.random((n, 3))
    for k in range(n):
        i = int(picks[k])
        if visible[k]:  # the node fails visibly: no result, nothing delivered
            idx_out.append(i)
            code_out.append(FAILED if kind_u[k] < 0.5 else TIMEOUT if kind_u[k] < 0.8 else SLA_MISS)
            continue
        v = -1
        if verify[k] and len(verifiers):
            track.verified += 1
            v = _pick_verifier(verifiers, cum, float(vu[k, 0]), {i})
        if v < 0:  # not verified: the tenant gets whatever the node returned
            idx_out.append(i)
            code_out.append(SUCCEEDED)
            delivered_bad[k] = wrong[k]
            continue
        d_i = _digest(i, bool(wrong[k]), colluding)
        d_v = _digest(v, bool(vu[k, 1] < p_bad[v]), colluding)
        if d_i == d_v:  # replicas match (colluders may match on a wrong result)
            idx_out.append(i)
            code_out.append(VERIFIED)
            delivered_bad[k] = wrong[k]
            continue
        # mismatch: a third replica, and the trust-weighted majority decides who is blamed
        w = _pick_verifier(verifiers, cum, float(vu[k, 2]), {i, v})
        results = {f"{i}": d_i, f"{v}": d_v}
        trust = {f"{i}": float(plan.trust[i]), f"{v}": float(plan.trust[v])}
        if w >= 0:
            results[f"{w}"] = _digest(w, bool(rng.random() < p_bad[w]), colluding)
            trust[f"{w}"] = float(plan.trust[w])
        verdict = decide_replicas(results, trust)
        if not verdict.decided:
            continue
        for node in verdict.disagreeing:
            idx_out.append(int(node))
            code_out.append(WRONG)
        if f"{i}" in verdict.agreeing:
            idx_out.append(i)
            code_out.append(VERIFIED)
            delivered_bad[k] = verdict.majority_digest != "ok"
    return idx_out, code_out, delivered_bad


def _register_initial(sc: Scenario, pop: Population, strat: Strategy) -> None:
    # Initial nodes were enrolled over the past month (in time order): no burst among them.
    enrolled = START - np.random.default_rng([sc.seed, 3]).uniform(0, 30 * 86400, sc.nodes)
    for i in np.argsort(enrolled, kind="stable").tolist():
        strat.register(
            i,
            int(pop.operator[i]),
            f"net-{pop.operator[i]}-{i // 20}",
            f"hw-{i}",
            float(enrolled[i]),
            bool(pop.pretrusted[i]),
        )
        pop.active[i] = True


def _join(pop: Population, strat: Strategy, rnd: int, now: float) -> None:
    """The Sybil burst at its round; whitewashers back under a new identity when due."""
    joiners: list[int] = []
    if rnd == pop.sybil_round and pop.n_sybil:
        for _ in range(pop.n_sybil):
            joiners.append(pop.add_identity(SYBIL, pop.sybil_operator, pop.size, rnd))
    due = [p for p in pop.pending if p[0] <= rnd]
    pop.pending = [p for p in pop.pending if p[0] > rnd]
    for _, device, operator in due:
        joiners.append(pop.add_identity(WHITEWASHING, operator, device, rnd))
    for i in joiners:
        sybil = pop.behaviour[i] == SYBIL
        net = "net-sybil" if sybil else f"net-{pop.operator[i]}-{pop.device[i] // 20}"
        hw = f"hw-sybil-{i % 4}" if sybil else f"hw-{pop.device[i]}"
        strat.register(i, int(pop.operator[i]), net, hw, now, False)
        pop.active[i] = True


def run_strategy(
    sc: Scenario, strategy: str, progress: ProgressFn | None = None
) -> StrategyMetrics:
    """Run one strategy over the scenario.

    Raises:
        TrustError: unknown strategy name.
    """
    if strategy not in STRATEGIES:
        raise TrustError(f"unknown strategy {strategy!r}")
    started = time.perf_counter()
    pop = Population(sc)
    strat = STRATEGIES[strategy](sc, START)
    rng = np.random.default_rng([sc.seed, 2])
    _register_initial(sc, pop, strat)
    steady_from = int(sc.rounds * sc.steady_state_from)
    track = _Tracker(pop.capacity)
    for rnd in range(sc.rounds):
        now = START + rnd * sc.round_s
        # 1. joins
        _join(pop, strat, rnd, now)
        size = pop.size
        track.grow(size)
        active = pop.active[:size].copy()
        if rnd == steady_from:
            track.present_all_steady[:size] = active & (pop.behaviour[:size] == HONEST)
        # 2. placement; exclusions since last round count as detections (or false positives)
        plan = strat.plan(sc.tasks_per_round, now, rng, active)
        in_service = plan.in_service[:size]
        mal_now = pop.malicious_now(rnd)
        newly = (track.first_bad[:size] >= 0) & (track.detected[:size] < 0) & ~in_service
        track.detected[:size][newly] = rnd
        if rnd >= steady_from:
            track.honest_flag[:size] |= ~mal_now & active & ~in_service
        leaving = np.flatnonzero(active & ~in_service & (pop.behaviour[:size] == WHITEWASHING))
        for j in leaving.tolist():
            pop.active[j] = False  # whitewashers leave once excluded, and come back renamed
            pop.pending.append(
                (rnd + sc.whitewash_delay_rounds + 1, int(pop.device[j]), int(pop.operator[j]))
            )
        # 3. tasks, verification, evidence back to the strategy
        picks = plan.picks
        track.total += len(picks)
        p_bad = pop.bad_probability(rnd)
        colluding = np.isin(pop.behaviour[:size], COLLUDING)
        idx_out, code_out, delivered_bad = _execute(sc, plan, p_bad, colluding, rng, track)
        for i, code in zip(idx_out, code_out, strict=True):
            if code == WRONG and track.first_bad[i] < 0:
                track.first_bad[i] = rnd
        for i in strat.outcomes(idx_out, code_out, now):  # quarantined now
            if track.first_bad[i] >= 0 and track.detected[i] < 0:
                track.detected[i] = rnd
            if not mal_now[i]:
                track.honest_flag[i] = True
        if rnd >= steady_from:
            track.tasks_steady += len(picks)
            track.malicious_steady += int(mal_now[picks].sum())
            track.bad_delivered += int(delivered_bad.sum())
            track.load[:size] += np.bincount(picks, minlength=size)[:size]
            track.behaviour_tasks += np.bincount(
                pop.behaviour[:size][picks[mal_now[picks]]], minlength=len(BEHAVIOURS) + 1
            )
        # 4. peer ratings, 5. recomputation
        if sc.ratings_per_node:
            rater, ratee, rating = pop.ratings(rng, rnd, p_bad)
            strat.feedback(rater, ratee, rating, now)
        if (rnd + 1) % sc.recompute_every == 0:
            strat.end_round(now)
        if progress is not None:
            progress(strategy, rnd + 1, sc.rounds)
    return _metrics(sc, strategy, pop, strat, track, time.perf_counter() - started)


def _metrics(
    sc: Scenario,
    strategy: str,
    pop: Population,
    strat: Strategy,
    track: _Tracker,
    elapsed_s: float,
) -> StrategyMetrics:
    size = pop.size
    fb = track.first_bad[:size]
    det = track.detected[:size]
    mal_with_bad = pop.ever_malicious() & (fb >= 0)
    delays = np.where(det >= 0, det - fb, sc.rounds - fb)[mal_with_bad].astype(np.float64)
    honest_like = (pop.behaviour[:size] == HONEST) | (pop.behaviour[:size] == TURNED)
    # flags are only ever set while a node is honest: a turned node excluded after its turn
    # is a detection, one excluded before it a false positive
    fp = int((track.honest_flag[:size] & honest_like).sum())
    timings = np.asarray(strat.update_ns, dtype=np.float64) / 1000.0
    rec = np.asarray(strat.recompute_s, dtype=np.float64) * 1000.0
    has_updates = isinstance(strat, EngineStrategy) and len(timings) > 0
    steady = max(track.tasks_steady, 1)
    return StrategyMetrics(
        strategy=strategy,
        tasks_steady=track.tasks_steady,
        malicious_task_share=track.malicious_steady / steady,
        bad_delivered_share=track.bad_delivered / steady,
        detect_median_rounds=float(np.median(delays)) if len(delays) else None,
        detect_p90_rounds=float(np.percentile(delays, 90)) if len(delays) else None,
        detected=int(((det >= 0) & mal_with_bad).sum()),
        undetected=int(((det < 0) & mal_with_bad).sum()),
        honest_fp_rate=fp / max(int(honest_like.sum()), 1),
        honest_load_gini=gini(track.load[:size][track.present_all_steady[:size]]),
        verified_share=track.verified / max(track.total, 1),
        update_p50_us=float(np.percentile(timings, 50)) if has_updates else None,
        update_p99_us=float(np.percentile(timings, 99)) if has_updates else None,
        recompute_mean_ms=float(rec.mean()) if len(rec) else None,
        recompute_max_ms=float(rec.max()) if len(rec) else None,
        elapsed_s=elapsed_s,
        malicious_share_by_behaviour={
            name: int(track.behaviour_tasks[k + 1]) / steady
            for k, name in enumerate(BEHAVIOURS)
            if track.behaviour_tasks[k + 1]
        },
    )


def simulate(
    sc: Scenario,
    strategies: Sequence[str] = ALL_STRATEGIES,
    progress: ProgressFn | None = None,
) -> SimulationReport:
    """Run the scenario for each strategy (same seed, same network) and report side by side.

    Raises:
        TrustError: an unknown strategy name.
    """
    for name in strategies:
        if name not in STRATEGIES:
            raise TrustError(f"unknown strategy {name!r}")
    results = tuple(run_strategy(sc, name, progress) for name in strategies)
    return SimulationReport(sc.name, sc.nodes, sc.rounds, sc.seed, results)
