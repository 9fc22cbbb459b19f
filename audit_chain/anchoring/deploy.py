"""Deploy the Anchor contract and manage its anchorers, signing locally.

The deployer becomes the contract's owner and its first authorized anchorer.
Every transaction is signed with the given account and sent raw; the node's gas
estimate is used (py-evm's own estimate ignores Prague's calldata floor).
"""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from audit_chain.anchoring import _rpc
from audit_chain.anchoring._limits import cap_recursion_limit
from audit_chain.anchoring.contract import ContractArtifact, load_artifact
from audit_chain.anchoring.errors import AnchorRevertedError, AnchorTransactionError

cap_recursion_limit()  # py_ecc raised it to 100,000 on import: see _limits

GAS_MARGIN_PERCENT = 25


def _send_and_wait(
    web3: Web3, account: LocalAccount, tx: dict[str, Any], *, timeout_s: float, poll_s: float
) -> Any:
    tx = dict(tx)
    tx.setdefault("from", account.address)
    estimate = _rpc.call("eth_estimateGas", lambda: web3.eth.estimate_gas(tx))  # type: ignore[arg-type]
    tx["gas"] = int(estimate) * (100 + GAS_MARGIN_PERCENT) // 100
    tx["nonce"] = _rpc.call(
        "eth_getTransactionCount",
        lambda: web3.eth.get_transaction_count(account.address, "latest"),
    )
    tx["chainId"] = _rpc.call("eth_chainId", lambda: web3.eth.chain_id)
    block = _rpc.call("eth_getBlockByNumber", lambda: web3.eth.get_block("latest"))
    base_fee = int(block.get("baseFeePerGas", 0) or 0)
    tx["maxPriorityFeePerGas"] = 10**9
    tx["maxFeePerGas"] = 2 * base_fee + 10**9
    tx["type"] = 2
    tx.pop("from")
    signed = account.sign_transaction(tx)
    tx_hash = _rpc.call(
        "eth_sendRawTransaction", lambda: web3.eth.send_raw_transaction(signed.raw_transaction)
    )
    receipt = _rpc.call(
        "eth_getTransactionReceipt",
        lambda: web3.eth.wait_for_transaction_receipt(
            tx_hash, timeout=timeout_s, poll_latency=poll_s
        ),
    )
    if int(receipt["status"]) != 1:
        raise AnchorRevertedError(
            "transaction reverted",
            tx_hash=Web3.to_hex(tx_hash),
            block_number=int(receipt["blockNumber"]),
        )
    return receipt


def deploy_anchor_contract(
    web3: Web3,
    account: LocalAccount,
    *,
    artifact: ContractArtifact | None = None,
    timeout_s: float = 120.0,
    poll_s: float = 0.05,
) -> str:
    """Deploy the Anchor contract from `account`; returns its checksum address.

    Raises:
        AnchorRpcUnavailableError: the node cannot be reached.
        AnchorTransactionError: the node refused or the deployment reverted.
    """
    art = artifact or load_artifact()
    factory = web3.eth.contract(abi=list(art.abi), bytecode=art.bytecode)
    data = factory.constructor().data_in_transaction
    receipt = _send_and_wait(
        web3, account, {"data": data, "value": 0}, timeout_s=timeout_s, poll_s=poll_s
    )
    address = receipt.get("contractAddress")
    if not address:
        raise AnchorTransactionError("deployment receipt has no contract address")
    return Web3.to_checksum_address(address)


def set_anchorer(
    web3: Web3,
    owner: LocalAccount,
    contract_address: str,
    anchorer: str,
    *,
    allowed: bool = True,
    artifact: ContractArtifact | None = None,
    timeout_s: float = 120.0,
    poll_s: float = 0.05,
) -> None:
    """Authorize (`allowed`) or de-authorize `anchorer` on the contract, as its owner.

    Raises:
        AnchorRejectedError: `owner` is not the contract's owner.
        AnchorRpcUnavailableError: the node cannot be reached.
        AnchorTransactionError: the node refused the transaction.
    """
    art = artifact or load_artifact()
    address = Web3.to_checksum_address(contract_address)
    contract = web3.eth.contract(address=address, abi=list(art.abi))
    name = "add_anchorer" if allowed else "remove_anchorer"
    data = contract.encode_abi(name, args=[Web3.to_checksum_address(anchorer)])
    _send_and_wait(
        web3,
        owner,
        {"to": address, "data": data, "value": 0},
        timeout_s=timeout_s,
        poll_s=poll_s,
    )
