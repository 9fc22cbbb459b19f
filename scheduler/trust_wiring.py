"""The trust layer wired into the scheduler: evidence in, placement and quarantine out.

:class:`TrustLayer` owns one :class:`trust.TrustEngine` (clock = the service's clock) and:

- turns every finished task into task-outcome evidence inside the reporting transaction
  (succeeded / failed / timeout; the evidence id is ``task:<id>:<attempt>``, so a replayed
  report is refused, never counted twice) and stores each accepted item as a
  :class:`~scheduler.tables.trust.TrustEvidence` row in that same transaction (queued, and
  inserted with the transaction's other items in one statement just before it commits);
- places by trust (stages in :mod:`scheduler.trust_placement`): ``TrustFilter`` excludes
  nodes behind a hard gate or in quarantine, naming the engine's reason; ``TrustRanker``
  adds the node's score in [0, 1] to the load ranker's, plus an exploration bonus on a
  deterministic ``exploration_share`` of the tasks for nodes still being learned
  (newcomers), so newcomers always get work;
- turns an engine quarantine decision into a cordoned node and requeued work (each task
  with a reason naming the decision), in the transaction that brought the evidence;
- rebuilds the engine from the stored evidence and quarantines (:meth:`TrustLayer.restore`)
  on start, and again whenever a transaction that changed the engine rolled back;
- applies the evidence and quarantines other scheduler replicas stored in the shared database
  (:mod:`scheduler.trust_sync` tails the tables every ``sync_interval_s``).

Invariants:
- The engine is in-memory and not thread-safe: every access holds ``TrustLayer.lock``.
- An evidence id is accepted once: refused when a row holds it (committed, by any replica)
  or this transaction queued it already (even if the engine was rebuilt in between).
- The engine never holds evidence the database does not: a transaction that ingested
  evidence and did not commit marks the engine stale, and the next access rebuilds it from
  the committed rows before doing anything else.
- Attestation results are evidence (:meth:`TrustLayer.record_attestation`, on a change of
  status); the ``attestation_missing`` gate (no or expired result) is enforced only with
  ``require_attestation=True`` (the attestation layer's gate on); a contraindicated
  attestation, a revoked identity and a quarantine always exclude the node.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam, event
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, select

import trust
from scheduler import quarantine
from scheduler.db import after_commit, before_commit
from scheduler.errors import Conflict, NotFound
from scheduler.models import Node, NodeStatus, Task, TaskState
from scheduler.placement import NodeView
from scheduler.provenance_actions import service_actor
from scheduler.provenance_fields import fill_trust_at_placement
from scheduler.tables.trust import TrustEvidence, TrustQuarantine
from scheduler.trust_placement import NodeTrustView, TrustFilter, TrustRanker
from scheduler.trust_sync import TailState, TrustSync, tail_start

log = logging.getLogger(__name__)

SOURCE = "scheduler"
GATE_QUARANTINED = "trust.gate.quarantined"
GATE_ATTESTATION_MISSING = "trust.gate.attestation_missing"
VIEW_TTL_S = 1.0  # placement reuses a node's trust view this long (decay is days)

# the committer's hot path runs these once per evidence item: built once, Core (no ORM
# compile, no autoflush), parameters bound per call
_EVIDENCE = TrustEvidence.__table__  # type: ignore[attr-defined]
_STORED_EVIDENCE = sa.select(_EVIDENCE.c.id).where(
    _EVIDENCE.c.evidence_id == bindparam("evidence_id")
)
_INSERT_EVIDENCE = sa.insert(_EVIDENCE)

# session.info key: the trust layers whose engine the session's transaction changed, each
# with whether the transaction committed. Two listeners on every session (sqlmodel's too),
# registered once, watch it: a listener per session cost ~40 us per batch on the committer.
_CHANGED_KEY = "cntrust.trust.changed"


@event.listens_for(OrmSession, "after_commit")
def _transaction_committed(session: Session) -> None:
    changed: dict[TrustLayer, bool] | None = session.info.get(_CHANGED_KEY)
    if changed:
        for layer in changed:
            changed[layer] = True


@event.listens_for(OrmSession, "after_transaction_end")
def _transaction_ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None or _CHANGED_KEY not in session.info:
        return
    for layer, committed in session.info.pop(_CHANGED_KEY).items():
        layer._after_transaction(session, committed)


@dataclass(frozen=True)
class RestoreSummary:
    nodes: int
    evidence: int
    accepted: int
    refused: dict[str, int]
    quarantined: tuple[str, ...]


def evidence_task_id(task: Task) -> str:
    """The replay key of a task attempt's outcome."""
    return f"task:{task.id}:{task.attempt}"


