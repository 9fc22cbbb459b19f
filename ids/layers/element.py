"""Network-element layer: per-node detections over (verified) telemetry records.

`detect_element(record, config, previous)` returns EVE alerts with ``cntrust.layer ==
"element"`` and ``cntrust.node_id == record.node_id``:

- ``ids.element.measurement_drift``: the measurement digest differs from the one appraised
  at the last attestation, or from the previous record's.
- ``ids.element.unexpected_listener``: a listening socket on a port that is neither in
  the node's `expected_listen_ports` nor allowed to a running task that owns it.
- ``ids.element.leftover_process``: a process (or a listener's owner) belongs to a task
  that has ended.
- ``ids.element.write_outside_scratch``: a task's process writes a file outside its
  scratch directory (and outside `allowed_write_paths`, e.g. /dev/null).
- ``ids.element.resource_overuse``: CPU or memory use above the request by more than the
  tolerance.
- ``ids.element.mining_suspected``: CPU near the request for at least
  `mining_min_window_ms` with no output at all.
- ``ids.element.auth_failures``: at least `min_auth_failures` failures from one source
  (or in total) within `auth_window_ms` before the record's time.

Invariants: pure and deterministic (no clock: the record's `collected_at_ms` is the
event time); alert order follows the list above, then record order.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ids.layers import catalog
from ids.layers.catalog import DetectionInfo
from ids.layers.errors import LayersConfigError
from ids.layers.eve import make_alert
from ids.layers.packets import PROTO_TCP, PROTO_UDP
from ids.layers.telemetry import TelemetryRecord
from ids.layers.windows import require_positive


@dataclass(frozen=True)
class ElementConfig:
    """Thresholds and expectations for `detect_element`; raises `LayersConfigError`."""

    expected_listen_ports: frozenset[int] = frozenset({22, 7443})
    allowed_write_paths: tuple[str, ...] = ("/dev/null", "/dev/pts", "/dev/tty")
    cpu_tolerance: float = 0.25
    memory_tolerance: float = 0.25
    mining_cpu_fraction: float = 0.9
    mining_min_window_ms: int = 300_000
    min_auth_failures: int = 5
    auth_window_ms: int = 300_000

    def __post_init__(self) -> None:
        for name in ("mining_min_window_ms", "min_auth_failures", "auth_window_ms"):
            require_positive(name, getattr(self, name))
        for name in ("cpu_tolerance", "memory_tolerance"):
            if getattr(self, name) < 0:
                raise LayersConfigError(name, getattr(self, name), "must be >= 0")
        if not 0 < self.mining_cpu_fraction <= 1:
            raise LayersConfigError(
                "mining_cpu_fraction", self.mining_cpu_fraction, "must be in (0, 1]"
            )


@dataclass
class _Out:
    record: TelemetryRecord
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def emit(
        self,
        info: DetectionInfo,
        reasons: list[str],
        *,
        src_ip: str | None = None,
        dest_port: int | None = None,
        proto: int = 0,
        extra: dict[str, Any] | None = None,
    ) -> None:
        rec = self.record
        self.alerts.append(
            make_alert(
                ts=rec.collected_at_ms / 1000,
                src_ip=src_ip or rec.node_ip,
                dest_ip=rec.node_ip,
                proto=proto,
                src_port=0 if dest_port is not None else None,
                dest_port=dest_port,
                signature_id=info.signature_id,
                signature=info.signature,
                category=info.category,
                severity=info.severity,
                layer="element",
                node_id=rec.node_id,
                detection=info.detection,
                reasons=reasons,
                extra={"telemetry_seq": rec.seq, **(extra or {})},
            )
        )


def _drift(out: _Out, previous: TelemetryRecord | None) -> None:
    rec = out.record
    reasons = []
    if rec.attested_digest and rec.measurement_digest != rec.attested_digest:
        reasons.append(
            f"measurement_digest={rec.measurement_digest or '<none>'} != "
            f"attested_digest={rec.attested_digest}"
        )
    if (
        previous is not None
        and previous.measurement_digest
        and rec.measurement_digest != previous.measurement_digest
    ):
        reasons.append(
            f"measurement_digest changed since seq {previous.seq}: "
            f"{previous.measurement_digest} -> {rec.measurement_digest or '<none>'}"
        )
    if reasons:
        out.emit(catalog.MEASUREMENT_DRIFT, reasons)


def _listeners_and_leftovers(out: _Out, cfg: ElementConfig) -> None:
    rec = out.record
    task_of_pid = {p.pid: p.task_id for p in rec.processes if p.task_id}
    for usage in rec.tasks:
        for pid in usage.pids:
            task_of_pid.setdefault(pid, usage.task_id)
    tasks = {t.task_id: t for t in rec.tasks}
    for sock in rec.listening:
        task_id = task_of_pid.get(sock.pid, "") if sock.pid else ""
        task = tasks.get(task_id)
        proto = PROTO_UDP if sock.proto.startswith("udp") else PROTO_TCP
        where = f"{sock.proto} {sock.address}:{sock.port} (pid {sock.pid or 'unknown'})"
        if task is not None and task.state == "ended":
            out.emit(
                catalog.LEFTOVER_PROCESS,
                [f"{where} is owned by task {task_id}, which has ended"],
                dest_port=sock.port,
                proto=proto,
                extra={"task_id": task_id, "pid": sock.pid},
            )
            continue
        if sock.port in cfg.expected_listen_ports:
            continue
        if task is not None and sock.port in task.allowed_ports:
            continue
        owner = f"task {task_id}" if task is not None else "no task"
        out.emit(
            catalog.UNEXPECTED_LISTENER,
            [f"{where} listens; port not in expected_listen_ports; owner: {owner}"],
            dest_port=sock.port,
            proto=proto,
            extra={"task_id": task_id, "pid": sock.pid},
        )
    for proc in rec.processes:
        owner_task = tasks.get(proc.task_id)
        if owner_task is not None and owner_task.state == "ended":
            out.emit(
                catalog.LEFTOVER_PROCESS,
                [f"process {proc.pid} ({proc.name}) of task {proc.task_id} runs after it ended"],
                extra={"task_id": proc.task_id, "pid": proc.pid},
            )


def _inside(path: str, directory: str) -> bool:
    """Whether `path` is `directory` or below it (after resolving ``..`` lexically)."""
    if not directory or not path.startswith("/"):
        return False
    norm = posixpath.normpath(path)
    base = posixpath.normpath(directory)
    return norm == base or norm.startswith(base.rstrip("/") + "/")


def _writes(out: _Out, cfg: ElementConfig) -> None:
    tasks = {t.task_id: t for t in out.record.tasks}
    for write in out.record.file_writes:
        task = tasks.get(write.task_id)
        scratch = task.scratch_dir if task is not None else ""
        if _inside(write.path, scratch):
            continue
        if any(_inside(write.path, allowed) for allowed in cfg.allowed_write_paths):
            continue
        out.emit(
            catalog.WRITE_OUTSIDE_SCRATCH,
            [
                f"task {write.task_id} pid {write.pid} writes {write.path}, "
                f"outside scratch_dir={scratch or '<unknown task>'}"
            ],
            extra={"task_id": write.task_id, "pid": write.pid, "path": write.path},
        )


def _resources(out: _Out, cfg: ElementConfig) -> None:
    for task in out.record.tasks:
        if task.state != "running" or task.window_ms <= 0:
            continue
        used_mc = task.cpu_ms_in_window * 1000 // task.window_ms
        reasons = []
        limit_mc = task.cpu_request_millicores * (1 + cfg.cpu_tolerance)
        if task.cpu_request_millicores and used_mc > limit_mc:
            reasons.append(
                f"cpu_millicores={used_mc} > cpu_request_millicores="
                f"{task.cpu_request_millicores} * (1 + cpu_tolerance={cfg.cpu_tolerance:g})"
            )
        mem_limit = task.memory_request_bytes * (1 + cfg.memory_tolerance)
        if task.memory_request_bytes and task.rss_bytes > mem_limit:
            reasons.append(
                f"rss_bytes={task.rss_bytes} > memory_request_bytes="
                f"{task.memory_request_bytes} * (1 + memory_tolerance={cfg.memory_tolerance:g})"
            )
        extra = {"task_id": task.task_id, "cpu_millicores": used_mc}
        if reasons:
            out.emit(catalog.RESOURCE_OVERUSE, reasons, extra=extra)
        near = task.cpu_request_millicores * cfg.mining_cpu_fraction
        if (
            task.cpu_request_millicores
            and used_mc >= near
            and task.window_ms >= cfg.mining_min_window_ms
            and task.output_bytes_in_window == 0
        ):
            out.emit(
                catalog.MINING_SUSPECTED,
                [
                    f"cpu_millicores={used_mc} >= {cfg.mining_cpu_fraction:g} * "
                    f"cpu_request_millicores={task.cpu_request_millicores}",
                    f"window_ms={task.window_ms} >= mining_min_window_ms="
                    f"{cfg.mining_min_window_ms}",
                    "output_bytes_in_window=0",
                ],
                extra=extra,
            )


def _auth(out: _Out, cfg: ElementConfig) -> None:
    rec = out.record
    since = rec.collected_at_ms - cfg.auth_window_ms
    recent = [f for f in rec.auth_failures if since <= f.ts_ms <= rec.collected_at_ms]
    by_source = Counter(f.source_ip for f in recent)
    flagged = sorted(src for src, n in by_source.items() if n >= cfg.min_auth_failures)
    for src in flagged:
        out.emit(
            catalog.AUTH_FAILURES,
            [
                f"auth_failures={by_source[src]} from {src} >= min_auth_failures="
                f"{cfg.min_auth_failures} within auth_window_ms={cfg.auth_window_ms}"
            ],
            src_ip=src if _is_ip(src) else None,
            extra={"source": src, "failures": by_source[src]},
        )
    if not flagged and len(recent) >= cfg.min_auth_failures:
        out.emit(
            catalog.AUTH_FAILURES,
            [
                f"auth_failures={len(recent)} from {len(by_source)} sources >= "
                f"min_auth_failures={cfg.min_auth_failures} within "
                f"auth_window_ms={cfg.auth_window_ms}"
            ],
            extra={"sources": sorted(by_source)[:32], "failures": len(recent)},
        )


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def detect_element(
    record: TelemetryRecord,
    config: ElementConfig | None = None,
    previous: TelemetryRecord | None = None,
) -> list[dict[str, Any]]:
    """Element-layer alerts for one node's telemetry (verify the signature first with
    `verify_telemetry`). `previous` is the node's last accepted record, if any.

    Raises `AlertFormatError` when `record.node_ip` is not an IP address.
    """
    cfg = config or ElementConfig()
    out = _Out(record)
    _drift(out, previous)
    _listeners_and_leftovers(out, cfg)
    _writes(out, cfg)
    _resources(out, cfg)
    _auth(out, cfg)
    return out.alerts
