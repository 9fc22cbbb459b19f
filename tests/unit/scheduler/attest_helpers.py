"""Test support for the attestation layer: a node that attests through the real API.

``attest(api, service, node_headers, name)`` plays the node agent's part: binds an EAT key
(kept per node name and database), fetches a nonce, signs an EAT with the measurements
given, sends it. ``ensure_refvalues`` adds the admin's reference set for those
measurements once per service.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any

from identity import SigningKey
from identity.attestation import AcceleratorClaims, make_eat
from tests.conftest import bearer

AGENT = hashlib.sha256(b"cntrust test agent 1").digest()
AGENT_DRIFTED = hashlib.sha256(b"cntrust test agent 1 (patched)").digest()
RUNTIME = hashlib.sha256(b"cntrust test runtime").digest()
MEASUREMENTS = {"agent": AGENT, "runtime": RUNTIME}
# database url -> node name -> (key, ueid): one per test database (each test has its own)
_KEYS: dict[str, dict[str, tuple[SigningKey, bytes]]] = {}


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def gate_on(service: Any) -> bool:
    layer = getattr(service, "attestation", None)
    return layer is not None and layer.gate


def refset(version: int = 1, agent: bytes = AGENT, node_class: str = "default") -> dict:
    return {
        "node_class": node_class,
        "version": version,
        "components": {"agent": [agent.hex()], "runtime": [RUNTIME.hex()]},
        "accelerator_firmware_minimums": {"GPU/sim-a100": "1.0"},
    }


def ensure_refvalues(api: Any, service: Any) -> None:
    if getattr(service, "_test_refvalues", False):
        return
    resp = api.post(
        "/v1/refvalues", json={"values": refset()}, headers=bearer(service, "admin", "admin")
    )
    assert resp.status_code in (201, 409), resp.text
    service._test_refvalues = True


def node_key(service: Any, name: str) -> tuple[SigningKey, bytes]:
    """The node's EAT key and UEID. The binding lives in the database, so every replica
    (``Service``) over one database sees the same node with the same key."""
    keys = _KEYS.setdefault(str(service.settings.database_url), {})
    if name not in keys:
        keys[name] = (SigningKey.generate("EdDSA"), b"\x01" + secrets.token_bytes(32))
    return keys[name]


def bind_key(api: Any, service: Any, node: dict[str, str], name: str) -> None:
    key, ueid = node_key(service, name)
    body = {"jwk": key.public().to_jwk(), "ueid": ueid.hex()}
    resp = api.post("/v1/attestation/key", json=body, headers=node)
    assert resp.status_code == 200, resp.text


def new_nonce(api: Any, node: dict[str, str]) -> dict[str, Any]:
    resp = api.post("/v1/attestation/nonce", headers=node)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def eat_for(
    service: Any,
    name: str,
    issued: dict[str, Any],
    measurements: dict[str, bytes] | None = None,
    accelerators: tuple[AcceleratorClaims, ...] = (),
    key: SigningKey | None = None,
    subject: str | None = None,
) -> str:
    own_key, ueid = node_key(service, name)
    nonce = base64.urlsafe_b64decode(issued["nonce"] + "=" * (-len(issued["nonce"]) % 4))
    return make_eat(
        key or own_key,
        node_id=subject or name,
        verifier_id=issued["verifier_id"],
        nonce=nonce,
        ueid=ueid,
        measurements=measurements or MEASUREMENTS,
        accelerators=accelerators,
        now=service.clock(),
    )


def send(api: Any, node: dict[str, str], nonce: str, token: str) -> Any:
    return api.post(
        "/v1/attestation/evidence",
        json={"type": "eat", "nonce": nonce, "eat": token},
        headers=node,
    )


def attest(
    api: Any,
    service: Any,
    node: dict[str, str],
    name: str,
    measurements: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """One full round for ``name``; returns the result (asserts 200)."""
    ensure_refvalues(api, service)
    bind_key(api, service, node, name)
    issued = new_nonce(api, node)
    resp = send(api, node, issued["nonce"], eat_for(service, name, issued, measurements))
    assert resp.status_code == 200, resp.text
    return dict(resp.json())
