"""Pure logic of a log monitor: checkpoints only ever grow consistently; entries match.

A monitor remembers the last checkpoint it verified (:class:`MonitorState`, stored as JSON
by the caller). For each new signed checkpoint and the consistency proof from the
remembered tree to the new one, :meth:`LogMonitor.observe`:

1. opens the note with the log key (a forged or unknown signature is refused);
2. refuses a different origin, a smaller tree (:class:`~audit_chain.errors.RollbackError`),
   the same size with another root, or a failing consistency proof
   (:class:`~audit_chain.errors.SplitViewError`);
3. with ``track_entries``, hashes the new entries into the remembered compact range and
   compares with the new root (:class:`~audit_chain.errors.EntryMismatchError`), so an
   entry changed in storage after it was logged is caught even if tiles were left alone;
4. returns the new state.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass

from audit_chain._b64 import b64decode_strict
from audit_chain.checkpoint import Checkpoint, open_checkpoint
from audit_chain.errors import (
    ConsistencyProofError,
    EntryMismatchError,
    InputTooLargeError,
    LogStateError,
    MalformedCheckpointError,
    MonitorError,
    RollbackError,
    SplitViewError,
)
from audit_chain.merkle import EMPTY_ROOT, CompactRange, leaf_hash, verify_consistency
from audit_chain.note import NoteVerifier

__all__ = ["EntryTail", "LogMonitor", "MonitorState", "Observation", "verify_checkpoint_update"]

_MAX_STATE_BYTES = 8192


def _height(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedCheckpointError("bad monitor state", reason="bad_state")
    return value


def _node(value: object) -> bytes:
    return b64decode_strict(value, "entry range node", MalformedCheckpointError, "bad_state")


@dataclass(frozen=True)
class MonitorState:
    """What a monitor remembers: the last verified checkpoint and, when it checks entries,
    the compact range (perfect subtrees, biggest first) of the entries verified so far."""

    checkpoint: Checkpoint
    entry_range: tuple[tuple[int, bytes], ...] | None = None

    def to_bytes(self) -> bytes:
        cp = self.checkpoint
        obj: dict[str, object] = {
            "origin": cp.origin,
            "treeSize": cp.tree_size,
            "root": base64.b64encode(cp.root).decode(),
        }
        if self.entry_range is not None:
            obj["entryRange"] = [[h, base64.b64encode(x).decode()] for h, x in self.entry_range]
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
            root = b64decode_strict(obj["root"], "root", MalformedCheckpointError, "bad_state")
            size = obj["treeSize"]
            origin = obj["origin"]
            raw_range = obj.get("entryRange")
            entry_range = None
            if raw_range is not None:
                entry_range = tuple((_height(h), _node(x)) for h, x in raw_range)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MalformedCheckpointError("bad monitor state", reason="bad_state") from exc
        if isinstance(size, bool) or not isinstance(size, int) or not isinstance(origin, str):
            raise MalformedCheckpointError("bad monitor state", reason="bad_state")
        state = cls(Checkpoint(origin, size, root), entry_range)
        if entry_range is not None:
            try:
                tail = EntryTail(entry_range)
            except LogStateError as exc:
                raise MalformedCheckpointError("bad monitor state", reason="bad_state") from exc
            if tail.tree_size != size:
                raise MalformedCheckpointError("entry range does not match the tree size")
        return state


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
    """Follows one log's checkpoints, refusing rollbacks and split views.

    With ``track_entries=True`` the monitor also recomputes the tree from the entries
    themselves: every observation must bring the entries added since the last one (all of
    them on the first), and their hashes must lead to the new checkpoint's root.
    """

    def __init__(
        self,
        verifier: NoteVerifier,
        state: MonitorState | None = None,
        *,
        track_entries: bool = False,
    ) -> None:
        if track_entries and state is not None and state.entry_range is None:
            raise LogStateError("the saved monitor state does not track entries")
        self.verifier = verifier
        self.state = state
        self.track_entries = track_entries

    def observe(
        self,
        checkpoint_note: bytes,
        consistency_proof: Sequence[bytes],
        new_entries: Sequence[bytes] | None = None,
    ) -> Observation:
        """Verify a newly fetched checkpoint against the remembered one and advance.

        ``new_entries`` (required when tracking entries) are the entries from the last
        verified size up to the new checkpoint's size.

        Raises:
            NoteVerificationError / MalformedNoteError / MalformedCheckpointError: bad note.
            RollbackError, SplitViewError: see :func:`verify_checkpoint_update`.
            EntryMismatchError: the entries do not hash to the new root.
            LogStateError: entries missing or of the wrong count while tracking.
        """
        new = open_checkpoint(checkpoint_note, self.verifier)
        previous = None if self.state is None else self.state.checkpoint
        if previous is not None:
            verify_checkpoint_update(previous, new, consistency_proof)
        grown = new.tree_size - (0 if previous is None else previous.tree_size)
        entry_range = None
        if self.track_entries:
            if new_entries is None or len(new_entries) != grown:
                raise LogStateError(f"expected the {grown} entries added since the last check")
            tail = EntryTail(() if self.state is None else self.state.entry_range or ())
            tail.append(new_entries)
            tail.verify_against(new)
            entry_range = tail.nodes
        self.state = MonitorState(new, entry_range)
        return Observation(previous, new, grown)


class EntryTail:
    """Recomputes the tree from entries in order (a compact range of perfect subtrees)."""

    def __init__(self, nodes: Sequence[tuple[int, bytes]] = ()) -> None:
        self._range = CompactRange(nodes)

    @property
    def tree_size(self) -> int:
        return self._range.size

    @property
    def nodes(self) -> tuple[tuple[int, bytes], ...]:
        return self._range.nodes

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
