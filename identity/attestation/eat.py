"""Entity Attestation Tokens (RFC 9711) as JWTs, for TPM-less nodes and accelerators.

Claims (JWT form; ``cntrust_*`` are private claims of the cntrust profile)::

    iss, sub      node id (the attester)          aud   verifier id
    iat, exp      issued-at / expiry (<= 5 min)   eat_profile  EAT_PROFILE
    eat_nonce     base64url of the server nonce   ueid  base64url UEID (type byte first)
    cntrust_measurements  {component: hex SHA-256 digest}   (agent, runtime, ...)
    cntrust_accelerators  [{kind, model, driver_version, firmware_version}]

``decode_eat`` runs numbered steps and raises :class:`EatVerificationError`
(or NonceVerificationError) on the first failure:

1. size and compact-JWS shape, base64url alphabet only (``malformed``)
2. ``alg`` is EdDSA or ES256 and equals the enrolled key's (``algorithm``);
   ``alg: none`` and HMAC never reach a key
3. signature by the key enrolled for the claimed node (``signature``)
4. required claims present and typed (``missing_claim``, ``malformed``)
5. ``iss``/``sub`` name the claimed node, ``aud`` the verifier, ``ueid`` the
   enrolled UEID (``node_binding``, ``audience``) — node A's token presented
   by node B fails at 3 or here
6. time: not expired, ``iat`` not in the future, lifetime bounded (``expired``,
   ``iat_future``, ``lifetime``)
7. nonce: ``eat_nonce`` equals the nonce and the registry accepts it for
   this node (``nonce``; ``nonce_*``)

Verification is done directly on the compact JWS with
:meth:`identity.tokens.VerificationKey.verify_signature` (Ed25519 through libsodium, ES256
through ``cryptography``; no pyjwt on the hot path); signing uses pyjwt.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature

from identity.attestation.errors import EatVerificationError
from identity.attestation.nonces import NonceRegistry
from identity.tokens import ALLOWED_ALGORITHMS, SigningKey, VerificationKey

EAT_PROFILE = "tag:cntrust.dev,2026:node-eat"
MAX_EAT_BYTES = 16 * 1024
MAX_EAT_LIFETIME_S = 300
MAX_COMPONENTS = 256
MAX_ACCELERATORS = 64
ACCELERATOR_KINDS = ("GPU", "FPGA", "ASIC")
REQUIRED_CLAIMS = ("iss", "sub", "aud", "iat", "exp", "eat_nonce", "ueid")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._/:+-]{0,127}$")
_TEXT_RE = re.compile(r"^[A-Za-z0-9 ._/:+()-]{1,128}$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
_COMPACT_JWS_RE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _refuse(message: str, reason: str) -> EatVerificationError:
    return EatVerificationError(message, reason=reason)


@dataclass(frozen=True, slots=True)
class AcceleratorClaims:
    """One accelerator attached to the node."""

    kind: str
    model: str
    driver_version: str
    firmware_version: str

    def to_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "model": self.model,
            "driver_version": self.driver_version,
            "firmware_version": self.firmware_version,
        }


@dataclass(frozen=True, slots=True)
class EatClaims:
    """The appraisal-relevant claims of a verified EAT."""

    node_id: str
    ueid: bytes
    nonce: bytes
    issued_at: float
    expires_at: float
    measurements: Mapping[str, bytes]
    accelerators: tuple[AcceleratorClaims, ...]


def make_eat(
    key: SigningKey,
    *,
    node_id: str,
    verifier_id: str,
    nonce: bytes,
    ueid: bytes,
    measurements: Mapping[str, bytes],
    accelerators: Sequence[AcceleratorClaims] = (),
    now: float,
    ttl_s: int = 60,
) -> str:
    """Node side: sign an EAT with the node's key (EdDSA or ES256)."""
    if not 0 < ttl_s <= MAX_EAT_LIFETIME_S:
        raise ValueError(f"ttl_s must be 1..{MAX_EAT_LIFETIME_S}")
    issued = int(now)
    claims: dict[str, Any] = {
        "iss": node_id,
        "sub": node_id,
        "aud": verifier_id,
        "iat": issued,
        "exp": issued + ttl_s,
        "eat_profile": EAT_PROFILE,
        "eat_nonce": _b64u(nonce),
        "ueid": _b64u(ueid),
        "cntrust_measurements": {name: d.hex() for name, d in sorted(measurements.items())},
        "cntrust_accelerators": [a.to_dict() for a in accelerators],
    }
    return jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid})


def _verify_signature(key: VerificationKey, signing_input: bytes, signature: bytes) -> None:
    # the JWT verifier's check: Ed25519 through libsodium, ES256 as R || S (64 bytes each)
    try:
        key.verify_signature(signature, signing_input)
    except InvalidSignature as exc:
        raise _refuse("EAT is not signed by the node's enrolled key", "signature") from exc


