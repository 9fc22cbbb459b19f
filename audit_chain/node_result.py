"""The node's own signature over its result: the message it signs and its verification.

A node agent signs, with its Ed25519 node key, a canonical statement of what it ran::

    b"cntrust-node-result-v1\\n" + canonical JSON (sorted keys, no spaces, ASCII) of
    {"attempt": int, "exitCode": int, "finishedMs": int, "outputDigest": "sha256:<hex>",
     "startedMs": int, "taskId": str, "usage": {counter: int, ...}}

``startedMs``/``finishedMs`` are the node's own clock (Unix milliseconds); ``usage`` holds
the integer counters of :func:`usage_counters` (the same ones the record's
``resourceUsage`` carries). The scheduler verifies the signature when the result arrives
and copies it into the task-execution record (``nodeResult``: the public key, its key id,
the signature, the attempt and the node's times), so an offline verifier rebuilds the
message from the record alone and checks it with :func:`verify_node_result`.

Invariants: the key id is the first 16 bytes of SHA-256 of the raw 32-byte public key, in
hex; a record whose key id does not match its key, or whose result fields are missing, is
refused before any signature check.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping

import nacl.bindings
import nacl.exceptions

from audit_chain.errors import NodeResultVerificationError
from audit_chain.predicates import TaskExecution

__all__ = [
    "NODE_RESULT_CONTEXT",
    "node_key_id",
    "node_result_message",
    "usage_counters",
    "verify_node_result",
    "verify_node_signature",
]

NODE_RESULT_CONTEXT = b"cntrust-node-result-v1\n"
_MAX_COUNTERS = 16


def node_key_id(public_key: bytes) -> str:
    """Key id of a raw Ed25519 public key: hex of the first 16 bytes of its SHA-256."""
    return hashlib.sha256(public_key).digest()[:16].hex()


def usage_counters(usage: Mapping[str, object]) -> tuple[tuple[str, int], ...]:
    """Resource usage (``wall_s``, ``cpu_s``, ``max_rss_kb``, ...) as integer counters named
    like the predicate's ``resourceUsage`` (``wallMs``, ``cpuMs``, ``maxRssBytes``): ``_s``
    values become milliseconds, ``_kb`` values bytes, other names are camel-cased; negative,
    non-finite and non-numeric values are dropped; at most 16 counters, sorted by name."""
    out: dict[str, int] = {}
    for key, value in usage.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            continue
        name, scale = key, 1
        if key.endswith("_s"):
            name, scale = key[:-2] + "_ms", 1000
        elif key.endswith("_kb"):
            name, scale = key[:-3] + "_bytes", 1024
        head, *rest = name.split("_")
        camel = head + "".join(p[:1].upper() + p[1:] for p in rest)
        if not camel or not camel[0].isalpha() or not camel.isalnum() or len(camel) > 32:
            continue
        out[camel[0].lower() + camel[1:]] = round(value * scale)
    return tuple(sorted(out.items())[:_MAX_COUNTERS])


def node_result_message(
    *,
    task_id: str,
    attempt: int,
    exit_code: int,
    output_digest: str,
    usage: tuple[tuple[str, int], ...],
    started_ms: int,
    finished_ms: int,
) -> bytes:
    """The exact bytes a node signs for one result (see the module docstring)."""
    body = {
        "attempt": attempt,
        "exitCode": exit_code,
        "finishedMs": finished_ms,
        "outputDigest": output_digest,
        "startedMs": started_ms,
        "taskId": task_id,
        "usage": dict(usage),
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return NODE_RESULT_CONTEXT + text.encode("ascii")


def verify_node_signature(public_key: bytes, sig: bytes, message: bytes) -> None:
    """Check an Ed25519 signature by a raw 32-byte public key.

    Verified with libsodium, which also refuses small-order and non-canonical keys and
    small-order ``R`` (OpenSSL accepts ``R = identity, S = 0`` under the identity key for
    every message: a signature that binds the node to nothing).

    Raises:
        NodeResultVerificationError: ``bad_key`` (not a 32-byte Ed25519 key) or
            ``bad_signature`` (the signature does not verify).
    """
    key_id = node_key_id(public_key)
    if len(public_key) != 32:
        raise NodeResultVerificationError(
            "the node key is not a raw Ed25519 public key", reason="bad_key"
        )
    try:
        if len(sig) != 64:  # libsodium would split signature || message elsewhere
            raise nacl.exceptions.BadSignatureError
        nacl.bindings.crypto_sign_open(sig + message, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError) as exc:
        raise NodeResultVerificationError(
            f"the node's signature does not verify with key {key_id}",
            reason="bad_signature",
            key_id=key_id,
        ) from exc


def verify_node_result(execution: TaskExecution, *, require: bool = False) -> None:
    """Verify the node's signature a task-execution record carries.

    A record without ``nodeResult`` passes unless ``require`` is set.

    Raises:
        NodeResultVerificationError: ``missing`` (required but absent), ``incomplete`` (no
            exit code or output digest to rebuild the message from), ``key_id_mismatch``
            (the key id is not that of the key), ``bad_key`` or ``bad_signature``.
    """
    signed = execution.node_result
    if signed is None:
        if require:
            raise NodeResultVerificationError(
                "the record carries no node signature", reason="missing"
            )
        return
    # 1. the key id names the key the record carries
    if node_key_id(signed.public_key) != signed.keyid:
        raise NodeResultVerificationError(
            f"key id {signed.keyid} is not the id of the record's node key",
            reason="key_id_mismatch",
            key_id=signed.keyid,
        )
    # 2. the signed fields are all in the record
    if execution.exit_code is None or execution.output_digest is None:
        raise NodeResultVerificationError(
            "a signed result needs the exit code and output digest", reason="incomplete"
        )
    # 3. the signature over the rebuilt message
    message = node_result_message(
        task_id=execution.task_id,
        attempt=signed.attempt,
        exit_code=execution.exit_code,
        output_digest=execution.output_digest,
        usage=execution.resource_usage,
        started_ms=signed.started_ms,
        finished_ms=signed.finished_ms,
    )
    verify_node_signature(signed.public_key, signed.sig, message)
