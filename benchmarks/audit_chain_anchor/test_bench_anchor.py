"""Anchoring benchmarks (pytest-benchmark; run explicitly):

    python -m pytest benchmarks/audit_chain_anchor --benchmark-only -s

Reports gas per anchor (first anchor of a log and steady state), anchors/s on
eth-tester (sign, estimate, send, receipt), anchors/s on the embedded chain (the
same plus the fsynced journal), and the embedded chain's restart (replay) rate.
"""

from __future__ import annotations

from itertools import count
from pathlib import Path

from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from web3 import EthereumTesterProvider, Web3

from audit_chain.anchoring import (
    Anchorer,
    AnchorRecord,
    EmbeddedChain,
    deploy_anchor_contract,
)

LOG = b"\x99" * 32


def _tester_anchorer() -> tuple[Web3, Anchorer]:
    backend = PyEVMBackend()
    w3 = Web3(EthereumTesterProvider(EthereumTester(backend)))
    account = Account.from_key(backend.account_keys[0].to_bytes())
    address = deploy_anchor_contract(w3, account, poll_s=0.0)
    return w3, Anchorer(w3, address, account)


def _anchor_once(anchorer: Anchorer, sizes: count[int]) -> AnchorRecord:
    size = next(sizes)
    record = anchorer.poll(anchorer.anchor(LOG, size, size.to_bytes(32, "big")))
    assert isinstance(record, AnchorRecord)
    return record


def test_gas_per_anchor(benchmark) -> None:  # type: ignore[no-untyped-def]
    w3, anchorer = _tester_anchorer()
    sizes = count(1)
    first = _anchor_once(anchorer, sizes)
    first_gas = w3.eth.get_transaction_receipt(first.tx_hash)["gasUsed"]  # type: ignore[arg-type]
    record = benchmark.pedantic(_anchor_once, args=(anchorer, sizes), rounds=20, iterations=1)
    steady_gas = w3.eth.get_transaction_receipt(record.tx_hash)["gasUsed"]  # type: ignore[arg-type]
    benchmark.extra_info["gas_first_anchor_of_a_log"] = first_gas
    benchmark.extra_info["gas_per_anchor_steady"] = steady_gas
    print(f"\ngas per anchor: first of a log {first_gas}, steady state {steady_gas}")


def test_anchors_per_second_eth_tester(benchmark) -> None:  # type: ignore[no-untyped-def]
    _, anchorer = _tester_anchorer()
    sizes = count(1)
    benchmark.pedantic(_anchor_once, args=(anchorer, sizes), rounds=50, iterations=1)
    print(f"\neth-tester: {1 / benchmark.stats.stats.mean:.1f} anchors/s")


def test_anchors_per_second_embedded(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    chain = EmbeddedChain(tmp_path)
    anchorer = Anchorer(chain.web3, chain.contract_address, chain.account)
    sizes = count(1)
    benchmark.pedantic(_anchor_once, args=(anchorer, sizes), rounds=50, iterations=1)
    print(f"\nembedded (journal fsync): {1 / benchmark.stats.stats.mean:.1f} anchors/s")


def _restart_bench(benchmark, tmp_path: Path, snapshot_every: int) -> None:  # type: ignore[no-untyped-def]
    chain = EmbeddedChain(tmp_path, snapshot_every=snapshot_every)
    anchorer = Anchorer(chain.web3, chain.contract_address, chain.account)
    sizes = count(1)
    for _ in range(200):
        _anchor_once(anchorer, sizes)
    blocks = chain.web3.eth.block_number

    def restart() -> EmbeddedChain:
        return EmbeddedChain(tmp_path, snapshot_every=snapshot_every)

    again = benchmark.pedantic(restart, rounds=3, iterations=1)
    mean = benchmark.stats.stats.mean
    benchmark.extra_info["blocks"] = blocks
    benchmark.extra_info["blocks_replayed"] = again.blocks_replayed
    print(
        f"\nrestart with {blocks} blocks, {again.blocks_replayed} replayed "
        f"(snapshot used: {again.snapshot_used}): {mean:.2f} s"
    )


def test_embedded_restart_full_replay(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _restart_bench(benchmark, tmp_path, snapshot_every=10**9)


def test_embedded_restart_from_snapshot(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _restart_bench(benchmark, tmp_path, snapshot_every=100)
