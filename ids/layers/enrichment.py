"""Alert enrichment from the node inventory: operator, region and current status.

`Inventory` is a plain snapshot the scheduler builds from its store (this library never
reads the database). `enrich_alert` returns a copy of an EVE alert whose ``cntrust``
object gains ``node`` (for the node the alert is about: ``cntrust.node_id``, else the node
owning ``dest_ip``) and ``src_node`` (when ``src_ip`` belongs to a node), each
``{node_id, operator_id, region, status}``.

Invariants: the input alert is never mutated; unknown addresses add nothing; one address
belongs to at most one node (`LayersConfigError` otherwise).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ids.layers.errors import LayersConfigError
from ids.layers.eve import node_id_of, str_field


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What the inventory knows about one node."""

    node_id: str
    operator_id: str
    region: str
    status: str
    addresses: tuple[str, ...] = ()

    def summary(self) -> dict[str, str]:
        """The fields copied into an alert."""
        return {
            "node_id": self.node_id,
            "operator_id": self.operator_id,
            "region": self.region,
            "status": self.status,
        }


class Inventory:
    """Nodes by id and by address. Raises `LayersConfigError` when two nodes claim one
    address or one id appears twice."""

    def __init__(self, nodes: Iterable[NodeInfo]) -> None:
        self._by_id: dict[str, NodeInfo] = {}
        self._by_ip: dict[str, NodeInfo] = {}
        for node in nodes:
            if node.node_id in self._by_id:
                raise LayersConfigError("node_id", node.node_id, "listed twice")
            self._by_id[node.node_id] = node
            for ip in node.addresses:
                other = self._by_ip.get(ip)
                if other is not None:
                    raise LayersConfigError(
                        "addresses", ip, f"claimed by {other.node_id} and {node.node_id}"
                    )
                self._by_ip[ip] = node

    def by_id(self, node_id: str) -> NodeInfo | None:
        """The node with this id, or None."""
        return self._by_id.get(node_id)

    def by_ip(self, ip: str) -> NodeInfo | None:
        """The node owning this address, or None."""
        return self._by_ip.get(ip)

    def node_ips(self) -> dict[str, str]:
        """Address -> node id, the mapping the sensors and the correlator take."""
        return {ip: node.node_id for ip, node in sorted(self._by_ip.items())}

    def __len__(self) -> int:
        return len(self._by_id)


def enrich_alert(alert: Mapping[str, Any], inventory: Inventory) -> dict[str, Any]:
    """A copy of `alert` with inventory facts in ``cntrust.node`` / ``cntrust.src_node``
    (and ``cntrust.node_id`` filled from the destination address when it was empty)."""
    record = copy.deepcopy(dict(alert))
    cnt = dict(record.get("cntrust") or {})
    node_id = node_id_of(alert)
    target = inventory.by_id(node_id) if node_id else None
    if target is None:
        dst = str_field(alert, "dest_ip")
        target = inventory.by_ip(dst) if dst else None
    if target is not None:
        cnt["node"] = target.summary()
        if not node_id:
            cnt["node_id"] = target.node_id
    src = str_field(alert, "src_ip")
    source = inventory.by_ip(src) if src else None
    if source is not None:
        cnt["src_node"] = source.summary()
    record["cntrust"] = cnt
    return record
