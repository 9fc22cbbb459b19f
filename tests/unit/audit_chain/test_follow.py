"""Following a tlog-tiles log through a fetch function: growth, rollback, split view,
tampered tiles and entries edited in storage."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit_chain.checkpoint import Checkpoint, sign_checkpoint
from audit_chain.errors import (
    EntryMismatchError,
    InputTooLargeError,
    LogStateError,
    RollbackError,
    SplitViewError,
    TileNotFoundError,
)
from audit_chain.follow import Fetch, RemoteTileStore, monitor_poll
from audit_chain.log import TiledLog
from audit_chain.merkle import root_hash
from audit_chain.monitor import LogMonitor, MonitorState
from audit_chain.publisher import CheckpointPublisher
from audit_chain.tiles import ENTRIES_LEVEL, TileId, encode_entry_bundle, parse_entry_bundle
from audit_chain.tilestore import FileTileStore, LogState

from .helpers import seeded


def _serve(root: Path) -> Fetch:
    """fetch() over a data dir, as a static HTTP server of the tlog-tiles layout would."""

    def fetch(path: str) -> bytes:
        try:
            return (root / path).read_bytes()
        except FileNotFoundError:
            raise TileNotFoundError(path) from None

    return fetch


def _grow(log: TiledLog, n: int, tag: str = "e") -> None:
    start = log.tree_size
    log.append_batch([f"{tag}{i}".encode() for i in range(start, start + n)])


@pytest.fixture
def served(tmp_path: Path) -> tuple[TiledLog, CheckpointPublisher, Path]:
    log = TiledLog(FileTileStore(tmp_path / "log", fsync=False))
    return log, CheckpointPublisher(log, seeded("log")), tmp_path / "log"


def test_monitor_follows_growth_and_checks_every_entry(
    served: tuple[TiledLog, CheckpointPublisher, Path],
) -> None:
    log, pub, root = served
    monitor = LogMonitor(seeded("log").verifier, track_entries=True)
    _grow(log, 300)
    pub.publish()
    assert monitor_poll(monitor, _serve(root)).new_entries == 300
    _grow(log, 700)
    pub.publish()
    seen = monitor_poll(monitor, _serve(root))
    assert (seen.previous.tree_size, seen.current.tree_size) == (300, 1000)  # type: ignore[union-attr]
    # The state survives a restart and keeps checking entries.
    assert monitor.state is not None
    restored = LogMonitor(
        seeded("log").verifier,
        MonitorState.from_bytes(monitor.state.to_bytes()),
        track_entries=True,
    )
    _grow(log, 5)
    pub.publish()
    assert monitor_poll(restored, _serve(root)).new_entries == 5


def test_entry_edited_in_storage_is_caught(
    served: tuple[TiledLog, CheckpointPublisher, Path],
) -> None:
    log, pub, root = served
    _grow(log, 600)
    pub.publish()
    bundle = root / TileId(ENTRIES_LEVEL, 1).path
    entries = parse_entry_bundle(bundle.read_bytes())
    entries[10] = b"edited after the fact"
    bundle.write_bytes(encode_entry_bundle(entries))
    with pytest.raises(EntryMismatchError):
        monitor_poll(LogMonitor(seeded("log").verifier, track_entries=True), _serve(root))


def test_rollback_is_caught(served: tuple[TiledLog, CheckpointPublisher, Path]) -> None:
    log, pub, root = served
    _grow(log, 10)
    old_note = pub.publish()
    _grow(log, 10)
    pub.publish()
    monitor = LogMonitor(seeded("log").verifier)
    monitor_poll(monitor, _serve(root))
    (root / "checkpoint").write_bytes(old_note)  # the server goes back in time
    with pytest.raises(RollbackError):
        monitor_poll(monitor, _serve(root))


def test_split_view_is_caught(tmp_path: Path) -> None:
    signer = seeded("log")
    honest = TiledLog(FileTileStore(tmp_path / "honest", fsync=False))
    _grow(honest, 50)
    CheckpointPublisher(honest, signer).publish()
    monitor = LogMonitor(signer.verifier)
    monitor_poll(monitor, _serve(tmp_path / "honest"))
    # Another view, signed by the same key, that rewrote history.
    fork = TiledLog(FileTileStore(tmp_path / "fork", fsync=False))
    _grow(fork, 40)
    _grow(fork, 20, tag="forged")
    CheckpointPublisher(fork, signer).publish()
    with pytest.raises(SplitViewError) as info:
        monitor_poll(monitor, _serve(tmp_path / "fork"))
    assert info.value.reason == "inconsistent"


def test_tiles_that_do_not_match_the_checkpoint_are_caught(
    served: tuple[TiledLog, CheckpointPublisher, Path],
) -> None:
    log, pub, root = served
    _grow(log, 20)
    pub.publish()
    tile = root / TileId(0, 0, 20).path
    data = bytearray(tile.read_bytes())
    data[5] ^= 1
    tile.write_bytes(bytes(data))
    with pytest.raises(SplitViewError) as info:
        monitor_poll(LogMonitor(seeded("log").verifier), _serve(root))
    assert info.value.reason == "tiles_mismatch"


def test_remote_store_checks_sizes_and_is_read_only() -> None:
    store = RemoteTileStore(lambda path: b"\x00" * 9000, LogState(0, b"\x00" * 32))
    with pytest.raises(InputTooLargeError):
        store.read_tile(TileId(0, 0))
    with pytest.raises(TileNotFoundError):
        store.read_tile(TileId(0, 0).inner_nodes())
    with pytest.raises(LogStateError):
        store.write_checkpoint(b"")


def test_tracking_monitor_needs_the_new_entries() -> None:
    signer = seeded("log")
    monitor = LogMonitor(signer.verifier, track_entries=True)
    note = sign_checkpoint(Checkpoint(signer.name, 2, root_hash([b"a", b"b"])), signer)
    with pytest.raises(LogStateError):
        monitor.observe(note, [], [b"a"])
    monitor.observe(note, [], [b"a", b"b"])
    assert monitor.state is not None
    untracked = MonitorState(monitor.state.checkpoint)
    with pytest.raises(LogStateError):
        LogMonitor(signer.verifier, untracked, track_entries=True)


def test_partial_tiles_are_pruned_and_clients_fall_back_to_full_tiles(
    served: tuple[TiledLog, CheckpointPublisher, Path],
) -> None:
    log, pub, root = served
    for _ in range(5):
        _grow(log, 50)  # five partial versions of tile 0 and entry bundle 0
    note = pub.publish()
    assert len(list((root / "tile/0/000.p").iterdir())) == 5
    monitor = LogMonitor(seeded("log").verifier, track_entries=True)
    monitor_poll(monitor, _serve(root))
    _grow(log, 10)  # tile 0 completes: its partials go
    assert not (root / "tile/0/000.p").exists() and not (root / "tile/entries/000.p").exists()
    # A client still holding the checkpoint of size 250 reads the full tiles' prefixes.
    (root / "checkpoint").write_bytes(note)
    fresh = LogMonitor(seeded("log").verifier, track_entries=True)
    assert monitor_poll(fresh, _serve(root)).current.tree_size == 250
