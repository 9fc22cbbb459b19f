"""The anchoring loop: policy, back-off on an unreachable RPC, reorgs, persistence, worker."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from web3 import EthereumTesterProvider, Web3
from web3.types import RPCEndpoint, RPCResponse

from audit_chain.anchoring import (
    Anchorer,
    AnchorLoop,
    AnchorPolicy,
    AnchorRpcUnavailableError,
    AnchorState,
    AnchorWorker,
    TreeHead,
    deploy_anchor_contract,
    new_state,
    verify_anchor_on_chain,
)

LOG = b"\x33" * 32


class Clock:
    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FlakyProvider(EthereumTesterProvider):
    """eth-tester, or a stopped node (connection refused) while `down` is set."""

    def __init__(self, tester: EthereumTester) -> None:
        super().__init__(tester)
        self.down = False
        self.calls = 0

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        self.calls += 1
        if self.down:
            raise requests.exceptions.ConnectionError("Connection refused (fake stopped node)")
        return super().make_request(method, params)


class Setup:
    def __init__(self, policy: AnchorPolicy | None = None, confirmations: int = 1) -> None:
        backend = PyEVMBackend()
        self.tester = EthereumTester(backend)
        self.provider = FlakyProvider(self.tester)
        self.w3 = Web3(self.provider)
        self.account: LocalAccount = Account.from_key(backend.account_keys[0].to_bytes())
        self.address = deploy_anchor_contract(self.w3, self.account, poll_s=0.0)
        self.clock = Clock()
        self.anchorer = Anchorer(
            self.w3, self.address, self.account, clock=self.clock, confirmations=confirmations
        )
        self.loop = AnchorLoop(self.anchorer, policy=policy, clock=self.clock)


def head(size: int) -> TreeHead:
    return TreeHead(size, size.to_bytes(32, "big"))


def run_until_anchored(setup: Setup, state: AnchorState, h: TreeHead) -> AnchorState:
    for _ in range(5):
        result = setup.loop.step(state, h)
        state = result.state
        if result.anchored:
            return state
    raise AssertionError("not anchored in 5 steps")


def test_defaults_are_65536_entries_or_ten_minutes() -> None:
    policy = AnchorPolicy()
    assert (policy.every_entries, policy.every_s) == (65_536, 600.0)


def test_first_head_is_anchored_and_recorded() -> None:
    s = Setup()
    state = new_state(LOG)
    assert s.loop.step(state, None).action == "idle"
    assert s.loop.step(state, head(0)).action == "idle"
    sent = s.loop.step(state, head(5))
    assert sent.action == "sent" and sent.state.pending is not None
    done = s.loop.step(sent.state, head(5))
    assert done.action == "anchored"
    (record,) = done.anchored
    assert (record.tree_size, record.root) == (5, "0x" + (5).to_bytes(32, "big").hex())
    assert done.state.pending is None and done.state.anchored_tree_size == 5
    verify_anchor_on_chain(s.w3, record, 1)


def test_policy_every_n_entries_or_t_seconds() -> None:
    s = Setup(AnchorPolicy(every_entries=100, every_s=600))
    state = run_until_anchored(s, new_state(LOG), head(10))
    start = state.last_started_at
    assert start is not None
    assert not s.loop.due(state, head(109), start + 10)  # 99 new entries, 10 s
    assert s.loop.due(state, head(110), start + 10)  # 100 new entries
    assert not s.loop.due(state, head(11), start + 599)  # 1 new entry, just under 10 min
    assert s.loop.due(state, head(11), start + 600)  # 1 new entry, 10 min
    assert not s.loop.due(state, head(10), start + 10_000)  # nothing new, whatever the time
    s.clock.now = start + 10
    assert s.loop.step(state, head(109)).action == "idle"
    assert s.loop.step(state, head(110)).action == "sent"


def test_one_transaction_per_anchor_whatever_the_growth() -> None:
    s = Setup(AnchorPolicy(every_entries=100, every_s=600))
    state = run_until_anchored(s, new_state(LOG), head(10))
    nonce = s.w3.eth.get_transaction_count(s.account.address)
    state = run_until_anchored(s, state, head(1_000_000))
    assert s.w3.eth.get_transaction_count(s.account.address) == nonce + 1
    assert state.anchored_tree_size == 1_000_000


def test_unreachable_rpc_backs_off_exponentially_then_recovers() -> None:
    s = Setup(AnchorPolicy(retry_base_s=1, retry_max_s=4))
    state = new_state(LOG)
    s.provider.down = True
    result = s.loop.step(state, head(3))
    assert result.action == "error"
    assert isinstance(result.error, AnchorRpcUnavailableError)
    assert result.state.retry_at == s.clock.now + 1
    state = result.state
    calls = s.provider.calls
    s.clock.now += 0.5
    assert s.loop.step(state, head(3)).action == "backoff"
    assert s.provider.calls == calls  # no RPC during back-off: never blocks on the node
    delays = []
    for _ in range(4):
        s.clock.now = state.retry_at  # type: ignore[assignment]
        state = s.loop.step(state, head(3)).state
        delays.append(state.retry_at - s.clock.now)  # type: ignore[operator]
    assert delays == [2, 4, 4, 4]
    assert state.consecutive_failures == 5 and "unreachable" in (state.last_error or "")
    s.provider.down = False
    s.clock.now = state.retry_at  # type: ignore[assignment]
    recovered = s.loop.step(state, head(3))
    assert recovered.action == "sent"
    assert recovered.state.consecutive_failures == 0 and recovered.state.retry_at is None
    assert recovered.state.last_error is None
    assert run_until_anchored(s, recovered.state, head(3)).anchored_tree_size == 3


def test_rpc_loss_while_pending_keeps_the_pending_anchor() -> None:
    s = Setup()
    s.tester.disable_auto_mine_transactions()
    sent = s.loop.step(new_state(LOG), head(4)).state
    s.provider.down = True
    failed = s.loop.step(sent, head(4))
    assert failed.action == "error" and failed.state.pending == sent.pending
    s.provider.down = False
    s.tester.mine_blocks(1)
    s.clock.now = failed.state.retry_at  # type: ignore[assignment]
    assert s.loop.step(failed.state, head(4)).action == "anchored"


def test_reorg_of_a_confirmed_anchor_leads_to_re_anchoring() -> None:
    s = Setup()
    state = run_until_anchored(s, new_state(LOG), head(1))
    snapshot = s.tester.take_snapshot()
    s.clock.now += 600
    state = run_until_anchored(s, state, head(2))
    first = state.anchors[-1]
    # The block holding our anchor leaves the chain (eth-tester's revert = a reorg).
    s.tester.revert_to_snapshot(snapshot)
    s.tester.mine_blocks(1)
    result = s.loop.step(state, head(2))
    assert result.action == "reorg"
    assert result.orphaned == (first,)
    assert result.state.anchored_tree_size == 1 and result.state.pending is not None
    state = run_until_anchored(s, result.state, head(2))
    again = state.anchors[-1]
    assert (again.tree_size, again.root) == (first.tree_size, first.root)
    assert again.block_hash != first.block_hash
    verify_anchor_on_chain(s.w3, again, 1)


def test_state_round_trips_through_json_between_steps() -> None:
    s = Setup(confirmations=2)
    state = new_state(LOG)
    for _ in range(6):
        result = s.loop.step(AnchorState.from_json(state.to_json()), head(8))
        state = result.state
        if result.action == "waiting":
            s.tester.mine_blocks(1)
    assert state.anchored_tree_size == 8
    assert AnchorState.from_json(state.to_json()) == state


def test_worker_runs_in_background_and_persists() -> None:
    s = Setup()
    saved: list[AnchorState] = []
    anchored = threading.Event()
    worker = AnchorWorker(
        s.loop,
        new_state(LOG),
        read_head=lambda: head(6),
        save_state=saved.append,
        on_anchored=lambda record: anchored.set(),
        interval_s=0.01,
    )
    worker.start()
    try:
        assert anchored.wait(10)
    finally:
        worker.stop()
    assert worker.failure is None
    assert saved[-1].anchored_tree_size == 6 == worker.state.anchored_tree_size


def test_worker_step_returns_quickly_while_the_node_is_down() -> None:
    s = Setup()
    s.provider.down = True
    worker = AnchorWorker(
        s.loop, new_state(LOG), read_head=lambda: head(6), save_state=lambda st: None
    )
    started = time.monotonic()
    for _ in range(20):
        worker.run_once()
    assert time.monotonic() - started < 1.0
    assert worker.state.consecutive_failures == 1  # later steps were back-off, not RPC


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        AnchorPolicy(every_entries=0)
    with pytest.raises(ValueError):
        AnchorPolicy(retry_base_s=10, retry_max_s=1)
