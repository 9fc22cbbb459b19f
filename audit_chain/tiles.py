"""C2SP tlog-tiles addressing: tile coordinates, resource paths, entry bundles.

A tile at level ``L`` (tile level, not Merkle level) holds up to 256 consecutive hashes of
the perfect subtrees of height ``8 * L``; the ``n``-th tile at level ``L`` covers entries
``[n * 256**(L+1), (n+1) * 256**(L+1))``. Full tiles are exactly 256 hashes (8,192 bytes);
the rightmost tile of a level is *partial* (1-255 hashes) and is addressed ``.p/<W>``.

Paths (relative to the log prefix)::

    tile/<L>/<N>[.p/<W>]          Merkle tiles
    tile/entries/<N>[.p/<W>]      entry bundles (big-endian uint16 length-prefixed entries)

``<N>`` is split into zero-padded 3-digit elements, all but the last prefixed ``x``:
index 1234067 is ``x001/x234/067``.

Invariants: :func:`tile_path` and :func:`parse_tile_path` are inverse; a partial tile never
has width 0 or 256; a tree of size ``s`` has at level ``L`` the partial width
``(s // 256**L) % 256`` (the spec's formula).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from audit_chain.errors import InputTooLargeError, MalformedBundleError, TilePathError
from audit_chain.merkle import HASH_SIZE

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256 hashes per full tile
FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE
INNER_TILE_BYTES = (TILE_WIDTH - 2) * HASH_SIZE  # sub-levels 1..7 of a full tile
MAX_ENTRY_BYTES = 0xFFFF  # entry bundles length-prefix entries with a uint16
ENTRIES_LEVEL = -1  # TileId.level for entry bundles
MAX_TILE_LEVEL = 63

__all__ = [
    "ENTRIES_LEVEL",
    "FULL_TILE_BYTES",
    "INNER_TILE_BYTES",
    "MAX_ENTRY_BYTES",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileId",
    "encode_entry_bundle",
    "encode_index",
    "parse_entry_bundle",
    "parse_tile_path",
    "partial_width",
    "tile_path",
    "tiles_for_size",
]


@dataclass(frozen=True, order=True)
class TileId:
    """A tile (``level >= 0``) or entry bundle (``level == ENTRIES_LEVEL``) of some width.

    ``inner=True`` names the *inner-node companion* of a full tile (not part of
    tlog-tiles, never served): the 254 hashes of the tile's sub-levels 1-7 (128 + 64 +
    ... + 2), level 1 first, stored so proofs need no rehashing. Path ``inner/<L>/<N>``.
    """

    level: int
    index: int
    width: int = TILE_WIDTH
    inner: bool = False

    def __post_init__(self) -> None:
        if not ENTRIES_LEVEL <= self.level <= MAX_TILE_LEVEL:
            raise TilePathError(f"tile level {self.level} out of range", reason="bad_level")
        if self.index < 0:
            raise TilePathError(f"tile index {self.index} is negative", reason="bad_index")
        if not 1 <= self.width <= TILE_WIDTH:
            raise TilePathError(f"tile width {self.width} out of range", reason="bad_width")
        if self.inner and (self.level == ENTRIES_LEVEL or self.width != TILE_WIDTH):
            raise TilePathError("only full Merkle tiles have inner nodes", reason="bad_inner")

    @property
    def is_entries(self) -> bool:
        return self.level == ENTRIES_LEVEL

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def path(self) -> str:
        return tile_path(self)

    def inner_nodes(self) -> TileId:
        """The inner-node companion of this full tile."""
        return TileId(self.level, self.index, inner=True)


def encode_index(index: int) -> str:
    """tlog-tiles ``<N>`` encoding: 1234067 -> ``x001/x234/067``."""
    if index < 0:
        raise TilePathError(f"tile index {index} is negative", reason="bad_index")
    groups: list[str] = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    groups.reverse()
    return "/".join([f"x{g}" for g in groups[:-1]] + [groups[-1]])


def tile_path(tile: TileId) -> str:
    """Resource path of a tile or entry bundle, e.g. ``tile/0/x001/234/067.p/5``."""
    if tile.inner:
        return f"inner/{tile.level}/{encode_index(tile.index)}"
    level = "entries" if tile.is_entries else str(tile.level)
    suffix = f".p/{tile.width}" if tile.is_partial else ""
    return f"tile/{level}/{encode_index(tile.index)}{suffix}"


_PATH_RE = re.compile(
    r"tile/(?P<level>entries|0|[1-9][0-9]?)/(?P<n>(?:x[0-9]{3}/)*[0-9]{3})"
    r"(?:\.p/(?P<w>[1-9][0-9]{0,2}))?"
)


def parse_tile_path(path: str) -> TileId:
    """Parse ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``.

    Raises:
        TilePathError: not a canonical tlog-tiles path (leading zeros, bad width, ...).
    """
    if len(path) > 128:
        raise TilePathError("tile path too long", reason="oversize")
    m = _PATH_RE.fullmatch(path)
    if m is None:
        raise TilePathError(f"not a tlog-tiles path: {path!r}", reason="bad_path")
    level_s = m["level"]
    level = ENTRIES_LEVEL if level_s == "entries" else int(level_s)
    index = int(m["n"].replace("x", "").replace("/", ""))
    width = int(m["w"]) if m["w"] else TILE_WIDTH
    if m["w"] and width >= TILE_WIDTH:
        raise TilePathError(f"partial width {width} must be below 256", reason="bad_width")
    tile = TileId(level, index, width)
    if tile_path(tile) != path:  # rejects non-canonical index groups such as x000/001
        raise TilePathError(f"non-canonical tile path {path!r}", reason="bad_path")
    return tile


def partial_width(tree_size: int, level: int) -> int:
    """Width of the partial tile at tile level ``level`` (0 if there is none)."""
    return (tree_size >> (TILE_HEIGHT * level)) % TILE_WIDTH


def tiles_for_size(tree_size: int, level: int, start: int = 0) -> Iterator[TileId]:
    """Every tile of a tile level for a tree of ``tree_size``, from tile ``start`` on."""
    count = tree_size >> (TILE_HEIGHT * level)
    full, width = divmod(count, TILE_WIDTH)
    for n in range(start, full):
        yield TileId(level, n)
    if width and start <= full:
        yield TileId(level, full, width)


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Concatenate entries, each prefixed by its big-endian uint16 length.

    Raises:
        InputTooLargeError: an entry is longer than 65,535 bytes.
    """
    out = bytearray()
    for e in entries:
        if len(e) > MAX_ENTRY_BYTES:
            raise InputTooLargeError("log entry", size_bytes=len(e), limit_bytes=MAX_ENTRY_BYTES)
        out += struct.pack(">H", len(e))
        out += e
    return bytes(out)


def parse_entry_bundle(data: bytes, *, width: int = TILE_WIDTH) -> list[bytes]:
    """Split an entry bundle into its entries; exactly ``width`` entries must be present.

    Raises:
        MalformedBundleError: truncated entry, trailing bytes or wrong entry count.
    """
    entries: list[bytes] = []
    pos = 0
    n = len(data)
    while pos < n:
        if pos + 2 > n:
            raise MalformedBundleError("truncated entry length", reason="truncated")
        (length,) = struct.unpack_from(">H", data, pos)
        pos += 2
        if pos + length > n:
            raise MalformedBundleError("truncated entry", reason="truncated")
        entries.append(data[pos : pos + length])
        pos += length
        if len(entries) > width:
            break
    if len(entries) != width:
        raise MalformedBundleError(
            f"entry bundle holds {len(entries)} entries, expected {width}", reason="wrong_width"
        )
    return entries
