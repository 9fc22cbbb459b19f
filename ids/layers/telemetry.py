"""Element telemetry: the record a node agent sends, its canonical JSON, and Ed25519 signing.

A `TelemetryRecord` is what one node saw since its previous record: the measurement digest
now and at the last attestation, listening sockets, processes, per-task resource use,
files open for writing, and authentication failures against the agent. Only integers and
strings are used (times in epoch milliseconds, CPU in milliseconds / millicores), so the
canonical form is unambiguous.

Wire form (``encode_signed_telemetry``)::

    {"alg": "Ed25519", "signature": "<base64url, no padding>", "telemetry": {...}}

The signature covers ``TELEMETRY_CONTEXT + canonical_json(telemetry)`` where canonical JSON
is sorted keys, no whitespace, UTF-8.

Invariants:
- `parse_signed_telemetry` checks the size first (`MAX_TELEMETRY_BYTES`), rejects unknown
  fields, wrong types, negative or oversized numbers and over-long strings/lists, and raises
  only `TelemetryParseError`.
- `record_from_dict(record_to_dict(r)) == r` for every valid record.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ids.layers.errors import TelemetryParseError, TelemetryVerificationError
from ids.layers.eve import canonical_json

TELEMETRY_CONTEXT = b"cntrust-telemetry-v1\x00"
MAX_TELEMETRY_BYTES = 1_048_576
MAX_ITEMS = 10_000
MAX_STR = 4_096
MAX_INT = 2**63 - 1


@dataclass(frozen=True, slots=True)
class ListeningSocket:
    """A socket in LISTEN (TCP) or unconnected-bound (UDP) state; pid 0 when unknown."""

    proto: str
    address: str
    port: int
    inode: int
    pid: int


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """One process; `task_id` is empty for processes no task started."""

    pid: int
    ppid: int
    name: str
    task_id: str
    cpu_ms: int
    rss_bytes: int


@dataclass(frozen=True, slots=True)
class TaskUsage:
    """A task's resource use over the last `window_ms` and what it was allowed.

    `state` is ``"running"`` or ``"ended"``; `allowed_ports` are ports the task may listen on.
    """

    task_id: str
    state: str
    scratch_dir: str
    cpu_request_millicores: int
    memory_request_bytes: int
    window_ms: int
    cpu_ms_in_window: int
    rss_bytes: int
    output_bytes_in_window: int
    pids: tuple[int, ...] = ()
    allowed_ports: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class FileWrite:
    """A file a task's process has open for writing (or wrote), by absolute path."""

    task_id: str
    pid: int
    path: str


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """A failed authentication against the node agent."""

    ts_ms: int
    source_ip: str
    principal: str
    reason: str


@dataclass(frozen=True, slots=True)
class TelemetryRecord:
    """Everything one node reports in one telemetry message (see module docstring)."""

    node_id: str
    node_ip: str
    seq: int
    collected_at_ms: int
    attested_digest: str = ""
    measurement_digest: str = ""
    listening: tuple[ListeningSocket, ...] = ()
    processes: tuple[ProcessSample, ...] = ()
    tasks: tuple[TaskUsage, ...] = ()
    file_writes: tuple[FileWrite, ...] = ()
    auth_failures: tuple[AuthFailure, ...] = ()


@dataclass(frozen=True, slots=True)
class SignedTelemetry:
    """A telemetry record with its Ed25519 signature (64 bytes)."""

    record: TelemetryRecord
    signature: bytes
    alg: str = "Ed25519"


_NESTED: dict[str, type] = {
    "listening": ListeningSocket,
    "processes": ProcessSample,
    "tasks": TaskUsage,
    "file_writes": FileWrite,
    "auth_failures": AuthFailure,
}
_INT_TUPLES = {"pids", "allowed_ports"}
T = TypeVar("T")


