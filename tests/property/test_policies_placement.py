"""Property: the compiled placement filter decides exactly as full Cedar does.

Random tasks and nodes (boundary values included, some malformed) go through
``PlacementFilter.filter_nodes`` and through ``CedarEngine.decide``; allowed-ness and the
deciding forbid ids must match. Run for the default pack and for a pack using more of
Cedar's expression language. Also: the default pack's secret-task invariant holds for every
node the filter allows.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies import (
    CedarEngine,
    Entity,
    EntityUid,
    PolicySet,
    default_policy_dir,
    load_default_policy_set,
    placement_request,
    policy_set_from_sources,
)

EXOTIC = Path(__file__).resolve().parent / "policies_exotic.cedar"
SCHEMA = (default_policy_dir() / "cntrust.cedarschema.json").read_text()

REGIONS = st.sampled_from(["eu", "us", "ap", "zz", "internal"])
PERMILLE = st.one_of(st.sampled_from([0, 199, 200, 201, 799, 800, 801, 1000]), st.integers(0, 1000))
AGE = st.one_of(
    st.none(), st.sampled_from([0, 3599, 3600, 86400, 86401, 90000]), st.integers(0, 200_000)
)
ACCELS = st.frozensets(st.sampled_from(["gpu", "fpga", "asic"]))


@st.composite
def nodes(draw: st.DrawFn) -> Entity:
    attrs: dict[str, Any] = {
        "region": draw(REGIONS),
        "operator": EntityUid("Cntrust::Operator", draw(st.sampled_from(["o1", "evil"]))),
        "trust_permille": draw(PERMILLE),
        "uncertainty_permille": draw(PERMILLE),
        "attestation_status": draw(
            st.sampled_from(["affirming", "warning", "contraindicated", "none"])
        ),
        "accelerators": draw(ACCELS),
        "revoked": draw(st.booleans()),
        "quarantined": draw(st.booleans()),
    }
    age = draw(AGE)
    if age is not None:
        attrs["attestation_age_s"] = age
    attrs = draw(_maybe_malformed(attrs))
    node_id = draw(st.sampled_from(["n", "banned", "banned2"]))
    return Entity(EntityUid("Cntrust::Node", node_id), attrs)


@st.composite
def tasks(draw: st.DrawFn) -> Entity:
    attrs: dict[str, Any] = {
        "tenant": EntityUid("Cntrust::Tenant", "a"),
        "classification": draw(st.sampled_from(["public", "internal", "secret", "bogus"])),
        "required_accelerators": draw(ACCELS),
    }
    region = draw(st.one_of(st.none(), REGIONS))
    if region is not None:
        attrs["data_region"] = region
    attrs = draw(_maybe_malformed(attrs))
    return Entity(EntityUid("Cntrust::Task", "t"), attrs)


def _maybe_malformed(attrs: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    keys = sorted(attrs)
    drop = st.sampled_from(keys).map(lambda k: {a: v for a, v in attrs.items() if a != k})
    mistype = st.tuples(st.sampled_from(keys), st.sampled_from(["1", 1, True, frozenset()])).map(
        lambda kv: {**attrs, kv[0]: kv[1]}
    )
    return st.one_of(st.just(attrs), st.just(attrs), st.just(attrs), drop, mistype)


@pytest.fixture(scope="module")
def default_engine() -> CedarEngine:
    return CedarEngine(load_default_policy_set(), cache_size=0)


@pytest.fixture(scope="module")
def exotic_engine() -> CedarEngine:
    ps: PolicySet = policy_set_from_sources(SCHEMA, [("exotic.cedar", EXOTIC.read_text())])
    return CedarEngine(ps, cache_size=0)


def _assert_equivalent(engine: CedarEngine, task: Entity, node: Entity) -> None:
    result = engine.filter_nodes(task, [node])
    assert result.method == "compiled"
    decision = engine.decide(placement_request(task, node))
    allowed = node.uid.id in result.allowed
    assert allowed == decision.allowed, (decision, result)
    if not allowed:
        assert result.excluded[node.uid.id].policy_ids == decision.policy_ids, (decision, result)


SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(task=tasks(), node=nodes())
def test_default_pack_filter_equals_cedar(
    default_engine: CedarEngine, task: Entity, node: Entity
) -> None:
    _assert_equivalent(default_engine, task, node)


@SETTINGS
@given(task=tasks(), node=nodes())
def test_exotic_pack_filter_equals_cedar(
    exotic_engine: CedarEngine, task: Entity, node: Entity
) -> None:
    _assert_equivalent(exotic_engine, task, node)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(node_list=st.lists(nodes(), min_size=1, max_size=20), region=REGIONS)
def test_no_secret_task_on_an_unfit_node(
    default_engine: CedarEngine, node_list: list[Entity], region: str
) -> None:
    secret = Entity(
        EntityUid("Cntrust::Task", "s"),
        {
            "tenant": EntityUid("Cntrust::Tenant", "a"),
            "classification": "secret",
            "data_region": region,
            "required_accelerators": frozenset(),
        },
    )
    numbered = [
        replace(n, uid=EntityUid("Cntrust::Node", f"n{i}")) for i, n in enumerate(node_list)
    ]
    result = default_engine.filter_nodes(secret, numbered)
    for n in numbered:
        if n.uid.id in result.allowed:
            a = n.attrs
            assert a["trust_permille"] >= 800 and a["uncertainty_permille"] <= 200
            assert a["attestation_status"] == "affirming" and a["attestation_age_s"] < 3600
            assert a["region"] == region
            assert a["revoked"] is False and a["quarantined"] is False
