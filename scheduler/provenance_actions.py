"""Security response actions as provenance records: quarantine, release, revocation,
policy change.

The layers report an action with ``Service.record_response(session, ResponseAction)`` (the
service's one hook point, :class:`scheduler.service.ResponseAction`) in the transaction
that takes it; :func:`record_response_action` is a shorthand that builds that action. The
provenance layer's response hook turns it into a signed ``response-action/v1`` record
(:func:`record_of`) queued in that same transaction, so the action and its record commit or
roll back together. Without a provenance layer nothing is recorded.

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

    from scheduler.service import ResponseAction as ServiceResponse

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


_ACTIONS = {
    "response.quarantine": "quarantine",
    "response.release": "release",
    "response.revoke": "revocation",
    "response.revocation": "revocation",
    "response.policy_change": "policy_change",
}
_DEFAULT_KIND = {"policy_change": "policy"}


def record_of(action: ServiceResponse) -> ResponseAction:
    """The provenance record of a :class:`scheduler.service.ResponseAction`.

    ``action.action`` is ``response.quarantine|release|revoke|policy_change`` (or the bare
    predicate name); ``subject`` is ``<kind>/<id>`` or a bare id (a node, or a policy set
    for a policy change); ``source`` becomes the reason id ``response.source.<source>``;
    ``detail`` keys ``evidence_ids``/``evidence_id``, ``policy_decision_ids``,
    ``trust_per_mille`` and ``subject_digest`` map to the predicate's fields, other non-empty
    strings become ids ``<key>:<value>`` in ``evidenceIds`` (numbers such as counts do not:
    they are not evidence).

    Raises:
        ValueError: unknown action or subject kind.
    """
    name = _ACTIONS.get(action.action, action.action)
    subject = action.subject
    kind, sep, _ = subject.partition("/")
    if not sep or kind not in TARGET_KINDS:
        subject = f"{_DEFAULT_KIND.get(name, 'node')}/{subject}"
    detail = dict(action.detail)
    evidence = list(detail.pop("evidence_ids", ()) or ())
    first = detail.pop("evidence_id", None)
    if first:
        evidence.insert(0, str(first))
    policy_ids = list(detail.pop("policy_decision_ids", ()) or ())
    trust = detail.pop("trust_per_mille", None)
    digest = detail.pop("subject_digest", None)
    for key, value in sorted(detail.items()):
        if isinstance(value, str) and value:  # ids; counts and figures are not evidence
            evidence.append(f"{key}:{value}")
    return response_action(
        name,
        subject,
        action.reason,
        action.actor,
        at=action.at,
        reasons=(f"response.source.{action.source}",) if action.source else (),
        evidence_ids=evidence,
        policy_decision_ids=policy_ids,
        trust_per_mille=trust if isinstance(trust, int) else None,
        subject_digest=digest if isinstance(digest, str) else None,
    )


def record_response_action(
    service: Any,
    session: Session,
    action: str,
    subject: str,
    reason: str,
    actor: str,
    *,
    source: str = "scheduler",
    **detail: Any,
) -> bool:
    """Report a response action through ``service.record_response`` in ``session``'s
    transaction (the one taking the action). Returns whether a provenance layer records it
    (False: nothing is recorded)."""
    from scheduler.provenance import layer_of
    from scheduler.service import ResponseAction as Response

    service.record_response(
        session,
        Response(
            action=action if action.startswith("response.") else f"response.{action}",
            subject=subject,
            reason=reason,
            actor=actor,
            source=source,
            at=service.clock(),
            detail=detail,
        ),
    )
    return layer_of(service) is not None


def service_actor(service: Any, name: str) -> str:
    """The SPIFFE ID of one of the scheduler's own deciding components."""
    return f"spiffe://{service.settings.trust_domain}/scheduler/{name}"
