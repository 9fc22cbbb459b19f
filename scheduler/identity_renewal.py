"""X.509-SVID renewal through the scheduler (attest-to-renew).

A node renews its SVID at half-life with ``POST /v1/agent/svid/renew``, authenticated by
its current SVID (mTLS; a bearer token cannot renew a certificate). In the transaction that
records the new certificate:

1. the node is not revoked (re-checked here: a revocation may have committed since the
   request was authenticated);
2. attestation: when ``settings.attest_to_renew`` (the default) the node's current
   attestation result must pass :func:`renewal_attestation_check`; otherwise the renewal
   record says ``not_required``;
3. :func:`identity.pki.renew_svid` issues for exactly the identity of the presented
   certificate (the CSR contributes only its checked public key);
4. the new certificate and a renewal row (old serial, new serial, attestation) are added.

Refusals: Unauthorized ``client_certificate_required``; Forbidden ``revoked``,
``attestation_required``, ``attestation_expired``, ``attestation_failed``; InvalidRequest
for the CSR check that failed; Conflict for an unusable operator CA.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from identity.pki import (
    CsrError,
    IssuedSvid,
    PkiError,
    RenewalError,
    VerifiedSvid,
    check_csr,
    renew_svid,
)
from scheduler.authz import Principal
from scheduler.errors import Conflict, Forbidden, InvalidRequest, Unauthorized
from scheduler.models import Node
from scheduler.mtls import SVID_CLAIM, is_certificate_principal
from scheduler.tables.identity import IdentityCertificate, IdentityRevocation
from scheduler.tables.identity_mtls import IdentityRenewal

if TYPE_CHECKING:
    from collections.abc import Callable

    from scheduler.identity_layer import IdentityLayer

AFFIRMING = "affirming"
NOT_REQUIRED = "not_required"


def renewal_attestation_check(session: Session, node_id: str, now: float) -> None:
    """The attest-to-renew gate: the node's current attestation result must be affirming
    and unexpired. The attestation layer keeps ``Node.attestation_*`` current.

    Raises RenewalError: ``attestation_required`` (no node or no result),
    ``attestation_expired``, ``attestation_failed`` (any status but affirming).
    """
    node = session.get(Node, node_id)
    if node is None or node.attestation_status is None:
        raise RenewalError(
            f"node {node_id} has no attestation result", reason="attestation_required"
        )
    if node.attestation_expires_at is None or node.attestation_expires_at <= now:
        raise RenewalError(
            f"node {node_id}'s attestation result has expired", reason="attestation_expired"
        )
    if node.attestation_status != AFFIRMING:
        raise RenewalError(
            f"node {node_id}'s attestation is {node.attestation_status}, not affirming",
            reason="attestation_failed",
        )


def begin_renewal(
    layer: IdentityLayer, who: Principal, csr_pem: str
) -> Callable[[Session], tuple[IssuedSvid, dict[str, Any]]]:
    """Check the caller and the CSR; return the write that renews (steps in the module
    docstring). Raises Unauthorized, InvalidRequest."""
    current = who.claims.get(SVID_CLAIM)
    if not is_certificate_principal(who) or not isinstance(current, VerifiedSvid):
        raise Unauthorized(
            "renewal needs the node's current X.509-SVID (mTLS)",
            reason="client_certificate_required",
        )
    try:
        check_csr(csr_pem.encode())
    except CsrError as exc:
        raise InvalidRequest(f"CSR refused: {exc}", reason=exc.reason, check=exc.reason) from exc
    service = layer.service
    required = service.settings.attest_to_renew
    now = service.clock()
    ca = layer.ca

    def op(session: Session) -> tuple[IssuedSvid, dict[str, Any]]:
        node_id = current.node_id
        # 1. not revoked
        if session.exec(
            select(IdentityRevocation.id).where(IdentityRevocation.node_id == node_id)
        ).first():
            raise Forbidden(f"node {node_id} is revoked", reason="revoked")
        # 2. attest-to-renew
        attestation_id = None
        try:
            if required:
                renewal_attestation_check(session, node_id, now)
                node = session.get(Node, node_id)
                attestation_id = node.attestation_id if node is not None else None
        except RenewalError as exc:
            raise Forbidden(f"renewal refused: {exc}", reason=exc.reason) from exc
        attestation = AFFIRMING if required else NOT_REQUIRED
        # 3. same identity, new certificate
        try:
            if required:  # the library refuses unless the attestation passed
                svid = renew_svid(ca, csr_pem.encode(), current, attestation=AFFIRMING)
            else:
                svid = ca.issue_svid(csr_pem.encode(), current.operator, current.node_id)
        except PkiError as exc:
            raise Conflict(f"cannot renew: {exc}", reason=exc.reason) from exc
        # 4. record
        session.add(
            IdentityCertificate(
                serial=str(svid.serial),
                node_id=node_id,
                operator=current.operator,
                spiffe_id=svid.spiffe_id.uri,
                issued_at=now,
                not_after=svid.not_after.timestamp(),
            )
        )
        record = IdentityRenewal(
            node_id=node_id,
            old_serial=str(current.serial),
            new_serial=str(svid.serial),
            renewed_at=now,
            not_after=svid.not_after.timestamp(),
            attestation=attestation,
            attestation_id=attestation_id,
        )
        session.add(record)
        return svid, {"attestation": attestation, "attestation_id": attestation_id}

    return op
