"""The public API of policies is exactly this list (like httpx's exported-members test)."""

from __future__ import annotations

import policies

EXPECTED = {
    "ATTESTATION_STATUSES", "CLASSIFICATIONS", "DEFAULT_DENY_REASON", "NAMESPACE",
    "CaseResult", "CedarEngine", "CompiledEngine", "Decision", "Entity", "EntityUid", "Exclusion",
    "PlacementFilter", "PlacementOutcome", "PlacementResult", "PolicyCase", "PolicyCaseError",
    "PolicyEngine", "PolicyError", "PolicyFileTooLargeError", "PolicyInfo", "PolicyLimits",
    "PolicyLoadError", "PolicyProblem", "PolicyRequestError", "PolicySet", "PolicyStore",
    "PolicySwap", "PolicyVersionMismatchError", "ReplayMismatchError", "Request", "admin",
    "alert", "default_policy_dir", "load_cases", "load_default_policy_set", "load_policy_set",
    "node", "operator", "permille_ceil", "permille_floor", "place", "placement_request",
    "policy_set_from_export", "policy_set_from_sources", "policy_set_resource",
    "provenance_log", "regulator", "replay", "request", "run_cases", "run_policy_tests",
    "security_analyst", "service", "task", "tenant", "uid",
}  # fmt: skip


def test_all_is_pinned() -> None:
    assert set(policies.__all__) == EXPECTED
    assert len(policies.__all__) == len(EXPECTED)


def test_every_exported_name_resolves() -> None:
    for name in policies.__all__:
        assert getattr(policies, name) is not None, name


def test_errors_share_one_root() -> None:
    for name in policies.__all__:
        obj = getattr(policies, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, policies.PolicyError), name


def test_engines_satisfy_protocol(engine: policies.CedarEngine) -> None:
    assert isinstance(engine, policies.PolicyEngine)
    assert isinstance(policies.CompiledEngine(engine.policy_set), policies.PolicyEngine)
