"""Tables of the identity layer: operators, join tokens, issued certificates, revocations.

Invariants:
- a join token is stored as its public id and the hash of its secret only (the token is
  shown once); ``used_at`` goes from NULL to a time exactly once, by a conditional UPDATE;
- certificate serials are 159-bit, so they are stored as decimal strings;
- revocations are only ever added: a row names a node id, a certificate serial or an
  operator, with the reason, who revoked and when.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class IdentityOperator(SQLModel, table=True):
    __tablename__ = "identity_operator"

    name: str = Field(primary_key=True, max_length=64)
    created_at: float
    created_by: str = Field(max_length=140)


class IdentityJoinToken(SQLModel, table=True):
    __tablename__ = "identity_join_token"

    token_id: str = Field(primary_key=True, max_length=32)
    token_hash: str = Field(max_length=64)
    operator: str = Field(index=True, max_length=64)
    created_at: float
    expires_at: float
    used_at: float | None = Field(default=None)
    used_by: str | None = Field(default=None, max_length=64)


class IdentityCertificate(SQLModel, table=True):
    __tablename__ = "identity_certificate"

    serial: str = Field(primary_key=True, max_length=64)
    node_id: str = Field(index=True, max_length=64)
    operator: str = Field(index=True, max_length=64)
    spiffe_id: str = Field(max_length=300)
    issued_at: float
    not_after: float


class IdentityRevocation(SQLModel, table=True):
    __tablename__ = "identity_revocation"

    id: int | None = Field(default=None, primary_key=True)
    node_id: str | None = Field(default=None, index=True, max_length=64)
    serial: str | None = Field(default=None, max_length=64)
    operator: str | None = Field(default=None, max_length=64)
    reason: str = Field(max_length=500)
    revoked_by: str = Field(max_length=140)
    revoked_at: float = Field(index=True)
