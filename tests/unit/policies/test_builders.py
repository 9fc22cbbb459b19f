"""Builders: schema-shaped entities, cautious per-mille rounding, bad values refused."""

from __future__ import annotations

import math

import pytest

from policies import (
    EntityUid,
    PolicyRequestError,
    Request,
    node,
    permille_ceil,
    permille_floor,
    request,
    task,
    tenant,
)


@pytest.mark.parametrize(
    ("value", "floor", "ceil"),
    [(0.0, 0, 0), (1.0, 1000, 1000), (0.8, 800, 800), (0.2, 200, 200), (0.7, 700, 700),
     (0.8437, 843, 844), (0.2001, 200, 201)],
)  # fmt: skip
def test_permille_rounds_cautiously(value: float, floor: int, ceil: int) -> None:
    assert permille_floor(value) == floor and permille_ceil(value) == ceil


@pytest.mark.parametrize("value", [-0.01, 1.01, math.nan, True, "0.5"])
def test_permille_refuses_out_of_range(value: object) -> None:
    with pytest.raises(PolicyRequestError):
        permille_floor(value)  # type: ignore[arg-type]


def test_node_attributes() -> None:
    n = node("n1", region="eu", operator_id="o1", trust=0.8437, uncertainty=0.2001,
             attestation_status="affirming", attestation_age_s=5, accelerators=["gpu"])  # fmt: skip
    assert n.uid == EntityUid("Cntrust::Node", "n1")
    assert n.attrs["trust_permille"] == 843 and n.attrs["uncertainty_permille"] == 201
    assert n.attrs["operator"] == EntityUid("Cntrust::Operator", "o1")
    assert n.attrs["accelerators"] == frozenset({"gpu"})
    assert n.attrs["revoked"] is False and n.attrs["quarantined"] is False


def test_node_without_attestation_has_no_age() -> None:
    n = node("n1", region="eu", operator_id="o1", trust=0.5, uncertainty=0.5,
             attestation_status="none", attestation_age_s=None)  # fmt: skip
    assert "attestation_age_s" not in n.attrs


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"attestation_status": "great"}, "attestation_status"),
        ({"attestation_age_s": -1}, "attestation_age_s"),
        ({"region": ""}, "region"),
        ({"accelerators": "gpu"}, "accelerators"),
        ({"revoked": "no"}, "revoked"),
        ({"trust": 2}, "trust"),
    ],
)
def test_node_refuses_bad_values(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"region": "eu", "operator_id": "o", "trust": 0.5,
                               "uncertainty": 0.5, "attestation_status": "affirming",
                               "attestation_age_s": 1}  # fmt: skip
    with pytest.raises(PolicyRequestError) as info:
        node("n", **{**base, **kwargs})  # type: ignore[arg-type]
    assert info.value.field == field


def test_task_and_tenant() -> None:
    t = task("t", tenant_id="a", classification="secret", data_region="eu",
             required_accelerators=["gpu"], assigned_node="n1")  # fmt: skip
    assert t.attrs["tenant"] == EntityUid("Cntrust::Tenant", "a")
    assert t.attrs["assigned_node"] == EntityUid("Cntrust::Node", "n1")
    assert "data_region" not in task("u", tenant_id="a", classification="public").attrs
    with pytest.raises(PolicyRequestError):
        task("t", tenant_id="a", classification="SECRET")
    with pytest.raises(PolicyRequestError):
        tenant("a", allowed_classifications=["top"])


def test_request_carries_both_entities_once() -> None:
    a = tenant("a")
    t = task("t", tenant_id="a", classification="public")
    req = request(a, "read_task", t, entities=[a, t])
    assert req.entities == (a, t)
    assert request(a, "read_task", a).entities == (a,)


@pytest.mark.parametrize(
    "data",
    [None, [], {"action": "x"}, {"principal": {"type": "A"}, "action": "x", "resource": {}},
     {"principal": {"type": "A", "id": "a"}, "action": "", "resource": {"type": "B", "id": "b"}},
     {"principal": {"type": "A", "id": "a"}, "action": "x", "resource": {"type": "B", "id": "b"},
      "context": {"f": 1.5}},
     {"principal": {"type": "A", "id": "a"}, "action": "x", "resource": {"type": "B", "id": "b"},
      "entities": [{"uid": {"type": "A", "id": "a"}, "attrs": {"x": {"__extn": {}}}}]}],
)  # fmt: skip
def test_request_from_dict_refuses_malformed(data: object) -> None:
    with pytest.raises(PolicyRequestError):
        Request.from_dict(data)


def test_request_from_dict_refuses_deep_nesting() -> None:
    value: object = "x"
    for _ in range(40):
        value = [value]
    data = {"principal": {"type": "A", "id": "a"}, "action": "x",
            "resource": {"type": "B", "id": "b"}, "context": {"deep": value}}  # fmt: skip
    with pytest.raises(PolicyRequestError, match="nested deeper"):
        Request.from_dict(data)
