"""Server-issued attestation nonces: single use, bound to one node, valid 60 s.

Invariants:
- A nonce is accepted at most once, only before it expires, and only from
  the node it was issued to. Everything else raises
  :class:`NonceVerificationError` with reason ``nonce_unknown``,
  ``nonce_replayed``, ``nonce_expired`` or ``nonce_node``.
- A refusal because of the wrong node does not burn the nonce (another node
  cannot deny service to the rightful one by replaying its evidence first).
- Memory is bounded: entries are dropped ``retain_s`` after expiry (until then
  a late nonce is reported as expired, afterwards as unknown), and issuing
  beyond ``max_outstanding`` live nonces raises NonceVerificationError
  (reason ``nonce_capacity``).
- Clock and randomness are injected.
"""

from __future__ import annotations

import hmac
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from identity.attestation.errors import NonceVerificationError

NONCE_TTL_S = 60.0
NONCE_BYTES = 32
MAX_NONCE_BYTES = 64


@dataclass(slots=True)
class _Entry:
    node_id: str
    expires_at: float
    used: bool = False


class NonceRegistry:
    """Issues and consumes freshness nonces (not thread-safe: guard it with a lock if shared)."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        randomness: Callable[[int], bytes] = secrets.token_bytes,
        ttl_s: float = NONCE_TTL_S,
        retain_s: float = NONCE_TTL_S,
        nonce_bytes: int = NONCE_BYTES,
        max_outstanding: int = 1_000_000,
    ) -> None:
        if ttl_s <= 0 or retain_s < 0 or not 16 <= nonce_bytes <= MAX_NONCE_BYTES:
            raise ValueError("ttl_s must be positive and nonce_bytes within 16..64")
        self._clock = clock
        self._randomness = randomness
        self._ttl_s = ttl_s
        self._retain_s = retain_s
        self._nonce_bytes = nonce_bytes
        self._max = max_outstanding
        self._entries: dict[bytes, _Entry] = {}
        self._order: deque[tuple[float, bytes]] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def _prune(self, now: float) -> None:
        while self._order and self._order[0][0] + self._retain_s <= now:
            _, nonce = self._order.popleft()
            self._entries.pop(nonce, None)

    def issue(self, node_id: str) -> bytes:
        """A fresh nonce for ``node_id``; raises NonceVerificationError when at capacity."""
        now = self._clock()
        self._prune(now)
        if len(self._entries) >= self._max:
            raise NonceVerificationError("too many outstanding nonces", reason="nonce_capacity")
        nonce = self._randomness(self._nonce_bytes)
        if len(nonce) != self._nonce_bytes or nonce in self._entries:
            raise NonceVerificationError("randomness source failed", reason="nonce_capacity")
        expires_at = now + self._ttl_s
        self._entries[nonce] = _Entry(node_id, expires_at)
        self._order.append((expires_at, nonce))
        return nonce

    def consume(self, nonce: bytes, node_id: str) -> None:
        """Accept ``nonce`` from ``node_id`` once.

        Raises NonceVerificationError: ``nonce_unknown`` (never issued, or
        forgotten), ``nonce_node`` (issued to another node), ``nonce_replayed``
        (already used), ``nonce_expired`` (older than the TTL).
        """
        now = self._clock()
        self._prune(now)
        if not isinstance(nonce, bytes) or len(nonce) > MAX_NONCE_BYTES:
            raise NonceVerificationError("nonce is not a byte string", reason="nonce_unknown")
        entry = self._entries.get(nonce)
        if entry is None:
            raise NonceVerificationError("nonce was not issued here", reason="nonce_unknown")
        if not hmac.compare_digest(entry.node_id.encode(), node_id.encode()):
            raise NonceVerificationError("nonce was issued to another node", reason="nonce_node")
        if entry.used:
            raise NonceVerificationError("nonce was already used", reason="nonce_replayed")
        if now >= entry.expires_at:
            raise NonceVerificationError("nonce expired", reason="nonce_expired")
        entry.used = True
