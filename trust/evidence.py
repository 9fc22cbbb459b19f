"""Typed, timestamped, attributed trust evidence, and the small adapters that make it.

Every item names the node it is about (``node_id``), the principal that produced it
(``source``), when it was observed (``observed_at``, seconds since the Unix epoch, UTC) and a
unique ``evidence_id`` that the engine uses for replay protection. ``kind`` is a stable dotted
id (``trust.evidence.task_failed``) that never changes meaning once published.

Adapters (``from_attestation_result``, ``from_task_outcome``, ``from_ids_alert``,
``from_tenant_feedback``, ``from_peer_feedback``, ``from_capacity_check``) take the plain
values each producer already has and return an :class:`Evidence`; they raise
:class:`~trust.errors.EvidenceError` naming the field on bad input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from trust.errors import EvidenceError

MAX_ID_LEN = 200
MAX_DETAIL_LEN = 1000


class EvidenceKind(StrEnum):
    """Stable dotted evidence kinds."""

    ATTESTATION_AFFIRMING = "trust.evidence.attestation_affirming"
    ATTESTATION_WARNING = "trust.evidence.attestation_warning"
    ATTESTATION_CONTRAINDICATED = "trust.evidence.attestation_contraindicated"
    ATTESTATION_MISSING = "trust.evidence.attestation_missing"
    TASK_SUCCEEDED = "trust.evidence.task_succeeded"
    TASK_VERIFIED = "trust.evidence.task_verified"
    TASK_FAILED = "trust.evidence.task_failed"
    TASK_WRONG_RESULT = "trust.evidence.task_wrong_result"
    TASK_SLA_MISS = "trust.evidence.task_sla_miss"
    TASK_TIMEOUT = "trust.evidence.task_timeout"
    IDS_ALERT = "trust.evidence.ids_alert"
    INCIDENT = "trust.evidence.incident"
    FEEDBACK_TENANT = "trust.evidence.feedback_tenant"
    FEEDBACK_PEER = "trust.evidence.feedback_peer"
    CAPACITY_CONFIRMED = "trust.evidence.capacity_confirmed"
    CAPACITY_REFUTED = "trust.evidence.capacity_refuted"
    IDENTITY_REVOKED = "trust.evidence.identity_revoked"


FEEDBACK_KINDS = frozenset({EvidenceKind.FEEDBACK_TENANT, EvidenceKind.FEEDBACK_PEER})
ATTESTATION_KINDS = frozenset(
    {
        EvidenceKind.ATTESTATION_AFFIRMING,
        EvidenceKind.ATTESTATION_WARNING,
        EvidenceKind.ATTESTATION_CONTRAINDICATED,
        EvidenceKind.ATTESTATION_MISSING,
    }
)


@dataclass(frozen=True, slots=True)
class Evidence:
    """One piece of evidence about one node.

    ``severity`` is the Suricata/EVE scale (1 = high, 2 = medium, 3 = low) for IDS alerts and
    incidents, else ``None``. ``rating`` in [-1, 1] is used only by feedback kinds, and
    ``rater_id`` names the rating node (peer feedback) or tenant (tenant feedback).
    """

    evidence_id: str
    kind: EvidenceKind
    node_id: str
    observed_at: float
    source: str
    severity: int | None = None
    rating: float = 0.0
    rater_id: str | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        # Written for speed: this runs once per evidence item on the intake path.
        if not (type(self.evidence_id) is str and 0 < len(self.evidence_id) <= MAX_ID_LEN):
            raise EvidenceError(
                "evidence_id must be a non-empty string <= 200 chars", field="evidence_id"
            )
        if not (type(self.node_id) is str and 0 < len(self.node_id) <= MAX_ID_LEN):
            raise EvidenceError("node_id must be a non-empty string <= 200 chars", field="node_id")
        if not (type(self.source) is str and 0 < len(self.source) <= MAX_ID_LEN):
            raise EvidenceError("source must be a non-empty string <= 200 chars", field="source")
        kind = self.kind
        if type(kind) is not EvidenceKind:
            raise EvidenceError("kind must be an EvidenceKind", field="kind")
        at = self.observed_at
        if type(at) is not float and (type(at) is not int or isinstance(at, bool)):
            raise EvidenceError("observed_at must be a number", field="observed_at")
        if not math.isfinite(at):
            raise EvidenceError("observed_at must be finite", field="observed_at")
        if type(self.detail) is not str or len(self.detail) > MAX_DETAIL_LEN:
            raise EvidenceError("detail must be a string of at most 1000 chars", field="detail")
        if kind is EvidenceKind.IDS_ALERT or kind is EvidenceKind.INCIDENT:
            if type(self.severity) is not int or self.severity not in (1, 2, 3):
                raise EvidenceError("severity must be 1, 2 or 3", field="severity")
        elif self.severity is not None:
            raise EvidenceError(
                "severity only applies to IDS alerts and incidents", field="severity"
            )
        if kind is EvidenceKind.FEEDBACK_PEER or kind is EvidenceKind.FEEDBACK_TENANT:
            rating = self.rating
            if isinstance(rating, bool) or not isinstance(rating, int | float):
                raise EvidenceError("rating must be a number", field="rating")
            if not -1.0 <= rating <= 1.0:
                raise EvidenceError("rating must be within [-1, 1]", field="rating")
            rater = self.rater_id
            if type(rater) is not str or not 0 < len(rater) <= MAX_ID_LEN:
                raise EvidenceError("feedback needs a rater_id <= 200 chars", field="rater_id")
            if self.rater_id == self.node_id:
                raise EvidenceError("a node cannot rate itself", field="rater_id")


_ATTESTATION_STATUS = {
    "affirming": EvidenceKind.ATTESTATION_AFFIRMING,
    "warning": EvidenceKind.ATTESTATION_WARNING,
    "contraindicated": EvidenceKind.ATTESTATION_CONTRAINDICATED,
    "missing": EvidenceKind.ATTESTATION_MISSING,
}

_TASK_OUTCOME = {
    "succeeded": EvidenceKind.TASK_SUCCEEDED,
    "failed": EvidenceKind.TASK_FAILED,
    "wrong_result": EvidenceKind.TASK_WRONG_RESULT,
    "sla_miss": EvidenceKind.TASK_SLA_MISS,
    "timeout": EvidenceKind.TASK_TIMEOUT,
}


def from_attestation_result(
    *,
    evidence_id: str,
    node_id: str,
    status: str,
    observed_at: float,
    verifier: str,
    detail: str = "",
) -> Evidence:
    """Evidence from an attestation result (EAR status: affirming/warning/contraindicated/missing).

    Raises:
        EvidenceError: ``status`` is not one of the four EAR statuses (field ``status``).
    """
    kind = _ATTESTATION_STATUS.get(status)
    if kind is None:
        raise EvidenceError(f"unknown attestation status {status!r}", field="status")
    return Evidence(evidence_id, kind, node_id, observed_at, verifier, detail=detail)


def from_task_outcome(
    *,
    evidence_id: str,
    node_id: str,
    outcome: str,
    verified: bool,
    observed_at: float,
    scheduler: str,
    detail: str = "",
) -> Evidence:
    """Evidence from a task outcome.

    ``outcome`` is succeeded, failed, wrong_result, sla_miss or timeout; a success that matched
    an independent replica (``verified``) is the stronger ``task_verified`` kind. A wrong result
    is only known through verification, so ``wrong_result`` requires ``verified``.

    Raises:
        EvidenceError: unknown outcome, or wrong_result without verification (field ``outcome``).
    """
    kind = _TASK_OUTCOME.get(outcome)
    if kind is None:
        raise EvidenceError(f"unknown task outcome {outcome!r}", field="outcome")
    if kind is EvidenceKind.TASK_WRONG_RESULT and not verified:
        raise EvidenceError("a wrong result is only known through verification", field="outcome")
    if kind is EvidenceKind.TASK_SUCCEEDED and verified:
        kind = EvidenceKind.TASK_VERIFIED
    return Evidence(evidence_id, kind, node_id, observed_at, scheduler, detail=detail)


def from_ids_alert(
    *,
    evidence_id: str,
    node_id: str,
    severity: int,
    observed_at: float,
    sensor: str,
    incident: bool = False,
    detail: str = "",
) -> Evidence:
    """Evidence from an IDS alert (EVE severity 1-3) or a confirmed incident naming the node.

    Raises:
        EvidenceError: severity outside 1..3 (field ``severity``).
    """
    kind = EvidenceKind.INCIDENT if incident else EvidenceKind.IDS_ALERT
    return Evidence(
        evidence_id, kind, node_id, observed_at, sensor, severity=severity, detail=detail
    )


def from_tenant_feedback(
    *, evidence_id: str, node_id: str, tenant_id: str, rating: float, observed_at: float
) -> Evidence:
    """Tenant feedback in [-1, 1]; low weight and scaled by the tenant's credibility.

    Raises:
        EvidenceError: rating outside [-1, 1] (field ``rating``).
    """
    return Evidence(
        evidence_id,
        EvidenceKind.FEEDBACK_TENANT,
        node_id,
        observed_at,
        tenant_id,
        rating=rating,
        rater_id=tenant_id,
    )


def from_peer_feedback(
    *, evidence_id: str, node_id: str, rater_node_id: str, rating: float, observed_at: float
) -> Evidence:
    """Peer (node-to-node) feedback in [-1, 1]; an edge of the feedback graph.

    Raises:
        EvidenceError: rating outside [-1, 1] or self-rating (fields ``rating``/``rater_id``).
    """
    return Evidence(
        evidence_id,
        EvidenceKind.FEEDBACK_PEER,
        node_id,
        observed_at,
        rater_node_id,
        rating=rating,
        rater_id=rater_node_id,
    )


def from_capacity_check(
    *,
    evidence_id: str,
    node_id: str,
    claim_held: bool,
    observed_at: float,
    scheduler: str,
    detail: str = "",
) -> Evidence:
    """Evidence from a challenge task checking a capacity claim (e.g. a claimed accelerator)."""
    kind = EvidenceKind.CAPACITY_CONFIRMED if claim_held else EvidenceKind.CAPACITY_REFUTED
    return Evidence(evidence_id, kind, node_id, observed_at, scheduler, detail=detail)


def identity_revoked(
    *, evidence_id: str, node_id: str, observed_at: float, authority: str, detail: str = ""
) -> Evidence:
    """Evidence that the node's identity (certificate / SVID) was revoked: a hard gate."""
    return Evidence(
        evidence_id, EvidenceKind.IDENTITY_REVOKED, node_id, observed_at, authority, detail=detail
    )
