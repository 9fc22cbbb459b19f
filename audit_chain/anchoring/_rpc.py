"""Map JSON-RPC failures to anchoring errors.

Invariant: a connection-level failure (refused, reset, timeout) always surfaces as
`AnchorRpcUnavailableError`, so the anchoring loop can back off and retry, while a
contract revert surfaces as `AnchorRejectedError` carrying the revert reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from web3 import Web3
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    Web3RPCError,
)

from audit_chain.anchoring._limits import cap_recursion_limit
from audit_chain.anchoring.errors import (
    AnchorRejectedError,
    AnchorRpcUnavailableError,
    AnchorTransactionError,
)

cap_recursion_limit()  # py_ecc raised it to 100,000 on import: see _limits

try:
    from eth_tester.exceptions import TransactionFailed as _TesterTransactionFailed
    from eth_tester.exceptions import ValidationError as _TesterValidationError

    _TESTER_REVERTS: tuple[type[Exception], ...] = (_TesterTransactionFailed,)
    _TESTER_REFUSALS: tuple[type[Exception], ...] = (_TesterValidationError,)
except ImportError:  # eth-tester is optional outside the embedded chain
    _TESTER_REVERTS = ()
    _TESTER_REFUSALS = ()

T = TypeVar("T")

_UNREACHABLE: tuple[type[Exception], ...] = (
    OSError,  # includes ConnectionError, TimeoutError and requests' exceptions
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
)

_REVERTS: tuple[type[Exception], ...] = (ContractLogicError, *_TESTER_REVERTS)
_REFUSALS: tuple[type[Exception], ...] = (Web3RPCError, *_TESTER_REFUSALS)


def revert_reason(exc: BaseException) -> str:
    """The revert string from a ContractLogicError / eth-tester TransactionFailed."""
    text = getattr(exc, "message", None) or str(exc)
    text = str(text)
    marker = "execution reverted: "
    if marker in text:
        text = text.split(marker, 1)[1]
    return text.strip()[:200] or "execution reverted"


def call(method: str, fn: Callable[[], T]) -> T:
    """Run one RPC interaction, translating failures.

    Raises:
        AnchorRpcUnavailableError: the endpoint cannot be reached.
        AnchorRejectedError: the call reverted in the contract.
        AnchorTransactionError: the node returned another error.
    """
    try:
        return fn()
    except _UNREACHABLE as exc:
        raise AnchorRpcUnavailableError(
            f"{method}: chain RPC unreachable: {exc}", method=method
        ) from exc
    except _REVERTS as exc:
        reason = revert_reason(exc)
        raise AnchorRejectedError(f"{method}: contract refused: {reason}", reason=reason) from exc
    except _REFUSALS as exc:
        raise AnchorTransactionError(f"{method}: node error: {exc}") from exc


def http_web3(url: str, *, timeout_s: float = 5.0) -> Web3:
    """A Web3 over HTTP JSON-RPC for the anchorer: bounded timeout, no built-in retries.

    web3's default HTTP retries sleep inside the call; the anchoring loop does its
    own back-off instead, so a dead node costs at most `timeout_s` per step.
    """
    provider = Web3.HTTPProvider(
        url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None
    )
    return Web3(provider)
