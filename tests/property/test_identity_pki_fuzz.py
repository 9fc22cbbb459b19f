"""Hypothesis fuzzing of identity.pki's parsers: only the specific error, never a crash.

Parsers under test: SPIFFE IDs, CSRs (DER and PEM), presented certificate chains (DER,
PEM, lists), trust bundles, join tokens, JWTs and JWKs. Each is fed random bytes/text and
mutations (bit flips, truncations, splices) of valid input.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity.errors import TokenVerificationError
from identity.pki import (
    NO_REVOCATIONS,
    CertificateAuthority,
    CsrError,
    JoinTokenError,
    SpiffeIdError,
    SvidVerificationError,
    TrustBundle,
    VerifiedSvid,
    check_csr,
    create_join_token,
    parse_node_spiffe_id,
    parse_spiffe_id,
    verify_client_svid,
    verify_join_token,
)
from identity.tokens import (
    KeySet,
    SigningKey,
    TokenIssuer,
    TokenVerifier,
    verification_key_from_jwk,
)
from tests.unit.identity.test_pki_support import T0, TD, Clock, make_csr

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_CLOCK = Clock()
_CA = CertificateAuthority.create(TD, clock=_CLOCK)
_CA.add_operator("acme")
_BUNDLE = _CA.trust_bundle()
_CSR_PEM = make_csr()
_CSR_DER = x509.load_pem_x509_csr(_CSR_PEM).public_bytes(serialization.Encoding.DER)
_SVID = _CA.issue_svid(_CSR_PEM, "acme", "n1")
_LEAF_DER = _SVID.certificate.public_bytes(serialization.Encoding.DER)
_KEYS = KeySet(SigningKey.generate())
_TOKEN = TokenIssuer(_KEYS, "iss", _CLOCK).issue("sub", "aud", timedelta(minutes=5))
_VERIFIER = TokenVerifier(_KEYS.keys_by_kid, "iss", "aud", _CLOCK)
_JOIN_TOKEN, _JOIN_RECORD = create_join_token("acme", now=T0)


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "splice", "delete"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[i:]
        elif kind == "splice":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[i : i + draw(st.integers(1, 8))]
    return bytes(data)


def _pem_wrap(der: bytes, label: str) -> bytes:
    body = base64.encodebytes(der)
    return f"-----BEGIN {label}-----\n".encode() + body + f"-----END {label}-----\n".encode()


# SPIFFE IDs ------------------------------------------------------------------------------

_NAIVE = re.compile(r"spiffe://[a-z0-9._-]{1,255}(/[a-z0-9._-]+)*")
_ALPHABET = "spifeSPIFE:/%.-_aAzZ09@?#é \x00"


def _naive_accepts(value: str) -> bool:
    """Reference: the SPIFFE spec's grammar, lowercase, no dot segments, <= 2048 bytes."""
    if len(value.encode()) > 2048 or not _NAIVE.fullmatch(value):
        return False
    trust_domain, _, path = value[len("spiffe://") :].partition("/")
    return trust_domain not in (".", "..") and all(
        seg not in (".", "..") for seg in path.split("/") if path
    )


@FUZZ
@given(st.one_of(st.text(alphabet=_ALPHABET, max_size=80), st.text(max_size=80)))
def test_spiffe_parser_never_crashes_and_matches_reference(value: str) -> None:
    for candidate in (value, "spiffe://" + value, "spiffe://example.org/" + value):
        try:
            parsed = parse_spiffe_id(candidate)
        except SpiffeIdError as exc:
            assert exc.reason
            assert not _naive_accepts(candidate)
        else:
            assert _naive_accepts(candidate)
            assert str(parsed) == candidate


_SEGMENT = st.text(alphabet="abcz019._-", min_size=1, max_size=12)


@FUZZ
@given(st.lists(_SEGMENT, max_size=6), _SEGMENT)
def test_valid_spiffe_ids_round_trip(segments: list[str], trust_domain: str) -> None:
    candidate = "spiffe://" + trust_domain + "".join("/" + s for s in segments)
    try:
        parsed = parse_spiffe_id(candidate)
    except SpiffeIdError as exc:
        assert exc.reason in ("dot_segment", "trust_domain")
        assert "." in segments or ".." in segments or trust_domain in (".", "..")
    else:
        assert str(parsed) == candidate


@FUZZ
@given(st.text(max_size=120))
def test_node_spiffe_parser_never_crashes(value: str) -> None:
    for candidate in (value, f"spiffe://{TD}/operator/{value}/node/n1"):
        try:
            node = parse_node_spiffe_id(candidate, trust_domain=TD)
        except SpiffeIdError as exc:
            assert exc.reason
        else:
            assert str(node) == candidate


