"""Synthesize a large tiled log quickly for benchmarks (random leaf hashes, real tile hashes).

Leaf hashes are random 32-byte values (the log never needs the entries to compute proofs);
every tile above level 0 holds the real Merkle tree hash of the full tile below, and every
full tile has its inner-node companion, computed with hashlib over two processes, so proofs
from it verify against the real root.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor

from audit_chain.errors import LogStateError, TileNotFoundError
from audit_chain.merkle import node_hash
from audit_chain.tiles import INNER_TILE_BYTES, TILE_WIDTH, TileId
from audit_chain.tilestore import LogState, TileBatch

TILE_BYTES = TILE_WIDTH * 32


def _tile_roots(chunk: bytes) -> tuple[bytes, bytes]:
    """Merkle tree hash and inner-node companion of each 256-hash tile in ``chunk``."""
    sha = hashlib.sha256
    roots = bytearray()
    inner = bytearray()
    for off in range(0, len(chunk), TILE_BYTES):
        tile = chunk[off : off + TILE_BYTES]
        hs = [tile[i : i + 32] for i in range(0, TILE_BYTES, 32)]
        while len(hs) > 1:
            hs = [sha(b"\x01" + hs[k] + hs[k + 1]).digest() for k in range(0, len(hs), 2)]
            if len(hs) > 1:
                inner += b"".join(hs)
        roots += hs[0]
    return bytes(roots), bytes(inner)


def _mth(hashes: list[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k << 1 < len(hashes):
        k <<= 1
    return node_hash(_mth(hashes[:k]), _mth(hashes[k:]))


class SyntheticStore:
    """Read-only TileStore over synthesized levels (tile level L -> concatenated hashes)."""

    def __init__(self, levels: list[bytes], inners: list[bytes], state: LogState) -> None:
        self.levels = levels
        self.inners = inners
        self.state = state
        self.checkpoint: bytes | None = None

    def read_tile(self, tile: TileId) -> bytes:
        if tile.is_entries or tile.level >= len(self.levels):
            raise TileNotFoundError(tile.path)
        if tile.inner:
            inner = self.inners[tile.level] if tile.level < len(self.inners) else b""
            start = tile.index * INNER_TILE_BYTES
            if start + INNER_TILE_BYTES > len(inner):
                raise TileNotFoundError(tile.path)
            return inner[start : start + INNER_TILE_BYTES]
        data = self.levels[tile.level]
        start = tile.index * TILE_BYTES
        end = start + tile.width * 32
        count = len(data) // 32
        full_tiles = count // TILE_WIDTH
        ok = (tile.index < full_tiles and not tile.is_partial) or (
            tile.index == full_tiles and tile.width == count % TILE_WIDTH
        )
        if not ok:
            raise TileNotFoundError(tile.path)
        return data[start:end]

    def write_batch(self, batch: TileBatch) -> None:
        raise LogStateError("the synthetic benchmark store is read-only")

    def read_state(self) -> LogState | None:
        return self.state

    def read_checkpoint(self) -> bytes | None:
        return self.checkpoint

    def write_checkpoint(self, note: bytes) -> None:
        self.checkpoint = note


def synthesize(tree_size: int, first_leaf: bytes | None = None, workers: int = 2) -> SyntheticStore:
    """A store for a tree of ``tree_size`` random leaves (leaf 0 may be given)."""
    if tree_size % TILE_WIDTH:
        raise ValueError("tree_size must be a multiple of 256 (no partial entry bundle)")
    raw = bytearray(os.urandom(32 * tree_size))
    if first_leaf is not None:
        raw[:32] = first_leaf
    levels = [bytes(raw)]
    inners: list[bytes] = []
    del raw
    while len(levels[-1]) // 32 >= TILE_WIDTH:
        below = levels[-1]
        full = (len(below) // 32) // TILE_WIDTH
        body = below[: full * TILE_BYTES]
        if full >= 64 and workers > 1:
            per = -(-full // workers) * TILE_BYTES
            chunks = [body[i : i + per] for i in range(0, len(body), per)]
            with ProcessPoolExecutor(max_workers=workers) as pool:
                parts = list(pool.map(_tile_roots, chunks))
        else:
            parts = [_tile_roots(body)]
        levels.append(b"".join(r for r, _ in parts))
        inners.append(b"".join(i for _, i in parts))
    # Root: fold the perfect subtrees of every level's partial tile, top level first.
    parts: list[bytes] = []
    for data in reversed(levels):
        count = len(data) // 32
        width = count % TILE_WIDTH
        tile = data[(count - width) * 32 :]
        hashes = [tile[i : i + 32] for i in range(0, len(tile), 32)]
        pos = 0
        for r in range(7, -1, -1):
            if width & (1 << r):
                parts.append(_mth(hashes[pos : pos + (1 << r)]))
                pos += 1 << r
    root = parts[-1]
    for left in reversed(parts[:-1]):
        root = node_hash(left, root)
    return SyntheticStore(levels, inners, LogState(tree_size, root))
