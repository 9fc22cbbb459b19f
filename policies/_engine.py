"""The engine-neutral ``PolicyEngine`` protocol and its Cedar implementation.

Invariants (fail closed):
- ``decide`` never raises for a bad request and never allows one: an unencodable value, a
  principal or resource whose entity is not supplied, an unknown action or entity type, a
  missing or mistyped attribute (Cedar checks requests and entities against the schema),
  any policy evaluation error, or an engine exception each give a deny whose ``reasons``
  say why.
- Cedar's "Allow" counts only when Cedar reported no error at all.
- Cached decisions are keyed by the policy set version and the full encoded request, so a
  cache hit returns exactly what a fresh evaluation would.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import cedarpy

from policies._model import Decision, Entity, Request, encode_value, qualified_uid, qualify
from policies._policy_set import PolicySet
from policies.errors import PolicyRequestError

if TYPE_CHECKING:
    from policies._placement import PlacementResult

DEFAULT_DENY_REASON = "no policy permits this request (default deny)"
_POSITIONAL = re.compile(r"`(policy\d+)`")

_CacheKey = tuple[str, str, str, str, str]


@runtime_checkable
class PolicyEngine(Protocol):
    """What the scheduler needs from a policy engine; Cedar is one implementation."""

    @property
    def policy_set_version(self) -> str:
        """Content hash of the policy set this engine decides with."""

    def decide(self, request: Request) -> Decision:
        """Decide one request; never raises, never allows on error."""

    def decide_batch(self, requests: Sequence[Request]) -> list[Decision]:
        """Decide many requests; same order, same answers as ``decide`` one by one."""

    def filter_nodes(
        self, task: Entity, nodes: Sequence[Entity], *, entities: Sequence[Entity] = ()
    ) -> PlacementResult:
        """Which nodes may receive ``task``, with the reasons for each excluded node."""


class CedarEngine:
    """``PolicyEngine`` over cedarpy with a validated ``PolicySet``.

    ``cache_size`` bounds the decision cache (0 disables it). Thread-safe.
    """

    def __init__(self, policy_set: PolicySet, *, cache_size: int = 4096) -> None:
        self.policy_set = policy_set
        self._cache_size = cache_size
        self._cache: OrderedDict[_CacheKey, Decision] = OrderedDict()
        self._lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0
        self._placement: Any = None

    @property
    def policy_set_version(self) -> str:
        return self.policy_set.version

    # -- single and batched decisions -------------------------------------------------

    def decide(self, request: Request) -> Decision:
        """Decide ``request``. Never raises; any failure is a deny with a reason."""
        try:
            cedar_request, entities_json, key = self._encode(request)
        except PolicyRequestError as exc:
            return self._deny(f"request refused: {exc}", errors=(str(exc),))
        cached = self._cache_get(key)
        if cached is not None:
            return cached
        try:
            result = cedarpy.is_authorized(
                cedar_request,
                self.policy_set.cedar_policies,
                entities_json,
                schema=self.policy_set.cedar_schema,
            )
        except Exception as exc:  # any engine failure is a deny, never an allow
            return self._deny(f"policy engine error: {exc}", errors=(repr(exc),))
        decision = self._to_decision(result)
        self._cache_put(key, decision)
        return decision

    def decide_batch(self, requests: Sequence[Request]) -> list[Decision]:
        """Decide ``requests`` in one Cedar call when their entities agree, else one by one.

        Never raises; answers equal ``decide`` per request.
        """
        encoded: list[tuple[dict[str, Any], _CacheKey]] = []
        merged: dict[tuple[str, str], str] = {}
        for request in requests:
            try:
                cedar_request, _, key = self._encode(request)
                for entity in request.entities:
                    uid = qualified_uid(entity.uid, self.policy_set.namespace)
                    text = json.dumps(self._entity_json(entity), sort_keys=True)
                    if merged.setdefault((uid["type"], uid["id"]), text) != text:
                        return [self.decide(r) for r in requests]
            except PolicyRequestError:
                return [self.decide(r) for r in requests]
            encoded.append((cedar_request, key))
        entities_json = "[" + ",".join(merged.values()) + "]"
        try:
            results = cedarpy.is_authorized_batch(
                [c for c, _ in encoded],
                self.policy_set.cedar_policies,
                entities_json,
                schema=self.policy_set.cedar_schema,
            )
        except Exception:  # fall back to single decisions, each failing closed on its own
            return [self.decide(r) for r in requests]
        if any(r.decision is cedarpy.Decision.NoDecision for r in results):
            return [self.decide(r) for r in requests]
        decisions = [self._to_decision(r) for r in results]
        for (_, key), decision in zip(encoded, decisions, strict=True):
            self._cache_put(key, decision)
        return decisions

    def filter_nodes(
        self, task: Entity, nodes: Sequence[Entity], *, entities: Sequence[Entity] = ()
    ) -> PlacementResult:
        """Placement filter over ``nodes`` (see ``PlacementFilter.filter_nodes``)."""
        from policies._placement import PlacementFilter

        if self._placement is None:
            self._placement = PlacementFilter(self.policy_set, fallback=self)
        result: PlacementResult = self._placement.filter_nodes(task, nodes, entities=entities)
        return result

    # -- helpers ----------------------------------------------------------------------

    def _entity_json(self, entity: Entity) -> dict[str, Any]:
        ns = self.policy_set.namespace
        return {
            "uid": qualified_uid(entity.uid, ns),
            "attrs": {k: encode_value(v, f"{entity.uid}.{k}", ns) for k, v in entity.attrs.items()},
            "parents": [qualified_uid(p, ns) for p in entity.parents],
        }

    def _encode(self, request: Request) -> tuple[dict[str, Any], str, _CacheKey]:
        ns = self.policy_set.namespace
        if not isinstance(request.action, str) or not request.action:
            raise PolicyRequestError("action", "expected a non-empty action id")
        supplied = {qualify(e.uid, ns) for e in request.entities}
        for role, entity_uid in (("principal", request.principal), ("resource", request.resource)):
            if qualify(entity_uid, ns) not in supplied:
                raise PolicyRequestError(role, f"entity {entity_uid} is not among the entities")
        principal = qualified_uid(request.principal, ns)
        resource = qualified_uid(request.resource, ns)
        context = {k: encode_value(v, f"context.{k}", ns) for k, v in request.context.items()}
        entities_json = json.dumps([self._entity_json(e) for e in request.entities])
        context_json = json.dumps(context, sort_keys=True)
        cedar_request = {
            "principal": principal,
            "action": {"type": f"{ns}::Action", "id": request.action},
            "resource": resource,
            "context": context,
        }
        key = (
            request.action,
            f"{principal['type']}\0{principal['id']}",
            f"{resource['type']}\0{resource['id']}",
            context_json,
            entities_json,
        )
        return cedar_request, entities_json, key

    def _to_decision(self, result: cedarpy.AuthzResult) -> Decision:
        diagnostics = result.diagnostics
        errors = tuple(self._clean_error(e) for e in diagnostics.errors)
        by_pos = self.policy_set.by_positional_id
        pairs = sorted(
            (by_pos[pid].id, by_pos[pid].reason) if pid in by_pos else (pid, pid)
            for pid in diagnostics.reasons
        )
        ids = tuple(p for p, _ in pairs)
        reasons = tuple(r for _, r in pairs)
        version = self.policy_set.version
        if result.decision is cedarpy.Decision.Allow and not errors:
            return Decision(True, ids, reasons, (), version)
        if result.decision is cedarpy.Decision.NoDecision:
            return self._deny(f"request refused: {'; '.join(errors)}", errors=errors)
        if result.decision is cedarpy.Decision.Allow:  # allowed only by ignoring errors
            why = tuple(f"fail closed: {e}" for e in errors)
            return Decision(False, (), why, errors, version)
        why = reasons + tuple(f"fail closed: {e}" for e in errors)
        return Decision(False, ids, why or (DEFAULT_DENY_REASON,), errors, version)

    def _clean_error(self, message: str) -> str:
        if message.startswith("failed to parse entities from:") and "]: " in message:
            message = "entities: " + message.rsplit("]: ", 1)[1]

        def named(match: re.Match[str]) -> str:
            info = self.policy_set.by_positional_id.get(match.group(1))
            return f"`{info.id}`" if info else match.group(0)

        return _POSITIONAL.sub(named, message)

    def _deny(self, reason: str, *, errors: tuple[str, ...]) -> Decision:
        return Decision(False, (), (reason,), errors, self.policy_set.version)

    def _cache_get(self, key: _CacheKey) -> Decision | None:
        if not self._cache_size:
            return None
        with self._lock:
            decision = self._cache.get(key)
            if decision is None:
                self.cache_misses += 1
                return None
            self._cache.move_to_end(key)
            self.cache_hits += 1
            return decision

    def _cache_put(self, key: _CacheKey, decision: Decision) -> None:
        if not self._cache_size:
            return
        with self._lock:
            self._cache[key] = decision
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
