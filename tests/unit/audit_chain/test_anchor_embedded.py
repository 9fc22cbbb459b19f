"""The embedded chain: anchors survive a restart; the journal is guarded."""

from __future__ import annotations

import json
import os
import stat
from itertools import count
from pathlib import Path

import pytest
from web3 import Web3
from web3.types import RPCEndpoint

from audit_chain.anchoring import (
    Anchorer,
    AnchorLoop,
    AnchorRecordError,
    AnchorState,
    EmbeddedChain,
    EmbeddedChainError,
    TreeHead,
    load_artifact,
    new_state,
    verify_anchor_on_chain,
)
from audit_chain.anchoring.embedded import JOURNAL_NAME, KEY_NAME, SNAPSHOT_NAME

LOG = b"\x44" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def fixed_keys() -> object:
    numbers = count(7)
    return lambda n: next(numbers).to_bytes(n, "big")


def anchor_sizes(chain: EmbeddedChain, sizes: list[int], state: AnchorState) -> AnchorState:
    clock = Clock()
    clock.now = max(clock.now, state.last_started_at or 0.0)
    loop = AnchorLoop(Anchorer(chain.web3, chain.contract_address, chain.account), clock=clock)
    for size in sizes:
        clock.now += 10_000
        for _ in range(3):
            state = loop.step(state, TreeHead(size, size.to_bytes(32, "big"))).state
        assert state.anchored_tree_size == size
    return state


def test_anchors_survive_a_restart(tmp_path: Path) -> None:
    chain = EmbeddedChain(tmp_path, clock=Clock())
    state = anchor_sizes(chain, [3, 9], new_state(LOG))
    blocks = [chain.web3.eth.get_block(n)["hash"] for n in range(chain.web3.eth.block_number + 1)]
    contract, anchorer = chain.contract_address, chain.account.address
    del chain

    again = EmbeddedChain(tmp_path, clock=Clock())
    assert again.blocks_replayed == len(blocks) - 1
    assert (again.contract_address, again.account.address) == (contract, anchorer)
    assert [again.web3.eth.get_block(n)["hash"] for n in range(len(blocks))] == blocks
    for record in state.anchors:
        verify_anchor_on_chain(again.web3, record, 1)
    c = again.web3.eth.contract(address=again.contract_address, abi=list(load_artifact().abi))
    assert c.functions.latest_tree_size(LOG).call() == 9
    # ...and anchoring continues after the restart.
    state = anchor_sizes(again, [20], state)
    verify_anchor_on_chain(again.web3, state.anchors[-1], 1)


def test_anchorer_key_file_is_private_and_reused(tmp_path: Path) -> None:
    chain = EmbeddedChain(tmp_path, new_key=fixed_keys())  # type: ignore[arg-type]
    key_path = tmp_path / KEY_NAME
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert chain.web3.eth.get_balance(chain.account.address) > 0
    assert EmbeddedChain(tmp_path).account.address == chain.account.address


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    EmbeddedChain(tmp_path)
    os.chmod(tmp_path / KEY_NAME, 0o644)
    with pytest.raises(AnchorRecordError, match="chmod 600"):
        EmbeddedChain(tmp_path)


def test_torn_last_journal_line_is_dropped(tmp_path: Path) -> None:
    chain = EmbeddedChain(tmp_path)
    head = chain.web3.eth.block_number
    with (tmp_path / JOURNAL_NAME).open("ab") as fh:
        fh.write(b'{"op":"tx","raw":"0x02f8')  # a crash in the middle of an append
    again = EmbeddedChain(tmp_path)
    assert again.web3.eth.block_number == head
    assert (tmp_path / JOURNAL_NAME).read_bytes().endswith(b"\n")


def test_corrupt_journal_line_stops_the_start(tmp_path: Path) -> None:
    EmbeddedChain(tmp_path)
    journal = tmp_path / JOURNAL_NAME
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[1] = b"not json\n"
    journal.write_bytes(b"".join(lines))
    with pytest.raises(EmbeddedChainError, match="line 2"):
        EmbeddedChain(tmp_path)


