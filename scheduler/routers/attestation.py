"""Attestation API (push mode: the node opens every connection, no inbound port).

Node routes (role ``node``, action ``node.attest`` on itself):

- ``POST /v1/attestation/key``: bind the node's EAT key (JWK), UEID and optionally its
  TPM AK, once;
- ``POST /v1/attestation/nonce``: a fresh nonce, single use, valid 60 s, bound to the node;
- ``POST /v1/attestation/evidence``: an EAT or a TPM quote answering that nonce; the
  answer is the EAR-shaped attestation result (200) or a refusal whose problem type names
  the check: ``attestation-nonce-{unknown,replayed,expired,node}``,
  ``attestation-evidence-{malformed,signature,node-binding,too-large,...}``.

Reading (``node.read``): ``GET /v1/attestation/nodes/{id}`` — the node's current result,
its key binding, its identity (certificates, revocation) and its result history.
Reference values (admins manage, ``refvalues.manage``; ``refvalues.read`` to list):
``POST /v1/refvalues``, ``GET /v1/refvalues``, ``POST /v1/refvalues/{class}/{version}/retire``.
Every route answers 404 when the attestation layer is not installed (``--no-layers``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from scheduler.app import Caller
from scheduler.attestation import (
    AttestationLayer,
    EvidenceRefused,
    b64u,
    parse_evidence,
)
from scheduler.attestation_gate import gate_reason
from scheduler.attestation_store import refset_out
from scheduler.attestation_tpm import enrolled_ak
from scheduler.authz import Resource
from scheduler.errors import InvalidRequest, NotFound
from scheduler.models import Node
from scheduler.tables.attestation import AttestationKey, AttestationReferenceSet

router = APIRouter(tags=["attestation"])

MAX_EVIDENCE_FIELD = 512 * 1024  # the body limit applies first; this only bounds parsing


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyIn(_Strict):
    jwk: dict[str, str] = Field(max_length=8)
    ueid: str = Field(max_length=66, pattern=r"^[0-9a-f]+$")
    ak_public: str | None = Field(default=None, max_length=2048, pattern=r"^[0-9a-f]+$")


class EvidenceIn(_Strict):
    type: str = Field(max_length=16)
    nonce: str = Field(max_length=128)
    eat: str | None = Field(default=None, max_length=MAX_EVIDENCE_FIELD)
    quote: str | None = Field(default=None, max_length=MAX_EVIDENCE_FIELD)
    signature: str | None = Field(default=None, max_length=MAX_EVIDENCE_FIELD)
    measurement_log: str | None = Field(default=None, max_length=MAX_EVIDENCE_FIELD)


class RefValuesIn(_Strict):
    values: dict[str, Any]


def layer_of(request: Request) -> AttestationLayer:
    layer = getattr(request.app.state.service, "attestation", None)
    if not isinstance(layer, AttestationLayer):
        raise NotFound("attestation is not enabled on this scheduler")
    return layer


@router.post("/v1/attestation/key")
async def register_key(body: KeyIn, request: Request, who: Caller) -> dict[str, Any]:
    layer = layer_of(request)
    service = layer.service
    service.authorize(who, "node.attest", Resource("node", who.name))
    ak = bytes.fromhex(body.ak_public) if body.ak_public else None
    if len(body.ueid) % 2:
        raise EvidenceRefused("ueid must be hex bytes", "malformed")
    op = layer.register_key(who.name, dict(body.jwk), bytes.fromhex(body.ueid), ak, who.label)
    row = await service.write(op)
    return {"node_id": row.node_id, "registered_at": row.registered_at, "tpm": bool(row.ak_public)}


@router.post("/v1/attestation/nonce", status_code=201)
async def nonce(request: Request, who: Caller) -> dict[str, Any]:
    layer = layer_of(request)
    service = layer.service
    service.authorize(who, "node.attest", Resource("node", who.name))
    value, expires_at, op = layer.new_nonce(who.name)
    await service.write(op)
    return {
        "nonce": b64u(value),
        "expires_at": expires_at,
        "verifier_id": layer.verifier_id,
        "interval_s": layer.interval_s,
    }


@router.post("/v1/attestation/evidence")
async def evidence(body: EvidenceIn, request: Request, who: Caller) -> dict[str, Any]:
    layer = layer_of(request)
    service = layer.service
    service.authorize(who, "node.attest", Resource("node", who.name))
    parsed = parse_evidence(body.model_dump())
    result = await service.write(layer.appraise(who.name, parsed))
    now = service.clock()
    return {
        "result_id": result.result_id,
        "node_id": result.node_id,
        "status": result.status.label,
        "expires_at": result.expires_at,
        "permits_work": result.permits_work(now),
        "reasons": {claim: list(reasons) for claim, reasons in result.reasons().items()},
        "ear": result.to_dict(),
    }


@router.post("/v1/attestation/nodes/{node_id}/key/reset")
async def reset_key(node_id: str, request: Request, who: Caller) -> dict[str, Any]:
    """Administrators: forget a node's attestation key binding (e.g. after the node lost
    its data dir), so its next registration binds a new key. Its current result stays
    until it expires or is replaced."""
    layer = layer_of(request)
    service = layer.service
    service.authorize(who, "node.attest.reset", Resource("node", node_id))
    removed = await service.write(layer.reset_key(node_id[:64]))
    return {"node_id": node_id, "reset": removed}


@router.get("/v1/attestation/nodes/{node_id}")
def node_attestation(
    node_id: str, request: Request, who: Caller, limit: int = 20
) -> dict[str, Any]:
    layer = layer_of(request)
    service = layer.service
    service.authorize(who, "node.read", Resource("node", node_id))
    limit = max(1, min(limit, 200))
    from scheduler.tables.identity import IdentityCertificate, IdentityRevocation

    now = service.clock()
    with service.read() as session:
        node = session.get(Node, node_id) if len(node_id) <= 64 else None
        if node is None:
            raise NotFound(f"node {node_id} not found")
        key = session.get(AttestationKey, node_id)
        tpm_enrolled = enrolled_ak(session, node_id) is not None
        certs = session.exec(
            select(IdentityCertificate)
            .where(IdentityCertificate.node_id == node_id)
            .order_by(col(IdentityCertificate.issued_at).desc())
            .limit(5)
        ).all()
        revoked = session.exec(
            select(IdentityRevocation).where(IdentityRevocation.node_id == node_id)
        ).first()
        history = layer.history(session, node_id, limit)
    why = gate_reason(node.attestation_status, node.attestation_expires_at, now)
    return {
        "node_id": node.id,
        "identity": {
            "operator": node.operator,
            "certificates": [
                {"serial": c.serial, "spiffe_id": c.spiffe_id, "not_after": c.not_after}
                for c in certs
            ],
            "revoked": revoked is not None,
            "revocation_reason": revoked.reason if revoked is not None else None,
            # enrolled with --tpm: quotes are verified with the AK recorded at enrollment
            "tpm_enrolled": tpm_enrolled,
            "attestation_key": (
                {
                    "kid": key.jwk.get("kid"),
                    "alg": key.jwk.get("alg"),
                    "tpm": key.ak_public is not None,
                    "registered_at": key.registered_at,
                }
                if key is not None
                else None
            ),
        },
        "attestation": {
            "status": node.attestation_status,
            "result_id": node.attestation_id,
            "attested_at": node.attested_at,
            "expires_at": node.attestation_expires_at,
            "gate": layer.gate,
            "permits_work": why is None,
            "exclusion": why,
        },
        "history": [
            {
                "result_id": r.result_id,
                "status": r.status,
                "evidence_type": r.evidence_type,
                "issued_at": r.issued_at,
                "expires_at": r.expires_at,
                "reference_values_id": r.reference_values_id,
                "reasons": _reasons(r.ear, node_id),
            }
            for r in history
        ],
    }


def _reasons(ear: dict[str, Any], node_id: str) -> dict[str, Any]:
    sub = ear.get("submods", {}).get(node_id, {})
    return dict(sub.get("cntrust.reasons", {}))


# -- reference values ---------------------------------------------------------------------
@router.post("/v1/refvalues", status_code=201)
async def add_refvalues(body: RefValuesIn, request: Request, who: Caller) -> dict[str, Any]:
    """Sign (with the deployment's reference-value key) and add a set; the class's current
    version stays accepted for the update window."""
    layer = layer_of(request)
    service = layer.service
    service.authorize(who, "refvalues.manage", Resource("refvalues"))
    signed = layer.refvalues.sign(body.values)
    now = service.clock()
    set_id = await service.write(lambda s: layer.refvalues.add(s, signed, now, who.label))
    with service.read() as session:
        row = session.get(AttestationReferenceSet, set_id)
        if row is None:  # written above; a concurrent delete does not exist
            raise NotFound(f"reference values {set_id} not found")
        return refset_out(row, layer.refvalues.open(row), now)


@router.get("/v1/refvalues")
def list_refvalues(
    request: Request, who: Caller, node_class: str | None = None
) -> list[dict[str, Any]]:
    layer = layer_of(request)
    service = layer.service
    service.authorize(who, "refvalues.read", Resource("refvalues"))
    now = service.clock()
    stmt = select(AttestationReferenceSet).order_by(
        col(AttestationReferenceSet.node_class), col(AttestationReferenceSet.version)
    )
    if node_class is not None:
        stmt = stmt.where(AttestationReferenceSet.node_class == node_class[:64])
    with service.read() as session:
        return [refset_out(r, layer.refvalues.open(r), now) for r in session.exec(stmt)]


@router.post("/v1/refvalues/{node_class}/{version}/retire")
async def retire_refvalues(
    node_class: str, version: int, request: Request, who: Caller
) -> dict[str, Any]:
    layer = layer_of(request)
    service = layer.service
    service.authorize(who, "refvalues.manage", Resource("refvalues", f"{node_class}@{version}"))
    if len(node_class) > 64 or version < 1:
        raise InvalidRequest("no such reference-value set")
    now = service.clock()
    await service.write(lambda s: layer.refvalues.retire(s, node_class, version, now, who.label))
    with service.read() as session:
        row = session.get(AttestationReferenceSet, f"{node_class}@{version}")
        if row is None:
            raise NotFound(f"no reference values {node_class}@{version}")
        return refset_out(row, layer.refvalues.open(row), now)
