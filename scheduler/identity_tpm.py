"""TPM-rooted enrollment through the scheduler (MakeCredential / ActivateCredential).

Two requests, so that any replica can answer the second:

``begin`` (``POST /v1/enroll/tpm``): the node sends its join token, node id, CSR, EK
(TPM2B_PUBLIC, plus the EK certificate where the TPM has one) and a fresh AK. The server
1. checks the join token (known, unused, unexpired; not consumed yet), the node id, the CSR
   and that the node is not revoked;
2. checks the EK: a fixedTPM restricted decryption key; its certificate certifies this EK
   and chains to a configured EK CA (``settings.tpm_ek_ca_file``); without a certificate
   the enrollment is refused unless ``settings.tpm_require_ek_certificate`` is false;
3. checks the AK: a fixedTPM restricted signing key;
4. runs MakeCredential for the EK and the AK's name with a random credential, stores the
   challenge (the credential's SHA-256 only, 60 s) and returns the credential blob.

``finish`` (``POST /v1/enroll/tpm/{challenge_id}``): the node returns what
TPM2_ActivateCredential gave it. In one transaction the server marks the challenge used
(once), checks the credential (constant time) and the join token again, issues the SVID
exactly as a join-token enrollment does, and records the EK and AK for later quotes.

A TPM that does not hold both the EK's private key and an object named like the AK cannot
recover the credential, so a matching answer proves the AK is resident with that EK.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from cryptography import x509
from sqlmodel import Session, col

from identity.attestation import (
    CredentialVerificationError,
    TpmStructureError,
    make_credential,
    parse_public,
    verify_ak_public,
    verify_ek_certificate,
    verify_ek_public,
)
from identity.pki import (
    CsrError,
    SpiffeIdError,
    check_csr,
    join_token_id,
    validate_name,
)
from scheduler.errors import Forbidden, InvalidRequest, Unauthorized
from scheduler.identity_layer import Enrollment, IdentityLayer
from scheduler.tables.identity_tpm import IdentityTpmChallenge, IdentityTpmKey

if TYPE_CHECKING:
    from scheduler.settings import Settings

CHALLENGE_TTL_S = 60.0
CREDENTIAL_BYTES = 16
MAX_TPM_PUBLIC_BYTES = 2048
MAX_EK_CERTIFICATE_BYTES = 8192
MAX_EK_CA_FILE_BYTES = 1024 * 1024


def _decode(value: str | None, what: str, limit: int) -> bytes:
    if value is None or len(value) > limit * 4 // 3 + 4:
        raise InvalidRequest(f"{what} missing or too large", reason="too_large", check=what)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"{what} is not base64", reason="encoding", check=what) from exc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ek_ca_certificates(
    settings: Settings,
) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    """(roots, intermediates) from ``settings.tpm_ek_ca_file``: self-issued certificates
    are roots. Raises InvalidRequest(reason="ek_ca") when the file cannot be read."""
    path = settings.tpm_ek_ca_file
    if path is None:
        return [], []
    try:
        if path.stat().st_size > MAX_EK_CA_FILE_BYTES:
            raise ValueError("file too large")
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidRequest(f"EK CA file {path} unusable: {exc}", reason="ek_ca") from exc
    roots = [c for c in certs if c.issuer == c.subject]
    return roots, [c for c in certs if c.issuer != c.subject]


@dataclass(frozen=True)
class TpmChallenge:
    challenge_id: str
    credential_blob: bytes
    expires_at: float
    record: Callable[[Session], None]


def begin_tpm_enrollment(
    layer: IdentityLayer,
    *,
    join_token: str,
    csr_pem: str,
    node_id: str,
    ek_public_b64: str,
    ek_certificate_b64: str | None,
    ak_public_b64: str,
) -> TpmChallenge:
    """Steps 1-4 of ``begin`` (module docstring). Raises Unauthorized (join token),
    InvalidRequest (node id, CSR, EK, EK certificate, AK; ``reason`` names the check),
    Forbidden (revoked node)."""
    service = layer.service
    now = service.clock()
    # 1. join token, node id, CSR, revocation
    row = layer.check_join_token(join_token, now)
    try:
        validate_name(node_id, what="node id")
    except SpiffeIdError as exc:
        raise InvalidRequest(str(exc), reason=exc.reason, check="node_id") from exc
    try:
        check_csr(csr_pem.encode())
    except CsrError as exc:
        raise InvalidRequest(f"CSR refused: {exc}", reason=exc.reason, check=exc.reason) from exc
    if layer.revocations.node_revoked(node_id):
        raise Forbidden(f"node {node_id} is revoked", reason="revoked")
    ek_public = _decode(ek_public_b64, "ek_public", MAX_TPM_PUBLIC_BYTES)
    ak_public = _decode(ak_public_b64, "ak_public", MAX_TPM_PUBLIC_BYTES)
    ek_certificate = (
        _decode(ek_certificate_b64, "ek_certificate", MAX_EK_CERTIFICATE_BYTES)
        if ek_certificate_b64 is not None
        else None
    )
    try:
        # 2. the EK and its certificate
        ek = parse_public(ek_public)
        verify_ek_public(ek)
        if ek_certificate is not None:
            roots, intermediates = ek_ca_certificates(service.settings)
            verify_ek_certificate(
                ek_certificate,
                ek,
                roots=roots,
                intermediates=intermediates,
                now=datetime.fromtimestamp(now, tz=UTC),
            )
        elif service.settings.tpm_require_ek_certificate:
            raise CredentialVerificationError(
                "an EK certificate is required", reason="ek_certificate"
            )
        # 3. the AK
        ak = parse_public(ak_public)
        verify_ak_public(ak)
        # 4. MakeCredential
        credential = secrets.token_bytes(CREDENTIAL_BYTES)
        challenge = make_credential(ek, ak.name, credential)
    except (TpmStructureError, CredentialVerificationError) as exc:
        raise InvalidRequest(
            f"TPM enrollment refused: {exc}", reason=exc.reason, check="tpm"
        ) from exc
    except ValueError as exc:  # a public key cryptography cannot load (point not on curve)
        raise InvalidRequest(
            f"TPM enrollment refused: {exc}", reason="malformed", check="tpm"
        ) from exc
    challenge_id = secrets.token_hex(16)
    expires_at = now + CHALLENGE_TTL_S
    pending = IdentityTpmChallenge(
        challenge_id=challenge_id,
        token_id=row.token_id,
        node_id=node_id,
        csr_pem=csr_pem,
        ek_public=_b64(ek_public),
        ek_certificate=_b64(ek_certificate) if ek_certificate is not None else None,
        ak_public=_b64(ak_public),
        ak_name=ak.name.hex(),
        credential_sha256=hashlib.sha256(credential).hexdigest(),
        created_at=now,
        expires_at=expires_at,
    )

    def op(session: Session) -> None:
        session.add(pending)

    return TpmChallenge(challenge_id, challenge.to_tpm2_tools(), expires_at, op)


def finish_tpm_enrollment(
    layer: IdentityLayer, challenge_id: str, join_token: str, activated_b64: str
) -> tuple[Enrollment, Callable[[Session], None]]:
    """Check the answer and issue the SVID; the returned write marks the challenge used,
    records the certificate (consuming the join token) and the node's EK and AK.

    Raises Unauthorized (``unknown_challenge``, ``challenge_expired``, ``challenge_used``,
    join token refusals), Forbidden (``activation``: wrong credential), InvalidRequest.
    """
    now = layer.service.clock()
    activated = _decode(activated_b64, "activated_credential", 256)
    with layer.service.read() as session:
        pending = session.get(IdentityTpmChallenge, challenge_id[:64])
    # 1. a known, unexpired, unanswered challenge, for this join token
    if pending is None or pending.token_id != join_token_id(join_token):
        raise Unauthorized("unknown TPM challenge", reason="unknown_challenge")
    if pending.used_at is not None:
        raise Unauthorized("TPM challenge already answered", reason="challenge_used")
    if now > pending.expires_at:
        raise Unauthorized("TPM challenge expired", reason="challenge_expired")
    # 2. the TPM recovered the credential
    digest = hashlib.sha256(activated).hexdigest()
    if not hmac.compare_digest(digest, pending.credential_sha256):
        raise Forbidden(
            "activated credential does not match: AK not resident with this EK",
            reason="activation",
        )
    # 3. issue as a join-token enrollment does (token checked again, consumed in the write)
    enrollment = layer.begin_enrollment(join_token, pending.csr_pem, pending.node_id)
    key = IdentityTpmKey(
        node_id=pending.node_id,
        ek_public=pending.ek_public,
        ek_certificate=pending.ek_certificate,
        ak_public=pending.ak_public,
        ak_name=pending.ak_name,
        svid_serial=str(enrollment.svid.serial),
        enrolled_at=now,
    )

    def op(session: Session) -> None:
        answered = session.connection().execute(
            sa.update(IdentityTpmChallenge)
            .where(col(IdentityTpmChallenge.challenge_id) == pending.challenge_id)
            .where(col(IdentityTpmChallenge.used_at).is_(None))
            .values(used_at=now)
        )
        if answered.rowcount != 1:
            raise Unauthorized("TPM challenge already answered", reason="challenge_used")
        enrollment.record(session)
        session.add(key)

    return enrollment, op
