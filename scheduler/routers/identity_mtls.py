"""Identity API, mTLS part: SVID renewal (attest-to-renew), operator CA rotation and
revocation.

``POST /v1/agent/svid/renew`` is for nodes authenticated by their current X.509-SVID;
the operator CA routes are for admins (actions ``identity.ca.rotate`` and
``identity.ca.revoke``). Certificates are accepted on apps built with the layers on
(``install_layers``); these routes install the check on first use otherwise.
"""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from scheduler.app import Caller
from scheduler.authz import Resource
from scheduler.identity_layer import IdentityLayer
from scheduler.identity_operators import revoke_operator, rotate_operator
from scheduler.identity_renewal import begin_renewal
from scheduler.identity_tpm import begin_tpm_enrollment, finish_tpm_enrollment
from scheduler.mtls import install
from scheduler.routers.identity import EnrollOut, enroll_out
from scheduler.service import Service

router = APIRouter(tags=["identity"])


def _layer(request: Request) -> tuple[Service, IdentityLayer]:
    service: Service = request.app.state.service
    return service, install(service).layer


class RenewIn(BaseModel):
    csr_pem: str = Field(max_length=16 * 1024)


class RenewOut(BaseModel):
    node_id: str
    spiffe_id: str
    not_after: float
    svid_chain_pem: str
    trust_bundle_pem: str
    attestation: str
    attestation_id: str | None


class OperatorRotateOut(BaseModel):
    name: str
    ca_certificate_pem: str
    old_ca_serial: str
    new_ca_serial: str
    rotated_at: float


class OperatorRevokeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class OperatorRevokeOut(BaseModel):
    name: str
    reason: str
    revoked_by: str
    revoked_at: float
    already_revoked: bool
    ca_serials: list[str]


@router.post("/v1/agent/svid/renew")
async def renew_svid(body: RenewIn, request: Request, who: Caller) -> RenewOut:
    """A fresh X.509-SVID for the calling node (mTLS only), after the attest-to-renew
    check; the renewal record says what the check found."""
    service, layer = _layer(request)
    service.authorize(who, "identity.svid.renew", Resource("node", who.name))
    svid, record = await service.write(begin_renewal(layer, who, body.csr_pem))
    return RenewOut(
        node_id=who.name,
        spiffe_id=svid.spiffe_id.uri,
        not_after=svid.not_after.timestamp(),
        svid_chain_pem=svid.chain_pem.decode(),
        trust_bundle_pem=svid.trust_bundle_pem.decode(),
        attestation=record["attestation"],
        attestation_id=record["attestation_id"],
    )


@router.post("/v1/operators/{operator}/rotate")
async def rotate(operator: str, request: Request, who: Caller) -> OperatorRotateOut:
    service, layer = _layer(request)
    service.authorize(who, "identity.ca.rotate", Resource("operator", operator[:64]))
    result = await service.write(rotate_operator(layer, operator[:64], who.label))
    return OperatorRotateOut.model_validate(result)


@router.post("/v1/operators/{operator}/revoke")
async def revoke(
    operator: str, body: OperatorRevokeIn, request: Request, who: Caller
) -> OperatorRevokeOut:
    service, layer = _layer(request)
    service.authorize(who, "identity.ca.revoke", Resource("operator", operator[:64]))
    result = await service.write(revoke_operator(layer, operator[:64], body.reason, who.label))
    return OperatorRevokeOut.model_validate(result)


class TpmEnrollIn(BaseModel):
    join_token: str = Field(max_length=128)
    csr_pem: str = Field(max_length=16 * 1024)
    node_id: str = Field(max_length=64)
    ek_public: str = Field(max_length=4096, description="TPM2B_PUBLIC of the EK, base64")
    ek_certificate: str | None = Field(
        default=None, max_length=12 * 1024, description="EK certificate (DER), base64"
    )
    ak_public: str = Field(max_length=4096, description="TPM2B_PUBLIC of the AK, base64")


class TpmChallengeOut(BaseModel):
    challenge_id: str
    credential_blob: str = Field(description="tpm2_activatecredential input file, base64")
    expires_at: float


class TpmActivateIn(BaseModel):
    join_token: str = Field(max_length=128)
    activated_credential: str = Field(max_length=512, description="base64")


@router.post("/v1/enroll/tpm", status_code=201)
async def tpm_enroll_begin(body: TpmEnrollIn, request: Request) -> TpmChallengeOut:
    """Hardware-rooted enrollment, step 1: the EK and AK are checked and the server's
    MakeCredential challenge is returned (the join token authenticates)."""
    service, layer = _layer(request)
    challenge = begin_tpm_enrollment(
        layer,
        join_token=body.join_token,
        csr_pem=body.csr_pem,
        node_id=body.node_id,
        ek_public_b64=body.ek_public,
        ek_certificate_b64=body.ek_certificate,
        ak_public_b64=body.ak_public,
    )
    await service.write(challenge.record)
    return TpmChallengeOut(
        challenge_id=challenge.challenge_id,
        credential_blob=base64.b64encode(challenge.credential_blob).decode(),
        expires_at=challenge.expires_at,
    )


@router.post("/v1/enroll/tpm/{challenge_id}", status_code=201)
async def tpm_enroll_finish(challenge_id: str, body: TpmActivateIn, request: Request) -> EnrollOut:
    """Hardware-rooted enrollment, step 2: the TPM's ActivateCredential answer; the SVID
    is issued only when it matches."""
    service, layer = _layer(request)
    enrollment, op = finish_tpm_enrollment(
        layer, challenge_id, body.join_token, body.activated_credential
    )
    await service.write(op)
    return enroll_out(service, enrollment)