# CSRs ------------------------------------------------------------------------------------


def _check_csr_only_csr_error(data: bytes) -> None:
    try:
        checked = check_csr(data)
    except CsrError as exc:
        assert exc.reason in (
            "too_large",
            "malformed",
            "signature",
            "key_type",
            "key_size",
            "ca_requested",
        )
    else:
        assert checked.csr.is_signature_valid


@FUZZ
@given(st.binary(max_size=600))
def test_csr_parser_random_bytes(data: bytes) -> None:
    _check_csr_only_csr_error(data)
    _check_csr_only_csr_error(b"\x30\x82" + data)
    _check_csr_only_csr_error(_pem_wrap(data, "CERTIFICATE REQUEST"))


@FUZZ
@given(mutated(_CSR_DER))
def test_csr_parser_mutated_der(data: bytes) -> None:
    _check_csr_only_csr_error(data)
    _check_csr_only_csr_error(_pem_wrap(data, "CERTIFICATE REQUEST"))


@FUZZ
@given(mutated(_CSR_PEM))
def test_csr_parser_mutated_pem(data: bytes) -> None:
    _check_csr_only_csr_error(data)


# certificate chains and bundles ----------------------------------------------------------


def _verify_only_svid_error(chain: Any) -> None:
    try:
        got = verify_client_svid(chain, _BUNDLE, T0 + 1, NO_REVOCATIONS)
    except SvidVerificationError as exc:
        assert exc.reason
        assert 1 <= exc.step <= 9
    else:
        assert isinstance(got, VerifiedSvid)
        assert got.spiffe_id == _SVID.spiffe_id


@FUZZ
@given(st.binary(max_size=600))
def test_chain_parser_random_bytes(data: bytes) -> None:
    _verify_only_svid_error(data)
    _verify_only_svid_error([data])
    _verify_only_svid_error(_pem_wrap(data, "CERTIFICATE"))


@FUZZ
@given(mutated(_LEAF_DER))
def test_chain_parser_mutated_der(data: bytes) -> None:
    _verify_only_svid_error(data)
    _verify_only_svid_error(
        [data, _BUNDLE.intermediates[0].public_bytes(serialization.Encoding.DER)]
    )
    _verify_only_svid_error(_pem_wrap(data, "CERTIFICATE"))


@FUZZ
@given(mutated(_SVID.chain_pem))
def test_chain_parser_mutated_pem(data: bytes) -> None:
    _verify_only_svid_error(data)


@FUZZ
@given(st.one_of(st.binary(max_size=400), mutated(_SVID.trust_bundle_pem)))
def test_trust_bundle_parser(data: bytes) -> None:
    try:
        bundle = TrustBundle.from_pem(TD, data)
    except SvidVerificationError as exc:
        assert exc.reason == "malformed"
    else:
        assert bundle.roots


# join tokens -----------------------------------------------------------------------------


@FUZZ
@given(
    st.one_of(
        st.text(max_size=120), mutated(_JOIN_TOKEN.encode()).map(lambda b: b.decode("latin-1"))
    )
)
def test_join_token_verifier(token: str) -> None:
    try:
        verify_join_token(token, _JOIN_RECORD, now=T0 + 1)
    except JoinTokenError as exc:
        assert exc.reason in ("unknown", "reused", "expired")
    else:
        assert token == _JOIN_TOKEN


# JWTs and JWKs ---------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@FUZZ
@given(
    st.one_of(
        st.text(max_size=200),
        mutated(_TOKEN.encode()).map(lambda b: b.decode("latin-1")),
        st.tuples(_JSON, _JSON, st.binary(max_size=64)).map(
            lambda t: ".".join(
                (
                    _b64u(json.dumps(t[0]).encode()),
                    _b64u(json.dumps(t[1]).encode()),
                    _b64u(t[2]),
                )
            )
        ),
    )
)
def test_token_verifier(token: str) -> None:
    try:
        claims = _VERIFIER.verify(token)
    except TokenVerificationError as exc:
        assert exc.reason
    else:
        assert claims["sub"] == "sub"


@FUZZ
@given(
    st.one_of(
        _JSON,
        st.fixed_dictionaries(
            {
                "kid": _JSON,
                "kty": st.sampled_from(["OKP", "EC", "RSA"]),
                "crv": _JSON,
                "x": _JSON,
                "y": _JSON,
                "exp": _JSON,
            }
        ),
    )
)
def test_jwk_parser(jwk: Any) -> None:
    try:
        key = verification_key_from_jwk(jwk)
    except TokenVerificationError as exc:
        assert exc.reason == "jwk"
    else:
        assert key.kid
