"""The nodes of an operator, for operator revocation: a revoked operator's nodes lose
their bearer tokens as well as their certificates.

A node belongs to an operator when the operator's CA issued it a certificate
(``identity_certificate.operator``) or when it registered under that operator
(``node.operator``). The revocation snapshot carries these node ids; every replica
refuses their tokens (``operator_revoked``) within its refresh interval.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlmodel import Session, col, select

from scheduler.models import Node
from scheduler.tables.identity import IdentityCertificate


def operator_node_ids(session: Session, operators: Collection[str]) -> set[str]:
    """Ids of every node of the ``operators`` (certificates issued, or registered)."""
    if not operators:
        return set()
    names = sorted(operators)
    certified = session.exec(
        select(IdentityCertificate.node_id).where(col(IdentityCertificate.operator).in_(names))
    ).all()
    registered = session.exec(select(Node.id).where(col(Node.operator).in_(names))).all()
    return {*certified, *registered}
