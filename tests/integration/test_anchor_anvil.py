"""Anchoring over JSON-RPC against a real node: anvil (npm @foundry-rs/anvil-linux-amd64@1.7.1).

Each test starts its own anvil on 127.0.0.1 and a free port, and stops it.
Covers anchoring with K confirmations, a reorg leading to re-anchoring, a stopped
node (retry, then recover), a stuck transaction fee-bumped, and a nonce gap.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from audit_chain.anchoring import (
    Anchorer,
    AnchorLoop,
    AnchorPolicy,
    AnchorRecord,
    AnchorRpcUnavailableError,
    AnchorState,
    AnchorVerificationError,
    FeePolicy,
    PendingAnchor,
    TreeHead,
    deploy_anchor_contract,
    http_web3,
    new_state,
    verify_anchor_on_chain,
)

pytestmark = pytest.mark.anvil

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ANVIL = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
LOG = b"\x77" * 32


def _anvil_binary() -> Path:
    path = Path(os.environ.get("CNTRUST_ANVIL", DEFAULT_ANVIL))
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.skip(
            f"anvil not found at {path}: run `npm install --no-save --ignore-scripts "
            "@foundry-rs/anvil-linux-amd64@1.7.1` in the repo root (or set CNTRUST_ANVIL)"
        )
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Clock:
    def __init__(self) -> None:
        self.now = 50_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Node:
    binary: Path
    port: int
    state_file: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(self.binary),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--state",
                str(self.state_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = self.web3()
        deadline = time.monotonic() + 15
        while True:
            try:
                if probe.eth.chain_id > 0:
                    return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("anvil did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def web3(self) -> Web3:
        return http_web3(self.url, timeout_s=1.0)

    def rpc(self, method: str, *params: Any) -> Any:
        response = self.web3().provider.make_request(method, list(params))  # type: ignore[arg-type]
        assert "error" not in response, response
        return response.get("result")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(_anvil_binary(), _free_port(), tmp_path / "anvil-state.json")
    n.start()
    try:
        yield n
    finally:
        n.stop()


class Setup:
    def __init__(self, node: Node, confirmations: int = 1, **fees: Any) -> None:
        self.node = node
        self.w3 = node.web3()
        self.account: LocalAccount = Account.from_key(b"\x42" * 32)
        node.rpc("anvil_setBalance", self.account.address, hex(10**21))
        self.address = deploy_anchor_contract(self.w3, self.account, poll_s=0.02)
        self.clock = Clock()
        self.anchorer = Anchorer(
            self.w3,
            self.address,
            self.account,
            confirmations=confirmations,
            clock=self.clock,
            fee_policy=FeePolicy(**fees),
        )
        self.loop = AnchorLoop(
            self.anchorer, policy=AnchorPolicy(retry_base_s=1, retry_max_s=8), clock=self.clock
        )

    def run(self, state: AnchorState, size: int, steps: int = 6) -> AnchorState:
        h = TreeHead(size, size.to_bytes(32, "big"))
        for _ in range(steps):
            result = self.loop.step(state, h)
            state = result.state
            if result.anchored:
                return state
            if result.action == "waiting":
                self.node.rpc("evm_mine")
        raise AssertionError(f"not anchored: {state}")


def test_anchor_with_confirmations_and_verify(node: Node) -> None:
    s = Setup(node, confirmations=3)
    state = s.run(new_state(LOG), 10)
    record = state.anchors[-1]
    assert record.chain_id == 31337 == s.w3.eth.chain_id
    assert record.confirmations >= 3
    verify_anchor_on_chain(s.w3, record, 3)
    receipt = s.w3.eth.get_transaction_receipt(record.tx_hash)  # type: ignore[arg-type]
    assert receipt["from"] == s.account.address
    print(f"gas per anchor on anvil (first for this log): {receipt['gasUsed']}")


def test_reorg_leads_to_re_anchoring(node: Node) -> None:
    s = Setup(node)
    state = s.run(new_state(LOG), 5)
    s.clock.now += 600
    state = s.run(state, 6)
    first = state.anchors[-1]
    node.rpc("anvil_reorg", 1, [])  # replace the anchor's block with an empty one
    with pytest.raises(AnchorVerificationError) as info:
        verify_anchor_on_chain(s.w3, first, 1)
    assert info.value.step == "tx_missing"
    result = s.loop.step(state, TreeHead(6, (6).to_bytes(32, "big")))
    assert result.action == "reorg"
    state = s.run(result.state, 6)
    again = state.anchors[-1]
    assert (again.tree_size, again.root) == (first.tree_size, first.root)
    assert again.block_hash != first.block_hash
    verify_anchor_on_chain(s.w3, again, 1)


def test_snapshot_revert_reorg_leads_to_re_anchoring(node: Node) -> None:
    s = Setup(node)
    state = s.run(new_state(LOG), 5)
    snapshot = node.rpc("evm_snapshot")
    s.clock.now += 600
    state = s.run(state, 6)
    first = state.anchors[-1]
    node.rpc("evm_revert", snapshot)
    node.rpc("evm_mine")
    node.rpc("evm_mine")
    result = s.loop.step(state, TreeHead(6, (6).to_bytes(32, "big")))
    assert result.action == "reorg"
    state = s.run(result.state, 6)
    verify_anchor_on_chain(s.w3, state.anchors[-1], 1)
    assert state.anchors[-1].block_hash != first.block_hash


def test_stopped_node_retries_then_recovers(node: Node) -> None:
    s = Setup(node)
    state = s.run(new_state(LOG), 3)
    node.stop()  # connection refused
    s.clock.now += 600
    h = TreeHead(4, (4).to_bytes(32, "big"))
    first = s.loop.step(state, h)
    assert first.action == "error" and isinstance(first.error, AnchorRpcUnavailableError)
    assert s.loop.step(first.state, h).action == "backoff"
    s.clock.now = first.state.retry_at  # type: ignore[assignment]
    second = s.loop.step(first.state, h)
    assert second.action == "error" and second.state.consecutive_failures == 2
    node.start()  # same port, chain state restored from --state
    s.clock.now = second.state.retry_at  # type: ignore[assignment]
    state = s.run(second.state, 4)
    assert state.consecutive_failures == 0
    verify_anchor_on_chain(s.w3, state.anchors[-1], 1)


def test_hung_node_times_out_then_recovers(node: Node) -> None:
    s = Setup(node)
    state = s.run(new_state(LOG), 3)
    assert node.process is not None
    node.process.send_signal(signal.SIGSTOP)  # the node hangs: requests time out
    try:
        s.clock.now += 600
        started = time.monotonic()
        result = s.loop.step(state, TreeHead(4, (4).to_bytes(32, "big")))
        assert time.monotonic() - started < 5
        assert isinstance(result.error, AnchorRpcUnavailableError)
    finally:
        node.process.send_signal(signal.SIGCONT)
    s.clock.now = result.state.retry_at  # type: ignore[assignment]
    state = s.run(result.state, 4)
    verify_anchor_on_chain(s.w3, state.anchors[-1], 1)


def test_stuck_transaction_is_fee_bumped(node: Node) -> None:
    s = Setup(node, bump_after_s=30)
    node.rpc("evm_setAutomine", False)
    pending = s.anchorer.anchor(LOG, 9, b"\x09" * 32)
    s.clock.now += 31
    bumped = s.anchorer.poll(pending)
    assert isinstance(bumped, PendingAnchor) and len(bumped.attempts) == 2
    node.rpc("evm_mine")
    record = s.anchorer.poll(bumped)
    assert isinstance(record, AnchorRecord)
    assert record.tx_hash == bumped.attempts[1].tx_hash
    verify_anchor_on_chain(s.w3, record, 1)


def test_nonce_gap_left_by_a_queued_transaction_does_not_stall(node: Node) -> None:
    s = Setup(node)
    nonce = s.w3.eth.get_transaction_count(s.account.address)
    # Someone queued a transaction one nonce ahead (a gap): the node holds it back.
    block = s.w3.eth.get_block("latest")
    gap_tx = {
        "type": 2,
        "chainId": s.w3.eth.chain_id,
        "nonce": nonce + 1,
        "to": "0x" + "11" * 20,
        "value": 1,
        "gas": 21_000,
        "maxFeePerGas": 2 * int(block["baseFeePerGas"]) + 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    s.w3.eth.send_raw_transaction(s.account.sign_transaction(gap_tx).raw_transaction)
    assert s.w3.eth.get_transaction_count(s.account.address, "latest") == nonce
    state = s.run(new_state(LOG), 12)
    verify_anchor_on_chain(s.w3, state.anchors[-1], 1)
    s.node.rpc("evm_mine")
    assert s.w3.eth.get_transaction_count(s.account.address, "latest") == nonce + 2


def test_leftover_pool_transaction_at_our_nonce_is_outbid(node: Node) -> None:
    s = Setup(node)
    node.rpc("evm_setAutomine", False)
    nonce = s.w3.eth.get_transaction_count(s.account.address)
    block = s.w3.eth.get_block("latest")
    leftover = {
        "type": 2,
        "chainId": s.w3.eth.chain_id,
        "nonce": nonce,
        "to": "0x" + "22" * 20,
        "value": 1,
        "gas": 21_000,
        "maxFeePerGas": 2 * int(block["baseFeePerGas"]) + 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    s.w3.eth.send_raw_transaction(s.account.sign_transaction(leftover).raw_transaction)
    pending = s.anchorer.anchor(LOG, 30, b"\x30" * 32)
    assert pending.nonce == nonce
    assert pending.attempts[0].max_priority_fee_per_gas > 10**9
    node.rpc("evm_mine")
    record = s.anchorer.poll(pending)
    assert isinstance(record, AnchorRecord)
    verify_anchor_on_chain(s.w3, record, 1)


def test_make_anchor_checker_verifies_a_bundle_anchor_over_json_rpc(node: Node) -> None:
    """The callable behind `cntrust audit verify --rpc`: a real anchor passes, a wrong root
    or an unknown transaction is refused with the step named."""
    from dataclasses import replace

    from audit_chain import Anchor
    from audit_chain.anchoring import AnchorVerificationError, make_anchor_checker

    s = Setup(node, confirmations=1)
    record = s.run(new_state(LOG), 12).anchors[-1]
    anchor = Anchor(
        chain_id=record.chain_id,
        contract=record.contract,
        tx_hash=record.tx_hash,
        block_number=record.block_number,
        tree_size=record.tree_size,
        root=bytes.fromhex(record.root.removeprefix("0x")),
        block_hash=record.block_hash,
        log_id=bytes.fromhex(record.log_id.removeprefix("0x")),
    )
    check = make_anchor_checker(node.url)
    check(anchor)
    with pytest.raises(AnchorVerificationError) as wrong_root:
        check(replace(anchor, root=b"\x07" * 32))
    assert wrong_root.value.step in ("root_mismatch", "event_mismatch")
    with pytest.raises(AnchorVerificationError) as missing:
        check(replace(anchor, tx_hash="0x" + "ab" * 32))
    assert missing.value.step == "tx_missing"
    with pytest.raises(AnchorVerificationError) as no_log:
        check(replace(anchor, log_id=None))
    assert no_log.value.step == "malformed"


def test_regulator_verifies_a_bundle_offline_and_on_chain(node: Node, tmp_path: Path) -> None:
    """The regulator's path end to end: a task record in the log, its checkpoint anchored on
    a real chain, the bundle verified by `cntrust audit verify --rpc`; a bundle whose anchor
    names another root is refused at the chain step."""
    import hashlib
    import json
    from datetime import UTC, datetime

    from typer.testing import CliRunner

    from audit_chain import (
        Anchor,
        CheckpointPublisher,
        MemoryTileStore,
        NoteSigner,
        TaskExecution,
        TiledLog,
        build_bundle,
        commit,
        new_salt,
        sign_statement,
        statement_for,
    )
    from scheduler.cli import app

    log_key = NoteSigner.generate("log.test/cntrust")
    log = TiledLog(MemoryTileStore())
    task = TaskExecution(
        task_id="t-1",
        tenant=commit("tenant-a", new_salt()),
        node_spiffe_id="spiffe://cntrust.local/operator/op/node/n1",
        command_digest="sha256:" + hashlib.sha256(b"true").hexdigest(),
        started_on=datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
        finished_on=datetime(2026, 11, 27, 12, 1, tzinfo=UTC),
        outcome="succeeded",
    )
    index, size, root = log.append_batch(
        [sign_statement(statement_for(task), log_key).canonical_bytes()]
    )
    checkpoint = CheckpointPublisher(log, log_key).publish()

    s = Setup(node, confirmations=1)
    state = new_state(LOG)
    for _ in range(6):
        result = s.loop.step(state, TreeHead(size, root))
        state = result.state
        if result.anchored:
            break
        s.node.rpc("evm_mine")
    record = state.anchors[-1]
    anchor = Anchor(
        chain_id=record.chain_id,
        contract=record.contract,
        tx_hash=record.tx_hash,
        block_number=record.block_number,
        tree_size=record.tree_size,
        root=bytes.fromhex(record.root.removeprefix("0x")),
        block_hash=record.block_hash,
        log_id=LOG,
    )
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(
        build_bundle(log, index, checkpoint, log_key.verifier, anchor=anchor).to_bytes()
    )
    runner = CliRunner()
    args = ["audit", "verify", str(bundle), "--log-key", log_key.vkey]
    ok = runner.invoke(app, [*args, "--rpc", node.url])
    assert ok.exit_code == 0, ok.output
    assert "checked on chain" in ok.output

    forged = json.loads(bundle.read_text())
    forged_anchor = replace_anchor_root(forged)
    bad = tmp_path / "forged.json"
    bad.write_text(json.dumps(forged_anchor))
    refused = runner.invoke(app, [*args[:2], str(bad), *args[3:], "--rpc", node.url])
    assert refused.exit_code != 0
    assert "anchor" in refused.output.lower()


def replace_anchor_root(bundle: dict[str, Any]) -> dict[str, Any]:
    """Point the bundle's anchor at another transaction (a real one would be needed to pass)."""
    anchor = dict(bundle["anchor"])
    anchor["txHash"] = "0x" + "cd" * 32
    return {**bundle, "anchor": anchor}
