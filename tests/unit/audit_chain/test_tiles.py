"""C2SP tlog-tiles addressing and entry bundles."""

from __future__ import annotations

import pytest

from audit_chain.errors import InputTooLargeError, MalformedBundleError, TilePathError
from audit_chain.tiles import (
    ENTRIES_LEVEL,
    TileId,
    encode_entry_bundle,
    encode_index,
    parse_entry_bundle,
    parse_tile_path,
    partial_width,
    tile_path,
    tiles_for_size,
)


@pytest.mark.parametrize(
    ("index", "encoded"),
    [(0, "000"), (7, "007"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")],
)
def test_index_encoding_matches_the_spec(index: int, encoded: str) -> None:
    assert encode_index(index) == encoded


def test_paths_round_trip() -> None:
    for tile in [
        TileId(0, 1234067),
        TileId(2, 5, 17),
        TileId(ENTRIES_LEVEL, 1000, 3),
        TileId(ENTRIES_LEVEL, 0),
        TileId(63, 0, 1),
    ]:
        assert parse_tile_path(tile_path(tile)) == tile
    assert tile_path(TileId(0, 1234067, 5)) == "tile/0/x001/x234/067.p/5"
    assert tile_path(TileId(ENTRIES_LEVEL, 3)) == "tile/entries/003"


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/1",  # not zero-padded
        "tile/00/001",  # level with a leading zero
        "tile/64/001",  # level above 63
        "tile/0/x000/001",  # non-canonical index group
        "tile/0/001.p/0",
        "tile/0/001.p/256",
        "tile/0/001.p/007",
        "tile/entries/001.p/",
        "tile/0/001/",
        "/tile/0/001",
        "tile/0/" + "x001/" * 40 + "001",
    ],
)
def test_malformed_paths_are_refused(path: str) -> None:
    with pytest.raises(TilePathError):
        parse_tile_path(path)


def test_tile_counts_for_the_spec_example_of_70000() -> None:
    level0 = list(tiles_for_size(70_000, 0))
    assert len([t for t in level0 if not t.is_partial]) == 273
    assert level0[-1] == TileId(0, 273, 112)
    assert list(tiles_for_size(70_000, 1)) == [TileId(1, 0), TileId(1, 1, 17)]
    assert list(tiles_for_size(70_000, 2)) == [TileId(2, 0, 1)]
    assert partial_width(256, 0) == 0 and partial_width(256, 1) == 1


def test_entry_bundles_round_trip_and_refuse_garbage() -> None:
    entries = [b"", b"a", b"x" * 300]
    data = encode_entry_bundle(entries)
    assert data[:2] == b"\x00\x00"
    assert parse_entry_bundle(data, width=3) == entries
    with pytest.raises(MalformedBundleError):
        parse_entry_bundle(data, width=4)
    with pytest.raises(MalformedBundleError):
        parse_entry_bundle(data[:-1], width=3)
    with pytest.raises(MalformedBundleError):
        parse_entry_bundle(data + b"\x00", width=3)
    with pytest.raises(InputTooLargeError):
        encode_entry_bundle([b"x" * 65_536])
