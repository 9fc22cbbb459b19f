"""Hardware-rooted enrollment and quotes against a real software TPM (swtpm + tpm2-tools).

The test provisions a fresh swtpm with an EK certificate from a local CA
(swtpm_setup + swtpm_localca in a temporary directory), starts ``swtpm
socket`` on free loopback ports, and drives it with
:class:`identity.attestation.Tpm2Tools` as the node agent would:
MakeCredential (ours) -> tpm2_activatecredential, PCR extends, tpm2_quote
with our nonce -> verify_quote / appraise_quote, plus tampered variants.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from identity.attestation import (
    AppraisalContext,
    CredentialVerificationError,
    MeasurementLog,
    NonceRegistry,
    NonceVerificationError,
    PcrMismatchError,
    QuoteVerificationError,
    ReferenceValueSet,
    Tpm2Tools,
    TpmToolError,
    TrustTier,
    appraise_quote,
    begin_ak_enrollment,
    make_credential,
    parse_public,
    verify_quote,
)
from scheduler.demo_tpm import missing_tools
from scheduler.demo_tpm import start as start_soft_tpm

pytestmark = pytest.mark.swtpm

MISSING = missing_tools()  # the demo's own list: what starting the software TPM needs
if MISSING:
    pytest.skip(
        f"swtpm/tpm2-tools not installed (missing: {', '.join(MISSING)}); "
        "install the Debian packages swtpm swtpm-tools tpm2-tools",
        allow_module_level=True,
    )

BIN_DIR = Path(shutil.which("tpm2_quote") or "/usr/bin/tpm2_quote").parent
NODE = "op1/node-swtpm"
AGENT = hashlib.sha256(b"cntrust-agent 1.0").digest()
RUNTIME = hashlib.sha256(b"python 3.11").digest()
LOG = MeasurementLog.of(
    [(14, AGENT, "agent"), (14, RUNTIME, "runtime/python"), (15, AGENT, "agent")]
)


@dataclass
class Swtpm:
    tcti: str
    ca_dir: Path
    root: Path


@pytest.fixture(scope="module")
def swtpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swtpm]:
    """A provisioned swtpm (EK certificate from swtpm_localca) on free loopback ports,
    started the way ``cntrust demo`` starts its own (scheduler.demo_tpm.start)."""
    data_dir = tmp_path_factory.mktemp("swtpm")
    tpm = start_soft_tpm(data_dir)
    if tpm is None:
        pytest.skip(f"swtpm/tpm2-tools not installed (missing: {', '.join(missing_tools())})")
    try:
        root = data_dir / "swtpm"
        yield Swtpm(tpm.tcti, root / "ca", root)
    finally:
        tpm.stop()


@pytest.fixture(scope="module")
def node(swtpm: Swtpm) -> Tpm2Tools:
    return Tpm2Tools(swtpm.tcti, swtpm.root / "node", bin_dir=BIN_DIR)


@pytest.fixture(scope="module")
def enrolled_ak(swtpm: Swtpm, node: Tpm2Tools) -> bytes:
    """Full hardware-rooted enrollment; returns the AK's TPM2B_PUBLIC."""
    ek_public = node.ek_public()
    ek_cert = node.ek_certificate()
    assert ek_cert is not None, "swtpm_setup --create-ek-cert wrote no EK certificate"
    root = x509.load_pem_x509_certificate(
        (swtpm.ca_dir / "swtpm-localca-rootca-cert.pem").read_bytes()
    )
    issuer = x509.load_pem_x509_certificate((swtpm.ca_dir / "issuercert.pem").read_bytes())
    ak_public = node.create_ak()
    enrollment = begin_ak_enrollment(
        ek_public,
        ak_public,
        ek_certificate=ek_cert,
        ek_roots=[root],
        ek_intermediates=[issuer],
        now=datetime.now(UTC),
    )
    activated = node.activate_credential(enrollment.challenge.to_tpm2_tools())
    enrollment.verify_activation(activated)
    for event in LOG.events:
        node.extend_pcr(event.pcr, event.digest)
    return ak_public


def _impostor_root(subject: x509.Name) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def test_ek_certificate_from_another_ca_refused(
    swtpm: Swtpm, node: Tpm2Tools, enrolled_ak: bytes
) -> None:
    real_root = (swtpm.ca_dir / "swtpm-localca-rootca-cert.pem").read_bytes()
    impostor = _impostor_root(x509.load_pem_x509_certificate(real_root).subject)
    issuer = x509.load_pem_x509_certificate((swtpm.ca_dir / "issuercert.pem").read_bytes())
    with pytest.raises(CredentialVerificationError) as err:
        begin_ak_enrollment(
            node.ek_public(),
            enrolled_ak,
            ek_certificate=node.ek_certificate(),
            ek_roots=[impostor],
            ek_intermediates=[issuer],
            now=datetime.now(UTC),
        )
    assert err.value.reason == "ek_certificate_chain"