def test_replay_that_diverges_is_refused(tmp_path: Path) -> None:
    EmbeddedChain(tmp_path)
    journal = tmp_path / JOURNAL_NAME
    lines = journal.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["block_hash"] = "0x" + "00" * 32
    lines[1] = json.dumps(entry)
    journal.write_text("\n".join(lines) + "\n")
    with pytest.raises(EmbeddedChainError, match="diverged"):
        EmbeddedChain(tmp_path)


def test_journal_must_start_with_genesis(tmp_path: Path) -> None:
    (tmp_path / JOURNAL_NAME).write_text('{"op":"mine","timestamp":1}\n')
    with pytest.raises(EmbeddedChainError, match="genesis"):
        EmbeddedChain(tmp_path)


@pytest.mark.parametrize("method", ["evm_snapshot", "evm_revert", "eth_sendTransaction"])
def test_unjournaled_state_changes_are_refused(tmp_path: Path, method: str) -> None:
    chain = EmbeddedChain(tmp_path)
    with pytest.raises(EmbeddedChainError, match="refuses"):
        chain.provider.make_request(RPCEndpoint(method), [])


def test_empty_blocks_are_journaled_too(tmp_path: Path) -> None:
    chain = EmbeddedChain(tmp_path)
    chain.mine_block()
    chain.mine_block()
    head = chain.web3.eth.get_block("latest")
    again = EmbeddedChain(tmp_path)
    assert again.web3.eth.get_block("latest")["hash"] == head["hash"]


def test_transactions_are_found_through_the_index(tmp_path: Path) -> None:
    chain = EmbeddedChain(tmp_path)
    state = anchor_sizes(chain, [1], new_state(LOG))
    for _ in range(50):
        chain.mine_block()
    receipt = chain.web3.eth.get_transaction_receipt(state.anchors[0].tx_hash)  # type: ignore[arg-type]
    assert receipt["blockNumber"] == state.anchors[0].block_number
    assert Web3.to_hex(receipt["blockHash"]) == state.anchors[0].block_hash


def _fill(chain: EmbeddedChain, blocks: int) -> None:
    for _ in range(blocks):
        chain.mine_block()


def test_restart_from_snapshot_replays_only_the_tail(tmp_path: Path) -> None:
    chain = EmbeddedChain(tmp_path, snapshot_every=8)
    state = anchor_sizes(chain, [2], new_state(LOG))
    _fill(chain, 10)
    head = chain.web3.eth.get_block("latest")
    assert (tmp_path / SNAPSHOT_NAME).exists()

    again = EmbeddedChain(tmp_path, snapshot_every=8)
    assert again.snapshot_used
    assert again.blocks_replayed < 8
    assert again.web3.eth.get_block("latest")["hash"] == head["hash"]
    verify_anchor_on_chain(again.web3, state.anchors[-1], 1)
    anchor_sizes(again, [3], state)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_damaged_snapshot_falls_back_to_full_replay(tmp_path: Path, damage: str) -> None:
    chain = EmbeddedChain(tmp_path, snapshot_every=4)
    _fill(chain, 6)
    head = chain.web3.eth.get_block("latest")
    path = tmp_path / SNAPSHOT_NAME
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = bytearray(b"\x00" * 200)
    path.write_bytes(bytes(data))
    again = EmbeddedChain(tmp_path, snapshot_every=4)
    assert not again.snapshot_used
    assert again.web3.eth.get_block("latest")["hash"] == head["hash"]


def test_snapshot_not_matching_the_journal_is_ignored(tmp_path: Path) -> None:
    chain = EmbeddedChain(tmp_path, snapshot_every=4)
    _fill(chain, 5)
    snapshot = (tmp_path / SNAPSHOT_NAME).read_bytes()
    other = tmp_path / "other"
    EmbeddedChain(other, snapshot_every=1000)
    (other / SNAPSHOT_NAME).write_bytes(snapshot)  # another chain's snapshot
    again = EmbeddedChain(other, snapshot_every=1000)
    assert not again.snapshot_used
