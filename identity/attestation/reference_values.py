"""Reference values (RFC 9334): signed, versioned golden measurements per node class.

A :class:`ReferenceValueSet` says, for one node class and version, which
SHA-256 digests each component may have, and the minimum firmware version
of each accelerator model (key ``"<kind>/<model>"``). Sets are signed with
Ed25519 over their canonical JSON; :class:`ReferenceValueStore` accepts only
sets signed by a trusted key.

Invariants:
- Versions of a class strictly increase; a set is never replaced in place.
- During the update window after a new version is added, the previous
  version stays accepted, so nodes can be upgraded one by one; afterwards
  only the newest is. A retired version is never accepted again.
- The store is pure logic (in memory, time passed in); persistence is the
  caller's — keep the signed JSON and replay ``add``/``retire``.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from identity.attestation.errors import ReferenceValueError, ReferenceValueSignatureError

MAX_SIGNED_BYTES = 512 * 1024
DEFAULT_UPDATE_WINDOW_S = 3600.0
_CLASS_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_COMPONENT_RE = re.compile(r"^[a-z0-9][a-z0-9._/:+-]{0,127}$")
_ACCEL_RE = re.compile(r"^(GPU|FPGA|ASIC)/[A-Za-z0-9 ._:+()-]{1,128}$")
_VERSION_RE = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,9}){0,5}$")


def parse_version(text: str) -> tuple[int, ...]:
    """``"535.104.5"`` -> ``(535, 104, 5)``; raises ReferenceValueError if not dotted numbers."""
    if not isinstance(text, str) or not _VERSION_RE.fullmatch(text):
        raise ReferenceValueError(f"version {text!r} is not dotted numbers")
    return tuple(int(part) for part in text.split("."))


def key_id(public_key: ed25519.Ed25519PublicKey) -> str:
    """Short id of a signing key: first 16 hex digits of SHA-256 of the raw key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class ReferenceValueSet:
    """Golden measurements for one node class at one version."""

    node_class: str
    version: int
    components: Mapping[str, frozenset[bytes]]
    accelerator_firmware_minimums: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.node_class, str) or not _CLASS_RE.fullmatch(self.node_class):
            raise ReferenceValueError(f"node class {self.node_class!r} not allowed")
        if type(self.version) is not int or self.version < 1:
            raise ReferenceValueError("version must be a positive integer")
        for name, digests in self.components.items():
            if not _COMPONENT_RE.fullmatch(name) or not digests:
                raise ReferenceValueError(f"component {name!r} needs a name and digests")
            if any(len(d) != 32 for d in digests):
                raise ReferenceValueError(f"digests of {name!r} must be SHA-256")
        for accel, minimum in self.accelerator_firmware_minimums.items():
            if not _ACCEL_RE.fullmatch(accel):
                raise ReferenceValueError(f"accelerator key {accel!r} must be KIND/model")
            parse_version(minimum)

    @property
    def id(self) -> str:
        return f"{self.node_class}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_class": self.node_class,
            "version": self.version,
            "components": {
                n: sorted(d.hex() for d in ds) for n, ds in sorted(self.components.items())
            },
            "accelerator_firmware_minimums": dict(
                sorted(self.accelerator_firmware_minimums.items())
            ),
        }

    def canonical_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceValueSet:
        """Raises ReferenceValueError on any shape error."""
        try:
            components = {
                str(name): frozenset(bytes.fromhex(d) for d in digests)
                for name, digests in dict(data["components"]).items()
            }
            minimums = {
                str(k): str(v) for k, v in dict(data["accelerator_firmware_minimums"]).items()
            }
            return cls(str(data["node_class"]), data["version"], components, minimums)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReferenceValueError(f"malformed reference-value set: {exc}") from exc


