"""The regulator's on-chain check for `cntrust audit verify --rpc URL`.

`make_anchor_checker(url)` returns the ``check_anchor`` callable that
`audit_chain.verify_bundle` takes: it looks the bundle's anchor up on the chain
behind ``url`` and raises `AnchorVerificationError` (naming the failing step)
unless the transaction, block, contract, event, tree size and root all match.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from audit_chain.anchoring._rpc import http_web3
from audit_chain.anchoring.verify import verify_anchor_on_chain


def make_anchor_checker(
    rpc_url: str, *, min_confirmations: int = 1, timeout_s: float = 10.0
) -> Callable[[Any], None]:
    """Build a checker for bundle anchors (objects with the `audit_chain.Anchor` fields).

    The returned callable raises:
        AnchorVerificationError: the anchor is not on that chain as claimed (a bundle
            anchor without a log id is refused as ``malformed``).
        AnchorRpcUnavailableError: the node cannot be reached (nothing was verified).
    """
    web3 = http_web3(rpc_url, timeout_s=timeout_s)

    def check_anchor(anchor: Any) -> None:
        verify_anchor_on_chain(
            web3,
            {
                "chain_id": anchor.chain_id,
                "contract": anchor.contract,
                "tx_hash": anchor.tx_hash,
                "block_number": anchor.block_number,
                "tree_size": anchor.tree_size,
                "root": anchor.root,
                "log_id": anchor.log_id,
                "block_hash": anchor.block_hash,
            },
            min_confirmations,
        )

    return check_anchor
