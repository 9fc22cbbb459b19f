"""The attestation layer's view of TPM-rooted enrollment: a node enrolled with ``--tpm``
attests with quotes signed by the AK recorded at enrollment (``identity_tpm_key``).

Invariants:
- the enrolled AK is the node's only quote key: no first-come binding for TPM nodes
  (``/v1/attestation/key`` with another AK is refused), and the latest enrollment wins
  (a re-enrollment adds a row);
- an enrolled AK that is not valid base64 is refused as unusable, never used.
"""

from __future__ import annotations

import base64
import binascii

from sqlmodel import Session, col, select

from scheduler.errors import Conflict
from scheduler.tables.identity_tpm import IdentityTpmKey


def enrolled_ak(session: Session, node_id: str) -> bytes | None:
    """The AK (TPM2B_PUBLIC) of ``node_id``'s latest TPM enrollment, None if it never
    enrolled with a TPM. Raises Conflict(``attestation_ak``) for an unreadable row."""
    row = session.exec(
        select(IdentityTpmKey.ak_public)
        .where(IdentityTpmKey.node_id == node_id)
        .order_by(col(IdentityTpmKey.id).desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    try:
        return base64.b64decode(row, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Conflict(
            f"enrolled AK of {node_id} unusable: not base64", reason="attestation_ak"
        ) from exc


def check_no_other_ak(session: Session, node_id: str, ak_public: bytes | None) -> None:
    """Refuse binding an AK other than the enrolled one (Conflict
    ``attestation_ak_enrolled``); an EAT-only binding (no AK) is allowed."""
    if ak_public is None:
        return
    enrolled = enrolled_ak(session, node_id)
    if enrolled is not None and enrolled != ak_public:
        raise Conflict(
            f"node {node_id} enrolled a TPM AK; another AK cannot be bound",
            reason="attestation_ak_enrolled",
        )
