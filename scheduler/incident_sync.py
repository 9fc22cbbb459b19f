"""Scheduler replicas sharing one database feed each other's correlators.

Each replica's :class:`~scheduler.incidents.IncidentLayer` owns a correlator fed with what
that replica received. :class:`IncidentSync` (``layer.sync``) shares the correlator input:

1. publish: in the transaction that stores an ingest's alerts, the alerts it kept become one
   :class:`~scheduler.tables.incident_sync.IncidentFeed` row tagged with this layer's
   ``origin``: alerts that differ only in their time and ports are one entry (their
   aggregate, how many alerts it stands for, their earliest and latest record). Each
   enrollment the layer observed is one row too;
2. sync (every ``interval_s`` on a thread, or when called): read the feed rows with an id
   above the cursor, plus the ids skipped earlier (ids are handed out at insert and a
   transaction can commit after a later one: each skipped id is read again until its row
   appears or ``GAP_TIMEOUT_S`` passed, as :mod:`scheduler.trust_sync` does), feed those of
   other origins to the correlator once (an entry as many times as it counts alerts, its
   earliest record first), and store the incidents that opened or changed through the
   layer's own path (:meth:`IncidentLayer.store`), where :mod:`scheduler.incident_claims`
   makes the replicas' incidents one and each response happen once.

Invariants:
- a feed row is fed to one correlator generation at most once: own rows are skipped by
  origin, the others' by the cursor and the gaps; :meth:`IncidentSync.begin` (the layer's
  rebuild) moves the cursor to the newest id (what lies below is in the aggregates the
  rebuild replays), and a pass that read while a rebuild ran drops what it read;
- a bad stored row or entry is skipped with its reason logged and counted in
  :attr:`IncidentSync.refused`; it never stops a pass;
- the layer's lock is never held while waiting for the committer.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from ids.layers import AlertFormatError, EnrollmentEvent
from ids.layers.eve import cntrust_of, ts_of
from scheduler.alerts import check_alert
from scheduler.errors import SchedulerError
from scheduler.periodic import Periodic, advance_tail, expire_gaps, tail_where
from scheduler.tables.incident_sync import IncidentFeed

if TYPE_CHECKING:
    from scheduler.incidents import IncidentLayer

log = logging.getLogger(__name__)

FEED_ALERTS = "alerts"
FEED_ENROLLMENT = "enrollment"
GAP_TIMEOUT_S = 60.0  # a skipped id whose row has not appeared by then was rolled back
GAP_LOOKBACK = 1000  # at a rebuild, ids this far below the newest are checked for gaps
MAX_GAPS = 10_000
BATCH = 20  # rows per read (a row holds at most one ingest batch's alerts)
MAX_BATCHES_PER_PASS = 50
MAX_ENTRIES = 10_000
MAX_COUNT = 10_000  # alerts one entry stands for (an ingest batch holds at most 1,000)
RETENTION_S = 86_400.0  # feed rows are kept this long (at least two correlation windows)
PRUNE_EVERY_S = 60.0
MAX_EPOCH_S = 2.0**33
_SHAPE_KEYS = ("layer", "node_id", "src_node_id", "detection", "sources", "distinct_sources")
# the fields of a record the correlator reads (payloads, http, flow ids are not published)
_KEPT = ("timestamp", "event_type", "src_ip", "src_port", "dest_ip", "dest_port", "proto")
_KEPT_ALERT = ("signature_id", "signature", "category", "severity", "gid", "rev")


class FeedFormatError(SchedulerError):
    """A stored feed row, or one of its entries, this replica cannot use (named by row id,
    field and reason)."""

    def __init__(self, row_id: int, field: str, reason: str) -> None:
        super().__init__(
            f"incident feed row {row_id}: {field}: {reason}",
            row_id=row_id,
            field=field,
            reason=reason,
        )
        self.row_id = row_id
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class SyncSummary:
    """What one pass did: feed rows fed, own rows skipped, rows or entries refused, incidents
    stored and nodes quarantined (``stale``: a rebuild raced the pass, which dropped its rows)."""

    fed: int = 0
    skipped: int = 0
    refused: int = 0
    incidents: tuple[str, ...] = ()
    quarantined: tuple[str, ...] = ()
    stale: bool = False


# -- the feed: what a correlator saw, compacted ------------------------------------------------
@dataclass
class _Entry:
    aggregate_id: str
    count: int
    first: Mapping[str, Any]
    first_ts: float
    last: Mapping[str, Any]
    last_ts: float


def _shape(alert: Mapping[str, Any], aggregate_id: str) -> str:
    """What the correlator reads of an alert, except its time and ports."""
    inner = alert.get("alert")
    inner = inner if isinstance(inner, Mapping) else {}
    cnt = cntrust_of(alert)
    fields = [
        aggregate_id,
        alert.get("src_ip"),
        alert.get("dest_ip"),
        inner.get("signature_id"),
        inner.get("severity"),
        inner.get("category"),
        *(cnt.get(key) for key in _SHAPE_KEYS),
    ]
    return json.dumps(fields, sort_keys=True, default=str)


def _published(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The record as published: what the correlator reads of it."""
    record = {key: alert[key] for key in _KEPT if key in alert}
    inner = alert.get("alert")
    if isinstance(inner, Mapping):
        record["alert"] = {key: inner[key] for key in _KEPT_ALERT if key in inner}
    if isinstance(alert.get("cntrust"), Mapping):
        record["cntrust"] = dict(alert["cntrust"])
    return record


