"""in-toto Statement v1 records with cntrust predicates, signed into DSSE envelopes.

Two predicate types (documented in docs/provenance.md):

* ``https://cntrust.dev/task-execution/v1`` (:class:`TaskExecution`) - one finished task:
  who (tenant commitment), where (node SPIFFE ID, attestation result), what (command,
  input, output digests), under which decision (trust score, policy decision ids), when,
  with which resources, and the node's own signature over its result.
* ``https://cntrust.dev/response-action/v1`` (:class:`ResponseAction`) - a security
  response: quarantine, release, revocation, policy change.

Invariants: digests only, never payloads or secrets; personal fields are salted
commitments (:mod:`audit_chain.commitment`); the payload is canonical JSON (sorted keys,
compact, integers only - no floats), and :func:`parse_statement` accepts only what
:meth:`Statement.to_bytes` produces, so a record has exactly one encoding.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from audit_chain.dsse import INTOTO_PAYLOAD_TYPE, Envelope, sign_envelope, verify_envelope
from audit_chain.errors import InputTooLargeError, MalformedStatementError
from audit_chain.note import NoteSigner, NoteVerifier
from audit_chain.predicates import (
    RESPONSE_ACTION_PREDICATE,
    TASK_EXECUTION_PREDICATE,
    ResponseAction,
    TaskExecution,
)

__all__ = [
    "MAX_STATEMENT_BYTES",
    "STATEMENT_TYPE",
    "Statement",
    "open_statement",
    "parse_statement",
    "sign_statement",
    "statement_for",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
MAX_STATEMENT_BYTES = 32 * 1024
Predicate = TaskExecution | ResponseAction
_HEX64 = re.compile(r"[0-9a-f]{64}")
_PARSERS: dict[str, Callable[[dict[str, Any]], Predicate]] = {
    TASK_EXECUTION_PREDICATE: TaskExecution.from_predicate,
    RESPONSE_ACTION_PREDICATE: ResponseAction.from_predicate,
}


def canonical_json(obj: Any) -> bytes:
    """Compact JSON with sorted keys (UTF-8, non-ASCII kept)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Statement:
    """An in-toto Statement v1 with one subject and a cntrust predicate."""

    subject_name: str
    subject_sha256: str
    predicate: Predicate

    @property
    def predicate_type(self) -> str:
        return self.predicate.predicate_type

    def to_json(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": self.subject_name, "digest": {"sha256": self.subject_sha256}}],
            "predicateType": self.predicate_type,
            "predicate": self.predicate.to_predicate(),
        }

    def to_bytes(self) -> bytes:
        """Canonical payload bytes."""
        return canonical_json(self.to_json())


def statement_for(predicate: Predicate) -> Statement:
    """The statement whose subject is the predicate's natural subject."""
    name, digest = predicate.subject()
    return Statement(name, digest, predicate)


def _reject_float(value: str) -> Any:
    raise MalformedStatementError("floats are not allowed in records", reason="float")


def parse_statement(payload: bytes, *, max_bytes: int = MAX_STATEMENT_BYTES) -> Statement:
    """Parse a canonical statement payload with a known cntrust predicate.

    Raises:
        InputTooLargeError: over ``max_bytes``.
        MalformedStatementError: not JSON, wrong ``_type``, unknown predicate type, a
            predicate field of the wrong type or shape, or a non-canonical encoding.
    """
    if len(payload) > max_bytes:
        raise InputTooLargeError("statement", size_bytes=len(payload), limit_bytes=max_bytes)
    try:
        obj = json.loads(payload, parse_float=_reject_float, parse_constant=_reject_float)
    except (ValueError, RecursionError) as exc:
        raise MalformedStatementError("statement is not JSON") from exc
    if not isinstance(obj, dict) or set(obj) != {"_type", "subject", "predicateType", "predicate"}:
        raise MalformedStatementError("statement must have _type/subject/predicateType/predicate")
    if obj["_type"] != STATEMENT_TYPE:
        raise MalformedStatementError(f"_type is not {STATEMENT_TYPE}", reason="bad_type")
    subject = obj["subject"]
    if (
        not isinstance(subject, list)
        or len(subject) != 1
        or not isinstance(subject[0], dict)
        or set(subject[0]) != {"name", "digest"}
        or not isinstance(subject[0]["digest"], dict)
        or set(subject[0]["digest"]) != {"sha256"}
    ):
        raise MalformedStatementError("subject must be one {name, digest: {sha256}}")
    name = subject[0]["name"]
    digest = subject[0]["digest"]["sha256"]
    if not isinstance(name, str) or not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise MalformedStatementError("bad subject name or sha256 digest")
    parser = _PARSERS.get(obj["predicateType"]) if isinstance(obj["predicateType"], str) else None
    if parser is None:
        raise MalformedStatementError(
            f"unknown predicateType {obj['predicateType']!r}", reason="unknown_predicate"
        )
    if not isinstance(obj["predicate"], dict):
        raise MalformedStatementError("predicate must be an object")
    predicate = parser(obj["predicate"])
    statement = Statement(name, digest, predicate)
    if statement.subject_name != predicate.subject()[0] or digest != predicate.subject()[1]:
        raise MalformedStatementError("subject does not match the predicate", reason="bad_subject")
    if statement.to_bytes() != payload:
        raise MalformedStatementError(
            "statement is not canonically encoded", reason="non_canonical"
        )
    return statement


def sign_statement(statement: Statement, signer: NoteSigner) -> Envelope:
    """Sign a statement into a DSSE envelope (``application/vnd.in-toto+json``)."""
    return sign_envelope(statement.to_bytes(), INTOTO_PAYLOAD_TYPE, signer)


def open_statement(envelope: Envelope, verifier: NoteVerifier) -> Statement:
    """Verify the envelope's signature, then parse its statement.

    Raises:
        EnvelopeVerificationError: no valid signature by ``verifier``.
        MalformedStatementError: wrong payload type or a malformed statement.
    """
    verify_envelope(envelope, verifier)
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        raise MalformedStatementError(
            f"payloadType is not {INTOTO_PAYLOAD_TYPE}", reason="bad_payload_type"
        )
    return parse_statement(envelope.payload)
