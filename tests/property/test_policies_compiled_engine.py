"""Property: CompiledEngine decides every API request as CedarEngine does.

Random principals, resources, actions (including unknown ones and action groups), contexts
and entity sets, some malformed; allowed-ness and deciding policy ids must be equal.
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
    CompiledEngine,
    Entity,
    EntityUid,
    Request,
    default_policy_dir,
    load_default_policy_set,
    policy_set_from_sources,
)

NS = "Cntrust"
EXOTIC = Path(__file__).resolve().parent / "policies_exotic.cedar"
SCHEMA = (default_policy_dir() / "cntrust.cedarschema.json").read_text()
ACTIONS = [*sorted(load_default_policy_set().actions), "bogus", ""]
CLASSES = st.sampled_from(["public", "internal", "secret", "bogus"])
ACCELS = st.frozensets(st.sampled_from(["gpu", "fpga"]))


def _u(kind: str, ident: str) -> EntityUid:
    return EntityUid(f"{NS}::{kind}", ident)


@st.composite
def entities(draw: st.DrawFn) -> Entity:
    kind = draw(
        st.sampled_from(
            ["Tenant", "Operator", "SecurityAnalyst", "Regulator", "Admin", "Node", "Task",
             "Alert", "Log", "PolicySet", "Service"]
        )
    )  # fmt: skip
    ident = draw(st.sampled_from(["a", "b"]))
    attrs: dict[str, Any]
    if kind == "Tenant":
        attrs = {"allowed_classifications": draw(st.frozensets(CLASSES))}
    elif kind == "Node":
        attrs = {
            "region": draw(st.sampled_from(["eu", "us"])),
            "operator": _u("Operator", draw(st.sampled_from(["a", "b"]))),
            "trust_permille": draw(st.integers(0, 1000)),
            "uncertainty_permille": draw(st.integers(0, 1000)),
            "attestation_status": draw(st.sampled_from(["affirming", "warning", "none"])),
            "accelerators": draw(ACCELS),
            "revoked": draw(st.booleans()),
            "quarantined": draw(st.booleans()),
        }
        if draw(st.booleans()):
            attrs["attestation_age_s"] = draw(st.integers(0, 100_000))
    elif kind == "Task":
        attrs = {
            "tenant": _u("Tenant", draw(st.sampled_from(["a", "b"]))),
            "classification": draw(CLASSES),
            "required_accelerators": draw(ACCELS),
        }
        if draw(st.booleans()):
            attrs["data_region"] = draw(st.sampled_from(["eu", "us"]))
        if draw(st.booleans()):
            attrs["assigned_node"] = _u("Node", draw(st.sampled_from(["a", "b"])))
    elif kind == "Alert":
        attrs = {"severity": "high"}
    else:
        attrs = {}
    if attrs and draw(st.integers(0, 9)) == 0:  # sometimes malformed
        key = draw(st.sampled_from(sorted(attrs)))
        attrs = draw(
            st.sampled_from([{k: v for k, v in attrs.items() if k != key}, {**attrs, key: 7}])
        )
    if draw(st.integers(0, 19)) == 0:
        attrs = {**attrs, "undeclared": True}
    return Entity(_u(kind, ident), attrs)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    principal = draw(entities())
    resource = draw(entities())
    others = draw(st.lists(entities(), max_size=3))
    pool = [principal, resource, *others]
    if draw(st.integers(0, 9)) == 0:
        pool = pool[1:]  # principal entity not supplied
    # Cedar refuses non-identical duplicates; keep the first of each uid most of the time.
    if draw(st.integers(0, 4)):
        unique: dict[EntityUid, Entity] = {}
        for e in pool:
            unique.setdefault(e.uid, e)
        pool = list(unique.values())
    context = draw(st.sampled_from([{}, {}, {}, {"x": 1}]))
    action = draw(st.sampled_from(ACTIONS))
    short = draw(st.integers(0, 9)) == 0  # unqualified uids are accepted too
    p_uid = (
        replace(principal.uid, type=principal.uid.type.split("::")[-1]) if short else principal.uid
    )
    return Request(p_uid, action, resource.uid, context, tuple(pool))


@pytest.fixture(scope="module")
def engines() -> list[tuple[CedarEngine, CompiledEngine]]:
    default = load_default_policy_set()
    exotic = policy_set_from_sources(SCHEMA, [("exotic.cedar", EXOTIC.read_text())])
    pairs = []
    for ps in (default, exotic):
        cedar = CedarEngine(ps, cache_size=0)
        pairs.append((cedar, CompiledEngine(ps, reference=cedar)))
    return pairs


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(req=requests(), which=st.integers(0, 1))
def test_compiled_engine_equals_cedar(
    engines: list[tuple[CedarEngine, CompiledEngine]], req: Request, which: int
) -> None:
    cedar, compiled = engines[which]
    expected = cedar.decide(req)
    got = compiled.decide(req)
    assert got.allowed == expected.allowed, (req, expected, got)
    assert got.policy_ids == expected.policy_ids, (req, expected, got)
    if got.allowed or got.policy_ids:
        assert got.reasons[: len(got.policy_ids)] == expected.reasons[: len(expected.policy_ids)]
