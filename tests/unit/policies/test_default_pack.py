"""The default pack: valid, every policy annotated, and its invariant cases all pass."""

from __future__ import annotations

import pytest

from policies import (
    CaseResult,
    PolicySet,
    default_policy_dir,
    load_cases,
    run_cases,
    run_policy_tests,
)


def _all_cases() -> list[tuple[str, str]]:
    cases_dir = default_policy_dir() / "cases"
    return [(c.file, c.name) for f in sorted(cases_dir.glob("*.json")) for c in load_cases(f)]


@pytest.fixture(scope="module")
def results() -> dict[tuple[str, str], CaseResult]:
    return {(r.file, r.name): r for r in run_policy_tests(default_policy_dir())}


def test_every_policy_has_id_and_reason(default_set: PolicySet) -> None:
    assert len(default_set.policies) >= 30
    for p in default_set.policies:
        assert p.id and p.reason and p.line > 0 and p.file.endswith(".cedar")
    assert len({p.id for p in default_set.policies}) == len(default_set.policies)


def test_hard_rules_are_forbids(default_set: PolicySet) -> None:
    hard = [
        "placement.secret.trust", "placement.secret.uncertainty", "placement.secret.attestation",
        "placement.secret.region", "placement.data-residency", "placement.node-revoked",
        "placement.node-quarantined", "placement.node-unattested", "tenant.others-tasks",
        "operator.others-nodes", "regulator.write-nothing", "alerts.analysts-only",
        "policy.admins-only", "node.revoke-admins-only", "node.unfit-receives-nothing",
    ]  # fmt: skip
    for policy_id in hard:
        assert default_set.by_id[policy_id].effect == "forbid", policy_id


def test_case_count(results: dict[tuple[str, str], CaseResult]) -> None:
    assert len(results) >= 50


@pytest.mark.parametrize(("file", "name"), _all_cases())
def test_case(results: dict[tuple[str, str], CaseResult], file: str, name: str) -> None:
    result = results[(file, name)]
    assert result.passed, result.problems


def test_a_wrong_expectation_fails(default_set: PolicySet) -> None:
    case = load_cases(default_policy_dir() / "cases" / "api.json")[1]  # tenant A reads B's task
    flipped = type(case)(case.file, case.name, case.request, "allow", case.policy_ids)
    (result,) = run_cases(default_set, [flipped])
    assert not result.passed
    assert "expected allow, got deny" in result.problems[0]