def task_outcome(task: Task) -> str | None:
    """succeeded, timeout (the runner's "timed out" error), failed — or None.

    Only failures the node answers for count against it: a timeout, a task killed by
    a signal (exit code >= 128) or one the node could not start (126, 127). A command
    that ran and exited non-zero on its own is the tenant's failure, not evidence about
    the node: otherwise any tenant could cordon every node with ``sh -c 'exit 1'``.
    """
    if task.state == TaskState.SUCCEEDED:
        return "succeeded"
    if "timed out" in (task.reason or ""):
        return "timeout"
    code = task.exit_code
    if code is not None and (code >= 128 or code in (126, 127) or code < 0):
        return "failed"
    return None


class TrustLayer:
    """One trust engine per service, its evidence hook, placement stages and quarantine path."""

    def __init__(
        self,
        service: Any,
        *,
        config: trust.EngineConfig | None = None,
        require_attestation: bool = False,
        exploration_share: float = 0.1,
        trust_weight: float = 1.0,
        exploration_bonus: float = 1.0,
    ) -> None:
        if not 0.0 <= exploration_share <= 1.0:
            raise ValueError("exploration_share must be within [0, 1]")
        self.service = service
        self.config = config or trust.EngineConfig()
        self.require_attestation = require_attestation
        self.exploration_share = exploration_share
        self.trust_weight = trust_weight
        self.exploration_bonus = exploration_bonus
        self.lock = threading.RLock()
        self.engine = trust.TrustEngine(self.config, clock=service.clock)
        self.rebuilds = 0
        self.replayed_in_store = 0
        self._registered: set[str] = set()
        self._reasons: dict[str, str] = {}
        self._views: dict[str, NodeTrustView] = {}
        self._stale = False
        self._last_exploration: tuple[str, bool] = ("", False)
        # releases in flight, and the sequence number each node's last committed release got:
        # a sync pass that read the quarantine rows before a release committed must not
        # restore that quarantine (trust_sync)
        self._releasing: set[str] = set()
        self._released: dict[str, int] = {}
        self.release_seq = 0
        # where this replica is in the shared evidence and quarantine tables (trust_sync)
        self.tail = TailState()
        self.sync: TrustSync | None = None
        # refused evidence by reason code, over the life of the layer (engines are rebuilt)
        self.refused: dict[str, int] = {}
        # session.info key: the transaction's accepted evidence rows by evidence id, inserted
        # just before it commits
        self._queued_key = f"cntrust.trust.{id(self)}.evidence"

    @classmethod
    def install(
        cls, service: Any, *, sync_interval_s: float | None = None, **options: Any
    ) -> TrustLayer:
        """Build the layer, rebuild the engine from the database, and wire it into
        ``service``: the finished-task hook, the placement filter and ranker, and
        ``service.trust`` (the routes find the layer there). With ``sync_interval_s`` a
        thread applies other replicas' evidence and quarantines that often (stopped by
        ``service.close()``); without, :meth:`TrustSync.sync` runs only when called.

        Raises:
            RuntimeError: the service already has a trust layer (two engines would each
                see half of the evidence).
        """
        if isinstance(getattr(service, "trust", None), TrustLayer):
            raise RuntimeError("a trust layer is already installed on this service")
        layer = cls(service, **options)
        layer.restore()
        service.finished_hooks.append(layer.on_task_finished)
        service.pipeline.filters.append(TrustFilter(layer))
        service.pipeline.rankers.append(TrustRanker(layer))
        service.pipeline.placed_hooks.append(
            lambda session, task, node: fill_trust_at_placement(layer, task, node)
        )
        service.trust = layer
        layer.sync = TrustSync(layer)
        if sync_interval_s is not None:
            layer.sync.loop.start(sync_interval_s)
        return layer

    # -- rebuilding ---------------------------------------------------------------------
    def restore(self) -> RestoreSummary:
        """Rebuild the engine from the database: register every node (registration order,
        original times), re-ingest the stored evidence still inside the replay window, and
        re-apply the quarantines not released."""
        with self.lock:
            return self._rebuild()

    def _rebuild(self) -> RestoreSummary:
        engine = trust.TrustEngine(self.config, clock=self.service.clock)
        now = self.service.clock()
        registered: set[str] = set()
        refused: dict[str, int] = {}
        accepted = total = 0
        with self.service.read() as session:
            for node in session.exec(select(Node).order_by(col(Node.registered_at), col(Node.id))):
                _register(engine, node.id, node.operator, node.registered_at, node.labels)
                registered.add(node.id)
            # where tailing resumes: read before the rows, so nothing lands in between unseen
            tail = tail_start(session, self.tail.generation + 1)
            horizon = now - self.config.replay_window_s
            rows = session.exec(
                select(TrustEvidence)
                .where(col(TrustEvidence.observed_at) >= horizon)
                .order_by(col(TrustEvidence.observed_at), col(TrustEvidence.evidence_id))
            )
            for row in rows:
                total += 1
                try:
                    ev = row.evidence()
                except trust.EvidenceError as exc:
                    log.warning("unreadable trust evidence %s: %s", row.evidence_id, exc)
                    refused["unreadable"] = refused.get("unreadable", 0) + 1
                    continue
                result = engine.ingest(ev, authenticated=True, now=now)
                if result.accepted:
                    accepted += 1
                else:
                    refused[result.reason.value] = refused.get(result.reason.value, 0) + 1
            active = list(
                session.exec(
                    select(TrustQuarantine)
                    .where(col(TrustQuarantine.released_at).is_(None))
                    .order_by(col(TrustQuarantine.id))
                )
            )
            tail.quarantine_rows = {q.id: q.node_id for q in active if q.id is not None}
        reasons = {q.node_id: q.reason for q in active if q.node_id in registered}
        for node_id in engine.node_ids():
            engine.quarantine(node_id)
            if node_id not in reasons:
                # replay may have left a quarantine recommendation the live engine never
                # acted on; releasing clears it so the next negative evidence decides afresh
                engine.release(node_id)
        self.engine = engine
        self._registered = registered
        self._reasons = reasons
        self._views.clear()
        self._stale = False
        self._releasing.clear()  # a release rolled back (or commits and says so itself)
        self.tail = tail
        self.rebuilds += 1
        return RestoreSummary(len(registered), total, accepted, refused, tuple(sorted(reasons)))

    def _fresh(self) -> None:
        if self._stale:
            log.warning("a transaction that changed the trust engine rolled back: rebuilding")
            self._rebuild()

    def _mutated(self, session: Session) -> None:
        """The engine changed inside ``session``'s transaction: if it does not commit, the
        engine is stale and is rebuilt before its next use (:func:`_transaction_ended`)."""
        self._views.clear()
        session.info.setdefault(_CHANGED_KEY, {}).setdefault(self, False)

    def _after_transaction(self, session: Session, committed: bool) -> None:
        session.info.pop(self._queued_key, None)  # rolled back: the rows go with it
        if not committed:
            with self.lock:
                self._stale = True

    def _ensure(self, session: Session | None, node_id: str, operator: str | None = None) -> bool:
        """Register a node the engine has not seen (from its Node row when a session is
        given). False when the node is unknown."""
        if node_id in self._registered:
            return True
        registered_at: float | None = None
        labels: dict[str, Any] = {}
        if session is not None:
            with session.no_autoflush:
                node = session.get(Node, node_id) if len(node_id) <= 64 else None
            if node is None:
                return False
            operator, registered_at, labels = node.operator, node.registered_at, node.labels
        if operator is None:
            return False
        _register(self.engine, node_id, operator, registered_at, labels)
        self._registered.add(node_id)
        self._views.clear()
        return True

    # -- evidence -----------------------------------------------------------------------
    def record(
        self, session: Session, ev: trust.Evidence, *, authenticated: bool = True
    ) -> trust.IntakeResult:
        """Ingest one evidence item inside ``session``'s transaction: store it when accepted,
        and act on a quarantine decision (cordon, requeue) in the same transaction.
        Refusals (unknown node, replay, stale, future, unauthenticated) are returned and
        counted, never raised."""
        with self.lock:
            self._fresh()
            self._ensure(session, ev.node_id)
            queued: dict[str, dict[str, Any]] = session.info.setdefault(self._queued_key, {})
            if ev.evidence_id in queued or self._stored(session, ev.evidence_id):
                self.replayed_in_store += 1
                self.count_refusal(trust.IntakeReason.REPLAYED)
                return trust.IntakeResult(
                    False, trust.IntakeReason.REPLAYED, ev.evidence_id, ev.node_id
                )
            result = self.engine.ingest(ev, authenticated=authenticated)
            if not result.accepted:
                self.count_refusal(result.reason)
                return result
            self._mutated(session)
            queued[ev.evidence_id] = {
                "evidence_id": ev.evidence_id,
                "node_id": ev.node_id,
                "kind": ev.kind.value,
                "observed_at": float(ev.observed_at),
                "recorded_at": self.service.clock(),
                "body": TrustEvidence.body_of(ev),
            }
            before_commit(session, self._insert_queued)
            if result.quarantine is not None:
                self._quarantine(session, result.quarantine)
            return result

    @staticmethod
    def _stored(session: Session, evidence_id: str) -> bool:
        """Whether a committed row (this replica's or another's) or one this transaction
        flushed already holds ``evidence_id``. Runs on the session's connection: no flush."""
        found = session.connection().execute(_STORED_EVIDENCE, {"evidence_id": evidence_id})
        return found.first() is not None

    def _insert_queued(self, session: Session) -> None:
        """Before commit: the transaction's accepted evidence rows in one executemany (an ORM
        object and its flush per item cost the committer more than the rest of ``record``)."""
        queued: dict[str, dict[str, Any]] = session.info.pop(self._queued_key, {})
        if queued:
            session.execute(_INSERT_EVIDENCE, list(queued.values()))

    def count_refusal(self, reason: trust.IntakeReason | str) -> None:
        code = str(reason)
        self.refused[code] = self.refused.get(code, 0) + 1

    def record_eve_alert(
        self, session: Session, eve: dict[str, Any], *, node_id: str, sensor: str
    ) -> trust.IntakeResult:
        """An EVE ``alert`` event naming ``node_id`` (from an authenticated sensor) as
        evidence; the same alert delivered twice is refused as a replay.

        Raises:
            trust.EvidenceError: not an alert, or a missing/ill-typed field (named).
        """
        return self.record(session, trust.from_eve_alert(eve, node_id=node_id, sensor=sensor))

    def record_attestation(
        self, session: Session, ear: dict[str, Any], *, node_id: str, verifier: str
    ) -> trust.IntakeResult:
        """An EAR attestation result about ``node_id`` as evidence (worst submodule status).

        Raises:
            trust.EvidenceError: a missing/ill-typed field (named) or an oversized document.
        """
        return self.record(session, trust.from_ear(ear, node_id=node_id, verifier=verifier))

    def on_task_finished(self, session: Session, task: Task) -> None:
        """Finished-task hook: the task's outcome becomes evidence about its node."""
        if task.node_id is None or task.state not in (TaskState.SUCCEEDED, TaskState.FAILED):
            return
        outcome = task_outcome(task)
        if outcome is None:  # the tenant's command failed, not the node
            return
        try:
            ev = trust.from_task_outcome(
                evidence_id=evidence_task_id(task),
                node_id=task.node_id,
                outcome=outcome,
                verified=False,
                observed_at=task.finished_at or self.service.clock(),
                scheduler=SOURCE,
                detail=(task.reason or "")[:200],
            )
        except trust.EvidenceError as exc:
            log.warning("task %s gives no trust evidence: %s", task.id, exc)
            return
        self.record(session, ev)

    def _quarantine(self, session: Session, decision: trust.QuarantineDecision) -> None:
        node_id = decision.node_id
        self.engine.quarantine(node_id)
        self._reasons[node_id] = decision.reason
        requeued = 0
        if session.get(Node, node_id) is not None:
            # the scheduler's one quarantine path: cordon, requeue, record the response
            row = quarantine.quarantine_node(
                self.service,
                session,
                node_id,
                source="trust",
                reason=decision.reason,
                reference_id=decision.evidence_id,
                actor=service_actor(self.service, "trust"),  # the deciding service, by SPIFFE ID
                detail={"trust_per_mille": round(decision.direct_score * 1000)},
            )
            requeued = row.requeued
        session.add(
            TrustQuarantine(
                node_id=node_id,
                at=decision.at,
                evidence_id=decision.evidence_id,
                direct_score=decision.direct_score,
                threshold=decision.threshold,
                reason=decision.reason[:1000],
                requeued=requeued,
            )
        )
        log.warning("node %s quarantined by trust: %s", node_id, decision.reason)

    def release(self, session: Session, node_id: str, by: str, note: str = "") -> int:
        """Lift the node's trust quarantine (through :func:`scheduler.quarantine.release_node`:
        the node goes back online unless another quarantine remains); the evidence stays.
        Returns how many trust quarantine records were closed.

        Raises:
            NotFound: no such node.
            Conflict: the node is neither quarantined nor cordoned.
        """
        now = self.service.clock()
        node = session.get(Node, node_id) if len(node_id) <= 64 else None
        if node is None:
            raise NotFound(f"node {node_id} not found")
        active = list(
            session.exec(
                select(TrustQuarantine).where(
                    TrustQuarantine.node_id == node_id, col(TrustQuarantine.released_at).is_(None)
                )
            )
        )
        if not active and node.status != NodeStatus.CORDONED:
            raise Conflict(f"node {node_id} is not quarantined")
        for row in active:
            row.released_at = now
            row.released_by = by[:200]
            session.add(row)
        if node.status == NodeStatus.CORDONED or quarantine.active_quarantines(
            session, node_id, ["trust"]
        ):
            quarantine.release_node(
                self.service,
                session,
                node_id,
                by=by,
                note=note or "trust quarantine released",
                sources=("trust",),
            )
        with self.lock:
            self._fresh()
            if self._ensure(session, node_id):
                self.engine.release(node_id)
                self._reasons.pop(node_id, None)
                self._mutated(session)
                self._releasing.add(node_id)
                after_commit(session, lambda: self._release_committed(node_id))
        return len(active)

    def _release_committed(self, node_id: str) -> None:
        with self.lock:
            self._releasing.discard(node_id)
            self.release_seq += 1
            self._released[node_id] = self.release_seq

    def released_since(self, node_id: str, seq: int) -> bool:
        """Whether a release of ``node_id`` is in flight, or committed after ``release_seq``
        was ``seq`` (call with the lock held)."""
        return node_id in self._releasing or self._released.get(node_id, 0) > seq

    # -- reading --------------------------------------------------------------------------
    def _exclusion(self, node_id: str, gates: tuple[trust.Gate, ...]) -> str | None:
        enforced = [
            g for g in gates if self.require_attestation or g.code != GATE_ATTESTATION_MISSING
        ]
        for gate in enforced:
            if gate.code == GATE_QUARANTINED:
                return f"quarantined by trust: {self._reasons.get(node_id, gate.detail)}"
        if enforced:
            return f"{enforced[0].code}: {enforced[0].detail}"
        return None

    def view(self, node: NodeView | Node) -> NodeTrustView:
        """The node's trust for placement (registers a node seen for the first time). Reads
        only the node's ``id`` and ``operator``: a Node row needs no NodeView built."""
        now = self.service.clock()
        with self.lock:
            self._fresh()
            cached = self._views.get(node.id)
            if cached is not None and 0 <= now - cached.at < VIEW_TTL_S:
                return cached
            self._ensure(None, node.id, node.operator)
            opinion = self.engine.opinion(node.id, now)
            exclusion = self._exclusion(node.id, self.engine.gates(node.id, now))
            cfg = self.config
            trusted = (
                opinion.expected >= cfg.trust_threshold
                and opinion.uncertainty <= cfg.max_trusted_uncertainty
            )
            learning = (
                opinion.expected >= cfg.explore_floor
                or opinion.uncertainty >= cfg.explore_uncertainty
            )
            view = NodeTrustView(
                now,
                opinion.expected,
                opinion.uncertainty,
                exclusion,
                exclusion is None and not trusted and learning,
                trusted,
            )
            self._views[node.id] = view
            return view

    def exploration_task(self, task_id: str) -> bool:
        """Whether this task is one of the ``exploration_share`` that probe nodes still being
        learned (a hash of the id, so the same task decides the same way every time)."""
        last = self._last_exploration
        if last[0] == task_id:
            return last[1]  # placement asks once per candidate node: hash once per task
        digest = hashlib.sha256(task_id.encode()).digest()
        chosen = int.from_bytes(digest[:4], "big") / 2**32 < self.exploration_share
        self._last_exploration = (task_id, chosen)
        return chosen

    def describe(self, session: Session, node: Node, *, explain: bool = False) -> dict[str, Any]:
        """The node's score with every reason, the scheduler's placement verdict and its
        active quarantine (the body of ``GET /v1/nodes/{id}/trust``)."""
        with self.lock:
            self._fresh()
            self._ensure(session, node.id)
            score = self.engine.score(node.id)
            exclusion = self._exclusion(node.id, score.gates)
        body = score.to_dict()
        body.update(
            {
                "belief": score.opinion.belief,
                "disbelief": score.opinion.disbelief,
                "uncertainty": score.opinion.uncertainty,
                "status": node.status.value,
                "operator": node.operator,
                "placement": {
                    "eligible": exclusion is None,
                    "reason": exclusion,
                    "attestation_required": self.require_attestation,
                },
            }
        )
        active = session.exec(
            select(TrustQuarantine)
            .where(TrustQuarantine.node_id == node.id, col(TrustQuarantine.released_at).is_(None))
            .order_by(col(TrustQuarantine.id).desc())
        ).first()
        body["quarantine"] = (
            None
            if active is None
            else {
                "at": active.at,
                "evidence_id": active.evidence_id,
                "direct_score": active.direct_score,
                "threshold": active.threshold,
                "reason": active.reason,
                "requeued": active.requeued,
            }
        )
        if explain:
            verdict = (
                "eligible"
                if exclusion is None
                else f"excluded ({exclusion}); release: POST /v1/nodes/{node.id}/release"
            )
            lines = [trust.explain(score), f"  scheduler placement: {verdict}"]
            if not self.require_attestation:
                lines.append("  (the scheduler does not require attestation results yet)")
            body["explanation"] = "\n".join(lines)
        return body


def _register(
    engine: trust.TrustEngine,
    node_id: str,
    operator: str,
    registered_at: float | None,
    labels: dict[str, Any],
) -> None:
    network = labels.get("network")
    hardware = labels.get("hardware_fingerprint")
    engine.register_node(
        node_id,
        operator=operator or "local",
        network=network if isinstance(network, str) and network else None,
        hardware_fingerprint=hardware if isinstance(hardware, str) and hardware else None,
        registered_at=registered_at,
    )
