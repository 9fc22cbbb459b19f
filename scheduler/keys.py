"""The scheduler's token keys, kept in the data dir (mode 0600).

``keys/jwt-active.pem`` signs; ``keys/jwt-retired.json`` lists retired public
keys with the time until which they still verify (rotation without downtime).
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

from identity import KeySet, SigningKey, VerificationKey, verification_key_from_jwk

MAX_TOKEN_TTL = timedelta(hours=12)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_or_create_keyset(data_dir: Path) -> KeySet:
    keys_dir = data_dir / "keys"
    active_path = keys_dir / "jwt-active.pem"
    if active_path.exists():
        active = SigningKey.from_pem(active_path.read_bytes())
    else:
        active = SigningKey.generate("EdDSA")
        _write_private(active_path, active.to_pem())
    retired: list[VerificationKey] = []
    retired_path = keys_dir / "jwt-retired.json"
    if retired_path.exists():
        retired = [verification_key_from_jwk(j) for j in json.loads(retired_path.read_text())]
    return KeySet(active=active, retired=retired)


def rotate_keyset(data_dir: Path, keyset: KeySet, now: float) -> KeySet:
    """Make a new active key; the old one verifies for MAX_TOKEN_TTL more."""
    keyset.rotate(SigningKey.generate("EdDSA"), now=now, max_token_ttl=MAX_TOKEN_TTL)
    keyset.prune(now=now)
    keys_dir = data_dir / "keys"
    retired = [k.to_jwk() | {"exp": k.not_after} for k in keyset.retired]
    _write_private(keys_dir / "jwt-retired.json", json.dumps(retired).encode())
    _write_private(keys_dir / "jwt-active.pem", keyset.active.to_pem())
    return keyset
