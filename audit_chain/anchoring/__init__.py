"""Anchoring a transparency log's tree heads on an EVM chain (Vyper `Anchor` contract).

Public API (names load lazily, so reading records or errors never imports web3):

- contract: `load_artifact`, `compile_artifact`, `ContractArtifact`,
  `deploy_anchor_contract`, `set_anchorer`;
- sending: `Anchorer`, `FeePolicy`, `http_web3` (JSON-RPC client for `--chain-rpc`);
- scheduling: `AnchorLoop`, `AnchorPolicy`, `AnchorWorker`, `StepResult`, `TreeHead`,
  `new_state`;
- records: `AnchorRecord`, `AnchorState`, `PendingAnchor`, `SentTransaction`,
  `Inclusion`, `save_state_file`, `load_state_file`, `write_anchorer_key`,
  `load_anchorer_key`;
- embedded chain: `EmbeddedChain`;
- regulator side: `verify_anchor_on_chain`, `make_anchor_checker` (for `audit verify --rpc`);
- errors: see `audit_chain.anchoring.errors`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from audit_chain.anchoring.errors import (
    VERIFICATION_STEPS,
    AnchoringError,
    AnchorRecordError,
    AnchorRejectedError,
    AnchorRevertedError,
    AnchorRpcUnavailableError,
    AnchorTransactionError,
    AnchorVerificationError,
    ContractArtifactError,
    EmbeddedChainError,
)
from audit_chain.anchoring.records import (
    AnchorRecord,
    AnchorState,
    Inclusion,
    PendingAnchor,
    SentTransaction,
)

if TYPE_CHECKING:
    from audit_chain.anchoring._rpc import http_web3
    from audit_chain.anchoring.anchorer import Anchorer, FeePolicy
    from audit_chain.anchoring.checker import make_anchor_checker
    from audit_chain.anchoring.contract import ContractArtifact, compile_artifact, load_artifact
    from audit_chain.anchoring.deploy import deploy_anchor_contract, set_anchorer
    from audit_chain.anchoring.embedded import EmbeddedChain
    from audit_chain.anchoring.files import (
        load_anchorer_key,
        load_state_file,
        save_state_file,
        write_anchorer_key,
    )
    from audit_chain.anchoring.loop import (
        AnchorLoop,
        AnchorPolicy,
        AnchorWorker,
        StepResult,
        TreeHead,
        new_state,
    )
    from audit_chain.anchoring.verify import verify_anchor_on_chain

_LAZY = {
    "Anchorer": "anchorer",
    "FeePolicy": "anchorer",
    "ContractArtifact": "contract",
    "compile_artifact": "contract",
    "load_artifact": "contract",
    "deploy_anchor_contract": "deploy",
    "set_anchorer": "deploy",
    "EmbeddedChain": "embedded",
    "load_anchorer_key": "files",
    "load_state_file": "files",
    "save_state_file": "files",
    "write_anchorer_key": "files",
    "AnchorLoop": "loop",
    "AnchorPolicy": "loop",
    "AnchorWorker": "loop",
    "StepResult": "loop",
    "TreeHead": "loop",
    "new_state": "loop",
    "verify_anchor_on_chain": "verify",
    "http_web3": "_rpc",
    "make_anchor_checker": "checker",
}

__all__ = [
    "VERIFICATION_STEPS",
    "AnchorLoop",
    "AnchorPolicy",
    "AnchorRecord",
    "AnchorRecordError",
    "AnchorRejectedError",
    "AnchorRevertedError",
    "AnchorRpcUnavailableError",
    "AnchorState",
    "AnchorTransactionError",
    "AnchorVerificationError",
    "AnchorWorker",
    "Anchorer",
    "AnchoringError",
    "ContractArtifact",
    "ContractArtifactError",
    "EmbeddedChain",
    "EmbeddedChainError",
    "FeePolicy",
    "Inclusion",
    "PendingAnchor",
    "SentTransaction",
    "StepResult",
    "TreeHead",
    "compile_artifact",
    "deploy_anchor_contract",
    "http_web3",
    "load_anchorer_key",
    "load_artifact",
    "load_state_file",
    "make_anchor_checker",
    "new_state",
    "save_state_file",
    "set_anchorer",
    "verify_anchor_on_chain",
    "write_anchorer_key",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
