"""A node's facts for placement, from what the scheduler itself knows (never the labels a
node registered with, which the node chose):

- region, operator and accelerator kinds: the node's registration (``NodeView``);
- attestation status and age: the node's current attestation result on its ``Node`` row
  (``attestation_status``, ``attested_at``, ``attestation_expires_at``);
- trust and its uncertainty: the trust layer's view (``service.trust.view``); a node it
  quarantined is ``quarantined``;
- ``revoked``: the identity layer's revocation set.

Invariants (fail closed):
- A missing attestation result (None), an expired one, or one from the future is
  ``attestation_status = "none"`` with no age: every rule that needs a result refuses the
  node — when ``require_attestation`` is set, which the scheduler does whenever the
  attestation layer and its gate are on. Without them (``require_attestation=False``,
  the default here) a node without a result is ``"unappraised"`` — the default pack
  places public and internal work there and never secret work (fail closed for secret
  tasks). An expired or future result is ``"none"`` either way.
- No trust layer: trust 0, uncertainty 1 (the cautious extreme).
- No identity layer: nothing is known revoked (the authentication path has no revocations
  either); a node the identity layer revoked is ``revoked``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policies import Entity, node
from scheduler.placement import NodeView
from scheduler.policy_facts import accelerator_kinds

MISSING_STATUS = "none"
UNAPPRAISED_STATUS = "unappraised"
TRUST_QUARANTINE_PREFIX = "quarantined"
ENTITY_CACHE_SIZE = 50_000


class SchedulerNodeFacts:
    """``NodeView -> Entity`` for the policy placement filter, from the service's layers."""

    def __init__(
        self,
        service: Any,
        *,
        require_attestation: bool = False,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.service = service
        self.clock = clock or service.clock
        self.require_attestation = require_attestation
        # entities are immutable and built from exactly the facts in the key
        self._entities: dict[tuple[object, ...], Entity] = {}

    def __call__(self, view: NodeView) -> Entity:
        """The node's entity. Raises PolicyRequestError on a malformed fact."""
        now = self.clock()
        status, age = self.attestation(view, now)
        trust, uncertainty, quarantined = self.trust(view)
        revoked = self.revoked(view.id)
        key = (view.id, view.region, view.operator, view.accelerators, status, age, trust,
               uncertainty, revoked, quarantined)  # fmt: skip
        cached = self._entities.get(key)
        if cached is not None:
            return cached
        entity = node(
            view.id,
            region=view.region,
            operator_id=view.operator,
            trust=trust,
            uncertainty=uncertainty,
            attestation_status=status,
            attestation_age_s=age,
            accelerators=accelerator_kinds(view.accelerators),
            revoked=revoked,
            quarantined=quarantined,
        )
        if len(self._entities) >= ENTITY_CACHE_SIZE:
            self._entities.clear()
        self._entities[key] = entity
        return entity

    def attestation(self, view: NodeView, now: float) -> tuple[str, int | None]:
        status, at, expires = view.attestation_status, view.attested_at, view.attestation_expires_at
        if status is None or at is None:
            return (MISSING_STATUS if self.require_attestation else UNAPPRAISED_STATUS), None
        if at > now + 1.0 or (expires is not None and now >= expires):
            return MISSING_STATUS, None  # from the future, or expired: no valid result
        return status, int(now - at) if now > at else 0

    def trust(self, view: NodeView) -> tuple[float, float, bool]:
        layer = getattr(self.service, "trust", None)
        if layer is None or not hasattr(layer, "view"):
            return 0.0, 1.0, False
        trust_view = layer.view(view)
        quarantined = bool(
            trust_view.exclusion and trust_view.exclusion.startswith(TRUST_QUARANTINE_PREFIX)
        )
        score = min(1.0, max(0.0, float(trust_view.score)))
        uncertainty = min(1.0, max(0.0, float(trust_view.uncertainty)))
        return score, uncertainty, quarantined

    def revoked(self, node_id: str) -> bool:
        layer = getattr(self.service, "_cntrust_identity_layer", None)
        if layer is None:
            return False
        return bool(layer.revocations.node_revoked(node_id))
