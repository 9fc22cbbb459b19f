"""verify_quote: each numbered step accepts good evidence and refuses its own bad case."""

from __future__ import annotations

import hashlib

import pytest

from identity.attestation import (
    CredentialVerificationError,
    MeasurementLog,
    NonceRegistry,
    NonceVerificationError,
    PcrMismatchError,
    QuoteVerificationError,
    TpmStructureError,
    verify_quote,
)
from identity.attestation.tpm_marshal import marshal_ecc_public
from identity.attestation.tpm_structures import TPM_ALG_SHA1, TPM_ALG_SHA256, PcrSelection
from tests.unit.identity.test_attest_support import (
    AGENT_V2,
    SWTPM_AK_PUBLIC,
    SWTPM_LOG,
    SWTPM_NONCE,
    SWTPM_QUOTE,
    SWTPM_SIGNATURE,
    Clock,
    SoftTpm,
    fixed_nonces,
    node_log,
)

NODE = "op1/node-a"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def nonces(clock: Clock) -> NonceRegistry:
    return NonceRegistry(clock)


@pytest.fixture(scope="module")
def tpm() -> SoftTpm:
    return SoftTpm().replay(node_log())


def _verify(
    tpm: SoftTpm, quote: bytes, sig: bytes, nonce: bytes, nonces: NonceRegistry, **kw: object
) -> None:
    args: dict = {
        "ak_public": tpm.ak_public,
        "node_id": NODE,
        "nonce": nonce,
        "nonces": nonces,
        "measurement_log": node_log(),
    }
    args.update(kw)
    verify_quote(quote, sig, **args)


@pytest.mark.parametrize("kind", ["ecdsa", "rsassa", "rsapss"])
def test_good_quote_accepted(kind: str, nonces: NonceRegistry) -> None:
    tpm = SoftTpm(kind).replay(node_log())
    nonce = nonces.issue(NODE)
    quote, sig = tpm.quote(nonce)
    assert _verify(tpm, quote, sig, nonce, nonces) is None


def test_real_swtpm_quote_accepted(clock: Clock) -> None:
    nonces = NonceRegistry(clock, randomness=fixed_nonces(SWTPM_NONCE), nonce_bytes=16)
    nonce = nonces.issue(NODE)
    verify_quote(
        SWTPM_QUOTE,
        SWTPM_SIGNATURE,
        ak_public=SWTPM_AK_PUBLIC,
        node_id=NODE,
        nonce=nonce,
        nonces=nonces,
        measurement_log=SWTPM_LOG,
    )


def test_step1_malformed_quote(tpm: SoftTpm, nonces: NonceRegistry) -> None:
    nonce = nonces.issue(NODE)
    quote, sig = tpm.quote(nonce)
    with pytest.raises(TpmStructureError):
        _verify(tpm, quote[:-3], sig, nonce, nonces)
    with pytest.raises(TpmStructureError):
        _verify(tpm, quote, sig[:5], nonce, nonces)


def test_step2_magic(tpm: SoftTpm, nonces: NonceRegistry) -> None:
    nonce = nonces.issue(NODE)
    quote, sig = tpm.quote(nonce, magic=0xFF544348)
    with pytest.raises(QuoteVerificationError) as err:
        _verify(tpm, quote, sig, nonce, nonces)
    assert err.value.reason == "magic"


def test_step3_type(tpm: SoftTpm, nonces: NonceRegistry) -> None:
    nonce = nonces.issue(NODE)
    quote, sig = tpm.quote(nonce, attest_type=0x8017)
    with pytest.raises(QuoteVerificationError) as err:
        _verify(tpm, quote, sig, nonce, nonces)
    assert err.value.reason == "type"


def test_step4_quote_signed_by_another_ak(tpm: SoftTpm, nonces: NonceRegistry) -> None:
    other = SoftTpm().replay(node_log())
    nonce = nonces.issue(NODE)
    quote, sig = other.quote(nonce)
    with pytest.raises(QuoteVerificationError) as err:
        _verify(tpm, quote, sig, nonce, nonces)
    assert err.value.reason == "signature"
    # the nonce survives: forged evidence does not burn it
    good_quote, good_sig = tpm.quote(nonce)
    _verify(tpm, good_quote, good_sig, nonce, nonces)


def test_step4_tampered_quote(tpm: SoftTpm, nonces: NonceRegistry) -> None:
    nonce = nonces.issue(NODE)
    quote, sig = tpm.quote(nonce)
    tampered = bytearray(quote)
    tampered[-1] ^= 1  # last byte of pcrDigest
    with pytest.raises(QuoteVerificationError) as err:
        _verify(tpm, bytes(tampered), sig, nonce, nonces)
    assert err.value.reason == "signature"


def test_step4_signature_scheme_must_fit_ak(nonces: NonceRegistry) -> None:
    rsa_tpm = SoftTpm("rsapss").replay(node_log())
    ecc_tpm = SoftTpm().replay(node_log())
    nonce = nonces.issue(NODE)
    quote, sig = ecc_tpm.quote(nonce)
    with pytest.raises(QuoteVerificationError) as err:
        _verify(rsa_tpm, quote, sig, nonce, nonces)
    assert err.value.reason == "signature_scheme"


