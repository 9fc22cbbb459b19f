"""tlog-checkpoint bodies, signing, and the never-smaller-never-inconsistent publisher."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from audit_chain.checkpoint import (
    Checkpoint,
    ensure_publishable,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from audit_chain.errors import (
    CheckpointRegressionError,
    ForgedSignatureError,
    MalformedCheckpointError,
)
from audit_chain.log import TiledLog
from audit_chain.publisher import CheckpointPublisher
from audit_chain.tilestore import FileTileStore, MemoryTileStore

from .helpers import ORIGIN, seeded

ROOT = bytes(range(32))
ROOT_B64 = base64.b64encode(ROOT).decode()


def test_body_matches_the_spec_example_shape() -> None:
    cp = Checkpoint("example.com/behind-the-sofa", 20852163, ROOT)
    assert cp.body() == f"example.com/behind-the-sofa\n20852163\n{ROOT_B64}\n"
    assert parse_checkpoint(cp.body()) == cp
    ext = Checkpoint("o", 0, ROOT, ("ext one", "ext two"))
    assert parse_checkpoint(ext.body()) == ext


@pytest.mark.parametrize(
    "text",
    [
        f"o\n1\n{ROOT_B64}",  # no final newline
        "o\n1\n",
        f"o\n01\n{ROOT_B64}\n",  # leading zero
        f"o\n-1\n{ROOT_B64}\n",
        f"o\n1 \n{ROOT_B64}\n",
        f"o\n\u0661\n{ROOT_B64}\n",  # non-ASCII digit
        f"o\n1\n{ROOT_B64[:-4]}\n",  # short root
        f"o\n1\n{ROOT_B64}\n\n",  # empty extension line
        f"\n1\n{ROOT_B64}\n",  # empty origin
        "o\n99999999999999999999\n" + ROOT_B64 + "\n",
    ],
)
def test_malformed_bodies_are_refused(text: str) -> None:
    with pytest.raises(MalformedCheckpointError):
        parse_checkpoint(text)


def test_signed_checkpoint_opens_and_checks_origin() -> None:
    signer = seeded("log")
    note = sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), signer)
    assert open_checkpoint(note, signer.verifier).tree_size == 5
    with pytest.raises(MalformedCheckpointError) as info:
        open_checkpoint(note, signer.verifier, origin="other.example/log")
    assert info.value.reason == "wrong_origin"
    forged = note.replace(b"\n5\n", b"\n6\n")
    with pytest.raises(ForgedSignatureError):
        open_checkpoint(forged, signer.verifier)


def _log_with(n: int, store: MemoryTileStore | FileTileStore | None = None) -> TiledLog:
    log = TiledLog(store if store is not None else MemoryTileStore())
    if n:
        log.append_batch([f"e{i}".encode() for i in range(n)])
    return log


def test_ensure_publishable_refuses_smaller_and_inconsistent() -> None:
    log = _log_with(10)
    last = Checkpoint(ORIGIN, 10, log.root)
    with pytest.raises(CheckpointRegressionError) as info:
        ensure_publishable(last, Checkpoint(ORIGIN, 9, log.root_at(9)), [])
    assert (info.value.last_size, info.value.new_size) == (10, 9)
    other = _log_with(12)
    bogus = Checkpoint(ORIGIN, 12, bytes(32))
    with pytest.raises(CheckpointRegressionError):
        ensure_publishable(last, bogus, other.consistency_proof(10, 12))
    with pytest.raises(CheckpointRegressionError):
        ensure_publishable(last, Checkpoint(ORIGIN, 10, bytes(32)), [])
    with pytest.raises(CheckpointRegressionError):
        ensure_publishable(last, Checkpoint("other", 12, other.root), [])
    ensure_publishable(last, Checkpoint(ORIGIN, 12, other.root), other.consistency_proof(10, 12))


def test_publisher_grows_and_is_idempotent() -> None:
    signer = seeded("log")
    log = _log_with(3)
    pub = CheckpointPublisher(log, signer)
    first = pub.publish()
    assert pub.publish() == first
    log.append_batch([b"more"])
    second = open_checkpoint(pub.publish(), signer.verifier)
    assert second.tree_size == 4 and second.root == log.root


def test_publisher_refuses_after_a_crash_lost_entries(tmp_path: Path) -> None:
    signer = seeded("log")
    log = _log_with(20, FileTileStore(tmp_path))
    CheckpointPublisher(log, signer).publish()
    # Restart on a data dir whose log lost entries (restored from an older copy).
    (tmp_path / "checkpoint").rename(tmp_path / "published")
    for p in tmp_path.glob("state"):
        p.unlink()
    for p in (tmp_path / "tile").rglob("*"):
        if p.is_file():
            p.unlink()
    smaller = _log_with(5, FileTileStore(tmp_path))
    (tmp_path / "published").rename(tmp_path / "checkpoint")
    with pytest.raises(CheckpointRegressionError) as info:
        CheckpointPublisher(smaller, signer).publish()
    assert (info.value.last_size, info.value.new_size) == (20, 5)


def test_publisher_refuses_a_forked_log() -> None:
    signer = seeded("log")
    store = MemoryTileStore()
    log = _log_with(8, store)
    CheckpointPublisher(log, signer).publish()
    fork = TiledLog(MemoryTileStore())
    fork.append_batch([f"x{i}".encode() for i in range(9)])
    fork.store.write_checkpoint(store.read_checkpoint() or b"")
    with pytest.raises(CheckpointRegressionError):
        CheckpointPublisher(fork, signer).publish()
