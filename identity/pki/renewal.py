"""X.509-SVID renewal: at half-life, and only with a passing attestation (attest-to-renew).

Invariants:
- ``renew_svid`` issues for exactly the identity proven by the current certificate
  (``VerifiedSvid`` from :func:`verify_client_svid`); the CSR only contributes its checked
  public key, so a node can move to a new key but never to another name;
- renewal is refused unless the attestation result passed: ``True``, the EAR status
  ``"affirming"``, or an object whose ``status`` is (or whose ``status.value`` is)
  ``"affirming"``. ``"warning"`` passes only when the caller sets ``accept_warning``.
  Anything else, including ``None`` and unknown statuses, is refused (fail closed).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum

from cryptography import x509

from identity.pki.ca import DEFAULT_SVID_TTL, CertificateAuthority, IssuedSvid
from identity.pki.clock import as_utc
from identity.pki.errors import RenewalError
from identity.pki.verify import VerifiedSvid

AFFIRMING = "affirming"
WARNING = "warning"


def attestation_status(attestation: object) -> str | None:
    """Normalise an attestation result (bool, status string, or object with ``status``)."""
    if attestation is True:
        return AFFIRMING
    if attestation is False or attestation is None:
        return None
    status = getattr(attestation, "status", attestation)
    if isinstance(status, Enum):
        status = status.value
    return status.lower() if isinstance(status, str) else None


def renew_svid(
    ca: CertificateAuthority,
    csr: bytes,
    current: VerifiedSvid,
    attestation: object,
    *,
    ttl: timedelta = DEFAULT_SVID_TTL,
    accept_warning: bool = False,
    server_auth: bool = False,
) -> IssuedSvid:
    """Issue a fresh SVID for ``current``'s identity after a passing attestation.

    Raises RenewalError (``attestation_required`` when no result is given,
    ``attestation_failed`` when it did not pass), then whatever ``issue_svid`` raises
    (CsrError, PkiError such as ``operator_revoked``).
    """
    # 1. attest-to-renew
    status = attestation_status(attestation)
    if attestation is None:
        raise RenewalError("renewal requires an attestation result", reason="attestation_required")
    passing = {AFFIRMING, WARNING} if accept_warning else {AFFIRMING}
    if status not in passing:
        raise RenewalError(
            f"attestation status {status!r} does not allow renewal", reason="attestation_failed"
        )
    # 2. same identity, new certificate (CSR checked by issue_svid)
    return ca.issue_svid(csr, current.operator, current.node_id, ttl=ttl, server_auth=server_auth)


def renew_at(cert: x509.Certificate) -> datetime:
    """The moment half of the certificate's lifetime has passed."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) / 2


def should_renew(cert: x509.Certificate, now: float | datetime) -> bool:
    """True once half of the certificate's lifetime has passed (or it has expired)."""
    return as_utc(now) >= renew_at(cert)
