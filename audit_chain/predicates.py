"""cntrust predicates for in-toto statements: task execution and security response action.

Each predicate is a frozen dataclass with ``to_predicate()`` (the JSON object, ``None``
fields omitted) and a strict ``from_predicate()`` that refuses unknown members, wrong
types, floats, bad digests (``sha256:<64 hex>``), bad timestamps (RFC 3339 UTC with
milliseconds, ``...T12:00:00.000Z``) and plaintext where a commitment is required.
Constructing a dataclass runs the same checks, so an invalid record cannot be built.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from audit_chain._b64 import b64decode_strict
from audit_chain.commitment import is_commitment
from audit_chain.errors import MalformedStatementError

__all__ = [
    "ATTESTATION_STATUSES",
    "RESPONSE_ACTIONS",
    "RESPONSE_ACTION_PREDICATE",
    "TASK_EXECUTION_PREDICATE",
    "TASK_OUTCOMES",
    "NodeResultSignature",
    "ResponseAction",
    "TaskExecution",
    "format_time",
]

TASK_EXECUTION_PREDICATE = "https://cntrust.dev/task-execution/v1"
RESPONSE_ACTION_PREDICATE = "https://cntrust.dev/response-action/v1"
TASK_OUTCOMES = frozenset({"succeeded", "failed", "cancelled", "rejected", "timed_out"})
ATTESTATION_STATUSES = frozenset({"affirming", "warning", "contraindicated", "none"})
RESPONSE_ACTIONS = frozenset({"quarantine", "release", "revocation", "policy_change"})
TARGET_KINDS = frozenset({"node", "operator", "certificate", "policy"})

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_TRACE = re.compile(r"[0-9a-f]{32}")
_KEYID = re.compile(r"[0-9a-f]{32}")
_USAGE_KEY = re.compile(r"[a-z][a-zA-Z0-9]{0,31}")
_ID_MAX = 256
_LIST_MAX = 32


def _fail(message: str, reason: str = "bad_field") -> MalformedStatementError:
    return MalformedStatementError(message, reason=reason)


def format_time(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-01-02T03:04:05.678Z``."""
    if value.tzinfo is None:
        raise _fail("timestamps must be timezone-aware", "bad_time")
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: object, key: str) -> datetime:
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise _fail(f"{key} is not an RFC 3339 UTC timestamp with milliseconds", "bad_time")
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise _fail(f"{key} is not a valid date", "bad_time") from exc


def _text(value: object, key: str, max_len: int = _ID_MAX) -> str:
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise _fail(f"{key} must be a non-empty string of at most {max_len} characters")
    if any(c < " " for c in value):
        raise _fail(f"{key} contains control characters")
    return value


def _digest(value: object, key: str) -> str:
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise _fail(f"{key} must be sha256:<64 lowercase hex>", "bad_digest")
    return value


def _commitment(value: object, key: str) -> str:
    if not is_commitment(value):
        raise _fail(f"{key} must be a salted commitment sha256:<64 hex>", "not_a_commitment")
    return str(value)


