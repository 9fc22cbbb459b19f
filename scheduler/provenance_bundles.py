"""Which anchor and checkpoint a task's proof bundle uses.

The bundle of entry ``leaf`` uses the *nearest* anchor at or after the entry (the smallest
confirmed, not superseded anchor whose tree holds the leaf) together with the checkpoint
the anchorer anchored, i.e. the published checkpoint of exactly the anchored size. The
consistency proof from checkpoint to anchor is then empty and the inclusion proof is as
short as it can be, which keeps every bundle under 4 KB (a checkpoint 65,536 entries behind
its anchor added ~700 bytes of consistency proof). Only when no checkpoint of an anchored
size is stored does the bundle fall back to the largest checkpoint below that anchor, with
its consistency proof; with no anchor at all it uses the latest checkpoint holding the leaf.
When no checkpoint of the anchored size is stored (e.g. it was published by an earlier
process and lost), :func:`bundle_basis` returns the anchor without a note and the caller
signs a checkpoint of exactly the anchored tree (:func:`anchored_checkpoint`): a
checkpoint of an earlier size of the same log is consistent with every later one, so this
never forks the log, and the consistency proof stays empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from audit_chain import (
    Anchor,
    Checkpoint,
    NoteSigner,
    TiledLog,
    parse_checkpoint,
    sign_checkpoint,
)
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


def _root_of(note: bytes) -> bytes:
    return parse_checkpoint(note.decode("utf-8").split("\n\n", 1)[0] + "\n").root


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
        anchor = anchor_of(row)
        if note is not None and _root_of(note) == anchor.root:
            return BundleBasis(note, anchor)
    if rows:  # no anchored checkpoint stored: the caller signs one of the anchored size
        return BundleBasis(None, anchor_of(rows[0]))
    return BundleBasis(_checkpoint(session, leaf, None, exact=False), None)


def anchored_checkpoint(log: TiledLog, anchor: Anchor, signer: NoteSigner) -> bytes | None:
    """A checkpoint note of exactly the anchored tree, or None when the log's tree of that
    size does not have the anchored root (the anchor is then not used)."""
    if anchor.tree_size > log.tree_size or log.root_at(anchor.tree_size) != anchor.root:
        return None
    return sign_checkpoint(Checkpoint(signer.name, anchor.tree_size, anchor.root), signer)
