"""Scheduler replicas sharing one database share their trust evidence and quarantines.

Each replica's :class:`~scheduler.trust_wiring.TrustLayer` holds its own in-memory engine,
rebuilt from the stored evidence at start. :meth:`TrustSync.sync` (every ``interval_s`` on a
thread, or when called) brings the evidence and quarantines the other replicas stored since
into this engine:

1. it reads the :class:`~scheduler.tables.trust.TrustEvidence` rows with an ``id`` above its
   cursor, plus the ids it skipped earlier (ids are handed out at insert, and a transaction
   can commit after one that inserted later: each skipped id is kept as a gap and read again
   until its row appears or ``GAP_TIMEOUT_S`` passed);
2. it ingests each row once: a row whose evidence id the engine already counted (its own, or
   applied on an earlier pass, or by the rebuild) is skipped by id, so nothing is counted
   twice, also after a restart (the rebuild reads the cursor before the rows it ingests);
3. it mirrors the quarantines: an active :class:`~scheduler.tables.trust.TrustQuarantine` row
   it has not seen quarantines the node in this engine (placement excludes it, also after the
   node re-registers) unless this replica released the node while the pass read (the row
   read is stale: the next pass reads again); a row it knew that is no longer active
   (released) lifts the engine's quarantine unless another active row for the node remains;
4. a quarantine decision this engine reaches on evidence it tailed is taken through the
   layer's own quarantine path (cordon, requeue, record) unless a replica already took it:
   checked in the write transaction under a lock on the node row.

Invariants:
- The tail state belongs to one engine generation: a rebuild while a pass was reading makes
  the pass drop what it read; the next pass starts from the rebuild's cursor.
- The layer's lock is never held while waiting for the committer (its operations take it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlmodel import Session, col, func, select

import trust
from scheduler.models import Node
from scheduler.periodic import Periodic, advance_tail, expire_gaps, tail_where
from scheduler.tables.trust import TrustEvidence, TrustQuarantine

if TYPE_CHECKING:
    from scheduler.trust_wiring import TrustLayer

log = logging.getLogger(__name__)

GAP_TIMEOUT_S = 60.0  # a skipped id whose row has not appeared by then was rolled back
GAP_LOOKBACK = 1000  # at start, ids this far below the newest are checked for gaps
MAX_GAPS = 10_000
BATCH = 1000
MAX_BATCHES_PER_PASS = 20


@dataclass
class TailState:
    """Where one engine generation is in the shared tables."""

    generation: int = 0
    cursor: int = 0
    gaps: dict[int, float] = field(default_factory=dict)  # id -> monotonic time first missed
    quarantine_rows: dict[int, str] = field(default_factory=dict)  # active row id -> node


@dataclass(frozen=True)
class SyncSummary:
    """What one pass did (``stale``: a rebuild raced the pass, which dropped its rows)."""

    applied: int = 0
    skipped: int = 0
    refused: int = 0
    quarantined: tuple[str, ...] = ()
    released: tuple[str, ...] = ()
    taken: tuple[str, ...] = ()
    stale: bool = False


def tail_start(session: Session, generation: int) -> TailState:
    """The tail state of an engine rebuilt from the rows it is about to read: cursor at the
    newest id, and the missing ids just below it as gaps (transactions still in flight)."""
    top = session.exec(select(func.max(TrustEvidence.id))).one() or 0
    low = max(0, top - GAP_LOOKBACK)
    present = set(session.exec(select(TrustEvidence.id).where(col(TrustEvidence.id) > low)))
    now = time.monotonic()
    gaps = {i: now for i in range(low + 1, top + 1) if i not in present}
    return TailState(generation=generation, cursor=int(top), gaps=gaps)


class TrustSync:
    """Tails the shared trust tables into one layer's engine (see the module docstring)."""

    def __init__(self, layer: TrustLayer) -> None:
        self.layer = layer
        self.passes = 0
        self.applied = 0
        self.skipped = 0
        # called after each pass on the sync thread (e.g. sweeping abandoned replicas)
        self.periodic: list[Callable[[], None]] = []
        # sync, then the periodic callbacks, every interval_s on a thread (``loop.start``)
        self.loop = Periodic("cntrust-trust-sync", self._tick, layer.service)

    # -- one pass ---------------------------------------------------------------------------
    def sync(self) -> SyncSummary:
        """Apply what other replicas stored since the last pass; take the quarantines this
        engine decides on it that nobody took yet."""
        layer = self.layer
        with layer.lock:
            layer._fresh()
            tail = layer.tail
            generation = tail.generation
            since = layer.release_seq  # releases after this may postdate the rows read below
            expire_gaps(tail.gaps, time.monotonic(), GAP_TIMEOUT_S)
        applied = skipped = refused = 0
        quarantined: list[str] = []
        released: list[str] = []
        decisions: list[trust.QuarantineDecision] = []
        with layer.service.read() as session:
            for _ in range(MAX_BATCHES_PER_PASS):
                with layer.lock:
                    cond = tail_where(col(TrustEvidence.id), tail.cursor, tail.gaps)
                rows = list(
                    session.exec(
                        select(TrustEvidence)
                        .where(cond)
                        .order_by(col(TrustEvidence.id))
                        .limit(BATCH)
                    )
                )
                with layer.lock:
                    if layer.tail is not tail or tail.generation != generation:
                        return SyncSummary(stale=True)
                    a, s, r = self._apply(session, rows, tail, decisions)
                applied, skipped, refused = applied + a, skipped + s, refused + r
                if len(rows) < BATCH:
                    break
            active = self._active(session)
            with layer.lock:
                if layer.tail is not tail or tail.generation != generation:
                    return SyncSummary(stale=True)
                quarantined, released = self._mirror(session, active, tail, since)
                if applied or quarantined or released:
                    layer._views.clear()
        held = {q.node_id for q in active}
        taken = tuple(d.node_id for d in decisions if d.node_id not in held and self._take(d))
        self.passes += 1
        self.applied += applied
        self.skipped += skipped
        return SyncSummary(applied, skipped, refused, tuple(quarantined), tuple(released), taken)

    def _apply(
        self,
        session: Session,
        rows: list[TrustEvidence],
        tail: TailState,
        decisions: list[trust.QuarantineDecision],
    ) -> tuple[int, int, int]:
        layer = self.layer
        engine = layer.engine
        mono = time.monotonic()
        applied = skipped = refused = 0
        for row in rows:
            rid = int(row.id or 0)
            tail.cursor = advance_tail(tail.cursor, tail.gaps, rid, mono, MAX_GAPS)
            if engine.has_seen(row.evidence_id):
                skipped += 1  # this engine's own evidence, or applied before
                continue
            try:
                ev = row.evidence()
            except trust.EvidenceError as exc:
                log.warning("unreadable trust evidence %s: %s", row.evidence_id, exc)
                layer.count_refusal("unreadable")
                refused += 1
                continue
            layer._ensure(session, ev.node_id)
            now = max(layer.service.clock(), float(row.recorded_at))
            result = engine.ingest(ev, authenticated=True, now=now)
            if not result.accepted:
                layer.count_refusal(result.reason)
                refused += 1
                continue
            applied += 1
            if result.quarantine is not None:
                decisions.append(result.quarantine)
        return applied, skipped, refused

    def _active(self, session: Session) -> list[TrustQuarantine]:
        """The active quarantine rows, oldest first."""
        return list(
            session.exec(
                select(TrustQuarantine)
                .where(col(TrustQuarantine.released_at).is_(None))
                .order_by(col(TrustQuarantine.id))
            )
        )

    def _mirror(
        self, session: Session, active: list[TrustQuarantine], tail: TailState, since: int
    ) -> tuple[list[str], list[str]]:
        layer = self.layer
        rows = {int(q.id or 0): q for q in active}
        quarantined: list[str] = []
        stale: set[int] = set()
        for rid, q in rows.items():
            if rid in tail.quarantine_rows or not layer._ensure(session, q.node_id):
                continue
            if layer.released_since(q.node_id, since):
                stale.add(rid)  # read before this replica's release of the node committed
                continue
            if q.node_id not in layer._reasons:  # not this replica's own quarantine
                quarantined.append(q.node_id)
            layer.engine.quarantine(q.node_id)
            layer._reasons[q.node_id] = q.reason
        still = {q.node_id for q in active}
        released: list[str] = []
        for rid, node_id in tail.quarantine_rows.items():
            if rid in rows or node_id in still or node_id not in layer._registered:
                continue
            layer.engine.release(node_id)
            layer._reasons.pop(node_id, None)
            released.append(node_id)
        tail.quarantine_rows = {rid: q.node_id for rid, q in rows.items() if rid not in stale}
        return quarantined, released

    def _take(self, decision: trust.QuarantineDecision) -> bool:
        """Take a quarantine this engine decided on tailed evidence, unless a replica did."""
        layer = self.layer

        def op(session: Session) -> bool:
            # the node row lock orders replicas deciding about the same node (PostgreSQL);
            # SQLite has one writer at a time anyway
            node = session.exec(
                select(Node).where(Node.id == decision.node_id).with_for_update()
            ).first()
            taken = session.exec(
                select(TrustQuarantine.id).where(
                    TrustQuarantine.node_id == decision.node_id,
                    col(TrustQuarantine.released_at).is_(None),
                )
            ).first()
            with layer.lock:
                layer._fresh()
                if node is None or taken is not None:
                    return False  # the next pass mirrors the other replica's quarantine
                layer._mutated(session)
                layer._quarantine(session, decision)
                return True

        try:
            return bool(layer.service.write_sync(op))
        except Exception:
            log.exception("taking the trust quarantine of %s failed", decision.node_id)
            with layer.lock:
                layer._stale = True  # the engine holds a recommendation nobody acted on
            return False

    # -- the thread -------------------------------------------------------------------------
    def _tick(self) -> None:
        self.sync()
        for hook in self.periodic:
            hook()
