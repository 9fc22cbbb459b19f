"""Anchor records and the anchoring state the caller persists.

Plain frozen dataclasses with a JSON-safe `to_dict` / `from_dict`; nothing here
talks to a chain, so the offline verifier can read records without web3.

Invariants:
- hashes (`tx_hash`, `block_hash`, `root`, `log_id`) are "0x" + 64 lowercase hex;
  addresses are "0x" + 40 lowercase hex; integers are non-negative.
- `from_dict` / `AnchorState.from_json` check sizes and types before use and raise
  `AnchorRecordError` naming the bad field; they never raise anything else.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from audit_chain.anchoring.errors import AnchorRecordError

MAX_STATE_JSON_BYTES = 1_000_000
MAX_HISTORY = 64
_HASH32 = re.compile(r"0x[0-9a-f]{64}")
_ADDRESS = re.compile(r"0x[0-9a-f]{40}")
_RAW_TX = re.compile(r"0x[0-9a-f]{2,8192}")
_MAX_UINT256 = 2**256 - 1


MAX_JSON_DEPTH = 16


def json_depth_ok(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests arrays/objects at most `max_depth` deep.

    Checked before `json.loads`: CPython's decoder can exhaust the C stack on
    deeply nested input when the recursion limit has been raised.
    """
    data = text.encode() if isinstance(text, str) else bytes(text)
    depth = 0
    in_string = False
    escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > max_depth:
                return False
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return True


def hash32_hex(value: str | bytes, *, field_name: str = "hash") -> str:
    """Normalize a 32-byte value to "0x" + 64 lowercase hex.

    Raises:
        AnchorRecordError: the value is not 32 bytes / 64 hex digits.
    """
    if isinstance(value, bytes | bytearray):
        if len(value) != 32:
            raise AnchorRecordError(f"{field_name} must be 32 bytes", field=field_name)
        return "0x" + bytes(value).hex()
    if not isinstance(value, str) or len(value) > 66:
        raise AnchorRecordError(f"{field_name} must be a 32-byte hex string", field=field_name)
    text = value.lower()
    if not text.startswith("0x"):
        text = "0x" + text
    if not _HASH32.fullmatch(text):
        raise AnchorRecordError(f"{field_name} must be a 32-byte hex string", field=field_name)
    return text


def address_hex(value: str, *, field_name: str = "address") -> str:
    """Normalize a 20-byte address to "0x" + 40 lowercase hex.

    Raises:
        AnchorRecordError: the value is not a 20-byte hex address.
    """
    if not isinstance(value, str) or len(value) > 42:
        raise AnchorRecordError(f"{field_name} must be a 20-byte hex address", field=field_name)
    text = value.lower()
    if not _ADDRESS.fullmatch(text):
        raise AnchorRecordError(f"{field_name} must be a 20-byte hex address", field=field_name)
    return text


def _uint(data: dict[str, Any], name: str, *, minimum: int = 0) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise AnchorRecordError(f"{name} must be an integer", field=name)
    if value < minimum or value > _MAX_UINT256:
        raise AnchorRecordError(f"{name} out of range", field=name)
    return value


