"""The node agent's element sensor: watch the node's own tasks, send signed telemetry.

:class:`ElementReporter` runs beside the agent's loops. Every ``interval_s`` while the
agent runs tasks (or ended one in the last ``linger_s``), it collects a
``ids.layers.TelemetryRecord`` from /proc (``ProcCollector``): each task's processes (found
by the ``CNTRUST_TASK_ID`` the runner puts in their environment, so a process that left the
task's process group is still found), their CPU over the window and memory against the
task's request, files they hold open for writing (against the task's scratch dir), and the
listening sockets those processes own. It signs the record with the node's Ed25519
telemetry key (``<data_dir>/telemetry.key``, mode 0600, registered once with the
scheduler) and POSTs it to ``/v1/agent/telemetry``; the scheduler verifies and detects.

Scope, by design: only sockets owned by the agent's task processes are reported — the
agent cannot tell the host's own services (or other agents on a shared machine) from
intruders without an expected-ports list, so a host-wide listener audit is left to the
operator. The agent opens no inbound port (pull only), so it sees no authentication
failures against itself; ``auth_failures`` stays empty.

Sequence numbers are the collection time in epoch milliseconds (strictly increasing, so a
restarted agent never repeats one).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ids.layers import (
    FileWrite,
    ProcCollector,
    ProcessSample,
    TaskUsage,
    TelemetryRecord,
    encode_signed_telemetry,
    sign_telemetry,
)

log = logging.getLogger("cntrust.agent.element")

KEY_FILE = "telemetry.key"
TASK_ENV = b"CNTRUST_TASK_ID="


@dataclass
class _Known:
    task_id: str
    cpu: float
    memory_mb: int
    scratch_dir: str
    ended_at: float | None = None


def load_or_create_key(data_dir: Path) -> Ed25519PrivateKey:
    """The node's telemetry signing key (created 0600 on first use)."""
    path = data_dir / KEY_FILE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 key")
        return key
    key = Ed25519PrivateKey.generate()
    data_dir.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return key


