"""pytest-benchmark: TPM quote and EAT appraisals per second on one core.

Run: ``python -m pytest benchmarks/identity_attest --benchmark-only``
(on a shared machine add ``--benchmark-timer time.process_time`` to count CPU time only).
Each round appraises a batch of freshly prepared evidence (nonces are single
use, so evidence cannot be re-appraised); the target is >= 5,000/s each.
"""

from __future__ import annotations

import pytest

from benchmarks.identity_attest.attest_workload import EatWorkload, QuoteWorkload
from identity.attestation import TrustTier

BATCH = 1000
TARGET_PER_S = 5000


def _run(benchmark, workload) -> None:  # type: ignore[no-untyped-def]
    def setup():  # type: ignore[no-untyped-def]
        return (workload.prepare(BATCH),), {}

    def appraise_batch(items) -> None:  # type: ignore[no-untyped-def]
        for item in items:
            result = workload.appraise(item)
            if result.status is TrustTier.CONTRAINDICATED:
                raise AssertionError(result.reasons())

    benchmark.pedantic(appraise_batch, setup=setup, rounds=5, iterations=1)
    per_s = BATCH / benchmark.stats.stats.min
    benchmark.extra_info["appraisals_per_s"] = round(per_s)
    print(f"\n{benchmark.name}: {per_s:,.0f} appraisals/s (best round)")
    assert per_s >= TARGET_PER_S


def test_quote_appraisal_rate(benchmark) -> None:  # type: ignore[no-untyped-def]
    _run(benchmark, QuoteWorkload())


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_eat_appraisal_rate(benchmark, algorithm: str) -> None:  # type: ignore[no-untyped-def]
    _run(benchmark, EatWorkload(algorithm))
