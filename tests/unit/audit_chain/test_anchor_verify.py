"""verify_anchor_on_chain: the regulator's chain check, one negative test per step."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_tester import EthereumTester, PyEVMBackend
from web3 import EthereumTesterProvider, Web3
from web3.types import RPCEndpoint, RPCResponse

from audit_chain.anchoring import (
    VERIFICATION_STEPS,
    Anchorer,
    AnchorRecord,
    AnchorRpcUnavailableError,
    AnchorVerificationError,
    EmbeddedChain,
    deploy_anchor_contract,
    set_anchorer,
    verify_anchor_on_chain,
)

LOG = b"\x55" * 32
ROOT = b"\x66" * 32


@pytest.fixture(scope="module")
def anchored(tmp_path_factory: pytest.TempPathFactory) -> tuple[EmbeddedChain, AnchorRecord]:
    chain = EmbeddedChain(Path(tmp_path_factory.mktemp("chain")))
    anchorer = Anchorer(chain.web3, chain.contract_address, chain.account)
    record = anchorer.poll(anchorer.anchor(LOG, 12, ROOT))
    assert isinstance(record, AnchorRecord)
    chain.mine_block()
    return chain, record


def _step(web3: Web3, anchor: Any, min_confirmations: int = 1) -> str:
    with pytest.raises(AnchorVerificationError) as info:
        verify_anchor_on_chain(web3, anchor, min_confirmations)
    assert info.value.step in VERIFICATION_STEPS
    return info.value.step


def test_a_genuine_anchor_verifies(anchored: tuple[EmbeddedChain, AnchorRecord]) -> None:
    chain, record = anchored
    verify_anchor_on_chain(chain.web3, record, 2)
    plain = {k: v for k, v in record.to_dict().items() if k != "block_hash"}
    verify_anchor_on_chain(chain.web3, plain, 1)


@pytest.mark.parametrize(
    "bad",
    [
        {"tx_hash": None},
        {"tx_hash": "0x1234"},
        {"root": "zz" * 32},
        {"block_number": -1},
        {"tree_size": "12"},
        {"contract": "0x" + "ab" * 300},
        {"log_id": 7},
    ],
)
def test_malformed_anchor(anchored: tuple[EmbeddedChain, AnchorRecord], bad: dict) -> None:
    chain, record = anchored
    assert _step(chain.web3, {**record.to_dict(), **bad}) == "malformed"


def test_malformed_not_a_mapping(anchored: tuple[EmbeddedChain, AnchorRecord]) -> None:
    assert _step(anchored[0].web3, ["not", "a", "mapping"]) == "malformed"


def test_chain_mismatch(anchored: tuple[EmbeddedChain, AnchorRecord]) -> None:
    chain, record = anchored
    assert _step(chain.web3, replace(record, chain_id=31337)) == "chain_mismatch"


def test_tx_missing(anchored: tuple[EmbeddedChain, AnchorRecord]) -> None:
    chain, record = anchored
    assert _step(chain.web3, replace(record, tx_hash="0x" + "ab" * 32)) == "tx_missing"


def test_reverted_tx_is_not_an_anchor(anchored: tuple[EmbeddedChain, AnchorRecord]) -> None:
    chain, record = anchored
    anchorer = Anchorer(chain.web3, chain.contract_address, chain.account)
    nonce = chain.web3.eth.get_transaction_count(chain.account.address)
    template = anchorer.anchor(LOG, 13, b"\x01" * 32)  # mined, size 13
    doomed = replace(template, nonce=nonce + 1, tree_size=13, root="0x" + "02" * 32, attempts=())
    sent = anchorer._broadcast(doomed, 10**10, 10**9)  # size 13 again: reverts
    receipt = chain.web3.eth.get_transaction_receipt(sent.attempts[0].tx_hash)  # type: ignore[arg-type]
    assert receipt["status"] == 0
    claimed = replace(
        record,
        tx_hash=sent.attempts[0].tx_hash,
        block_number=receipt["blockNumber"],
        block_hash=Web3.to_hex(receipt["blockHash"]),
        tree_size=13,
        root="0x" + "02" * 32,
    )
    assert _step(chain.web3, claimed) == "tx_missing"


def test_contract_mismatch(anchored: tuple[EmbeddedChain, AnchorRecord]) -> None:
    chain, record = anchored
    assert _step(chain.web3, replace(record, contract="0x" + "12" * 20)) == "contract_mismatch"


def test_block_mismatch_number(anchored: tuple[EmbeddedChain, AnchorRecord]) -> None:
    chain, record = anchored
    wrong = replace(record, block_number=record.block_number - 1)
    assert _step(chain.web3, wrong) == "block_mismatch"


def test_block_mismatch_hash(anchored: tuple[EmbeddedChain, AnchorRecord]) -> None:
    chain, record = anchored
    assert _step(chain.web3, replace(record, block_hash="0x" + "77" * 32)) == "block_mismatch"


def test_insufficient_confirmations(anchored: tuple[EmbeddedChain, AnchorRecord]) -> None:
    chain, record = anchored
    assert _step(chain.web3, record, min_confirmations=10_000) == "insufficient_confirmations"


def test_event_mismatch_tree_size(anchored: tuple[EmbeddedChain, AnchorRecord]) -> None:
    chain, record = anchored
    assert _step(chain.web3, replace(record, tree_size=13)) == "event_mismatch"


def test_event_mismatch_log_id(anchored: tuple[EmbeddedChain, AnchorRecord]) -> None:
    chain, record = anchored
    assert _step(chain.web3, replace(record, log_id="0x" + "99" * 32)) == "event_mismatch"


def test_event_mismatch_not_an_anchor_call(anchored: tuple[EmbeddedChain, AnchorRecord]) -> None:
    chain, record = anchored
    set_anchorer(chain.web3, chain.account, chain.contract_address, "0x" + "34" * 20, poll_s=0)
    block = chain.web3.eth.get_block("latest")
    tx_hash = Web3.to_hex(block["transactions"][0])
    claimed = replace(
        record,
        tx_hash=tx_hash,
        block_number=block["number"],
        block_hash=Web3.to_hex(block["hash"]),
    )
    assert _step(chain.web3, claimed) == "event_mismatch"


def test_root_mismatch(anchored: tuple[EmbeddedChain, AnchorRecord]) -> None:
    chain, record = anchored
    assert _step(chain.web3, replace(record, root="0x" + "88" * 32)) == "root_mismatch"


def test_same_transaction_claimed_for_another_contract_at_the_same_address_shape() -> None:
    backend = PyEVMBackend()
    w3 = Web3(EthereumTesterProvider(EthereumTester(backend)))
    from eth_account import Account

    account = Account.from_key(backend.account_keys[0].to_bytes())
    first = deploy_anchor_contract(w3, account, poll_s=0.0)
    second = deploy_anchor_contract(w3, account, poll_s=0.0)
    anchorer = Anchorer(w3, first, account)
    record = anchorer.poll(anchorer.anchor(LOG, 1, ROOT))
    assert isinstance(record, AnchorRecord)
    # A bundle pointing at a different (genuine) Anchor contract is refused.
    assert _step(w3, replace(record, contract=second.lower())) == "contract_mismatch"


class DownProvider(EthereumTesterProvider):
    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        raise requests.exceptions.ConnectionError("Connection refused")


def test_unreachable_node_is_not_a_verdict(anchored: tuple[EmbeddedChain, AnchorRecord]) -> None:
    _, record = anchored
    with pytest.raises(AnchorRpcUnavailableError):
        verify_anchor_on_chain(Web3(DownProvider()), record, 1)
