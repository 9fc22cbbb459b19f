"""Placement at scale: which of many nodes may receive a task, with reasons for the rest.

``PlacementFilter`` compiles the policy set's ``place_task`` policies into Python once
(``_compiler``) and checks each node's attributes against the schema as Cedar would
(``_conformance``), so filtering 10,000 nodes costs no Cedar call per node. Its answer for
each node equals a full ``CedarEngine.decide`` of the ``place_task`` request: allowed
exactly when Cedar allows with no error; excluded nodes carry the forbids' ids and reasons,
the fail-closed reason, or the default-deny reason. When the set uses a construct the
compiler does not model, the filter asks Cedar per node (batched) instead.

``place`` then makes one full Cedar decision for the chosen node; that decision (with the
policy set version) is what the scheduler stores and replays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policies._builders import request
from policies._compiler import CompiledPolicy, UnsupportedPolicyError, compile_action
from policies._conformance import EntityChecker, UnsupportedSchemaError
from policies._engine import DEFAULT_DENY_REASON
from policies._model import Decision, Entity, EntityUid, Request, qualify, qualify_value
from policies._policy_set import PolicySet
from policies.errors import PolicyRequestError

PLACE_ACTION = "place_task"


@dataclass(frozen=True)
class Exclusion:
    """Why a node may not receive the task: deciding forbid ids, reasons, errors."""

    policy_ids: tuple[str, ...]
    reasons: tuple[str, ...]
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlacementResult:
    """Allowed node ids (input order) and, for every other node, why it was excluded."""

    allowed: tuple[str, ...]
    excluded: Mapping[str, Exclusion]
    policy_set_version: str
    method: str
    """``"compiled"`` (policies compiled to Python) or ``"cedar"`` (one Cedar call per node)."""


@dataclass(frozen=True)
class PlacementOutcome:
    """The chosen node (or None), Cedar's full decision for it and the request to store."""

    node_id: str | None
    decision: Decision | None
    request: Request | None
    filtered: PlacementResult
    disagreements: tuple[str, ...] = field(default=())
    """Nodes the filter allowed but Cedar then denied (a defect; each is skipped)."""


