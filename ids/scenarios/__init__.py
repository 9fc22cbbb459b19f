"""Labelled attack scenarios (pcaps + answer key) and detection scoring for ids."""

from ids.scenarios.generator import (
    EXPLOIT_SID,
    RULES_FILE,
    SCENARIOS,
    ScenarioResult,
    generate_scenarios,
)
from ids.scenarios.scoring import ScenarioScore, score_detections

__all__ = [
    "EXPLOIT_SID",
    "RULES_FILE",
    "SCENARIOS",
    "ScenarioResult",
    "ScenarioScore",
    "generate_scenarios",
    "score_detections",
]