def public_key_text(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class ElementReporter:
    """Collect, sign and ship element telemetry for one agent (see the module docstring)."""

    def __init__(
        self,
        data_dir: Path,
        scratch_root: Path,
        *,
        interval_s: float = 2.0,
        linger_s: float = 30.0,
        node_ip: str = "127.0.0.1",
        proc_root: Path = Path("/proc"),
        clock: Callable[[], float] = time.time,
        measure: Callable[[], str] | None = None,
        measure_interval_s: float = 10.0,
    ) -> None:
        self.data_dir = data_dir
        # the agent's own measurement (digest of its code as on disk now): the first one is
        # what it started, and attested, with; a change while it runs is drift, reported
        # within measure_interval_s (before the next attestation round)
        self.measure = measure
        self.measure_interval_s = measure_interval_s
        self.attested_digest = ""
        self._measured: tuple[float, str] = (float("-inf"), "")
        self._reported_digest = ""
        self.scratch_root = scratch_root
        # resolved once: the runner puts the same real path in each task's TMPDIR
        self._real_scratch_root = os.path.realpath(scratch_root)
        self.interval_s = interval_s
        self.linger_s = linger_s
        self.node_ip = node_ip
        self.clock = clock
        self.proc_root = proc_root
        self.key = load_or_create_key(data_dir)
        self.collector = ProcCollector(
            clock_ms=lambda: int(self.clock() * 1000), proc_root=proc_root
        )
        self.tasks: dict[str, _Known] = {}
        self._history: dict[str, tuple[int, int, int]] = {}  # task -> cpu_ms, output, at_ms
        self.sent = 0
        self.refused = 0
        self.last_seq = 0
        self._registered = False

    # -- what the agent tells it ----------------------------------------------------------
    def task_started(self, task_id: str, cpu: float, memory_mb: int) -> None:
        scratch = os.path.join(self._real_scratch_root, task_id)
        self.tasks[task_id] = _Known(task_id, cpu, memory_mb, scratch)

    def task_ended(self, task_id: str) -> None:
        known = self.tasks.get(task_id)
        if known is not None:
            known.ended_at = self.clock()

    # -- collection -----------------------------------------------------------------------
    def _task_pids(self) -> dict[str, list[int]]:
        """Processes of our tasks: their environment carries one of our tasks' ids and that
        task's scratch dir as TMPDIR (set by the runner). Several agents on one machine
        can run the same task id (a requeued task still winding down on one node while it
        runs on another); each agent claims only the processes it started."""
        wanted = {t.encode(): k.scratch_dir.encode() for t, k in self.tasks.items()}
        found: dict[str, list[int]] = {}
        if not wanted:
            return found
        for pid in self.collector.pids():
            try:
                environ = (self.proc_root / str(pid) / "environ").read_bytes()
            except OSError:
                continue
            task = tmpdir = None
            for item in environ.split(b"\0"):
                if item.startswith(TASK_ENV):
                    task = item[len(TASK_ENV) :]
                elif item.startswith(b"TMPDIR="):
                    tmpdir = item[7:]
            if task is not None and task in wanted and tmpdir == wanted[task]:
                found.setdefault(task.decode(), []).append(pid)
        return found

    def collect(self, node_id: str) -> TelemetryRecord | None:
        """One record about our tasks now, or None when there is nothing to watch.

        A task's processes are those carrying its id in their environment (one /proc scan
        per collection, whatever the number of tasks); CPU use is over the window since
        the previous collection that saw the task."""
        now = self.clock()
        now_ms = int(now * 1000)
        for task_id, known in list(self.tasks.items()):
            if known.ended_at is not None and now - known.ended_at > self.linger_s:
                del self.tasks[task_id]
                self._history.pop(task_id, None)
        measured = self._measurement(now)
        drifted = bool(self.attested_digest) and measured != self._reported_digest
        if not self.tasks and not drifted:
            return None
        pids = self._task_pids()
        processes: list[ProcessSample] = []
        usages: list[TaskUsage] = []
        writes: list[FileWrite] = []
        for known in self.tasks.values():
            found = sorted(pids.get(known.task_id, ()))
            if known.ended_at is not None and not found:
                continue  # ended and nothing left behind
            samples = [s for s in (self.collector.process(p, known.task_id) for p in found) if s]
            cpu_ms = sum(s.cpu_ms for s in samples)
            try:
                output = (Path(known.scratch_dir) / ".stdout").stat().st_size
            except OSError:
                output = 0
            prev = self._history.get(known.task_id)
            self._history[known.task_id] = (cpu_ms, output, now_ms)
            processes.extend(samples)
            for sample in samples:
                writes.extend(
                    FileWrite(known.task_id, sample.pid, path)
                    for path in self.collector.open_for_write(sample.pid)
                )
            usages.append(
                TaskUsage(
                    task_id=known.task_id,
                    state="ended" if known.ended_at is not None else "running",
                    scratch_dir=known.scratch_dir,
                    cpu_request_millicores=max(1, int(known.cpu * 1000)),
                    memory_request_bytes=known.memory_mb * 1024 * 1024,
                    window_ms=max(0, now_ms - prev[2]) if prev else 0,
                    cpu_ms_in_window=max(0, cpu_ms - prev[0]) if prev else 0,
                    rss_bytes=sum(s.rss_bytes for s in samples),
                    output_bytes_in_window=max(0, output - prev[1]) if prev else 0,
                    pids=tuple(s.pid for s in samples),
                )
            )
        if not usages and not drifted:
            return None
        self._reported_digest = measured
        task_pids = [s.pid for s in processes]
        owned = set(task_pids)
        listening = tuple(
            sock for sock in self.collector.listening_sockets(pids=task_pids) if sock.pid in owned
        )
        seq = max(now_ms, self.last_seq + 1)
        self.last_seq = seq
        return TelemetryRecord(
            node_id=node_id,
            node_ip=self.node_ip,
            seq=seq,
            collected_at_ms=now_ms,
            listening=listening,
            processes=tuple(processes),
            tasks=tuple(usages),
            file_writes=tuple(writes),
            attested_digest=self.attested_digest,
            measurement_digest=measured,
        )

    def _measurement(self, now: float) -> str:
        """The agent's measurement, re-read at most every ``measure_interval_s``."""
        if self.measure is None:
            return ""
        at, digest = self._measured
        if now - at >= self.measure_interval_s:
            try:
                digest = self.measure()
            except Exception as exc:
                log.warning("agent measurement failed: %s", exc)
                digest = "unmeasurable"
            self._measured = (now, digest)
            if not self.attested_digest:
                self.attested_digest = self._reported_digest = digest
        return digest

    def signed_body(self, record: TelemetryRecord) -> bytes:
        return encode_signed_telemetry(sign_telemetry(record, self.key))

    # -- shipping -------------------------------------------------------------------------
    async def _register(self, client: httpx.AsyncClient, headers: dict[str, str]) -> bool:
        resp = await client.post(
            "/v1/agent/telemetry-key",
            json={"public_key": public_key_text(self.key)},
            headers=headers,
        )
        if resp.status_code in (200, 201):
            self._registered = True
        else:
            log.warning("telemetry key refused: %s %s", resp.status_code, resp.text[:200])
        return self._registered

    async def report_once(
        self, client: httpx.AsyncClient, node_id: str, headers: dict[str, str]
    ) -> int | None:
        """Collect and send one record; the HTTP status, or None when nothing was sent."""
        if not self._registered and not await self._register(client, headers):
            return None
        record = await asyncio.to_thread(self.collect, node_id)
        if record is None:
            return None
        resp = await client.post(
            "/v1/agent/telemetry",
            content=self.signed_body(record),
            headers={**headers, "Content-Type": "application/json"},
        )
        if resp.status_code == 200:
            self.sent += 1
        else:
            self.refused += 1
            log.warning("telemetry refused: %s %s", resp.status_code, resp.text[:200])
        return resp.status_code

    async def run(
        self,
        client: httpx.AsyncClient,
        node_id: Callable[[], str | None],
        headers: Callable[[], dict[str, str]],
        stop: asyncio.Event,
    ) -> None:
        """Report every ``interval_s`` until ``stop`` is set; errors are logged, never fatal."""
        while not stop.is_set():
            name = node_id()
            if name is not None:
                try:
                    await self.report_once(client, name, headers())
                except (httpx.HTTPError, OSError, ValueError) as exc:
                    log.warning("telemetry not sent: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
