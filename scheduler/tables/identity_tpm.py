"""Tables of TPM-rooted enrollment: pending MakeCredential challenges and enrolled TPM keys.

Invariants:
- a challenge stores the SHA-256 of its credential, never the credential; it is answered
  at most once (``used_at`` NULL -> time by a conditional UPDATE) and expires 60 s after
  it was made;
- a node's EK and AK (TPM2B_PUBLIC, base64) are recorded when its SVID is issued, for the
  quotes it will sign later; rows are only added (a re-enrollment adds a row).
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class IdentityTpmChallenge(SQLModel, table=True):
    __tablename__ = "identity_tpm_challenge"

    challenge_id: str = Field(primary_key=True, max_length=64)
    token_id: str = Field(max_length=32)
    node_id: str = Field(max_length=64)
    csr_pem: str = Field(max_length=16 * 1024)
    ek_public: str = Field(max_length=4096)
    ek_certificate: str | None = Field(default=None, max_length=12 * 1024)
    ak_public: str = Field(max_length=4096)
    ak_name: str = Field(max_length=200)
    credential_sha256: str = Field(max_length=64)
    created_at: float
    expires_at: float
    used_at: float | None = None


class IdentityTpmKey(SQLModel, table=True):
    __tablename__ = "identity_tpm_key"

    id: int | None = Field(default=None, primary_key=True)
    node_id: str = Field(index=True, max_length=64)
    ek_public: str = Field(max_length=4096)
    ek_certificate: str | None = Field(default=None, max_length=12 * 1024)
    ak_public: str = Field(max_length=4096)
    ak_name: str = Field(max_length=200)
    svid_serial: str = Field(max_length=64)
    enrolled_at: float
