"""Benchmarks for identity.pki and identity.tokens (pytest-benchmark, one core).

Run: python -m pytest benchmarks/identity_pki --benchmark-only
Targets from issue 3: >= 2,000 certificates issued/s, >= 10,000 JWT verifications/s;
client-certificate verifications/s is reported, and the bare signature primitives under
a JWT verification (``test_jwt_primitive``) so the verifier's own overhead shows.
``extra_info["per_second"]`` holds the mean throughput of each benchmark.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import nacl.bindings
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from identity.pki import (
    CertificateAuthority,
    JwtSvidIssuer,
    JwtSvidVerifier,
    RevocationSet,
    check_csr,
    create_join_token,
    verify_client_svid,
    verify_join_token,
)
from identity.tokens import KeySet, SigningKey, TokenIssuer, TokenVerifier
from tests.unit.identity.test_pki_support import make_csr

TD = "example.org"


def _run(benchmark: Any, fn: Callable[[], object]) -> None:
    benchmark(fn)
    benchmark.extra_info["per_second"] = round(1.0 / benchmark.stats.stats.mean)


@pytest.fixture(scope="module", params=["ed25519", "ecdsa-p256"])
def ca(request: pytest.FixtureRequest) -> CertificateAuthority:
    authority = CertificateAuthority.create(TD, key_algorithm=request.param)
    authority.add_operator("acme")
    return authority


def test_issue_svid(benchmark: Any, ca: CertificateAuthority) -> None:
    """CSR checks (parse, self-signature, key, CA bit) + X.509-SVID issuance + PEM."""
    csr = make_csr()
    _run(benchmark, lambda: ca.issue_svid(csr, "acme", "node-1"))


def test_check_csr(benchmark: Any) -> None:
    csr = make_csr()
    _run(benchmark, lambda: check_csr(csr))


@pytest.mark.parametrize("node_key", ["ed25519", "p256"])
def test_verify_client_svid(benchmark: Any, ca: CertificateAuthority, node_key: str) -> None:
    """All nine steps; step 9 (cryptography's RFC 5280 verifier) runs on ECDSA-only paths."""
    key = ec.generate_private_key(ec.SECP256R1()) if node_key == "p256" else None
    issued = ca.issue_svid(make_csr(key), "acme", "node-1")
    bundle = ca.trust_bundle()
    revocations = RevocationSet.of(serials=range(1000), spiffe_ids=[f"x{i}" for i in range(1000)])
    now = time.time()
    _run(benchmark, lambda: verify_client_svid(issued.chain_pem, bundle, now, revocations))


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256"])
def test_jwt_verify(benchmark: Any, algorithm: str) -> None:
    keys = KeySet(SigningKey.generate(algorithm))
    token = TokenIssuer(keys, "https://cntrust", time.time).issue(
        "tenant-1", "cntrust-api", timedelta(minutes=5)
    )
    verifier = TokenVerifier(keys.keys_by_kid, "https://cntrust", "cntrust-api", time.time)
    _run(benchmark, lambda: verifier.verify(token))


@pytest.mark.parametrize(
    "primitive", ["cryptography-Ed25519", "pynacl-Ed25519", "cryptography-P256"]
)
def test_jwt_primitive(benchmark: Any, primitive: str) -> None:
    """The bare signature check over a real token's signing input: the floor under
    test_jwt_verify (EdDSA uses PyNaCl, ES256 cryptography)."""
    algorithm = "ES256" if primitive.endswith("P256") else "EdDSA"
    keys = KeySet(SigningKey.generate(algorithm))
    token = TokenIssuer(keys, "https://cntrust", time.time).issue(
        "tenant-1", "cntrust-api", timedelta(minutes=5)
    )
    signing_input, _, sig_b64 = token.encode().rpartition(b".")
    signature = base64.urlsafe_b64decode(sig_b64 + b"==")
    private = keys.active.private_key
    if isinstance(private, ed25519.Ed25519PrivateKey):
        public = private.public_key()
        if primitive.startswith("pynacl"):
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            _run(benchmark, lambda: nacl.bindings.crypto_sign_open(signature + signing_input, raw))
        else:
            _run(benchmark, lambda: public.verify(signature, signing_input))
    else:
        ec_public = private.public_key()
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        es256 = ec.ECDSA(hashes.SHA256())
        _run(benchmark, lambda: ec_public.verify(der, signing_input, es256))


def test_jwt_svid_verify(benchmark: Any) -> None:
    keys = KeySet(SigningKey.generate())
    issuer = JwtSvidIssuer(TokenIssuer(keys, "https://cntrust", time.time), TD)
    token = issuer.issue(f"spiffe://{TD}/operator/acme/node/n1", "cntrust-api")
    verifier = JwtSvidVerifier(
        TokenVerifier(keys.keys_by_kid, "https://cntrust", "cntrust-api", time.time), TD
    )
    _run(benchmark, lambda: verifier.verify(token))


def test_join_token_verify(benchmark: Any) -> None:
    token, record = create_join_token("acme", now=time.time())
    now = time.time()
    _run(benchmark, lambda: verify_join_token(token, record, now=now))
