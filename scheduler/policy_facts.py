"""Nodes as entities of the default policy schema, from facts written out by hand.

The scheduler never decides on these: its placement filter and the authorization of a
node's own requests use :mod:`scheduler.policy_node_facts` (the node's attestation result,
the trust layer, the revocation set). :func:`node_entity` is for where no scheduler is
running (``PolicyFilter``'s default, tools and tests): region, operator and accelerators
as registered, and the rest from ``labels`` (strings, as the registration API carries
them):

- ``trust`` and ``uncertainty``: numbers in [0, 1];
- ``attestation_status``: an EAR tier (``affirming``, ``warning``, ``contraindicated``,
  ``none``); ``attestation_age_s``: seconds since the last attestation result;
- ``revoked`` and ``quarantined``: ``true`` or ``false``.

Invariants:
- Absent trust facts are the cautious extreme: trust 0, uncertainty 1.
- A malformed fact raises ``PolicyRequestError`` naming the label; callers turn it into a
  deny (authorization) or an exclusion (placement), never an allow.
- A node that is not registered is described as revoked, so every rule that reads node
  facts refuses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from policies import Entity, PolicyRequestError, node

UNAPPRAISED_STATUS = "warning"
"""Attestation tier of a node whose labels carry none: treated like one with a ``warning``
result (it may take the work it was given, and nothing that needs an ``affirming`` one)."""

ABSENT_OPERATOR = "(absent)"
ABSENT_REGION = "(absent)"


def node_entity(
    node_id: str,
    *,
    region: str,
    operator: str,
    accelerators: Iterable[str],
    labels: Mapping[str, Any],
) -> Entity:
    """A registered node as a ``Cntrust::Node`` entity. Raises PolicyRequestError."""
    age = labels.get("attestation_age_s")
    return node(
        node_id,
        region=region,
        operator_id=operator,
        trust=_number(labels.get("trust", 0.0), "labels.trust"),
        uncertainty=_number(labels.get("uncertainty", 1.0), "labels.uncertainty"),
        attestation_status=str(labels.get("attestation_status", UNAPPRAISED_STATUS)),
        attestation_age_s=None if age is None else _integer(age, "labels.attestation_age_s"),
        accelerators=accelerators,
        revoked=_flag(labels.get("revoked", False), "labels.revoked"),
        quarantined=_flag(labels.get("quarantined", False), "labels.quarantined"),
    )


def absent_node_entity(node_id: str) -> Entity:
    """A node id nobody registered: revoked, unattested, untrusted."""
    return node(
        node_id,
        region=ABSENT_REGION,
        operator_id=ABSENT_OPERATOR,
        trust=0.0,
        uncertainty=1.0,
        attestation_status="none",
        attestation_age_s=None,
        revoked=True,
    )


def accelerator_kinds(accelerators: Iterable[Any]) -> frozenset[str]:
    """Kinds of a node's accelerators (``[{"kind": "gpu", "count": 2}]`` or pairs)."""
    kinds: set[str] = set()
    for item in accelerators:
        kind = item.get("kind") if isinstance(item, Mapping) else item[0]
        if isinstance(kind, str) and kind:
            kinds.add(kind)
    return frozenset(kinds)


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool):
        raise PolicyRequestError(field, f"expected a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        raise PolicyRequestError(field, f"expected a number, got {value!r}") from None


def _integer(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise PolicyRequestError(field, f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.isdigit():
        raise PolicyRequestError(field, f"expected a non-negative integer, got {value!r}")
    return int(text)


def _flag(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "false"):
        return text == "true"
    raise PolicyRequestError(field, f"expected true or false, got {value!r}")
