"""Persistence of the attestation layer: nonces across replicas, node attestation keys and
signed reference values, as committer operations over :mod:`scheduler.tables.attestation`.

Invariants:
- :class:`DbNonces` consumes a nonce with ``UPDATE ... SET used_at WHERE used_at IS NULL``
  inside the transaction that stores the appraisal, so a nonce is accepted once across
  every replica; refusals raise the library's NonceVerificationError with its reason
  (``nonce_unknown``, ``nonce_node``, ``nonce_replayed``, ``nonce_expired``), and a
  refusal for the wrong node does not burn the nonce.
- Reference values are verified (signature by the deployment's reference-value key)
  every time they are loaded for an appraisal; a row whose signature fails is skipped
  and logged, never trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlmodel import Session, col, select

from identity.attestation import (
    NonceRegistry,
    NonceVerificationError,
    ReferenceValueError,
    ReferenceValueSet,
    ReferenceValueSignatureError,
    SignedReferenceValues,
    open_reference_values,
    sign_reference_values,
)
from identity.attestation.reference_values import key_id
from scheduler.errors import Conflict, InvalidRequest, NotFound
from scheduler.tables.attestation import AttestationNonce, AttestationReferenceSet

log = logging.getLogger(__name__)

REFVALUES_KEY_FILE = "refvalues.key"
DEFAULT_NODE_CLASS = "default"


def nonce_hash(nonce: bytes) -> str:
    return hashlib.sha256(nonce).hexdigest()


class DbNonces(NonceRegistry):
    """The library's nonce registry over the ``attestation_nonce`` table, bound to one
    session (the appraisal's transaction) and one ``now``."""

    def __init__(self, session: Session, now: float) -> None:
        super().__init__(lambda: now)
        self.session = session
        self.now = now

    def consume(self, nonce: bytes, node_id: str) -> None:
        if not isinstance(nonce, bytes) or not 16 <= len(nonce) <= 64:
            raise NonceVerificationError("nonce is not a byte string", reason="nonce_unknown")
        key = nonce_hash(nonce)
        with self.session.no_autoflush:
            row = self.session.get(AttestationNonce, key)
        if row is None:
            raise NonceVerificationError("nonce was not issued here", reason="nonce_unknown")
        if not hmac.compare_digest(row.node_id.encode(), node_id.encode()):
            raise NonceVerificationError("nonce was issued to another node", reason="nonce_node")
        if row.used_at is not None:
            raise NonceVerificationError("nonce was already used", reason="nonce_replayed")
        if self.now >= row.expires_at:
            raise NonceVerificationError("nonce expired", reason="nonce_expired")
        marked = self.session.connection().execute(
            sa.update(AttestationNonce)
            .where(col(AttestationNonce.nonce_hash) == key)
            .where(col(AttestationNonce.used_at).is_(None))
            .values(used_at=self.now)
        )
        if marked.rowcount != 1:  # another replica took it first
            raise NonceVerificationError("nonce was already used", reason="nonce_replayed")


def issue_nonce(session: Session, node_id: str, nonce: bytes, now: float, ttl_s: float) -> float:
    """Store a nonce for ``node_id``; returns its expiry."""
    expires_at = now + ttl_s
    session.add(
        AttestationNonce(
            nonce_hash=nonce_hash(nonce), node_id=node_id, issued_at=now, expires_at=expires_at
        )
    )
    return expires_at


def prune_nonces(session: Session, now: float, retain_s: float) -> int:
    """Forget nonces expired more than ``retain_s`` ago (until then a late one is reported
    as expired, afterwards as unknown)."""
    done = session.connection().execute(
        sa.delete(AttestationNonce).where(col(AttestationNonce.expires_at) < now - retain_s)
    )
    return int(done.rowcount or 0)


# -- reference values -----------------------------------------------------------------------
def load_or_create_refvalues_key(directory: Path) -> ed25519.Ed25519PrivateKey:
    """The deployment's reference-value signing key (``<dir>/refvalues.key``, mode 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    path = directory / REFVALUES_KEY_FILE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 key")
        return key
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.replace(tmp, path)
    return key


class ReferenceValues:
    """Signed, versioned reference-value sets per node class, kept in the database."""

    def __init__(self, signing_key: ed25519.Ed25519PrivateKey, *, update_window_s: float) -> None:
        self.signing_key = signing_key
        public = signing_key.public_key()
        self.trusted: Mapping[str, ed25519.Ed25519PublicKey] = {key_id(public): public}
        self.update_window_s = update_window_s
        self._opened: dict[tuple[str, str], ReferenceValueSet] = {}

    def sign(self, data: Mapping[str, Any]) -> SignedReferenceValues:
        """Sign a set given as its JSON form; raises InvalidRequest on a malformed set."""
        try:
            values = ReferenceValueSet.from_dict(data)
        except ReferenceValueError as exc:
            raise InvalidRequest(f"reference values refused: {exc}", reason="malformed") from exc
        return sign_reference_values(values, self.signing_key)

    def add(self, session: Session, signed: SignedReferenceValues, now: float, by: str) -> str:
        """Verify and store a signed set; the class's current version enters its update
        window (accepted until ``now + update_window_s``). Raises InvalidRequest (bad
        signature or set), Conflict (version not newer)."""
        try:
            values = open_reference_values(signed, self.trusted)
        except (ReferenceValueError, ReferenceValueSignatureError) as exc:
            reason = getattr(exc, "reason", "malformed")
            raise InvalidRequest(f"reference values refused: {exc}", reason=reason) from exc
        rows = list(
            session.exec(
                select(AttestationReferenceSet).where(
                    AttestationReferenceSet.node_class == values.node_class
                )
            )
        )
        newest = max((r.version for r in rows), default=0)
        if values.version <= newest:
            raise Conflict(
                f"{values.id} is not newer than {values.node_class}@{newest}",
                reason="version",
            )
        for row in rows:
            if row.window_ends_at is None:
                row.superseded_at = now
                row.window_ends_at = now + self.update_window_s
                session.add(row)
        session.add(
            AttestationReferenceSet(
                id=values.id,
                node_class=values.node_class,
                version=values.version,
                signed=signed.to_json().decode(),
                key_id=signed.key_id,
                added_at=now,
                added_by=by[:140],
            )
        )
        return values.id

    def retire(self, session: Session, node_class: str, version: int, now: float, by: str) -> None:
        """Stop accepting one version at once. Raises NotFound."""
        row = session.get(AttestationReferenceSet, f"{node_class}@{version}")
        if row is None:
            raise NotFound(f"no reference values {node_class}@{version}")
        if row.retired_at is None:
            row.retired_at = now
            row.retired_by = by[:140]
            session.add(row)

    def accepted(self, session: Session, node_class: str, now: float) -> list[ReferenceValueSet]:
        """Sets a node of ``node_class`` may match now, newest first (signatures checked)."""
        rows = session.exec(
            select(AttestationReferenceSet)
            .where(AttestationReferenceSet.node_class == node_class)
            .order_by(col(AttestationReferenceSet.version).desc())
        )
        out = []
        for row in rows:
            if row.retired_at is not None and row.retired_at <= now:
                continue
            if row.window_ends_at is not None and now >= row.window_ends_at:
                continue
            opened = self.open(row)
            if opened is not None:
                out.append(opened)
        return out

    def open(self, row: AttestationReferenceSet) -> ReferenceValueSet | None:
        digest = hashlib.sha256(row.signed.encode()).hexdigest()
        cached = self._opened.get((row.id, digest))
        if cached is not None:
            return cached
        try:
            values = open_reference_values(
                SignedReferenceValues.from_json(row.signed.encode()), self.trusted
            )
        except (ReferenceValueError, ReferenceValueSignatureError) as exc:
            log.error("reference values %s refused, not used: %s", row.id, exc)
            return None
        if values.id != row.id:
            log.error("reference values row %s holds %s, not used", row.id, values.id)
            return None
        self._opened[(row.id, digest)] = values
        return values


def refset_out(row: AttestationReferenceSet, values: ReferenceValueSet | None, now: float) -> dict:
    if row.retired_at is not None and row.retired_at <= now:
        state = "retired"
    elif row.window_ends_at is None:
        state = "current"
    elif now < row.window_ends_at:
        state = "update-window"
    else:
        state = "superseded"
    return {
        "id": row.id,
        "node_class": row.node_class,
        "version": row.version,
        "state": state if values is not None else "signature-refused",
        "key_id": row.key_id,
        "added_at": row.added_at,
        "added_by": row.added_by,
        "window_ends_at": row.window_ends_at,
        "retired_at": row.retired_at,
        "values": values.to_dict() if values is not None else None,
    }


LOCAL_FIRMWARE_MINIMUMS = {"GPU/sim-a100": "1.0", "GPU/generic": "1.0", "FPGA/generic": "1.0"}


def ensure_local_refvalues(
    session: Session,
    refvalues: ReferenceValues,
    measurements: Mapping[str, bytes],
    now: float,
    node_class: str = DEFAULT_NODE_CLASS,
) -> str | None:
    """``cntrust up``: make sure the newest accepted set of ``node_class`` holds this
    installation's own agent measurements; add the next version if not. Returns the id of
    the set added, or None when one already matched."""
    for values in refvalues.accepted(session, node_class, now):
        if all(digest in values.components.get(name, ()) for name, digest in measurements.items()):
            return None
    newest = session.exec(
        select(AttestationReferenceSet.version)
        .where(AttestationReferenceSet.node_class == node_class)
        .order_by(col(AttestationReferenceSet.version).desc())
    ).first()
    data = {
        "node_class": node_class,
        "version": (newest or 0) + 1,
        "components": {name: [digest.hex()] for name, digest in measurements.items()},
        "accelerator_firmware_minimums": LOCAL_FIRMWARE_MINIMUMS,
    }
    return refvalues.add(session, refvalues.sign(data), now, "cntrust-up")
