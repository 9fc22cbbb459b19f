"""PolicyFilter: the place_task rules as a placement filter, node facts from labels."""

from __future__ import annotations

from typing import Any

import pytest

from policies import PolicyStore, load_default_policy_set, place
from scheduler.placement import FitFilter, NodeView, PlacementPipeline, TaskRequest
from scheduler.policy_placement import PolicyFilter, node_entity_of, task_entity_of

FIT = {"trust": "0.9", "uncertainty": "0.1", "attestation_status": "affirming"}
FRESH = {**FIT, "attestation_age_s": "600"}


@pytest.fixture(scope="module")
def store() -> PolicyStore:
    return PolicyStore(load_default_policy_set())


def node(node_id: str, labels: dict[str, Any], **kw: Any) -> NodeView:
    base: dict[str, Any] = dict(
        region="eu", operator="op", cpu_cores=4.0, memory_mb=4096, accelerators=(),
        cpu_used=0.0, memory_used_mb=0, gpu_used=0, active_tasks=0,
    )  # fmt: skip
    base.update(kw)
    return NodeView(id=node_id, attributes=dict(labels), **base)


def task(**kw: Any) -> TaskRequest:
    base: dict[str, Any] = dict(
        id="t", tenant="a", cpu=1.0, memory_mb=128, gpu=0, accelerator_kind=None,
        classification="secret", region="eu",
    )  # fmt: skip
    base.update(kw)
    return TaskRequest(**base)


@pytest.mark.parametrize(
    ("labels", "kw", "policy_id"),
    [
        ({**FRESH, "trust": "0.79"}, {}, "placement.secret.trust"),
        ({**FRESH, "uncertainty": "0.25"}, {}, "placement.secret.uncertainty"),
        ({**FIT, "attestation_age_s": "3600"}, {}, "placement.secret.attestation"),
        (FRESH, {"region": "us"}, "placement.data-residency"),
        ({**FRESH, "quarantined": "true"}, {}, "placement.node-quarantined"),
        ({**FRESH, "revoked": "true"}, {}, "placement.node-revoked"),
        (FIT, {}, "placement.node-unattested"),
        ({}, {}, "placement.node-unattested"),
    ],
)
def test_unfit_nodes_are_excluded_naming_the_rule(store, labels, kw, policy_id):
    reason = PolicyFilter(store)(task(), node("n", labels, **kw))
    assert reason is not None and policy_id in reason


def test_fit_node_is_kept_and_pipeline_reports_exclusions(store):
    pipeline = PlacementPipeline(filters=[FitFilter(), PolicyFilter(store)])
    nodes = [node("low", {**FRESH, "trust": "0.5"}), node("good", FRESH), node("bare", {})]
    result = pipeline.place(task(), nodes)
    assert result.node_id == "good"
    stages = {(e.node_id, e.stage) for e in result.exclusions}
    assert stages == {("low", "policy"), ("bare", "policy")}
    assert "placement.secret.trust: secret tasks run only on nodes with trust >= 0.800" in {
        e.reason for e in result.exclusions
    }


def test_public_task_needs_attestation_but_not_high_trust(store):
    labels = {"trust": "0.1", "uncertainty": "0.9", "attestation_status": "warning"}
    public = task(classification="public", region=None)
    assert PolicyFilter(store)(public, node("n", {**labels, "attestation_age_s": "60"})) is None


def test_accelerators_must_cover_the_task(store):
    gpu_task = task(classification="public", region=None, gpu=1)
    without = node("n", FRESH)
    with_gpu = node("g", FRESH, accelerators=(("gpu", 2),))
    assert "placement.accelerators" in (PolicyFilter(store)(gpu_task, without) or "")
    assert PolicyFilter(store)(gpu_task, with_gpu) is None


def test_malformed_facts_exclude_the_node(store):
    reason = PolicyFilter(store)(task(), node("n", {**FRESH, "attestation_age_s": "-5"}))
    assert reason is not None and "labels.attestation_age_s" in reason


def test_filter_agrees_with_a_full_cedar_decision(store):
    """The filter's answer equals ``policies.place``'s full decision for the chosen node."""
    nodes = [node("a", {**FRESH, "trust": "0.7"}), node("b", FRESH)]
    outcome = place(store.engine, task_entity_of(task()), [node_entity_of(n) for n in nodes])
    assert outcome.node_id == "b" and outcome.decision is not None
    assert outcome.decision.allowed and outcome.decision.policy_ids == ("placement.permit",)
    kept = [n.id for n in nodes if PolicyFilter(store)(task(), n) is None]
    assert kept == ["b"]
