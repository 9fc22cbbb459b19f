"""The public API of audit_chain.anchoring is its __all__; pin it."""

from __future__ import annotations

import subprocess
import sys

import audit_chain.anchoring as anchoring
from audit_chain.anchoring.errors import AnchoringError
from audit_chain.errors import AuditChainError

EXPECTED = {
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
}


def test_all_is_pinned() -> None:
    assert set(anchoring.__all__) == EXPECTED
    assert len(anchoring.__all__) == len(EXPECTED)


def test_every_name_resolves() -> None:
    for name in anchoring.__all__:
        assert getattr(anchoring, name) is not None, name


def test_errors_descend_from_the_package_root() -> None:
    for name in anchoring.__all__:
        value = getattr(anchoring, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, AnchoringError), name
            assert issubclass(value, AuditChainError), name


def test_records_and_errors_load_without_web3() -> None:
    code = (
        "import sys; from audit_chain.anchoring import AnchorRecord, AnchorVerificationError;"
        "print('web3' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