def compact(kept: Sequence[tuple[Mapping[str, Any], str]]) -> list[dict[str, Any]]:
    """The feed entries of an ingest's kept alerts (see the module docstring, step 1)."""
    entries: dict[str, _Entry] = {}
    for alert, aggregate_id in kept:
        try:
            ts = ts_of(alert)
        except AlertFormatError:
            continue  # the correlator refuses it too (and counts it)
        key = _shape(alert, aggregate_id)
        entry = entries.get(key)
        if entry is None:
            entries[key] = _Entry(aggregate_id, 1, alert, ts, alert, ts)
            continue
        entry.count += 1
        if ts < entry.first_ts:
            entry.first, entry.first_ts = alert, ts
        if ts >= entry.last_ts:
            entry.last, entry.last_ts = alert, ts
    return [
        {
            "aggregate_id": e.aggregate_id,
            "count": e.count,
            "alerts": [
                _published(a) for a in ((e.first,) if e.first is e.last else (e.first, e.last))
            ],
        }
        for e in entries.values()
    ]


def entry_inputs(row_id: int, index: int, entry: Any) -> list[tuple[Mapping[str, Any], str]]:
    """The correlator input one stored entry stands for: its earliest record once, then its
    latest until the entry's count is reached.

    Raises:
        FeedFormatError: not an object, a bad aggregate id or count, or a record that is not
            an alert this scheduler stores (the field named as ``check_alert`` names it).
    """
    where = f"entries[{index}]"
    if not isinstance(entry, Mapping):
        raise FeedFormatError(row_id, where, "not an object")
    aggregate_id = entry.get("aggregate_id")
    if not isinstance(aggregate_id, str) or not 0 < len(aggregate_id) <= 32:
        raise FeedFormatError(row_id, f"{where}.aggregate_id", "not a string of 1..32")
    count = entry.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_COUNT:
        raise FeedFormatError(row_id, f"{where}.count", f"not an integer in 1..{MAX_COUNT}")
    records = entry.get("alerts")
    if not isinstance(records, list) or not 1 <= len(records) <= min(2, count):
        raise FeedFormatError(row_id, f"{where}.alerts", "not a list of 1..min(2, count) alerts")
    for i, record in enumerate(records):
        try:
            check_alert(record)
        except AlertFormatError as exc:
            raise FeedFormatError(row_id, f"{where}.alerts[{i}].{exc.field}", exc.reason) from exc
    return [(records[0], aggregate_id)] + [(records[-1], aggregate_id)] * (count - 1)


def enrollment_of(row_id: int, body: Any) -> EnrollmentEvent:
    """The enrollment a stored row holds. Raises FeedFormatError naming the bad field."""
    if not isinstance(body, Mapping):
        raise FeedFormatError(row_id, "body", "not an object")
    ts = body.get("ts")
    if not isinstance(ts, int | float) or isinstance(ts, bool) or not math.isfinite(ts):
        raise FeedFormatError(row_id, "ts", "not a finite number")
    if not 0 <= ts < MAX_EPOCH_S:
        raise FeedFormatError(row_id, "ts", "before 1970 or after 2242")
    texts = []
    for name, limit in (("node_id", 64), ("operator", 200), ("source_ip", 64)):
        value = body.get(name)
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            raise FeedFormatError(row_id, name, f"not a string of 1..{limit}")
        texts.append(value)
    return EnrollmentEvent(float(ts), texts[0], texts[1], texts[2])


