from __future__ import annotations

from typing import Any

import pytest

from trust import DEFAULT_WEIGHTS, EngineConfig, EvidenceKind, TrustError


@pytest.mark.parametrize(
    "change",
    [
        {"half_life_s": 0.0},
        {"base_rate": 1.5},
        {"quarantine_threshold": 0.9},
        {"min_verification_share": 0.9, "max_verification_share": 0.5},
        {"sybil_burst_min": 1},
        {"explain_top": 0},
        {"weights": {EvidenceKind.TASK_FAILED: -1.0}},
        {"ids_severity_weights": {1: -1.0}},
        {"max_clock_skew_s": -1.0},
    ],
)
def test_bad_config_refused(change: dict[str, Any]) -> None:
    with pytest.raises(TrustError):
        EngineConfig(**change)


def test_defaults_are_consistent() -> None:
    cfg = EngineConfig()
    assert cfg.quarantine_threshold < cfg.explore_floor < cfg.trust_threshold
    # a newcomer scores its base rate: below the trust threshold
    assert cfg.base_rate < cfg.trust_threshold
    # one verified wrong result outweighs plenty of good history
    assert (
        -DEFAULT_WEIGHTS[EvidenceKind.TASK_WRONG_RESULT]
        > 50 * DEFAULT_WEIGHTS[EvidenceKind.TASK_VERIFIED]
    )