def _plain(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return [_plain(x) for x in obj]
    if hasattr(obj, "__dataclass_fields__"):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    return obj


def record_to_dict(record: TelemetryRecord) -> dict[str, Any]:
    """The record as plain JSON-ready data."""
    result: dict[str, Any] = _plain(record)
    return result


def canonical_telemetry(record: TelemetryRecord) -> bytes:
    """The exact bytes that are signed (without the context prefix)."""
    return canonical_json(record_to_dict(record))


def _check_int(value: Any, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TelemetryParseError("expected an integer", path)
    if not 0 <= value <= MAX_INT:
        raise TelemetryParseError("integer out of range", path)
    return value


def _check_str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise TelemetryParseError("expected a string", path)
    if len(value) > MAX_STR:
        raise TelemetryParseError(f"string longer than {MAX_STR}", path)
    return value


def _check_list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise TelemetryParseError("expected a list", path)
    if len(value) > MAX_ITEMS:
        raise TelemetryParseError(f"more than {MAX_ITEMS} items", path)
    return value


def _build(cls: Callable[..., T], spec: Any, data: Any, path: str) -> T:
    if not isinstance(data, Mapping):
        raise TelemetryParseError("expected an object", path)
    names = {f.name: f for f in fields(spec)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise TelemetryParseError(f"unknown field {unknown[0]!r}", path)
    kwargs: dict[str, Any] = {}
    for name, f in names.items():
        sub = f"{path}.{name}" if path else name
        if name not in data:
            if f.default is f.default_factory:  # no default at all: required
                raise TelemetryParseError("missing required field", sub)
            continue
        value = data[name]
        if name in _NESTED:
            kwargs[name] = tuple(
                _build(_NESTED[name], _NESTED[name], item, f"{sub}[{i}]")
                for i, item in enumerate(_check_list(value, sub))
            )
        elif name in _INT_TUPLES:
            kwargs[name] = tuple(
                _check_int(item, f"{sub}[{i}]") for i, item in enumerate(_check_list(value, sub))
            )
        elif f.type in ("int", int):
            kwargs[name] = _check_int(value, sub)
        else:
            kwargs[name] = _check_str(value, sub)
    return cls(**kwargs)


def record_from_dict(data: Any) -> TelemetryRecord:
    """Build a record from plain data, strictly; raises `TelemetryParseError`."""
    return _build(TelemetryRecord, TelemetryRecord, data, "")


def sign_telemetry(record: TelemetryRecord, private_key: Ed25519PrivateKey) -> SignedTelemetry:
    """Sign the record's canonical form with the node's Ed25519 key."""
    signature = private_key.sign(TELEMETRY_CONTEXT + canonical_telemetry(record))
    return SignedTelemetry(record, signature)


def encode_signed_telemetry(signed: SignedTelemetry) -> bytes:
    """The wire form (canonical JSON of alg, signature, telemetry)."""
    sig = base64.urlsafe_b64encode(signed.signature).rstrip(b"=").decode()
    return canonical_json(
        {"alg": signed.alg, "signature": sig, "telemetry": record_to_dict(signed.record)}
    )


def parse_signed_telemetry(data: bytes) -> SignedTelemetry:
    """Parse the wire form; raises `TelemetryParseError` (size checked before parsing)."""
    if not isinstance(data, bytes | bytearray):
        raise TelemetryParseError("expected bytes")
    if len(data) > MAX_TELEMETRY_BYTES:
        raise TelemetryParseError(f"{len(data)} bytes exceeds {MAX_TELEMETRY_BYTES}")
    try:
        doc = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise TelemetryParseError(f"not UTF-8 JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise TelemetryParseError("expected a JSON object")
    unknown = sorted(set(doc) - {"alg", "signature", "telemetry"})
    if unknown:
        raise TelemetryParseError(f"unknown field {unknown[0]!r}")
    alg = _check_str(doc.get("alg"), "alg")
    sig_text = _check_str(doc.get("signature"), "signature")
    try:
        signature = base64.urlsafe_b64decode(sig_text + "=" * (-len(sig_text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TelemetryParseError("signature is not base64url", "signature") from exc
    record = record_from_dict(doc.get("telemetry"))
    return SignedTelemetry(record, signature, alg)


def verify_telemetry(
    signed: SignedTelemetry,
    public_key: Ed25519PublicKey,
    *,
    expected_node_id: str | None = None,
    last_seq: int | None = None,
    now_ms: int | None = None,
    max_age_ms: int | None = None,
) -> None:
    """Verify a signed telemetry record; returns None or raises `TelemetryVerificationError`.

    Steps, in order (the error's `step` names the first that failed):
    1. ``alg``: the algorithm is Ed25519 and the key is an Ed25519 public key.
    2. ``signature_length``: the signature is 64 bytes.
    3. ``signature``: it verifies over context + canonical record.
    4. ``node_id``: the record names `expected_node_id` (when given).
    5. ``seq``: the sequence number is above `last_seq` (when given; stops replays).
    6. ``freshness``: collected no more than `max_age_ms` before `now_ms` and not after it
       (when both given).
    """
    record = signed.record
    # 1. algorithm and key type
    if signed.alg != "Ed25519" or not isinstance(public_key, Ed25519PublicKey):
        raise TelemetryVerificationError("alg", "only Ed25519 is accepted", "Ed25519", signed.alg)
    # 2. signature length
    if len(signed.signature) != 64:
        raise TelemetryVerificationError(
            "signature_length", "Ed25519 signatures are 64 bytes", 64, len(signed.signature)
        )
    # 3. signature over the canonical form
    try:
        public_key.verify(signed.signature, TELEMETRY_CONTEXT + canonical_telemetry(record))
    except InvalidSignature as exc:
        raise TelemetryVerificationError(
            "signature", f"signature does not verify for node {record.node_id!r}"
        ) from exc
    # 4. the record is about the node we expect
    if expected_node_id is not None and record.node_id != expected_node_id:
        raise TelemetryVerificationError(
            "node_id", "record names another node", expected_node_id, record.node_id
        )
    # 5. replay protection
    if last_seq is not None and record.seq <= last_seq:
        raise TelemetryVerificationError(
            "seq", "sequence number not above the last accepted one", f"> {last_seq}", record.seq
        )
    # 6. freshness
    if now_ms is not None and max_age_ms is not None:
        age = now_ms - record.collected_at_ms
        if age < 0 or age > max_age_ms:
            raise TelemetryVerificationError(
                "freshness", "record too old or from the future", f"0..{max_age_ms}", age
            )
