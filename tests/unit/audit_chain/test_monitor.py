"""Monitor logic: growth accepted; rollback, split view and changed entries caught."""

from __future__ import annotations

import pytest

from audit_chain.checkpoint import Checkpoint, sign_checkpoint
from audit_chain.errors import (
    EntryMismatchError,
    ForgedSignatureError,
    InputTooLargeError,
    MalformedCheckpointError,
    RollbackError,
    SplitViewError,
)
from audit_chain.log import TiledLog
from audit_chain.monitor import EntryTail, LogMonitor, MonitorState, verify_checkpoint_update
from audit_chain.publisher import CheckpointPublisher
from audit_chain.tiles import ENTRIES_LEVEL, TileId, encode_entry_bundle, parse_entry_bundle
from audit_chain.tilestore import MemoryTileStore

from .helpers import ORIGIN, overwrite_tile, seeded


def _grow(log: TiledLog, start: int, n: int, tag: str = "e") -> None:
    log.append_batch([f"{tag}{i}".encode() for i in range(start, start + n)])


def test_monitor_follows_a_growing_log_and_persists_state() -> None:
    signer = seeded("log")
    log = TiledLog(MemoryTileStore())
    pub = CheckpointPublisher(log, signer)
    _grow(log, 0, 10)
    monitor = LogMonitor(signer.verifier)
    first = monitor.observe(pub.publish(), [])
    assert first.previous is None and first.new_entries == 10
    _grow(log, 10, 7)
    seen = monitor.observe(pub.publish(), log.consistency_proof(10))
    assert seen.new_entries == 7
    assert monitor.state is not None
    restored = MonitorState.from_bytes(monitor.state.to_bytes())
    assert restored == monitor.state


def test_rollback_is_reported() -> None:
    signer = seeded("log")
    log = TiledLog(MemoryTileStore())
    _grow(log, 0, 10)
    older = sign_checkpoint(Checkpoint(ORIGIN, 5, log.root_at(5)), signer)
    monitor = LogMonitor(signer.verifier, MonitorState(Checkpoint(ORIGIN, 10, log.root)))
    with pytest.raises(RollbackError) as info:
        monitor.observe(older, [])
    assert (info.value.old_size, info.value.new_size) == (10, 5)


def test_split_view_is_reported() -> None:
    signer = seeded("log")
    honest, forked = TiledLog(MemoryTileStore()), TiledLog(MemoryTileStore())
    _grow(honest, 0, 10)
    _grow(forked, 0, 8)
    _grow(forked, 8, 4, tag="evil")
    state = MonitorState(Checkpoint(ORIGIN, 10, honest.root))
    fork_note = sign_checkpoint(Checkpoint(ORIGIN, 12, forked.root), signer)
    with pytest.raises(SplitViewError) as info:
        LogMonitor(signer.verifier, state).observe(fork_note, forked.consistency_proof(10))
    assert info.value.reason == "inconsistent"
    same_size = sign_checkpoint(Checkpoint(ORIGIN, 10, forked.root_at(10)), signer)
    with pytest.raises(SplitViewError):
        LogMonitor(signer.verifier, state).observe(same_size, [])


def test_other_origin_is_a_split_view() -> None:
    last = Checkpoint(ORIGIN, 1, b"\x01" * 32)
    with pytest.raises(SplitViewError) as info:
        verify_checkpoint_update(last, Checkpoint("other/log", 1, b"\x01" * 32), [])
    assert info.value.reason == "origin_changed"


def test_forged_checkpoint_is_refused_by_the_monitor() -> None:
    signer = seeded("log")
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, b"\x02" * 32), signer)
    with pytest.raises(ForgedSignatureError):
        LogMonitor(signer.verifier).observe(note.replace(b"\n3\n", b"\n4\n"), [])


def test_entry_changed_in_storage_is_detected() -> None:
    store = MemoryTileStore()
    log = TiledLog(store)
    _grow(log, 0, 300)
    cp = Checkpoint(ORIGIN, 300, log.root)
    tail = EntryTail()
    tail.append(parse_entry_bundle(store.read_tile(TileId(ENTRIES_LEVEL, 0))))
    tail.append(parse_entry_bundle(store.read_tile(TileId(ENTRIES_LEVEL, 1, 44)), width=44))
    tail.verify_against(cp)
    # Someone edits entry 3 directly in storage; the tiles are left alone.
    entries = parse_entry_bundle(store.read_tile(TileId(ENTRIES_LEVEL, 0)))
    entries[3] = b"e3-edited"
    overwrite_tile(store, TileId(ENTRIES_LEVEL, 0), encode_entry_bundle(entries))
    tampered = EntryTail()
    tampered.append(parse_entry_bundle(store.read_tile(TileId(ENTRIES_LEVEL, 0))))
    tampered.append([log.read_entry(i) for i in range(256, 300)])
    with pytest.raises(EntryMismatchError) as info:
        tampered.verify_against(cp)
    assert info.value.old_root == log.root


def test_bad_state_file_is_refused() -> None:
    for data in [b"", b"{}", b'{"origin":"o","treeSize":"1","root":"AA=="}', b"x" * 5000]:
        with pytest.raises((MalformedCheckpointError, InputTooLargeError)):
            MonitorState.from_bytes(data)
