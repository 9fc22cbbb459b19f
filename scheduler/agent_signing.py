"""The agent's side of the node's signature over its results.

The agent signs every result with an Ed25519 node key (:class:`ResultSigner`) over the
canonical statement of :func:`audit_chain.node_result_message`, and registers the public
key with the scheduler when it starts (``POST /v1/agent/result-key``).

Which key: an enrolled node's ``node.key`` in the agent's ``--dir`` when it is an Ed25519
key (``cntrust node enroll --dir``); otherwise the agent's own ``result.key`` there,
generated on first start. Either file is PKCS#8 PEM, mode 0600; a key file readable by
group or others is refused.
"""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit_chain import node_key_id, node_result_message, usage_counters

log = logging.getLogger("cntrust.agent")

ENROLLED_KEY_FILE = "node.key"
RESULT_KEY_FILE = "result.key"


class KeyFileError(Exception):
    """A node key file is unreadable, not private, or not a usable key."""


def _load(path: Path) -> Ed25519PrivateKey | None:
    """The Ed25519 key in ``path``; None when the file holds another algorithm."""
    if path.stat().st_mode & 0o077:
        raise KeyFileError(f"{path} must not be readable by group or others (chmod 600)")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise KeyFileError(f"{path} does not hold a PEM private key") from exc
    return key if isinstance(key, Ed25519PrivateKey) else None


def _create(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return key


class ResultSigner:
    """Signs task results with the node's Ed25519 key."""

    def __init__(self, key: Ed25519PrivateKey, source: Path | None = None) -> None:
        self._key = key
        self.source = source
        self.public_key = key.public_key().public_bytes_raw()
        self.key_id = node_key_id(self.public_key)

    @classmethod
    def load_or_create(cls, data_dir: Path) -> ResultSigner:
        """The enrolled Ed25519 ``node.key`` in ``data_dir``, else ``result.key`` (created
        0600 on first use). Raises KeyFileError for a key file that is not private or
        not a key."""
        enrolled = data_dir / ENROLLED_KEY_FILE
        if enrolled.exists():
            key = _load(enrolled)
            if key is not None:
                return cls(key, enrolled)
            log.info(
                "%s is not an Ed25519 key: results are signed with %s", enrolled, RESULT_KEY_FILE
            )
        own = data_dir / RESULT_KEY_FILE
        if own.exists():
            key = _load(own)
            if key is None:
                raise KeyFileError(f"{own} is not an Ed25519 key")
            return cls(key, own)
        return cls(_create(own), own)

    def sign(
        self,
        *,
        task_id: str,
        attempt: int,
        exit_code: int,
        output_digest: str,
        usage: dict[str, Any],
        started_at: float,
        finished_at: float,
    ) -> str:
        """The base64url (unpadded) signature the agent reports as ``node_signature``."""
        message = node_result_message(
            task_id=task_id,
            attempt=attempt,
            exit_code=exit_code,
            output_digest=output_digest,
            usage=usage_counters(usage),
            started_ms=round(started_at * 1000),
            finished_ms=round(finished_at * 1000),
        )
        return base64.urlsafe_b64encode(self._key.sign(message)).decode().rstrip("=")

    async def register(self, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        """Register the public key with the scheduler. Raises KeyFileError when the scheduler
        already holds another key for this node (results signed with this one would be
        refused)."""
        body = {"public_key": base64.b64encode(self.public_key).decode()}
        resp = await client.post("/v1/agent/result-key", json=body, headers=headers)
        if resp.status_code == 409:
            raise KeyFileError(
                f"the scheduler holds another result key for this node; {self.source} "
                f"({self.key_id}) is not it"
            )
        if resp.status_code >= 400:
            log.warning("result key not registered: %s", resp.status_code)
            return
        log.info("results are signed with key %s", self.key_id)
