"""verify_bundle's ``chain`` step against the embedded chain: a bundle whose anchor is on
chain passes; one pointing at a missing or a different anchor is refused at ``chain``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from audit_chain import (
    Anchor,
    BundleVerificationError,
    CheckpointPublisher,
    build_bundle,
    verify_bundle,
)
from audit_chain.anchoring import Anchorer, AnchorRecord, EmbeddedChain, verify_anchor_on_chain

from .helpers import populated_log

SIZE = 12


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str, Any, AnchorRecord]:
    log, signer = populated_log(SIZE)
    chain = EmbeddedChain(Path(tmp_path_factory.mktemp("chain")))
    anchorer = Anchorer(chain.web3, chain.contract_address, chain.account)
    log_id = b"\x21" * 32
    record = anchorer.poll(anchorer.anchor(log_id, SIZE, log.root_at(SIZE)))
    assert isinstance(record, AnchorRecord)
    other = anchorer.poll(anchorer.anchor(b"\x22" * 32, SIZE, b"\x99" * 32))  # another log
    assert isinstance(other, AnchorRecord)
    chain.mine_block()
    anchor = Anchor(
        chain_id=record.chain_id,
        contract=record.contract,
        tx_hash=record.tx_hash,
        block_number=record.block_number,
        tree_size=SIZE,
        root=log.root_at(SIZE),
        block_hash=record.block_hash,
        log_id=log_id,
    )
    note = CheckpointPublisher(log, signer).publish()
    data = build_bundle(log, 3, note, signer.verifier, anchor=anchor).to_bytes()

    def check(a: Anchor) -> None:
        verify_anchor_on_chain(
            chain.web3,
            {
                "chain_id": a.chain_id,
                "contract": a.contract,
                "tx_hash": a.tx_hash,
                "block_number": a.block_number,
                "tree_size": a.tree_size,
                "root": a.root,
                "log_id": a.log_id,
                "block_hash": a.block_hash,
            },
            1,
        )

    return data, signer.vkey, check, other


def test_anchor_on_chain_passes(setup: Any) -> None:
    data, vkey, check, _ = setup
    assert verify_bundle(data, vkey, check_anchor=check) is None


def _mutated(data: bytes, **changes: object) -> bytes:
    obj = copy.deepcopy(json.loads(data))
    obj["anchor"].update(changes)
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    "changes",
    [
        {"txHash": "0x" + "00" * 32},  # no such transaction: a missing anchor
        {"contract": "0x" + "12" * 20},  # another contract
        {"blockNumber": 1},  # another block
        {"logId": "0x" + "22" * 32},  # another log's id
    ],
    ids=["missing tx", "other contract", "other block", "other log id"],
)
def test_bundle_pointing_at_a_missing_or_different_anchor_fails_at_chain(
    setup: Any, changes: dict[str, object]
) -> None:
    data, vkey, check, _ = setup
    with pytest.raises(BundleVerificationError) as info:
        verify_bundle(_mutated(data, **changes), vkey, check_anchor=check)
    assert info.value.step == "chain"


def test_bundle_naming_another_logs_anchor_transaction_fails_at_chain(setup: Any) -> None:
    data, vkey, check, other = setup
    changed = _mutated(
        data, txHash=other.tx_hash, blockNumber=other.block_number, blockHash=other.block_hash
    )
    with pytest.raises(BundleVerificationError) as info:
        verify_bundle(changed, vkey, check_anchor=check)
    assert info.value.step == "chain"
