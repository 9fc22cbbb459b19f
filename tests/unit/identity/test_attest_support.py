"""Test support for identity.attestation: a software AK that quotes like a TPM.

Holds no tests. ``SoftTpm`` keeps SHA-256 PCRs, extends them, and signs
TPMS_ATTEST quotes with an in-memory ECDSA P-256 (or RSA) key whose
TPM2B_PUBLIC has the attributes of a real AK. Also: known-answer bytes
captured from swtpm 0.7.1 / tpm2-tools 5.4.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from identity.attestation.measurement_log import MeasurementLog, pcr_composite_digest
from identity.attestation.tpm_marshal import (
    marshal_ecc_public,
    marshal_ecdsa_signature,
    marshal_quote_attest,
    marshal_rsa_public,
    marshal_rsa_signature,
)
from identity.attestation.tpm_structures import (
    TPM_ALG_RSAPSS,
    TPM_ALG_RSASSA,
    TPM_ALG_SHA256,
    PcrSelection,
    parse_public,
)

# Captured from swtpm + tpm2-tools: `tpm2_quote -l sha256:10,11 -q 0011..eeff` after
# `tpm2_pcrextend 10:sha256=SHA256("agent")`, with the AK made by `tpm2_createak -G ecc`.
SWTPM_QUOTE = bytes.fromhex(
    "ff54434780180022000b0c21dc345a82f27eeec6f654300bf7bc03ad217f438f0317fb7fd62086739e70"
    "001000112233445566778899aabbccddeeff0000000000003b8f00000002000000000120191023001636"
    "3600000001000b03000c000020143558ce7faef43e175c27120e1a6d91254f1f17dff3b78a576be0c046"
    "709fdc"
)
SWTPM_SIGNATURE = bytes.fromhex(
    "0018000b00206eccd225d23e47b7f0af62725fc4543fa284a15cf36832b255b01a21b82778d40020712c"
    "c0e9e6a6bd0b3318cd5a1ed15446901f56044a92c937a5e5489a98fd650a"
)
SWTPM_AK_PUBLIC = bytes.fromhex(
    "00580023000b00050072000000100018000b000300100020f19ba4d6d8a80e875419e19327f05395d6db"
    "dd2d598fb76d23f80daf38e777550020531ff5b2f242e7aa8e9df540857593a86cbb8451f8525a516d89"
    "4720c4fee254"
)
SWTPM_AK_NAME = bytes.fromhex(
    "000b6da8efd96f9492519464f5f7e8c2cbf05a375eace414e3a913f8b96b5b98ba85"
)
SWTPM_NONCE = bytes.fromhex("00112233445566778899aabbccddeeff")
SWTPM_EK_RSA_PUBLIC = bytes.fromhex(
    "013a0001000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b3314"
    "69aa00060080004300100800000000000100aed644c4ac968b140f2621fd1c31ab4a7fb8f7c45fee8ed8"
    "49eeb314a7f503e9256f738dbd541d1f0c156348d7de176f57fbe0084cb1186d125358ce9c0e88f0f263"
    "e324d2350de55ece7d09d000f8e018a7e0c7b19742d526544ab85a20ce4de8c4a17b1d0897199ab04d4b"
    "a78cd89ee7d3770056c36b5dda2e6643e852d1245de7b81f3cb4f62d2149f955b009af38cc17dcbb9c47"
    "56dbe205aa802f81d5aee23b9fc27f02d7087b9147a1d491e70e1699ee70c24205eb8a161106eac0d8b8"
    "cfe90f7fa2309a848e598891ea7d4e0165b89789e083a2f4da63f255daa83fc3b8a6f3013b45b883e91e"
    "4eb57d6bb2dd3d03bb592e99029b323b693e50a3e4cf"
)
SWTPM_EK_ECC_PUBLIC = bytes.fromhex(
    "007a0023000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b3314"
    "69aa0006008000430010000300100020cb5a92942e8a5711609d600712555003632a8aaf7a1497fb2ce8"
    "2a1901aa52b3002052d4ee97f64cd12a5676edfc7582b2bb3d1c52a824bf9a219655f5b97d8c9003"
)
SWTPM_LOG = MeasurementLog.of([(10, hashlib.sha256(b"agent").digest(), "agent")])

AGENT_V1 = hashlib.sha256(b"cntrust-agent 1.0").digest()
AGENT_V2 = hashlib.sha256(b"cntrust-agent 1.1").digest()
RUNTIME = hashlib.sha256(b"python 3.11.2").digest()
CONFIG = hashlib.sha256(b"agent.toml").digest()


def node_log(agent: bytes = AGENT_V1) -> MeasurementLog:
    """A typical node log: agent binary, runtime and config into PCR 14, boot into 10."""
    return MeasurementLog.of(
        [
            (10, hashlib.sha256(b"kernel").digest(), "boot/kernel"),
            (14, agent, "agent"),
            (14, RUNTIME, "runtime/python"),
            (14, CONFIG, "agent/config"),
        ]
    )


class SoftTpm:
    """A software AK with SHA-256 PCRs that produces TPM-format quotes."""

    def __init__(self, kind: str = "ecdsa") -> None:
        self.kind = kind
        if kind == "ecdsa":
            self.key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = ec.generate_private_key(
                ec.SECP256R1()
            )
            numbers = self.key.public_key().public_numbers()
            self.ak_public = marshal_ecc_public(
                numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")
            )
        else:
            self.key = rsa.generate_private_key(65537, 2048)
            modulus = self.key.public_key().public_numbers().n.to_bytes(256, "big")
            scheme = TPM_ALG_RSASSA if kind == "rsassa" else TPM_ALG_RSAPSS
            self.ak_public = marshal_rsa_public(modulus, scheme=scheme)
        self.name = parse_public(self.ak_public).name
        self.pcrs: dict[int, bytes] = {}

    def extend(self, pcr: int, digest: bytes) -> None:
        self.pcrs[pcr] = hashlib.sha256(self.pcrs.get(pcr, bytes(32)) + digest).digest()

    def replay(self, log: MeasurementLog) -> SoftTpm:
        for event in log.events:
            self.extend(event.pcr, event.digest)
        return self

    def quote(
        self, nonce: bytes, pcrs: Iterable[int] = (10, 14), **overrides: object
    ) -> tuple[bytes, bytes]:
        selected: Sequence[int] = sorted(pcrs)
        fields: dict = {
            "qualified_signer": self.name,
            "extra_data": nonce,
            "pcr_select": [PcrSelection(TPM_ALG_SHA256, tuple(selected))],
            "pcr_digest": pcr_composite_digest(self.pcrs, selected),
        }
        fields.update(overrides)
        attest = marshal_quote_attest(**fields)
        return attest, self.sign(attest)

    def sign(self, message: bytes) -> bytes:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(self.key.sign(message, ec.ECDSA(hashes.SHA256())))
            return marshal_ecdsa_signature(r, s)
        if self.kind == "rsassa":
            sig = self.key.sign(message, padding.PKCS1v15(), hashes.SHA256())
            return marshal_rsa_signature(TPM_ALG_RSASSA, sig)
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return marshal_rsa_signature(TPM_ALG_RSAPSS, self.key.sign(message, pss, hashes.SHA256()))


class Clock:
    """A settable clock."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fixed_nonces(*nonces: bytes):  # type: ignore[no-untyped-def]
    """A randomness source that returns the given nonces in order."""
    queue = list(nonces)
    return lambda n: queue.pop(0)
