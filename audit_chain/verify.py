"""Offline verification of a proof bundle: the regulator's side.

Imports nothing outside ``audit_chain`` (and ``cryptography``). The on-chain check is not
done here: the caller passes ``check_anchor``, a callable that raises if the anchor is not
on the chain (the CLI builds it from ``audit_chain.anchoring`` when ``--rpc`` is given).

Steps, in order; the first failure raises
:class:`~audit_chain.errors.BundleVerificationError` with ``step`` set to its name and the
underlying error as ``__cause__``:

1. ``size``              the bundle is at most ``max_bytes`` (before any parsing)
2. ``parse``             strict JSON bundle, DSSE record shape
3. ``keys``              the caller's verifier keys parse
4. ``checkpoint``        the checkpoint note is signed by the log key, origin matches
5. ``record_signature``  the DSSE record is signed by the statement key
6. ``statement``         the payload is a canonical in-toto statement, known predicate
7. ``node_signature``    a task record's ``nodeResult``: the node's Ed25519 signature over
                         its result verifies (required with ``require_node_signature``)
8. ``inclusion``         the record's leaf hash is in the checkpoint's tree
9. ``anchor``            an anchor is present (unless not required) and covers the tree
10. ``consistency``      the checkpoint's tree is a prefix of the anchored tree
11. ``chain``            ``check_anchor(anchor)`` (only when given)
"""

from __future__ import annotations

from collections.abc import Callable

from audit_chain.bundle import MAX_BUNDLE_BYTES, Anchor, ProofBundle, parse_bundle
from audit_chain.checkpoint import Checkpoint, open_checkpoint
from audit_chain.dsse import INTOTO_PAYLOAD_TYPE, verify_envelope
from audit_chain.errors import (
    AuditChainError,
    BundleVerificationError,
    InputTooLargeError,
    MalformedStatementError,
)
from audit_chain.merkle import leaf_hash, verify_consistency, verify_inclusion
from audit_chain.node_result import verify_node_result
from audit_chain.note import NoteVerifier
from audit_chain.predicates import TaskExecution
from audit_chain.statement import parse_statement

__all__ = ["STEPS", "verify_bundle"]

STEPS = (
    "size",
    "parse",
    "keys",
    "checkpoint",
    "record_signature",
    "statement",
    "node_signature",
    "inclusion",
    "anchor",
    "consistency",
    "chain",
)

AnchorCheck = Callable[[Anchor], None]


def _fail(step: str, exc: Exception) -> BundleVerificationError:
    err = BundleVerificationError(step, str(exc), reason=getattr(exc, "reason", "failed"))
    err.__cause__ = exc
    return err


def verify_bundle(
    bundle_bytes: bytes,
    log_vkey: str,
    statement_vkey: str | None = None,
    *,
    check_anchor: AnchorCheck | None = None,
    require_anchor: bool = True,
    require_node_signature: bool = False,
    origin: str | None = None,
    max_bytes: int = MAX_BUNDLE_BYTES,
) -> None:
    """Verify a proof bundle offline; return None when every step holds.

    ``log_vkey`` is the log's signed-note verifier key; ``statement_vkey`` the key that
    signs records (default: the log key). ``origin`` is the expected checkpoint origin
    (default: the log key's name). ``require_anchor=False`` accepts a bundle without an
    anchor (an entry not yet anchored); a present anchor is always checked. A task record's
    node signature is always checked when present; ``require_node_signature=True`` also
    refuses a task record without one.

    Raises:
        BundleVerificationError: ``step`` is the first step that failed (see module doc).
    """
    # 1. size, before parsing anything
    if len(bundle_bytes) > max_bytes:
        raise _fail(
            "size",
            InputTooLargeError("proof bundle", size_bytes=len(bundle_bytes), limit_bytes=max_bytes),
        )
    # 2. parse
    try:
        bundle: ProofBundle = parse_bundle(bundle_bytes, max_bytes=max_bytes)
    except AuditChainError as exc:
        raise _fail("parse", exc) from exc
    # 3. keys
    try:
        log_key = NoteVerifier.from_vkey(log_vkey)
        record_key = log_key if statement_vkey is None else NoteVerifier.from_vkey(statement_vkey)
    except AuditChainError as exc:
        raise _fail("keys", exc) from exc
    # 4. checkpoint signed by the log
    try:
        checkpoint: Checkpoint = open_checkpoint(bundle.checkpoint, log_key, origin=origin)
    except AuditChainError as exc:
        raise _fail("checkpoint", exc) from exc
    # 5. record signed by the statement key
    envelope = bundle.envelope
    try:
        verify_envelope(envelope, record_key)
    except AuditChainError as exc:
        raise _fail("record_signature", exc) from exc
    # 6. statement
    try:
        if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
            raise MalformedStatementError(
                f"payloadType is not {INTOTO_PAYLOAD_TYPE}", reason="bad_payload_type"
            )
        statement = parse_statement(envelope.payload)
    except AuditChainError as exc:
        raise _fail("statement", exc) from exc
    # 7. the node's own signature over its result
    if isinstance(statement.predicate, TaskExecution):
        try:
            verify_node_result(statement.predicate, require=require_node_signature)
        except AuditChainError as exc:
            raise _fail("node_signature", exc) from exc
    # 8. inclusion of the record in the checkpoint's tree
    try:
        verify_inclusion(
            bundle.leaf_index,
            checkpoint.tree_size,
            leaf_hash(bundle.entry),
            bundle.inclusion_proof,
            checkpoint.root,
        )
    except AuditChainError as exc:
        raise _fail("inclusion", exc) from exc
    # 9. anchor present and covering the checkpoint
    anchor = bundle.anchor
    if anchor is None:
        if require_anchor:
            raise BundleVerificationError("anchor", "the bundle has no anchor", reason="missing")
        return
    if anchor.tree_size < checkpoint.tree_size:
        raise BundleVerificationError(
            "anchor",
            f"anchored tree ({anchor.tree_size}) is smaller than the checkpoint's "
            f"({checkpoint.tree_size})",
            reason="anchor_too_small",
        )
    # 10. consistency from the checkpoint to the anchored tree
    try:
        verify_consistency(
            checkpoint.tree_size,
            anchor.tree_size,
            bundle.consistency_proof,
            checkpoint.root,
            anchor.root,
        )
    except AuditChainError as exc:
        raise _fail("consistency", exc) from exc
    # 11. the anchor on chain (only with a chain client)
    if check_anchor is not None:
        try:
            check_anchor(anchor)
        except Exception as exc:  # fail closed: any failure of the chain check rejects
            raise _fail("chain", exc) from exc
