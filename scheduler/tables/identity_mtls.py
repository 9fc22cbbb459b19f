"""Tables of node SVID renewal (attest-to-renew) and operator CA rotation.

Invariants: rows are only ever added. A renewal row names the certificate it replaced and
the one it issued, and what the attestation check said: ``affirming`` when a passing
attestation was required and found, ``not_required`` when the deployment's settings do not
require attestation for renewal (``CNTRUST_ATTEST_TO_RENEW=false``).
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class IdentityRenewal(SQLModel, table=True):
    __tablename__ = "identity_renewal"

    id: int | None = Field(default=None, primary_key=True)
    node_id: str = Field(index=True, max_length=64)
    old_serial: str = Field(max_length=64)
    new_serial: str = Field(max_length=64)
    renewed_at: float
    not_after: float
    attestation: str = Field(max_length=32)
    attestation_id: str | None = Field(default=None, max_length=64)


class IdentityOperatorRotation(SQLModel, table=True):
    __tablename__ = "identity_operator_rotation"

    id: int | None = Field(default=None, primary_key=True)
    operator: str = Field(index=True, max_length=64)
    old_ca_serial: str = Field(max_length=64)
    new_ca_serial: str = Field(max_length=64)
    rotated_at: float
    rotated_by: str = Field(max_length=140)
