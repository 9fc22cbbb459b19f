"""What placement relied on, copied from the task into its provenance record.

The layers fill the task's fields at placement (attestation result and status, trust score
and uncertainty, policy version, placement decision id; empty when a layer is off).
:func:`placement_fields` maps them to the task-execution predicate's fields, dropping (with
a warning) any value the predicate would refuse, so a malformed value from a layer can never
stop a task's record from being written.

:func:`fill_trust_at_placement` is the placement hook of the trust layer: it copies the
chosen node's score and uncertainty (per mille) from ``TrustLayer.view`` into the task.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from audit_chain.predicates import ATTESTATION_STATUSES
from scheduler.models import Node, Task

log = logging.getLogger(__name__)

_ID = re.compile(r"[\x20-\x7e]{1,256}")


def _per_mille(value: object, what: str, task_id: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
        log.warning("task %s: %s %r is not per mille; left out of the record", task_id, what, value)
        return None
    return value


def _text(value: object, what: str, task_id: str, max_len: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len or not _ID.fullmatch(value):
        log.warning("task %s: %s %r is malformed; left out of the record", task_id, what, value)
        return None
    return value


def placement_fields(task: Task) -> dict[str, Any]:
    """The ``TaskExecution`` keyword arguments for what placement relied on."""
    status = task.attestation_status
    if status is not None and status not in ATTESTATION_STATUSES:
        log.warning("task %s: attestation status %r unknown; left out", task.id, status)
        status = None
    decision = _text(task.placement_decision_id, "placement decision id", task.id, 256)
    return {
        "attestation_result_id": _text(task.attestation_id, "attestation id", task.id, 256),
        "attestation_status": status,
        "trust_score_permille": _per_mille(task.trust_per_mille, "trust", task.id),
        "trust_uncertainty_permille": _per_mille(
            task.trust_uncertainty_per_mille, "trust uncertainty", task.id
        ),
        "policy_version": _text(task.policy_version, "policy version", task.id, 80),
        "policy_decision_ids": () if decision is None else (decision,),
    }


def fill_trust_at_placement(trust_layer: Any, task: Task, node: Node) -> None:
    """Copy the chosen node's trust (score, uncertainty; per mille) into ``task``."""
    view = trust_layer.view(node)
    task.trust_per_mille = max(0, min(1000, round(view.score * 1000)))
    task.trust_uncertainty_per_mille = max(0, min(1000, round(view.uncertainty * 1000)))
