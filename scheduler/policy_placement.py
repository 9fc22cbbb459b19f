"""``PolicyFilter``: a placement filter decided by the policy set's ``place_task`` rules.

It plugs into :class:`scheduler.placement.PlacementPipeline` like any filter. For each
(task, node) it runs the policy set's compiled placement filter (the one
``policies.place`` uses, equal to a full Cedar decision per node) and excludes the node
with the deciding forbids' ids and reasons. Node facts come from ``facts``: by default
the node's registration and its ``labels`` (:mod:`scheduler.policy_facts`, for offline
use); the scheduler wires :mod:`scheduler.policy_node_facts` (its own records, never the
node's labels) in :mod:`scheduler.policy_wiring`.

Invariants: fail closed — a malformed fact or task attribute excludes the node with the
reason; the set in force is read once per task (every node of one task is decided under
one set, the one :meth:`PolicyFilter.engine_for` returns for recording).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from policies import CompiledEngine, Entity, Exclusion, PolicyError, PolicyStore, task
from scheduler.placement import NodeView, TaskRequest
from scheduler.policy_facts import accelerator_kinds, node_entity

NodeFactsOf = Callable[[NodeView], Entity]
"""NodeView -> the node's entity; raises PolicyError on a malformed fact."""


class PolicyFilter:
    """Excludes nodes the ``place_task`` policies forbid for the task.

    ``facts`` describes a node (default: its registration and labels, see
    :func:`node_entity_of`; the scheduler passes
    :class:`scheduler.policy_node_facts.SchedulerNodeFacts`). ``refresh`` is called once
    per task before deciding (the replica's policy sync). The entities of the last task's
    allowed nodes are kept (:meth:`inputs`) so the decision for the chosen node can be
    made and recorded with exactly the inputs the filter used.
    """

    name = "policy"

    def __init__(
        self,
        store: PolicyStore,
        facts: NodeFactsOf | None = None,
        refresh: Callable[[], object] | None = None,
    ) -> None:
        self.store = store
        self.facts: NodeFactsOf = facts or node_entity_of
        self.refresh = refresh
        self._task_key: TaskRequest | None = None
        self._task: Entity | PolicyError | None = None
        self._allowed: dict[str, Entity] = {}
        self._verdicts: dict[str, str | None] = {}
        self._engine = store.compiled_engine

    def _task_entity(self, task_request: TaskRequest) -> Entity:
        if self._task_key is not task_request:
            if self.refresh is not None:
                self.refresh()
            self._task_key, self._allowed, self._verdicts = task_request, {}, {}
            self._engine = self.store.compiled_engine
            try:
                self._task = task_entity_of(task_request)
            except PolicyError as exc:
                self._task = exc
        if isinstance(self._task, PolicyError):
            raise self._task
        assert self._task is not None
        return self._task

    def inputs(self, task_id: str, node_id: str) -> tuple[Entity, Entity] | None:
        """The task and node entities the filter allowed ``node_id`` with, for the task it
        decided last (None when it did not allow that node for that task)."""
        entity = self._task
        if not isinstance(entity, Entity) or entity.uid.id != task_id:
            return None
        node_entity_ = self._allowed.get(node_id)
        return None if node_entity_ is None else (entity, node_entity_)

    def engine_for(self, task_id: str) -> CompiledEngine | None:
        """The engine (one policy set) the filter decided ``task_id``'s nodes with: the
        compiled engine, whose ``filter_nodes`` is its reference Cedar engine's compiled
        placement filter and whose ``decide`` equals Cedar's (property-tested)."""
        entity = self._task
        return self._engine if isinstance(entity, Entity) and entity.uid.id == task_id else None

    def prepare(self, task_request: TaskRequest, nodes: Sequence[NodeView]) -> None:
        """Decide every candidate node for the task in one compiled filter pass (the
        pipeline calls this once per task; :meth:`__call__` then reads the verdicts)."""
        try:
            task_entity = self._task_entity(task_request)
        except PolicyError:
            return  # every node is refused in __call__, with the reason
        entities: dict[str, Entity] = {}
        verdicts: dict[str, str | None] = {}
        for view in nodes:
            try:
                entities[view.id] = self.facts(view)
            except PolicyError as exc:
                verdicts[view.id] = f"request refused: {exc}"
        result = self._engine.filter_nodes(task_entity, list(entities.values()))
        for node_id in result.allowed:
            verdicts[node_id] = None
            self._allowed[node_id] = entities[node_id]
        for node_id, exclusion in result.excluded.items():
            verdicts[node_id] = _reason(exclusion)
        self._verdicts = verdicts

    def __call__(self, task_request: TaskRequest, node_view: NodeView) -> str | None:
        if self._task_key is task_request and node_view.id in self._verdicts:
            return self._verdicts[node_view.id]
        try:
            task_entity = self._task_entity(task_request)
            node_entity_ = self.facts(node_view)
        except PolicyError as exc:
            return f"request refused: {exc}"
        result = self._engine.filter_nodes(task_entity, [node_entity_])
        if node_view.id in result.allowed:
            self._allowed[node_view.id] = node_entity_
            return None
        exclusion = result.excluded.get(node_view.id)
        if exclusion is None:
            return "the policy filter gave no answer for the node"
        return _reason(exclusion)


def _reason(exclusion: Exclusion) -> str:
    named = [
        f"{pid}: {reason}"
        for pid, reason in zip(exclusion.policy_ids, exclusion.reasons, strict=False)
    ]
    rest = list(exclusion.reasons[len(exclusion.policy_ids) :])
    return "; ".join(named + rest)


def task_entity_of(task_request: TaskRequest) -> Entity:
    """The task as a ``Cntrust::Task``. Raises PolicyRequestError on a bad value."""
    required = (task_request.accelerator_kind or "gpu",) if task_request.gpu else ()
    return task(
        task_request.id,
        tenant_id=task_request.tenant,
        classification=task_request.classification,
        data_region=task_request.region,
        required_accelerators=required,
    )


def node_entity_of(node_view: NodeView) -> Entity:
    """The node as a ``Cntrust::Node``. Raises PolicyRequestError on a bad fact."""
    return node_entity(
        node_view.id,
        region=node_view.region,
        operator=node_view.operator,
        accelerators=accelerator_kinds(node_view.accelerators),
        labels=node_view.attributes,
    )