def _int(value: object, key: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(f"{key} must be an integer in [{lo}, {hi}]")
    return value


def _choice(value: object, key: str, choices: frozenset[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _fail(f"{key} must be one of {sorted(choices)}")
    return value


def _ids(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or len(value) > _LIST_MAX:
        raise _fail(f"{key} must be a list of at most {_LIST_MAX} ids")
    return tuple(_text(v, key) for v in value)


def _trace(value: object) -> str:
    if not isinstance(value, str) or not _TRACE.fullmatch(value):
        raise _fail("traceId must be 32 lowercase hex digits")
    return value


def _members(obj: Mapping[str, Any], required: set[str], optional: set[str], what: str) -> None:
    keys = set(obj)
    if not required <= keys or not keys <= required | optional:
        raise _fail(
            f"{what} members must be {sorted(required)} plus optionally {sorted(optional)}",
            "bad_members",
        )


@dataclass(frozen=True)
class NodeResultSignature:
    """The node's Ed25519 signature over its result (see :mod:`audit_chain.node_result`):
    the raw public key and its id, the signature, and the signed fields the record does not
    carry elsewhere (the attempt, the node's own start and end in Unix milliseconds)."""

    keyid: str
    public_key: bytes
    sig: bytes
    attempt: int = 0
    started_ms: int = 0
    finished_ms: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.keyid, str) or not _KEYID.fullmatch(self.keyid):
            raise _fail("nodeResult.keyid must be 32 lowercase hex digits")
        if len(self.public_key) != 32:
            raise _fail("nodeResult.publicKey must be a 32-byte Ed25519 key")
        if len(self.sig) != 64:
            raise _fail("nodeResult.sig must be a 64-byte Ed25519 signature")
        _int(self.attempt, "nodeResult.attempt", 0, 2**31 - 1)
        _int(self.started_ms, "nodeResult.startedMs", 0, 2**53)
        _int(self.finished_ms, "nodeResult.finishedMs", 0, 2**53)

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "finishedMs": self.finished_ms,
            "keyid": self.keyid,
            "publicKey": base64.b64encode(self.public_key).decode(),
            "sig": base64.b64encode(self.sig).decode(),
            "startedMs": self.started_ms,
        }

    @classmethod
    def from_json(cls, obj: object) -> NodeResultSignature:
        if not isinstance(obj, dict):
            raise _fail("nodeResult must be an object")
        _members(
            obj,
            {"attempt", "finishedMs", "keyid", "publicKey", "sig", "startedMs"},
            set(),
            "nodeResult",
        )
        key = b64decode_strict(
            obj["publicKey"], "nodeResult.publicKey", MalformedStatementError, "bad_field"
        )
        sig = b64decode_strict(obj["sig"], "nodeResult.sig", MalformedStatementError, "bad_field")
        return cls(
            keyid=obj["keyid"],
            public_key=key,
            sig=sig,
            attempt=obj["attempt"],
            started_ms=obj["startedMs"],
            finished_ms=obj["finishedMs"],
        )


@dataclass(frozen=True)
class TaskExecution:
    """Predicate of one task execution. ``tenant`` and ``free_text`` are commitments."""

    predicate_type: ClassVar[str] = TASK_EXECUTION_PREDICATE

    task_id: str
    tenant: str
    node_spiffe_id: str | None
    command_digest: str
    started_on: datetime
    finished_on: datetime
    outcome: str
    input_digest: str | None = None
    output_digest: str | None = None
    exit_code: int | None = None
    attestation_result_id: str | None = None
    attestation_status: str | None = None
    trust_score_permille: int | None = None
    policy_decision_ids: tuple[str, ...] = ()
    trust_uncertainty_permille: int | None = None
    policy_version: str | None = None
    resource_usage: tuple[tuple[str, int], ...] = ()
    trace_id: str | None = None
    node_result: NodeResultSignature | None = None
    free_text: str | None = None

    def __post_init__(self) -> None:
        _text(self.task_id, "taskId", 128)
        _commitment(self.tenant, "tenant")
        if self.node_spiffe_id is not None:  # None: never placed (rejected, cancelled early)
            if not isinstance(self.node_spiffe_id, str) or not self.node_spiffe_id.startswith(
                "spiffe://"
            ):
                raise _fail("nodeSpiffeId must be a spiffe:// URI")
            _text(self.node_spiffe_id, "nodeSpiffeId", 2048)
        _digest(self.command_digest, "commandDigest")
        for key, value in (
            ("inputDigest", self.input_digest),
            ("outputDigest", self.output_digest),
        ):
            if value is not None:
                _digest(value, key)
        started = format_time(self.started_on)
        finished = format_time(self.finished_on)
        if finished < started:
            raise _fail("finishedOn is before startedOn", "bad_time")
        _choice(self.outcome, "outcome", TASK_OUTCOMES)
        if self.exit_code is not None:
            _int(self.exit_code, "exitCode", -(2**31), 2**31 - 1)
        if self.attestation_result_id is not None:
            _text(self.attestation_result_id, "attestation.resultId")
        if self.attestation_status is not None:
            _choice(self.attestation_status, "attestation.status", ATTESTATION_STATUSES)
        if self.trust_score_permille is not None:
            _int(self.trust_score_permille, "placement.trustScorePermille", 0, 1000)
        if self.trust_uncertainty_permille is not None:
            _int(self.trust_uncertainty_permille, "placement.trustUncertaintyPermille", 0, 1000)
        if self.policy_version is not None:
            _text(self.policy_version, "placement.policyVersion", 80)
        _ids(self.policy_decision_ids, "placement.policyDecisionIds")
        if len(self.resource_usage) > 16:
            raise _fail("at most 16 resourceUsage counters")
        names = [k for k, _ in self.resource_usage]
        if names != sorted(set(names)):
            raise _fail("resourceUsage names must be unique and sorted")
        for k, v in self.resource_usage:
            if not _USAGE_KEY.fullmatch(k):
                raise _fail(f"bad resourceUsage name {k!r}")
            _int(v, f"resourceUsage.{k}", 0, 2**63 - 1)
        if self.trace_id is not None:
            _trace(self.trace_id)
        if self.free_text is not None:
            _commitment(self.free_text, "freeText")

    def subject(self) -> tuple[str, str]:
        """(name, sha256 hex): the task, digested by its output (else its command)."""
        digest = self.output_digest or self.command_digest
        return f"task/{self.task_id}", digest.removeprefix("sha256:")

    def to_predicate(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "taskId": self.task_id,
            "tenant": self.tenant,
            "commandDigest": self.command_digest,
            "startedOn": format_time(self.started_on),
            "finishedOn": format_time(self.finished_on),
            "outcome": self.outcome,
            "placement": {"policyDecisionIds": list(self.policy_decision_ids)},
        }
        optional = {
            "inputDigest": self.input_digest,
            "outputDigest": self.output_digest,
            "exitCode": self.exit_code,
            "traceId": self.trace_id,
            "freeText": self.free_text,
            "nodeSpiffeId": self.node_spiffe_id,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        placement = {
            "trustScorePermille": self.trust_score_permille,
            "trustUncertaintyPermille": self.trust_uncertainty_permille,
            "policyVersion": self.policy_version,
        }
        out["placement"].update({k: v for k, v in placement.items() if v is not None})
        attestation = {"resultId": self.attestation_result_id, "status": self.attestation_status}
        attestation = {k: v for k, v in attestation.items() if v is not None}
        if attestation:
            out["attestation"] = attestation
        if self.resource_usage:
            out["resourceUsage"] = dict(self.resource_usage)
        if self.node_result is not None:
            out["nodeResult"] = self.node_result.to_json()
        return out

    @classmethod
    def from_predicate(cls, obj: Mapping[str, Any]) -> TaskExecution:
        """Strictly parse a task-execution predicate. Raises MalformedStatementError."""
        _members(
            obj,
            {"taskId", "tenant", "commandDigest", "startedOn", "finishedOn", "outcome",
             "placement"},
            {"nodeSpiffeId", "inputDigest", "outputDigest", "exitCode", "traceId", "freeText",
             "attestation", "resourceUsage", "nodeResult"},
            "task-execution predicate",
        )  # fmt: skip
        placement = obj["placement"]
        if not isinstance(placement, dict):
            raise _fail("placement must be an object")
        _members(
            placement,
            {"policyDecisionIds"},
            {"trustScorePermille", "trustUncertaintyPermille", "policyVersion"},
            "placement",
        )
        attestation = obj.get("attestation", {})
        if not isinstance(attestation, dict) or (not attestation and "attestation" in obj):
            raise _fail("attestation must be a non-empty object")
        _members(attestation, set(), {"resultId", "status"}, "attestation")
        usage = obj.get("resourceUsage", {})
        if not isinstance(usage, dict) or (not usage and "resourceUsage" in obj):
            raise _fail("resourceUsage must be a non-empty object")
        node_result = obj.get("nodeResult")
        for key in ("taskId", "tenant", "outcome"):
            if not isinstance(obj[key], str):
                raise _fail(f"{key} must be a string")
        if "nodeSpiffeId" in obj and not isinstance(obj["nodeSpiffeId"], str):
            raise _fail("nodeSpiffeId must be a string")
        return cls(
            task_id=obj["taskId"],
            tenant=obj["tenant"],
            node_spiffe_id=obj.get("nodeSpiffeId"),
            command_digest=obj["commandDigest"],
            started_on=_parse_time(obj["startedOn"], "startedOn"),
            finished_on=_parse_time(obj["finishedOn"], "finishedOn"),
            outcome=obj["outcome"],
            input_digest=obj.get("inputDigest"),
            output_digest=obj.get("outputDigest"),
            exit_code=obj.get("exitCode"),
            attestation_result_id=attestation.get("resultId"),
            attestation_status=attestation.get("status"),
            trust_score_permille=placement.get("trustScorePermille"),
            policy_decision_ids=_ids(placement["policyDecisionIds"], "policyDecisionIds"),
            trust_uncertainty_permille=placement.get("trustUncertaintyPermille"),
            policy_version=placement.get("policyVersion"),
            resource_usage=tuple(sorted(usage.items())),
            trace_id=obj.get("traceId"),
            node_result=None if node_result is None else NodeResultSignature.from_json(node_result),
            free_text=obj.get("freeText"),
        )


@dataclass(frozen=True)
class ResponseAction:
    """Predicate of a security response: quarantine, release, revocation, policy change.

    ``actor`` is the SPIFFE ID of the deciding service or a commitment to a person;
    ``detail`` is a commitment to free text; ``reasons`` are stable dotted ids
    (e.g. ``trust.evidence.task_failed``, ``ids.perimeter.syn_flood``).
    """

    predicate_type: ClassVar[str] = RESPONSE_ACTION_PREDICATE

    action_id: str
    action: str
    target_kind: str
    target_id: str
    target_digest: str
    decided_on: datetime
    actor: str
    reasons: tuple[str, ...] = ()
    evidence_ids: tuple[str, ...] = ()
    policy_decision_ids: tuple[str, ...] = ()
    trust_score_permille: int | None = None
    trace_id: str | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        _text(self.action_id, "actionId", 128)
        _choice(self.action, "action", RESPONSE_ACTIONS)
        _choice(self.target_kind, "target.kind", TARGET_KINDS)
        _text(self.target_id, "target.id", 2048)
        _digest(self.target_digest, "target.digest")
        format_time(self.decided_on)
        if not (self.actor.startswith("spiffe://") or is_commitment(self.actor)):
            raise _fail("actor must be a spiffe:// URI or a commitment", "not_a_commitment")
        _text(self.actor, "actor", 2048)
        _ids(self.reasons, "reasons")
        _ids(self.evidence_ids, "evidenceIds")
        _ids(self.policy_decision_ids, "policyDecisionIds")
        if self.trust_score_permille is not None:
            _int(self.trust_score_permille, "trustScorePermille", 0, 1000)
        if self.trace_id is not None:
            _trace(self.trace_id)
        if self.detail is not None:
            _commitment(self.detail, "detail")

    def subject(self) -> tuple[str, str]:
        return f"{self.target_kind}/{self.target_id}", self.target_digest.removeprefix("sha256:")

    def to_predicate(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "actionId": self.action_id,
            "action": self.action,
            "target": {"kind": self.target_kind, "id": self.target_id,
                       "digest": self.target_digest},
            "decidedOn": format_time(self.decided_on),
            "actor": self.actor,
            "reasons": list(self.reasons),
            "evidenceIds": list(self.evidence_ids),
            "policyDecisionIds": list(self.policy_decision_ids),
        }  # fmt: skip
        optional = {
            "trustScorePermille": self.trust_score_permille,
            "traceId": self.trace_id,
            "detail": self.detail,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out

    @classmethod
    def from_predicate(cls, obj: Mapping[str, Any]) -> ResponseAction:
        """Strictly parse a response-action predicate. Raises MalformedStatementError."""
        _members(
            obj,
            {"actionId", "action", "target", "decidedOn", "actor", "reasons", "evidenceIds",
             "policyDecisionIds"},
            {"trustScorePermille", "traceId", "detail"},
            "response-action predicate",
        )  # fmt: skip
        target = obj["target"]
        if not isinstance(target, dict):
            raise _fail("target must be an object")
        _members(target, {"kind", "id", "digest"}, set(), "target")
        for key in ("actionId", "action", "actor"):
            if not isinstance(obj[key], str):
                raise _fail(f"{key} must be a string")
        for key in ("kind", "id", "digest"):
            if not isinstance(target[key], str):
                raise _fail(f"target.{key} must be a string")
        return cls(
            action_id=obj["actionId"],
            action=obj["action"],
            target_kind=target["kind"],
            target_id=target["id"],
            target_digest=target["digest"],
            decided_on=_parse_time(obj["decidedOn"], "decidedOn"),
            actor=obj["actor"],
            reasons=_ids(obj["reasons"], "reasons"),
            evidence_ids=_ids(obj["evidenceIds"], "evidenceIds"),
            policy_decision_ids=_ids(obj["policyDecisionIds"], "policyDecisionIds"),
            trust_score_permille=obj.get("trustScorePermille"),
            trace_id=obj.get("traceId"),
            detail=obj.get("detail"),
        )
