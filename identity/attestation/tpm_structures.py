"""TPM 2.0 structure parsers (TPM 2.0 Library, Part 2: Structures), size-checked.

Parses the structures a verifier receives from outside: ``TPMS_ATTEST`` (with
``TPMS_CLOCK_INFO`` and ``TPMS_QUOTE_INFO``), ``TPMT_SIGNATURE`` and
``TPM2B_PUBLIC`` / ``TPMT_PUBLIC`` (RSA and ECC keys), and computes object
names (``nameAlg || H_nameAlg(TPMT_PUBLIC)``).

Invariants:
- Every length is checked against both the remaining input and the
  structure's maximum before anything is read; trailing bytes are refused.
- Malformed input raises :class:`TpmStructureError` carrying the structure
  name and the byte offset where parsing stopped; nothing else escapes.
- Parsers check structure only. Semantics (magic value, attestation type,
  key attributes) are the verifiers' job, so each gets its own refusal.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from functools import cached_property

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from identity.attestation.errors import TpmStructureError

TPM_GENERATED_VALUE = 0xFF544347
TPM_ST_ATTEST_QUOTE = 0x8018

TPM_ALG_RSA = 0x0001
TPM_ALG_SHA1 = 0x0004
TPM_ALG_AES = 0x0006
TPM_ALG_SHA256 = 0x000B
TPM_ALG_SHA384 = 0x000C
TPM_ALG_SHA512 = 0x000D
TPM_ALG_NULL = 0x0010
TPM_ALG_RSASSA = 0x0014
TPM_ALG_RSAPSS = 0x0016
TPM_ALG_ECDSA = 0x0018
TPM_ALG_ECDAA = 0x001A
TPM_ALG_ECC = 0x0023
TPM_ALG_CFB = 0x0043

TPM_ECC_NIST_P256 = 0x0003
TPM_ECC_NIST_P384 = 0x0004
TPM_ECC_NIST_P521 = 0x0005

# TPMA_OBJECT bits
TPMA_OBJECT_FIXEDTPM = 0x00000002
TPMA_OBJECT_FIXEDPARENT = 0x00000010
TPMA_OBJECT_SENSITIVEDATAORIGIN = 0x00000020
TPMA_OBJECT_RESTRICTED = 0x00010000
TPMA_OBJECT_DECRYPT = 0x00020000
TPMA_OBJECT_SIGN_ENCRYPT = 0x00040000

HASH_ALGORITHMS: dict[int, str] = {
    TPM_ALG_SHA1: "sha1",
    TPM_ALG_SHA256: "sha256",
    TPM_ALG_SHA384: "sha384",
    TPM_ALG_SHA512: "sha512",
}
DIGEST_SIZES: dict[int, int] = {
    TPM_ALG_SHA1: 20,
    TPM_ALG_SHA256: 32,
    TPM_ALG_SHA384: 48,
    TPM_ALG_SHA512: 64,
}
ECC_CURVES: dict[int, ec.EllipticCurve] = {
    TPM_ECC_NIST_P256: ec.SECP256R1(),
    TPM_ECC_NIST_P384: ec.SECP384R1(),
    TPM_ECC_NIST_P521: ec.SECP521R1(),
}
ECC_COORDINATE_SIZES: dict[int, int] = {
    TPM_ECC_NIST_P256: 32,
    TPM_ECC_NIST_P384: 48,
    TPM_ECC_NIST_P521: 66,
}

MAX_ATTEST_BYTES = 2048
MAX_SIGNATURE_BYTES = 1024
MAX_PUBLIC_BYTES = 1024
MAX_DIGEST_BYTES = 64  # TPM2B_DIGEST, TPM2B_DATA
MAX_NAME_BYTES = 2 + MAX_DIGEST_BYTES  # TPM2B_NAME
MAX_RSA_KEY_BYTES = 512  # TPM2B_PUBLIC_KEY_RSA (4096-bit)
MAX_ECC_PARAMETER_BYTES = 66  # TPM2B_ECC_PARAMETER (P-521)
MAX_PCR_SELECT_BYTES = 4  # PCR_SELECT_MAX for 32 PCRs
MAX_PCR_BANKS = 16  # HASH_COUNT bound for TPML_PCR_SELECTION


_U16 = struct.Struct(">H").unpack_from
_U32 = struct.Struct(">I").unpack_from
_U64 = struct.Struct(">Q").unpack_from


class _Reader:
    """Big-endian cursor that raises TpmStructureError instead of reading past the end."""

    __slots__ = ("data", "pos", "structure")

    def __init__(self, data: bytes, structure: str) -> None:
        self.data = data
        self.pos = 0
        self.structure = structure

    def fail(self, message: str) -> TpmStructureError:
        return TpmStructureError(message, structure=self.structure, offset=self.pos)

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise self.fail(f"needs {n} bytes, {len(self.data) - self.pos} left")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def _need(self, n: int) -> int:
        pos = self.pos
        if n > len(self.data) - pos:
            raise self.fail(f"needs {n} bytes, {len(self.data) - pos} left")
        self.pos = pos + n
        return pos

    def u8(self) -> int:
        return self.data[self._need(1)]

    def u16(self) -> int:
        return int(_U16(self.data, self._need(2))[0])

    def u32(self) -> int:
        return int(_U32(self.data, self._need(4))[0])

    def u64(self) -> int:
        return int(_U64(self.data, self._need(8))[0])

    def tpm2b(self, max_size: int, what: str) -> bytes:
        size = self.u16()
        if size > max_size:
            self.pos -= 2
            raise self.fail(f"{what} size {size} exceeds maximum {max_size}")
        return self.take(size)

    def end(self) -> None:
        if self.pos != len(self.data):
            raise self.fail(f"{len(self.data) - self.pos} trailing bytes")


def _check_input(data: object, max_size: int, structure: str) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TpmStructureError("input is not bytes", structure=structure, offset=0)
    raw = bytes(data)
    if len(raw) > max_size:
        raise TpmStructureError(
            f"input of {len(raw)} bytes exceeds maximum {max_size}", structure=structure, offset=0
        )
    return raw


@dataclass(frozen=True, slots=True)
class ClockInfo:
    """TPMS_CLOCK_INFO."""

    clock: int
    reset_count: int
    restart_count: int
    safe: bool


@dataclass(frozen=True, slots=True)
class PcrSelection:
    """One TPMS_PCR_SELECTION: a hash bank and the selected PCR indices (ascending)."""

    hash_alg: int
    pcrs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class QuoteInfo:
    """TPMS_QUOTE_INFO: the TPML_PCR_SELECTION and the digest of the selected PCRs."""

    pcr_select: tuple[PcrSelection, ...]
    pcr_digest: bytes


@dataclass(frozen=True, slots=True)
class Attest:
    """TPMS_ATTEST. ``quote`` is set only when ``type`` is TPM_ST_ATTEST_QUOTE."""

    magic: int
    type: int
    qualified_signer: bytes
    extra_data: bytes
    clock_info: ClockInfo
    firmware_version: int
    quote: QuoteInfo | None


def _pcr_selection(r: _Reader) -> tuple[PcrSelection, ...]:
    count = r.u32()
    if count > MAX_PCR_BANKS:
        r.pos -= 4
        raise r.fail(f"TPML_PCR_SELECTION count {count} exceeds {MAX_PCR_BANKS}")
    banks = []
    for _ in range(count):
        hash_alg = r.u16()
        size = r.u8()
        if size > MAX_PCR_SELECT_BYTES:
            r.pos -= 1
            raise r.fail(f"sizeofSelect {size} exceeds {MAX_PCR_SELECT_BYTES}")
        bitmap = r.take(size)
        pcrs = tuple(i * 8 + b for i, byte in enumerate(bitmap) for b in range(8) if byte >> b & 1)
        banks.append(PcrSelection(hash_alg, pcrs))
    return tuple(banks)


def parse_attest(data: bytes) -> Attest:
    """Parse a marshalled TPMS_ATTEST (the body of a TPM2B_ATTEST).

    Raises TpmStructureError on any malformation or trailing byte.
    """
    r = _Reader(_check_input(data, MAX_ATTEST_BYTES, "TPMS_ATTEST"), "TPMS_ATTEST")
    magic = r.u32()
    type_ = r.u16()
    qualified_signer = r.tpm2b(MAX_NAME_BYTES, "qualifiedSigner")
    extra_data = r.tpm2b(MAX_DIGEST_BYTES, "extraData")
    r.structure = "TPMS_CLOCK_INFO"
    clock, reset_count, restart_count = r.u64(), r.u32(), r.u32()
    safe = r.u8()
    if safe > 1:
        r.pos -= 1
        raise r.fail(f"TPMI_YES_NO value {safe}")
    r.structure = "TPMS_ATTEST"
    firmware_version = r.u64()
    quote = None
    if type_ == TPM_ST_ATTEST_QUOTE:
        r.structure = "TPMS_QUOTE_INFO"
        pcr_select = _pcr_selection(r)
        pcr_digest = r.tpm2b(MAX_DIGEST_BYTES, "pcrDigest")
        quote = QuoteInfo(pcr_select, pcr_digest)
        r.end()
    return Attest(
        magic,
        type_,
        qualified_signer,
        extra_data,
        ClockInfo(clock, reset_count, restart_count, bool(safe)),
        firmware_version,
        quote,
    )


@dataclass(frozen=True, slots=True)
class Signature:
    """TPMT_SIGNATURE: RSASSA / RSAPSS carry ``rsa_signature``; ECDSA carries ``r``, ``s``."""

    sig_alg: int
    hash_alg: int
    rsa_signature: bytes = b""
    r: int = 0
    s: int = 0


def parse_signature(data: bytes) -> Signature:
    """Parse a marshalled TPMT_SIGNATURE (RSASSA, RSAPSS or ECDSA).

    Raises TpmStructureError for malformed input or another signature scheme.
    """
    r = _Reader(_check_input(data, MAX_SIGNATURE_BYTES, "TPMT_SIGNATURE"), "TPMT_SIGNATURE")
    sig_alg = r.u16()
    if sig_alg in (TPM_ALG_RSASSA, TPM_ALG_RSAPSS):
        hash_alg = r.u16()
        sig = r.tpm2b(MAX_RSA_KEY_BYTES, "TPM2B_PUBLIC_KEY_RSA")
        r.end()
        return Signature(sig_alg, hash_alg, rsa_signature=sig)
    if sig_alg == TPM_ALG_ECDSA:
        hash_alg = r.u16()
        sig_r = r.tpm2b(MAX_ECC_PARAMETER_BYTES, "signatureR")
        sig_s = r.tpm2b(MAX_ECC_PARAMETER_BYTES, "signatureS")
        r.end()
        return Signature(
            sig_alg, hash_alg, r=int.from_bytes(sig_r, "big"), s=int.from_bytes(sig_s, "big")
        )
    r.pos -= 2
    raise r.fail(f"unsupported signature algorithm 0x{sig_alg:04x}")


@dataclass(frozen=True, slots=True)
class SymmetricDefinition:
    """TPMT_SYM_DEF_OBJECT (``algorithm`` TPM_ALG_NULL when absent)."""

    algorithm: int
    key_bits: int = 0
    mode: int = 0


@dataclass(frozen=True)
class TpmPublic:
    """TPMT_PUBLIC of an RSA or ECC key; ``raw`` is its marshalled form (the name's input)."""

    type: int
    name_alg: int
    object_attributes: int
    auth_policy: bytes
    symmetric: SymmetricDefinition
    scheme: int
    scheme_hash_alg: int
    raw: bytes
    rsa_key_bits: int = 0
    rsa_exponent: int = 0
    rsa_modulus: bytes = b""
    ecc_curve: int = 0
    ecc_x: bytes = b""
    ecc_y: bytes = b""

    @cached_property
    def name(self) -> bytes:
        """TPM2B_NAME body: nameAlg (2 bytes) || H_nameAlg(TPMT_PUBLIC)."""
        digest = hashlib.new(HASH_ALGORITHMS[self.name_alg], self.raw).digest()
        return struct.pack(">H", self.name_alg) + digest

    def has_attributes(self, mask: int) -> bool:
        return self.object_attributes & mask == mask

    def public_key(self) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        """The key as a cryptography object; raises TpmStructureError if it is not valid."""
        try:
            if self.type == TPM_ALG_RSA:
                exponent = self.rsa_exponent or 65537
                modulus = int.from_bytes(self.rsa_modulus, "big")
                return rsa.RSAPublicNumbers(exponent, modulus).public_key()
            numbers = ec.EllipticCurvePublicNumbers(
                int.from_bytes(self.ecc_x, "big"),
                int.from_bytes(self.ecc_y, "big"),
                ECC_CURVES[self.ecc_curve],
            )
            return numbers.public_key()
        except ValueError as exc:
            raise TpmStructureError(
                f"not a valid public key: {exc}", structure="TPMT_PUBLIC", offset=0
            ) from exc


def _symmetric(r: _Reader) -> SymmetricDefinition:
    algorithm = r.u16()
    if algorithm == TPM_ALG_NULL:
        return SymmetricDefinition(algorithm)
    return SymmetricDefinition(algorithm, r.u16(), r.u16())


def _scheme(r: _Reader) -> tuple[int, int]:
    scheme = r.u16()
    if scheme == TPM_ALG_NULL:
        return scheme, TPM_ALG_NULL
    hash_alg = r.u16()
    if scheme == TPM_ALG_ECDAA:
        r.u16()  # count
    return scheme, hash_alg


def parse_public(data: bytes) -> TpmPublic:
    """Parse a marshalled TPM2B_PUBLIC (size-prefixed TPMT_PUBLIC) of an RSA or ECC key.

    Raises TpmStructureError on malformation, an unknown nameAlg or curve, a
    key size that disagrees with the parameters, or trailing bytes.
    """
    outer = _Reader(_check_input(data, MAX_PUBLIC_BYTES, "TPM2B_PUBLIC"), "TPM2B_PUBLIC")
    body = outer.tpm2b(MAX_PUBLIC_BYTES, "TPM2B_PUBLIC")
    outer.end()
    if not body:
        raise TpmStructureError("empty TPMT_PUBLIC", structure="TPM2B_PUBLIC", offset=2)
    public = parse_tpmt_public(body)
    return public


def parse_tpmt_public(body: bytes) -> TpmPublic:
    """Parse a marshalled TPMT_PUBLIC (no size prefix); raises TpmStructureError."""
    r = _Reader(_check_input(body, MAX_PUBLIC_BYTES, "TPMT_PUBLIC"), "TPMT_PUBLIC")
    type_ = r.u16()
    name_alg = r.u16()
    if name_alg not in HASH_ALGORITHMS:
        r.pos -= 2
        raise r.fail(f"unsupported nameAlg 0x{name_alg:04x}")
    attributes = r.u32()
    auth_policy = r.tpm2b(MAX_DIGEST_BYTES, "authPolicy")
    if type_ == TPM_ALG_RSA:
        symmetric = _symmetric(r)
        scheme, scheme_hash = _scheme(r)
        key_bits, exponent = r.u16(), r.u32()
        modulus = r.tpm2b(MAX_RSA_KEY_BYTES, "TPM2B_PUBLIC_KEY_RSA")
        if key_bits not in (1024, 2048, 3072, 4096) or len(modulus) * 8 != key_bits:
            raise r.fail(f"RSA modulus of {len(modulus)} bytes for keyBits {key_bits}")
        r.end()
        return TpmPublic(
            type_,
            name_alg,
            attributes,
            auth_policy,
            symmetric,
            scheme,
            scheme_hash,
            body,
            rsa_key_bits=key_bits,
            rsa_exponent=exponent,
            rsa_modulus=modulus,
        )
    if type_ == TPM_ALG_ECC:
        symmetric = _symmetric(r)
        scheme, scheme_hash = _scheme(r)
        curve = r.u16()
        if curve not in ECC_CURVES:
            r.pos -= 2
            raise r.fail(f"unsupported curve 0x{curve:04x}")
        kdf = r.u16()
        if kdf != TPM_ALG_NULL:
            r.u16()
        x = r.tpm2b(MAX_ECC_PARAMETER_BYTES, "x")
        y = r.tpm2b(MAX_ECC_PARAMETER_BYTES, "y")
        r.end()
        size = ECC_COORDINATE_SIZES[curve]
        if len(x) > size or len(y) > size:
            raise r.fail(f"ECC point coordinates longer than {size} bytes")
        return TpmPublic(
            type_,
            name_alg,
            attributes,
            auth_policy,
            symmetric,
            scheme,
            scheme_hash,
            body,
            ecc_curve=curve,
            ecc_x=x,
            ecc_y=y,
        )
    raise TpmStructureError(
        f"unsupported key type 0x{type_:04x}", structure="TPMT_PUBLIC", offset=0
    )
