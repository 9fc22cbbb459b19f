"""Hypothesis fuzzing of identity.attestation parsers and verifiers.

Every malformed input must end in the package's specific error — never
another exception — and no mutation of signed evidence may be accepted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity import SigningKey
from identity.attestation import (
    CredentialVerificationError,
    EatVerificationError,
    EvidenceVerificationError,
    MeasurementLog,
    NonceRegistry,
    TpmPublic,
    TpmStructureError,
    decode_eat,
    make_eat,
    parse_attest,
    parse_public,
    parse_signature,
    pcr_composite_digest,
    verify_ek_certificate,
    verify_quote,
)
from identity.attestation.tpm_marshal import marshal_quote_attest
from identity.attestation.tpm_structures import ClockInfo, PcrSelection
from tests.unit.identity.test_attest_support import (
    SWTPM_AK_PUBLIC,
    SWTPM_EK_ECC_PUBLIC,
    SWTPM_EK_RSA_PUBLIC,
    SWTPM_QUOTE,
    SWTPM_SIGNATURE,
    Clock,
    SoftTpm,
    node_log,
)

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PARSERS = (parse_attest, parse_signature, parse_public)
SAMPLES = (SWTPM_QUOTE, SWTPM_SIGNATURE, SWTPM_AK_PUBLIC, SWTPM_EK_RSA_PUBLIC, SWTPM_EK_ECC_PUBLIC)


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "set"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            data[pos] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF]))
    return bytes(data)


def _parse_all(data: bytes) -> None:
    for parse in PARSERS:
        try:
            parse(data)
        except TpmStructureError as exc:
            assert exc.reason == "malformed" and 0 <= exc.offset <= len(data)


@FAST
@given(st.binary(max_size=600))
def test_random_bytes_only_raise_structure_errors(data: bytes) -> None:
    _parse_all(data)


@FAST
@given(st.sampled_from(SAMPLES).flatmap(mutated))
def test_mutated_structures_only_raise_structure_errors(data: bytes) -> None:
    _parse_all(data)
    with contextlib.suppress(TpmStructureError):
        parse_public(data).public_key()


@FAST
@given(
    signer=st.binary(max_size=66),
    extra=st.binary(max_size=64),
    pcrs=st.lists(st.integers(0, 23), max_size=24, unique=True),
    digest=st.binary(max_size=64),
    clock=st.tuples(
        st.integers(0, 2**64 - 1),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
        st.booleans(),
    ),
)
def test_quote_marshal_parse_round_trip(
    signer: bytes, extra: bytes, pcrs: list[int], digest: bytes, clock: tuple[int, int, int, bool]
) -> None:
    selection = (PcrSelection(0x000B, tuple(sorted(pcrs))),)
    info = ClockInfo(*clock)
    attest = parse_attest(
        marshal_quote_attest(
            qualified_signer=signer,
            extra_data=extra,
            pcr_select=selection,
            pcr_digest=digest,
            clock_info=info,
        )
    )
    assert (attest.qualified_signer, attest.extra_data, attest.clock_info) == (signer, extra, info)
    assert attest.quote is not None and attest.quote.pcr_select == selection
    assert attest.quote.pcr_digest == digest


TPM = SoftTpm().replay(node_log())


@settings(max_examples=200, deadline=None)
@given(data=st.data(), target=st.sampled_from(["quote", "signature"]))
def test_no_mutated_quote_is_accepted(data: st.DataObject, target: str) -> None:
    nonces = NonceRegistry(Clock())
    nonce = nonces.issue("n")
    quote, sig = TPM.quote(nonce)
    if target == "quote":
        quote2, sig2 = data.draw(mutated(quote)), sig
    else:
        quote2, sig2 = quote, data.draw(mutated(sig))
    if (quote2, sig2) == (quote, sig):
        return
    try:
        verify_quote(
            quote2,
            sig2,
            ak_public=TPM.ak_public,
            node_id="n",
            nonce=nonce,
            nonces=nonces,
            measurement_log=node_log(),
        )
    except EvidenceVerificationError:
        return
    raise AssertionError("a mutated quote was accepted")


@FAST
@given(st.lists(st.tuples(st.integers(0, 23), st.binary(min_size=32, max_size=32)), max_size=40))
def test_replay_matches_naive_extend(events: list[tuple[int, bytes]]) -> None:
    log = MeasurementLog.of([(p, d, "c") for p, d in events])
    naive: dict[int, bytes] = {}
    for pcr, digest in events:
        naive[pcr] = hashlib.sha256(naive.get(pcr, bytes(32)) + digest).digest()
    assert log.replay() == naive
    assert MeasurementLog.from_json(log.to_json()) == log
    expected = hashlib.sha256(b"".join(naive.get(i, bytes(32)) for i in range(24))).digest()
    assert pcr_composite_digest(log.replay(), list(range(24))) == expected


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 30) | st.text(max_size=70),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["pcr", "digest", "component", "x"]), inner, max_size=4)
    ),
    max_leaves=12,
)


@FAST
@given(JSONISH)
def test_measurement_log_parser_total(doc: object) -> None:
    try:
        MeasurementLog.from_json(json.dumps(doc).encode())
    except EvidenceVerificationError as exc:
        assert exc.reason == "measurement_log"


KEY = SigningKey.generate("EdDSA")


@FAST
@given(
    st.text(max_size=300) | st.sampled_from(["a.b.c", "e30.e30.", "eyJhbGciOiJFZERTQSJ9.e30.AA"])
)
def test_eat_decoder_total_on_text(token: str) -> None:
    try:
        decode_eat(
            token,
            node_id="n",
            node_key=KEY.public(),
            ueid=b"u",
            verifier_id="v",
            nonce=b"x" * 32,
            nonces=NonceRegistry(Clock()),
            now=0,
        )
    except EatVerificationError:
        return
    raise AssertionError("garbage EAT accepted")


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_no_mutated_eat_is_accepted(data: st.DataObject) -> None:
    clock = Clock()
    nonces = NonceRegistry(clock)
    nonce = nonces.issue("n")
    token = make_eat(
        KEY,
        node_id="n",
        verifier_id="v",
        nonce=nonce,
        ueid=b"u",
        measurements={"agent": b"a" * 32},
        now=clock.now,
    )
    raw = data.draw(mutated(token.encode()))
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return
    if text == token:
        return
    try:
        decode_eat(
            text,
            node_id="n",
            node_key=KEY.public(),
            ueid=b"u",
            verifier_id="v",
            nonce=nonce,
            nonces=nonces,
            now=clock.now,
        )
    except EvidenceVerificationError:
        return
    # base64url has padding-free aliases: the last character's unused bits may differ
    head, body, sig = text.split(".")
    assert (head, body) == tuple(token.split(".")[:2]) and sig[:-1] == token.split(".")[2][:-1]


def _ek_certificate() -> tuple[bytes, TpmPublic, x509.Certificate]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "EK CA")])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=3650))
        .sign(ca_key, hashes.SHA256())
    )
    ek = parse_public(SWTPM_EK_RSA_PUBLIC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(name)
        .public_key(ek.public_key())
        .serial_number(2)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=3650))
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER), ek, ca


EK_CERT, EK, EK_CA = _ek_certificate()
CERT_NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_ek_certificate_fixture_is_accepted() -> None:
    verify_ek_certificate(EK_CERT, EK, roots=[EK_CA], now=CERT_NOW)


@FAST
@given(mutated(EK_CERT) | st.binary(max_size=300))
def test_mutated_ek_certificates_only_raise_credential_errors(der: bytes) -> None:
    try:
        verify_ek_certificate(der, EK, roots=[EK_CA], now=CERT_NOW)
    except CredentialVerificationError:
        return
    # accepted: only if it is the same certificate (DER padding is trimmed)
    assert der[: len(EK_CERT)] == EK_CERT


def test_ek_certificate_with_a_malformed_issuer_is_a_credential_error() -> None:
    """Found by the fuzz test above: cryptography parses the issuer lazily, so a bad tag in
    it used to surface as a bare ValueError when the chain was walked."""
    marker = b"\x06\x03U\x04\x03\x0c\x05EK CA"  # issuer CN, a UTF8String
    assert marker in EK_CERT
    bad = EK_CERT.replace(marker, marker.replace(b"\x0c\x05", b"\x0d\x05"), 1)
    with pytest.raises(CredentialVerificationError) as info:
        verify_ek_certificate(bad, EK, roots=[EK_CA], now=CERT_NOW)
    assert info.value.reason == "ek_certificate"
