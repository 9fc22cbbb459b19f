"""audit_chain benchmarks (pytest-benchmark). Run explicitly:

    python -m pytest benchmarks/audit_chain --benchmark-only -q

Figures (issue 4): >= 10,000 durable appends/s with batching; inclusion proof for any leaf
of a 10,000,000-entry log <= 1 ms; bundle verification <= 5 ms without the chain;
bundle <= 4 KB. The 10M-entry tree is synthesized once per session (~10-20 s).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from audit_chain_synth import synthesize  # benchmarks/audit_chain is on sys.path (rootdir import)

from audit_chain import (
    Anchor,
    Checkpoint,
    FileTileStore,
    ProofBundle,
    TiledLog,
    leaf_hash,
    parse_envelope,
    sign_checkpoint,
    verify_bundle,
    verify_inclusion,
)
from tests.unit.audit_chain.helpers import record, seeded

TEN_MILLION = 10_000_128  # 39,063 full tiles: the first multiple of 256 above 10^7
ANCHORED = TEN_MILLION + 65_536  # the anchorer's default interval after the checkpoint
BATCH = 1_000


@pytest.fixture(scope="session")
def typical_record() -> bytes:
    return record(7)


@pytest.fixture(scope="session")
def big_log(typical_record: bytes) -> TiledLog:
    store = synthesize(ANCHORED, first_leaf=leaf_hash(typical_record))
    return TiledLog(store)  # type: ignore[arg-type]


def test_append_throughput_durable(benchmark: Any, tmp_path: Path) -> None:
    """Batched appends of typical ~2 KB records to the file backend, fsync on."""
    signer = seeded("log")
    records = [record(i, signer) for i in range(BATCH)]
    log = TiledLog(FileTileStore(tmp_path / "log"))
    benchmark.pedantic(log.append_batch, args=(records,), rounds=15, iterations=1)
    per_s = BATCH / benchmark.stats.stats.mean
    benchmark.extra_info["appends_per_s"] = round(per_s)
    benchmark.extra_info["batch"] = BATCH
    print(f"\ndurable appends/s (batch {BATCH}, fsync): {per_s:,.0f}")


def test_inclusion_proof_at_10m(benchmark: Any, big_log: TiledLog) -> None:
    rng = random.Random(1)
    size = TEN_MILLION
    # Warm the caches of the few upper tiles (levels 1-2), as a running log would have.
    for _ in range(200):
        big_log.inclusion_proof(rng.randrange(size), size)
    indices = [rng.randrange(size) for _ in range(5_000)]
    it = iter(indices)

    def one() -> list[bytes]:
        return big_log.inclusion_proof(next(it), size)

    proof = benchmark.pedantic(one, rounds=2_000, iterations=1)
    assert len(proof) == 24
    root = big_log.root_at(size)
    i = indices[0]
    verify_inclusion(i, size, big_log.leaf_hash_at(i), big_log.inclusion_proof(i, size), root)
    mean_ms = benchmark.stats.stats.mean * 1000
    benchmark.extra_info["mean_ms"] = mean_ms
    print(f"\ninclusion proof at {size:,} leaves: mean {mean_ms:.3f} ms")


def _bundle(big_log: TiledLog, typical_record: bytes, anchored: bool) -> tuple[bytes, str]:
    signer = seeded("log")
    size = ANCHORED if anchored else TEN_MILLION
    note = sign_checkpoint(Checkpoint(signer.name, size, big_log.root_at(size)), signer)
    anchor = Anchor(  # every field the scheduler's bundles carry, eth-tester's long chain id
        chain_id=131277322940537,
        contract="0x5FbDB2315678afecb367f032d93F642f64180aa3",
        tx_hash="0x" + "ab" * 32,
        block_number=1_234_567,
        tree_size=ANCHORED,
        root=big_log.root_at(ANCHORED),
        block_hash="0x" + "cd" * 32,
        log_id=bytes(range(32)),
    )
    bundle = ProofBundle(
        envelope=parse_envelope(typical_record),
        leaf_index=0,
        inclusion_proof=tuple(big_log.inclusion_proof(0, size)),
        checkpoint=note,
        anchor=anchor,
        consistency_proof=tuple(big_log.consistency_proof(size, ANCHORED)),
    )
    return bundle.to_bytes(), signer.vkey


@pytest.mark.parametrize(
    "anchored_checkpoint", [True, False], ids=["anchored-cp", "cp+65536-not-served"]
)
def test_bundle_verify_and_size_at_10m(
    benchmark: Any, big_log: TiledLog, typical_record: bytes, anchored_checkpoint: bool
) -> None:
    data, vkey = _bundle(big_log, typical_record, anchored_checkpoint)
    benchmark.pedantic(verify_bundle, args=(data, vkey), rounds=300, iterations=1)
    mean_ms = benchmark.stats.stats.mean * 1000
    benchmark.extra_info.update(bundle_bytes=len(data), record_bytes=len(typical_record))
    which = "anchored checkpoint" if anchored_checkpoint else "checkpoint 65,536 behind anchor"
    print(
        f"\nbundle at {TEN_MILLION:,} leaves ({which}): {len(data):,} bytes "
        f"(record {len(typical_record):,}), verify mean {mean_ms:.2f} ms"
    )
    if anchored_checkpoint:  # what the scheduler serves (scheduler/provenance_bundles.py)
        assert len(data) <= 4096
