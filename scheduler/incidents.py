"""The whole-network layer wired into the scheduler: alerts in, incidents and responses out.

:class:`IncidentLayer` (one per service, ``service.incidents``) owns one
``ids.layers.Correlator``. Every batch of alerts the scheduler stores (sensor batches on
``POST /v1/alerts``, element alerts from verified node telemetry) goes through
:func:`ingest_batch`:

1. the batch is suppressed, aggregated and stored (``scheduler.alerts.ingest``) and, in the
   same transaction, each new aggregate that blames a node becomes one piece of trust
   evidence (``TrustLayer.record_eve_alert``), so a flood folded into one aggregate is one
   piece of evidence, not thousands;
2. the alerts kept (not suppressed) feed the correlator; the incidents it opens or
   escalates are stored (``incident`` table, grouping the aggregates by id and naming their
   nodes) and ``decide_response`` decides: quarantine through :mod:`scheduler.quarantine`
   (source ``incident``, reference = incident id) and, with ``settings.incident_revoke``,
   revocation of the node's identity (the identity layer's revoke path). Each action is
   recorded with ``service.record_response`` in the transaction that takes it.

Replicas sharing one database correlate as one: each publishes what it correlates and feeds
the others' (:mod:`scheduler.incident_sync`, ``layer.sync``); a stored incident is the one of
its activity, and each action on a node is taken once (:mod:`scheduler.incident_claims`).

Which node an alert blames: an element-layer alert blames the node it is about
(``cntrust.node_id``); a perimeter alert blames the node it came from
(``cntrust.src_node_id``), never the node it targets (a scanned or flooded node is a victim,
and blaming it would let any outsider lower a node's trust).

Invariants:
- the correlator is fed outside the database transaction and under ``lock``; it is rebuilt
  at install from the stored aggregates of the last window (each with its sources) and the
  published enrollments of the last enrollment window, so a restart keeps open groups; a
  rebuilt incident resolves to its stored row (same kind and group key, within a window);
- an analyst's release is final for that incident: an incident already answered with a
  quarantine of a node (active or released) never quarantines that node again, on any
  replica (the response claim outlives the quarantine).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

import trust
from ids.layers import (
    INCIDENT_KINDS,
    AlertFormatError,
    Correlator,
    CorrelatorConfig,
    EnrollmentEvent,
    Incident,
    ResponsePolicy,
    decide_response,
)
from ids.layers.eve import eve_timestamp
from scheduler import alerts, incident_claims, quarantine
from scheduler.incident_sync import IncidentSync
from scheduler.models import Node
from scheduler.service import ResponseAction
from scheduler.tables.alerts import AlertAggregate
from scheduler.tables.incidents import IncidentRecord
from scheduler.tables.quarantine import NodeQuarantine

log = logging.getLogger(__name__)

MAX_ALERT_IDS = 256
MAX_KEY_MAP = 100_000
NETWORK_SID_BASE = 1_992_000  # whole-network detections (ids.layers.catalog ranges)
ACTION_REVOKE = "response.revoke"


@dataclass
class BatchOutcome:
    """What one batch did: the alert ingest counts, incidents stored and actions taken."""

    ingest: alerts.IngestResult
    incidents: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    evidence: int = 0


def blamed_node(alert: Mapping[str, Any]) -> str | None:
    """The node an alert is evidence against (see the module docstring), or None."""
    cnt = alert.get("cntrust")
    if not isinstance(cnt, Mapping):
        return None
    node = cnt.get("node_id") if cnt.get("layer") == "element" else cnt.get("src_node_id")
    return node if isinstance(node, str) and 0 < len(node) <= 64 else None


class IncidentLayer:
    """One correlator per service, its store and its response path."""

    def __init__(
        self,
        service: Any,
        *,
        config: CorrelatorConfig | None = None,
        policy: ResponsePolicy | None = None,
    ) -> None:
        self.service = service
        self.config = config or CorrelatorConfig()
        revoke = bool(getattr(service.settings, "incident_revoke", False))
        self.policy = policy or ResponsePolicy(revoke_enabled=revoke)
        self.lock = threading.RLock()
        self.correlator = Correlator(self.config)
        self._aggregate_of: OrderedDict[str, str] = OrderedDict()
        self._stored: dict[str, tuple[int, float, int]] = {}
        self.skipped = 0
        self.sync: IncidentSync | None = None  # sharing with other replicas (install sets it)

    @classmethod
    def install(
        cls, service: Any, *, sync_interval_s: float | None = None, **options: Any
    ) -> IncidentLayer:
        """Build the layer once per service with its replica sync (a thread every
        ``sync_interval_s`` when given, else ``layer.sync.sync()`` when called), rebuild the
        correlator, and set ``service.incidents``. A second call returns the installed layer."""
        layer = getattr(service, "incidents", None)
        if isinstance(layer, IncidentLayer):
            return layer
        layer = cls(service, **options)
        layer.sync = IncidentSync(layer)
        layer.restore()
        service.incidents = layer
        if sync_interval_s is not None:
            layer.sync.loop.start(sync_interval_s)
        return layer

    # -- correlation --------------------------------------------------------------------
    def restore(self) -> int:
        """Rebuild the correlator from the aggregates seen in the last window (their latest
        record, with every source kept); store incidents that were lost. Returns how many
        aggregates were replayed."""
        rows: list[AlertAggregate] = []
        known: dict[str, tuple[int, float, int]] = {}
        with self.service.read() as session:
            enrollments = self.sync.begin(session) if self.sync is not None else []
            newest = session.exec(
                select(AlertAggregate.last_seen).order_by(col(AlertAggregate.last_seen).desc())
            ).first()
            if newest is not None:
                horizon = newest - self.config.window_s
                rows = list(
                    session.exec(
                        select(AlertAggregate)
                        .where(AlertAggregate.last_seen >= horizon)
                        .order_by(col(AlertAggregate.last_seen), col(AlertAggregate.id))
                    )
                )
                known = {
                    r.id: (r.alert_count, r.last_seen, r.severity)
                    for r in session.exec(
                        select(IncidentRecord).where(IncidentRecord.last_seen >= horizon)
                    )
                }
        replay = []
        for row in rows:
            record = alerts.eve_of(row)
            cnt = dict(record.get("cntrust") or {})
            cnt["sources"] = list(row.sources)
            cnt["distinct_sources"] = len(row.sources) + row.sources_overflow
            record["cntrust"] = cnt
            replay.append((record, row.id))
        with self.lock:
            self.correlator = Correlator(self.config)
            self._aggregate_of.clear()
            self._stored = dict(known)
            self.correlate(replay)
            for event in enrollments:
                self.correlator.ingest_enrollment(event)
            changed = self._changed()
        if changed:
            self.service.write_sync(lambda s: self.store(s, changed))
        return len(replay)

    def correlate(self, kept: Sequence[tuple[Mapping[str, Any], str]]) -> None:
        """Feed alerts (each with its aggregate id) to the correlator. Holds ``lock``."""
        with self.lock:
            for alert, aggregate_id in kept:
                try:
                    self.correlator.ingest(alert)
                except AlertFormatError as exc:
                    self.skipped += 1
                    log.warning("alert not correlated: %s", exc)
                    continue
                key = _alert_key(alert)
                if key is not None:
                    self._aggregate_of[key] = aggregate_id
                    self._aggregate_of.move_to_end(key)
                    while len(self._aggregate_of) > MAX_KEY_MAP:
                        self._aggregate_of.popitem(last=False)

    def _changed(self) -> list[tuple[Incident, list[str]]]:
        """Incidents new or changed since last stored, with the aggregate ids they group."""
        out = []
        for inc in self.correlator.incidents():
            state = (inc.alert_count, inc.last_seen, inc.severity)
            if self._stored.get(inc.incident_id) == state:
                continue
            self._stored[inc.incident_id] = state
            ids = sorted({self._aggregate_of[k] for k in inc.alert_keys if k in self._aggregate_of})
            out.append((inc, ids))
        return out

    def pending(self) -> list[tuple[Incident, list[str]]]:
        """The incidents to store after a batch was correlated. Holds ``lock``."""
        with self.lock:
            return self._changed()

    def forget(self, incident_ids: Sequence[str]) -> None:
        """A store of these incidents did not commit: store them again next time."""
        with self.lock:
            for ident in incident_ids:
                self._stored.pop(ident, None)

    # -- storing and responding -----------------------------------------------------------
    def store(self, session: Session, items: Sequence[tuple[Incident, list[str]]]) -> BatchOutcome:
        """Upsert the incidents and act on each new or escalated one (a committer op).
        Each is first resolved to its stored incident with its group locked (groups in id
        order, so replicas storing several wait for each other instead of deadlocking).
        Raises incident_claims.IncidentLockError when a group cannot be locked."""
        outcome = BatchOutcome(alerts.IngestResult())
        now = self.service.clock()
        for local, aggregate_ids in sorted(
            items, key=lambda it: incident_claims.group_id(it[0].kind, it[0].group_key)
        ):
            window_s = incident_claims.window_of(self.config, local.kind)
            inc = incident_claims.canonical(session, local, window_s, now)
            row = session.get(IncidentRecord, inc.incident_id)
            if row is None:
                row = IncidentRecord(
                    id=inc.incident_id,
                    kind=inc.kind,
                    severity=inc.severity,
                    first_seen=inc.first_seen,
                    last_seen=inc.last_seen,
                    group_key=inc.group_key[:300],
                    alert_count=inc.alert_count,
                    created_at=now,
                    updated_at=now,
                )
            escalated = inc.severity < row.severity
            row.severity = min(row.severity, inc.severity)
            row.last_seen = max(row.last_seen, inc.last_seen)
            row.alert_count = max(row.alert_count, inc.alert_count)
            row.node_ids = sorted(set(row.node_ids) | set(inc.node_ids))
            row.sources = sorted(set(row.sources) | set(inc.sources))[:1024]
            row.signature_ids = sorted(set(row.signature_ids) | set(inc.signature_ids))
            row.reasons = list(dict.fromkeys([*row.reasons, *inc.reasons]))[:64]
            row.alert_ids = sorted(set(row.alert_ids) | set(aggregate_ids))[:MAX_ALERT_IDS]
            row.updated_at = now
            if row.id not in outcome.incidents:
                outcome.incidents.append(row.id)
            if not row.response or escalated or row.response.get("action") == "none":
                self._respond(session, row, inc, outcome)
            session.add(row)
        return outcome

    def _respond(
        self, session: Session, row: IncidentRecord, inc: Incident, outcome: BatchOutcome
    ) -> None:
        decision = decide_response(inc, self.policy)
        earlier = row.response or {}  # an escalation keeps what the incident already caused
        response: dict[str, Any] = {
            "action": decision.action,
            "reasons": list(decision.reasons),
            "quarantined": list(earlier.get("quarantined") or []),
            "revoked": list(earlier.get("revoked") or []),
            "decided_at": self.service.clock(),
        }
        trust_layer = getattr(self.service, "trust", None)
        for node_id in decision.node_ids:
            with session.no_autoflush:
                node = session.get(Node, node_id) if len(node_id) <= 64 else None
            if node is None:
                response["reasons"].append(f"node {node_id} is not in the inventory: no action")
                continue
            if trust_layer is not None and inc.kind in self.policy.quarantine_kinds:
                outcome.evidence += _incident_evidence(session, trust_layer, inc, node_id)
            if decision.quarantine and self._quarantine(session, inc, node_id, decision.reasons):
                response["quarantined"] = sorted({*response["quarantined"], node_id})
                outcome.quarantined.append(node_id)
            if decision.revoke and self._revoke(session, inc, node_id):
                response["revoked"] = sorted({*response["revoked"], node_id})
                outcome.revoked.append(node_id)
        if decision.revoke:
            response["reasons"].append(
                "a revoked certificate cannot be un-revoked: the node re-enrolls with a new "
                "join token to come back"
            )
        row.response = response

    def _claim(self, session: Session, inc: Incident, node_id: str, action: str) -> bool:
        """Whether this transaction takes ``action`` on the node (once across replicas)."""
        origin = self.sync.origin if self.sync is not None else "local"
        now = self.service.clock()
        return incident_claims.claim(session, inc.incident_id, node_id, action, origin, now)

    def _quarantine(
        self, session: Session, inc: Incident, node_id: str, reasons: Sequence[str]
    ) -> bool:
        if not self._claim(session, inc, node_id, "quarantine"):
            return False  # taken before, here or by another replica (and maybe released)
        answered = session.exec(
            select(NodeQuarantine.id).where(
                NodeQuarantine.node_id == node_id,
                NodeQuarantine.source == "incident",
                NodeQuarantine.reference_id == inc.incident_id,
            )
        ).first()
        if answered is not None:
            return False  # acted on before claims existed (maybe released since): final
        reason = f"incident {inc.incident_id} {inc.kind} severity {inc.severity}: " + "; ".join(
            inc.reasons
        )
        quarantine.quarantine_node(
            self.service,
            session,
            node_id,
            source="incident",
            reason=reason[:1000],
            reference_id=inc.incident_id,
            actor="incident-response",
        )
        return True

    def _revoke(self, session: Session, inc: Incident, node_id: str) -> bool:
        from scheduler.identity_layer import install as identity_layer

        if not self._claim(session, inc, node_id, "revoke"):
            return False
        reason = f"incident {inc.incident_id} {inc.kind}"
        result = identity_layer(self.service).revoke_node(node_id, reason, "incident-response")(
            session
        )
        if result.get("already"):
            return False
        self.service.record_response(
            session,
            ResponseAction(
                action=ACTION_REVOKE,
                subject=node_id,
                reason=reason,
                actor="incident-response",
                source="incident",
                at=self.service.clock(),
                detail={"incident_id": inc.incident_id, "revocation": result},
            ),
        )
        return True


def _alert_key(alert: Mapping[str, Any]) -> str | None:
    from ids.layers import alert_key

    try:
        return alert_key(alert)
    except AlertFormatError:
        return None


def _incident_evidence(session: Session, layer: Any, inc: Incident, node_id: str) -> int:
    """One piece of trust evidence per incident and node (replays are refused)."""
    sid = NETWORK_SID_BASE + 1 + INCIDENT_KINDS.index(inc.kind)
    eve = {
        "event_type": "alert",
        "timestamp": eve_timestamp(inc.first_seen),
        "community_id": inc.incident_id,
        "alert": {
            "signature_id": sid,
            "severity": max(1, min(3, inc.severity)),
            "signature": f"CNTRUST NETWORK {inc.kind}",
        },
    }
    result = layer.record_eve_alert(session, eve, node_id=node_id, sensor="incident")
    return 1 if result.accepted else 0


def alert_evidence(session: Session, layer: Any, result: alerts.IngestResult, sensor: str) -> int:
    """Trust evidence for the aggregates this ingest created that blame a node: one item per
    aggregate (its first record), so a flood folded into one aggregate counts once."""
    new = set(result.new_ids)
    done: set[str] = set()
    accepted = 0
    for alert, aggregate_id in result.kept:
        if aggregate_id not in new or aggregate_id in done:
            continue
        node_id = blamed_node(alert)
        if node_id is None:
            continue
        done.add(aggregate_id)
        eve = {**alert, "community_id": f"agg:{aggregate_id}", "flow_id": None}
        sev = eve.get("alert", {}).get("severity")
        if isinstance(sev, int) and sev > 3:
            eve["alert"] = {**eve["alert"], "severity": 3}
        try:
            outcome = layer.record_eve_alert(session, eve, node_id=node_id, sensor=sensor)
        except trust.EvidenceError as exc:  # the alert is stored either way
            log.warning("alert %s gives no trust evidence: %s", aggregate_id, exc)
            continue
        accepted += 1 if outcome.accepted else 0
    return accepted


async def ingest_batch(
    service: Any,
    batch: Sequence[Mapping[str, Any]],
    sensor: str,
    track: str,
    *,
    before: Callable[[Session], None] | None = None,
) -> BatchOutcome:
    """Store a validated alert batch, record trust evidence, correlate, store incidents and
    respond (see the module docstring). ``before(session)`` runs first in the ingest's
    transaction (e.g. to claim a telemetry sequence number)."""
    layer = IncidentLayer.install(service)
    trust_layer = getattr(service, "trust", None)
    now = service.clock()

    def op(session: Session) -> tuple[alerts.IngestResult, int]:
        if before is not None:
            before(session)
        result = alerts.ingest(session, batch, now, track, sensor)
        if layer.sync is not None:  # the other replicas' correlators see these alerts too
            layer.sync.publish(session, result.kept)
        evidence = alert_evidence(session, trust_layer, result, sensor) if trust_layer else 0
        return result, evidence

    result, evidence = await service.write(op)
    layer.correlate(result.kept)
    items = layer.pending()
    outcome = BatchOutcome(result, evidence=evidence)
    if items:
        try:
            stored = await service.write(lambda s: layer.store(s, items))
        except Exception:
            layer.forget([inc.incident_id for inc, _ in items])
            raise
        outcome.incidents = stored.incidents
        outcome.quarantined = stored.quarantined
        outcome.revoked = stored.revoked
        outcome.evidence += stored.evidence
    return outcome


async def observe_enrollment(
    service: Any, node_id: str, operator: str, source_ip: str, at: float
) -> list[str]:
    """Feed one successful enrollment to the correlator (Sybil bursts from one operator or
    one network), publish it for the other replicas (and the rebuild after a restart) and
    store the incidents it opens. Returns their ids."""
    layer = IncidentLayer.install(service)
    event = EnrollmentEvent(at, node_id, operator, source_ip)
    with layer.lock:
        layer.correlator.ingest_enrollment(event)
    items = layer.pending()
    sync = layer.sync
    if not items and sync is None:
        return []

    def op(session: Session) -> BatchOutcome:
        if sync is not None:
            sync.publish_enrollment(session, event)
        return layer.store(session, items)

    try:
        stored = await service.write(op)
    except Exception:  # the enrollment is committed: log, and store these next time
        log.exception("enrollment %s not published or its incidents not stored", node_id)
        layer.forget([inc.incident_id for inc, _ in items])
        return []
    return stored.incidents


def incident_view(row: IncidentRecord) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "severity": row.severity,
        "first_seen": row.first_seen,
        "last_seen": row.last_seen,
        "group_key": row.group_key,
        "alert_count": row.alert_count,
        "node_ids": list(row.node_ids),
        "sources": list(row.sources),
        "signature_ids": list(row.signature_ids),
        "reasons": list(row.reasons),
        "alert_ids": list(row.alert_ids),
        "response": dict(row.response),
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }
