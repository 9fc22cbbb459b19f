"""A tiled, append-only RFC 6962 log over a :class:`~audit_chain.tilestore.TileStore`.

The log keeps in memory only the right edge of the tree (the partial tile of every tile
level and the partial entry bundle); everything else is read from tiles. Any perfect
subtree ``(level, index)`` is found in one tile: tile level ``level // 8``; the
``level % 8`` sub-levels inside it come from the tile's stored inner-node companion
(written with every full tile; rebuilt from the tile when a store lacks it) and are cached
per tile in an LRU, so a proof reads O(log_256 n) tiles and O(log n) stored hashes.

Appending is two-phase so a database can put the tiles in its own transaction:

1. :meth:`TiledLog.prepare_batch` computes the new tiles, entry bundles, tree size and
   root (pure, no I/O);
2. the caller makes ``prepared.batch`` durable (``store.write_batch``, or rows in the
   transaction that also marks the tasks finished);
3. :meth:`TiledLog.commit` installs the new state in memory.

:meth:`TiledLog.append_batch` does all three with the log's own store. One sequencer per
log: appends are serialised by a lock; proofs and reads may run concurrently with them and
see the last committed state.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from audit_chain.errors import InputTooLargeError, LogStateError, TileNotFoundError
from audit_chain.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    consistency_proof,
    fold_right,
    inclusion_proof,
    leaf_hash,
    node_hash,
    subtree_hash,
)
from audit_chain.tiles import (
    ENTRIES_LEVEL,
    INNER_TILE_BYTES,
    MAX_ENTRY_BYTES,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileId,
    encode_entry_bundle,
    parse_entry_bundle,
)
from audit_chain.tilestore import LogState, TileBatch, TileStore

__all__ = ["AppendResult", "PreparedBatch", "TiledLog"]

_MAX_BATCH = 1 << 20


@dataclass(frozen=True)
class _Edge:
    """Right edge of a committed tree: partial tile hashes per tile level, partial entries.

    ``ranges[L]`` is the compact range (perfect subtrees, biggest first) of the partial
    tile at level L and ``bundle`` the encoded partial entry bundle, so appending a batch
    hashes and encodes only the new entries, not the whole edge again.
    ``trees`` memoises the mini-trees of the partial tiles; the edge never changes, so the
    memo is valid for the edge's lifetime.
    """

    tree_size: int
    root: bytes
    hashes: tuple[tuple[bytes, ...], ...]  # hashes[L] = contents of the partial tile at level L
    entries: tuple[bytes, ...]
    ranges: tuple[tuple[tuple[int, bytes], ...], ...]
    bundle: bytes
    trees: dict[int, list[list[bytes]]] = field(default_factory=dict, compare=False, repr=False)


class AppendResult(NamedTuple):
    """Outcome of an append: the first new leaf index, the new tree size and root."""

    first_index: int
    tree_size: int
    root: bytes


@dataclass(frozen=True)
class PreparedBatch:
    """A computed but not yet committed append (see :meth:`TiledLog.prepare_batch`)."""

    base_size: int
    result: AppendResult
    batch: TileBatch
    _edge: _Edge


def _edge_ranges(hashes: Sequence[Sequence[bytes]]) -> list[CompactRange]:
    """Compact ranges of the partial tiles ``hashes`` (level 0 first)."""
    ranges = []
    for tile in hashes:
        compact = CompactRange()
        for h in tile:
            compact.append(h)
        ranges.append(compact)
    return ranges


def _edge_root(ranges: Sequence[CompactRange]) -> bytes:
    """Root of the tree whose right edge has the partial-tile compact ranges ``ranges``
    (level 0 first): every perfect subtree, the highest level's first, folded."""
    parts = [h for compact in reversed(ranges) for _, h in compact.nodes]
    return fold_right(parts) if parts else EMPTY_ROOT


