"""Send anchors to the Anchor contract and follow them to K confirmations.

The anchorer signs every transaction locally with its own key (eth_account) and
broadcasts raw transactions; it never asks the node to sign (`.transact()` would
silently use the node's unlocked account on dev chains).

Invariants:
- at most one anchor is in flight per `PendingAnchor`; its nonce is the account's
  confirmed transaction count when it is created, so a dropped transaction or a
  gap left by an earlier process never stalls later anchors;
- replacements keep the nonce and raise both fee fields by `bump_percent`, never
  above `max_fee_per_gas_cap`;
- an anchor is reported (`AnchorRecord`) only after `confirmations` blocks, and
  only while its block is still canonical; a block that left the chain sends the
  anchor back to pending (re-broadcast, or re-sent with a fresh nonce).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound

from audit_chain.anchoring import _rpc
from audit_chain.anchoring._limits import cap_recursion_limit
from audit_chain.anchoring.contract import ContractArtifact, load_artifact
from audit_chain.anchoring.errors import AnchorRevertedError, AnchorTransactionError
from audit_chain.anchoring.records import (
    AnchorRecord,
    Inclusion,
    PendingAnchor,
    SentTransaction,
    address_hex,
    hash32_hex,
)

cap_recursion_limit()  # py_ecc raised it to 100,000 on import: see _limits

GWEI = 10**9
_NEW_SEND_TRIES = 4


@dataclass(frozen=True)
class FeePolicy:
    """How much the anchorer pays, and how it unsticks a transaction.

    A transaction not mined `bump_after_s` after its last broadcast is replaced at
    the same nonce with both fees raised by `bump_percent` (>= 10, what nodes
    require), never above `max_fee_per_gas_cap`.
    """

    priority_fee_wei: int = 1 * GWEI
    max_fee_per_gas_cap: int = 200 * GWEI
    bump_after_s: float = 60.0
    bump_percent: int = 15
    gas_margin_percent: int = 25

    def __post_init__(self) -> None:
        if self.bump_percent < 10:
            raise ValueError("bump_percent must be >= 10 (nodes refuse smaller replacements)")
        if self.priority_fee_wei < 0 or self.max_fee_per_gas_cap <= 0:
            raise ValueError("fees must be positive")


def _hex(value: Any) -> str:
    return Web3.to_hex(value).lower()


def _tx_hash_hex(value: Any) -> str:
    return hash32_hex(_hex(value), field_name="tx_hash")


class Anchorer:
    """Anchors tree heads of transparency logs on one contract with one key.

    `web3` is any Web3 instance (embedded eth-tester, or HTTP to a real node);
    `clock` returns seconds (time.time by default) and only decides fee bumps.
    """

    def __init__(
        self,
        web3: Web3,
        contract_address: str,
        account: LocalAccount,
        *,
        confirmations: int = 1,
        fee_policy: FeePolicy | None = None,
        clock: Callable[[], float] = time.time,
        artifact: ContractArtifact | None = None,
    ) -> None:
        if confirmations < 1:
            raise ValueError("confirmations must be >= 1")
        self._w3 = web3
        self._artifact = artifact or load_artifact()
        self._address = Web3.to_checksum_address(contract_address)
        self._contract = web3.eth.contract(address=self._address, abi=list(self._artifact.abi))
        self._account = account
        self._confirmations = confirmations
        self._fees = fee_policy or FeePolicy()
        self._clock = clock
        self._chain_id: int | None = None

    @property
    def contract_address(self) -> str:
        return self._address

    @property
    def account_address(self) -> str:
        return str(self._account.address)

    @property
    def confirmations(self) -> int:
        return self._confirmations

    def chain_id(self) -> int:
        """The chain id reported by the node (cached).

        Raises:
            AnchorRpcUnavailableError: the node cannot be reached.
        """
        if self._chain_id is None:
            self._chain_id = int(_rpc.call("eth_chainId", lambda: self._w3.eth.chain_id))
        return self._chain_id

    def head_block_number(self) -> int:
        """The node's latest block number.

        Raises:
            AnchorRpcUnavailableError: the node cannot be reached.
        """
        return int(_rpc.call("eth_blockNumber", lambda: self._w3.eth.block_number))

    # -- sending ---------------------------------------------------------------

    def anchor(self, log_id: bytes | str, tree_size: int, root: bytes | str) -> PendingAnchor:
        """Sign and broadcast an anchor of (`tree_size`, `root`) for `log_id`.

        The node's gas estimate is used (it also runs the contract's checks, so a
        refused anchor fails here, before anything is sent).

        Raises:
            AnchorRejectedError: the contract refuses (not an anchorer, size not
                increasing, duplicate root).
            AnchorRpcUnavailableError: the node cannot be reached.
            AnchorTransactionError: the node refused the transaction.
        """
        log_hex = hash32_hex(log_id, field_name="log_id")
        root_hex = hash32_hex(root, field_name="root")
        if tree_size < 1:
            raise ValueError("tree_size must be >= 1")
        fn = self._contract.functions.anchor(
            bytes.fromhex(log_hex[2:]), tree_size, bytes.fromhex(root_hex[2:])
        )
        estimate = _rpc.call(
            "eth_estimateGas", lambda: fn.estimate_gas({"from": self._account.address})
        )
        gas = int(estimate) * (100 + self._fees.gas_margin_percent) // 100
        nonce = self._confirmed_nonce()
        max_fee, priority = self._initial_fees()
        pending = PendingAnchor(
            log_id=log_hex,
            tree_size=tree_size,
            root=root_hex,
            nonce=nonce,
            gas=gas,
            attempts=(),
        )
        return self._broadcast_new(pending, max_fee, priority)

    def _broadcast_new(self, pending: PendingAnchor, max_fee: int, priority: int) -> PendingAnchor:
        """First broadcast at a fresh nonce, outbidding a leftover transaction of ours.

        A transaction from an earlier process may still sit in the node's pool at
        this nonce; the node then refuses ours as underpriced, so raise the fees by
        `bump_percent` (up to the cap) a few times. "nonce too low" means the nonce
        moved while we prepared; take the new one.
        """
        for _ in range(_NEW_SEND_TRIES - 1):
            try:
                return self._broadcast(pending, max_fee, priority)
            except AnchorTransactionError as exc:
                text = str(exc).lower()
                factor = 100 + self._fees.bump_percent
                if "underpriced" in text and max_fee < self._fees.max_fee_per_gas_cap:
                    max_fee = min(max_fee * factor // 100 + 1, self._fees.max_fee_per_gas_cap)
                    priority = min(priority * factor // 100 + 1, max_fee)
                elif "nonce too low" in text:
                    pending = replace(pending, nonce=self._confirmed_nonce())
                else:
                    raise
        return self._broadcast(pending, max_fee, priority)

    def _confirmed_nonce(self) -> int:
        address = self._account.address
        return int(
            _rpc.call(
                "eth_getTransactionCount",
                lambda: self._w3.eth.get_transaction_count(address, "latest"),
            )
        )

    def _initial_fees(self) -> tuple[int, int]:
        block = _rpc.call("eth_getBlockByNumber", lambda: self._w3.eth.get_block("latest"))
        base_fee = int(block.get("baseFeePerGas", 0) or 0)
        priority = min(self._fees.priority_fee_wei, self._fees.max_fee_per_gas_cap)
        max_fee = min(2 * base_fee + priority, self._fees.max_fee_per_gas_cap)
        return max_fee, priority

    def _sign(self, pending: PendingAnchor, max_fee: int, priority: int) -> tuple[str, str]:
        data = self._contract.encode_abi(
            "anchor",
            args=[
                bytes.fromhex(pending.log_id[2:]),
                pending.tree_size,
                bytes.fromhex(pending.root[2:]),
            ],
        )
        tx = {
            "type": 2,
            "chainId": self.chain_id(),
            "nonce": pending.nonce,
            "to": self._address,
            "value": 0,
            "gas": pending.gas,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": min(priority, max_fee),
            "data": data,
        }
        signed = self._account.sign_transaction(tx)
        return _tx_hash_hex(signed.hash), _hex(signed.raw_transaction)

    def _broadcast(self, pending: PendingAnchor, max_fee: int, priority: int) -> PendingAnchor:
        tx_hash, raw = self._sign(pending, max_fee, priority)
        self._send_raw(raw, tx_hash)
        attempt = SentTransaction(
            tx_hash=tx_hash,
            raw=raw,
            max_fee_per_gas=max_fee,
            max_priority_fee_per_gas=min(priority, max_fee),
            sent_at=self._clock(),
        )
        return replace(pending, attempts=(*pending.attempts, attempt))

    def _send_raw(self, raw: str, tx_hash: str) -> None:
        try:
            _rpc.call(
                "eth_sendRawTransaction", lambda: self._w3.eth.send_raw_transaction(HexStr(raw))
            )
        except AnchorTransactionError as exc:
            # A node that already holds this exact transaction has what we want.
            if "already known" in str(exc).lower() or "already imported" in str(exc).lower():
                return
            raise AnchorTransactionError(str(exc), tx_hash=tx_hash) from exc

    # -- following -------------------------------------------------------------

    def poll(self, pending: PendingAnchor) -> PendingAnchor | AnchorRecord:
        """Advance a pending anchor: confirmed record, or the pending anchor updated.

        Handles, in order: a mined attempt (confirmed after K blocks, while its block
        is canonical); a block that left the chain (reorg); a nonce consumed by
        another transaction or left behind a gap (re-sent with the confirmed
        nonce); a dropped transaction (re-broadcast); a stuck one (fee bump up to
        the cap).

        Raises:
            AnchorRevertedError: the anchor was mined and reverted.
            AnchorRejectedError: a re-sent anchor is refused by the contract.
            AnchorRpcUnavailableError: the node cannot be reached.
            AnchorTransactionError: the node refused a re-broadcast.
        """
        mined = self._find_mined(pending)
        if mined is not None:
            return self._mined(pending, *mined)
        if pending.included is not None:
            pending = replace(pending, included=None, reorgs=pending.reorgs + 1)
        confirmed = self._confirmed_nonce()
        if confirmed > pending.nonce:
            # Our nonce is used: by one of our attempts mined since we looked, or by
            # another transaction (then ours can never be mined).
            mined = self._find_mined(pending)
            if mined is not None:
                return self._mined(pending, *mined)
            return self._resend_with_new_nonce(pending)
        if confirmed < pending.nonce:
            # A gap (an earlier transaction was dropped or reorged out): ours can never
            # be mined at this nonce.
            return self._resend_with_new_nonce(pending)
        latest = pending.attempts[-1]
        if not self._is_known(latest.tx_hash):
            self._send_raw(latest.raw, latest.tx_hash)
            return pending
        if self._clock() - latest.sent_at >= self._fees.bump_after_s:
            return self._bump(pending)
        return pending

    def _mined(
        self, pending: PendingAnchor, receipt: Any, inclusion: Inclusion
    ) -> PendingAnchor | AnchorRecord:
        if int(receipt["status"]) != 1:
            raise AnchorRevertedError(
                f"anchor transaction {inclusion.tx_hash} reverted",
                tx_hash=inclusion.tx_hash,
                block_number=inclusion.block_number,
            )
        head = self.head_block_number()
        if head - inclusion.block_number + 1 >= self._confirmations:
            return self._record(pending, inclusion, head)
        return replace(pending, included=inclusion)

    def _find_mined(self, pending: PendingAnchor) -> tuple[Any, Inclusion] | None:
        for attempt in reversed(pending.attempts):
            receipt = self._receipt(attempt.tx_hash)
            if receipt is None or receipt.get("blockHash") is None:
                continue
            block_number = int(receipt["blockNumber"])
            block_hash = hash32_hex(_hex(receipt["blockHash"]), field_name="block_hash")
            canonical = self._canonical_hash(block_number)
            if canonical != block_hash:
                continue
            return receipt, Inclusion(attempt.tx_hash, block_number, block_hash)
        return None

    def _receipt(self, tx_hash: str) -> Any:
        def get() -> Any:
            try:
                return self._w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            except TransactionNotFound:
                return None

        return _rpc.call("eth_getTransactionReceipt", get)

    def _canonical_hash(self, block_number: int) -> str | None:
        def get() -> Any:
            try:
                return self._w3.eth.get_block(block_number)
            except BlockNotFound:
                return None

        block = _rpc.call("eth_getBlockByNumber", get)
        if block is None:
            return None
        return hash32_hex(_hex(block["hash"]), field_name="block_hash")

    def _is_known(self, tx_hash: str) -> bool:
        def get() -> bool:
            try:
                self._w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
            except TransactionNotFound:
                return False
            return True

        return _rpc.call("eth_getTransactionByHash", get)

    def _bump(self, pending: PendingAnchor) -> PendingAnchor:
        latest = pending.attempts[-1]
        cap = self._fees.max_fee_per_gas_cap
        factor = 100 + self._fees.bump_percent
        base_max, _ = self._initial_fees()
        max_fee = min(max(latest.max_fee_per_gas * factor // 100 + 1, base_max), cap)
        priority = min(latest.max_priority_fee_per_gas * factor // 100 + 1, max_fee)
        # Nodes refuse a replacement that does not raise both fees by >= 10 %.
        if max_fee <= latest.max_fee_per_gas * 110 // 100 or priority <= (
            latest.max_priority_fee_per_gas * 110 // 100
        ):
            return replace(pending, fee_cap_reached=True)
        return self._broadcast(pending, max_fee, priority)

    def _resend_with_new_nonce(self, pending: PendingAnchor) -> PendingAnchor:
        fresh = self.anchor(pending.log_id, pending.tree_size, pending.root)
        return replace(fresh, reorgs=pending.reorgs)

    def _record(self, pending: PendingAnchor, inclusion: Inclusion, head: int) -> AnchorRecord:
        return AnchorRecord(
            chain_id=self.chain_id(),
            contract=address_hex(self._address),
            tx_hash=inclusion.tx_hash,
            block_number=inclusion.block_number,
            block_hash=inclusion.block_hash,
            log_id=pending.log_id,
            tree_size=pending.tree_size,
            root=pending.root,
            anchorer=address_hex(str(self._account.address)),
            confirmations=head - inclusion.block_number + 1,
        )

    def is_canonical(self, record: AnchorRecord) -> bool:
        """Whether a confirmed anchor's transaction is still in its recorded, canonical block.

        Raises:
            AnchorRpcUnavailableError: the node cannot be reached.
        """
        if self._canonical_hash(record.block_number) != record.block_hash:
            return False
        receipt = self._receipt(record.tx_hash)
        if receipt is None or receipt.get("blockHash") is None:
            return False
        return _hex(receipt["blockHash"]) == record.block_hash
