"""pytest-benchmark: one API authorization, uncached and cached (run with --benchmark-only)."""

from __future__ import annotations

import itertools

import pytest

from benchmarks.policies._fixtures import api_requests
from policies import CedarEngine, CompiledEngine, load_default_policy_set

REQUESTS = api_requests(2000)


@pytest.fixture(scope="module")
def policy_set():  # type: ignore[no-untyped-def]
    return load_default_policy_set()


def test_authorize_uncached(benchmark: pytest.FixtureRequest, policy_set) -> None:  # type: ignore[no-untyped-def]
    engine = CedarEngine(policy_set, cache_size=0)
    cycle = itertools.cycle(REQUESTS)
    benchmark(lambda: engine.decide(next(cycle)))


def test_authorize_cached(benchmark: pytest.FixtureRequest, policy_set) -> None:  # type: ignore[no-untyped-def]
    engine = CedarEngine(policy_set, cache_size=4096)
    hot = REQUESTS[:100]
    for r in hot:
        engine.decide(r)
    cycle = itertools.cycle(hot)
    benchmark(lambda: engine.decide(next(cycle)))
    assert engine.cache_hits > 0


def test_authorize_compiled(benchmark: pytest.FixtureRequest, policy_set) -> None:  # type: ignore[no-untyped-def]
    engine = CompiledEngine(policy_set)
    cycle = itertools.cycle(REQUESTS)
    benchmark(lambda: engine.decide(next(cycle)))
