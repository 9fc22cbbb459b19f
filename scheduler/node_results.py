"""The scheduler's side of the node's signature over its result.

A node registers one Ed25519 result key (``POST /v1/agent/result-key``, see
:mod:`scheduler.routers.node_keys`); from then on every result it reports must carry its
signature over the canonical statement of :func:`audit_chain.node_result_message` (task id,
attempt, exit code, output digest, usage counters, the node's start and end). The check
runs in the transaction that records the result (:func:`check_report`, called by
``store.report_task``): a missing or bad signature refuses that result with the problem
type ``node-signature-invalid`` and writes nothing for it. A verified signature is stored
in ``Task.node_signature`` and handed to the provenance record through the session
(:func:`signed_result_of`), so the record carries the node's key, key id and signature.

Nodes without a registered key (older agents) are accepted without a signature, and their
records carry none; a verifier that requires node signatures refuses those records.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlmodel import Session

from audit_chain import (
    AuditChainError,
    NodeResultSignature,
    node_key_id,
    node_result_message,
    usage_counters,
)
from audit_chain.node_result import verify_node_signature
from scheduler.db import SHARED_KEY, after_commit
from scheduler.errors import Conflict, InvalidRequest, SchedulerError
from scheduler.models import Task
from scheduler.tables.node_keys import NodeResultKey

if TYPE_CHECKING:
    from scheduler.store import Report

SESSION_KEY = "cntrust.node_results"
KEYS_KEY = "cntrust.node_result_keys"
_MAX_MS = 2**53


class NodeSignatureInvalid(SchedulerError):
    """A node with a registered result key reported a result without a valid signature."""

    status = 422
    type_slug = "node-signature-invalid"
    title = "Node signature invalid"


def decode_public_key(text: str) -> bytes:
    """A raw 32-byte Ed25519 public key from standard base64. Raises InvalidRequest."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("public_key is not base64", reason="bad_key") from exc
    if len(raw) != 32:
        raise InvalidRequest("public_key must be a raw 32-byte Ed25519 key", reason="bad_key")
    return raw


def register_result_key(
    session: Session, node_id: str, public_key: bytes, now: float
) -> NodeResultKey:
    """Register ``node_id``'s result key (idempotent for the same key).

    Raises:
        Conflict: the node already has another key (reason ``key_mismatch``).
    """
    text = base64.b64encode(public_key).decode()
    row = session.get(NodeResultKey, node_id)
    if row is not None:
        if row.public_key != text:
            raise Conflict(
                f"node {node_id} already has result key {row.key_id}", reason="key_mismatch"
            )
        return row
    row = NodeResultKey(
        node_id=node_id, public_key=text, key_id=node_key_id(public_key), registered_at=now
    )
    session.add(row)
    return row


def _b64url(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise NodeSignatureInvalid(
            "node_signature is not base64url", reason="bad_encoding"
        ) from exc


def to_ms(seconds: float) -> int:
    """Unix seconds as integer milliseconds (how the node's times are signed)."""
    return round(seconds * 1000)


@dataclass(frozen=True)
class _ResultKey:
    key_id: str
    public_key: bytes


def _result_key(session: Session, node_id: str) -> _ResultKey | None:
    """The node's registered result key.

    A registered key never changes or goes away (``register_result_key`` refuses a second
    key), so a found key is remembered for the process; a node without one is looked up
    once per transaction (it may register a key at any time, on any replica)."""
    known: dict[str, _ResultKey] = session.info.setdefault(SHARED_KEY, {}).setdefault(
        "node_result_keys", {}
    )
    found = known.get(node_id)
    if found is not None:
        return found
    missing: set[str] = session.info.setdefault(KEYS_KEY, set())
    if node_id in missing:
        return None
    with session.no_autoflush:  # the batch's pending writes wait for its one flush
        row = session.get(NodeResultKey, node_id)
    if row is None:
        missing.add(node_id)
        return None
    found = _ResultKey(row.key_id, base64.b64decode(row.public_key))
    # remembered once committed: a key registered in this very transaction may roll back
    after_commit(session, lambda: known.__setitem__(node_id, found))
    return found


def check_report(session: Session, node_id: str, task: Task, report: Report) -> None:
    """Verify the node's signature over ``report`` when the node has a result key.

    Raises:
        NodeSignatureInvalid: reason ``missing`` (no signature), ``incomplete`` (no start or
            end time), ``bad_encoding``, ``bad_signature`` or ``bad_key``.
    """
    row = _result_key(session, node_id)
    if row is None:
        return
    signature = report.node_signature
    if not signature:
        raise NodeSignatureInvalid(
            f"node {node_id} has result key {row.key_id}; its result for {task.id} is unsigned",
            reason="missing",
        )
    if report.started_at is None or report.finished_at is None:
        raise NodeSignatureInvalid(
            "a signed result needs started_at and finished_at", reason="incomplete"
        )
    sig = _b64url(signature)
    public_key = row.public_key
    started_ms, finished_ms = to_ms(report.started_at), to_ms(report.finished_at)
    message = node_result_message(
        task_id=task.id,
        attempt=task.attempt,
        exit_code=report.exit_code,
        output_digest=report.output_digest,
        usage=usage_counters(report.usage),
        started_ms=started_ms,
        finished_ms=finished_ms,
    )
    try:
        verify_node_signature(public_key, sig, message)
        signed = NodeResultSignature(
            keyid=row.key_id,
            public_key=public_key,
            sig=sig,
            attempt=task.attempt,
            started_ms=started_ms,
            finished_ms=finished_ms,
        )
    except AuditChainError as exc:
        raise NodeSignatureInvalid(
            f"the result for {task.id} is not signed by node {node_id}'s key {row.key_id}: {exc}",
            reason=getattr(exc, "reason", "bad_signature"),
        ) from exc
    task.node_signature = base64.urlsafe_b64encode(sig).decode().rstrip("=")
    session.info.setdefault(SESSION_KEY, {})[task.id] = signed


def signed_result_of(session: Session, task: Task) -> NodeResultSignature | None:
    """The node signature verified for ``task`` in this transaction, if any."""
    found: dict[str, NodeResultSignature] = session.info.get(SESSION_KEY, {})
    return found.get(task.id)
