"""Placement filter: compiled from the policy set, agrees with Cedar, explains exclusions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from policies import (
    DEFAULT_DENY_REASON,
    CedarEngine,
    Entity,
    EntityUid,
    PlacementFilter,
    PolicySet,
    default_policy_dir,
    node,
    place,
    placement_request,
    policy_set_from_sources,
    request,
    task,
)

SCHEMA = (default_policy_dir() / "cntrust.cedarschema.json").read_text()


def _node(node_id: str, **changes: object) -> Entity:
    kwargs: dict[str, object] = {
        "region": "eu",
        "operator_id": "o1",
        "trust": 0.9,
        "uncertainty": 0.1,
        "attestation_status": "affirming",
        "attestation_age_s": 60,
        "accelerators": ("gpu",),
    }
    kwargs.update(changes)
    return node(node_id, **kwargs)  # type: ignore[arg-type]


SECRET = task("t1", tenant_id="a", classification="secret", data_region="eu")

NODES = [
    _node("good"),
    _node("low", trust=0.5),
    _node("us", region="us"),
    _node("stale", attestation_age_s=7200),
    _node("revoked", revoked=True),
    _node("unattested", attestation_status="none", attestation_age_s=None),
    _node("good2", trust=0.95),
]


def test_filter_splits_nodes_with_reasons(engine: CedarEngine) -> None:
    result = engine.filter_nodes(SECRET, NODES)
    assert result.method == "compiled"
    assert result.allowed == ("good", "good2")
    assert result.excluded["low"].policy_ids == ("placement.secret.trust",)
    assert result.excluded["us"].policy_ids == (
        "placement.data-residency",
        "placement.secret.region",
    )
    assert result.excluded["stale"].policy_ids == ("placement.secret.attestation",)
    assert "revoked nodes receive nothing" in result.excluded["revoked"].reasons
    assert "placement.node-unattested" in result.excluded["unattested"].policy_ids
    assert result.policy_set_version == engine.policy_set_version


def test_filter_agrees_with_cedar_on_every_node(engine: CedarEngine) -> None:
    result = engine.filter_nodes(SECRET, NODES)
    for n in NODES:
        d = engine.decide(placement_request(SECRET, n))
        assert d.allowed == (n.uid.id in result.allowed), n.uid.id
        if not d.allowed:
            assert d.policy_ids == result.excluded[n.uid.id].policy_ids


def test_malformed_node_is_excluded_not_allowed(engine: CedarEngine) -> None:
    good = _node("x")
    bad = replace(good, attrs={k: v for k, v in good.attrs.items() if k != "quarantined"})
    public = task("t2", tenant_id="a", classification="public")
    result = engine.filter_nodes(public, [bad, _node("ok")])
    assert result.allowed == ("ok",)
    assert "quarantined" in result.excluded["x"].reasons[0]
    assert result.excluded["x"].reasons[0].startswith("request refused:")


def test_malformed_task_excludes_every_node(engine: CedarEngine) -> None:
    bad = replace(SECRET, attrs={**SECRET.attrs, "classification": 3})
    result = engine.filter_nodes(bad, NODES)
    assert result.allowed == ()
    assert all(e.reasons[0].startswith("request refused:") for e in result.excluded.values())


def test_wrong_resource_type_is_excluded(engine: CedarEngine) -> None:
    not_a_node = Entity(EntityUid("Cntrust::Log", "log"))
    result = engine.filter_nodes(SECRET, [not_a_node])
    assert result.allowed == () and "resource type" in result.excluded["log"].reasons[0]


def test_unqualified_types_are_accepted(engine: CedarEngine) -> None:
    short = replace(_node("s"), uid=EntityUid("Node", "s"))
    assert engine.filter_nodes(SECRET, [short]).allowed == ("s",)


def test_place_picks_first_allowed_and_decides_fully(engine: CedarEngine) -> None:
    outcome = place(engine, SECRET, NODES[1:])
    assert outcome.node_id == "good2"
    assert outcome.decision is not None and outcome.decision.allowed
    assert outcome.decision.policy_ids == ("placement.permit",)
    assert outcome.request is not None and outcome.request.resource.id == "good2"
    assert outcome.disagreements == ()


def test_place_with_no_candidate(engine: CedarEngine) -> None:
    outcome = place(engine, SECRET, [_node("low", trust=0.1)])
    assert outcome.node_id is None and outcome.decision is None
    assert outcome.filtered.excluded["low"].policy_ids == ("placement.secret.trust",)


def test_no_permit_means_default_deny() -> None:
    text = """