def _mini_tree(hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Sub-levels of a tile: ``tree[r][i]`` is the perfect subtree of 2**r tile hashes."""
    sha = hashlib.sha256  # inlined node_hash: this loop dominates proof generation
    tree = [list(hashes)]
    for _ in range(TILE_HEIGHT - 1):
        below = tree[-1]
        if len(below) < 2:
            break
        it = iter(below)
        tree.append(
            [sha(b"\x01" + left + right).digest() for left, right in zip(it, it, strict=False)]
        )
    return tree


def _tree_from_inner(hashes: list[bytes], inner: bytes) -> list[list[bytes]]:
    """Mini-tree of a full tile from its hashes and stored inner-node companion."""
    tree = [hashes]
    pos = 0
    width = TILE_WIDTH // 2
    while width > 1:
        tree.append([inner[pos + i * HASH_SIZE : pos + (i + 1) * HASH_SIZE] for i in range(width)])
        pos += width * HASH_SIZE
        width //= 2
    return tree


def _inner_bytes(tree: list[list[bytes]]) -> bytes:
    return b"".join(b"".join(level) for level in tree[1:])


def _split_hashes(data: bytes, tile: TileId) -> list[bytes]:
    if len(data) != tile.width * HASH_SIZE:
        raise LogStateError(f"tile {tile.path} is {len(data)} bytes, not {tile.width * HASH_SIZE}")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


class TiledLog:
    """An append-only Merkle log stored as C2SP tiles.

    Raises (constructor):
        LogStateError: the stored edge tiles do not hash to the stored root.
        TileNotFoundError: a tile the stored size needs is missing.
    """

    def __init__(self, store: TileStore, *, tile_cache: int = 2048) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._cache: OrderedDict[TileId, list[list[bytes]]] = OrderedDict()
        self._cache_size = tile_cache
        self._cache_lock = threading.Lock()
        self._edge = self._load_edge(store.read_state())

    # ------------------------------------------------------------------ state

    def _load_edge(self, state: LogState | None) -> _Edge:
        if state is None or state.tree_size == 0:
            return _Edge(0, EMPTY_ROOT, (), (), (), b"")
        size = state.tree_size
        hashes: list[tuple[bytes, ...]] = []
        level = 0
        while size >> (TILE_HEIGHT * level):
            count = size >> (TILE_HEIGHT * level)
            width = count % TILE_WIDTH
            if width:
                tile = TileId(level, count // TILE_WIDTH, width)
                hashes.append(tuple(_split_hashes(self.store.read_tile(tile), tile)))
            else:
                hashes.append(())
            level += 1
        entries: tuple[bytes, ...] = ()
        bundle = b""
        if size % TILE_WIDTH:
            tile = TileId(ENTRIES_LEVEL, size // TILE_WIDTH, size % TILE_WIDTH)
            bundle = self.store.read_tile(tile)
            entries = tuple(parse_entry_bundle(bundle, width=tile.width))
            if [leaf_hash(e) for e in entries] != list(hashes[0]):
                raise LogStateError("partial entry bundle does not match the level-0 tile")
        ranges = _edge_ranges(hashes)
        root = _edge_root(ranges)
        if root != state.root:
            raise LogStateError(
                f"stored tiles hash to {root.hex()}, the state says {state.root.hex()}"
            )
        nodes = tuple(compact.nodes for compact in ranges)
        return _Edge(size, root, tuple(hashes), entries, nodes, bundle)

    @property
    def tree_size(self) -> int:
        return self._edge.tree_size

    @property
    def root(self) -> bytes:
        return self._edge.root

    # ------------------------------------------------------------------ append

    def prepare_batch(self, entries: Sequence[bytes]) -> PreparedBatch:
        """Compute the tiles of appending ``entries`` to the committed tree (no I/O).

        Raises:
            InputTooLargeError: an entry is over 65,535 bytes or the batch over 2**20 entries.
            LogStateError: the batch is empty.
        """
        if not entries:
            raise LogStateError("empty batch")
        if len(entries) > _MAX_BATCH:
            raise InputTooLargeError("batch", size_bytes=len(entries), limit_bytes=_MAX_BATCH)
        for e in entries:
            if len(e) > MAX_ENTRY_BYTES:
                raise InputTooLargeError(
                    "log entry", size_bytes=len(e), limit_bytes=MAX_ENTRY_BYTES
                )
        edge = self._edge
        base = edge.tree_size
        levels: list[list[bytes]] = [list(h) for h in edge.hashes]
        ranges = [CompactRange(nodes) for nodes in edge.ranges]
        counts = [base >> (TILE_HEIGHT * lv) for lv in range(len(levels))]
        out: dict[TileId, bytes] = {}
        pending_entries = list(edge.entries)
        bundle = bytearray(edge.bundle)  # the partial entry bundle, extended entry by entry
        size = base

        def push(level: int, h: bytes) -> None:
            while True:
                if level == len(levels):
                    levels.append([])
                    ranges.append(CompactRange())
                    counts.append(0)
                tile = levels[level]
                tile.append(h)
                counts[level] += 1
                if len(tile) < TILE_WIDTH:
                    ranges[level].append(h)
                    return
                full = TileId(level, (counts[level] - 1) // TILE_WIDTH)
                out[full] = b"".join(tile)
                tree = _mini_tree(tile)
                out[full.inner_nodes()] = _inner_bytes(tree)
                h = node_hash(tree[-1][0], tree[-1][1])
                tile.clear()
                ranges[level] = CompactRange()
                level += 1

        for e in entries:
            push(0, leaf_hash(e))
            pending_entries.append(e)
            bundle += encode_entry_bundle((e,))
            size += 1
            if len(pending_entries) == TILE_WIDTH:
                out[TileId(ENTRIES_LEVEL, (size - 1) // TILE_WIDTH)] = bytes(bundle)
                pending_entries = []
                bundle.clear()
        for level, tile in enumerate(levels):
            old_count = base >> (TILE_HEIGHT * level)
            if tile and counts[level] != old_count:
                out[TileId(level, counts[level] // TILE_WIDTH, len(tile))] = b"".join(tile)
        partial_bundle = bytes(bundle)
        if pending_entries and size % TILE_WIDTH:
            partial = TileId(ENTRIES_LEVEL, size // TILE_WIDTH, len(pending_entries))
            out[partial] = partial_bundle
        root = _edge_root(ranges)
        new_edge = _Edge(
            size,
            root,
            tuple(tuple(t) for t in levels),
            tuple(pending_entries),
            tuple(compact.nodes for compact in ranges),
            partial_bundle,
        )
        result = AppendResult(base, size, root)
        batch = TileBatch(tuple(sorted(out.items())), LogState(size, root))
        return PreparedBatch(base, result, batch, new_edge)

    def commit(self, prepared: PreparedBatch) -> AppendResult:
        """Install a prepared batch after its tiles are durable.

        Raises:
            LogStateError: the log moved since the batch was prepared.
        """
        with self._lock:
            if prepared.base_size != self._edge.tree_size:
                raise LogStateError(
                    f"batch prepared at size {prepared.base_size}, log is at {self.tree_size}"
                )
            self._edge = prepared._edge
        return prepared.result

    def append_batch(self, entries: Sequence[bytes]) -> AppendResult:
        """Append entries durably through the log's store; returns (first_index, size, root).

        Raises:
            InputTooLargeError, LogStateError: see :meth:`prepare_batch`; store errors propagate
            and leave the log at its previous state.
        """
        with self._lock:
            prepared = self.prepare_batch(entries)
            self.store.write_batch(prepared.batch)
            self._edge = prepared._edge
        return prepared.result

    # ------------------------------------------------------------------ reads

    def _tile_tree(self, edge: _Edge, level: int, tile_index: int) -> list[list[bytes]]:
        count = edge.tree_size >> (TILE_HEIGHT * level)
        full = count // TILE_WIDTH
        if tile_index == full:  # the partial tile on the edge, held in memory
            tree = edge.trees.get(level)
            if tree is None:
                tree = edge.trees[level] = _mini_tree(edge.hashes[level])
            return tree
        if tile_index > full:
            raise LogStateError(f"tile {level}/{tile_index} is beyond tree size {edge.tree_size}")
        tile = TileId(level, tile_index)
        with self._cache_lock:
            tree = self._cache.get(tile)
            if tree is not None:
                self._cache.move_to_end(tile)
                return tree
        hashes = _split_hashes(self.store.read_tile(tile), tile)
        try:
            inner = self.store.read_tile(tile.inner_nodes())
        except TileNotFoundError:  # optional companion: rebuild from the tile
            inner = b""
        if len(inner) == INNER_TILE_BYTES:
            tree = _tree_from_inner(hashes, inner)
        else:
            tree = _mini_tree(hashes)
        with self._cache_lock:
            self._cache[tile] = tree
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return tree

    def _source(self, edge: _Edge) -> _EdgeSource:
        return _EdgeSource(self, edge)

    def _checked_size(self, edge: _Edge, tree_size: int | None) -> int:
        size = edge.tree_size if tree_size is None else tree_size
        if not 0 <= size <= edge.tree_size:
            raise LogStateError(f"tree size {size} beyond the log's size {edge.tree_size}")
        return size

    def root_at(self, tree_size: int) -> bytes:
        """Root hash of the tree of the first ``tree_size`` entries."""
        edge = self._edge
        size = self._checked_size(edge, tree_size)
        if size == 0:
            return EMPTY_ROOT
        if size == edge.tree_size:
            return edge.root
        return subtree_hash(self._source(edge), (size - 1).bit_length(), 0, size)

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> list[bytes]:
        """Inclusion proof of leaf ``index`` in the tree of ``tree_size`` (default: current)."""
        edge = self._edge
        size = self._checked_size(edge, tree_size)
        return inclusion_proof(self._source(edge), index, size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """Consistency proof from ``size1`` to ``size2`` (default: current size)."""
        edge = self._edge
        size = self._checked_size(edge, size2)
        return consistency_proof(self._source(edge), size1, size)

    def leaf_hash_at(self, index: int) -> bytes:
        """Stored leaf hash of entry ``index``."""
        edge = self._edge
        if not 0 <= index < edge.tree_size:
            raise LogStateError(f"index {index} beyond tree size {edge.tree_size}")
        return self._source(edge).node(0, index)

    def read_entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``[start, end)``, reading each entry bundle once."""
        edge = self._edge
        if not 0 <= start <= end <= edge.tree_size:
            raise LogStateError(f"range [{start}, {end}) not in tree size {edge.tree_size}")
        out: list[bytes] = []
        pos = start
        while pos < end:
            n = pos // TILE_WIDTH
            if (n + 1) * TILE_WIDTH > edge.tree_size:
                bundle = list(edge.entries)
            else:
                bundle = parse_entry_bundle(self.store.read_tile(TileId(ENTRIES_LEVEL, n)))
            stop = min(end, (n + 1) * TILE_WIDTH)
            out.extend(bundle[pos - n * TILE_WIDTH : stop - n * TILE_WIDTH])
            pos = stop
        return out

    def read_entry(self, index: int) -> bytes:
        """The entry at ``index``, from its entry bundle."""
        edge = self._edge
        if not 0 <= index < edge.tree_size:
            raise LogStateError(f"index {index} beyond tree size {edge.tree_size}")
        n = index // TILE_WIDTH
        if (n + 1) * TILE_WIDTH > edge.tree_size:
            return edge.entries[index % TILE_WIDTH]
        bundle = TileId(ENTRIES_LEVEL, n)
        return parse_entry_bundle(self.store.read_tile(bundle))[index % TILE_WIDTH]


class _EdgeSource:
    """:class:`~audit_chain.merkle.HashSource` over one committed state of a log."""

    def __init__(self, log: TiledLog, edge: _Edge) -> None:
        self._log = log
        self._edge = edge

    def node(self, level: int, index: int) -> bytes:
        tile_level, r = divmod(level, TILE_HEIGHT)
        first = index << r
        tree = self._log._tile_tree(self._edge, tile_level, first // TILE_WIDTH)
        try:
            return tree[r][(first % TILE_WIDTH) >> r]
        except IndexError:
            raise LogStateError(f"node ({level}, {index}) is not stored") from None
