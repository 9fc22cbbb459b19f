"""Benchmark: full recomputation at 100,000 nodes and 2,000,000 feedback edges (target <= 1 s).

Run: python -m pytest benchmarks/trust --benchmark-only -s
One recomputation = feedback-graph compaction (decay + pair sums), EigenTrust power
iteration with pre-trusted nodes, rater agreement, rating-ring detection, credibility and
every node's feedback mass. The graph has 2,000,000 distinct random edges (80% positive),
five 20-node rating rings, and 1% pre-trusted nodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trust import EngineConfig, Evidence, EvidenceKind, TrustEngine

T0 = 1_800_000_000.0
N_NODES = 100_000
N_EDGES = 2_000_000


def _engine() -> TrustEngine:
    eng = TrustEngine(EngineConfig(), clock=lambda: T0)
    for k in range(N_NODES):
        eng.register_node(
            f"n{k}",
            operator=f"op{k % 500}",
            registered_at=T0 - 86400 * 30 + k,
            pretrusted=k % 100 == 0,
        )
    rng = np.random.default_rng(7)
    for k in rng.integers(0, N_NODES, 50_000).tolist():  # some nodes with verified history
        eng.ingest(
            Evidence(f"v{k}-{rng.random()}", EvidenceKind.TASK_VERIFIED, f"n{k}", T0, "s"),
            authenticated=True,
        )
    src = rng.integers(0, N_NODES, N_EDGES)
    dst = (src + 1 + rng.integers(0, N_NODES - 1, N_EDGES)) % N_NODES
    rating = np.where(rng.random(N_EDGES) < 0.8, 1.0, -1.0)
    ids = [f"n{k}" for k in range(N_NODES)]
    ring_src: list[int] = []
    ring_dst: list[int] = []
    for r in range(5):
        members = range(90_000 + 20 * r, 90_000 + 20 * (r + 1))
        ring_src += [i for i in members for j in members if i != j]
        ring_dst += [j for i in members for j in members if i != j]
    all_src = np.concatenate([src, np.array(ring_src)])
    all_dst = np.concatenate([dst, np.array(ring_dst)])
    all_rating = np.concatenate([rating, np.ones(len(ring_src))])
    eng.restore_feedback(
        [ids[i] for i in all_src.tolist()],
        [ids[i] for i in all_dst.tolist()],
        all_rating,
        T0 - rng.uniform(0, 86400, len(all_src)),
    )
    return eng


def test_full_recompute_100k_2m(benchmark: Any) -> None:
    eng = _engine()
    first = eng.recompute(T0)  # compacts the raw log once, like a long-running engine
    result = benchmark.pedantic(eng.recompute, args=(T0 + 60,), rounds=3, iterations=1)
    benchmark.extra_info.update(
        {
            "first_recompute_s": first.elapsed_s,
            "recompute_s": result.elapsed_s,
            "edges": result.edges,
            "iterations": result.iterations,
        }
    )
    print(
        f"\nfull recomputation: first {first.elapsed_s:.3f} s, steady {result.elapsed_s:.3f} s, "
        f"{result.edges} edges, {result.iterations} EigenTrust iterations"
    )
    assert result.nodes == N_NODES and result.edges >= N_EDGES * 0.99
