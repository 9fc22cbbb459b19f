"""Recording placement decisions and replaying them.

:class:`PlacementRecorder` is a ``PlacementPipeline.placed_hooks`` hook: when a task is
placed it makes one full decision for the chosen node with the entities the
:class:`~scheduler.policy_placement.PolicyFilter` used (the compiled engine of the set the
filter used, equal to Cedar's by property test; replay re-decides with Cedar itself),
stores it (table :class:`~scheduler.tables.policy_decisions.PlacementDecision`) with the
policy set's text (:class:`~scheduler.tables.policy_decisions.PolicyVersionText`), and
names it on the task (``placement_decision_id``, ``policy_version``), all in the placing
transaction (the decision rows of a transaction are inserted together just before it
commits, by ``scheduler.db.insert_at_commit``).

:func:`replay_task` re-evaluates a task's stored decision with the stored inputs and the
stored policy version (``policies.replay``: fresh, uncached Cedar engine) and says whether
the decision is the same, or what differs.

Invariants:
- A placement the filter did not see (no policy inputs for the chosen node) is recorded as
  a deny with the reason, never as an allow; so is a chosen node Cedar then denies (a
  defect: logged).
- Replay never trusts the stored version label: the stored text must hash to it.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from policies import (
    Decision,
    PolicyError,
    PolicySet,
    PolicyStore,
    PolicyVersionMismatchError,
    ReplayMismatchError,
    placement_request,
    replay,
)
from scheduler.db import after_commit, insert_at_commit
from scheduler.errors import NotFound
from scheduler.models import Node, Task
from scheduler.tables.policy_decisions import PlacementDecision, PolicyVersionText

if TYPE_CHECKING:
    from scheduler.policy_placement import PolicyFilter

log = logging.getLogger(__name__)

NO_INPUTS_REASON = "the policy filter gave no inputs for the chosen node: fail closed"


_ADDED_KEY = "cntrust.policy_texts_added"


def store_version_text(session: Session, policy_set: PolicySet, now: float) -> None:
    """Keep ``policy_set``'s text under its version (once).

    Once per transaction too: the row added by an earlier placement of the same
    transaction is pending, not yet in the identity map, so a second lookup would not
    find it and a second insert would fail the whole transaction."""
    added: set[str] = session.info.setdefault(_ADDED_KEY, set())
    if policy_set.version in added:
        return
    added.add(policy_set.version)
    with session.no_autoflush:
        if session.get(PolicyVersionText, policy_set.version) is not None:
            return
    session.add(
        PolicyVersionText(
            version=policy_set.version, first_seen=now, policy_text=policy_set.export()
        )
    )


_DECISIONS = PlacementDecision.__table__  # type: ignore[attr-defined]


class PlacementRecorder:
    """``placed_hooks`` hook storing the policy decision of every placement."""

    def __init__(self, store: PolicyStore, policy_filter: PolicyFilter, clock: Any) -> None:
        self.store = store
        self.policy_filter = policy_filter
        self.clock = clock
        self.recorded = 0
        self._stored: set[str] = set()  # versions whose text is committed

    def __call__(self, session: Session, task: Task, node: Node) -> None:
        node_id = node.id
        now = self.clock()
        inputs = self.policy_filter.inputs(task.id, node_id)
        engine = self.policy_filter.engine_for(task.id) or self.store.compiled_engine
        version = engine.policy_set_version
        request_doc: dict[str, Any] = {}
        if inputs is None:
            decision = Decision(False, (), (NO_INPUTS_REASON,), (), version)
            log.error("task %s placed on %s without policy inputs", task.id, node_id)
        else:
            req = placement_request(*inputs)
            decision = engine.decide(req)
            request_doc = req.to_dict()
            if not decision.allowed:
                log.error("task %s placed on %s, which Cedar denies: %s", task.id, node_id,
                          "; ".join(decision.reasons))  # fmt: skip
        if version not in self._stored:
            store_version_text(session, engine.policy_set, now)
            after_commit(session, lambda: self._stored.add(version))
        decision_id = uuid.uuid4().hex
        # nothing reads a decision in the transaction that made it; the task names it
        # (placement_decision_id) from the start
        row = {
            "id": decision_id,
            "task_id": task.id,
            "node_id": node_id,
            "attempt": task.attempt,
            "decided_at": now,
            "policy_version": version,
            "allowed": decision.allowed,
            "policy_ids": list(decision.policy_ids),
            "reasons": list(decision.reasons),
            "request": request_doc,
            "decision": decision.to_dict(),
        }
        insert_at_commit(session, _DECISIONS, row)
        task.placement_decision_id = decision_id
        task.policy_version = version
        if task not in session:  # placement holds it in the session already (add cascades)
            session.add(task)
        self.recorded += 1


def replay_task(service: Any, task_id: str) -> dict[str, Any]:
    """Replay the task's stored placement decision. Raises NotFound (no such task, no
    recorded decision, or the decision's policy text is missing)."""
    with service.read() as session:
        task = session.get(Task, task_id) if len(task_id) <= 40 else None
        if task is None:
            raise NotFound(f"task {task_id} not found")
        row = None
        if task.placement_decision_id is not None:
            row = session.get(PlacementDecision, task.placement_decision_id)
        if row is None:
            raise NotFound(f"task {task_id} has no recorded placement decision")
        text = session.get(PolicyVersionText, row.policy_version)
        history = session.exec(
            select(PlacementDecision.id)
            .where(PlacementDecision.task_id == task_id)
            .order_by(col(PlacementDecision.decided_at))
        ).all()
    stored = dict(row.decision)
    answer: dict[str, Any] = {
        "task_id": task_id,
        "decision_id": row.id,
        "node_id": row.node_id,
        "attempt": row.attempt,
        "decided_at": row.decided_at,
        "policy_version": row.policy_version,
        "stored": stored,
        "inputs": row.request,
        "decisions_for_task": len(history),
    }
    if text is None:
        raise NotFound(f"the text of policy version {row.policy_version} is not stored")
    if not row.request:
        return {**answer, "same": False, "replayed": None, "differences": [
            "no inputs were stored with this decision: it cannot be replayed"]}  # fmt: skip
    try:
        replayed = replay(row.request, text.policy_text, stored)
    except ReplayMismatchError as exc:
        return {**answer, "same": False, "replayed": exc.replayed.to_dict(),
                "differences": _differences(exc.expected, exc.replayed)}  # fmt: skip
    except PolicyVersionMismatchError as exc:
        return {**answer, "same": False, "replayed": None, "differences": [
            f"stored policy text hashes to {exc.calculated}, not {exc.expected}"]}  # fmt: skip
    except PolicyError as exc:
        return {**answer, "same": False, "replayed": None,
                "differences": [f"the stored decision cannot be replayed: {exc}"]}  # fmt: skip
    return {**answer, "same": True, "replayed": replayed.to_dict(), "differences": []}


def _differences(expected: Decision, replayed: Decision) -> list[str]:
    out = []
    if expected.allowed != replayed.allowed:
        out.append(f"effect: stored {expected.effect}, replayed {replayed.effect}")
    if set(expected.policy_ids) != set(replayed.policy_ids):
        out.append(
            f"deciding policies: stored {sorted(expected.policy_ids)}, "
            f"replayed {sorted(replayed.policy_ids)}"
        )
    return out or ["the decisions differ"]
