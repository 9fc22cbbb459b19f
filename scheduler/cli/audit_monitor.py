"""``cntrust audit monitor``: follow a provenance log and report a split view or rollback.

``cntrust audit monitor --server URL --state FILE [--log-key VKEY] [--interval S] [--once]
[--recheck-entries] [--token T]``

Each poll fetches ``/log/checkpoint``, computes the consistency proof from the tiles
(tlog-tiles has no proof endpoint), reads the entries added since the last poll and checks
that they hash to the signed root (:func:`audit_chain.monitor_poll` with a tracking
:class:`audit_chain.LogMonitor`). The state file keeps the log's verifier key, the last
verified checkpoint and the compact range of the entries seen (JSON, written atomically,
mode 0600). ``--recheck-entries`` re-reads every entry on every poll, catching an entry
changed in storage after the monitor saw it.

The first run pins the log key: ``--log-key`` when given, else the server's ``/log/key``
(trust on first use, said on stderr). Later runs refuse another key.

Exit codes: 0 every poll held (``--once``: the one poll); 1 the log misbehaved (rollback,
split view, entries that do not hash to the signed root, a forged checkpoint); 2 bad usage
(unreadable or malformed state file or key); 3 server unreachable (``--once``). On a
failure with ``--token`` the monitor also POSTs an EVE alert (signature id 9400001,
``cntrust.audit.log_misbehaved``) to the scheduler's ``/v1/alerts``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from audit_chain import (
    AuditChainError,
    InputTooLargeError,
    LogMonitor,
    MonitorState,
    NoteVerifier,
    TileNotFoundError,
    monitor_poll,
)
from audit_chain.errors import FormatError
from audit_chain.monitor import Observation

ALERT_SIGNATURE_ID = 9_400_001
ALERT_SIGNATURE = "cntrust.audit.log_misbehaved"
_MAX_STATE_FILE_BYTES = 16 * 1024
_MAX_FETCH_BYTES = 256 * 1024 * 64  # an entry bundle holds up to 256 entries

Fetch = Callable[[str], bytes]


class MonitorUsageError(Exception):
    """Bad state file or key: the monitor cannot judge anything (exit 2)."""


class ServerUnreachable(Exception):
    """The log server did not answer (exit 3)."""


def load_state(path: Path) -> tuple[str | None, MonitorState | None]:
    """(pinned log key, last verified state) from the state file; (None, None) if absent."""
    if not path.exists():
        return None, None
    try:
        if path.stat().st_size > _MAX_STATE_FILE_BYTES:
            raise MonitorUsageError(f"{path} is too large to be a monitor state file")
        obj = json.loads(path.read_bytes())
        vkey = obj["logKey"]
        state = obj.get("state")
        if not isinstance(vkey, str):
            raise MonitorUsageError(f"{path}: logKey must be a string")
        parsed = None if state is None else MonitorState.from_bytes(json.dumps(state).encode())
    except (OSError, ValueError, KeyError, TypeError, FormatError) as exc:
        raise MonitorUsageError(f"{path} is not a monitor state file: {exc}") from exc
    return vkey, parsed


def save_state(path: Path, vkey: str, state: MonitorState | None) -> None:
    body = {"logKey": vkey, "state": None if state is None else json.loads(state.to_bytes())}
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(body, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def poll(
    fetch: Fetch, state_path: Path, log_key: str | None, *, recheck_entries: bool = False
) -> tuple[Observation, str]:
    """One monitor poll: judge the served log against the state file, then advance it.

    Returns the observation and how the key was obtained (``pinned``, ``given``, ``tofu``).

    Raises:
        MonitorUsageError: bad state file or key, or a key other than the pinned one.
        audit_chain.AuditChainError: the log misbehaved (RollbackError, SplitViewError,
            EntryMismatchError, NoteVerificationError, ...). The state file is unchanged.
        ServerUnreachable: the server did not answer.
    """
    pinned, state = load_state(state_path)
    how = "pinned"
    if pinned is None:
        how = "given" if log_key is not None else "tofu"
        pinned = log_key if log_key is not None else fetch("key").decode("utf-8").strip()
    elif log_key is not None and log_key != pinned:
        raise MonitorUsageError(f"{state_path} pins another log key than --log-key")
    try:
        verifier = NoteVerifier.from_vkey(pinned)
    except AuditChainError as exc:
        raise MonitorUsageError(f"bad log key: {exc}") from exc
    monitor = LogMonitor(verifier, state, track_entries=True)
    observation = monitor_poll(monitor, fetch)
    if recheck_entries and state is not None:  # every entry again, from scratch
        monitor_poll(LogMonitor(verifier, None, track_entries=True), fetch)
    save_state(state_path, pinned, monitor.state)
    return observation, how


def http_fetch(server: str, timeout_s: float = 30.0) -> tuple[Fetch, Callable[[], None]]:
    """``fetch(path)`` over ``server/log/<path>`` and a close function."""
    import httpx

    client = httpx.Client(base_url=server, timeout=timeout_s)

    def fetch(path: str) -> bytes:
        try:
            resp = client.get(f"/log/{path}")
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code == 404:
            raise TileNotFoundError(path)
        if resp.status_code != 200:
            raise ServerUnreachable(f"/log/{path} answered {resp.status_code}")
        if len(resp.content) > _MAX_FETCH_BYTES:
            raise InputTooLargeError(
                path, size_bytes=len(resp.content), limit_bytes=_MAX_FETCH_BYTES
            )
        return bytes(resp.content)

    return fetch, client.close


def alert_event(server: str, error: BaseException, now: float) -> dict[str, Any]:
    """The EVE alert the monitor posts about a misbehaving log (no secrets, no entries)."""
    host = urlparse(server).hostname or ""
    try:
        import ipaddress

        dest = str(ipaddress.ip_address(host))
    except ValueError:
        dest = "0.0.0.0"  # noqa: S104 (an address field of the alert, not a bind)
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")
    return {
        "event_type": "alert",
        "timestamp": stamp,
        "src_ip": "127.0.0.1",
        "dest_ip": dest,
        "proto": "TCP",
        "alert": {
            "signature_id": ALERT_SIGNATURE_ID,
            "signature": f"{ALERT_SIGNATURE}: {type(error).__name__}",
            "category": "Provenance log integrity",
            "severity": 1,
        },
        "cntrust": {"layer": "network"},
        "cntrust_audit": {
            "reason": getattr(error, "reason", "failed"),
            "detail": str(error)[:500],
            "server": server[:200],
        },
    }


def post_alert(server: str, token: str, error: BaseException) -> str:
    """POST the alert; returns a one-line outcome (never raises on network errors)."""
    import httpx

    body = [alert_event(server, error, time.time())]
    try:
        resp = httpx.post(
            f"{server.rstrip('/')}/v1/alerts",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10.0,
        )
    except httpx.HTTPError as exc:
        return f"alert not sent: {type(exc).__name__}"
    if resp.status_code >= 400:
        return f"alert refused: {resp.status_code}"
    return "alert sent to the scheduler"
