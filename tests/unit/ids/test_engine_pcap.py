"""Capture reader: classic pcap (both byte orders, ns), pcapng blocks, damaged files."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from ids.engine import PcapFormatError, PcapReader, read_pcap, scan_pcap

FRAME = bytes(range(60))


def classic(records: list[tuple[int, int, bytes]], endian: str = "<", ns: bool = False) -> bytes:
    magic = 0xA1B23C4D if ns else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    for sec, frac, data in records:
        out += struct.pack(endian + "IIII", sec, frac, len(data), len(data)) + data
    return out


def block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    total = len(body) + 12
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def pcapng(tsresol: int | None = None) -> bytes:
    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = b""
    if tsresol is not None:
        opts = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HH", 0, 0)
    idb = block(1, struct.pack("<HHI", 1, 0, 65535) + opts)
    ticks = 1_600_000_000_250_000 if tsresol is None else 1_600_000_000_250_000_000
    epb = block(6, struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, 60, 60) + FRAME)
    spb = block(3, struct.pack("<I", 60) + FRAME)
    custom = block(0xBAD, b"abcd")
    return shb + idb + epb + spb + custom


@pytest.mark.parametrize("endian", ["<", ">"])
def test_classic_pcap_both_byte_orders(endian: str) -> None:
    data = classic([(1_600_000_000, 250_000, FRAME), (1_600_000_001, 0, FRAME[:20])], endian)
    reader = PcapReader(io.BytesIO(data))
    recs = list(reader)
    assert [(ts, lt, len(d)) for ts, lt, d in recs] == [
        (1_600_000_000.25, 1, 60),
        (1_600_000_001.0, 1, 20),
    ]
    assert reader.records == 2 and reader.truncated_records == 0


def test_nanosecond_pcap_keeps_microseconds() -> None:
    data = classic([(1_600_000_000, 123_456_789, FRAME)], ns=True)
    [(ts, _lt, _d)] = list(PcapReader(io.BytesIO(data)))
    assert ts == pytest.approx(1_600_000_000.123456, abs=1e-7)


def test_pcap_ending_mid_record_is_counted_not_raised() -> None:
    data = classic([(1, 0, FRAME), (2, 0, FRAME)])[:-10]
    reader = PcapReader(io.BytesIO(data))
    assert len(list(reader)) == 1
    assert reader.truncated_records == 1


def test_pcap_ending_mid_record_header_is_counted() -> None:
    data = classic([(1, 0, FRAME)]) + b"\x01\x02\x03"
    reader = PcapReader(io.BytesIO(data))
    assert len(list(reader)) == 1
    assert reader.truncated_records == 1


def test_bogus_record_length_stops_and_is_counted() -> None:
    data = classic([(1, 0, FRAME)]) + struct.pack("<IIII", 2, 0, 10_000_000, 60) + FRAME
    reader = PcapReader(io.BytesIO(data))
    assert len(list(reader)) == 1
    assert reader.bogus_records == 1


@pytest.mark.parametrize("data", [b"", b"\x00\x01", b"GIF89a" + b"\0" * 40])
def test_unknown_header_raises_pcap_format_error(data: bytes) -> None:
    with pytest.raises(PcapFormatError):
        PcapReader(io.BytesIO(data))


def test_pcapng_enhanced_and_simple_blocks() -> None:
    reader = PcapReader(io.BytesIO(pcapng()))
    recs = list(reader)
    assert reader.format == "pcapng"
    assert [(lt, d) for _ts, lt, d in recs] == [(1, FRAME), (1, FRAME)]
    assert recs[0][0] == pytest.approx(1_600_000_000.25)
    assert reader.skipped_blocks == 1


def test_pcapng_nanosecond_resolution_option() -> None:
    recs = list(PcapReader(io.BytesIO(pcapng(tsresol=9))))
    assert recs[0][0] == pytest.approx(1_600_000_000.25)


def test_pcapng_truncated_block_is_counted() -> None:
    data = pcapng()[:-30]
    reader = PcapReader(io.BytesIO(data))
    list(reader)
    assert reader.truncated_records == 1


def test_scan_reports_truncated_records(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    path.write_bytes(classic([(1, 0, FRAME), (2, 0, FRAME)])[:-5])
    scan = scan_pcap([str(path)], "")
    assert list(scan) == []
    assert scan.stats.truncated_records == 1
    assert scan.stats.packets == 1


def test_read_pcap_path(tmp_path: Path) -> None:
    path = tmp_path / "a.pcap"
    path.write_bytes(classic([(5, 0, FRAME)]))
    assert [d for _t, _l, d in read_pcap(str(path))] == [FRAME]
