"""Alert triage for security teams: the state machine, filters and grouping.

States: ``new -> acknowledged -> escalated -> closed``. Allowed moves::

    new          -> acknowledged | escalated | closed
    acknowledged -> escalated | closed
    escalated    -> closed
    closed       -> acknowledged   (reopen)

Closing and reopening need a note. Anything else raises `InvalidTriageTransitionError`.
`TriageRecord` is immutable: `transition` returns a new record with the move appended to
its history (who, when, note), so every analyst action can be audited.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ids.layers.errors import InvalidTriageTransitionError, LayersConfigError
from ids.layers.eve import layer_of, node_id_of, severity_of, str_field, ts_of


class TriageState(StrEnum):
    """Where an alert stands with the security team."""

    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    CLOSED = "closed"


ALLOWED_TRANSITIONS: dict[TriageState, frozenset[TriageState]] = {
    TriageState.NEW: frozenset(
        {TriageState.ACKNOWLEDGED, TriageState.ESCALATED, TriageState.CLOSED}
    ),
    TriageState.ACKNOWLEDGED: frozenset({TriageState.ESCALATED, TriageState.CLOSED}),
    TriageState.ESCALATED: frozenset({TriageState.CLOSED}),
    TriageState.CLOSED: frozenset({TriageState.ACKNOWLEDGED}),
}


@dataclass(frozen=True)
class TriageEvent:
    """One move in an alert's triage history."""

    from_state: TriageState
    to_state: TriageState
    actor: str
    at: float
    note: str


@dataclass(frozen=True)
class TriageRecord:
    """An alert's (or aggregate's) triage state and history."""

    alert_id: str
    state: TriageState = TriageState.NEW
    history: tuple[TriageEvent, ...] = ()

    @property
    def note(self) -> str:
        """The note of the latest move ("" when none)."""
        return self.history[-1].note if self.history else ""


def transition(
    record: TriageRecord, to_state: TriageState | str, actor: str, at: float, note: str = ""
) -> TriageRecord:
    """Move `record` to `to_state`; returns the new record.

    Raises `InvalidTriageTransitionError` for an unknown state, a move the table does not
    allow, a missing actor, or closing/reopening without a note.
    """
    try:
        target = TriageState(to_state)
    except ValueError as exc:
        raise InvalidTriageTransitionError(record.state, str(to_state), "unknown state") from exc
    if target not in ALLOWED_TRANSITIONS[record.state]:
        raise InvalidTriageTransitionError(record.state, target, "transition not allowed")
    if not actor.strip():
        raise InvalidTriageTransitionError(record.state, target, "an actor is required")
    needs_note = target == TriageState.CLOSED or record.state == TriageState.CLOSED
    if needs_note and not note.strip():
        raise InvalidTriageTransitionError(record.state, target, "a note is required")
    event = TriageEvent(record.state, target, actor, at, note)
    return TriageRecord(record.alert_id, target, (*record.history, event))


@dataclass(frozen=True)
class AlertFilter:
    """Alert predicate; None means "any". Times are epoch seconds, `until` exclusive.

    `severity_at_most` uses the EVE scale (1 high): 2 keeps high and medium alerts.
    """

    severity_at_most: int | None = None
    states: frozenset[TriageState] | None = None
    node_ids: frozenset[str] | None = None
    layers: frozenset[str] | None = None
    src_ips: frozenset[str] | None = None
    since: float | None = None
    until: float | None = None

    def __post_init__(self) -> None:
        if self.severity_at_most is not None and not 1 <= self.severity_at_most <= 4:
            raise LayersConfigError("severity_at_most", self.severity_at_most, "must be 1..4")
        if self.since is not None and self.until is not None and self.until < self.since:
            raise LayersConfigError("until", self.until, "must not be before since")

    def matches(self, alert: Mapping[str, Any], state: TriageState = TriageState.NEW) -> bool:
        """Whether `alert` (in triage `state`) passes. Raises `AlertFormatError`."""
        if self.severity_at_most is not None and severity_of(alert) > self.severity_at_most:
            return False
        if self.states is not None and state not in self.states:
            return False
        if self.node_ids is not None and node_id_of(alert) not in self.node_ids:
            return False
        if self.layers is not None and layer_of(alert) not in self.layers:
            return False
        if self.src_ips is not None and str_field(alert, "src_ip") not in self.src_ips:
            return False
        if self.since is not None or self.until is not None:
            ts = ts_of(alert)
            if self.since is not None and ts < self.since:
                return False
            if self.until is not None and ts >= self.until:
                return False
        return True


def filter_alerts(
    alerts: Iterable[Mapping[str, Any]],
    flt: AlertFilter,
    states: Mapping[str, TriageState] | None = None,
    key: str = "alert_id",
) -> list[Mapping[str, Any]]:
    """Alerts passing `flt`. A state is looked up in `states` by ``alert[key]`` (an id the
    store assigned), defaulting to new."""
    lookup = states or {}
    result = []
    for alert in alerts:
        ident = alert.get(key)
        state = lookup.get(ident, TriageState.NEW) if isinstance(ident, str) else TriageState.NEW
        if flt.matches(alert, state):
            result.append(alert)
    return result


@dataclass(frozen=True)
class SourceGroup:
    """Alerts of one source address, with a summary for the console."""

    src_ip: str
    count: int
    highest_severity: int
    signature_ids: tuple[int, ...]
    node_ids: tuple[str, ...]
    alerts: tuple[Mapping[str, Any], ...]


def group_by_source(alerts: Iterable[Mapping[str, Any]]) -> list[SourceGroup]:
    """Group alerts by ``src_ip``; most alerts first, then by address."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for alert in alerts:
        groups.setdefault(str_field(alert, "src_ip") or "", []).append(alert)
    result = []
    for src, items in groups.items():
        sids = sorted({a.get("alert", {}).get("signature_id", 0) for a in items})
        nodes = sorted({n for n in (node_id_of(a) for a in items) if n})
        result.append(
            SourceGroup(
                src_ip=src,
                count=len(items),
                highest_severity=min(severity_of(a) for a in items),
                signature_ids=tuple(sids),
                node_ids=tuple(nodes),
                alerts=tuple(items),
            )
        )
    return sorted(result, key=lambda g: (-g.count, g.src_ip))
