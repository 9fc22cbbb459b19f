"""The policy layer wired into a scheduler: placement filter, decision records, replica
sync and the provenance record of policy changes.

- :func:`install_placement` adds the :class:`~scheduler.policy_placement.PolicyFilter`
  (node facts from :mod:`scheduler.policy_node_facts`) to the service's placement
  pipeline and the :class:`~scheduler.policy_decisions.PlacementRecorder` to its
  ``placed_hooks``. Called by ``scheduler.app.install_layers``; idempotent.
- :class:`PolicySync`: replicas share the database; each one polls the latest recorded
  change (one indexed row, at most every ``interval_s`` = 0.5 s, on the next
  authorization or placement) and swaps its ``PolicyStore`` atomically when the version
  differs, so a change made on any replica is in force everywhere within ~0.5 s of the
  next request.
- :func:`record_change_provenance`: a policy change (old hash -> new hash, who, when) as a
  ``response.policy_change`` action through ``Service.record_response`` (or, while the
  provenance layer does not subscribe there, straight into its log); nothing when
  neither is present.

Invariants: a stored set that no longer loads or hashes differently is refused by
``latest_policy_set`` (logged) and the set in force stays; a failed poll keeps the set in
force and is retried on the next interval.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from policies import PolicyStore, PolicySwap
from scheduler.policy_decisions import PlacementRecorder
from scheduler.policy_node_facts import SchedulerNodeFacts
from scheduler.policy_placement import PolicyFilter
from scheduler.tables.policy import PolicyChange

if TYPE_CHECKING:
    from scheduler.service import Service

log = logging.getLogger(__name__)

SYNC_INTERVAL_S = 0.5


class PolicySync:
    """Puts the latest recorded policy set in force on this replica."""

    def __init__(
        self,
        service: Service,
        store: PolicyStore,
        *,
        interval_s: float = SYNC_INTERVAL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.store = store
        self.interval_s = interval_s
        self.monotonic = monotonic
        self.swaps = 0
        self._last = monotonic()
        self._lock = threading.Lock()

    def maybe_refresh(self) -> bool:
        """Refresh when the last poll is older than the interval. Never raises."""
        if self.monotonic() - self._last < self.interval_s:
            return False
        if not self._lock.acquire(blocking=False):
            return False  # another thread is polling
        try:
            self._last = self.monotonic()
            return self.refresh()
        except Exception:
            log.exception("policy sync failed; the set in force stays")
            return False
        finally:
            self._lock.release()

    def refresh(self) -> bool:
        """Poll now; True when a new set was put in force."""
        from scheduler.policy_changes import latest_policy_set

        with self.service.read() as session:
            latest = session.exec(
                select(PolicyChange.new_version).order_by(col(PolicyChange.id).desc()).limit(1)
            ).first()
        if latest is None or latest == self.store.version:
            return False
        policy_set = latest_policy_set(self.service)
        if policy_set is None or policy_set.version == self.store.version:
            return False
        swap = self.store.swap(policy_set)
        self.swaps += 1
        log.info("policy set %s -> %s (changed on another replica)", swap.old_version,
                 swap.new_version)  # fmt: skip
        return True


@dataclass
class PolicyPlacement:
    """What :func:`install_placement` wired into one service."""

    store: PolicyStore
    sync: PolicySync
    facts: SchedulerNodeFacts
    filter: PolicyFilter
    recorder: PlacementRecorder


_INSTALLED: weakref.WeakKeyDictionary[Any, PolicyPlacement] = weakref.WeakKeyDictionary()
_install_lock = threading.Lock()


def placement_of(service: Any) -> PolicyPlacement | None:
    return _INSTALLED.get(service)


def install_placement(service: Service, *, require_attestation: bool = False) -> PolicyPlacement:
    """Add the policy filter and the decision recorder to ``service`` (once)."""
    from scheduler.policy_authz import PolicyAuthorizer, default_policy_set
    from scheduler.policy_changes import latest_policy_set

    with _install_lock:
        installed = _INSTALLED.get(service)
        if installed is not None:
            return installed
        authorizer = service.authorizer
        if isinstance(authorizer, PolicyAuthorizer):
            store = authorizer.store
            sync = authorizer.sync or PolicySync(service, store)
        else:  # the API is decided elsewhere; placement still follows the policy set
            store = PolicyStore(latest_policy_set(service) or default_policy_set())
            sync = PolicySync(service, store)
        facts = SchedulerNodeFacts(service, require_attestation=require_attestation)
        policy_filter = PolicyFilter(store, facts, refresh=sync.maybe_refresh)
        recorder = PlacementRecorder(store, policy_filter, service.clock)
        service.pipeline.filters.append(policy_filter)
        service.pipeline.placed_hooks.append(recorder)
        installed = PolicyPlacement(store, sync, facts, policy_filter, recorder)
        _INSTALLED[service] = installed
        return installed


def record_change_provenance(
    service: Any, session: Session, swap: PolicySwap, who: str, at: float, change_id: int
) -> str:
    """Hand the change (old hash -> new hash, who, when) to the provenance log, in
    ``session``'s transaction. Returns where it went: ``"hooks"``, ``"provenance"`` or
    ``"none"`` (no provenance layer, nothing subscribed).

    With the provenance layer installed, the change is written straight into its log (the
    layer's generic response hook would commit to who changed it without keeping the salt;
    this record keeps it, so the change can be attributed later and erased by deleting the
    salt): a
    ``policy_change`` response-action record, target ``policy/<new version>`` (digest =
    the new version, a content hash), ``evidenceIds`` = [old version], ``actor`` the
    scheduler's SPIFFE ID and ``detail`` a salted commitment to who changed it (the salt
    is kept in ``policy_change_commitment``; the public log does not name people).
    Every other response hook gets the change as a ``response.policy_change``
    :class:`scheduler.service.ResponseAction`.
    """
    from scheduler.provenance import layer_of
    from scheduler.service import ResponseAction as ServiceResponse

    response = ServiceResponse(
        action="response.policy_change",
        subject=swap.new_version,
        reason="policy.change",
        actor=who,
        source=who.split(":", 1)[0],
        at=at,
        detail={
            "old_version": swap.old_version,
            "new_version": swap.new_version,
            "change_id": change_id,
        },
    )
    layer = layer_of(service)
    hooks = list(getattr(service, "response_hooks", ()))
    if layer is None:
        for hook in hooks:
            hook(session, response)
        return "hooks" if hooks else "none"
    for hook in hooks:  # every other subscriber; the log gets the record below, once
        if hook != layer.on_response:
            hook(session, response)
    from audit_chain import ResponseAction, commit, new_salt
    from scheduler.tables.policy_decisions import PolicyChangeCommitment

    salt = new_salt()
    detail = commit(who, salt)
    digest = swap.new_version
    if not digest.startswith("sha256:"):
        digest = "sha256:" + hashlib.sha256(swap.new_version.encode()).hexdigest()
    action = ResponseAction(
        action_id=f"policy-change:{change_id}:{swap.new_version[7:23]}",
        action="policy_change",
        target_kind="policy",
        target_id=swap.new_version,
        target_digest=digest,
        decided_on=datetime.fromtimestamp(at, UTC),
        actor=f"spiffe://{service.settings.trust_domain}/scheduler",
        reasons=("policy.change",),
        evidence_ids=(swap.old_version,),
        detail=detail,
    )
    layer.record_response_action(session, action)
    session.add(PolicyChangeCommitment(change_id=change_id, commitment=detail, salt_hex=salt.hex()))
    return "provenance"
