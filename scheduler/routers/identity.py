"""Identity API: operators, join tokens, enrollment, node revocation, trust bundle.

``POST /v1/enroll`` needs no bearer token: the one-time join token authenticates the
request. Every other write is for admins (actions ``identity.operator.manage``,
``identity.join_token.create``, ``node.revoke``). The layer is installed at startup (this
router's lifespan), so the revocation check guards every route from the first request.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field

from scheduler.app import NODE_TOKEN_TTL, Caller
from scheduler.authz import Resource
from scheduler.identity_layer import Enrollment, IdentityLayer, install
from scheduler.incidents import observe_enrollment
from scheduler.schemas import NAME_PATTERN
from scheduler.service import Service

MAX_JOIN_TOKEN_TTL_S = 7 * 24 * 3600


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    install(app.state.service)
    yield


router = APIRouter(lifespan=_lifespan, tags=["identity"])


def _layer(request: Request) -> tuple[Service, IdentityLayer]:
    service: Service = request.app.state.service
    return service, install(service)


class EnrollIn(BaseModel):
    join_token: str = Field(max_length=128)
    csr_pem: str = Field(max_length=16 * 1024)
    node_id: str = Field(max_length=64)


class EnrollOut(BaseModel):
    node_id: str
    operator: str
    spiffe_id: str
    not_after: float
    svid_chain_pem: str
    trust_bundle_pem: str
    node_token: str


class OperatorIn(BaseModel):
    name: str = Field(pattern=NAME_PATTERN)


class OperatorOut(BaseModel):
    name: str
    ca_certificate_pem: str


class JoinTokenIn(BaseModel):
    ttl_s: int = Field(default=3600, gt=0, le=MAX_JOIN_TOKEN_TTL_S)


class JoinTokenOut(BaseModel):
    join_token: str
    token_id: str
    operator: str
    expires_at: float


class RevokeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class RevokeOut(BaseModel):
    node_id: str
    reason: str
    revoked_by: str
    revoked_at: float
    already_revoked: bool


class TrustBundleOut(BaseModel):
    trust_domain: str
    trust_bundle_pem: str
    operator_cas_pem: str


@router.post("/v1/enroll", status_code=201)
async def enroll(body: EnrollIn, request: Request) -> EnrollOut:
    """Exchange a join token and a CSR for an X.509-SVID, the trust bundle and a node
    registration token (role ``node-register``, for ``POST /v1/nodes/register``)."""
    service, layer = _layer(request)
    enrollment = layer.begin_enrollment(body.join_token, body.csr_pem, body.node_id)
    await service.write(enrollment.record)
    source_ip = request.client.host if request.client else "0.0.0.0"  # noqa: S104 (unknown)
    await observe_enrollment(  # whole-network layer: Sybil bursts of enrollments
        service, enrollment.node_id, enrollment.operator, source_ip, service.clock()
    )
    return enroll_out(service, enrollment)


def enroll_out(service: Service, enrollment: Enrollment) -> EnrollOut:
    """The SVID, trust bundle and a node registration token (role ``node-register``)."""
    svid = enrollment.svid
    token = service.issue_token(
        "node-register",
        enrollment.node_id,
        NODE_TOKEN_TTL,
        spiffe_id=svid.spiffe_id.uri,
        operator=enrollment.operator,
    )
    return EnrollOut(
        node_id=enrollment.node_id,
        operator=enrollment.operator,
        spiffe_id=svid.spiffe_id.uri,
        not_after=svid.not_after.timestamp(),
        svid_chain_pem=svid.chain_pem.decode(),
        trust_bundle_pem=svid.trust_bundle_pem.decode(),
        node_token=token,
    )


@router.post("/v1/operators", status_code=201)
async def add_operator(body: OperatorIn, request: Request, who: Caller) -> OperatorOut:
    service, layer = _layer(request)
    service.authorize(who, "identity.operator.manage", Resource("operator", body.name))
    await service.write(layer.add_operator(body.name, who.label))
    pem = layer.ca.operator(body.name).certificate_pem.decode()
    return OperatorOut(name=body.name, ca_certificate_pem=pem)


@router.post("/v1/operators/{operator}/join-tokens", status_code=201)
async def create_join_token(
    operator: str, body: JoinTokenIn, request: Request, who: Caller
) -> JoinTokenOut:
    """A one-time join token; it is returned here once and stored only as a hash."""
    service, layer = _layer(request)
    service.authorize(who, "identity.join_token.create", Resource("operator", operator))
    token, record, op = layer.create_join_token(operator[:64], timedelta(seconds=body.ttl_s))
    await service.write(op)
    return JoinTokenOut(
        join_token=token,
        token_id=record.token_id,
        operator=record.operator,
        expires_at=record.expires_at,
    )


@router.post("/v1/nodes/{node_id}/revoke")
async def revoke_node(node_id: str, body: RevokeIn, request: Request, who: Caller) -> RevokeOut:
    service, layer = _layer(request)
    service.authorize(who, "node.revoke", Resource("node", node_id))
    result = await service.write(layer.revoke_node(node_id[:64], body.reason, who.label))
    return RevokeOut.model_validate(result)


@router.get("/v1/trust-bundle")
def trust_bundle(request: Request) -> TrustBundleOut:
    """The trust domain's roots (what nodes trust) and the operator CA certificates."""
    _service, layer = _layer(request)
    bundle = layer.trust_bundle()
    return TrustBundleOut(
        trust_domain=bundle.trust_domain,
        trust_bundle_pem=bundle.to_pem().decode(),
        operator_cas_pem=bundle.intermediates_pem().decode(),
    )
