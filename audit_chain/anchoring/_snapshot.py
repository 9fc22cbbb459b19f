"""Snapshots of the embedded chain's database, so a restart need not replay every block.

The embedded chain's durable record is its journal; a snapshot is only a cache of
py-evm's key-value database (plus the transaction index) after a given number of
journal entries. Restart loads the newest valid snapshot and replays the journal
lines after it.

Invariants:
- a snapshot is written to a temporary file, fsynced and renamed, and ends with the
  SHA-256 of its body; a snapshot that is truncated, corrupt, or does not match the
  journal is ignored (full replay), never trusted;
- sizes are checked before every read.

Layout (big-endian)::

    magic "CNTRUST-EVM-SNAPSHOT-1\\n"
    u64 journal_entries | bytes32 head_block_hash | u64 kv_count | u64 tx_count
    kv_count  x (u32 key_len | key | u32 value_len | value)
    tx_count  x (bytes32 tx_hash | u64 block_number)
    bytes32 sha256(everything above)
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"CNTRUST-EVM-SNAPSHOT-1\n"
MAX_SNAPSHOT_BYTES = 4 * 1024**3
MAX_ITEM_BYTES = 16 * 1024**2
_HEADER = struct.Struct(">Q32sQQ")


@dataclass(frozen=True)
class Snapshot:
    journal_entries: int
    head_hash: bytes
    kv: dict[bytes, bytes]
    tx_index: dict[bytes, int]


def write_snapshot(path: Path, snapshot: Snapshot) -> None:
    """Atomically replace `path` with `snapshot`."""
    digest = hashlib.sha256()
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:

        def put(data: bytes) -> None:
            digest.update(data)
            fh.write(data)

        put(MAGIC)
        put(
            _HEADER.pack(
                snapshot.journal_entries,
                snapshot.head_hash,
                len(snapshot.kv),
                len(snapshot.tx_index),
            )
        )
        for key, value in snapshot.kv.items():
            put(struct.pack(">I", len(key)) + key + struct.pack(">I", len(value)) + value)
        for tx_hash, number in snapshot.tx_index.items():
            put(tx_hash + struct.pack(">Q", number))
        fh.write(digest.digest())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._data):
            raise ValueError("snapshot truncated")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def done(self) -> bool:
        return self._pos == len(self._data)


def read_snapshot(path: Path) -> Snapshot | None:
    """The snapshot at `path`, or None when absent, truncated or corrupt."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size > MAX_SNAPSHOT_BYTES or size < len(MAGIC) + _HEADER.size + 32:
        return None
    data = path.read_bytes()
    body, digest = data[:-32], data[-32:]
    if hashlib.sha256(body).digest() != digest or not body.startswith(MAGIC):
        return None
    reader = _Reader(body[len(MAGIC) :])
    try:
        entries, head_hash, kv_count, tx_count = _HEADER.unpack(reader.take(_HEADER.size))
        kv: dict[bytes, bytes] = {}
        for _ in range(kv_count):
            key_len = reader.u32()
            if key_len > MAX_ITEM_BYTES:
                return None
            key = reader.take(key_len)
            value_len = reader.u32()
            if value_len > MAX_ITEM_BYTES:
                return None
            kv[key] = reader.take(value_len)
        tx_index: dict[bytes, int] = {}
        for _ in range(tx_count):
            tx_hash = reader.take(32)
            tx_index[tx_hash] = int(struct.unpack(">Q", reader.take(8))[0])
    except (ValueError, struct.error):
        return None
    if not reader.done():
        return None
    return Snapshot(int(entries), bytes(head_hash), kv, tx_index)
