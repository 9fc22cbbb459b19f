"""The tiled log: appends, reopen, proofs against a reference, durability and tampering."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from audit_chain.errors import InputTooLargeError, LogStateError, TileNotFoundError
from audit_chain.log import TiledLog
from audit_chain.merkle import (
    ListHashSource,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from audit_chain.tiles import (
    ENTRIES_LEVEL,
    TILE_WIDTH,
    TileId,
    encode_entry_bundle,
    parse_tile_path,
)
from audit_chain.tilestore import FileTileStore, LogState, MemoryTileStore

from .helpers import overwrite_tile


def _entries(n: int, start: int = 0) -> list[bytes]:
    return [f"entry-{i}".encode() for i in range(start, start + n)]


@pytest.mark.parametrize("total", [1, 255, 256, 257, 513, 65_537])
def test_log_matches_reference_tree(total: int) -> None:
    rng = random.Random(total)
    store = MemoryTileStore()
    log = TiledLog(store)
    entries = _entries(total)
    i = 0
    while i < total:
        k = rng.choice([1, 3, 255, 256, 1000, 20_000])
        result = log.append_batch(entries[i : i + k])
        assert result.first_index == i
        i = min(total, i + k)
        assert result.tree_size == i
    ref = ListHashSource([leaf_hash(e) for e in entries])
    assert log.root == ref.root()
    reopened = TiledLog(store)
    assert reopened.tree_size == total and reopened.root == log.root
    for _ in range(30):
        size2 = rng.randint(1, total)
        size1 = rng.randint(1, size2)
        index = rng.randrange(size2)
        root2 = ref.root(size2)
        assert reopened.root_at(size2) == root2
        proof = reopened.inclusion_proof(index, size2)
        verify_inclusion(index, size2, leaf_hash(entries[index]), proof, root2)
        verify_consistency(
            size1, size2, reopened.consistency_proof(size1, size2), ref.root(size1), root2
        )
        assert reopened.read_entry(index) == entries[index]
        assert reopened.leaf_hash_at(index) == leaf_hash(entries[index])


def test_every_batch_root_and_partial_bundle_match_the_reference() -> None:
    # the log extends the edge's compact ranges and partial bundle batch by batch: each
    # batch's root and stored partial bundle must equal a from-scratch computation, also
    # across tile boundaries (levels 0 and 1) and after reopening mid-tile
    rng = random.Random(7)
    store = MemoryTileStore()
    log = TiledLog(store)
    total = 65_536 + 700
    entries = [rng.randbytes(rng.randint(0, 40)) for _ in range(total)]
    hashes = ListHashSource([leaf_hash(e) for e in entries])
    i = 0
    while i < total:
        k = rng.choice([1, 2, 5, 17, 255, 256, 257, 3000])
        result = log.prepare_batch(entries[i : i + k]).result
        log.append_batch(entries[i : i + k])
        i = min(total, i + k)
        assert result.root == hashes.root(i)
        width = i % TILE_WIDTH
        if width:
            bundle = store.read_tile(TileId(ENTRIES_LEVEL, i // TILE_WIDTH, width))
            assert bundle == encode_entry_bundle(entries[i - width : i])
        if rng.random() < 0.1:
            log = TiledLog(store)  # continue from the stored edge
    assert log.root == hashes.root(total)


def test_tiles_follow_the_tlog_tiles_layout(tmp_path: Path) -> None:
    store = FileTileStore(tmp_path, fsync=False)
    log = TiledLog(store)
    log.append_batch(_entries(300))
    log.append_batch(_entries(70_000 - 300, 300))
    served = tmp_path / "tile"
    files = {str(p.relative_to(tmp_path)) for p in served.rglob("*") if p.is_file()}
    tiles = {parse_tile_path(f) for f in files}
    # Every full Merkle tile has its inner-node companion beside the served tree.
    for tile in tiles:
        if tile.level >= 0 and not tile.is_partial:
            assert len((tmp_path / tile.inner_nodes().path).read_bytes()) == 254 * 32
    # Every file is a canonical tlog-tiles path; the final tree's tiles are all present.
    assert TileId(0, 273, 112) in tiles and TileId(1, 1, 17) in tiles and TileId(2, 0, 1) in tiles
    assert TileId(ENTRIES_LEVEL, 273, 112) in tiles and TileId(0, 272) in tiles
    assert len((tmp_path / "tile/0/272").read_bytes()) == 8192
    assert TiledLog(FileTileStore(tmp_path)).root == log.root


def test_file_store_reopens_at_the_committed_state_after_a_torn_batch(tmp_path: Path) -> None:
    store = FileTileStore(tmp_path)
    log = TiledLog(store)
    log.append_batch(_entries(100))
    root = log.root
    # A crash after writing tiles of the next batch but before its state: tiles exist,
    # the state file still names size 100.
    prepared = log.prepare_batch(_entries(50, 100))
    for tile, data in prepared.batch.tiles:
        target = tmp_path / tile.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    reopened = TiledLog(FileTileStore(tmp_path))
    assert (reopened.tree_size, reopened.root) == (100, root)
    first_index, tree_size, root_after = reopened.append_batch(_entries(10, 100))
    assert (first_index, tree_size) == (100, 110)
    assert TiledLog(FileTileStore(tmp_path)).root == root_after


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    log = TiledLog(FileTileStore(tmp_path))
    log.append_batch(_entries(600))
    assert not [p for p in tmp_path.rglob(".tmp-*")]
    assert (tmp_path / "state").read_text().splitlines()[1] == "600"


def test_tampered_edge_tile_is_detected_on_open() -> None:
    store = MemoryTileStore()
    TiledLog(store).append_batch(_entries(300))
    tile = TileId(0, 1, 44)
    data = bytearray(store.read_tile(tile))
    data[0] ^= 1
    overwrite_tile(store, tile, bytes(data))
    with pytest.raises(LogStateError):
        TiledLog(store)


def test_tampered_partial_entry_bundle_is_detected_on_open() -> None:
    store = MemoryTileStore()
    TiledLog(store).append_batch(_entries(10))
    bundle = TileId(ENTRIES_LEVEL, 0, 10)
    data = bytearray(store.read_tile(bundle))
    data[-1] ^= 1
    overwrite_tile(store, bundle, bytes(data))
    with pytest.raises(LogStateError):
        TiledLog(store)


def test_missing_tile_is_reported() -> None:
    store = MemoryTileStore()
    store.put_tiles([], LogState(5, b"\x00" * 32))
    with pytest.raises(TileNotFoundError) as info:
        TiledLog(store)
    assert info.value.path == "tile/0/000.p/5"


def test_two_phase_append_and_stale_commit() -> None:
    store = MemoryTileStore()
    log = TiledLog(store)
    prepared = log.prepare_batch(_entries(3))
    assert log.tree_size == 0  # nothing installed before commit
    store.write_batch(prepared.batch)
    assert log.commit(prepared).tree_size == 3
    stale = log.prepare_batch(_entries(1, 3))
    log.append_batch(_entries(1, 3))
    with pytest.raises(LogStateError):
        log.commit(stale)


def test_failed_store_write_leaves_the_log_unchanged() -> None:
    class FailingStore(MemoryTileStore):
        def write_batch(self, batch: object) -> None:  # type: ignore[override]
            raise OSError("disk full")

    log = TiledLog(FailingStore())
    with pytest.raises(OSError):
        log.append_batch(_entries(3))
    assert log.tree_size == 0


def test_bad_appends_and_reads_are_refused() -> None:
    log = TiledLog(MemoryTileStore())
    with pytest.raises(LogStateError):
        log.append_batch([])
    with pytest.raises(InputTooLargeError):
        log.append_batch([b"x" * 65_536])
    log.append_batch(_entries(3))
    with pytest.raises(LogStateError):
        log.inclusion_proof(0, 4)
    with pytest.raises(LogStateError):
        log.read_entry(3)
    with pytest.raises(LogStateError):
        log.root_at(4)


def test_fsync_is_called_for_durable_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_fdatasync, real_fsync = os.fdatasync, os.fsync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append("file"), real_fdatasync(fd))[1])
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("dir"), real_fsync(fd))[1])
    TiledLog(FileTileStore(tmp_path)).append_batch(_entries(3))
    # level-0 tile, entry bundle, state: three files, and their directories.
    assert calls.count("file") == 3
    assert calls.count("dir") >= 3
    assert calls[-1] == "dir"  # the state's directory is synced last


def test_proofs_use_stored_inner_nodes_and_work_without_them() -> None:
    entries = _entries(1024)
    ref = ListHashSource([leaf_hash(e) for e in entries])
    store = MemoryTileStore()
    TiledLog(store).append_batch(entries)
    inner = TileId(0, 1).inner_nodes()
    assert inner in store.tile_ids()
    # Without the companion the proof is rebuilt from the tile and still verifies.
    stripped = MemoryTileStore()
    stripped.put_tiles(
        [(t, store.read_tile(t)) for t in store.tile_ids() if not t.inner],
        LogState(1024, ref.root()),
    )
    assert TiledLog(stripped).inclusion_proof(300) == inclusion_proof(ref, 300, 1024)
    # With it, the stored inner hashes are what the proof is made of.
    data = bytearray(store.read_tile(inner))
    data[0] ^= 1  # first level-1 node of tile 1: the sibling pair of leaves 256-257
    overwrite_tile(store, inner, bytes(data))
    proof = TiledLog(store).inclusion_proof(258, 1024)
    assert proof[1] != inclusion_proof(ref, 258, 1024)[1]


def test_failed_fsync_leaves_no_temporary_files_and_no_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileTileStore(tmp_path)
    log = TiledLog(store)
    log.append_batch(_entries(5))

    def broken(fd: int) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "fdatasync", broken)
    with pytest.raises(OSError):
        log.append_batch(_entries(5, 5))
    assert log.tree_size == 5
    assert not list(tmp_path.rglob(".tmp-*"))
    monkeypatch.undo()
    assert TiledLog(FileTileStore(tmp_path)).tree_size == 5
