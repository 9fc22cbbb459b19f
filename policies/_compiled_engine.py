"""``CompiledEngine``: a ``PolicyEngine`` that evaluates the policy set's compiled form.

The same validated Cedar policy set, compiled per action into Python (``_compiler``), with
requests and entities checked against the schema in Python (``_conformance``) the way
Cedar checks them. It answers like ``CedarEngine`` (same allow/deny, same deciding policy
ids, same reasons from ``@reason``; error texts may be worded differently) at a fraction
of the cost per request, for API authorization under a latency budget.

Invariants:
- Fail closed exactly like ``CedarEngine``: an unknown action, a principal, resource or
  context type the action does not accept, an entity that does not conform to the schema,
  conflicting duplicate entities, a principal or resource entity not supplied, or any
  evaluation error is a deny with a reason.
- An action whose policies use a construct the compiler does not model, or a schema type
  the checker does not model, is decided by the reference ``CedarEngine`` instead.
- Equivalence with Cedar is a property test over random requests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policies._compiler import CompiledPolicy, UnsupportedPolicyError, compile_action
from policies._conformance import EntityChecker, UnsupportedSchemaError
from policies._engine import DEFAULT_DENY_REASON, CedarEngine
from policies._model import Decision, Entity, EntityUid, Request, qualify, qualify_value
from policies._placement import PlacementResult, ancestors
from policies._policy_set import PolicySet
from policies.errors import PolicyRequestError


@dataclass(frozen=True)
class _Plan:
    """How to decide one action: accepted types, context check and compiled policies."""

    principal_types: frozenset[str]
    resource_types: frozenset[str]
    context_check: Callable[[Any], bool]
    policies: tuple[CompiledPolicy, ...]
    refusal: str | None = None


class CompiledEngine:
    """``PolicyEngine`` over the compiled policy set; ``reference`` (a ``CedarEngine`` of the
    same set, built if not given) decides what cannot be compiled and filters nodes."""

    def __init__(self, policy_set: PolicySet, *, reference: CedarEngine | None = None) -> None:
        self.policy_set = policy_set
        self.reference = reference if reference is not None else CedarEngine(policy_set)
        if self.reference.policy_set is not policy_set:
            raise ValueError("reference engine must decide with the same policy set")
        self._ns = policy_set.namespace
        try:
            self._checker: EntityChecker | None = EntityChecker(
                self._ns, policy_set.schema[self._ns]
            )
        except (UnsupportedSchemaError, RecursionError):
            self._checker = None
        self._plans: dict[str, _Plan | None] = {}
        self._scoped: dict[tuple[str, str, str], tuple[CompiledPolicy, ...]] = {}

    @property
    def policy_set_version(self) -> str:
        return self.policy_set.version

    def decide(self, request: Request) -> Decision:
        """Decide ``request``. Never raises; any failure is a deny with a reason."""
        plan = self._plan(request.action) if self._checker is not None else None
        if plan is None or self._checker is None:
            return self.reference.decide(request)
        try:
            principal, resource, context, env, hierarchy = self._prepare(
                self._checker, plan, request
            )
        except PolicyRequestError as exc:
            return self._deny(f"request refused: {exc}", (str(exc),))
        except Exception as exc:  # a malformed request object must not escape as a crash
            return self._deny(f"request refused: {exc!r}", (repr(exc),))
        key = (request.action, principal.type, resource.type)
        policies = self._scoped.get(key)
        if policies is None:
            policies = self._scoped[key] = tuple(
                p
                for p in plan.policies
                if p.principal_type in (None, principal.type)
                and p.resource_type in (None, resource.type)
            )
        permits: list[CompiledPolicy] = []
        forbids: list[CompiledPolicy] = []
        errors: list[str] = []
        p_attrs, r_attrs = env[principal], env[resource]
        for policy in policies:
            try:
                hit = policy.fn(principal, p_attrs, resource, r_attrs, context, env, hierarchy)
            except Exception as exc:  # any evaluation error fails the request closed
                errors.append(f"policy `{policy.info.id}` could not be evaluated: {exc!r}")
                continue
            if hit:
                (forbids if policy.forbid else permits).append(policy)
        return self._decision(permits, forbids, errors)

    def decide_batch(self, requests: Sequence[Request]) -> list[Decision]:
        """Decide each request; same answers as ``decide`` one by one. Never raises."""
        return [self.decide(r) for r in requests]

    def filter_nodes(
        self, task: Entity, nodes: Sequence[Entity], *, entities: Sequence[Entity] = ()
    ) -> PlacementResult:
        """Placement filter (the reference engine's compiled ``PlacementFilter``)."""
        return self.reference.filter_nodes(task, nodes, entities=entities)

    # -- helpers ----------------------------------------------------------------------

    def _plan(self, action: Any) -> _Plan | None:
        if not isinstance(action, str):
            return _refusal("action is not a string")
        if action in self._plans:
            return self._plans[action]
        plan = self._build_plan(action)
        if len(self._plans) < 4096:  # unknown actions come from outside: bound the memo
            self._plans[action] = plan
        return plan

    def _build_plan(self, action: str) -> _Plan | None:
        checker = self._checker
        actions = self.policy_set.schema[self._ns].get("actions", {}) or {}
        if checker is None:
            return None
        if action not in actions:
            return _refusal(f"action {action!r} does not exist in the schema")
        applies = (actions[action] or {}).get("appliesTo")
        if not applies:
            return _refusal(f"action {action!r} applies to no principal or resource type")
        try:
            context_check = checker.record_checker(
                applies.get("context") or {"type": "Record", "attributes": {}}, "context"
            )
            policies = compile_action(self.policy_set, action)
        except (UnsupportedPolicyError, UnsupportedSchemaError, RecursionError):
            return None
        return _Plan(
            principal_types=frozenset(
                checker.qualify(t) for t in applies.get("principalTypes", [])
            ),
            resource_types=frozenset(checker.qualify(t) for t in applies.get("resourceTypes", [])),
            context_check=context_check,
            policies=policies,
        )

    def _prepare(
        self, checker: EntityChecker, plan: _Plan, request: Request
    ) -> tuple[
        EntityUid,
        EntityUid,
        Mapping[str, Any],
        dict[EntityUid, Mapping[str, Any]],
        Mapping[EntityUid, frozenset[EntityUid]],
    ]:
        if plan.refusal is not None:
            raise PolicyRequestError("action", plan.refusal)
        ns = self._ns
        principal, resource = qualify(request.principal, ns), qualify(request.resource, ns)
        if principal.type not in plan.principal_types:
            raise PolicyRequestError("principal", f"type {principal.type} not valid for action")
        if resource.type not in plan.resource_types:
            raise PolicyRequestError("resource", f"type {resource.type} not valid for action")
        context: Mapping[str, Any] = request.context
        if not plan.context_check(context):
            context = {k: qualify_value(v, ns) for k, v in context.items()}
        env: dict[EntityUid, Mapping[str, Any]] = {}
        parents: dict[EntityUid, tuple[EntityUid, ...]] = {}
        seen: dict[EntityUid, Entity] = {}
        for entity in request.entities:
            entity_uid = qualify(entity.uid, ns)
            if entity_uid in seen:
                if seen[entity_uid] != entity:
                    raise PolicyRequestError("entities", f"duplicate entity entry {entity_uid}")
                continue
            seen[entity_uid] = entity
            clean = checker.check(entity)
            env[entity_uid] = (
                entity.attrs
                if clean
                else {k: qualify_value(v, ns) for k, v in entity.attrs.items()}
            )
            if entity.parents:
                parents[entity_uid] = tuple(qualify(p, ns) for p in entity.parents)
        for role, entity_uid in (("principal", principal), ("resource", resource)):
            if entity_uid not in env:
                raise PolicyRequestError(role, f"entity {entity_uid} is not among the entities")
        return principal, resource, context, env, ancestors(parents) if parents else {}

    def _decision(
        self, permits: list[CompiledPolicy], forbids: list[CompiledPolicy], errors: list[str]
    ) -> Decision:
        version = self.policy_set.version
        failed = tuple(f"fail closed: {e}" for e in errors)
        if forbids:
            ordered = sorted(forbids, key=lambda p: p.info.id)
            ids = tuple(p.info.id for p in ordered)
            return Decision(
                False, ids, tuple(p.info.reason for p in ordered) + failed, tuple(errors), version
            )
        if errors:
            return Decision(False, (), failed, tuple(errors), version)
        if permits:
            ordered = sorted(permits, key=lambda p: p.info.id)
            return Decision(
                True,
                tuple(p.info.id for p in ordered),
                tuple(p.info.reason for p in ordered),
                (),
                version,
            )
        return Decision(False, (), (DEFAULT_DENY_REASON,), (), version)

    def _deny(self, reason: str, errors: tuple[str, ...]) -> Decision:
        return Decision(False, (), (reason,), errors, self.policy_set.version)


def _refusal(message: str) -> _Plan:
    return _Plan(frozenset(), frozenset(), lambda _: True, (), refusal=message)
