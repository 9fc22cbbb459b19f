"""Storage of a tiled log: the :class:`TileStore` protocol and two implementations.

The log (:mod:`audit_chain.log`) computes tiles; a store only keeps bytes. A store must make
a :class:`TileBatch` durable *atomically with its tree state*: after ``write_batch``
returns, a crash at any point leaves either the old state or the new one, and every tile the
committed tree size needs is readable. The scheduler implements this protocol over its
database, writing a batch in the same transaction that marks the tasks finished.

Implementations here:

* :class:`MemoryTileStore` - dict-backed, for tests and embedded use without durability.
* :class:`FileTileStore` - the C2SP tlog-tiles layout in a directory, servable as static
  files. Each file is written to a temporary name, fsynced, renamed into place, and the
  directories are fsynced (in parallel, so the filesystem journal commits them together);
  the ``state`` file (tree size and root) is written last, so it never names a tree whose
  tiles are not durable. Partial tiles are deleted once their full tile is committed, as
  tlog-tiles allows (clients fall back to the full tile). Tiles past the committed size left by a
  crash are ignored and later overwritten.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from audit_chain.errors import LogStateError, TileNotFoundError
from audit_chain.merkle import HASH_SIZE
from audit_chain.tiles import TILE_WIDTH, TileId

__all__ = ["FileTileStore", "LogState", "MemoryTileStore", "TileBatch", "TileStore"]

_STATE_MAGIC = "cntrust-log-state/v1"
_MAX_CHECKPOINT_BYTES = 64 * 1024


@dataclass(frozen=True)
class LogState:
    """Committed tree state: size and root hash."""

    tree_size: int
    root: bytes

    def __post_init__(self) -> None:
        if self.tree_size < 0 or len(self.root) != HASH_SIZE:
            raise LogStateError(f"bad log state: size {self.tree_size}, root {len(self.root)} B")


@dataclass(frozen=True)
class TileBatch:
    """Tiles and entry bundles written by one append, plus the new committed state."""

    tiles: tuple[tuple[TileId, bytes], ...]
    state: LogState


def _completed(batch: TileBatch) -> list[TileId]:
    """Full tiles and entry bundles written by ``batch``."""
    return [tile for tile, _ in batch.tiles if not tile.is_partial and not tile.inner]


class TileStore(Protocol):
    """Durable storage of tiles, entry bundles, log state and the latest checkpoint."""

    def read_tile(self, tile: TileId) -> bytes:
        """Bytes of a tile or entry bundle. Raises TileNotFoundError if absent."""

    def write_batch(self, batch: TileBatch) -> None:
        """Make the batch's tiles and state durable, atomically with respect to the state."""

    def read_state(self) -> LogState | None:
        """The committed state, or None for a log never written."""

    def read_checkpoint(self) -> bytes | None:
        """The last published signed checkpoint note, or None."""

    def write_checkpoint(self, note: bytes) -> None:
        """Durably replace the published signed checkpoint note."""


class MemoryTileStore:
    """In-memory :class:`TileStore`: no durability, for tests and throwaway logs."""

    def __init__(self) -> None:
        self._tiles: dict[TileId, bytes] = {}
        self._state: LogState | None = None
        self._checkpoint: bytes | None = None
        self._lock = threading.Lock()

    def read_tile(self, tile: TileId) -> bytes:
        try:
            return self._tiles[tile]
        except KeyError:
            raise TileNotFoundError(tile.path) from None

    def write_batch(self, batch: TileBatch) -> None:
        with self._lock:
            self._tiles.update(batch.tiles)
            self._state = batch.state
            for tile in _completed(batch):  # partials are redundant once the full tile exists
                for width in range(1, TILE_WIDTH):
                    self._tiles.pop(TileId(tile.level, tile.index, width), None)

    def put_tiles(self, tiles: Sequence[tuple[TileId, bytes]], state: LogState) -> None:
        """Install pre-computed tiles (e.g. a synthesized benchmark tree)."""
        self.write_batch(TileBatch(tuple(tiles), state))

    def read_state(self) -> LogState | None:
        return self._state

    def read_checkpoint(self) -> bytes | None:
        return self._checkpoint

    def write_checkpoint(self, note: bytes) -> None:
        self._checkpoint = note

    def tile_ids(self) -> list[TileId]:
        """Every stored tile, sorted (tests and tooling)."""
        return sorted(self._tiles)


