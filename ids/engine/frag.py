"""IP fragment reassembly (IPv4, and IPv6 fragment headers) with overlap handling and
bounded memory.

Invariants:
- Overlap policy is "first": bytes already received win over later overlapping bytes
  (deterministic; every overlap is counted as an `ipv4.frag_overlap` event, and an overlap
  whose bytes differ as `ipv4.frag_overlap_conflict`; `ipv6.` for IPv6 datagrams).
- At most `max_trackers` datagrams are in reassembly and at most `max_bytes` buffered in
  total; the oldest tracker is evicted first (`ipv4.frag_evicted`). A tracker older than
  `timeout_s` is discarded (`ipv4.frag_timeout`).
- A datagram larger than 65,535 bytes is rejected (`ipv4.frag_too_large`).
"""

from __future__ import annotations

from collections import OrderedDict

MAX_DATAGRAM = 65_535

FragKey = tuple[bytes, bytes, int, int]


class _Tracker:
    __slots__ = ("first_ts", "frags", "header", "size", "total")

    def __init__(self, ts: float) -> None:
        self.first_ts = ts
        self.frags: list[tuple[int, bytes]] = []
        self.header = b""
        self.total = -1
        self.size = 0


class Defragmenter:
    """Reassemble IPv4 fragments; `add` returns the whole datagram once complete."""

    def __init__(
        self,
        events: dict[str, int],
        max_trackers: int = 4096,
        max_bytes: int = 32 * 1024 * 1024,
        timeout_s: float = 60.0,
    ) -> None:
        self.events = events
        self.max_trackers = max_trackers
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._trackers: OrderedDict[FragKey, _Tracker] = OrderedDict()
        self._bytes = 0

    @property
    def buffered_bytes(self) -> int:
        """Bytes currently held in unfinished datagrams."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._trackers)

    def _event(self, name: str, key: FragKey | None = None) -> None:
        if key is not None and len(key[0]) == 16:
            name = "ipv6" + name[4:]
        self.events[name] = self.events.get(name, 0) + 1

    def _drop(self, key: FragKey) -> None:
        tr = self._trackers.pop(key)
        self._bytes -= tr.size

    def _expire(self, ts: float) -> None:
        trackers = self._trackers
        while trackers:
            key, tr = next(iter(trackers.items()))
            if ts - tr.first_ts <= self.timeout_s:
                break
            self._drop(key)
            self._event("ipv4.frag_timeout", key)

    def add(
        self, key: FragKey, ts: float, header: bytes, offset: int, more: bool, data: bytes
    ) -> tuple[bytes, bytes] | None:
        """Add one fragment (`offset` in bytes). Returns (first header, payload) when whole."""
        self._expire(ts)
        end = offset + len(data)
        if end > MAX_DATAGRAM:
            self._event("ipv4.frag_too_large", key)
            if key in self._trackers:
                self._drop(key)
            return None
        tr = self._trackers.get(key)
        if tr is None:
            while len(self._trackers) >= self.max_trackers or (
                self._trackers and self._bytes + len(data) > self.max_bytes
            ):
                victim = next(iter(self._trackers))
                self._drop(victim)
                self._event("ipv4.frag_evicted", victim)
            tr = _Tracker(ts)
            self._trackers[key] = tr
        if offset == 0:
            tr.header = header
        if not more:
            if tr.total >= 0 and tr.total != end:
                self._event("ipv4.frag_inconsistent_end", key)
            if tr.total < 0:
                tr.total = end
        for off, frag in tr.frags:
            fend = off + len(frag)
            if off < end and offset < fend:
                self._event("ipv4.frag_overlap", key)
                lo, hi = max(off, offset), min(fend, end)
                if frag[lo - off : hi - off] != data[lo - offset : hi - offset]:
                    self._event("ipv4.frag_overlap_conflict", key)
        tr.frags.append((offset, data))
        tr.size += len(data)
        self._bytes += len(data)
        while self._bytes > self.max_bytes and self._trackers:
            oldest = next(iter(self._trackers))
            self._drop(oldest)
            self._event("ipv4.frag_evicted", oldest)
            if oldest == key:
                return None
        if tr.total < 0 or not tr.header:
            return None
        return self._try_assemble(key, tr)

    def _try_assemble(self, key: FragKey, tr: _Tracker) -> tuple[bytes, bytes] | None:
        covered = 0
        for off, frag in sorted(tr.frags):
            if off > covered:
                return None
            covered = max(covered, off + len(frag))
        if covered < tr.total:
            return None
        buf = bytearray(tr.total)
        for off, frag in reversed(tr.frags):  # earliest arrival written last: first bytes win
            end = min(off + len(frag), tr.total)
            if off < end:
                buf[off:end] = frag[: end - off]
        self._drop(key)
        return tr.header, bytes(buf)