@id("only.forbid") @reason("never on revoked nodes")
forbid (principal, action == Cntrust::Action::"place_task", resource is Cntrust::Node)
when { resource.revoked };
"""
    ps = policy_set_from_sources(SCHEMA, [("f.cedar", text)])
    result = CedarEngine(ps).filter_nodes(SECRET, [_node("a")])
    assert result.excluded["a"].reasons == (DEFAULT_DENY_REASON,)


def test_runtime_error_in_compiled_policy_fails_closed() -> None:
    text = """
@id("permit") @reason("ok")
permit (principal is Cntrust::Task, action == Cntrust::Action::"place_task", resource);
@id("overflow") @reason("overflows")
forbid (principal, action == Cntrust::Action::"place_task", resource is Cntrust::Node)
when { resource.trust_permille * 9223372036854775807 < 0 };
"""
    ps = policy_set_from_sources(SCHEMA, [("o.cedar", text)])
    engine = CedarEngine(ps)
    result = engine.filter_nodes(SECRET, [_node("a")])
    assert result.method == "compiled" and result.allowed == ()
    assert "overflow" in result.excluded["a"].reasons[0]
    assert not engine.decide(placement_request(SECRET, _node("a"))).allowed


def test_unmodelled_construct_falls_back_to_cedar(default_set: PolicySet) -> None:
    text = """
@id("permit") @reason("ok")
permit (principal is Cntrust::Task, action == Cntrust::Action::"place_task", resource);
@id("loopback") @reason("never when the loopback check says so")
forbid (principal, action == Cntrust::Action::"place_task", resource is Cntrust::Node)
when { ip("127.0.0.1").isLoopback() && resource.revoked };
"""
    ps = policy_set_from_sources(SCHEMA, [("ip.cedar", text)])
    flt = PlacementFilter(ps, fallback=CedarEngine(ps))
    assert flt.unsupported is not None and "operator ip" in flt.unsupported
    result = flt.filter_nodes(SECRET, [_node("a"), _node("b", revoked=True)])
    assert result.method == "cedar"
    assert result.allowed == ("a",)
    assert result.excluded["b"].policy_ids == ("loopback",)


@pytest.mark.parametrize("action", ["read_task", "claim_task", "change_policy"])
def test_compiler_handles_every_default_action(default_set: PolicySet, action: str) -> None:
    from policies._compiler import compile_action

    assert compile_action(default_set, action)


def test_unsupported_without_fallback_excludes_all() -> None:
    text = """
@id("permit") @reason("ok")
permit (principal is Cntrust::Task, action == Cntrust::Action::"place_task", resource)
when { ip("127.0.0.1").isLoopback() };
"""
    flt = PlacementFilter(policy_set_from_sources(SCHEMA, [("ip.cedar", text)]))
    result = flt.filter_nodes(SECRET, [_node("a")])
    assert result.allowed == () and result.excluded["a"].reasons[0].startswith("fail closed:")


def test_node_wins_over_an_extra_entity_with_its_uid(engine: CedarEngine) -> None:
    n = _node("a")
    other = replace(n, attrs={**n.attrs, "region": "us"})
    result = engine.filter_nodes(SECRET, [n], entities=[other])
    assert result.allowed == ("a",)
    assert engine.decide(request(SECRET, "place_task", n, entities=[other])).allowed
