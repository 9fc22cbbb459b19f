"""Which anchor and checkpoint a task's proof bundle uses.

The bundle of entry ``leaf`` uses the *nearest* anchor at or after the entry (the smallest
confirmed, not superseded anchor whose tree holds the leaf) together with the checkpoint
the anchorer anchored, i.e. the published checkpoint of exactly the anchored size. The
consistency proof from checkpoint to anchor is then empty and the inclusion proof is as
short as it can be, which keeps every bundle under 4 KB (a checkpoint 65,536 entries behind
its anchor added ~700 bytes of consistency proof). Only when no checkpoint of an anchored
size is stored does the bundle fall back to the largest checkpoint below that anchor, with
its consistency proof; with no anchor at all it uses the latest checkpoint holding the leaf.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from audit_chain import Anchor
from scheduler.tables.provenance import ProvAnchor, ProvCheckpoint

_CANDIDATES = 16


@dataclass(frozen=True)
class BundleBasis:
    """The checkpoint note a bundle proves against, and the anchor covering it (if any)."""

    note: bytes | None
    anchor: Anchor | None


def anchor_of(row: ProvAnchor) -> Anchor:
    return Anchor(
        chain_id=row.chain_id,
        contract=row.contract,
        tx_hash=row.tx_hash,
        block_number=row.block_number,
        tree_size=row.tree_size,
        root=bytes.fromhex(row.root[2:]),
        block_hash=row.block_hash,
        log_id=bytes.fromhex(row.log_id[2:]),
    )


def _checkpoint(session: Session, leaf: int, at_most: int | None, exact: bool) -> bytes | None:
    stmt = select(ProvCheckpoint.note).where(col(ProvCheckpoint.tree_size) > leaf)
    if at_most is not None:
        if exact:
            stmt = stmt.where(col(ProvCheckpoint.tree_size) == at_most)
        else:
            stmt = stmt.where(col(ProvCheckpoint.tree_size) <= at_most)
    note = session.exec(stmt.order_by(col(ProvCheckpoint.tree_size).desc()).limit(1)).first()
    return None if note is None else bytes(note)


def bundle_basis(session: Session, leaf: int, log_size: int) -> BundleBasis:
    """The anchor and checkpoint for entry ``leaf`` of a log of ``log_size`` entries."""
    rows = list(
        session.exec(
            select(ProvAnchor)
            .where(col(ProvAnchor.superseded).is_(False))
            .where(col(ProvAnchor.tree_size) > leaf)
            .where(col(ProvAnchor.tree_size) <= log_size)
            .order_by(col(ProvAnchor.tree_size))
            .limit(_CANDIDATES)
        )
    )
    for row in rows:  # nearest first: the anchored checkpoint itself
        note = _checkpoint(session, leaf, row.tree_size, exact=True)
        if note is not None:
            return BundleBasis(note, anchor_of(row))
    for row in rows:  # no anchored checkpoint stored: the largest one below the anchor
        note = _checkpoint(session, leaf, row.tree_size, exact=False)
        if note is not None:
            return BundleBasis(note, anchor_of(row))
    return BundleBasis(_checkpoint(session, leaf, None, exact=False), None)
