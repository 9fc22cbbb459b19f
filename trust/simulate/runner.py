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
    hw_rng = np.random.default_rng([sc.seed, 3])
    n0 = sc.nodes
    # Initial nodes were enrolled over the past month (in time order): no burst among them.
    enrolled = START - hw_rng.uniform(0, 30 * 86400, n0)
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
    steady_from = int(sc.rounds * sc.steady_state_from)
    first_bad = np.full(pop.capacity, -1, dtype=np.int64)
    detected = np.full(pop.capacity, -1, dtype=np.int64)
    honest_flag = np.zeros(pop.capacity, dtype=bool)
    load = np.zeros(pop.capacity)
    present_all_steady = np.zeros(pop.capacity, dtype=bool)
    tasks_steady = mal_steady = bad_delivered = verified_tasks = 0
    beh_steady = np.zeros(len(BEHAVIOURS) + 1, dtype=np.int64)
    total_tasks = 0

    def grow(size: int) -> None:
        nonlocal first_bad, detected, honest_flag, load, present_all_steady
        if size <= len(first_bad):
            return
        extra = size - len(first_bad) + 64
        first_bad = np.concatenate([first_bad, np.full(extra, -1, dtype=np.int64)])
        detected = np.concatenate([detected, np.full(extra, -1, dtype=np.int64)])
        honest_flag = np.concatenate([honest_flag, np.zeros(extra, dtype=bool)])
        load = np.concatenate([load, np.zeros(extra)])
        present_all_steady = np.concatenate([present_all_steady, np.zeros(extra, dtype=bool)])

    for rnd in range(sc.rounds):
        now = START + rnd * sc.round_s
        # 1. joins
        joiners: list[int] = []
        if rnd == pop.sybil_round and pop.n_sybil:
            for _ in range(pop.n_sybil):
                joiners.append(pop.add_identity(SYBIL, pop.sybil_operator, pop.size, rnd))
        due = [p for p in pop.pending if p[0] <= rnd]
        pop.pending = [p for p in pop.pending if p[0] > rnd]
        for _, device, operator in due:
            joiners.append(pop.add_identity(WHITEWASHING, operator, device, rnd))
        grow(pop.size)
        for i in joiners:
            beh = pop.behaviour[i]
            net = "net-sybil" if beh == SYBIL else f"net-{pop.operator[i]}-{pop.device[i] // 20}"
            hw = f"hw-sybil-{i % 4}" if beh == SYBIL else f"hw-{pop.device[i]}"
            strat.register(i, int(pop.operator[i]), net, hw, now, False)
            pop.active[i] = True
        size = pop.size
        active = pop.active[:size].copy()
        if rnd == steady_from:
            present_all_steady[:size] = active & (pop.behaviour[:size] == HONEST)
        # 2. placement
        plan = strat.plan(sc.tasks_per_round, now, rng, active)
        in_service = plan.in_service[:size]
        mal_now = pop.malicious_now(rnd)
        honest_now = ~mal_now
        newly = (first_bad[:size] >= 0) & (detected[:size] < 0) & ~in_service
        detected[:size][newly] = rnd
        if rnd >= steady_from:
            honest_flag[:size] |= honest_now & active & ~in_service
        # whitewashers leave once excluded
        for i in np.flatnonzero(active & ~in_service & (pop.behaviour[:size] == WHITEWASHING)):
            pop.active[i] = False
            pop.left[i] = True
            pop.pending.append(
                (rnd + sc.whitewash_delay_rounds + 1, int(pop.device[i]), int(pop.operator[i]))
            )
        picks = plan.picks
        n = len(picks)
        total_tasks += n
        # 3. outcomes
        p_bad = pop.bad_probability(rnd)
        fail_u = rng.random(n)
        wrong = rng.random(n) < p_bad[picks]
        verify = rng.random(n) < plan.share[picks]
        visible = fail_u < sc.honest_failure_rate
        kind_u = fail_u / max(sc.honest_failure_rate, 1e-12)
        colluding = np.isin(pop.behaviour[:size], COLLUDING)
        cum = np.cumsum(plan.verifier_weight) if len(plan.verifiers) else np.zeros(0)
        trust_map = plan.trust
        idx_out: list[int] = []
        code_out: list[int] = []
        delivered_bad = np.zeros(n, dtype=bool)
        vu = rng.random((n, 3))
        for k in range(n):
            i = int(picks[k])
            if visible[k]:
                idx_out.append(i)
                code_out.append(
                    FAILED if kind_u[k] < 0.5 else TIMEOUT if kind_u[k] < 0.8 else SLA_MISS
                )
                continue
            if not verify[k] or len(plan.verifiers) == 0:
                idx_out.append(i)
                code_out.append(SUCCEEDED)
                delivered_bad[k] = wrong[k]
                continue
            verified_tasks += 1
            v = _pick_verifier(plan.verifiers, cum, float(vu[k, 0]), {i})
            if v < 0:
                idx_out.append(i)
                code_out.append(SUCCEEDED)
                delivered_bad[k] = wrong[k]
                continue
            v_wrong = bool(vu[k, 1] < p_bad[v])
            d_i = ("bad-c" if colluding[i] else f"bad-{i}") if wrong[k] else "ok"
            d_v = ("bad-c" if colluding[v] else f"bad-{v}") if v_wrong else "ok"
            if d_i == d_v:
                idx_out.append(i)
                code_out.append(VERIFIED)
                delivered_bad[k] = wrong[k]
                continue
            w = _pick_verifier(plan.verifiers, cum, float(vu[k, 2]), {i, v})
            results = {f"{i}": d_i, f"{v}": d_v}
            trust = {f"{i}": float(trust_map[i]), f"{v}": float(trust_map[v])}
            if w >= 0:
                w_wrong = bool(rng.random() < p_bad[w])
                results[f"{w}"] = ("bad-c" if colluding[w] else f"bad-{w}") if w_wrong else "ok"
                trust[f"{w}"] = float(trust_map[w])
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
        codes = np.asarray(code_out, dtype=np.int64)
        blamed = np.asarray(idx_out, dtype=np.int64)[codes == WRONG] if len(codes) else codes
        for i in blamed.tolist():
            if first_bad[i] < 0:
                first_bad[i] = rnd
        quarantined = strat.outcomes(idx_out, code_out, now)
        for i in quarantined:
            if first_bad[i] >= 0 and detected[i] < 0:
                detected[i] = rnd
            if not mal_now[i]:
                honest_flag[i] = True
        if rnd >= steady_from:
            tasks_steady += n
            mal_steady += int(mal_now[picks].sum())
            bad_delivered += int(delivered_bad.sum())
            load[:size] += np.bincount(picks, minlength=size)[:size]
            beh_steady += np.bincount(
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
    size = pop.size
    ever_mal = pop.ever_malicious()
    fb = first_bad[:size]
    det = detected[:size]
    mal_with_bad = ever_mal & (fb >= 0)
    delays = np.where(det >= 0, det - fb, sc.rounds - fb)[mal_with_bad].astype(np.float64)
    honest = pop.behaviour[:size] == HONEST
    honest_like = honest | (pop.behaviour[:size] == TURNED)
    fp_flags = honest_flag[:size] & honest_like
    # (flags are only ever set while a node is honest: a turned node excluded after its turn is
    # a detection, one excluded before it a false positive)
    timings = np.asarray(strat.update_ns, dtype=np.float64) / 1000.0
    rec = np.asarray(strat.recompute_s, dtype=np.float64) * 1000.0
    is_engine = isinstance(strat, EngineStrategy)
    return StrategyMetrics(
        strategy=strategy,
        tasks_steady=tasks_steady,
        malicious_task_share=mal_steady / max(tasks_steady, 1),
        bad_delivered_share=bad_delivered / max(tasks_steady, 1),
        detect_median_rounds=float(np.median(delays)) if len(delays) else None,
        detect_p90_rounds=float(np.percentile(delays, 90)) if len(delays) else None,
        detected=int(((det >= 0) & mal_with_bad).sum()),
        undetected=int(((det < 0) & mal_with_bad).sum()),
        honest_fp_rate=float(fp_flags.sum()) / max(int(honest_like.sum()), 1),
        honest_load_gini=gini(load[:size][present_all_steady[:size]]),
        verified_share=verified_tasks / max(total_tasks, 1),
        update_p50_us=float(np.percentile(timings, 50)) if is_engine and len(timings) else None,
        update_p99_us=float(np.percentile(timings, 99)) if is_engine and len(timings) else None,
        recompute_mean_ms=float(rec.mean()) if len(rec) else None,
        recompute_max_ms=float(rec.max()) if len(rec) else None,
        elapsed_s=time.perf_counter() - started,
        malicious_share_by_behaviour={
            name: int(beh_steady[k + 1]) / max(tasks_steady, 1)
            for k, name in enumerate(BEHAVIOURS)
            if beh_steady[k + 1]
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
