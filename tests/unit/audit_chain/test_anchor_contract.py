"""The Anchor contract: committed artifact reproducible, and its rules enforced on chain."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from web3 import EthereumTesterProvider, Web3

from audit_chain.anchoring import (
    AnchorRejectedError,
    compile_artifact,
    deploy_anchor_contract,
    load_artifact,
    set_anchorer,
)
from audit_chain.anchoring.contract import artifact_json

ROOT = Path(__file__).resolve().parents[3]
SOURCE = ROOT / "contracts" / "Anchor.vy"
LOG = b"\x11" * 32
OTHER_LOG = b"\x22" * 32


@pytest.fixture
def chain() -> tuple[Web3, list[LocalAccount]]:
    backend = PyEVMBackend()
    w3 = Web3(EthereumTesterProvider(EthereumTester(backend)))
    accounts = [Account.from_key(k.to_bytes()) for k in backend.account_keys[:3]]
    return w3, accounts


def _send(w3: Web3, account: LocalAccount, contract: Any, name: str, *args: Any) -> Any:
    fn = getattr(contract.functions, name)(*args)
    gas = fn.estimate_gas({"from": account.address})
    tx = fn.build_transaction(
        {
            "from": account.address,
            "nonce": w3.eth.get_transaction_count(account.address),
            "gas": gas,
        }
    )
    signed = account.sign_transaction(tx)
    return w3.eth.get_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))


def _deployed(chain: tuple[Web3, list[LocalAccount]]) -> tuple[Web3, list[LocalAccount], Any]:
    w3, accounts = chain
    address = deploy_anchor_contract(w3, accounts[0], poll_s=0.0)
    return w3, accounts, w3.eth.contract(address=address, abi=list(load_artifact().abi))


def test_committed_artifact_matches_a_fresh_compile() -> None:
    if importlib.util.find_spec("vyper") is None:
        pytest.skip("vyper is not importable (install the test extra: vyper==0.4.3)")
    fresh = compile_artifact(SOURCE.read_text())
    committed = load_artifact()
    assert committed.bytecode == fresh.bytecode
    assert committed.abi == fresh.abi
    assert committed.source_sha256 == fresh.source_sha256
    packaged = ROOT / "audit_chain" / "anchoring" / "Anchor.json"
    assert packaged.read_text() == artifact_json(fresh)


def test_source_pins_compiler_and_evm_version() -> None:
    head = SOURCE.read_text().splitlines()[:3]
    assert "# pragma version 0.4.3" in head
    assert "# pragma evm-version london" in head


def test_anchor_stores_latest_and_emits_event(chain: tuple[Web3, list[LocalAccount]]) -> None:
    w3, accounts, contract = _deployed(chain)
    receipt = _send(w3, accounts[0], contract, "anchor", LOG, 10, b"\x01" * 32)
    assert receipt["status"] == 1
    assert contract.functions.latest_tree_size(LOG).call() == 10
    assert contract.functions.latest_root(LOG).call() == b"\x01" * 32
    assert contract.functions.anchored_size(LOG, b"\x01" * 32).call() == 10
    events = contract.events.Anchored().process_receipt(receipt)
    assert len(events) == 1
    args = events[0]["args"]
    assert (args["log_id"], args["tree_size"], args["root"]) == (LOG, 10, b"\x01" * 32)
    assert args["anchorer"] == accounts[0].address


@pytest.mark.parametrize(
    ("size", "root", "reason"),
    [
        (5, b"\x09" * 32, "tree size not increasing"),
        (10, b"\x09" * 32, "tree size not increasing"),
        (11, b"\x01" * 32, "duplicate root"),
    ],
)
def test_shrinking_equal_size_and_duplicate_root_refused(
    chain: tuple[Web3, list[LocalAccount]], size: int, root: bytes, reason: str
) -> None:
    w3, accounts, contract = _deployed(chain)
    _send(w3, accounts[0], contract, "anchor", LOG, 10, b"\x01" * 32)
    with pytest.raises(AnchorRejectedError) as info:
        _anchor_via_anchorer(w3, accounts[0], contract.address, LOG, size, root)
    assert reason in info.value.reason
    assert contract.functions.latest_tree_size(LOG).call() == 10


def _anchor_via_anchorer(
    w3: Web3, account: LocalAccount, address: str, log: bytes, size: int, root: bytes
) -> None:
    from audit_chain.anchoring import Anchorer

    Anchorer(w3, address, account).anchor(log, size, root)


def test_logs_are_independent(chain: tuple[Web3, list[LocalAccount]]) -> None:
    w3, accounts, contract = _deployed(chain)
    _send(w3, accounts[0], contract, "anchor", LOG, 10, b"\x01" * 32)
    receipt = _send(w3, accounts[0], contract, "anchor", OTHER_LOG, 3, b"\x01" * 32)
    assert receipt["status"] == 1
    assert contract.functions.latest_tree_size(OTHER_LOG).call() == 3


def test_unauthorized_anchorer_refused_until_owner_adds_it(
    chain: tuple[Web3, list[LocalAccount]],
) -> None:
    w3, accounts, contract = _deployed(chain)
    owner, stranger = accounts[0], accounts[1]
    with pytest.raises(AnchorRejectedError, match="not an anchorer"):
        _anchor_via_anchorer(w3, stranger, contract.address, LOG, 1, b"\x05" * 32)
    set_anchorer(w3, owner, contract.address, stranger.address, poll_s=0.0)
    assert contract.functions.is_anchorer(stranger.address).call()
    _anchor_via_anchorer(w3, stranger, contract.address, LOG, 1, b"\x05" * 32)
    set_anchorer(w3, owner, contract.address, stranger.address, allowed=False, poll_s=0.0)
    with pytest.raises(AnchorRejectedError, match="not an anchorer"):
        _anchor_via_anchorer(w3, stranger, contract.address, LOG, 2, b"\x06" * 32)


def test_only_owner_manages_anchorers(chain: tuple[Web3, list[LocalAccount]]) -> None:
    w3, accounts, contract = _deployed(chain)
    with pytest.raises(AnchorRejectedError, match="not the owner"):
        set_anchorer(w3, accounts[1], contract.address, accounts[2].address, poll_s=0.0)
    assert not contract.functions.is_anchorer(accounts[2].address).call()
    assert contract.functions.owner().call() == accounts[0].address


def test_gas_per_anchor_is_bounded(chain: tuple[Web3, list[LocalAccount]]) -> None:
    w3, accounts, contract = _deployed(chain)
    first = _send(w3, accounts[0], contract, "anchor", LOG, 1, b"\x01" * 32)["gasUsed"]
    later = [
        _send(w3, accounts[0], contract, "anchor", LOG, n, bytes([n]) * 32)["gasUsed"]
        for n in range(2, 5)
    ]
    # First anchor of a log writes three fresh slots; later ones one fresh, two updates.
    assert first < 100_000
    assert all(g < 65_000 for g in later)
