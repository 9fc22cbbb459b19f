"""Print the policies figures for benchmarks/RESULTS.md (Markdown).

Run from the repo root: ``python -m benchmarks.policies.figures [--quick]``.
Measures: placement decisions/s with 10,000 nodes (compiled filter; Cedar batched per-node
baseline for comparison) and API authorization latency p50/p99 per request: CedarEngine
uncached (every request distinct) and cached (a hot set of 100 requests), and
CompiledEngine uncached.
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.policies._fixtures import PUBLIC_TASK, SECRET_TASK, api_requests, make_nodes
from policies import CedarEngine, CompiledEngine, load_default_policy_set, placement_request


def _rate(fn: object, count: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return count / statistics.median(times)


def _latencies(engine: CedarEngine, requests: list, repeat: int) -> tuple[float, float]:  # type: ignore[type-arg]
    samples = []
    for _ in range(repeat):
        for r in requests:
            start = time.perf_counter_ns()
            engine.decide(r)
            samples.append(time.perf_counter_ns() - start)
    samples.sort()
    p50 = samples[len(samples) // 2] / 1000
    p99 = samples[int(len(samples) * 0.99)] / 1000
    return p50, p99


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds (smoke test)")
    args = parser.parse_args()
    rounds = 2 if args.quick else 7
    policy_set = load_default_policy_set()
    engine = CedarEngine(policy_set)
    nodes = make_nodes(10_000)
    engine.filter_nodes(SECRET_TASK, nodes[:10])  # compile once
    secret = _rate(lambda: engine.filter_nodes(SECRET_TASK, nodes), 10_000, rounds)
    public = _rate(lambda: engine.filter_nodes(PUBLIC_TASK, nodes), 10_000, rounds)
    uncached = CedarEngine(policy_set, cache_size=0)
    batch = [placement_request(SECRET_TASK, n) for n in nodes[:1000]]
    baseline = _rate(lambda: uncached.decide_batch(batch), 1000, rounds)
    requests = api_requests(500 if args.quick else 5000)
    u50, u99 = _latencies(uncached, requests, 1)
    cached = CedarEngine(policy_set, cache_size=4096)
    hot = requests[:100]
    for r in hot:
        cached.decide(r)
    c50, c99 = _latencies(cached, hot, 5 if args.quick else 50)
    compiled = CompiledEngine(policy_set, reference=uncached)
    for r in requests[:50]:
        compiled.decide(r)  # compile the actions used
    k50, k99 = _latencies(compiled, requests, 1)
    print("| policies measurement | value |")
    print("| --- | --- |")
    print(f"| placement, compiled filter, secret task, 10,000 nodes | {secret:,.0f} decisions/s |")
    print(f"| placement, compiled filter, public task, 10,000 nodes | {public:,.0f} decisions/s |")
    print(f"| placement, Cedar batched per node (baseline) | {baseline:,.0f} decisions/s |")
    print(f"| API authorization, CedarEngine uncached | p50 {u50:.0f} us, p99 {u99:.0f} us |")
    hot_label = "API authorization, CedarEngine cached (hot set of 100)"
    print(f"| {hot_label} | p50 {c50:.1f} us, p99 {c99:.1f} us |")
    print(f"| API authorization, CompiledEngine, uncached | p50 {k50:.1f} us, p99 {k99:.1f} us |")


if __name__ == "__main__":
    main()
