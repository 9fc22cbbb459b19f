"""cntrust policies: what is allowed (Cedar policies with a schema; decisions carry reasons).

Load a policy set once (validated against its schema), decide requests with a
``PolicyEngine`` (``CedarEngine``), filter many nodes for a task without one Cedar call
per node, decide API requests within a latency budget with ``CompiledEngine`` (the same
set compiled to Python, property-tested against Cedar), swap sets safely with
``PolicyStore`` and ``replay`` stored decisions.
Every decision fails closed: an error is a deny with a reason, never an allow.
"""

from policies._builders import (
    ATTESTATION_STATUSES,
    CLASSIFICATIONS,
    admin,
    alert,
    node,
    operator,
    permille_ceil,
    permille_floor,
    placement_request,
    policy_set_resource,
    provenance_log,
    regulator,
    request,
    security_analyst,
    service,
    task,
    tenant,
    uid,
)
from policies._cases import (
    CaseResult,
    PolicyCase,
    load_cases,
    run_cases,
    run_policy_tests,
)
from policies._compiled_engine import CompiledEngine
from policies._engine import DEFAULT_DENY_REASON, CedarEngine, PolicyEngine
from policies._model import NAMESPACE, Decision, Entity, EntityUid, Request
from policies._placement import (
    Exclusion,
    PlacementFilter,
    PlacementOutcome,
    PlacementResult,
    place,
)
from policies._policy_set import (
    PolicyInfo,
    PolicyLimits,
    PolicySet,
    default_policy_dir,
    load_default_policy_set,
    load_policy_set,
    policy_set_from_export,
    policy_set_from_sources,
)
from policies._replay import replay
from policies._store import PolicyStore, PolicySwap
from policies.errors import (
    PolicyCaseError,
    PolicyError,
    PolicyFileTooLargeError,
    PolicyLoadError,
    PolicyProblem,
    PolicyRequestError,
    PolicyVersionMismatchError,
    ReplayMismatchError,
)

__all__ = [
    "ATTESTATION_STATUSES",
    "CLASSIFICATIONS",
    "DEFAULT_DENY_REASON",
    "NAMESPACE",
    "CaseResult",
    "CedarEngine",
    "CompiledEngine",
    "Decision",
    "Entity",
    "EntityUid",
    "Exclusion",
    "PlacementFilter",
    "PlacementOutcome",
    "PlacementResult",
    "PolicyCase",
    "PolicyCaseError",
    "PolicyEngine",
    "PolicyError",
    "PolicyFileTooLargeError",
    "PolicyInfo",
    "PolicyLimits",
    "PolicyLoadError",
    "PolicyProblem",
    "PolicyRequestError",
    "PolicySet",
    "PolicyStore",
    "PolicySwap",
    "PolicyVersionMismatchError",
    "ReplayMismatchError",
    "Request",
    "admin",
    "alert",
    "default_policy_dir",
    "load_cases",
    "load_default_policy_set",
    "load_policy_set",
    "node",
    "operator",
    "permille_ceil",
    "permille_floor",
    "place",
    "placement_request",
    "policy_set_from_export",
    "policy_set_from_sources",
    "policy_set_resource",
    "provenance_log",
    "regulator",
    "replay",
    "request",
    "run_cases",
    "run_policy_tests",
    "security_analyst",
    "service",
    "task",
    "tenant",
    "uid",
]
