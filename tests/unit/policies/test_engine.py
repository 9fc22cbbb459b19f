"""CedarEngine decisions: reasons, ids, versions, caching, batching, and failing closed."""

from __future__ import annotations

from dataclasses import replace

import cedarpy
import pytest

from policies import (
    DEFAULT_DENY_REASON,
    CedarEngine,
    Decision,
    Entity,
    EntityUid,
    PolicySet,
    Request,
    default_policy_dir,
    node,
    placement_request,
    policy_set_from_sources,
    regulator,
    request,
    task,
    tenant,
)

SCHEMA = (default_policy_dir() / "cntrust.cedarschema.json").read_text()


def _good_node(node_id: str = "n1", **changes: object) -> Entity:
    kwargs: dict[str, object] = {
        "region": "eu",
        "operator_id": "o1",
        "trust": 0.9,
        "uncertainty": 0.1,
        "attestation_status": "affirming",
        "attestation_age_s": 60,
    }
    kwargs.update(changes)
    return node(node_id, **kwargs)  # type: ignore[arg-type]


SECRET = task("t1", tenant_id="a", classification="secret", data_region="eu")


def test_allow_names_permit_and_reason(engine: CedarEngine, default_set: PolicySet) -> None:
    d = engine.decide(placement_request(SECRET, _good_node()))
    assert d.allowed and d.effect == "allow"
    assert d.policy_ids == ("placement.permit",)
    assert d.reasons == (default_set.by_id["placement.permit"].reason,)
    assert d.errors == () and d.policy_set_version == default_set.version


def test_deny_names_every_forbid_sorted(engine: CedarEngine) -> None:
    d = engine.decide(placement_request(SECRET, _good_node(trust=0.5, region="us")))
    assert not d.allowed
    assert d.policy_ids == (
        "placement.data-residency",
        "placement.secret.region",
        "placement.secret.trust",
    )
    assert "secret tasks run only on nodes with trust >= 0.800" in d.reasons


def test_default_deny_has_a_reason(engine: CedarEngine) -> None:
    d = engine.decide(
        request(
            regulator("r"),
            "read_alerts",
            Entity(EntityUid("Cntrust::Alert", "a"), {"severity": "low"}),
        )
    )
    assert not d.allowed and d.policy_ids == () and d.reasons == (DEFAULT_DENY_REASON,)


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda a: {k: v for k, v in a.items() if k != "revoked"}, "revoked"),
        (lambda a: {**a, "trust_permille": "900"}, "trust_permille"),
        (lambda a: {**a, "revoked": 0}, "revoked"),
        (lambda a: {**a, "colour": "red"}, "colour"),
    ],
    ids=["missing", "mistyped-long", "mistyped-bool", "undeclared"],
)
def test_bad_attributes_fail_closed(engine: CedarEngine, mutate: object, needle: str) -> None:
    good = _good_node()
    bad = replace(good, attrs=mutate(dict(good.attrs)))  # type: ignore[operator]
    d = engine.decide(placement_request(task("t", tenant_id="a", classification="public"), bad))
    assert not d.allowed
    assert d.reasons[0].startswith("request refused: entities:")
    assert needle in d.reasons[0]


def test_unknown_action_fails_closed(engine: CedarEngine) -> None:
    d = engine.decide(request(tenant("a"), "delete_everything", SECRET))
    assert not d.allowed and "delete_everything" in d.reasons[0]


def test_wrong_principal_type_fails_closed(engine: CedarEngine) -> None:
    d = engine.decide(request(tenant("a"), "place_task", _good_node()))
    assert not d.allowed and "principal type" in d.reasons[0]


def test_unknown_entity_type_and_context_fail_closed(engine: CedarEngine) -> None:
    stranger = Entity(EntityUid("Cntrust::Martian", "m"))
    node_uid = EntityUid("Cntrust::Node", "n1")
    d = engine.decide(
        Request(SECRET.uid, "place_task", node_uid, {}, (SECRET, _good_node(), stranger))
    )
    assert not d.allowed and "Martian" in d.reasons[0]
    d = engine.decide(request(SECRET, "place_task", _good_node(), context={"urgent": True}))
    assert not d.allowed and "urgent" in d.reasons[0]