class PlacementFilter:
    """Filters nodes for a task under ``policy_set``; ``fallback`` decides when compiling
    is not possible (any ``PolicyEngine``, normally the ``CedarEngine`` of the same set)."""

    def __init__(self, policy_set: PolicySet, *, fallback: Any = None) -> None:
        self.policy_set = policy_set
        self._fallback = fallback
        self._ns = policy_set.namespace
        applies = (policy_set.schema[self._ns].get("actions", {}).get(PLACE_ACTION, {}) or {}).get(
            "appliesTo", {}
        ) or {}
        self._principal_types = frozenset(
            policy_set.qualify(t) for t in applies.get("principalTypes", [])
        )
        self._resource_types = frozenset(
            policy_set.qualify(t) for t in applies.get("resourceTypes", [])
        )
        self._policies: tuple[CompiledPolicy, ...] | None
        try:
            self._checker: EntityChecker | None = EntityChecker(
                self._ns, policy_set.schema[self._ns]
            )
            self._policies = compile_action(policy_set, PLACE_ACTION)
            context_spec = applies.get("context") or {"type": "Record", "attributes": {}}
            self._context_check = self._checker.record_checker(context_spec, "context")
            self.unsupported: str | None = None
        except (UnsupportedPolicyError, UnsupportedSchemaError, RecursionError) as exc:
            self._checker, self._policies, self.unsupported = None, None, repr(exc)

    def filter_nodes(
        self, task: Entity, nodes: Sequence[Entity], *, entities: Sequence[Entity] = ()
    ) -> PlacementResult:
        """Split ``nodes`` into allowed ids and excluded ids with reasons. Never raises."""
        checker = self._checker
        if self._policies is None or checker is None:
            return self._filter_with_cedar(task, nodes, entities)
        version = self.policy_set.version
        try:
            principal = self._qualify_uid(task.uid)
            if principal.type not in self._principal_types:
                raise PolicyRequestError(str(task.uid), "principal type not valid for action")
            self._context_check({})  # placement requests carry an empty context
            base_entities: dict[EntityUid, Mapping[str, Any]] = {}
            for entity in (task, *entities):
                clean = checker.check(entity)
                attrs = entity.attrs if clean else self._qualify_attrs(entity.attrs)
                base_entities[self._qualify_uid(entity.uid)] = attrs
        except PolicyRequestError as exc:
            excl = Exclusion((), (f"request refused: {exc}",), (str(exc),))
            return PlacementResult((), {n.uid.id: excl for n in nodes}, version, "compiled")
        parents = {self._qualify_uid(e.uid): e.parents for e in (task, *entities) if e.parents}
        base_hierarchy = ancestors(parents)
        task_attrs = base_entities[principal]
        context: dict[str, Any] = {}
        allowed: list[str] = []
        excluded: dict[str, Exclusion] = {}
        by_resource_type: dict[str, tuple[CompiledPolicy, ...]] = {}
        shared_exclusions: dict[tuple[str, ...], Exclusion] = {}
        for node in nodes:
            resource = self._qualify_uid(node.uid)
            try:
                if resource.type not in self._resource_types:
                    raise PolicyRequestError(str(node.uid), "resource type not valid for action")
                clean = checker.check(node)
            except PolicyRequestError as exc:
                excluded[node.uid.id] = Exclusion((), (f"request refused: {exc}",), (str(exc),))
                continue
            policies = by_resource_type.get(resource.type)
            if policies is None:
                policies = by_resource_type[resource.type] = self._applicable(
                    principal.type, resource.type
                )
            node_attrs = node.attrs if clean else self._qualify_attrs(node.attrs)
            # as in ``request(task, PLACE_ACTION, node, entities=...)``: the node itself wins
            # over an extra entity with its uid
            env = {**base_entities, resource: node_attrs}
            hierarchy = (
                ancestors({**parents, resource: node.parents}) if node.parents else base_hierarchy
            )
            forbids: list[CompiledPolicy] = []
            permitted = False
            errors: list[str] = []
            for policy in policies:
                try:
                    hit = policy.fn(
                        principal, task_attrs, resource, node_attrs, context, env, hierarchy
                    )
                except Exception as exc:  # any evaluation error fails the request closed
                    errors.append(f"policy `{policy.info.id}` could not be evaluated: {exc!r}")
                    continue
                if hit:
                    if policy.forbid:
                        forbids.append(policy)
                    else:
                        permitted = True
            if permitted and not forbids and not errors:
                allowed.append(node.uid.id)
                continue
            if errors:
                excluded[node.uid.id] = _exclusion(forbids, errors)
                continue
            key = tuple(p.info.id for p in forbids)
            exclusion = shared_exclusions.get(key)
            if exclusion is None:
                exclusion = shared_exclusions[key] = _exclusion(forbids, errors)
            excluded[node.uid.id] = exclusion
        return PlacementResult(tuple(allowed), excluded, version, "compiled")

    def _applicable(self, principal_type: str, resource_type: str) -> tuple[CompiledPolicy, ...]:
        """Policies whose ``is`` scopes can match these types (the others cannot fire)."""
        return tuple(
            p
            for p in self._policies or ()
            if p.principal_type in (None, principal_type)
            and p.resource_type in (None, resource_type)
        )

    def _filter_with_cedar(
        self, task: Entity, nodes: Sequence[Entity], entities: Sequence[Entity]
    ) -> PlacementResult:
        if self._fallback is None:
            why = f"placement filter cannot compile ({self.unsupported}) and has no fallback"
            excl = Exclusion((), (f"fail closed: {why}",), (why,))
            return PlacementResult(
                (), {n.uid.id: excl for n in nodes}, self.policy_set.version, "cedar"
            )
        requests = [request(task, PLACE_ACTION, n, entities=entities) for n in nodes]
        decisions = self._fallback.decide_batch(requests)
        allowed: list[str] = []
        excluded: dict[str, Exclusion] = {}
        for node, decision in zip(nodes, decisions, strict=True):
            if decision.allowed:
                allowed.append(node.uid.id)
            else:
                excluded[node.uid.id] = Exclusion(
                    decision.policy_ids, decision.reasons, decision.errors
                )
        return PlacementResult(tuple(allowed), excluded, self.policy_set.version, "cedar")

    def _qualify_uid(self, entity_uid: EntityUid) -> EntityUid:
        return qualify(entity_uid, self._ns)

    def _qualify_attrs(self, attrs: Mapping[str, Any]) -> Mapping[str, Any]:
        return {k: qualify_value(v, self._ns) for k, v in attrs.items()}


def ancestors(
    parents: Mapping[EntityUid, tuple[EntityUid, ...]],
) -> dict[EntityUid, frozenset[EntityUid]]:
    closure: dict[EntityUid, frozenset[EntityUid]] = {}
    for start, direct in parents.items():
        seen: set[EntityUid] = set()
        stack = list(direct)
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(parents.get(current, ()))
        closure[start] = frozenset(seen)
    return closure


def _exclusion(forbids: list[CompiledPolicy], errors: list[str]) -> Exclusion:
    ordered = sorted(forbids, key=lambda p: p.info.id)
    ids = tuple(p.info.id for p in ordered)
    reasons = tuple(p.info.reason for p in ordered) + tuple(f"fail closed: {e}" for e in errors)
    if not ids and not errors:
        reasons = (DEFAULT_DENY_REASON,)
    return Exclusion(ids, reasons, tuple(errors))


def place(
    engine: Any, task: Entity, nodes: Sequence[Entity], *, entities: Sequence[Entity] = ()
) -> PlacementOutcome:
    """Filter ``nodes`` (given in preference order), then one full decision for the first
    allowed node; a node Cedar then denies is skipped and reported. Never raises."""
    filtered: PlacementResult = engine.filter_nodes(task, nodes, entities=entities)
    by_id = {n.uid.id: n for n in nodes}
    disagreements: list[str] = []
    for node_id in filtered.allowed:
        req = request(task, PLACE_ACTION, by_id[node_id], entities=entities)
        decision: Decision = engine.decide(req)
        if decision.allowed:
            return PlacementOutcome(node_id, decision, req, filtered, tuple(disagreements))
        disagreements.append(node_id)
    return PlacementOutcome(None, None, None, filtered, tuple(disagreements))
