"""Policy test cases: request + entities -> expected decision and deciding policy ids.

A case file is JSON in ``<policy dir>/cases/*.json``::

    {"entities": [<Cedar JSON entity>, ...],          # shared by every case in the file
     "cases": [{"name": "...", "principal": {"type": "Tenant", "id": "a"},
                "action": "read_task", "resource": {"type": "Task", "id": "t1"},
                "context": {}, "entities": [...],      # optional, added to the shared ones
                "expect": "allow" | "deny",
                "policy_ids": ["tenant.own-tasks"]}]}  # optional: exact deciding ids

Entity types may omit the namespace. Every case is also decided by ``CompiledEngine``
and ``place_task`` cases by the compiled placement filter; both must agree with Cedar.
Files are size-checked first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies._compiled_engine import CompiledEngine
from policies._engine import CedarEngine
from policies._model import Decision, Entity, Request
from policies._placement import PLACE_ACTION, PlacementFilter
from policies._policy_set import PolicySet, load_policy_set
from policies.errors import PolicyCaseError, PolicyFileTooLargeError, PolicyRequestError

MAX_CASE_FILE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class CaseResult:
    """One case's outcome; ``problems`` says what differed (empty when passed)."""

    file: str
    name: str
    expect: str
    expected_policy_ids: tuple[str, ...] | None
    decision: Decision
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class PolicyCase:
    """A parsed case: its request and expectations."""

    file: str
    name: str
    request: Request
    expect: str
    policy_ids: tuple[str, ...] | None


def load_cases(path: str | Path, *, max_bytes: int = MAX_CASE_FILE_BYTES) -> list[PolicyCase]:
    """Parse one case file. Raises PolicyFileTooLargeError or PolicyCaseError."""
    file = Path(path)
    size = file.stat().st_size
    if size > max_bytes:
        raise PolicyFileTooLargeError(str(file), size, max_bytes)
    try:
        doc = json.loads(file.read_bytes()[: max_bytes + 1])
    except (ValueError, RecursionError) as exc:
        raise PolicyCaseError(str(file), f"not JSON: {exc!r}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list):
        raise PolicyCaseError(str(file), 'expected an object with a "cases" list')
    try:
        shared = [
            Entity.from_dict(e, f"entities[{i}]") for i, e in enumerate(doc.get("entities", []))
        ]
    except PolicyRequestError as exc:
        raise PolicyCaseError(str(file), str(exc)) from exc
    return [_parse_case(file.name, i, raw, shared) for i, raw in enumerate(doc["cases"])]


def _parse_case(name: str, index: int, raw: Any, shared: Sequence[Entity]) -> PolicyCase:
    where = f"{name} cases[{index}]"
    if not isinstance(raw, dict):
        raise PolicyCaseError(where, "expected an object")
    case_name = raw.get("name") or f"case {index}"
    if raw.get("expect") not in ("allow", "deny"):
        raise PolicyCaseError(where, 'expect must be "allow" or "deny"')
    ids = raw.get("policy_ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise PolicyCaseError(where, "policy_ids must be a list of strings")
    try:
        own = [
            Entity.from_dict(e, f"{where}.entities[{i}]")
            for i, e in enumerate(raw.get("entities", []))
        ]
        by_uid = {e.uid: e for e in (*shared, *own)}
        req = Request.from_dict({**raw, "entities": []})
    except PolicyRequestError as exc:
        raise PolicyCaseError(where, str(exc)) from exc
    req = Request(req.principal, req.action, req.resource, req.context, tuple(by_uid.values()))
    return PolicyCase(name, str(case_name), req, raw["expect"], None if ids is None else tuple(ids))


def run_cases(policy_set: PolicySet, cases: Sequence[PolicyCase]) -> list[CaseResult]:
    """Decide every case (uncached) and compare with its expectations. Never raises."""
    engine = CedarEngine(policy_set, cache_size=0)
    compiled = CompiledEngine(policy_set, reference=engine)
    placement = PlacementFilter(policy_set, fallback=engine)
    results: list[CaseResult] = []
    for case in cases:
        decision = engine.decide(case.request)
        problems: list[str] = []
        if decision.effect != case.expect:
            problems.append(f"expected {case.expect}, got {decision.effect}")
        if case.policy_ids is not None and set(case.policy_ids) != set(decision.policy_ids):
            problems.append(
                f"expected policy ids {sorted(case.policy_ids)}, got {sorted(decision.policy_ids)}"
            )
        fast = compiled.decide(case.request)
        if (fast.allowed, set(fast.policy_ids)) != (decision.allowed, set(decision.policy_ids)):
            problems.append(
                f"compiled engine disagrees with Cedar: {fast.effect} {list(fast.policy_ids)}"
            )
        if case.request.action == PLACE_ACTION:
            problems.extend(_check_filter(placement, case.request, decision))
        results.append(
            CaseResult(
                case.file, case.name, case.expect, case.policy_ids, decision, tuple(problems)
            )
        )
    return results


def _check_filter(placement: PlacementFilter, req: Request, decision: Decision) -> list[str]:
    by_uid = {e.uid: e for e in req.entities}
    task, node = by_uid.get(req.principal), by_uid.get(req.resource)
    if task is None or node is None:
        return []
    others = [e for e in req.entities if e.uid not in (req.principal, req.resource)]
    result = placement.filter_nodes(task, [node], entities=others)
    allowed = node.uid.id in result.allowed
    ids = () if allowed else result.excluded[node.uid.id].policy_ids
    if allowed != decision.allowed or (not allowed and set(ids) != set(decision.policy_ids)):
        return [
            f"placement filter disagrees with Cedar: {'allow' if allowed else 'deny'} {list(ids)}"
        ]
    return []


def run_policy_tests(
    directory: str | Path, *, policy_set: PolicySet | None = None
) -> list[CaseResult]:
    """Load ``directory``'s set (unless given) and run every ``cases/*.json`` file.

    Raises PolicyLoadError, PolicyFileTooLargeError or PolicyCaseError.
    """
    root = Path(directory)
    active = policy_set if policy_set is not None else load_policy_set(root)
    case_dir = root / "cases"
    files = sorted(case_dir.glob("*.json")) if case_dir.is_dir() else []
    if not files:
        raise PolicyCaseError(str(case_dir), "no case files (cases/*.json)")
    cases = [case for f in files for case in load_cases(f)]
    return run_cases(active, cases)
