"""JWT-SVIDs (SPIFFE JWT-SVID shape) on top of :mod:`identity.tokens`.

A JWT-SVID is a JWT whose ``sub`` is a SPIFFE ID of the trust domain and whose ``aud`` is
required. Service tokens live at most 15 minutes: the lifetime is enforced when issuing
(:class:`PkiError`, reason ``lifetime``) and again when verifying (``exp - iat`` above the
maximum raises :class:`JwtSvidError`, reason ``lifetime``), so a token minted elsewhere
with the same key cannot outlive the rule.

Revocation: :class:`JwtSvidVerifier` takes a callable returning the current
:class:`RevocationSet` (called on every verification), so a revoked node's tokens are
refused from the moment its certificates are (``revoked``; a node of a revoked operator:
``operator_revoked``).

All of :class:`identity.tokens.TokenVerifier`'s checks run first (EdDSA/ES256 only;
``exp``, ``iat``, ``aud``, ``iss``, ``sub`` required; kid lookup; clock injected).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from identity.pki.errors import JwtSvidError, PkiError, SpiffeIdError
from identity.pki.revocation import NO_REVOCATIONS, RevocationSet
from identity.pki.spiffe import NodeSpiffeId, SpiffeId, parse_spiffe_id, validate_trust_domain
from identity.tokens import TokenIssuer, TokenVerifier

MAX_SERVICE_TOKEN_TTL = timedelta(minutes=15)
DEFAULT_JWT_SVID_TTL = timedelta(minutes=5)


@dataclass(frozen=True)
class JwtSvid:
    """A verified JWT-SVID."""

    spiffe_id: SpiffeId
    audience: tuple[str, ...]
    issued_at: float
    expires_at: float
    claims: Mapping[str, Any]


class JwtSvidIssuer:
    """Issues JWT-SVIDs for SPIFFE IDs of one trust domain, at most ``max_ttl`` long."""

    def __init__(
        self,
        issuer: TokenIssuer,
        trust_domain: str,
        *,
        max_ttl: timedelta = MAX_SERVICE_TOKEN_TTL,
    ) -> None:
        self.issuer = issuer
        self.trust_domain = validate_trust_domain(trust_domain)
        self.max_ttl = min(max_ttl, MAX_SERVICE_TOKEN_TTL)

    def issue(
        self,
        spiffe_id: str | SpiffeId | NodeSpiffeId,
        audience: str,
        *,
        ttl: timedelta = DEFAULT_JWT_SVID_TTL,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """Sign a JWT-SVID. Raises SpiffeIdError (bad or foreign SPIFFE ID), PkiError
        (``lifetime`` above the maximum or not positive; ``audience`` empty)."""
        parsed = parse_spiffe_id(str(spiffe_id))
        if parsed.trust_domain != self.trust_domain:
            raise SpiffeIdError(
                f"SPIFFE ID is outside trust domain {self.trust_domain!r}",
                reason="other_trust_domain",
                value=str(spiffe_id),
            )
        if not timedelta(0) < ttl <= self.max_ttl:
            raise PkiError(f"JWT-SVID lifetime must be in (0, {self.max_ttl}]", reason="lifetime")
        if not audience:
            raise PkiError("JWT-SVID audience is required", reason="audience")
        return self.issuer.issue(parsed.uri, audience, ttl, claims)


class JwtSvidVerifier:
    """Verifies JWT-SVIDs: token checks, then SPIFFE ``sub`` and lifetime."""

    def __init__(
        self,
        verifier: TokenVerifier,
        trust_domain: str,
        *,
        max_ttl: timedelta = MAX_SERVICE_TOKEN_TTL,
        revocations: Callable[[], RevocationSet] = lambda: NO_REVOCATIONS,
    ) -> None:
        self.verifier = verifier
        self.trust_domain = validate_trust_domain(trust_domain)
        self.max_ttl_s = max_ttl.total_seconds()
        self.revocations = revocations

    def verify(self, token: str) -> JwtSvid:
        """Return the verified JWT-SVID.

        Raises TokenVerificationError (see TokenVerifier.verify) or JwtSvidError
        (``spiffe_id``, ``other_trust_domain``, ``lifetime``, ``revoked``,
        ``operator_revoked``).
        """
        # 1. every JWT check
        claims = self.verifier.verify(token)
        # 2. sub is a SPIFFE ID of our trust domain
        try:
            spiffe_id = parse_spiffe_id(claims["sub"])
        except SpiffeIdError as exc:
            raise JwtSvidError(f"sub is not a SPIFFE ID: {exc}", reason="spiffe_id") from exc
        if spiffe_id.trust_domain != self.trust_domain:
            raise JwtSvidError(
                f"sub is outside trust domain {self.trust_domain!r}", reason="other_trust_domain"
            )
        # 3. lifetime within the service-token maximum (exp and iat are numbers after step 1)
        issued_at, expires_at = float(claims["iat"]), float(claims["exp"])
        if expires_at - issued_at > self.max_ttl_s:
            raise JwtSvidError(
                f"token lifetime {expires_at - issued_at:.0f} s exceeds {self.max_ttl_s:.0f} s",
                reason="lifetime",
            )
        # 4. revocation of the SPIFFE ID, or of the operator of a node SPIFFE ID
        revoked = self.revocations()
        if spiffe_id.uri in revoked.spiffe_ids:
            raise JwtSvidError(f"{spiffe_id.uri} is revoked", reason="revoked")
        segs = spiffe_id.segments
        if len(segs) == 4 and segs[0] == "operator" and segs[1] in revoked.operators:
            raise JwtSvidError(f"operator {segs[1]!r} is revoked", reason="operator_revoked")
        aud = claims["aud"]
        audience = (aud,) if isinstance(aud, str) else tuple(str(a) for a in aud)
        return JwtSvid(spiffe_id, audience, issued_at, expires_at, claims)
