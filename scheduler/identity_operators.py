"""Operator CA rotation and revocation, one operator at a time.

- rotate: the operator gets a new intermediate CA key and certificate (kept in the CA
  directory); new SVIDs come from it, and the rotated-out certificate stays in the trust
  bundle so SVIDs it issued keep working until they expire. Other operators are untouched.
- revoke: the operator's CA issues nothing more (enrollment and renewal refuse it) and a
  revocation row names the operator, so every replica refuses every SVID the operator's CA
  (current or rotated-out) issued, and the bearer tokens of the operator's nodes
  (``operator_revoked``), within the revocation snapshot's refresh interval, and after a
  restart. The revocation is handed to ``service.record_response`` in the same
  transaction (action ``response.revoke``, subject ``operator:<name>``).

Refusals: NotFound (unknown operator), Conflict (``operator_revoked`` on rotating a revoked
operator).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from identity.pki import PkiError, save_ca
from scheduler.db import after_commit
from scheduler.errors import Conflict, NotFound
from scheduler.identity_operator_nodes import operator_node_ids
from scheduler.identity_revocations import RevocationSnapshot
from scheduler.service import ResponseAction
from scheduler.tables.identity import IdentityOperator, IdentityRevocation
from scheduler.tables.identity_mtls import IdentityOperatorRotation

if TYPE_CHECKING:
    from scheduler.identity_layer import IdentityLayer


def _known(layer: IdentityLayer, name: str) -> None:
    with layer.service.read() as session:
        if session.get(IdentityOperator, name[:64]) is None:
            raise NotFound(f"operator {name[:64]} not found")


def rotate_operator(
    layer: IdentityLayer, name: str, by: str
) -> Callable[[Session], dict[str, Any]]:
    """Rotate the operator's CA now (on disk); return the write recording it."""
    _known(layer, name)
    layer.reload_ca()  # another process may have changed the CA directory
    ca = layer.ca
    try:
        old = ca.operator(name)
        new = ca.rotate_operator(name)
    except PkiError as exc:
        raise Conflict(f"cannot rotate operator {name}: {exc}", reason=exc.reason) from exc
    save_ca(ca, layer.ca_dir)
    now = layer.service.clock()
    old_serial = str(old.certificate.serial_number)
    new_serial = str(new.certificate.serial_number)
    result = {
        "name": name,
        "ca_certificate_pem": new.certificate_pem.decode(),
        "old_ca_serial": old_serial,
        "new_ca_serial": new_serial,
        "rotated_at": now,
    }

    def op(session: Session) -> dict[str, Any]:
        session.add(
            IdentityOperatorRotation(
                operator=name,
                old_ca_serial=old_serial,
                new_ca_serial=new_serial,
                rotated_at=now,
                rotated_by=by[:140],
            )
        )
        return result

    return op


def revoke_operator(
    layer: IdentityLayer, name: str, reason: str, by: str
) -> Callable[[Session], dict[str, Any]]:
    """Revoke the operator's CA (on disk, so it issues nothing more); return the write
    that records the revocation (idempotent: a second call returns the first)."""
    _known(layer, name)
    layer.reload_ca()
    ca = layer.ca
    op_ca = ca.revoke_operator(name)
    save_ca(ca, layer.ca_dir)
    service = layer.service
    now = service.clock()
    cache = layer.revocations
    revoked = RevocationSnapshot.of(operators=[name], serials=op_ca.serials)

    def op(session: Session) -> dict[str, Any]:
        existing = session.exec(
            select(IdentityRevocation)
            .where(IdentityRevocation.operator == name)
            .order_by(col(IdentityRevocation.id))
        ).first()
        row = existing or IdentityRevocation(
            operator=name, reason=reason, revoked_by=by[:140], revoked_at=now
        )
        if existing is None:
            session.add(row)
            nodes = operator_node_ids(session, [name])  # their tokens are refused too
            after_commit(
                session,
                lambda: cache.add(revoked.union(RevocationSnapshot.of(operator_node_ids=nodes))),
            )
            service.record_response(  # the provenance log records the response action
                session,
                ResponseAction(
                    action="response.revoke",
                    subject=f"operator:{name}",
                    reason=reason,
                    actor=by[:140],
                    source="admin",
                    at=now,
                    detail={"ca_serials": [str(s) for s in op_ca.serials]},
                ),
            )
        return {
            "name": name,
            "reason": row.reason,
            "revoked_by": row.revoked_by,
            "revoked_at": row.revoked_at,
            "already_revoked": existing is not None,
            "ca_serials": [str(s) for s in op_ca.serials],
        }

    return op