def _opt_float(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AnchorRecordError(f"{name} must be a finite number or null", field=name)
    return float(value)


def _str(data: dict[str, Any], name: str, *, max_len: int = 512) -> str:
    value = data.get(name)
    if not isinstance(value, str) or len(value) > max_len:
        raise AnchorRecordError(f"{name} must be a string of at most {max_len}", field=name)
    return value


def _mapping(value: object, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise AnchorRecordError(f"{name} must be an object", field=name)
    return value


@dataclass(frozen=True)
class AnchorRecord:
    """One anchor that reached the required confirmations.

    The fields a regulator needs to find it: chain id, contract, transaction,
    block (number and hash), and what was anchored (log id, tree size, root).
    """

    chain_id: int
    contract: str
    tx_hash: str
    block_number: int
    block_hash: str
    log_id: str
    tree_size: int
    root: str
    anchorer: str
    confirmations: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "contract": self.contract,
            "tx_hash": self.tx_hash,
            "block_number": self.block_number,
            "block_hash": self.block_hash,
            "log_id": self.log_id,
            "tree_size": self.tree_size,
            "root": self.root,
            "anchorer": self.anchorer,
            "confirmations": self.confirmations,
        }

    @classmethod
    def from_dict(cls, value: object) -> AnchorRecord:
        """Parse a record produced by `to_dict`.

        Raises:
            AnchorRecordError: a field is missing or malformed.
        """
        data = _mapping(value, "anchor")
        return cls(
            chain_id=_uint(data, "chain_id", minimum=1),
            contract=address_hex(data.get("contract"), field_name="contract"),  # type: ignore[arg-type]
            tx_hash=hash32_hex(data.get("tx_hash"), field_name="tx_hash"),  # type: ignore[arg-type]
            block_number=_uint(data, "block_number"),
            block_hash=hash32_hex(data.get("block_hash"), field_name="block_hash"),  # type: ignore[arg-type]
            log_id=hash32_hex(data.get("log_id"), field_name="log_id"),  # type: ignore[arg-type]
            tree_size=_uint(data, "tree_size", minimum=1),
            root=hash32_hex(data.get("root"), field_name="root"),  # type: ignore[arg-type]
            anchorer=address_hex(data.get("anchorer"), field_name="anchorer"),  # type: ignore[arg-type]
            confirmations=_uint(data, "confirmations"),
        )


@dataclass(frozen=True)
class SentTransaction:
    """One signed transaction broadcast for a pending anchor (replacements share a nonce)."""

    tx_hash: str
    raw: str
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    sent_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "tx_hash": self.tx_hash,
            "raw": self.raw,
            "max_fee_per_gas": self.max_fee_per_gas,
            "max_priority_fee_per_gas": self.max_priority_fee_per_gas,
            "sent_at": self.sent_at,
        }

    @classmethod
    def from_dict(cls, value: object) -> SentTransaction:
        data = _mapping(value, "attempt")
        raw = _str(data, "raw", max_len=8194)
        if not _RAW_TX.fullmatch(raw) or len(raw) % 2:
            raise AnchorRecordError("raw must be 0x-prefixed hex", field="raw")
        sent_at = _opt_float(data, "sent_at")
        if sent_at is None:
            raise AnchorRecordError("sent_at is required", field="sent_at")
        return cls(
            tx_hash=hash32_hex(data.get("tx_hash"), field_name="tx_hash"),  # type: ignore[arg-type]
            raw=raw,
            max_fee_per_gas=_uint(data, "max_fee_per_gas"),
            max_priority_fee_per_gas=_uint(data, "max_priority_fee_per_gas"),
            sent_at=sent_at,
        )


@dataclass(frozen=True)
class Inclusion:
    """Where a pending anchor's transaction was last seen mined (not yet confirmed)."""

    tx_hash: str
    block_number: int
    block_hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "tx_hash": self.tx_hash,
            "block_number": self.block_number,
            "block_hash": self.block_hash,
        }

    @classmethod
    def from_dict(cls, value: object) -> Inclusion:
        data = _mapping(value, "included")
        return cls(
            tx_hash=hash32_hex(data.get("tx_hash"), field_name="tx_hash"),  # type: ignore[arg-type]
            block_number=_uint(data, "block_number"),
            block_hash=hash32_hex(data.get("block_hash"), field_name="block_hash"),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class PendingAnchor:
    """An anchor sent but not yet confirmed.

    `attempts` lists every transaction broadcast at `nonce` (the first and its
    fee-bumped replacements); any one of them may end up mined. `reorgs` counts
    how often the transaction's block left the canonical chain.
    """

    log_id: str
    tree_size: int
    root: str
    nonce: int
    gas: int
    attempts: tuple[SentTransaction, ...]
    included: Inclusion | None = None
    reorgs: int = 0
    fee_cap_reached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "log_id": self.log_id,
            "tree_size": self.tree_size,
            "root": self.root,
            "nonce": self.nonce,
            "gas": self.gas,
            "attempts": [a.to_dict() for a in self.attempts],
            "included": None if self.included is None else self.included.to_dict(),
            "reorgs": self.reorgs,
            "fee_cap_reached": self.fee_cap_reached,
        }

    @classmethod
    def from_dict(cls, value: object) -> PendingAnchor:
        data = _mapping(value, "pending")
        attempts = data.get("attempts")
        if not isinstance(attempts, list) or not 1 <= len(attempts) <= 64:
            raise AnchorRecordError("attempts must be a list of 1..64", field="attempts")
        included = data.get("included")
        fee_cap = data.get("fee_cap_reached", False)
        if not isinstance(fee_cap, bool):
            raise AnchorRecordError("fee_cap_reached must be a boolean", field="fee_cap_reached")
        return cls(
            log_id=hash32_hex(data.get("log_id"), field_name="log_id"),  # type: ignore[arg-type]
            tree_size=_uint(data, "tree_size", minimum=1),
            root=hash32_hex(data.get("root"), field_name="root"),  # type: ignore[arg-type]
            nonce=_uint(data, "nonce"),
            gas=_uint(data, "gas", minimum=21_000),
            attempts=tuple(SentTransaction.from_dict(a) for a in attempts),
            included=None if included is None else Inclusion.from_dict(included),
            reorgs=_uint(data, "reorgs"),
            fee_cap_reached=fee_cap,
        )


