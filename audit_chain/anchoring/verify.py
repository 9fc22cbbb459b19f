"""Chain-side verification of an anchor, for the regulator (`cntrust audit verify --rpc`).

`verify_anchor_on_chain` checks, against a node the regulator chooses, that the
anchor a bundle points at really is on chain: the transaction, its block, the
contract, the `Anchored` event, and the contract's stored state. It returns None
and raises `AnchorVerificationError` naming the first failing step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from web3 import Web3
from web3.exceptions import TransactionNotFound

from audit_chain.anchoring import _rpc
from audit_chain.anchoring._limits import cap_recursion_limit
from audit_chain.anchoring.contract import load_artifact
from audit_chain.anchoring.errors import AnchoringError, AnchorVerificationError
from audit_chain.anchoring.records import AnchorRecord, address_hex, hash32_hex

cap_recursion_limit()  # py_ecc raised it to 100,000 on import: see _limits

_MAX_FIELD_CHARS = 200


def _fail(step: str, message: str, expected: object = None, actual: object = None) -> None:
    raise AnchorVerificationError(step, message, expected=expected, actual=actual)


def _field(data: Mapping[str, Any], name: str) -> Any:
    value = data.get(name)
    if value is None:
        _fail("malformed", f"anchor has no {name}")
    if isinstance(value, str) and len(value) > _MAX_FIELD_CHARS:
        _fail("malformed", f"anchor {name} too long")
    return value


def _int_field(data: Mapping[str, Any], name: str) -> int:
    value = _field(data, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        _fail("malformed", f"anchor {name} must be a non-negative integer")
    return int(value)


def _parse(anchor: AnchorRecord | Mapping[str, Any]) -> dict[str, Any]:
    data = anchor.to_dict() if isinstance(anchor, AnchorRecord) else anchor
    if not isinstance(data, Mapping):
        _fail("malformed", "anchor must be a mapping or AnchorRecord")
    try:
        parsed = {
            "chain_id": _int_field(data, "chain_id"),
            "contract": address_hex(_field(data, "contract"), field_name="contract"),
            "tx_hash": hash32_hex(_field(data, "tx_hash"), field_name="tx_hash"),
            "block_number": _int_field(data, "block_number"),
            "tree_size": _int_field(data, "tree_size"),
            "root": hash32_hex(_field(data, "root"), field_name="root"),
            "log_id": hash32_hex(_field(data, "log_id"), field_name="log_id"),
            "block_hash": None,
        }
        if data.get("block_hash") is not None:
            parsed["block_hash"] = hash32_hex(data["block_hash"], field_name="block_hash")
    except AnchoringError as exc:
        if isinstance(exc, AnchorVerificationError):
            raise
        raise AnchorVerificationError("malformed", str(exc)) from exc
    return parsed


def verify_anchor_on_chain(
    web3: Web3, anchor: AnchorRecord | Mapping[str, Any], min_confirmations: int = 1
) -> None:
    """Check that `anchor` is on the chain `web3` talks to, with `min_confirmations`.

    `anchor` holds chain_id, contract, tx_hash, block_number, tree_size, root and
    log_id (hex strings / integers), and optionally block_hash.

    Raises:
        AnchorVerificationError: with `step` one of "malformed", "chain_mismatch",
            "tx_missing", "contract_mismatch", "block_mismatch",
            "insufficient_confirmations", "event_mismatch", "root_mismatch".
        AnchorRpcUnavailableError: the node cannot be reached (nothing was verified).
    """
    a = _parse(anchor)
    eth = web3.eth

    # 1. The node serves the chain the anchor names.
    chain_id = int(_rpc.call("eth_chainId", lambda: eth.chain_id))
    if chain_id != a["chain_id"]:
        _fail("chain_mismatch", "node serves another chain", a["chain_id"], chain_id)

    # 2. The transaction is mined and succeeded.
    def receipt_or_none() -> Any:
        try:
            return eth.get_transaction_receipt(a["tx_hash"])
        except TransactionNotFound:
            return None

    receipt = _rpc.call("eth_getTransactionReceipt", receipt_or_none)
    if receipt is None or receipt.get("blockNumber") is None:
        _fail("tx_missing", "anchor transaction not found on chain", a["tx_hash"], None)
    if int(receipt["status"]) != 1:
        _fail("tx_missing", "anchor transaction reverted", 1, int(receipt["status"]))

    # 3. It called the anchor contract, which has code.
    to = receipt.get("to")
    actual_to = address_hex(str(to)) if to else None
    if actual_to != a["contract"]:
        _fail("contract_mismatch", "transaction went to another address", a["contract"], actual_to)
    code = _rpc.call("eth_getCode", lambda: eth.get_code(Web3.to_checksum_address(a["contract"])))
    if not code:
        _fail("contract_mismatch", "no contract code at the anchor address", a["contract"], None)

    # 4. In the named block, which is canonical.
    receipt_block = int(receipt["blockNumber"])
    receipt_hash = Web3.to_hex(receipt["blockHash"]).lower()
    if receipt_block != a["block_number"]:
        _fail("block_mismatch", "transaction is in another block", a["block_number"], receipt_block)
    block = _rpc.call("eth_getBlockByNumber", lambda: eth.get_block(receipt_block))
    canonical_hash = Web3.to_hex(block["hash"]).lower()
    if canonical_hash != receipt_hash:
        _fail(
            "block_mismatch", "transaction's block is not canonical", receipt_hash, canonical_hash
        )
    if a["block_hash"] is not None and a["block_hash"] != canonical_hash:
        _fail("block_mismatch", "block hash differs", a["block_hash"], canonical_hash)

    # 5. Deep enough.
    head = int(_rpc.call("eth_blockNumber", lambda: eth.block_number))
    confirmations = head - receipt_block + 1
    if confirmations < min_confirmations:
        _fail(
            "insufficient_confirmations",
            "anchor block not deep enough",
            min_confirmations,
            confirmations,
        )

    # 6. The transaction emitted Anchored(log_id, tree_size, root) from the contract.
    contract = eth.contract(
        address=Web3.to_checksum_address(a["contract"]), abi=list(load_artifact().abi)
    )
    event = contract.events.Anchored()
    anchored = []
    for log in receipt["logs"]:
        if address_hex(str(log["address"])) != a["contract"]:
            continue
        topics = log.get("topics") or []
        if not topics or Web3.to_hex(topics[0]).lower() != _event_topic(event):
            continue
        anchored.append(event.process_log(log)["args"])
    if len(anchored) != 1:
        _fail("event_mismatch", "expected exactly one Anchored event", 1, len(anchored))
    args = anchored[0]
    event_log_id = Web3.to_hex(args["log_id"]).lower()
    if event_log_id != a["log_id"]:
        _fail("event_mismatch", "event is for another log", a["log_id"], event_log_id)
    if int(args["tree_size"]) != a["tree_size"]:
        _fail("event_mismatch", "event tree_size differs", a["tree_size"], int(args["tree_size"]))
    event_root = Web3.to_hex(args["root"]).lower()
    if event_root != a["root"]:
        _fail("root_mismatch", "event root differs", a["root"], event_root)

    # 7. The contract's state agrees: this root is anchored at this size for this log.
    stored = int(
        _rpc.call(
            "eth_call",
            lambda: contract.functions.anchored_size(
                bytes.fromhex(a["log_id"][2:]), bytes.fromhex(a["root"][2:])
            ).call(),
        )
    )
    if stored != a["tree_size"]:
        _fail("root_mismatch", "contract state does not hold this root", a["tree_size"], stored)


def _event_topic(event: Any) -> str:
    abi = event.abi
    signature = f"{abi['name']}({','.join(str(i['type']) for i in abi['inputs'])})"
    return Web3.to_hex(Web3.keccak(text=signature)).lower()
