"""Cheap OS telemetry for the node agent, read straight from Linux /proc (no psutil).

`ProcCollector.collect(...)` builds a `TelemetryRecord` from:
- /proc/net/tcp, tcp6 (state 0A = LISTEN) and udp, udp6 (state 07, no remote peer):
  listening sockets, with the owning pid found through /proc/<pid>/fd socket links;
- /proc/<pid>/stat (ppid, utime + stime) and /proc/<pid>/statm (resident pages): per
  process CPU and memory, summed over each task's process tree;
- /proc/<pid>/fd + /proc/<pid>/fdinfo (flags O_WRONLY/O_RDWR): files a task's processes
  hold open for writing.

The collector keeps the previous CPU and output totals per task, so each record carries
use over the window since the previous collection.

Invariants: processes vanishing or unreadable mid-scan are skipped (never an error); at
most `max_pids` processes and `max_fds` descriptors per process are examined; the clock is
injected.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ids.layers.telemetry import (
    AuthFailure,
    FileWrite,
    ListeningSocket,
    ProcessSample,
    TaskUsage,
    TelemetryRecord,
)

_O_ACCMODE = 0o3


@dataclass(frozen=True)
class TaskSpec:
    """What the agent knows about a task it runs: its root pids, request and scratch dir.

    `output_bytes_total` is the task's output so far (e.g. bytes written to its result).
    """

    task_id: str
    state: str
    scratch_dir: str
    root_pids: tuple[int, ...]
    cpu_request_millicores: int = 1000
    memory_request_bytes: int = 0
    allowed_ports: tuple[int, ...] = ()
    output_bytes_total: int = 0


def _hex_addr(text: str) -> str:
    """Decode a /proc/net address (little-endian 32-bit words, hex)."""
    raw = bytes.fromhex(text)
    packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(packed))


def parse_proc_net(text: str, proto: str) -> list[tuple[str, int, int]]:
    """Listening (address, port, inode) entries of one /proc/net/{tcp,tcp6,udp,udp6} text.

    Malformed lines are skipped.
    """
    want_state = "0A" if proto.startswith("tcp") else "07"
    found = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 10 or parts[3] != want_state:
            continue
        try:
            local_addr, local_port = parts[1].split(":")
            _remote_addr, remote_port = parts[2].split(":")
            if proto.startswith("udp") and int(remote_port, 16) != 0:
                continue
            found.append((_hex_addr(local_addr), int(local_port, 16), int(parts[9])))
        except ValueError:
            continue
    return found


def parse_stat(text: str) -> tuple[str, int, int]:
    """(comm, ppid, utime + stime in clock ticks) from a /proc/<pid>/stat line.

    Raises ValueError when the line is malformed.
    """
    open_paren, close_paren = text.index("("), text.rindex(")")
    comm = text[open_paren + 1 : close_paren]
    rest = text[close_paren + 2 :].split()
    # rest[0] is state (field 3); ppid is field 4; utime/stime are fields 14/15.
    return comm, int(rest[1]), int(rest[11]) + int(rest[12])


@dataclass
class _TaskHistory:
    cpu_ms: int
    output_bytes: int
    at_ms: int


@dataclass
class ProcCollector:
    """Collects telemetry from a /proc tree (the real one by default)."""

    clock_ms: Callable[[], int]
    proc_root: Path = Path("/proc")
    max_pids: int = 32_768
    max_fds: int = 4_096
    clk_tck: int = field(default_factory=lambda: os.sysconf("SC_CLK_TCK"))
    page_size: int = field(default_factory=lambda: os.sysconf("SC_PAGE_SIZE"))
    _history: dict[str, _TaskHistory] = field(default_factory=dict)

    def _read(self, *parts: str | int) -> str | None:
        try:
            return self.proc_root.joinpath(*map(str, parts)).read_text()
        except (OSError, UnicodeDecodeError):
            return None

    def pids(self) -> list[int]:
        """Process ids present now (at most `max_pids`, ascending)."""
        try:
            names = os.listdir(self.proc_root)
        except OSError:
            return []
        return sorted(int(n) for n in names if n.isdigit())[: self.max_pids]

    def _fd_targets(self, pid: int) -> Iterable[tuple[str, str]]:
        fd_dir = self.proc_root / str(pid) / "fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            return
        for fd in fds[: self.max_fds]:
            try:
                yield fd, os.readlink(fd_dir / fd)
            except OSError:
                continue

    def listening_sockets(self, pids: Sequence[int] | None = None) -> tuple[ListeningSocket, ...]:
        """Listening TCP/UDP sockets (IPv4 and IPv6), owners resolved where readable."""
        entries: list[tuple[str, str, int, int]] = []
        for proto in ("tcp", "tcp6", "udp", "udp6"):
            text = self._read("net", proto)
            if text is None:
                continue
            entries.extend((proto, *e) for e in parse_proc_net(text, proto))
        owner: dict[int, int] = {}
        for pid in self.pids() if pids is None else pids:
            for _fd, target in self._fd_targets(pid):
                if target.startswith("socket:["):
                    owner.setdefault(int(target[8:-1]), pid)
        socks = {
            ListeningSocket(proto, addr, port, inode, owner.get(inode, 0))
            for proto, addr, port, inode in entries
        }
        return tuple(sorted(socks, key=lambda s: (s.proto, s.port, s.address, s.inode)))

    def process(self, pid: int, task_id: str = "") -> ProcessSample | None:
        """One process's sample, or None when it is gone or unreadable."""
        stat, statm = self._read(pid, "stat"), self._read(pid, "statm")
        if stat is None or statm is None:
            return None
        try:
            comm, ppid, ticks = parse_stat(stat)
            resident_pages = int(statm.split()[1])
        except (ValueError, IndexError):
            return None
        cpu_ms = ticks * 1000 // self.clk_tck
        return ProcessSample(pid, ppid, comm, task_id, cpu_ms, resident_pages * self.page_size)

    def process_tree(self, roots: Iterable[int]) -> list[int]:
        """The root pids that still exist and all their descendants, ascending."""
        children: dict[int, list[int]] = {}
        alive = set()
        for pid in self.pids():
            stat = self._read(pid, "stat")
            if stat is None:
                continue
            try:
                _comm, ppid, _ticks = parse_stat(stat)
            except (ValueError, IndexError):
                continue
            alive.add(pid)
            children.setdefault(ppid, []).append(pid)
        found: set[int] = set()
        stack = [p for p in roots if p in alive]
        while stack:
            pid = stack.pop()
            if pid in found:
                continue
            found.add(pid)
            stack.extend(children.get(pid, []))
        return sorted(found)

    def open_for_write(self, pid: int) -> list[str]:
        """Absolute paths of regular files `pid` holds open with O_WRONLY or O_RDWR."""
        paths = []
        for fd, target in self._fd_targets(pid):
            if not target.startswith("/"):
                continue
            info = self._read(pid, "fdinfo", fd)
            if info is None:
                continue
            for line in info.splitlines():
                if line.startswith("flags:"):
                    try:
                        flags = int(line.split()[1], 8)
                    except (IndexError, ValueError):
                        break
                    if flags & _O_ACCMODE:
                        paths.append(target.removesuffix(" (deleted)"))
                    break
        return sorted(set(paths))

    def collect(
        self,
        *,
        node_id: str,
        node_ip: str,
        seq: int,
        tasks: Sequence[TaskSpec] = (),
        attested_digest: str = "",
        measurement_digest: str = "",
        auth_failures: Sequence[AuthFailure] = (),
    ) -> TelemetryRecord:
        """One telemetry record for this node now (sign it with `sign_telemetry`)."""
        now = self.clock_ms()
        processes: list[ProcessSample] = []
        usages: list[TaskUsage] = []
        writes: list[FileWrite] = []
        for spec in tasks:
            tree = self.process_tree(spec.root_pids)
            samples = [s for s in (self.process(pid, spec.task_id) for pid in tree) if s]
            cpu_ms = sum(s.cpu_ms for s in samples)
            rss = sum(s.rss_bytes for s in samples)
            prev = self._history.get(spec.task_id)
            window = now - prev.at_ms if prev else 0
            cpu_window = max(0, cpu_ms - prev.cpu_ms) if prev else 0
            out_window = max(0, spec.output_bytes_total - prev.output_bytes) if prev else 0
            self._history[spec.task_id] = _TaskHistory(cpu_ms, spec.output_bytes_total, now)
            processes.extend(samples)
            for s in samples:
                writes.extend(FileWrite(spec.task_id, s.pid, p) for p in self.open_for_write(s.pid))
            usages.append(
                TaskUsage(
                    task_id=spec.task_id,
                    state=spec.state,
                    scratch_dir=spec.scratch_dir,
                    cpu_request_millicores=spec.cpu_request_millicores,
                    memory_request_bytes=spec.memory_request_bytes,
                    window_ms=max(0, window),
                    cpu_ms_in_window=cpu_window,
                    rss_bytes=rss,
                    output_bytes_in_window=out_window,
                    pids=tuple(s.pid for s in samples),
                    allowed_ports=spec.allowed_ports,
                )
            )
        return TelemetryRecord(
            node_id=node_id,
            node_ip=node_ip,
            seq=seq,
            collected_at_ms=now,
            attested_digest=attested_digest,
            measurement_digest=measurement_digest,
            listening=self.listening_sockets(),
            processes=tuple(processes),
            tasks=tuple(usages),
            file_writes=tuple(writes),
            auth_failures=tuple(auth_failures),
        )
