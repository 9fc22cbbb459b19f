"""Errors raised by `audit_chain.anchoring`.

Every error subclasses `audit_chain.errors.AuditChainError` and carries data,
not just text.

Tree::

    AuditChainError
    └── AnchoringError
        ├── AnchorRecordError           malformed persisted record / state / key file
        ├── ContractArtifactError       artifact missing, malformed, or not reproducible
        ├── AnchorRpcUnavailableError   the JSON-RPC endpoint cannot be reached
        ├── AnchorTransactionError      the node refused or failed our transaction
        │   ├── AnchorRejectedError     the contract refuses the anchor (reason given)
        │   └── AnchorRevertedError     an anchor transaction was mined but reverted
        ├── EmbeddedChainError          the embedded chain's journal cannot be replayed
        └── AnchorVerificationError     an anchor does not hold on chain (step named)
"""

from __future__ import annotations

from audit_chain.errors import AuditChainError

#: The steps `verify_anchor_on_chain` names, in the order it checks them.
VERIFICATION_STEPS = (
    "malformed",
    "chain_mismatch",
    "tx_missing",
    "contract_mismatch",
    "block_mismatch",
    "insufficient_confirmations",
    "event_mismatch",
    "root_mismatch",
)


class AnchoringError(AuditChainError):
    """Root of every error the anchoring subpackage raises."""


class AnchorRecordError(AnchoringError):
    """A persisted anchor record, anchoring state or key file is malformed."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ContractArtifactError(AnchoringError):
    """The committed contract artifact is missing, malformed or differs from the source."""


class AnchorRpcUnavailableError(AnchoringError):
    """The chain's JSON-RPC endpoint could not be reached (connection refused, timeout)."""

    def __init__(self, message: str, *, method: str) -> None:
        super().__init__(message)
        self.method = method


class AnchorTransactionError(AnchoringError):
    """The node refused our transaction or reported an error about it."""

    def __init__(self, message: str, *, tx_hash: str | None = None) -> None:
        super().__init__(message)
        self.tx_hash = tx_hash


class AnchorRejectedError(AnchorTransactionError):
    """The contract refuses this anchor (not an anchorer, size not increasing, duplicate root).

    `reason` is the contract's revert string when the node reports it.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class AnchorRevertedError(AnchorTransactionError):
    """An anchor transaction was mined with status 0."""

    def __init__(self, message: str, *, tx_hash: str, block_number: int) -> None:
        super().__init__(message, tx_hash=tx_hash)
        self.block_number = block_number


class EmbeddedChainError(AnchoringError):
    """The embedded chain's journal is corrupt, diverges on replay, or a refused call was made."""


class AnchorVerificationError(AnchoringError):
    """An anchor does not hold on chain.

    `step` is one of `VERIFICATION_STEPS`; `expected` and `actual` carry the
    values compared at that step (None when not applicable).
    """

    def __init__(
        self,
        step: str,
        message: str,
        *,
        expected: object = None,
        actual: object = None,
    ) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.expected = expected
        self.actual = actual
