"""Live perimeter sensor: capture packets, run the engine, ship alert batches.

The sensor is transport-agnostic: packets come from a `PacketSource` (an iterator of
`(frame_bytes, ts, linktype)`; `af_packet_source` reads a Linux raw AF_PACKET socket) and
alert batches leave through an injected `post(url, body, headers) -> status` callable, so
the library carries no HTTP client. Batches are JSON lists of EVE alert dicts POSTed to
`{server}/v1/alerts` with `Authorization: Bearer <token>`.

Invariants: alerts are shipped in order; a batch is sent when it reaches `batch_size` or
when `flush_interval_s` passed since the first alert in it; no POST body is larger than
`max_batch_bytes` (a batch is cut short by size; an alert larger than that on its own is
dropped and counted in `oversized_alerts`, as the server would refuse it for ever); a failed
POST (non-2xx status or raised OSError) is retried on the next flush, and the pending queue
is bounded by `max_pending` (oldest alerts dropped and counted in `dropped_alerts`).
"""

from __future__ import annotations

import json
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from ids.engine.engine import Engine
from ids.engine.errors import SensorError

PacketSource = Iterator[tuple[bytes, float, int]]
PostFn = Callable[[str, bytes, dict[str, str]], int]

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
MAX_FRAME = 65_535


def af_packet_source(iface: str, timeout_s: float = 0.5) -> PacketSource:
    """Yield frames captured on `iface` with a raw AF_PACKET socket (Linux, needs
    CAP_NET_RAW). Yields `(b"", now, 1)` on each idle `timeout_s` so callers can flush.

    Raises:
        SensorError: the socket cannot be opened or bound.
    """
    af_packet = getattr(socket, "AF_PACKET", None)
    if af_packet is None:
        raise SensorError("raw AF_PACKET capture needs Linux")
    try:
        sock = socket.socket(af_packet, socket.SOCK_RAW, socket.ntohs(ETH_P_ALL))
        sock.bind((iface, 0))
    except OSError as exc:
        raise SensorError(f"cannot capture on {iface!r}: {exc}") from exc
    sock.settimeout(timeout_s)
    skip_outgoing = iface == "lo"
    try:
        while True:
            try:
                frame, addr = sock.recvfrom(MAX_FRAME)
            except TimeoutError:
                yield b"", time.time(), 1
                continue
            if skip_outgoing and len(addr) > 2 and addr[2] == PACKET_OUTGOING:
                continue  # loopback: each frame is seen leaving and arriving
            yield frame, time.time(), 1
    finally:
        sock.close()


class AlertShipper:
    """Batch EVE alerts and POST them as JSON lists to `{server}/v1/alerts`."""

    def __init__(
        self,
        server: str,
        token: str | None,
        post: PostFn,
        batch_size: int = 100,
        flush_interval_s: float = 1.0,
        max_pending: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        max_batch_bytes: int = 1_048_576,
    ) -> None:
        self.url = server.rstrip("/") + "/v1/alerts"
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.post = post
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.clock = clock
        self.pending: deque[dict[str, Any]] = deque()
        self.max_pending = max_pending
        self.first_pending_at: float | None = None
        self.shipped = 0
        self.failed_posts = 0
        self.dropped_alerts = 0
        self.max_batch_bytes = max_batch_bytes
        self.oversized_alerts = 0
        self.posts = 0

    def _next_body(self) -> tuple[int, bytes]:
        """The next POST body: as many pending alerts (up to `batch_size`) as fit in
        `max_batch_bytes`, and how many that is (0: the first alert alone is too large)."""
        parts: list[bytes] = []
        size = 2  # the brackets
        for i in range(min(self.batch_size, len(self.pending))):
            part = json.dumps(self.pending[i], separators=(",", ":")).encode()
            extra = len(part) + (1 if parts else 0)
            if size + extra > self.max_batch_bytes:
                break
            parts.append(part)
            size += extra
        return len(parts), b"[" + b",".join(parts) + b"]"

    def add(self, alerts: list[dict[str, Any]]) -> None:
        """Queue alerts; send when a batch is full or old enough."""
        if alerts:
            if self.first_pending_at is None:
                self.first_pending_at = self.clock()
            self.pending.extend(alerts)
            while len(self.pending) > self.max_pending:
                self.pending.popleft()
                self.dropped_alerts += 1
        self.maybe_flush()

    def maybe_flush(self) -> None:
        """Flush if a batch is full or `flush_interval_s` elapsed since the oldest alert."""
        if not self.pending:
            return
        age = self.clock() - (self.first_pending_at or 0.0)
        if len(self.pending) >= self.batch_size or age >= self.flush_interval_s:
            self.flush()

    def flush(self) -> bool:
        """Send all pending alerts in batches; False if a POST failed (alerts kept)."""
        while self.pending:
            count, body = self._next_body()
            if count == 0:
                self.pending.popleft()
                self.oversized_alerts += 1
                continue
            try:
                status = self.post(self.url, body, dict(self.headers))
            except OSError:
                status = 0
            self.posts += 1
            if not 200 <= status < 300:
                self.failed_posts += 1
                self.first_pending_at = self.clock()
                return False
            for _ in range(count):
                self.pending.popleft()
            self.shipped += count
        self.first_pending_at = None
        return True


def run_sensor(
    engine: Engine,
    source: PacketSource,
    shipper: AlertShipper,
    max_packets: int | None = None,
    duration_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Process packets from `source` until it ends, `max_packets` real frames were seen, or
    `duration_s` elapsed; ship alerts; flush at the end. Returns the number of frames."""
    start = clock()
    frames = 0
    for frame, ts, linktype in source:
        if frame:
            frames += 1
            shipper.add(engine.process(frame, ts, linktype))
        else:
            shipper.maybe_flush()
        if max_packets is not None and frames >= max_packets:
            break
        if duration_s is not None and clock() - start >= duration_s:
            break
    shipper.flush()
    return frames