def test_float_value_fails_closed_without_raising(engine: CedarEngine) -> None:
    bad = replace(_good_node(), attrs={**_good_node().attrs, "trust_permille": 0.9})
    d = engine.decide(placement_request(SECRET, bad))
    assert not d.allowed and "Cedar has no floats" in d.reasons[0]


def test_evaluation_error_never_allows() -> None:
    # A second permit errors at run time (overflow); Cedar alone would still say Allow.
    text = """
@id("always") @reason("always")
permit (principal is Cntrust::Task, action == Cntrust::Action::"place_task", resource);
@id("overflow") @reason("overflows")
permit (principal is Cntrust::Task, action == Cntrust::Action::"place_task",
        resource is Cntrust::Node)
when { resource.trust_permille * 9223372036854775807 > 0 };
"""
    engine = CedarEngine(policy_set_from_sources(SCHEMA, [("o.cedar", text)]))
    d = engine.decide(placement_request(SECRET, _good_node()))
    assert not d.allowed
    assert d.reasons[0].startswith("fail closed:") and "`overflow`" in d.reasons[0]


def test_engine_exception_is_a_deny(engine: CedarEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("engine crashed")

    monkeypatch.setattr(cedarpy, "is_authorized", boom)
    d = engine.decide(placement_request(SECRET, _good_node()))
    assert not d.allowed and d.reasons == ("policy engine error: engine crashed",)


def test_cache_returns_identical_decisions(default_set: PolicySet) -> None:
    engine = CedarEngine(default_set, cache_size=2)
    req = placement_request(SECRET, _good_node())
    first = engine.decide(req)
    assert engine.decide(req) is first
    assert engine.cache_hits == 1
    other = placement_request(SECRET, _good_node(trust=0.1))
    assert engine.decide(other).allowed is False  # same uids, other attributes: not a hit
    assert engine.cache_hits == 1


def test_cache_can_be_disabled(default_set: PolicySet) -> None:
    engine = CedarEngine(default_set, cache_size=0)
    req = placement_request(SECRET, _good_node())
    assert engine.decide(req) == engine.decide(req)
    assert engine.cache_hits == 0


def test_batch_equals_single(engine: CedarEngine, default_set: PolicySet) -> None:
    nodes = [_good_node(f"n{i}", trust=i / 10) for i in range(11)]
    requests = [placement_request(SECRET, n) for n in nodes]
    batch = engine.decide_batch(requests)
    single = [CedarEngine(default_set, cache_size=0).decide(r) for r in requests]
    assert batch == single
    assert [d.allowed for d in batch] == [False] * 8 + [True] * 3


def test_batch_with_conflicting_entities_falls_back(engine: CedarEngine) -> None:
    a = placement_request(SECRET, _good_node("n1", trust=0.9))
    b = placement_request(SECRET, _good_node("n1", trust=0.1))
    assert [d.allowed for d in engine.decide_batch([a, b])] == [True, False]


def test_batch_with_one_bad_request_decides_each(engine: CedarEngine) -> None:
    good = placement_request(SECRET, _good_node("n1"))
    bad = request(tenant("a"), "nope", SECRET)
    decisions = engine.decide_batch([good, bad])
    assert decisions[0].allowed and not decisions[1].allowed


def test_request_and_decision_round_trip(engine: CedarEngine) -> None:
    req = placement_request(SECRET, _good_node())
    assert Request.from_dict(req.to_dict()) == req
    d = engine.decide(req)
    assert Decision.from_dict(d.to_dict()) == d


def test_principal_and_resource_entities_must_be_supplied(engine: CedarEngine) -> None:
    admin_uid = EntityUid("Cntrust::Admin", "adm")
    req = Request(admin_uid, "read_task", SECRET.uid, {}, (Entity(admin_uid),))
    d = engine.decide(req)
    assert not d.allowed and d.reasons[0].startswith("request refused: resource:")
    assert engine.decide(replace(req, entities=(Entity(admin_uid), SECRET))).allowed


def test_unqualified_uids_are_qualified_with_the_namespace(engine: CedarEngine) -> None:
    a = tenant("a")
    t = task("t", tenant_id="a", classification="public")
    req = Request(EntityUid("Tenant", "a"), "read_task", EntityUid("Task", "t"), {}, (a, t))
    d = engine.decide(req)
    assert d.allowed and d.policy_ids == ("tenant.own-tasks",)
