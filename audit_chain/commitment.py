"""Salted commitments for personal fields (tenant name, free text).

``commitment = "sha256:" + hex(SHA-256(salt || UTF-8(value)))`` with a 32-byte random salt.
Only the commitment enters a log entry. To erase, delete the plaintext *and* the salt: the
entry, its leaf hash and every proof stay valid, and the commitment no longer links to
the person (a kept salt would let a low-entropy value such as a name be brute-forced).
Whoever holds value and salt can prove what was committed (:func:`verify_commitment`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable

from audit_chain.errors import CommitmentMismatchError, MalformedStatementError

__all__ = ["SALT_BYTES", "commit", "is_commitment", "new_salt", "verify_commitment"]

SALT_BYTES = 32
_COMMITMENT_RE = re.compile(r"sha256:[0-9a-f]{64}")


def new_salt(random: Callable[[int], bytes] = secrets.token_bytes) -> bytes:
    """A fresh 32-byte salt from ``random`` (inject a deterministic source in tests)."""
    salt = random(SALT_BYTES)
    if len(salt) != SALT_BYTES:
        raise MalformedStatementError("salt source returned the wrong length", reason="bad_salt")
    return salt


def commit(value: str, salt: bytes) -> str:
    """Commitment to ``value`` under ``salt`` (32 bytes)."""
    if len(salt) != SALT_BYTES:
        raise MalformedStatementError(f"salt must be {SALT_BYTES} bytes", reason="bad_salt")
    return "sha256:" + hashlib.sha256(salt + value.encode()).hexdigest()


def is_commitment(value: object) -> bool:
    """Whether ``value`` has the commitment shape ``sha256:<64 hex>``."""
    return isinstance(value, str) and _COMMITMENT_RE.fullmatch(value) is not None


def verify_commitment(commitment: str, value: str, salt: bytes) -> None:
    """Check that ``commitment`` opens to ``value`` with ``salt``.

    Raises:
        CommitmentMismatchError: it does not (carries expected / calculated).
    """
    calculated = commit(value, salt)
    if not hmac.compare_digest(calculated, commitment):
        raise CommitmentMismatchError(
            "commitment does not open to the value", expected=commitment, calculated=calculated
        )