def test_ak_must_be_a_restricted_signing_key(tpm: SoftTpm, nonces: NonceRegistry) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    unrestricted = marshal_ecc_public(
        key.x.to_bytes(32, "big"), key.y.to_bytes(32, "big"), attributes=0x00040072
    )
    nonce = nonces.issue(NODE)
    quote, sig = tpm.quote(nonce)
    with pytest.raises(CredentialVerificationError) as err:
        _verify(tpm, quote, sig, nonce, nonces, ak_public=unrestricted)
    assert err.value.reason == "ak_attributes"


def test_step5_nonce_not_in_extra_data(tpm: SoftTpm, nonces: NonceRegistry) -> None:
    nonce = nonces.issue(NODE)
    quote, sig = tpm.quote(b"\x00" * 32)
    with pytest.raises(QuoteVerificationError) as err:
        _verify(tpm, quote, sig, nonce, nonces)
    assert err.value.reason == "nonce"


def test_step5_replayed_nonce(tpm: SoftTpm, nonces: NonceRegistry) -> None:
    nonce = nonces.issue(NODE)
    quote, sig = tpm.quote(nonce)
    _verify(tpm, quote, sig, nonce, nonces)
    with pytest.raises(NonceVerificationError) as err:
        _verify(tpm, quote, sig, nonce, nonces)
    assert err.value.reason == "nonce_replayed"


def test_step5_expired_nonce(tpm: SoftTpm, nonces: NonceRegistry, clock: Clock) -> None:
    nonce = nonces.issue(NODE)
    quote, sig = tpm.quote(nonce)
    clock.now += 60.0
    with pytest.raises(NonceVerificationError) as err:
        _verify(tpm, quote, sig, nonce, nonces)
    assert err.value.reason == "nonce_expired"


def test_step5_nonce_never_issued(tpm: SoftTpm, nonces: NonceRegistry) -> None:
    nonce = hashlib.sha256(b"made up").digest()
    quote, sig = tpm.quote(nonce)
    with pytest.raises(NonceVerificationError) as err:
        _verify(tpm, quote, sig, nonce, nonces)
    assert err.value.reason == "nonce_unknown"


def test_evidence_of_node_a_presented_by_node_b(nonces: NonceRegistry) -> None:
    node_a, node_b = SoftTpm().replay(node_log()), SoftTpm().replay(node_log())
    nonce_a = nonces.issue("op1/node-a")
    quote, sig = node_a.quote(nonce_a)
    # B claims A's quote as its own: B's enrolled AK does not verify it
    with pytest.raises(QuoteVerificationError) as err:
        _verify(node_b, quote, sig, nonce_a, nonces, node_id="op1/node-b")
    assert err.value.reason == "signature"
    # even with A's AK (a verifier misconfigured to look keys up from the evidence),
    # the nonce was issued to A, not B
    with pytest.raises(NonceVerificationError) as err2:
        _verify(node_a, quote, sig, nonce_a, nonces, node_id="op1/node-b")
    assert err2.value.reason == "nonce_node"
    _verify(node_a, quote, sig, nonce_a, nonces, node_id="op1/node-a")


def test_step6_selection_must_cover_log(tpm: SoftTpm, nonces: NonceRegistry) -> None:
    nonce = nonces.issue(NODE)
    quote, sig = tpm.quote(nonce, pcrs=(10,))
    with pytest.raises(QuoteVerificationError) as err:
        _verify(tpm, quote, sig, nonce, nonces)
    assert err.value.reason == "pcr_selection"


def test_step6_only_sha256_bank(tpm: SoftTpm, nonces: NonceRegistry) -> None:
    nonce = nonces.issue(NODE)
    quote, sig = tpm.quote(nonce, pcr_select=[PcrSelection(TPM_ALG_SHA1, (10, 14))])
    with pytest.raises(QuoteVerificationError) as err:
        _verify(tpm, quote, sig, nonce, nonces)
    assert err.value.reason == "pcr_selection"
    nonce = nonces.issue(NODE)
    two_banks = [PcrSelection(TPM_ALG_SHA256, (10, 14)), PcrSelection(TPM_ALG_SHA1, (10,))]
    quote, sig = tpm.quote(nonce, pcr_select=two_banks)
    with pytest.raises(QuoteVerificationError, match="SHA-256 bank only"):
        _verify(tpm, quote, sig, nonce, nonces)


def test_step7_pcr_mismatch(tpm: SoftTpm, nonces: NonceRegistry) -> None:
    nonce = nonces.issue(NODE)
    quote, sig = tpm.quote(nonce)
    lying_log = node_log(agent=AGENT_V2)  # the log claims another agent than was measured
    with pytest.raises(PcrMismatchError) as err:
        _verify(tpm, quote, sig, nonce, nonces, measurement_log=lying_log)
    assert err.value.reason == "pcr_digest"
    assert err.value.expected != err.value.calculated and len(err.value.calculated) == 32


def test_step7_reordered_log_mismatches(tpm: SoftTpm, nonces: NonceRegistry) -> None:
    nonce = nonces.issue(NODE)
    quote, sig = tpm.quote(nonce)
    events = node_log().events
    reordered = MeasurementLog((events[0], events[2], events[1], events[3]))
    with pytest.raises(PcrMismatchError):
        _verify(tpm, quote, sig, nonce, nonces, measurement_log=reordered)
