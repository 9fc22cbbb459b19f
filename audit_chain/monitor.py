"""Pure logic of a log monitor: checkpoints only ever grow consistently; entries match.

A monitor remembers the last checkpoint it verified (:class:`MonitorState`, stored as JSON
by the caller). For each new signed checkpoint and the consistency proof from the
remembered tree to the new one, :meth:`LogMonitor.observe`:

1. opens the note with the log key (a forged or unknown signature is refused);
2. refuses a different origin, a smaller tree (:class:`~audit_chain.errors.RollbackError`),
   the same size with another root, or a failing consistency proof
   (:class:`~audit_chain.errors.SplitViewError`);
3. returns the new state.

:class:`EntryTail` recomputes the tree from the entries themselves (entry bundles), so an
entry changed in storage after it was logged is caught even if tiles were left alone
(:class:`~audit_chain.errors.EntryMismatchError`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass

from audit_chain.checkpoint import Checkpoint, open_checkpoint
from audit_chain.errors import (
    ConsistencyProofError,
    EntryMismatchError,
    InputTooLargeError,
    MalformedCheckpointError,
    MonitorError,
    RollbackError,
    SplitViewError,
)
from audit_chain.merkle import EMPTY_ROOT, CompactRange, leaf_hash, verify_consistency
from audit_chain.note import NoteVerifier

__all__ = ["EntryTail", "LogMonitor", "MonitorState", "Observation", "verify_checkpoint_update"]

_MAX_STATE_BYTES = 4096


@dataclass(frozen=True)
class MonitorState:
    """What a monitor remembers: the last verified checkpoint."""

    checkpoint: Checkpoint

    def to_bytes(self) -> bytes:
        cp = self.checkpoint
        obj = {
            "origin": cp.origin,
            "treeSize": cp.tree_size,
            "root": base64.b64encode(cp.root).decode(),
        }
        return json.dumps(obj, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> MonitorState:
        """Raises InputTooLargeError / MalformedCheckpointError on a bad state file."""
        if len(data) > _MAX_STATE_BYTES:
            raise InputTooLargeError(
                "monitor state", size_bytes=len(data), limit_bytes=_MAX_STATE_BYTES
            )
        try:
            obj = json.loads(data)
            root = base64.b64decode(obj["root"], validate=True)
            size = obj["treeSize"]
            origin = obj["origin"]
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise MalformedCheckpointError("bad monitor state", reason="bad_state") from exc
        if isinstance(size, bool) or not isinstance(size, int) or not isinstance(origin, str):
            raise MalformedCheckpointError("bad monitor state", reason="bad_state")
        return cls(Checkpoint(origin, size, root))


def _error(
    cls: type[MonitorError], message: str, reason: str, last: Checkpoint, new: Checkpoint
) -> MonitorError:
    return cls(
        message,
        reason=reason,
        old_size=last.tree_size,
        new_size=new.tree_size,
        old_root=last.root,
        new_root=new.root,
    )


def verify_checkpoint_update(
    last: Checkpoint, new: Checkpoint, consistency_proof: Sequence[bytes]
) -> None:
    """Verify that ``new`` extends ``last``.

    Raises:
        RollbackError: ``new`` is smaller than ``last``.
        SplitViewError: another origin, same size with another root, or the consistency
            proof does not lead from ``last`` to ``new``.
    """
    if new.origin != last.origin:
        msg = f"origin changed from {last.origin!r} to {new.origin!r}"
        raise _error(SplitViewError, msg, "origin_changed", last, new)
    if new.tree_size < last.tree_size:
        msg = f"tree went back from {last.tree_size} to {new.tree_size} entries"
        raise _error(RollbackError, msg, "rollback", last, new)
    if last.tree_size == 0:
        if last.root != EMPTY_ROOT:
            raise _error(SplitViewError, "empty tree, non-empty root", "bad_empty_root", last, new)
        return
    try:
        verify_consistency(last.tree_size, new.tree_size, consistency_proof, last.root, new.root)
    except ConsistencyProofError as exc:
        msg = f"size {new.tree_size} is inconsistent with size {last.tree_size}: {exc}"
        raise _error(SplitViewError, msg, "inconsistent", last, new) from exc


@dataclass(frozen=True)
class Observation:
    """Outcome of one poll: the previous state (if any), the new one, and growth."""

    previous: Checkpoint | None
    current: Checkpoint
    new_entries: int


class LogMonitor:
    """Follows one log's checkpoints, refusing rollbacks and split views."""

    def __init__(self, verifier: NoteVerifier, state: MonitorState | None = None) -> None:
        self.verifier = verifier
        self.state = state

    def observe(self, checkpoint_note: bytes, consistency_proof: Sequence[bytes]) -> Observation:
        """Verify a newly fetched checkpoint against the remembered one and advance.

        Raises:
            NoteVerificationError / MalformedNoteError / MalformedCheckpointError: bad note.
            RollbackError, SplitViewError: see :func:`verify_checkpoint_update`.
        """
        new = open_checkpoint(checkpoint_note, self.verifier)
        previous = None if self.state is None else self.state.checkpoint
        if previous is not None:
            verify_checkpoint_update(previous, new, consistency_proof)
        self.state = MonitorState(new)
        grown = new.tree_size - (0 if previous is None else previous.tree_size)
        return Observation(previous, new, grown)


class EntryTail:
    """Recomputes the tree from entries in order (a compact range of perfect subtrees)."""

    def __init__(self) -> None:
        self._range = CompactRange()

    @property
    def tree_size(self) -> int:
        return self._range.size

    def append(self, entries: Sequence[bytes]) -> None:
        for e in entries:
            self._range.append(leaf_hash(e))

    def root(self) -> bytes:
        return self._range.root()

    def verify_against(self, checkpoint: Checkpoint) -> None:
        """Check that the entries seen so far hash to ``checkpoint``'s root.

        Raises:
            EntryMismatchError: sizes differ, or the entries do not hash to the root.
        """
        calculated = self.root()
        if self.tree_size != checkpoint.tree_size or calculated != checkpoint.root:
            raise EntryMismatchError(
                f"{self.tree_size} entries hash to {calculated.hex()}, the checkpoint says "
                f"{checkpoint.tree_size} entries with root {checkpoint.root.hex()}",
                reason="entries_do_not_match",
                old_size=checkpoint.tree_size,
                new_size=self.tree_size,
                old_root=checkpoint.root,
                new_root=calculated,
            )
