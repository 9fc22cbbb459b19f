"""``PolicyFilter``: a placement filter decided by the policy set's ``place_task`` rules.

It plugs into :class:`scheduler.placement.PlacementPipeline` like any filter. For each
(task, node) it runs the policy set's compiled placement filter (the one
``policies.place`` uses, equal to a full Cedar decision per node) and excludes the node
with the deciding forbids' ids and reasons. Node facts come from the node's registration
and its ``labels`` (:mod:`scheduler.policy_facts`): a node whose labels carry no
attestation result is excluded (``placement.node-unattested``), which is why the lead
enables this filter only once nodes carry trust and attestation facts.

Invariants: fail closed — a malformed fact or task attribute excludes the node with the
reason; the set in force is read once per call.
"""

from __future__ import annotations

from policies import Entity, PolicyError, PolicyStore, task
from scheduler.placement import NodeView, TaskRequest
from scheduler.policy_facts import accelerator_kinds, node_entity


class PolicyFilter:
    """Excludes nodes the ``place_task`` policies forbid for the task."""

    name = "policy"

    def __init__(self, store: PolicyStore) -> None:
        self.store = store

    def __call__(self, task_request: TaskRequest, node_view: NodeView) -> str | None:
        engine = self.store.engine
        try:
            task_entity = task_entity_of(task_request)
            node_entity_ = node_entity_of(node_view)
        except PolicyError as exc:
            return f"request refused: {exc}"
        result = engine.filter_nodes(task_entity, [node_entity_])
        if node_view.id in result.allowed:
            return None
        exclusion = result.excluded.get(node_view.id)
        if exclusion is None:
            return "the policy filter gave no answer for the node"
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
