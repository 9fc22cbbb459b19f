"""pytest-benchmark: placement filter at 10,000 nodes (run with --benchmark-only).

Each round decides all 10,000 nodes; decisions/s = 10,000 / round time (in extra_info).
"""

from __future__ import annotations

import pytest

from benchmarks.policies._fixtures import PUBLIC_TASK, SECRET_TASK, make_nodes
from policies import CedarEngine, load_default_policy_set, place, placement_request

NODES = make_nodes(10_000)


@pytest.fixture(scope="module")
def engine() -> CedarEngine:
    return CedarEngine(load_default_policy_set())


@pytest.mark.parametrize("which", ["secret", "public"])
def test_filter_10k_nodes(
    benchmark: pytest.FixtureRequest, engine: CedarEngine, which: str
) -> None:
    task = SECRET_TASK if which == "secret" else PUBLIC_TASK
    result = benchmark(engine.filter_nodes, task, NODES)
    assert result.method == "compiled" and len(result.allowed) + len(result.excluded) == 10_000
    benchmark.extra_info["decisions_per_s"] = 10_000 / benchmark.stats.stats.mean


def test_place_10k_nodes(benchmark: pytest.FixtureRequest, engine: CedarEngine) -> None:
    outcome = benchmark(place, engine, SECRET_TASK, NODES)
    assert outcome.decision is not None and outcome.decision.allowed


def test_cedar_batched_baseline_1k_nodes(
    benchmark: pytest.FixtureRequest, engine: CedarEngine
) -> None:
    uncached = CedarEngine(engine.policy_set, cache_size=0)
    requests = [placement_request(SECRET_TASK, n) for n in NODES[:1000]]
    decisions = benchmark(uncached.decide_batch, requests)
    assert len(decisions) == 1000
    benchmark.extra_info["decisions_per_s"] = 1000 / benchmark.stats.stats.mean
