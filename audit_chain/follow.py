"""Following a log served in the C2SP tlog-tiles layout, through an injected ``fetch``.

tlog-tiles has no proof endpoints: a client computes proofs from the tiles it fetches.
:class:`RemoteTileStore` is a read-only :class:`~audit_chain.tilestore.TileStore` over
``fetch(path) -> bytes`` (the caller supplies HTTP, a directory, ...), whose state is a
*verified* checkpoint; opening a :class:`~audit_chain.log.TiledLog` on it checks that the
served edge tiles hash to the signed root. :func:`monitor_poll` is one monitor step: fetch the
checkpoint, compute the consistency proof from tiles, fetch the new entries, and let
:class:`~audit_chain.monitor.LogMonitor` judge.

Sizes are checked before use: a tile must be exactly its width in hashes, an entry bundle
at most 256 maximum-size entries.
"""

from __future__ import annotations

from collections.abc import Callable

from audit_chain.checkpoint import open_checkpoint
from audit_chain.errors import (
    InputTooLargeError,
    LogStateError,
    SplitViewError,
    TileNotFoundError,
)
from audit_chain.log import TiledLog
from audit_chain.merkle import HASH_SIZE
from audit_chain.monitor import LogMonitor, Observation
from audit_chain.note import MAX_NOTE_BYTES
from audit_chain.tiles import (
    MAX_ENTRY_BYTES,
    TILE_WIDTH,
    TileId,
    encode_entry_bundle,
    parse_entry_bundle,
)
from audit_chain.tilestore import LogState, TileBatch

__all__ = ["Fetch", "RemoteTileStore", "monitor_poll"]

Fetch = Callable[[str], bytes]
_MAX_BUNDLE_BYTES = TILE_WIDTH * (2 + MAX_ENTRY_BYTES)


class RemoteTileStore:
    """Read-only tile store over ``fetch``; inner-node companions are never fetched."""

    def __init__(self, fetch: Fetch, state: LogState) -> None:
        self._fetch = fetch
        self._state = state

    def _get(self, tile: TileId) -> bytes:
        data = self._fetch(tile.path)
        limit = _MAX_BUNDLE_BYTES if tile.is_entries else tile.width * HASH_SIZE
        if len(data) > limit:
            raise InputTooLargeError(tile.path, size_bytes=len(data), limit_bytes=limit)
        return data

    def read_tile(self, tile: TileId) -> bytes:
        if tile.inner:  # not served by tlog-tiles: the log rebuilds sub-levels from the tile
            raise TileNotFoundError(tile.path)
        try:
            return self._get(tile)
        except TileNotFoundError:
            if not tile.is_partial:
                raise
        # The log may delete a partial tile once the full one exists (tlog-tiles): fall
        # back to the full tile's prefix.
        full = self._get(TileId(tile.level, tile.index))
        if not tile.is_entries:
            return full[: tile.width * HASH_SIZE]
        return encode_entry_bundle(parse_entry_bundle(full)[: tile.width])

    def write_batch(self, batch: TileBatch) -> None:
        raise LogStateError("a remote log is read-only")

    def read_state(self) -> LogState | None:
        return self._state

    def read_checkpoint(self) -> bytes | None:
        return None

    def write_checkpoint(self, note: bytes) -> None:
        raise LogStateError("a remote log is read-only")


def monitor_poll(monitor: LogMonitor, fetch: Fetch) -> Observation:
    """One monitor step against a tlog-tiles server reached through ``fetch``.

    Raises:
        whatever :meth:`LogMonitor.observe` raises (RollbackError, SplitViewError,
        EntryMismatchError, note errors); SplitViewError with reason ``tiles_mismatch``
        when the served tiles do not hash to the signed root; TileNotFoundError and the
        fetch function's own errors when the server lacks a resource.
    """
    note = fetch("checkpoint")
    if len(note) > MAX_NOTE_BYTES:
        raise InputTooLargeError("checkpoint", size_bytes=len(note), limit_bytes=MAX_NOTE_BYTES)
    new = open_checkpoint(note, monitor.verifier)
    previous = None if monitor.state is None else monitor.state.checkpoint
    if previous is not None and new.tree_size < previous.tree_size:
        return monitor.observe(note, [])  # raises RollbackError
    try:
        log = TiledLog(RemoteTileStore(fetch, LogState(new.tree_size, new.root)))
    except LogStateError as exc:
        old = previous or new
        raise SplitViewError(
            f"served tiles do not hash to the signed root: {exc}",
            reason="tiles_mismatch",
            old_size=old.tree_size,
            new_size=new.tree_size,
            old_root=old.root,
            new_root=new.root,
        ) from exc
    old_size = 0 if previous is None else previous.tree_size
    proof = log.consistency_proof(old_size) if old_size else []
    entries = log.read_entries(old_size, new.tree_size) if monitor.track_entries else None
    return monitor.observe(note, proof, entries)
