"""Suppression rules: stop alerts matching a field combination, with owner, reason, expiry.

A `Suppression` matches an alert when every field it sets matches: ``signature_id``
(exact), ``src_ip`` / ``dest_ip`` (an address or a CIDR network), ``node_id`` (exact).
It applies only while ``created_at <= now < expires_at``: an expired suppression stops
suppressing.

Invariants: a suppression sets at least one match field (an empty one would hide every
alert), names an owner and a reason, and expires after it was created; violations raise
`LayersConfigError` at construction.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ids.layers.errors import LayersConfigError
from ids.layers.eve import node_id_of, signature_id_of, str_field

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(name: str, value: str | None) -> _Network | None:
    if value is None:
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise LayersConfigError(name, value, "not an IP address or CIDR network") from exc


def _in(net: _Network | None, ip: str | None) -> bool:
    if net is None:
        return True
    if ip is None:
        return False
    try:
        return ipaddress.ip_address(ip) in net
    except ValueError:
        return False


@dataclass(frozen=True)
class Suppression:
    """One suppression rule (see the module docstring). Times are epoch seconds."""

    owner: str
    reason: str
    created_at: float
    expires_at: float
    signature_id: int | None = None
    src_ip: str | None = None
    dest_ip: str | None = None
    node_id: str | None = None
    _src: _Network | None = field(init=False, repr=False, compare=False)
    _dst: _Network | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.owner.strip():
            raise LayersConfigError("owner", self.owner, "a suppression needs an owner")
        if not self.reason.strip():
            raise LayersConfigError("reason", self.reason, "a suppression needs a reason")
        if not self.expires_at > self.created_at:
            raise LayersConfigError("expires_at", self.expires_at, "must be after created_at")
        if (self.signature_id, self.src_ip, self.dest_ip, self.node_id) == (None,) * 4:
            raise LayersConfigError(
                "fields", None, "set at least one of signature_id, src_ip, dest_ip, node_id"
            )
        object.__setattr__(self, "_src", _network("src_ip", self.src_ip))
        object.__setattr__(self, "_dst", _network("dest_ip", self.dest_ip))

    @property
    def suppression_id(self) -> str:
        """Stable id: hash of the match fields, owner and creation time."""
        text = (
            f"{self.signature_id}|{self.src_ip}|{self.dest_ip}|{self.node_id}|"
            f"{self.owner}|{self.created_at:.6f}"
        )
        return "sup-" + hashlib.sha256(text.encode()).hexdigest()[:20]

    def active(self, now: float) -> bool:
        """Whether the suppression applies at `now`."""
        return self.created_at <= now < self.expires_at

    def matches(self, alert: Mapping[str, Any], now: float) -> bool:
        """Whether this suppression hides `alert` at `now`. Raises `AlertFormatError`."""
        if not self.active(now):
            return False
        if self.signature_id is not None and signature_id_of(alert) != self.signature_id:
            return False
        if self.node_id is not None and node_id_of(alert) != self.node_id:
            return False
        return _in(self._src, str_field(alert, "src_ip")) and _in(
            self._dst, str_field(alert, "dest_ip")
        )


@dataclass(frozen=True)
class SuppressionOutcome:
    """Alerts kept, and alerts suppressed with the id of the suppression that hid each."""

    kept: tuple[Mapping[str, Any], ...]
    suppressed: tuple[tuple[Mapping[str, Any], str], ...]


class SuppressionSet:
    """An ordered set of suppressions; the first match wins."""

    def __init__(self, suppressions: Iterable[Suppression] = ()) -> None:
        self._items: dict[str, Suppression] = {}
        for s in suppressions:
            self.add(s)

    def add(self, suppression: Suppression) -> str:
        """Add a suppression; returns its id."""
        self._items[suppression.suppression_id] = suppression
        return suppression.suppression_id

    def remove(self, suppression_id: str) -> Suppression | None:
        """Remove by id; returns the removed suppression or None."""
        return self._items.pop(suppression_id, None)

    def active(self, now: float) -> list[Suppression]:
        """Suppressions in force at `now`."""
        return [s for s in self._items.values() if s.active(now)]

    def find(self, alert: Mapping[str, Any], now: float) -> Suppression | None:
        """The first suppression hiding `alert` at `now`, or None."""
        for s in self._items.values():
            if s.matches(alert, now):
                return s
        return None

    def apply(self, alerts: Iterable[Mapping[str, Any]], now: float) -> SuppressionOutcome:
        """Split `alerts` into kept and suppressed at `now`."""
        kept: list[Mapping[str, Any]] = []
        hidden: list[tuple[Mapping[str, Any], str]] = []
        for alert in alerts:
            match = self.find(alert, now)
            if match is None:
                kept.append(alert)
            else:
                hidden.append((alert, match.suppression_id))
        return SuppressionOutcome(tuple(kept), tuple(hidden))

    def __len__(self) -> int:
        return len(self._items)
