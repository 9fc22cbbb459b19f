"""CompiledEngine: same answers as Cedar on the API, fails closed, falls back when needed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from policies import (
    DEFAULT_DENY_REASON,
    CedarEngine,
    CompiledEngine,
    Entity,
    EntityUid,
    PolicySet,
    Request,
    admin,
    default_policy_dir,
    policy_set_from_sources,
    policy_set_resource,
    regulator,
    request,
    task,
    tenant,
)

SCHEMA = (default_policy_dir() / "cntrust.cedarschema.json").read_text()
T_A = task("t-a", tenant_id="a", classification="public")
T_B = task("t-b", tenant_id="b", classification="public")
T_BAD = replace(T_A, attrs={**T_A.attrs, "classification": 1})
UFO = Entity(EntityUid("Cntrust::Ufo", "u"))


@pytest.fixture
def compiled(default_set: PolicySet) -> CompiledEngine:
    return CompiledEngine(default_set)


def test_allow_and_deny_with_ids_and_reasons(compiled: CompiledEngine) -> None:
    ok = compiled.decide(request(tenant("a"), "read_task", T_A))
    assert ok.allowed and ok.policy_ids == ("tenant.own-tasks",)
    assert ok.reasons == ("tenants read, cancel and see the provenance of their own tasks",)
    no = compiled.decide(request(tenant("a"), "read_task", T_B))
    assert not no.allowed and no.policy_ids == ("tenant.others-tasks",)
    both = compiled.decide(request(regulator("r"), "change_policy", policy_set_resource()))
    assert both.policy_ids == ("policy.admins-only", "regulator.write-nothing")


def test_default_deny(compiled: CompiledEngine) -> None:
    d = compiled.decide(
        request(tenant("a"), "list_nodes", Entity(EntityUid("Cntrust::Service", "s")))
    )
    assert not d.allowed and d.reasons == (DEFAULT_DENY_REASON,)


@pytest.mark.parametrize(
    ("req", "needle"),
    [
        (request(admin("x"), "delete_everything", policy_set_resource()), "does not exist"),
        (request(admin("x"), "write", policy_set_resource()), "applies to no"),
        (request(admin("x"), "place_task", policy_set_resource()), "principal"),
        (request(admin("x"), "read_task", policy_set_resource()), "resource"),
        (request(admin("x"), "read_policy", policy_set_resource(), context={"k": 1}), "context"),
        (replace(request(tenant("a"), "read_task", T_A), entities=(T_A,)), "principal"),
        (request(tenant("a"), "read_task", T_BAD), "classification"),
        (request(tenant("a"), "read_task", T_A, entities=[UFO]), "Ufo"),
    ],
    ids=["unknown-action", "action-group", "principal-type", "resource-type", "context",
         "principal-missing", "mistyped", "undeclared-type"],
)  # fmt: skip
def test_refusals_fail_closed(compiled: CompiledEngine, req: Request, needle: str) -> None:
    d = compiled.decide(req)
    assert not d.allowed and d.policy_ids == ()
    assert d.reasons[0].startswith("request refused:") and needle in d.reasons[0]
    assert not CedarEngine(compiled.policy_set, cache_size=0).decide(req).allowed


def test_conflicting_duplicates_refused_identical_accepted(compiled: CompiledEngine) -> None:
    base = request(tenant("a"), "read_task", T_A)
    assert compiled.decide(replace(base, entities=(*base.entities, T_A))).allowed
    other = replace(T_A, attrs={**T_A.attrs, "classification": "internal"})
    d = compiled.decide(replace(base, entities=(*base.entities, other)))
    assert not d.allowed and "duplicate" in d.reasons[0]


def test_unsupported_action_goes_to_cedar() -> None:
    text = """
@id("loopback") @reason("admins read policies when the loopback check passes")
permit (principal is Cntrust::Admin, action == Cntrust::Action::"read_policy", resource)
when { ip("127.0.0.1").isLoopback() };
"""
    ps = policy_set_from_sources(SCHEMA, [("ip.cedar", text)])
    d = CompiledEngine(ps).decide(request(admin("x"), "read_policy", policy_set_resource()))
    assert d.allowed and d.policy_ids == ("loopback",)


def test_evaluation_error_fails_closed() -> None:
    text = """
@id("always") @reason("always")
permit (principal is Cntrust::Admin, action == Cntrust::Action::"read_task", resource);
@id("overflow") @reason("overflow")
permit (principal is Cntrust::Admin, action == Cntrust::Action::"read_task", resource)
when { 9223372036854775807 + 1 > 0 };
"""
    ps = policy_set_from_sources(SCHEMA, [("o.cedar", text)])
    d = CompiledEngine(ps).decide(request(admin("x"), "read_task", T_A))
    assert not d.allowed and d.reasons[0].startswith("fail closed:") and "overflow" in d.reasons[0]


def test_reference_must_share_the_set(default_set: PolicySet) -> None:
    other = policy_set_from_sources(
        SCHEMA, [("x.cedar", '@id("x") @reason("x")\npermit (principal, action, resource);')]
    )
    with pytest.raises(ValueError, match="same policy set"):
        CompiledEngine(default_set, reference=CedarEngine(other))


def test_filter_nodes_delegates(compiled: CompiledEngine) -> None:
    result = compiled.filter_nodes(T_A, [])
    assert result.allowed == () and result.policy_set_version == compiled.policy_set_version


def test_batch_equals_single(compiled: CompiledEngine) -> None:
    reqs = [request(tenant("a"), "read_task", T_A), request(tenant("a"), "read_task", T_B)]
    assert compiled.decide_batch(reqs) == [compiled.decide(r) for r in reqs]
