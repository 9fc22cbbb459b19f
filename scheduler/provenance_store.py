"""A :class:`audit_chain.TileStore` over the scheduler's database (tables in
:mod:`scheduler.tables.provenance`).

The log computes tiles; this store keeps bytes. :meth:`DbTileStore.write_batch_in` writes a
prepared batch into the caller's transaction (the one that marks the tasks finished), so
the tiles, the new tree state and the tasks' states commit or roll back together.

Invariants:
- a batch writes its tiles, its new entries and the new state in one transaction; partial
  Merkle tiles and the entry rows of a bundle are deleted in the transaction that writes
  the full tile, as tlog-tiles allows (clients fall back to the full tile);
- the rightmost, partial entry bundle is not stored as one blob (that would rewrite up to
  256 entries per batch): its entries are rows, and the bundle is assembled on read;
- reads use their own short sessions and see committed data only;
- the write path (run on the committer thread once per batch) uses the tables' Core
  statements, built once: no ORM unit of work, no statement compiled per call.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from audit_chain import LogState, TileBatch, TileId, TileNotFoundError, parse_checkpoint
from audit_chain.tiles import TILE_WIDTH, encode_entry_bundle, parse_entry_bundle
from scheduler.tables.provenance import ProvCheckpoint, ProvEntry, ProvLogState, ProvTile

STATE_ID = 1

_TILE = ProvTile.__table__  # type: ignore[attr-defined]
_ENTRY = ProvEntry.__table__  # type: ignore[attr-defined]
_STATE = ProvLogState.__table__  # type: ignore[attr-defined]
_INSERT_TILES = sa.insert(_TILE)
_INSERT_ENTRIES = sa.insert(_ENTRY)
_DELETE_ENTRIES = sa.delete(_ENTRY).where(
    _ENTRY.c.leaf_index >= sa.bindparam("first"), _ENTRY.c.leaf_index < sa.bindparam("end")
)
_DELETE_PARTIALS = sa.delete(_TILE).where(_TILE.c.path.startswith(sa.bindparam("prefix")))
_LOCK_STATE = (
    sa.select(_STATE.c.tree_size, _STATE.c.root).where(_STATE.c.id == STATE_ID).with_for_update()
)
_INSERT_STATE = sa.insert(_STATE)
_UPDATE_STATE = sa.update(_STATE).where(_STATE.c.id == STATE_ID)  # SET from the parameters


class DbTileStore:
    """Tiles, entries, tree state and checkpoints in the scheduler's database."""

    def __init__(
        self, engine: Engine, origin: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._engine = engine
        self.origin = origin
        self._clock = clock

    def _session(self) -> Session:
        return Session(self._engine, expire_on_commit=False)

    # -- reads ------------------------------------------------------------------
    def read_tile(self, tile: TileId) -> bytes:
        """Bytes of a tile or entry bundle. Raises TileNotFoundError if absent."""
        with self._session() as session:
            if tile.is_entries and tile.is_partial:
                first = tile.index * TILE_WIDTH
                rows = session.exec(
                    select(ProvEntry.data)
                    .where(col(ProvEntry.leaf_index) >= first)
                    .where(col(ProvEntry.leaf_index) < first + tile.width)
                    .order_by(col(ProvEntry.leaf_index))
                ).all()
                if len(rows) != tile.width:
                    raise TileNotFoundError(tile.path)
                return encode_entry_bundle(list(rows))
            data = session.exec(select(ProvTile.data).where(ProvTile.path == tile.path)).first()
        if data is None:
            raise TileNotFoundError(tile.path)
        return bytes(data)

    def read_state(self) -> LogState | None:
        with self._session() as session:
            row = session.get(ProvLogState, STATE_ID)
        return None if row is None else LogState(row.tree_size, bytes(row.root))

    def read_checkpoint(self) -> bytes | None:
        """The latest published checkpoint note."""
        with self._session() as session:
            note = session.exec(
                select(ProvCheckpoint.note).order_by(col(ProvCheckpoint.tree_size).desc()).limit(1)
            ).first()
        return None if note is None else bytes(note)

    def checkpoint_covering(self, leaf_index: int, at_most: int | None = None) -> bytes | None:
        """The largest published checkpoint whose tree holds ``leaf_index`` (and whose size is
        at most ``at_most`` when given), or None."""
        stmt = select(ProvCheckpoint.note).where(col(ProvCheckpoint.tree_size) > leaf_index)
        if at_most is not None:
            stmt = stmt.where(col(ProvCheckpoint.tree_size) <= at_most)
        with self._session() as session:
            note = session.exec(
                stmt.order_by(col(ProvCheckpoint.tree_size).desc()).limit(1)
            ).first()
        return None if note is None else bytes(note)

    # -- writes -----------------------------------------------------------------
    def write_checkpoint(self, note: bytes) -> None:
        """Store a newly published checkpoint (its own transaction; sizes only grow)."""
        body = note.decode("utf-8").split("\n\n", 1)[0] + "\n"
        size = parse_checkpoint(body).tree_size
        with self._session() as session:
            session.add(ProvCheckpoint(tree_size=size, note=note, published_at=self._clock()))
            session.commit()

    def write_batch(self, batch: TileBatch) -> None:
        """Make a batch durable in a transaction of its own (``TiledLog.append_batch``)."""
        with self._session() as session:
            self.write_batch_in(session, batch, self.lock_state(session))
            session.commit()

    def lock_state(self, session: Session) -> LogState | None:
        """The stored tree state read in ``session``'s transaction, locked until it ends
        (``FOR UPDATE`` on PostgreSQL; SQLite's writer lock serialises anyway), or None for a
        log never written. The read autoflushes the batch's pending objects, the flush the
        commit would otherwise do (measured: deferring it saves nothing)."""
        row = session.execute(_LOCK_STATE).first()
        return None if row is None else LogState(row.tree_size, bytes(row.root))

    def write_batch_in(self, session: Session, batch: TileBatch, old: LogState | None) -> None:
        """Write ``batch`` into ``session``'s transaction; ``old`` is the state
        :meth:`lock_state` read in the same transaction (None for a log never written)."""
        old_size = 0 if old is None else old.tree_size
        tiles: list[dict[str, object]] = []
        entries: list[dict[str, object]] = []
        for tile, data in batch.tiles:
            if tile.is_entries and tile.is_partial:
                first = tile.index * TILE_WIDTH
                for i, entry in enumerate(parse_entry_bundle(data, width=tile.width)):
                    if first + i >= old_size:
                        entries.append({"leaf_index": first + i, "data": entry})
                continue
            tiles.append({"path": tile.path, "data": data})
            if tile.is_partial or tile.inner:
                continue
            if tile.is_entries:
                first = tile.index * TILE_WIDTH
                session.execute(_DELETE_ENTRIES, {"first": first, "end": first + TILE_WIDTH})
            else:
                session.execute(_DELETE_PARTIALS, {"prefix": f"{tile.path}.p/"})
        if tiles:
            session.execute(_INSERT_TILES, tiles)
        if entries:
            session.execute(_INSERT_ENTRIES, entries)
        state = {"tree_size": batch.state.tree_size, "root": batch.state.root}
        if old is None:
            session.execute(_INSERT_STATE, {"id": STATE_ID, "origin": self.origin, **state})
        else:
            session.execute(_UPDATE_STATE, state)
