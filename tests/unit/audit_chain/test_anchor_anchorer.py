"""Anchorer on eth-tester: happy path, confirmations, nonce gaps, dropped and stuck transactions."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from web3 import EthereumTesterProvider, Web3
from web3.exceptions import TransactionNotFound

from audit_chain.anchoring import (
    Anchorer,
    AnchorRecord,
    AnchorRejectedError,
    AnchorRevertedError,
    FeePolicy,
    PendingAnchor,
    deploy_anchor_contract,
)

LOG = b"\x11" * 32
GWEI = 10**9


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Chain:
    def __init__(self) -> None:
        backend = PyEVMBackend()
        self.tester = EthereumTester(backend)
        self.w3 = Web3(EthereumTesterProvider(self.tester))
        keys = backend.account_keys
        self.account: LocalAccount = Account.from_key(keys[0].to_bytes())
        self.other: LocalAccount = Account.from_key(keys[1].to_bytes())
        self.address = deploy_anchor_contract(self.w3, self.account, poll_s=0.0)
        self.clock = Clock()

    def anchorer(self, **kwargs: object) -> Anchorer:
        return Anchorer(self.w3, self.address, self.account, clock=self.clock, **kwargs)  # type: ignore[arg-type]

    def send_plain_tx(self, account: LocalAccount, nonce: int | None = None) -> None:
        tx = {
            "type": 2,
            "chainId": self.w3.eth.chain_id,
            "nonce": self.w3.eth.get_transaction_count(account.address) if nonce is None else nonce,
            "to": self.other.address,
            "value": 1,
            "gas": 21_000,
            "maxFeePerGas": 100 * GWEI,
            "maxPriorityFeePerGas": GWEI,
        }
        self.w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)

    def latest_size(self) -> int:
        from audit_chain.anchoring import load_artifact

        c = self.w3.eth.contract(address=self.address, abi=list(load_artifact().abi))
        return int(c.functions.latest_tree_size(LOG).call())


@pytest.fixture
def chain() -> Chain:
    return Chain()


def test_anchor_then_poll_gives_a_complete_record(chain: Chain) -> None:
    anchorer = chain.anchorer()
    pending = anchorer.anchor(LOG, 42, b"\x07" * 32)
    assert len(pending.attempts) == 1
    record = anchorer.poll(pending)
    assert isinstance(record, AnchorRecord)
    receipt = chain.w3.eth.get_transaction_receipt(pending.attempts[0].tx_hash)
    assert record.chain_id == chain.w3.eth.chain_id
    assert record.contract == chain.address.lower()
    assert record.tx_hash == pending.attempts[0].tx_hash
    assert record.block_number == receipt["blockNumber"]
    assert record.block_hash == Web3.to_hex(receipt["blockHash"])
    assert (record.tree_size, record.root) == (42, "0x" + "07" * 32)
    assert record.anchorer == chain.account.address.lower()
    assert chain.latest_size() == 42


def test_transaction_is_signed_by_the_anchorer_key(chain: Chain) -> None:
    pending = chain.anchorer().anchor(LOG, 1, b"\x01" * 32)
    tx = chain.w3.eth.get_transaction(pending.attempts[0].tx_hash)
    assert tx["from"] == chain.account.address
    assert tx["type"] == 2


def test_record_waits_for_k_confirmations(chain: Chain) -> None:
    anchorer = chain.anchorer(confirmations=3)
    pending = anchorer.anchor(LOG, 5, b"\x05" * 32)
    polled = anchorer.poll(pending)
    assert isinstance(polled, PendingAnchor)
    assert polled.included is not None
    chain.tester.mine_blocks(1)
    assert isinstance(anchorer.poll(polled), PendingAnchor)
    chain.tester.mine_blocks(1)
    record = anchorer.poll(polled)
    assert isinstance(record, AnchorRecord)
    assert record.confirmations == 3


def test_nonce_consumed_by_another_transaction_is_resent_with_a_fresh_nonce(chain: Chain) -> None:
    anchorer = chain.anchorer()
    chain.tester.disable_auto_mine_transactions()
    pending = anchorer.anchor(LOG, 9, b"\x09" * 32)
    # Another process using the same key takes the nonce: our transaction is replaced.
    chain.send_plain_tx(chain.account, nonce=pending.nonce)
    chain.tester.mine_blocks(1)
    chain.tester.enable_auto_mine_transactions()
    resent = anchorer.poll(pending)
    assert isinstance(resent, PendingAnchor)
    assert resent.nonce == pending.nonce + 1
    record = anchorer.poll(resent)
    assert isinstance(record, AnchorRecord)
    assert chain.latest_size() == 9


def test_nonce_gap_is_closed_by_resending_at_the_confirmed_nonce(chain: Chain) -> None:
    anchorer = chain.anchorer()
    confirmed = chain.w3.eth.get_transaction_count(chain.account.address)
    # A pending anchor remembered from before a restart, signed two nonces ahead of the
    # chain (the transactions before it were dropped): it can never be mined as is.
    chain.tester.disable_auto_mine_transactions()
    template = anchorer.anchor(LOG, 3, b"\x03" * 32)
    chain.tester._pending_transactions.clear()
    gapped = replace(template, nonce=confirmed + 2, attempts=())
    tx_hash, raw = anchorer._sign(gapped, 10 * GWEI, GWEI)
    from audit_chain.anchoring import SentTransaction

    gapped = replace(gapped, attempts=(SentTransaction(tx_hash, raw, 10 * GWEI, GWEI, 0.0),))
    chain.tester.enable_auto_mine_transactions()
    resent = anchorer.poll(gapped)
    assert isinstance(resent, PendingAnchor)
    assert resent.nonce == confirmed
    record = anchorer.poll(resent)
    assert isinstance(record, AnchorRecord)
    assert chain.latest_size() == 3


def test_dropped_transaction_is_rebroadcast(chain: Chain) -> None:
    anchorer = chain.anchorer()
    chain.tester.disable_auto_mine_transactions()
    pending = anchorer.anchor(LOG, 7, b"\x07" * 32)
    # The node evicts the transaction from its pool (eth-tester keeps its pool in this list).
    chain.tester._pending_transactions.clear()
    with pytest.raises(TransactionNotFound):
        chain.w3.eth.get_transaction(pending.attempts[0].tx_hash)
    again = anchorer.poll(pending)
    assert isinstance(again, PendingAnchor)
    assert again.attempts == pending.attempts  # same signed transaction, re-broadcast
    chain.tester.mine_blocks(1)
    record = anchorer.poll(again)
    assert isinstance(record, AnchorRecord)
    assert record.tx_hash == pending.attempts[0].tx_hash


def test_stuck_transaction_is_fee_bumped_and_the_replacement_mined(chain: Chain) -> None:
    anchorer = chain.anchorer(fee_policy=FeePolicy(bump_after_s=30, bump_percent=20))
    chain.tester.disable_auto_mine_transactions()
    pending = anchorer.anchor(LOG, 8, b"\x08" * 32)
    chain.clock.now += 10
    assert anchorer.poll(pending) == pending  # not yet stuck
    chain.clock.now += 30
    bumped = anchorer.poll(pending)
    assert isinstance(bumped, PendingAnchor)
    assert len(bumped.attempts) == 2
    first, second = bumped.attempts
    assert bumped.nonce == pending.nonce
    assert second.max_priority_fee_per_gas >= first.max_priority_fee_per_gas * 120 // 100
    assert second.max_fee_per_gas >= first.max_fee_per_gas * 120 // 100
    chain.tester.mine_blocks(1)
    record = anchorer.poll(bumped)
    assert isinstance(record, AnchorRecord)
    assert record.tx_hash == second.tx_hash


def test_fee_bumps_stop_at_the_cap(chain: Chain) -> None:
    base_max = 2 * int(chain.w3.eth.get_block("latest")["baseFeePerGas"]) + GWEI
    cap = base_max + base_max // 4
    anchorer = chain.anchorer(
        fee_policy=FeePolicy(bump_after_s=1, bump_percent=20, max_fee_per_gas_cap=cap)
    )
    chain.tester.disable_auto_mine_transactions()
    pending = anchorer.anchor(LOG, 8, b"\x08" * 32)
    for _ in range(5):
        chain.clock.now += 2
        polled = anchorer.poll(pending)
        assert isinstance(polled, PendingAnchor)
        pending = polled
    assert pending.fee_cap_reached
    assert all(a.max_fee_per_gas <= cap for a in pending.attempts)
    # One 20 % bump fits under the cap; the next would need to exceed it, so none is sent.
    assert len(pending.attempts) == 2


def test_refused_anchor_is_not_sent(chain: Chain) -> None:
    anchorer = chain.anchorer()
    assert isinstance(anchorer.poll(anchorer.anchor(LOG, 10, b"\x01" * 32)), AnchorRecord)
    nonce = chain.w3.eth.get_transaction_count(chain.account.address)
    with pytest.raises(AnchorRejectedError, match="duplicate root"):
        anchorer.anchor(LOG, 11, b"\x01" * 32)
    assert chain.w3.eth.get_transaction_count(chain.account.address) == nonce


def test_reverted_anchor_is_reported(chain: Chain) -> None:
    anchorer = chain.anchorer()
    first = anchorer.anchor(LOG, 10, b"\x01" * 32)
    assert isinstance(anchorer.poll(first), AnchorRecord)
    # Sign, without the gas estimate's check, an anchor the contract refuses (size 10 again).
    nonce = chain.w3.eth.get_transaction_count(chain.account.address)
    doomed = replace(first, root="0x" + "02" * 32, nonce=nonce, attempts=())
    sent = anchorer._broadcast(doomed, 10 * GWEI, GWEI)
    with pytest.raises(AnchorRevertedError) as info:
        anchorer.poll(sent)
    assert info.value.tx_hash == sent.attempts[0].tx_hash
    assert chain.latest_size() == 10


class MineOnNonceQuery(EthereumTesterProvider):
    """Mines the pool the moment the anchorer reads its nonce: the race where our
    transaction is mined between the receipt lookup and the nonce check."""

    armed = False

    def make_request(self, method, params):  # type: ignore[no-untyped-def]
        if self.armed and method == "eth_getTransactionCount":
            self.armed = False
            self.ethereum_tester.mine_blocks(1)
        return super().make_request(method, params)


def test_transaction_mined_during_poll_is_not_sent_again() -> None:
    backend = PyEVMBackend()
    tester = EthereumTester(backend)
    provider = MineOnNonceQuery(tester)
    w3 = Web3(provider)
    account = Account.from_key(backend.account_keys[0].to_bytes())
    address = deploy_anchor_contract(w3, account, poll_s=0.0)
    anchorer = Anchorer(w3, address, account)
    tester.disable_auto_mine_transactions()
    pending = anchorer.anchor(LOG, 5, b"\x05" * 32)
    provider.armed = True
    record = anchorer.poll(pending)
    assert isinstance(record, AnchorRecord)
    assert record.tx_hash == pending.attempts[0].tx_hash
