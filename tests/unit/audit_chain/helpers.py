"""Shared builders for audit_chain tests: deterministic keys, records, logs and bundles."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit_chain import (
    Anchor,
    CheckpointPublisher,
    MemoryTileStore,
    NoteSigner,
    ProofBundle,
    TaskExecution,
    TiledLog,
    build_bundle,
    commit,
    sign_statement,
    statement_for,
)
from audit_chain.node_result import node_key_id, node_result_message
from audit_chain.predicates import NodeResultSignature
from audit_chain.tiles import TileId

ORIGIN = "log.cntrust.test/tasks"


def seeded(label: str) -> NoteSigner:
    """A deterministic signer named after ``label`` (or ORIGIN for the log key)."""
    name = ORIGIN if label == "log" else f"{label}.cntrust.test"
    seed = hashlib.sha256(label.encode()).digest()
    return NoteSigner.generate(name, random=lambda n: seed[:n])


def digest(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def task_execution(i: int = 0, **overrides: object) -> TaskExecution:
    """A typical task-execution predicate, with every field filled."""
    start = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC) + timedelta(seconds=i)
    fields: dict[str, object] = {
        "task_id": f"7c9e6679-7425-40de-944b-e07fc1f9{i:04d}",
        "tenant": commit("Acme Research GmbH", hashlib.sha256(b"salt%d" % i).digest()),
        "node_spiffe_id": "spiffe://cntrust.test/operator/op-1/node/gpu-042",
        "command_digest": digest(f"command{i}"),
        "input_digest": digest(f"input{i}"),
        "output_digest": digest(f"output{i}"),
        "started_on": start,
        "finished_on": start + timedelta(seconds=93, milliseconds=250),
        "outcome": "succeeded",
        "exit_code": 0,
        "attestation_result_id": f"ear-5f0c1d2e-{i:06d}",
        "attestation_status": "affirming",
        "trust_score_permille": 874,
        "policy_decision_ids": ("placement.gpu_class", "placement.region_eu"),
        "resource_usage": (("cpuMs", 91_800), ("gpuMs", 88_000), ("maxRssBytes", 2_147_483_648)),
        "trace_id": hashlib.sha256(b"trace%d" % i).hexdigest()[:32],
        "trust_uncertainty_permille": 120,
        "policy_version": "sha256:" + hashlib.sha256(b"policy").hexdigest()[:16],
    }  # fmt: skip
    fields.update(overrides)
    if "node_result" not in overrides:
        fields["node_result"] = sign_result(fields, attempt=0)
    return TaskExecution(**fields)  # type: ignore[arg-type]


def node_key() -> Ed25519PrivateKey:
    """The deterministic Ed25519 key of the typical record's node."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"node-key").digest())


def sign_result(
    fields: dict[str, object], *, attempt: int, key: Ed25519PrivateKey | None = None
) -> NodeResultSignature:
    """The node's signature over the result ``fields`` describe (as an agent makes it)."""
    key = key or node_key()
    public = key.public_key().public_bytes_raw()
    started = round(fields["started_on"].timestamp() * 1000) - 250  # type: ignore[attr-defined]
    finished = round(fields["finished_on"].timestamp() * 1000) - 100  # type: ignore[attr-defined]
    message = node_result_message(
        task_id=str(fields["task_id"]),
        attempt=attempt,
        exit_code=int(fields["exit_code"]),  # type: ignore[call-overload]
        output_digest=str(fields["output_digest"]),
        usage=fields.get("resource_usage", ()),  # type: ignore[arg-type]
        started_ms=started,
        finished_ms=finished,
    )
    return NodeResultSignature(
        keyid=node_key_id(public),
        public_key=public,
        sig=key.sign(message),
        attempt=attempt,
        started_ms=started,
        finished_ms=finished,
    )


def record(i: int = 0, signer: NoteSigner | None = None) -> bytes:
    """Canonical DSSE envelope bytes of a typical task record (a log entry)."""
    env = sign_statement(statement_for(task_execution(i)), signer or seeded("log"))
    return env.canonical_bytes()


def populated_log(n: int, *, batch: int = 100) -> tuple[TiledLog, NoteSigner]:
    log = TiledLog(MemoryTileStore())
    signer = seeded("log")
    for start in range(0, n, batch):
        log.append_batch([record(i, signer) for i in range(start, min(n, start + batch))])
    return log, signer


def anchor_for(log: TiledLog, tree_size: int) -> Anchor:
    return Anchor(
        chain_id=31337,
        contract="0x5FbDB2315678afecb367f032d93F642f64180aa3",
        tx_hash="0x" + hashlib.sha256(b"tx%d" % tree_size).hexdigest(),
        block_number=42,
        tree_size=tree_size,
        root=log.root_at(tree_size),
    )


def overwrite_tile(store: MemoryTileStore, tile: TileId, data: bytes) -> None:
    """Change a stored tile behind the log's back (what an attacker with storage access does)."""
    state = store.read_state()
    assert state is not None
    store.put_tiles([(tile, data)], state)


def make_bundle(
    n: int = 300, index: int = 7, *, anchored_extra: int = 20, anchor: bool = True
) -> tuple[ProofBundle, NoteSigner]:
    """A bundle for entry ``index``: checkpoint at ``n``, anchor at ``n + anchored_extra``."""
    log, signer = populated_log(n + anchored_extra)
    # Publish a checkpoint at size n by building it on a log of that size.
    small, _ = populated_log(n)
    note = CheckpointPublisher(small, signer).publish()
    anc = anchor_for(log, n + anchored_extra) if anchor else None
    return build_bundle(log, index, note, signer.verifier, anchor=anc), signer
