"""Checkpoint publication for a :class:`~audit_chain.log.TiledLog`.

Invariant: the publisher never signs a checkpoint smaller than, or inconsistent with, the
last checkpoint it published. The last published note is read back from the store (so the
rule also holds across a crash and restart), verified with the log's own key, and the
candidate must extend it by a consistency proof computed from the stored tiles.
"""

from __future__ import annotations

from audit_chain.checkpoint import Checkpoint, ensure_publishable, open_checkpoint, sign_checkpoint
from audit_chain.errors import CheckpointRegressionError, LogStateError
from audit_chain.log import TiledLog
from audit_chain.note import NoteSigner

__all__ = ["CheckpointPublisher"]


class CheckpointPublisher:
    """Signs and stores checkpoints of ``log`` with ``signer``; the origin is the key name."""

    def __init__(self, log: TiledLog, signer: NoteSigner, *, origin: str | None = None) -> None:
        self.log = log
        self.signer = signer
        self.origin = signer.name if origin is None else origin

    def last_published(self) -> Checkpoint | None:
        """The checkpoint in the store, verified with the log's key (None if none yet)."""
        note = self.log.store.read_checkpoint()
        if note is None:
            return None
        return open_checkpoint(note, self.signer.verifier, origin=self.origin)

    def publish(self) -> bytes:
        """Sign and durably store a checkpoint of the log's current tree; return the note.

        Returns the stored note unchanged when the tree has not grown.

        Raises:
            CheckpointRegressionError: the log is smaller than, or inconsistent with, the
                last published checkpoint (e.g. entries lost after a crash).
        """
        last = self.last_published()
        size = self.log.tree_size
        root = self.log.root_at(size)
        candidate = Checkpoint(self.origin, size, root)
        if last is not None and last.tree_size == size and last.root == root:
            note = self.log.store.read_checkpoint()
            if note is not None:
                return note
        proof: list[bytes] = []
        if last is not None and 0 < last.tree_size <= size:
            try:
                proof = self.log.consistency_proof(last.tree_size, size)
            except LogStateError as exc:
                raise CheckpointRegressionError(
                    f"cannot prove consistency with the published checkpoint: {exc}",
                    last_size=last.tree_size,
                    new_size=size,
                ) from exc
        ensure_publishable(last, candidate, proof)
        note = sign_checkpoint(candidate, self.signer)
        self.log.store.write_checkpoint(note)
        return note
