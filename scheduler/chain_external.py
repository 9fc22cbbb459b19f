"""Anchoring on an external EVM chain over JSON-RPC (``cntrust up --chain-rpc``).

``external_anchorer(rpc_url, key_file, contract, state_dir)`` builds the
:class:`audit_chain.anchoring.Anchorer` the provenance layer uses instead of the embedded
chain: the anchorer key comes from ``key_file`` (hex secp256k1 key, mode 0600); the contract
is ``contract`` when given, else the one this data dir deployed earlier on the same chain
(``state_dir/contract.json``), else a new deployment from the anchorer key (whose owner is
then that key, the only authorized anchorer). Transactions are signed locally; the chain id
is read from the node, never assumed.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

CONTRACT_FILE = "contract.json"
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class ChainConfigError(Exception):
    """The external chain cannot be used: bad key file, contract, or unreachable node."""


def _saved_contract(path: Path, chain_id: int) -> str | None:
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
        address = saved["contract"] if saved["chain_id"] == chain_id else None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ChainConfigError(f"{path} is not a contract record: {exc}") from exc
    if address is not None and not _ADDRESS.fullmatch(str(address)):
        raise ChainConfigError(f"{path} holds no contract address")
    return None if address is None else str(address)


def _save_contract(path: Path, chain_id: int, address: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"chain_id": chain_id, "contract": address}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def external_anchorer(
    rpc_url: str, key_file: Path, contract: str | None, state_dir: Path, *, timeout_s: float = 10.0
) -> Any:
    """The anchorer for ``rpc_url`` (see the module docstring).

    Raises:
        ChainConfigError: the key file is missing, readable by others or not a key; the
            contract is not an address or has no code there; the node cannot be reached.
    """
    from web3 import Web3

    from audit_chain.anchoring import (
        Anchorer,
        AnchoringError,
        AnchorRecordError,
        deploy_anchor_contract,
        http_web3,
        load_anchorer_key,
    )

    if contract is not None and not _ADDRESS.fullmatch(contract):
        raise ChainConfigError(f"--contract {contract!r} is not a 0x-prefixed 20-byte address")
    try:
        account = load_anchorer_key(key_file)
    except (AnchorRecordError, OSError) as exc:
        raise ChainConfigError(f"--chain-key {key_file}: {exc}") from exc
    web3 = http_web3(rpc_url, timeout_s=timeout_s)
    try:
        chain_id = int(web3.eth.chain_id)
        record = state_dir / CONTRACT_FILE
        address = contract or _saved_contract(record, chain_id)
        if address is None:
            address = deploy_anchor_contract(web3, account)
            _save_contract(record, chain_id, address)
        if not web3.eth.get_code(Web3.to_checksum_address(address)):
            raise ChainConfigError(f"no contract at {address} on chain {chain_id}")
    except ChainConfigError:
        raise
    except (OSError, AnchoringError) as exc:
        raise ChainConfigError(f"cannot use the chain at {rpc_url}: {exc}") from exc
    except Exception as exc:  # web3 raises many types for an unreachable or odd node
        raise ChainConfigError(
            f"cannot use the chain at {rpc_url}: {type(exc).__name__}: {exc}"
        ) from exc
    return Anchorer(web3, address, account)
