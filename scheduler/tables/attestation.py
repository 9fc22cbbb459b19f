"""Tables of the attestation layer: nonces, attestation keys, reference values, results.

Invariants:
- An :class:`AttestationNonce` is stored by the SHA-256 of the nonce (the nonce itself
  only ever travels to its node); ``used_at`` goes from NULL to a time exactly once, by
  a conditional UPDATE in the transaction that stores the appraisal's result, so a nonce
  is single use across every replica sharing the database.
- An :class:`AttestationKey` binds one node to the public key (JWK) and UEID its EATs are
  verified with, and optionally to a TPM AK (TPM2B_PUBLIC, hex); the binding is never
  replaced by the node itself.
- :class:`AttestationReferenceSet` rows keep the signed reference values exactly as signed
  (the signature is verified again whenever a set is used); a class's versions strictly
  increase, and ``window_ends_at``/``retired_at`` only ever go from NULL to a time.
- :class:`AttestationResultRow` is append-only history; the node's current result is
  copied into the ``attestation_*`` fields of its Node row in the same transaction.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class AttestationNonce(SQLModel, table=True):
    __tablename__ = "attestation_nonce"

    nonce_hash: str = Field(primary_key=True, max_length=64)
    node_id: str = Field(index=True, max_length=64)
    issued_at: float
    expires_at: float = Field(index=True)
    used_at: float | None = None


class AttestationKey(SQLModel, table=True):
    __tablename__ = "attestation_key"

    node_id: str = Field(primary_key=True, max_length=64)
    jwk: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    ueid: str = Field(max_length=130)  # hex
    ak_public: str | None = Field(default=None, max_length=2048)  # TPM2B_PUBLIC, hex
    registered_at: float
    registered_by: str = Field(max_length=140)


class AttestationReferenceSet(SQLModel, table=True):
    __tablename__ = "attestation_reference_set"

    id: str = Field(primary_key=True, max_length=80)  # "<class>@<version>"
    node_class: str = Field(index=True, max_length=64)
    version: int
    signed: str = Field(sa_type=sa.Text)  # SignedReferenceValues.to_json()
    key_id: str = Field(max_length=32)
    added_at: float
    added_by: str = Field(max_length=140)
    superseded_at: float | None = None
    window_ends_at: float | None = None
    retired_at: float | None = None
    retired_by: str | None = Field(default=None, max_length=140)


class AttestationResultRow(SQLModel, table=True):
    __tablename__ = "attestation_result"

    result_id: str = Field(primary_key=True, max_length=64)
    node_id: str = Field(index=True, max_length=64)
    status: str = Field(max_length=32)
    evidence_type: str = Field(max_length=32)
    issued_at: float = Field(index=True)
    expires_at: float
    reference_values_id: str | None = Field(default=None, max_length=80)
    ear: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
