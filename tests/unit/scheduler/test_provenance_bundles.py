"""Which anchor and checkpoint a bundle uses: the nearest anchor at or after the entry and
the checkpoint it anchored, so the consistency proof is empty and the bundle small."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import sqlalchemy as sa

from audit_chain import parse_bundle, verify_bundle
from scheduler.provenance import ProvenanceLayer
from scheduler.tables.provenance import ProvAnchor, ProvCheckpoint
from tests.unit.scheduler.helpers import add_node, add_tenant, claim, report, submit


@pytest.fixture
def layer(service: Any) -> Any:
    prov = ProvenanceLayer.for_service(service, checkpoint_delay_s=1.5)
    prov.start()
    yield prov
    prov.stop()


def _grow(api: Any, service: Any, layer: Any, n: int) -> list[str]:
    tenant = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1")
    ids = []
    for _ in range(n):  # one entry and one published checkpoint at a time
        task = submit(api, tenant)
        claim(api, node)
        assert report(api, node, task["id"]).status_code == 200
        layer.publish_checkpoint()
        ids.append(task["id"])
    return ids


def _anchor(service: Any, layer: Any, size: int, root: bytes | None = None) -> None:
    row = ProvAnchor(
        chain_id=31337,
        contract="0x5FbDB2315678afecb367f032d93F642f64180aa3",
        tx_hash="0x" + hashlib.sha256(b"tx%d" % size).hexdigest(),
        block_number=10 + size,
        block_hash="0x" + hashlib.sha256(b"block%d" % size).hexdigest(),
        log_id="0x" + layer.log_id.hex(),
        tree_size=size,
        root="0x" + (root or layer.log.root_at(size)).hex(),
        anchorer="0x" + "11" * 20,
        confirmations=1,
        anchored_at=service.clock(),
    )
    service.write_sync(lambda s: s.add(row))


def _bundle(layer: Any, task_id: str) -> Any:
    data = layer.bundle_for(task_id)
    verify_bundle(data, layer.log_key.verifier.vkey, require_anchor=False)
    return parse_bundle(data)


def test_nearest_anchor_and_its_checkpoint_are_used(api, service, layer):
    ids = _grow(api, service, layer, 5)
    _anchor(service, layer, 2)
    _anchor(service, layer, 5)
    first, third, last = (_bundle(layer, ids[i]) for i in (0, 2, 4))
    assert first.anchor is not None and first.anchor.tree_size == 2
    assert third.anchor is not None and third.anchor.tree_size == 5
    assert last.anchor is not None and last.anchor.tree_size == 5
    for bundle in (first, third, last):
        assert bundle.consistency_proof == ()
        assert f"\n{bundle.anchor.tree_size}\n" in bundle.checkpoint.decode()


def test_missing_anchored_checkpoint_is_signed_for_the_anchored_tree(api, service, layer):
    ids = _grow(api, service, layer, 4)
    _anchor(service, layer, 3)
    with service.engine.begin() as conn:
        conn.execute(sa.delete(ProvCheckpoint).where(ProvCheckpoint.tree_size == 3))
    bundle = _bundle(layer, ids[1])
    assert bundle.anchor is not None and bundle.anchor.tree_size == 3
    assert bundle.consistency_proof == () and "\n3\n" in bundle.checkpoint.decode()
    verify_bundle(bundle.to_bytes(), layer.log_key.verifier.vkey)  # anchor required


@pytest.mark.parametrize("checkpoint_kept", [True, False])
def test_an_anchor_for_another_tree_is_not_used(api, service, layer, checkpoint_kept):
    ids = _grow(api, service, layer, 3)
    _anchor(service, layer, 2, root=b"\x13" * 32)
    if not checkpoint_kept:
        with service.engine.begin() as conn:
            conn.execute(sa.delete(ProvCheckpoint).where(ProvCheckpoint.tree_size == 2))
    bundle = _bundle(layer, ids[0])
    assert bundle.anchor is None  # never a bundle pointing at a root the log never had