@dataclass(frozen=True)
class SignedReferenceValues:
    """A reference-value set's canonical JSON with an Ed25519 signature."""

    payload: bytes
    signature: bytes
    key_id: str

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "payload": self.payload.decode(),
                "signature": self.signature.hex(),
                "key_id": self.key_id,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> SignedReferenceValues:
        """Raises ReferenceValueError if the envelope is malformed or too large."""
        if not isinstance(data, bytes) or len(data) > MAX_SIGNED_BYTES:
            raise ReferenceValueError("signed reference values missing or too large")
        try:
            obj = json.loads(data)
            return cls(obj["payload"].encode(), bytes.fromhex(obj["signature"]), str(obj["key_id"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ReferenceValueError(f"malformed signed reference values: {exc}") from exc


def sign_reference_values(
    values: ReferenceValueSet, private_key: ed25519.Ed25519PrivateKey
) -> SignedReferenceValues:
    payload = values.canonical_bytes()
    return SignedReferenceValues(
        payload, private_key.sign(payload), key_id(private_key.public_key())
    )


def verify_reference_values(
    signed: SignedReferenceValues, trusted_keys: Mapping[str, ed25519.Ed25519PublicKey]
) -> None:
    """1. the signer is trusted, 2. the Ed25519 signature verifies.

    Raises ReferenceValueSignatureError (reasons ``untrusted_signer``, ``signature``).
    """
    key = trusted_keys.get(signed.key_id)
    if key is None:
        raise ReferenceValueSignatureError(
            f"signer {signed.key_id!r} is not trusted", reason="untrusted_signer"
        )
    try:
        key.verify(signed.signature, signed.payload)
    except InvalidSignature as exc:
        raise ReferenceValueSignatureError(
            "reference-value signature does not verify", reason="signature"
        ) from exc


def open_reference_values(
    signed: SignedReferenceValues, trusted_keys: Mapping[str, ed25519.Ed25519PublicKey]
) -> ReferenceValueSet:
    """Verify then parse; raises ReferenceValueSignatureError or ReferenceValueError."""
    verify_reference_values(signed, trusted_keys)
    try:
        data = json.loads(signed.payload)
    except ValueError as exc:
        raise ReferenceValueError("reference-value payload is not JSON") from exc
    if not isinstance(data, dict):
        raise ReferenceValueError("reference-value payload is not an object")
    return ReferenceValueSet.from_dict(data)


@dataclass(frozen=True)
class ReferenceValueEntry:
    """A set in the store with its lifecycle times (epoch seconds)."""

    values: ReferenceValueSet
    signed: SignedReferenceValues
    added_at: float
    superseded_at: float | None = None
    window_ends_at: float | None = None
    retired_at: float | None = None

    def accepted(self, now: float) -> bool:
        if self.retired_at is not None and self.retired_at <= now:
            return False
        return self.window_ends_at is None or now < self.window_ends_at

    def status(self, now: float) -> str:
        if self.retired_at is not None and self.retired_at <= now:
            return "retired"
        if self.window_ends_at is None:
            return "current"
        return "update-window" if now < self.window_ends_at else "superseded"


class ReferenceValueStore:
    """Versioned reference-value sets per node class, with update windows."""

    def __init__(
        self,
        trusted_keys: Mapping[str, ed25519.Ed25519PublicKey],
        *,
        update_window_s: float = DEFAULT_UPDATE_WINDOW_S,
    ) -> None:
        if update_window_s < 0:
            raise ValueError("update_window_s must be >= 0")
        self._trusted = dict(trusted_keys)
        self._window_s = update_window_s
        self._entries: dict[str, list[ReferenceValueEntry]] = {}

    def add(self, signed: SignedReferenceValues, *, now: float) -> ReferenceValueSet:
        """Verify and add a set; the class's previous versions enter their update window.

        Raises ReferenceValueSignatureError, or ReferenceValueError when the
        version does not exceed every version already held for the class.
        """
        values = open_reference_values(signed, self._trusted)
        entries = self._entries.setdefault(values.node_class, [])
        if entries and values.version <= max(e.values.version for e in entries):
            raise ReferenceValueError(
                f"{values.id} is not newer than the versions held for {values.node_class}"
            )
        window_end = now + self._window_s
        for i, entry in enumerate(entries):
            if entry.window_ends_at is None:
                entries[i] = replace(entry, superseded_at=now, window_ends_at=window_end)
        entries.append(ReferenceValueEntry(values, signed, added_at=now))
        return values

    def retire(self, node_class: str, version: int, *, now: float) -> None:
        """Stop accepting one version at once; raises ReferenceValueError if unknown."""
        entries = self._entries.get(node_class, [])
        for i, entry in enumerate(entries):
            if entry.values.version == version:
                if entry.retired_at is None:
                    entries[i] = replace(entry, retired_at=now)
                return
        raise ReferenceValueError(f"no reference values {node_class}@{version}")

    def list(self, node_class: str | None = None) -> builtins.list[ReferenceValueEntry]:
        """Entries (all classes, or one), oldest first."""
        if node_class is not None:
            return builtins.list(self._entries.get(node_class, []))
        return [e for cls in sorted(self._entries) for e in self._entries[cls]]

    def accepted(self, node_class: str, *, now: float) -> tuple[ReferenceValueSet, ...]:
        """Sets a node of ``node_class`` may match now, newest first."""
        entries = self._entries.get(node_class, [])
        return tuple(e.values for e in reversed(entries) if e.accepted(now))