@dataclass(frozen=True)
class AnchorState:
    """What the anchoring loop must remember between steps and restarts.

    The caller persists it (for instance with `save_state_file`) after every step
    whose `StepResult.changed` is true. `watch` is the pending anchor behind the
    newest confirmed one (kept to re-broadcast it after a reorg). `anchors` keeps
    the last `MAX_HISTORY` confirmed anchors; the caller keeps the full history
    from `StepResult.anchored`.
    """

    log_id: str
    pending: PendingAnchor | None = None
    anchors: tuple[AnchorRecord, ...] = ()
    watch: PendingAnchor | None = None
    last_started_at: float | None = None
    consecutive_failures: int = 0
    retry_at: float | None = None
    last_error: str | None = None

    @property
    def anchored_tree_size(self) -> int:
        """Tree size of the newest confirmed anchor (0 when none)."""
        return self.anchors[-1].tree_size if self.anchors else 0

    @property
    def latest(self) -> AnchorRecord | None:
        """The newest confirmed anchor, if any."""
        return self.anchors[-1] if self.anchors else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": 1,
            "log_id": self.log_id,
            "pending": None if self.pending is None else self.pending.to_dict(),
            "anchors": [a.to_dict() for a in self.anchors],
            "watch": None if self.watch is None else self.watch.to_dict(),
            "last_started_at": self.last_started_at,
            "consecutive_failures": self.consecutive_failures,
            "retry_at": self.retry_at,
            "last_error": self.last_error,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, value: object) -> AnchorState:
        """Parse a state produced by `to_dict`.

        Raises:
            AnchorRecordError: the state is malformed.
        """
        data = _mapping(value, "state")
        if data.get("format") != 1:
            raise AnchorRecordError("unsupported anchoring state format", field="format")
        anchors = data.get("anchors")
        if not isinstance(anchors, list) or len(anchors) > MAX_HISTORY:
            raise AnchorRecordError(f"anchors must be a list of <= {MAX_HISTORY}", field="anchors")
        pending = data.get("pending")
        watch = data.get("watch")
        last_error = data.get("last_error")
        if last_error is not None and (not isinstance(last_error, str) or len(last_error) > 4096):
            raise AnchorRecordError("last_error must be a short string", field="last_error")
        return cls(
            log_id=hash32_hex(data.get("log_id"), field_name="log_id"),  # type: ignore[arg-type]
            pending=None if pending is None else PendingAnchor.from_dict(pending),
            anchors=tuple(AnchorRecord.from_dict(a) for a in anchors),
            watch=None if watch is None else PendingAnchor.from_dict(watch),
            last_started_at=_opt_float(data, "last_started_at"),
            consecutive_failures=_uint(data, "consecutive_failures"),
            retry_at=_opt_float(data, "retry_at"),
            last_error=last_error,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> AnchorState:
        """Parse persisted JSON, checking its size first.

        Raises:
            AnchorRecordError: too large, not JSON, or malformed.
        """
        if len(text) > MAX_STATE_JSON_BYTES:
            raise AnchorRecordError("anchoring state too large")
        if not json_depth_ok(text):
            raise AnchorRecordError("anchoring state nests too deeply")
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise AnchorRecordError(f"anchoring state is not JSON: {exc}") from exc
        return cls.from_dict(value)