# -- the tail ----------------------------------------------------------------------------------
def tail_start(session: Session) -> tuple[int, dict[int, float]]:
    """Cursor at the newest feed id, and the ids missing just below it as gaps (transactions
    still in flight)."""
    top = int(session.exec(select(func.max(IncidentFeed.id))).one() or 0)
    present = set(
        session.exec(
            select(IncidentFeed.id).where(col(IncidentFeed.id) > max(0, top - GAP_LOOKBACK))
        )
    )
    low = min((int(i) for i in present if i is not None), default=top)  # older ids: pruned
    mono = time.monotonic()
    return top, {i: mono for i in range(low + 1, top + 1) if i not in present}


class IncidentSync:
    """Shares one incident layer's correlator input with the other replicas (see the module
    docstring)."""

    def __init__(self, layer: IncidentLayer) -> None:
        self.layer = layer
        self.origin = uuid.uuid4().hex[:16]
        self.cursor = 0
        self.gaps: dict[int, float] = {}  # id -> monotonic time first missed
        self.generation = 0
        cfg = layer.config
        self.retention_s = max(RETENTION_S, 2 * cfg.window_s, 2 * cfg.enrollment_window_s)
        self.passes = 0
        self.fed = 0
        self.refused: dict[str, int] = {}
        self._dirty = False  # fed (or a store failed) since the incidents were last stored
        self._pass_lock = threading.Lock()
        # sync every interval_s and prune every PRUNE_EVERY_S on a thread (``loop.start``)
        self.loop = Periodic("cntrust-incident-sync", self._tick, layer.service)
        self._pruned_at = time.monotonic()

    # -- publishing (in the caller's transaction) ------------------------------------------------
    def publish(self, session: Session, kept: Sequence[tuple[Mapping[str, Any], str]]) -> None:
        """Store the alerts an ingest kept for the other replicas (one row, or none)."""
        entries = compact(kept)
        if entries:
            session.add(self._row(FEED_ALERTS, {"entries": entries}))

    def publish_enrollment(self, session: Session, event: EnrollmentEvent) -> None:
        """Store an enrollment this replica observed for the other replicas."""
        body = {
            "ts": event.ts,
            "node_id": event.node_id,
            "operator": event.operator_id,
            "source_ip": event.source_ip,
        }
        session.add(self._row(FEED_ENROLLMENT, body))

    def _row(self, kind: str, body: dict[str, Any]) -> IncidentFeed:
        return IncidentFeed(origin=self.origin, kind=kind, at=self.layer.service.clock(), body=body)

    # -- a rebuild -------------------------------------------------------------------------------
    def begin(self, session: Session) -> list[EnrollmentEvent]:
        """Start a correlator generation (the layer's rebuild): the cursor moves to the newest
        feed id; returns the enrollments of the last enrollment window to replay, oldest
        first (unreadable rows are refused and logged)."""
        top, gaps = tail_start(session)
        newest = session.exec(
            select(func.max(IncidentFeed.at)).where(IncidentFeed.kind == FEED_ENROLLMENT)
        ).one()
        rows: list[IncidentFeed] = []
        if newest is not None:
            horizon = float(newest) - self.layer.config.enrollment_window_s
            rows = list(
                session.exec(
                    select(IncidentFeed)
                    .where(
                        IncidentFeed.kind == FEED_ENROLLMENT,
                        col(IncidentFeed.at) >= horizon,
                        col(IncidentFeed.id) <= top,
                    )
                    .order_by(col(IncidentFeed.id))
                )
            )
        events = []
        for row in rows:
            try:
                events.append(enrollment_of(int(row.id or 0), row.body))
            except FeedFormatError as exc:
                self._refuse(exc)
        with self.layer.lock:
            self.generation += 1
            self.cursor, self.gaps = top, gaps
            self._dirty = False
        return events

    # -- one pass --------------------------------------------------------------------------------
    def sync(self) -> SyncSummary:
        """Feed what other replicas published since the last pass to the correlator and store
        the incidents that opened or changed (one pass at a time)."""
        with self._pass_lock:
            return self._pass()

    def _pass(self) -> SyncSummary:
        layer = self.layer
        with layer.lock:
            generation = self.generation
            expire_gaps(self.gaps, time.monotonic(), GAP_TIMEOUT_S)
        fed = skipped = refused = 0
        with layer.service.read() as session:
            for _ in range(MAX_BATCHES_PER_PASS):
                with layer.lock:
                    cond = tail_where(col(IncidentFeed.id), self.cursor, self.gaps)
                rows = list(
                    session.exec(
                        select(IncidentFeed).where(cond).order_by(col(IncidentFeed.id)).limit(BATCH)
                    )
                )
                with layer.lock:
                    if self.generation != generation:
                        return SyncSummary(stale=True)
                    f, s, r = self._apply(rows)
                fed, skipped, refused = fed + f, skipped + s, refused + r
                session.expunge_all()  # bodies can be large: keep one batch in memory
                if len(rows) < BATCH:
                    break
        incidents, quarantined = self._store()
        self.passes += 1
        self.fed += fed
        return SyncSummary(fed, skipped, refused, incidents, quarantined)

    def _apply(self, rows: list[IncidentFeed]) -> tuple[int, int, int]:
        """Feed the rows (holding the layer's lock)."""
        mono = time.monotonic()
        fed = skipped = refused = 0
        for row in rows:
            rid = int(row.id or 0)
            self.cursor = advance_tail(self.cursor, self.gaps, rid, mono, MAX_GAPS)
            if row.origin == self.origin:
                skipped += 1  # this correlator saw it live
                continue
            try:
                refused += self._feed(rid, row)
            except FeedFormatError as exc:
                self._refuse(exc)
                refused += 1
                continue
            except Exception:  # data another process wrote must never wedge the tail
                log.exception("incident feed row %d not correlated", rid)
                self.refused["error"] = self.refused.get("error", 0) + 1
                refused += 1
                continue
            fed += 1
        return fed, skipped, refused

    def _feed(self, rid: int, row: IncidentFeed) -> int:
        """Feed one row; returns how many of its entries were refused. Raises FeedFormatError
        for a row that cannot be read at all."""
        layer = self.layer
        self._dirty = True
        if row.kind == FEED_ENROLLMENT:
            layer.correlator.ingest_enrollment(enrollment_of(rid, row.body))
            return 0
        if row.kind != FEED_ALERTS:
            raise FeedFormatError(rid, "kind", f"unknown kind {str(row.kind)[:32]!r}")
        body = row.body
        entries = body.get("entries") if isinstance(body, Mapping) else None
        if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
            raise FeedFormatError(rid, "entries", f"not a list of at most {MAX_ENTRIES}")
        refused = 0
        inputs: list[tuple[Mapping[str, Any], str]] = []
        for index, entry in enumerate(entries):
            try:
                inputs.extend(entry_inputs(rid, index, entry))
            except FeedFormatError as exc:
                self._refuse(exc)
                refused += 1
        layer.correlate(inputs)
        return refused

    def _refuse(self, exc: FeedFormatError) -> None:
        log.warning("%s: skipped", exc)
        self.refused[exc.field] = self.refused.get(exc.field, 0) + 1

    def _store(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Store the incidents the fed rows opened or changed; a failed store is forgotten
        (stored again on the next pass) and logged."""
        layer = self.layer
        with layer.lock:
            if not self._dirty:
                return (), ()
            self._dirty = False
            items = layer._changed()
        if not items:
            return (), ()
        try:
            outcome = layer.service.write_sync(lambda s: layer.store(s, items))
        except Exception:
            log.exception(
                "storing %d synced incidents failed: retried on the next pass", len(items)
            )
            layer.forget([inc.incident_id for inc, _ in items])
            with layer.lock:
                self._dirty = True
            return (), ()
        return tuple(outcome.incidents), tuple(outcome.quarantined)

    # -- retention and the thread ----------------------------------------------------------------
    def prune(self) -> int:
        """Delete the feed rows older than ``retention_s`` but the newest (SQLite hands a
        deleted newest id out again, which a cursor standing on it would skip); returns how
        many."""
        cutoff = self.layer.service.clock() - self.retention_s
        table = IncidentFeed.__table__  # type: ignore[attr-defined]

        def op(session: Session) -> int:
            top = session.exec(select(func.max(IncidentFeed.id))).one() or 0
            result = session.connection().execute(
                sa.delete(table).where(table.c.at < cutoff, table.c.id < top)
            )
            return int(result.rowcount or 0)

        return int(self.layer.service.write_sync(op))

    def _tick(self) -> None:
        self.sync()
        if time.monotonic() - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = time.monotonic()
            self.prune()
