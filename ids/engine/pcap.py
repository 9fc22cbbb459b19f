"""Capture file reader: classic pcap (both byte orders, micro- and nanosecond) and pcapng.

Invariants:
- Reading never raises on a damaged record: a file that ends mid-record, or a record whose
  length field is bogus (larger than `MAX_RECORD_BYTES`), ends the iteration and is counted
  in `truncated_records` / `bogus_records`. Only an unrecognised file header raises
  `PcapFormatError`.
- Records are yielded as `(ts, linktype, data)` with `ts` in seconds (float, microsecond
  precision) and `linktype` the LINKTYPE_* number of the record's interface.
- The file is read in bounded chunks; memory does not grow with the file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

from ids.engine.errors import PcapFormatError

MAX_RECORD_BYTES = 262_144 + 64
"""Largest record length accepted (Suricata's and libpcap's maximum snaplen plus slack)."""

_CHUNK = 1 << 20
_PCAP_MAGIC_US = 0xA1B2C3D4
_PCAP_MAGIC_NS = 0xA1B23C4D
_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_BOM = 0x1A2B3C4D
_MAX_BLOCK_BYTES = MAX_RECORD_BYTES + 4096

Record = tuple[float, int, bytes]


class _Buffered:
    """A forward-only window over a binary stream, read in chunks."""

    __slots__ = ("buf", "eof", "pos", "stream")

    def __init__(self, stream: BinaryIO, initial: bytes) -> None:
        self.stream = stream
        self.buf = initial
        self.pos = 0
        self.eof = False

    def ensure(self, n: int) -> bool:
        """Make `n` bytes available at `pos`; False when the stream ends first."""
        while len(self.buf) - self.pos < n:
            if self.eof:
                return False
            more = self.stream.read(max(_CHUNK, n))
            if not more:
                self.eof = True
                return False
            self.buf = self.buf[self.pos :] + more
            self.pos = 0
        return True

    def remaining(self) -> int:
        return len(self.buf) - self.pos


class PcapReader:
    """Iterate the records of a pcap or pcapng stream.

    Counters after (or during) iteration: `records`, `truncated_records`, `bogus_records`,
    `skipped_blocks` (pcapng blocks that carry no packet).

    Raises:
        PcapFormatError: the stream does not start with a pcap or pcapng header.
    """

    def __init__(self, stream: BinaryIO, name: str | None = None) -> None:
        self.name = name
        self.records = 0
        self.truncated_records = 0
        self.bogus_records = 0
        self.skipped_blocks = 0
        head = stream.read(24)
        if len(head) < 4:
            raise PcapFormatError("file too short for a capture header", name)
        self._io = _Buffered(stream, head)
        magic_le = struct.unpack_from("<I", head)[0]
        magic_be = struct.unpack_from(">I", head)[0]
        self.format: str
        self._endian = "<"
        self._ns = False
        self._linktype = 1
        if magic_le == _PCAPNG_SHB:
            self.format = "pcapng"
        elif magic_le in (_PCAP_MAGIC_US, _PCAP_MAGIC_NS) or magic_be in (
            _PCAP_MAGIC_US,
            _PCAP_MAGIC_NS,
        ):
            self.format = "pcap"
            if len(head) < 24:
                raise PcapFormatError("truncated pcap global header", name)
            self._endian = "<" if magic_le in (_PCAP_MAGIC_US, _PCAP_MAGIC_NS) else ">"
            magic = magic_le if self._endian == "<" else magic_be
            self._ns = magic == _PCAP_MAGIC_NS
            self._linktype = struct.unpack_from(self._endian + "I", head, 20)[0] & 0x0FFFFFFF
            self._io.pos = 24
        else:
            raise PcapFormatError(f"unknown capture magic 0x{magic_be:08x}", name)

    @property
    def linktype(self) -> int:
        """Link type of the (first) interface."""
        return self._linktype

    def __iter__(self) -> Iterator[Record]:
        if self.format == "pcap":
            return self._iter_pcap()
        return self._iter_pcapng()

    def _iter_pcap(self) -> Iterator[Record]:
        io = self._io
        hdr = struct.Struct(self._endian + "IIII")
        div = 1e9 if self._ns else 1e6
        linktype = self._linktype
        while True:
            if not io.ensure(16):
                if io.remaining():
                    self.truncated_records += 1
                return
            sec, frac, incl, _orig = hdr.unpack_from(io.buf, io.pos)
            if incl > MAX_RECORD_BYTES:
                self.bogus_records += 1
                return
            if not io.ensure(16 + incl):
                self.truncated_records += 1
                return
            start = io.pos + 16
            data = io.buf[start : start + incl]
            io.pos = start + incl
            self.records += 1
            ts = sec + (frac // 1000) / 1e6 if self._ns else sec + frac / div
            yield ts, linktype, data

    def _iter_pcapng(self) -> Iterator[Record]:
        io = self._io
        endian = "<"
        interfaces: list[tuple[int, float, int]] = []  # (linktype, ticks per second, snaplen)
        while True:
            if not io.ensure(12):
                if io.remaining():
                    self.truncated_records += 1
                return
            btype_le = struct.unpack_from("<I", io.buf, io.pos)[0]
            if btype_le == _PCAPNG_SHB:
                bom = struct.unpack_from("<I", io.buf, io.pos + 8)[0]
                endian = "<" if bom == _PCAPNG_BOM else ">"
                interfaces = []
            btype, blen = struct.unpack_from(endian + "II", io.buf, io.pos)
            if blen < 12 or blen % 4 or blen > _MAX_BLOCK_BYTES:
                self.bogus_records += 1
                return
            if not io.ensure(blen):
                self.truncated_records += 1
                return
            body = io.buf[io.pos + 8 : io.pos + blen - 4]
            io.pos += blen
            if btype == 1 and len(body) >= 8:
                interfaces.append(_parse_idb(body, endian))
                if len(interfaces) == 1:
                    self._linktype = interfaces[0][0]
            elif btype == 6 and len(body) >= 20:
                ifid, ts_hi, ts_lo, caplen, _orig = struct.unpack_from(endian + "IIIII", body)
                if ifid >= len(interfaces) or caplen > len(body) - 20:
                    self.bogus_records += 1
                    continue
                lt, ticks, _snap = interfaces[ifid]
                ts_ticks = (ts_hi << 32) | ts_lo
                ts = _ticks_to_seconds(ts_ticks, ticks)
                self.records += 1
                yield ts, lt, body[20 : 20 + caplen]
            elif btype == 3 and len(body) >= 4:
                orig = struct.unpack_from(endian + "I", body)[0]
                if not interfaces:
                    self.bogus_records += 1
                    continue
                lt, _ticks, snap = interfaces[0]
                caplen = min(orig, snap or orig, len(body) - 4)
                self.records += 1
                yield 0.0, lt, body[4 : 4 + caplen]
            elif btype != _PCAPNG_SHB:
                self.skipped_blocks += 1


def _ticks_to_seconds(ticks: int, per_second: float) -> float:
    """Convert interface ticks to seconds, keeping microsecond precision exact."""
    if per_second == 1e6:
        return ticks / 1e6
    sec, rem = divmod(ticks, int(per_second)) if per_second >= 1 else (0, 0)
    return sec + int(rem * 1e6 // per_second) / 1e6


def _parse_idb(body: bytes, endian: str) -> tuple[int, float, int]:
    """Parse an Interface Description Block body: (linktype, ticks per second, snaplen)."""
    linktype, _reserved, snaplen = struct.unpack_from(endian + "HHI", body)
    ticks = 1e6
    off = 8
    while off + 4 <= len(body):
        code, olen = struct.unpack_from(endian + "HH", body, off)
        if code == 0:
            break
        if code == 9 and olen >= 1 and off + 5 <= len(body):
            res = body[off + 4]
            ticks = float(2 ** (res & 0x7F)) if res & 0x80 else float(10 ** (res & 0x7F))
        off += 4 + ((olen + 3) & ~3)
    return linktype, ticks, snaplen


def read_pcap(path: str) -> Iterator[Record]:
    """Yield the records of the capture file at `path` (see `PcapReader`).

    Raises:
        PcapFormatError: the file is not a pcap or pcapng file.
        OSError: the file cannot be opened.
    """
    with open(path, "rb") as f:
        yield from PcapReader(f, path)