def _measurements(value: object) -> dict[str, bytes]:
    if not isinstance(value, dict) or len(value) > MAX_COMPONENTS:
        raise _refuse("cntrust_measurements must be an object", "malformed")
    out = {}
    for name, digest in value.items():
        if not _NAME_RE.fullmatch(name) or not isinstance(digest, str):
            raise _refuse(f"bad component name {name!r}", "malformed")
        if not _HEX64_RE.fullmatch(digest):
            raise _refuse(f"digest of {name!r} is not SHA-256 hex", "malformed")
        out[name] = bytes.fromhex(digest)
    return out


def _accelerators(value: object) -> tuple[AcceleratorClaims, ...]:
    if not isinstance(value, list) or len(value) > MAX_ACCELERATORS:
        raise _refuse("cntrust_accelerators must be an array", "malformed")
    out = []
    fields = ("kind", "model", "driver_version", "firmware_version")
    for item in value:
        if not isinstance(item, dict) or set(item) != set(fields):
            raise _refuse("accelerator claims must have kind, model, versions", "malformed")
        if item["kind"] not in ACCELERATOR_KINDS:
            raise _refuse(f"accelerator kind {item['kind']!r} unknown", "malformed")
        if not all(isinstance(item[f], str) and _TEXT_RE.fullmatch(item[f]) for f in fields):
            raise _refuse("accelerator claim text not allowed", "malformed")
        out.append(AcceleratorClaims(*(item[f] for f in fields)))
    return tuple(out)


def decode_eat(
    token: str,
    *,
    node_id: str,
    node_key: VerificationKey,
    ueid: bytes,
    verifier_id: str,
    nonce: bytes,
    nonces: NonceRegistry,
    now: float,
    leeway_s: float = 5.0,
) -> EatClaims:
    """Verify an EAT from ``node_id`` (steps in the module docstring); return its claims.

    ``node_key`` and ``ueid`` are those enrolled for ``node_id``, never taken
    from the token. Raises EatVerificationError or NonceVerificationError.
    """
    # 1. size and shape
    if (
        not isinstance(token, str)
        or len(token) > MAX_EAT_BYTES
        or not _COMPACT_JWS_RE.fullmatch(token)
    ):
        raise _refuse("EAT missing, too large, or not a compact JWS", "malformed")
    header_b64, payload_b64, sig_b64 = token.split(".")
    try:
        header = json.loads(_b64u_decode(header_b64))
        signature = _b64u_decode(sig_b64)
    except (ValueError, binascii.Error) as exc:
        raise _refuse("EAT header or signature not decodable", "malformed") from exc
    if not isinstance(header, dict):
        raise _refuse("EAT header is not an object", "malformed")
    # 2. algorithm allow-list, and the enrolled key's own algorithm
    alg = header.get("alg")
    if alg not in ALLOWED_ALGORITHMS or alg != node_key.algorithm:
        raise _refuse(f"algorithm {alg!r} not allowed for this node", "algorithm")
    # 3. signature
    _verify_signature(node_key, f"{header_b64}.{payload_b64}".encode(), signature)
    # 4. claims present and typed
    try:
        claims = json.loads(_b64u_decode(payload_b64))
    except (ValueError, binascii.Error) as exc:
        raise _refuse("EAT payload not decodable", "malformed") from exc
    if not isinstance(claims, dict):
        raise _refuse("EAT payload is not an object", "malformed")
    missing = [c for c in REQUIRED_CLAIMS if c not in claims]
    if missing:
        raise _refuse(f"missing claims {missing}", "missing_claim")
    iat, exp = claims["iat"], claims["exp"]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (iat, exp)):
        raise _refuse("iat/exp must be numbers", "malformed")
    try:
        token_ueid = _b64u_decode(str(claims["ueid"]))
        token_nonce = _b64u_decode(str(claims["eat_nonce"]))
    except (ValueError, binascii.Error) as exc:
        raise _refuse("ueid or eat_nonce not base64url", "malformed") from exc
    measurements = _measurements(claims.get("cntrust_measurements", {}))
    accelerators = _accelerators(claims.get("cntrust_accelerators", []))
    # 5. binding to the claimed node and this verifier
    if claims["iss"] != node_id or claims["sub"] != node_id:
        raise _refuse("EAT names another node", "node_binding")
    if not hmac.compare_digest(token_ueid, ueid):
        raise _refuse("EAT ueid is not the node's enrolled UEID", "node_binding")
    if claims["aud"] != verifier_id:
        raise _refuse("EAT is for another verifier", "audience")
    # 6. time
    if exp <= now - leeway_s:
        raise _refuse("EAT expired", "expired")
    if iat > now + leeway_s:
        raise _refuse("EAT iat is in the future", "iat_future")
    if exp - iat > MAX_EAT_LIFETIME_S:
        raise _refuse("EAT lifetime too long", "lifetime")
    # 7. freshness
    if not hmac.compare_digest(token_nonce, nonce):
        raise _refuse("eat_nonce is not the nonce", "nonce")
    nonces.consume(nonce, node_id)
    return EatClaims(
        node_id, token_ueid, token_nonce, float(iat), float(exp), measurements, accelerators
    )