class FileTileStore:
    """:class:`TileStore` in the C2SP tlog-tiles layout under ``root``.

    ``root/tile/...`` are the tiles and entry bundles, ``root/checkpoint`` the signed
    checkpoint (both servable as static files under the log prefix), ``root/state`` the
    committed tree size and root. ``fsync=False`` skips fsync (tests only).
    """

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root)
        self._fsync = fsync
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._counter = 0
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="tile-fsync")

    def close(self) -> None:
        """Stop the fsync worker threads (the store is unusable for writes afterwards)."""
        self._pool.shutdown(wait=True)

    def _file(self, tile: TileId) -> Path:
        return self.root / tile.path

    def read_tile(self, tile: TileId) -> bytes:
        try:
            return self._file(tile).read_bytes()
        except FileNotFoundError:
            raise TileNotFoundError(tile.path) from None

    def _make_parent(self, path: Path, dirs: set[Path]) -> None:
        parent = path.parent
        if parent.is_dir():
            return
        # Every directory created must also be fsynced into its own parent.
        p = parent
        while not p.is_dir():
            dirs.add(p.parent)
            p = p.parent
        parent.mkdir(parents=True, exist_ok=True)

    def _write_tmp(self, path: Path, data: bytes) -> Path:
        self._counter += 1
        tmp = path.parent / f".tmp-{os.getpid()}-{self._counter}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
        finally:
            os.close(fd)
        return tmp

    def _sync_all(self, paths: Iterable[Path], *, directory: bool) -> None:
        """fsync files (data) or directories; in parallel so the journal commits them together."""
        if not self._fsync:
            return

        def sync(path: Path) -> None:
            fd = os.open(path, os.O_RDONLY)
            try:
                if directory:
                    os.fsync(fd)
                else:
                    os.fdatasync(fd)
            finally:
                os.close(fd)

        todo = list(paths)
        if len(todo) <= 1:
            for p in todo:
                sync(p)
            return
        # list() re-raises the first OSError of any sync
        list(self._pool.map(sync, todo))

    def _durable_write(self, items: Sequence[tuple[Path, bytes]]) -> None:
        dirs: set[Path] = set()
        for path, _ in items:
            self._make_parent(path, dirs)
        tmps: list[tuple[Path, Path]] = []
        try:
            for path, data in items:
                tmps.append((self._write_tmp(path, data), path))
            self._sync_all([tmp for tmp, _ in tmps], directory=False)
        except OSError:
            for tmp, _ in tmps:  # leave no temporary files behind a failed batch
                tmp.unlink(missing_ok=True)
            raise
        for tmp, path in tmps:
            os.replace(tmp, path)
            dirs.add(path.parent)
        self._sync_all(sorted(dirs), directory=True)

    def write_batch(self, batch: TileBatch) -> None:
        with self._lock:
            # 1. tiles and entry bundles, durable (data and directory entries) ...
            self._durable_write([(self._file(tile), data) for tile, data in batch.tiles])
            # 2. ... before the state that names them.
            state = batch.state
            text = f"{_STATE_MAGIC}\n{state.tree_size}\n{base64.b64encode(state.root).decode()}\n"
            self._durable_write([(self.root / "state", text.encode())])
            # 3. tlog-tiles lets a log delete partial tiles once the full tile is available;
            # without this, small batches would leave up to 255 partial copies per tile.
            for tile in _completed(batch):
                shutil.rmtree(self.root / f"{tile.path}.p", ignore_errors=True)

    def read_state(self) -> LogState | None:
        try:
            raw = (self.root / "state").read_bytes()
        except FileNotFoundError:
            return None
        lines = raw.decode("ascii", errors="replace").split("\n")
        if len(raw) > 256 or len(lines) != 4 or lines[0] != _STATE_MAGIC or lines[3] != "":
            raise LogStateError(f"corrupt log state file {self.root / 'state'}")
        try:
            size = int(lines[1])
            root = base64.b64decode(lines[2], validate=True)
        except (ValueError, binascii.Error) as exc:
            raise LogStateError(f"corrupt log state file {self.root / 'state'}") from exc
        return LogState(size, root)

    def read_checkpoint(self) -> bytes | None:
        path = self.root / "checkpoint"
        try:
            if path.stat().st_size > _MAX_CHECKPOINT_BYTES:
                raise LogStateError(f"checkpoint file {path} is oversize")
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def write_checkpoint(self, note: bytes) -> None:
        with self._lock:
            self._durable_write([(self.root / "checkpoint", note)])
