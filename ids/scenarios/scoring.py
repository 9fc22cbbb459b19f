"""Score detector output against a scenario answer key: recall and precision per scenario.

For one scenario, an alert is a true positive when it matches an expected entry (same
detection id -- ``cntrust.detection``, or ``sid:<signature_id>`` for rule alerts -- with
src_ip and dest_ip in the entry's lists, an empty list matching anything).

- recall = expected entries matched by at least one alert / expected entries
- precision = alerts that match some expected entry / alerts

A scenario with nothing expected has recall 1.0, and precision 1.0 only when it raised no
alert (a benign capture must stay quiet).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ids.layers.eve import detection_of, str_field


@dataclass(frozen=True)
class ScenarioScore:
    """Recall/precision of one scenario, with the counts behind them."""

    name: str
    recall: float
    precision: float
    expected: int
    matched_expected: int
    alerts: int
    true_positive_alerts: int
    false_positive_detections: tuple[str, ...]


def _matches(alert: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    if detection_of(alert) != entry.get("detection"):
        return False
    srcs = entry.get("src_ip") or []
    dsts = entry.get("dest_ip") or []
    if srcs and str_field(alert, "src_ip") not in srcs:
        return False
    return not dsts or str_field(alert, "dest_ip") in dsts


def score_scenario(
    name: str, alerts: Sequence[Mapping[str, Any]], expected: Sequence[Mapping[str, Any]]
) -> ScenarioScore:
    """Score one scenario's alerts against its expected entries.

    Raises `AlertFormatError` for an alert without a usable signature id.
    """
    matched = sum(1 for e in expected if any(_matches(a, e) for a in alerts))
    good = [a for a in alerts if any(_matches(a, e) for e in expected)]
    false_pos = sorted(
        {detection_of(a) for a in alerts if not any(_matches(a, e) for e in expected)}
    )
    recall = matched / len(expected) if expected else 1.0
    precision = len(good) / len(alerts) if alerts else 1.0
    return ScenarioScore(
        name=name,
        recall=recall,
        precision=precision,
        expected=len(expected),
        matched_expected=matched,
        alerts=len(alerts),
        true_positive_alerts=len(good),
        false_positive_detections=tuple(false_pos),
    )


def score_detections(
    alerts_by_scenario: Mapping[str, Sequence[Mapping[str, Any]]],
    answer_key: Mapping[str, Any],
) -> dict[str, ScenarioScore]:
    """Score every scenario of `answer_key` that has an entry in `alerts_by_scenario`
    (a scenario missing from the mapping is not scored). Returns name -> score."""
    scores: dict[str, ScenarioScore] = {}
    for entry in answer_key.get("scenarios", []):
        name = entry["name"]
        if name in alerts_by_scenario:
            scores[name] = score_scenario(name, alerts_by_scenario[name], entry["expected"])
    return scores