def test_ecc_ek_enrollment(swtpm: Swtpm) -> None:
    """MakeCredential to an ECC P-256 EK (KDFe seed) activates in the real TPM."""
    node = Tpm2Tools(swtpm.tcti, swtpm.root / "ecc-node", bin_dir=BIN_DIR, ek_algorithm="ecc")
    ek_public = node.ek_public()
    assert parse_public(ek_public).ecc_curve == 0x0003
    enrollment = begin_ak_enrollment(
        ek_public,
        node.create_ak(),
        ek_certificate=None,
        ek_roots=[],
        now=datetime.now(UTC),
        require_ek_certificate=False,
    )
    enrollment.verify_activation(node.activate_credential(enrollment.challenge.to_tpm2_tools()))


def test_credential_for_another_ak_cannot_be_activated(node: Tpm2Tools, enrolled_ak: bytes) -> None:
    ek = parse_public(node.ek_public())
    foreign_name = b"\x00\x0b" + hashlib.sha256(b"an AK in another TPM").digest()
    challenge = make_credential(ek, foreign_name, b"s" * 32)
    with pytest.raises(TpmToolError) as err:
        node.activate_credential(challenge.to_tpm2_tools())
    assert err.value.command == "tpm2_activatecredential"


def test_real_quote_verified_and_appraised(node: Tpm2Tools, enrolled_ak: bytes) -> None:
    nonces = NonceRegistry(time.time)
    nonce = nonces.issue(NODE)
    quote, signature = node.quote(nonce, [14, 15])
    rv = ReferenceValueSet(
        "swtpm", 1, {"agent": frozenset({AGENT}), "runtime/python": frozenset({RUNTIME})}
    )
    ctx = AppraisalContext(NODE, "verifier", (rv,), nonces, time.time())
    result = appraise_quote(
        ctx,
        quote=quote,
        signature=signature,
        ak_public=enrolled_ak,
        nonce=nonce,
        measurement_log=LOG,
    )
    assert result.status is TrustTier.AFFIRMING, result.reasons()


def test_tampered_real_quotes_refused(node: Tpm2Tools, enrolled_ak: bytes, swtpm: Swtpm) -> None:
    nonces = NonceRegistry(time.time)
    nonce = nonces.issue(NODE)
    quote, signature = node.quote(nonce, [14, 15])
    args = {"ak_public": enrolled_ak, "node_id": NODE, "nonce": nonce, "nonces": nonces}
    flipped = bytearray(quote)
    flipped[-1] ^= 0x80
    with pytest.raises(QuoteVerificationError, match="not signed"):
        verify_quote(bytes(flipped), signature, measurement_log=LOG, **args)  # type: ignore[arg-type]
    verify_quote(quote, signature, measurement_log=LOG, **args)  # type: ignore[arg-type]
    with pytest.raises(NonceVerificationError, match="already used"):
        verify_quote(quote, signature, measurement_log=LOG, **args)  # type: ignore[arg-type]
    drifted = MeasurementLog.of(
        [(14, RUNTIME, "agent"), (14, RUNTIME, "runtime/python"), (15, AGENT, "agent")]
    )
    fresh = nonces.issue(NODE)
    quote, signature = node.quote(fresh, [14, 15])
    with pytest.raises(PcrMismatchError):
        verify_quote(quote, signature, measurement_log=drifted, **{**args, "nonce": fresh})  # type: ignore[arg-type]
    # a second AK in the same TPM (think: another node's key) signs; the enrolled AK refuses
    other = Tpm2Tools(swtpm.tcti, swtpm.root / "other-node", bin_dir=BIN_DIR)
    other.create_ak()
    nonce2 = nonces.issue(NODE)
    quote2, signature2 = other.quote(nonce2, [14, 15])
    with pytest.raises(QuoteVerificationError) as err:
        verify_quote(
            quote2,
            signature2,
            ak_public=enrolled_ak,
            node_id=NODE,
            nonce=nonce2,
            nonces=nonces,
            measurement_log=LOG,
        )
    assert err.value.reason == "signature"


def test_persistent_ak_survives_a_new_agent_instance(swtpm: Swtpm, enrolled_ak: bytes) -> None:
    first = Tpm2Tools(swtpm.tcti, swtpm.root / "persistent-node", bin_dir=BIN_DIR)
    ak_public = first.create_ak(persistent_handle=0x81000100)
    again = Tpm2Tools(swtpm.tcti, swtpm.root / "persistent-node-restarted", bin_dir=BIN_DIR)
    assert again.use_persistent_ak(0x81000100) == ak_public
    nonces = NonceRegistry(time.time)
    nonce = nonces.issue(NODE)
    quote, signature = again.quote(nonce, [14, 15])
    verify_quote(
        quote,
        signature,
        ak_public=ak_public,
        node_id=NODE,
        nonce=nonce,
        nonces=nonces,
        measurement_log=LOG,
    )
    with pytest.raises(ValueError):
        again.use_persistent_ak(0x81800000)
