"""CA key generation and key files.

Invariants:
- CA keys are Ed25519 (default; fastest to sign) or ECDSA P-256.
- A private key written to disk is created with mode 0600 (atomically: temporary file in
  the same directory, fsync, rename), and a key file readable by group or others is
  refused on load (like OpenSSH), raising :class:`CaStoreError`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from identity.pki.errors import CaStoreError, PkiError

KeyAlgorithm = Literal["ed25519", "ecdsa-p256"]
KEY_ALGORITHMS: tuple[KeyAlgorithm, ...] = ("ed25519", "ecdsa-p256")
MAX_KEY_FILE_BYTES = 64 * 1024

CaPrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def generate_ca_key(algorithm: KeyAlgorithm) -> CaPrivateKey:
    """Generate a CA key. Raises PkiError(reason="key_algorithm") for other algorithms."""
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise PkiError(f"unsupported CA key algorithm {algorithm!r}", reason="key_algorithm")


def key_algorithm_of(key: CaPrivateKey) -> KeyAlgorithm:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    return "ecdsa-p256"


def signature_hash(key: CaPrivateKey) -> hashes.SHA256 | None:
    """The hash to pass to ``CertificateBuilder.sign``: None for Ed25519, SHA-256 for ECDSA."""
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def write_private_key(path: Path, key: CaPrivateKey) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM with mode 0600, atomically."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_file(path, pem, mode=0o600)


def write_file(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to ``path`` atomically with permissions ``mode``."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_private_key(path: Path) -> CaPrivateKey:
    """Load a CA key, refusing a file that group or others may read.

    Raises CaStoreError (reasons ``missing``, ``permissions``, ``too_large``, ``malformed``,
    ``key_algorithm``).
    """
    try:
        st = path.stat()
    except OSError as exc:
        raise CaStoreError(f"cannot read {path}: {exc}", reason="missing", path=str(path)) from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CaStoreError(
            f"{path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):o})",
            reason="permissions",
            path=str(path),
        )
    if st.st_size > MAX_KEY_FILE_BYTES:
        raise CaStoreError(f"{path} is too large", reason="too_large", path=str(path))
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise CaStoreError(f"{path}: not a PEM key", reason="malformed", path=str(path)) from exc
    if isinstance(key, ed25519.Ed25519PrivateKey) or (
        isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    ):
        return key
    raise CaStoreError(
        f"{path}: CA key must be Ed25519 or ECDSA P-256", reason="key_algorithm", path=str(path)
    )
