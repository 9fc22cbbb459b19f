"""The node side of enrollment: make the node key locally, build the CSR, keep the SVID.

The private key never leaves the node: only the CSR (public key + proof of possession) is
sent. Files in the node's directory::

    node.key     PKCS#8 PEM private key, mode 0600 (refused on load if group/others can read)
    svid.pem     the X.509-SVID chain: leaf then operator CA (what TLS presents)
    bundle.pem   the trust bundle (roots) used to verify the scheduler

Invariants: keys are Ed25519 (default) or ECDSA P-256; every file is written atomically;
problems raise :class:`CaStoreError` (directory/file problems) or :class:`PkiError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from identity.pki.errors import CaStoreError
from identity.pki.keys import (
    CaPrivateKey,
    KeyAlgorithm,
    generate_ca_key,
    read_private_key,
    signature_hash,
    write_file,
    write_private_key,
)
from identity.pki.parsing import X509_PARSE_ERRORS

NodePrivateKey = CaPrivateKey
KEY_FILE = "node.key"
SVID_FILE = "svid.pem"
BUNDLE_FILE = "bundle.pem"
MAX_PEM_FILE_BYTES = 256 * 1024


def generate_node_key(algorithm: KeyAlgorithm = "ed25519") -> NodePrivateKey:
    """A fresh node key. Raises PkiError(reason="key_algorithm")."""
    return generate_ca_key(algorithm)


def build_csr(key: NodePrivateKey, *, common_name: str = "cntrust node") -> bytes:
    """A PEM PKCS#10 CSR for ``key``. The CA ignores the names and assigns the SPIFFE ID."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
        .sign(key, signature_hash(key))
    )
    return csr.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class NodeCredentials:
    """A node's key, its SVID chain and trust bundle, and where they live on disk."""

    directory: Path
    private_key: NodePrivateKey
    certificate: x509.Certificate
    chain_pem: bytes
    trust_bundle_pem: bytes

    @property
    def key_path(self) -> Path:
        return self.directory / KEY_FILE

    @property
    def svid_path(self) -> Path:
        return self.directory / SVID_FILE

    @property
    def bundle_path(self) -> Path:
        return self.directory / BUNDLE_FILE


def save_node_key(directory: str | os.PathLike[str], key: NodePrivateKey) -> Path:
    """Write the node key (mode 0600) into ``directory`` (created 0700). Raises CaStoreError."""
    root = Path(directory)
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private_key(root / KEY_FILE, key)
    except OSError as exc:
        raise CaStoreError(
            f"cannot write {root / KEY_FILE}: {exc}", reason="io", path=str(root)
        ) from exc
    return root / KEY_FILE


def save_node_svid(
    directory: str | os.PathLike[str], chain_pem: bytes, trust_bundle_pem: bytes
) -> None:
    """Store the issued SVID chain and trust bundle next to the key. Raises CaStoreError."""
    root = Path(directory)
    try:
        write_file(root / SVID_FILE, chain_pem, mode=0o644)
        write_file(root / BUNDLE_FILE, trust_bundle_pem, mode=0o644)
    except OSError as exc:
        raise CaStoreError(
            f"cannot write SVID to {root}: {exc}", reason="io", path=str(root)
        ) from exc


def load_node_credentials(directory: str | os.PathLike[str]) -> NodeCredentials:
    """Load what :func:`save_node_key` and :func:`save_node_svid` wrote.

    Raises CaStoreError (``missing``, ``permissions``, ``too_large``, ``malformed``,
    ``key_mismatch`` when the SVID is not for this key).
    """
    root = Path(directory)
    key = read_private_key(root / KEY_FILE)
    chain_pem = _read(root / SVID_FILE)
    bundle_pem = _read(root / BUNDLE_FILE)
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
        x509.load_pem_x509_certificates(bundle_pem)
    except X509_PARSE_ERRORS as exc:
        raise CaStoreError(
            f"{root}: not PEM certificates", reason="malformed", path=str(root)
        ) from exc
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if chain[0].public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise CaStoreError(
            f"{root / SVID_FILE} is not for {root / KEY_FILE}",
            reason="key_mismatch",
            path=str(root / SVID_FILE),
        )
    return NodeCredentials(root, key, chain[0], chain_pem, bundle_pem)


def _read(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_PEM_FILE_BYTES:
            raise CaStoreError(f"{path} is too large", reason="too_large", path=str(path))
        return path.read_bytes()
    except OSError as exc:
        raise CaStoreError(f"cannot read {path}: {exc}", reason="missing", path=str(path)) from exc
