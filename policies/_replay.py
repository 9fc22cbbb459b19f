"""Replay a stored decision with its stored inputs and stored policy set.

Steps: (1) rebuild the policy set from its stored export text; (2) check that it hashes
to the version the decision recorded; (3) re-decide the stored request with a fresh,
uncached engine; (4) check the effect and deciding policy ids match.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies._engine import CedarEngine
from policies._model import Decision, Request
from policies._policy_set import policy_set_from_export
from policies.errors import PolicyVersionMismatchError, ReplayMismatchError


def replay(
    stored_request: Request | Mapping[str, Any],
    stored_policy_set_text: str,
    expected_decision: Decision | Mapping[str, Any],
) -> Decision:
    """Re-evaluate and return the replayed decision.

    Raises PolicyLoadError if the stored text is not a valid set, PolicyVersionMismatchError
    if it does not hash to the recorded version, PolicyRequestError if the stored request
    or decision is malformed, and ReplayMismatchError if the decision differs.
    """
    req = (
        stored_request if isinstance(stored_request, Request) else Request.from_dict(stored_request)
    )
    expected = (
        expected_decision
        if isinstance(expected_decision, Decision)
        else Decision.from_dict(expected_decision)
    )
    policy_set = policy_set_from_export(stored_policy_set_text)  # step 1
    if policy_set.version != expected.policy_set_version:  # step 2
        raise PolicyVersionMismatchError(expected.policy_set_version, policy_set.version)
    replayed = CedarEngine(policy_set, cache_size=0).decide(req)  # step 3
    if replayed.allowed != expected.allowed or set(replayed.policy_ids) != set(  # step 4
        expected.policy_ids
    ):
        raise ReplayMismatchError(expected, replayed)
    return replayed
