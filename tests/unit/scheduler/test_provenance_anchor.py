"""Anchoring on the embedded chain: the worker anchors the latest checkpoint, the anchor is
recorded, and a task's bundle carries it and verifies with the anchor required."""

from __future__ import annotations

import time
from typing import Any

from sqlmodel import select

from audit_chain import parse_bundle, verify_bundle
from scheduler.provenance import ProvenanceLayer
from scheduler.tables.provenance import ProvAnchor
from tests.conftest import bearer
from tests.unit.scheduler.helpers import add_node, add_tenant, claim, report, submit


def wait_for(predicate: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def anchors(service: Any) -> list[ProvAnchor]:
    with service.read() as session:
        return list(session.exec(select(ProvAnchor)))


def test_bundle_carries_an_anchor_from_the_embedded_chain(service, api, tmp_path):
    layer = ProvenanceLayer.for_service(
        service,
        checkpoint_delay_s=0.05,
        anchoring=True,
        chain_dir=tmp_path / "chain",
        anchor_every_entries=2,
        anchor_every_s=3600,
        anchor_interval_s=0.1,
    )
    layer.start()
    try:
        tenant = add_tenant(api, service, "alice")
        node = add_node(api, service, "n1")
        ids = [submit(api, tenant)["id"] for _ in range(3)]
        claim(api, node)
        assert report(api, node, ids[0]).status_code == 200
        wait_for(lambda: len(anchors(service)) == 1)  # the first anchor: as soon as non-empty
        first = anchors(service)[0]
        assert first.tree_size == 1 and first.chain_id == layer.chain.chain_id
        assert first.log_id == "0x" + layer.log_id.hex()
        for task_id in ids[1:]:
            assert report(api, node, task_id).status_code == 200
        wait_for(lambda: max(a.tree_size for a in anchors(service)) == 3)  # every 2 entries

        vkey = layer.log_key.verifier.vkey
        headers = bearer(service, "tenant", "alice")
        for task_id in ids:
            body = api.get(f"/v1/tasks/{task_id}/bundle", headers=headers).content
            verify_bundle(body, vkey, require_anchor=True)
            bundle = parse_bundle(body)
            assert bundle.anchor is not None and bundle.anchor.tree_size > bundle.leaf_index
            assert bundle.consistency_proof == ()  # served against the anchored checkpoint

        # the anchor is really on the chain
        from audit_chain.anchoring import AnchorRecord, verify_anchor_on_chain

        latest = max(anchors(service), key=lambda a: a.tree_size)
        fields = latest.model_dump(exclude={"id", "anchored_at", "superseded"})
        verify_anchor_on_chain(layer.chain.web3, AnchorRecord(**fields), 1)
    finally:
        layer.stop()
