"""One-time join tokens for node enrollment.

A token looks like ``cntj1.<token_id>.<secret>``: ``token_id`` (public, 16 hex chars) is
the database key, ``secret`` is 32 random bytes (base64url). Only
``SHA-256("cntrust-join-token/1" || secret)`` is stored in a :class:`JoinTokenRecord`;
the token itself is shown once to the operator and never kept. A salted slow hash is not
needed: the secret has 256 bits of entropy.

Invariants:
- a token is bound to one operator, expires, and is used at most once;
- :func:`verify_join_token` compares hashes in constant time and raises
  :class:`JoinTokenError` with reason ``unknown`` (malformed, no record, wrong secret),
  ``reused`` (already used) or ``expired``, in that order;
- single use across replicas is the store's job: the scheduler marks the record used with a
  conditional update (``UPDATE ... SET used_at = ? WHERE token_id = ? AND used_at IS NULL``)
  and treats "no row updated" as ``reused``. :class:`InMemoryJoinTokenStore` does the same
  under a lock, for tests and single-process use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from identity.pki.errors import JoinTokenError, PkiError
from identity.pki.spiffe import validate_name

TOKEN_PREFIX = "cntj1"  # noqa: S105 (a format tag, not a secret)
MAX_TOKEN_CHARS = 128
MAX_JOIN_TOKEN_TTL = timedelta(days=7)
_TOKEN_RE = re.compile(r"cntj1\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})")
_HASH_DOMAIN = b"cntrust-join-token/1\x00"

RandomBytes = Callable[[int], bytes]


@dataclass(frozen=True)
class JoinTokenRecord:
    """What the server stores about a join token (never the token itself)."""

    token_id: str
    token_hash: str
    operator: str
    created_at: float
    expires_at: float
    used_at: float | None = None
    used_by: str | None = None

    def consumed(self, now: float, *, node_id: str | None = None) -> JoinTokenRecord:
        return replace(self, used_at=now, used_by=node_id)


def hash_join_token_secret(secret: str) -> str:
    """Hex SHA-256 of the token secret with a domain-separation prefix."""
    return hashlib.sha256(_HASH_DOMAIN + secret.encode("ascii")).hexdigest()


def create_join_token(
    operator: str,
    *,
    now: float,
    ttl: timedelta = timedelta(hours=1),
    random_bytes: RandomBytes = secrets.token_bytes,
) -> tuple[str, JoinTokenRecord]:
    """Make a token for ``operator``; return (token to print once, record to store).

    Raises SpiffeIdError (bad operator name) or PkiError(reason="lifetime").
    """
    validate_name(operator, what="operator")
    if not timedelta(0) < ttl <= MAX_JOIN_TOKEN_TTL:
        raise PkiError(
            f"join token lifetime must be in (0, {MAX_JOIN_TOKEN_TTL}]", reason="lifetime"
        )
    token_id = random_bytes(8).hex()
    secret = base64.urlsafe_b64encode(random_bytes(32)).rstrip(b"=").decode()
    record = JoinTokenRecord(
        token_id=token_id,
        token_hash=hash_join_token_secret(secret),
        operator=operator,
        created_at=now,
        expires_at=now + ttl.total_seconds(),
    )
    return f"{TOKEN_PREFIX}.{token_id}.{secret}", record


def split_join_token(token: object) -> tuple[str, str]:
    """Return (token_id, secret). Raises JoinTokenError(reason="unknown") if malformed."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise JoinTokenError("join token is malformed", reason="unknown")
    match = _TOKEN_RE.fullmatch(token)
    if match is None:
        raise JoinTokenError("join token is malformed", reason="unknown")
    return match.group(1), match.group(2)


def join_token_id(token: object) -> str:
    """The public id to look the record up by. Raises JoinTokenError(reason="unknown")."""
    return split_join_token(token)[0]


def verify_join_token(token: object, record: JoinTokenRecord | None, *, now: float) -> None:
    """Check ``token`` against its stored ``record`` (None if no record was found).

    Raises JoinTokenError: ``unknown`` (malformed, no record, id or secret mismatch),
    ``reused``, ``expired``.
    """
    # 1. shape
    token_id, secret = split_join_token(token)
    # 2. record exists and the secret's hash matches (constant time)
    if record is None or record.token_id != token_id:
        raise JoinTokenError("unknown join token", reason="unknown", token_id=token_id)
    if not hmac.compare_digest(hash_join_token_secret(secret), record.token_hash):
        raise JoinTokenError("unknown join token", reason="unknown", token_id=token_id)
    # 3. single use
    if record.used_at is not None:
        raise JoinTokenError("join token was already used", reason="reused", token_id=token_id)
    # 4. expiry
    if now >= record.expires_at:
        raise JoinTokenError("join token has expired", reason="expired", token_id=token_id)


class InMemoryJoinTokenStore:
    """Thread-safe in-process token store with atomic redeem (tests, single process)."""

    def __init__(self) -> None:
        self._records: dict[str, JoinTokenRecord] = {}
        self._lock = threading.Lock()

    def add(self, record: JoinTokenRecord) -> None:
        with self._lock:
            self._records[record.token_id] = record

    def get(self, token_id: str) -> JoinTokenRecord | None:
        with self._lock:
            return self._records.get(token_id)

    def redeem(self, token: object, *, now: float, node_id: str | None = None) -> JoinTokenRecord:
        """Verify and mark used in one step; return the used record. Raises JoinTokenError."""
        token_id = join_token_id(token)
        with self._lock:
            record = self._records.get(token_id)
            verify_join_token(token, record, now=now)
            if record is None:  # unreachable: verify_join_token refuses a missing record
                raise JoinTokenError("unknown join token", reason="unknown", token_id=token_id)
            used = record.consumed(now, node_id=node_id)
            self._records[token_id] = used
            return used
