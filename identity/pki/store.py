"""Saving and loading a :class:`CertificateAuthority` to and from a directory.

Layout::

    <dir>/ca.json                       {"format": "cntrust-ca/1", "trust_domain": ..,
                                         "operators": {"<op>": {"revoked": false}}}
    <dir>/root.crt   <dir>/root.key
    <dir>/operators/<op>/ca.crt   ca.key   previous.pem (rotated-out certificates)

Invariants: the directory is created 0700, every private key file 0600 (written
atomically); a key file readable by group or others is refused on load; operator names
are validated before being used as path components. Problems raise
:class:`CaStoreError`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from identity.pki.ca import CertificateAuthority, Clock, OperatorCa
from identity.pki.errors import CaStoreError, SpiffeIdError
from identity.pki.keys import read_private_key, write_file, write_private_key
from identity.pki.spiffe import validate_name, validate_trust_domain

FORMAT = "cntrust-ca/1"
MAX_META_BYTES = 1024 * 1024
MAX_CERT_FILE_BYTES = 1024 * 1024


def save_ca(ca: CertificateAuthority, directory: str | os.PathLike[str]) -> None:
    """Write the CA to ``directory`` (created 0700 if absent). Raises CaStoreError."""
    root = Path(directory)
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        (root / "operators").mkdir(mode=0o700, exist_ok=True)
        write_private_key(root / "root.key", ca.root_key)
        write_file(root / "root.crt", _pem(ca.root_certificate), mode=0o644)
        for op in ca.operators():
            op_dir = root / "operators" / op.operator
            op_dir.mkdir(mode=0o700, exist_ok=True)
            write_private_key(op_dir / "ca.key", op.private_key)
            write_file(op_dir / "ca.crt", _pem(op.certificate), mode=0o644)
            write_file(op_dir / "previous.pem", b"".join(_pem(c) for c in op.previous), mode=0o644)
        meta = {
            "format": FORMAT,
            "trust_domain": ca.trust_domain,
            "operators": {op.operator: {"revoked": op.revoked} for op in ca.operators()},
        }
        write_file(root / "ca.json", json.dumps(meta, indent=2).encode(), mode=0o644)
    except OSError as exc:
        raise CaStoreError(
            f"cannot write CA to {root}: {exc}", reason="io", path=str(root)
        ) from exc


def load_ca(directory: str | os.PathLike[str], *, clock: Clock = time.time) -> CertificateAuthority:
    """Load a CA saved by :func:`save_ca`. Raises CaStoreError."""
    root = Path(directory)
    meta_path = root / "ca.json"
    meta_bytes = _read(meta_path, MAX_META_BYTES)
    try:
        meta = json.loads(meta_bytes)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"format is not {FORMAT}")
        trust_domain = validate_trust_domain(meta["trust_domain"])
        operators_meta = meta["operators"]
        if not isinstance(operators_meta, dict):
            raise ValueError("operators must be an object")
        names = [validate_name(name, what="operator") for name in operators_meta]
        revoked = {name: operators_meta[name].get("revoked") is True for name in names}
    except (ValueError, KeyError, TypeError, AttributeError, SpiffeIdError) as exc:
        raise CaStoreError(
            f"{meta_path} is malformed: {exc}", reason="malformed", path=str(meta_path)
        ) from exc
    root_cert = _load_cert(root / "root.crt")
    root_key = read_private_key(root / "root.key")
    operators: dict[str, OperatorCa] = {}
    for name in names:
        op_dir = root / "operators" / name
        previous_path = op_dir / "previous.pem"
        previous: list[x509.Certificate] = []
        previous_bytes = _read(previous_path, MAX_CERT_FILE_BYTES)
        if previous_bytes.strip():
            previous = _parse_certs(previous_bytes, previous_path)
        cert_path = op_dir / "ca.crt"
        cert, key = _load_cert(cert_path), read_private_key(op_dir / "ca.key")
        try:
            operators[name] = OperatorCa(
                name, cert, key, previous=tuple(previous), revoked=revoked[name]
            )
        except x509.ExtensionNotFound as exc:
            message = f"{cert_path} has no subject key identifier"
            raise CaStoreError(message, reason="malformed", path=str(cert_path)) from exc
    return CertificateAuthority(trust_domain, root_cert, root_key, operators, clock=clock)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _read(path: Path, limit: int) -> bytes:
    try:
        if path.stat().st_size > limit:
            raise CaStoreError(f"{path} is too large", reason="too_large", path=str(path))
        return path.read_bytes()
    except OSError as exc:
        raise CaStoreError(f"cannot read {path}: {exc}", reason="missing", path=str(path)) from exc


def _parse_certs(data: bytes, path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CaStoreError(
            f"{path} is not PEM certificates", reason="malformed", path=str(path)
        ) from exc


def _load_cert(path: Path) -> x509.Certificate:
    certs = _parse_certs(_read(path, MAX_CERT_FILE_BYTES), path)
    if len(certs) != 1:
        raise CaStoreError(f"{path} must hold one certificate", reason="malformed", path=str(path))
    return certs[0]
