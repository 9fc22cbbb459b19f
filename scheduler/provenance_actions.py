"""Security response actions as provenance records: quarantine, release, revocation,
policy change.

:func:`record_response_action` is the hook the layers call in the transaction that takes
the action (trust quarantine and release, node revocation, policy change); it queues a
signed ``response-action/v1`` record in that same transaction, so the action and its record
commit or roll back together. It does nothing when the service has no provenance layer.

What enters the record: the action, the subject (``node/<id>``, ``certificate/<serial>``,
``policy/<version>``) and its SHA-256, stable dotted reason ids, evidence and policy
decision ids, the trust score. Free text (an operator's reason) and people (an actor that
is not a ``spiffe://`` service) enter only as salted commitments whose salt is not kept.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from audit_chain import ResponseAction, commit, new_salt
from audit_chain.predicates import RESPONSE_ACTIONS, TARGET_KINDS

if TYPE_CHECKING:
    from sqlmodel import Session

_REASON_ID = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")
_PRINTABLE = re.compile(r"[\x20-\x7e]+")


def _ids(values: Sequence[str]) -> tuple[str, ...]:
    """Ids the predicate accepts: printable ASCII, at most 256 characters, at most 32."""
    kept = [v[:256] for v in values if isinstance(v, str) and _PRINTABLE.fullmatch(v)]
    return tuple(dict.fromkeys(kept))[:32]


def response_action(
    action: str,
    subject: str,
    reason: str,
    actor: str,
    *,
    at: float,
    reasons: Sequence[str] = (),
    evidence_ids: Sequence[str] = (),
    policy_decision_ids: Sequence[str] = (),
    trust_per_mille: int | None = None,
    subject_digest: str | None = None,
) -> ResponseAction:
    """Build the record of one response action.

    ``reason`` is a stable dotted id (``trust.quarantine.score_below_threshold``) or free
    text (committed, never in the clear). ``subject_digest`` (``sha256:<hex>``) defaults to
    the SHA-256 of ``subject``.

    Raises:
        ValueError: unknown action, subject not ``<kind>/<id>`` with a known kind.
        audit_chain.MalformedStatementError: a field the predicate refuses.
    """
    if action not in RESPONSE_ACTIONS:
        raise ValueError(f"unknown response action {action!r}")
    kind, _, target = subject.partition("/")
    if kind not in TARGET_KINDS or not target or not _PRINTABLE.fullmatch(target):
        raise ValueError(f"subject must be <kind>/<id> with kind in {sorted(TARGET_KINDS)}")
    ids = list(reasons)
    detail = None
    if _REASON_ID.fullmatch(reason):
        ids.insert(0, reason)
    elif reason:
        detail = commit(reason, new_salt())
    if not ids:
        ids.append(f"response.{action}")
    who = actor if actor.startswith("spiffe://") else commit(actor, new_salt())
    if trust_per_mille is not None:
        trust_per_mille = max(0, min(1000, int(trust_per_mille)))
    return ResponseAction(
        action_id=uuid.uuid4().hex,
        action=action,
        target_kind=kind,
        target_id=target[:2048],
        target_digest=subject_digest or "sha256:" + hashlib.sha256(subject.encode()).hexdigest(),
        decided_on=datetime.fromtimestamp(at, UTC),
        actor=who,
        reasons=_ids(ids),
        evidence_ids=_ids(evidence_ids),
        policy_decision_ids=_ids(policy_decision_ids),
        trust_score_permille=trust_per_mille,
        detail=detail,
    )


def record_response_action(
    service: Any,
    session: Session,
    action: str,
    subject: str,
    reason: str,
    actor: str,
    **kwargs: Any,
) -> bool:
    """Queue the action's record in ``session``'s transaction (the one taking the action).

    Returns False, doing nothing, when ``service`` has no provenance layer; True when the
    record is queued. Raises like :func:`response_action`.
    """
    from scheduler.provenance import layer_of

    layer = layer_of(service)
    if layer is None:
        return False
    layer.record_response_action(session, action, subject, reason, actor, **kwargs)
    return True


def service_actor(service: Any, name: str) -> str:
    """The SPIFFE ID of one of the scheduler's own deciding components."""
    return f"spiffe://{service.settings.trust_domain}/scheduler/{name}"
