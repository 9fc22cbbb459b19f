"""Pins audit_chain's public API: adding or removing a name is a deliberate change."""

from __future__ import annotations

import audit_chain

EXPECTED = {
    "BUNDLE_MEDIA_TYPE", "EMPTY_ROOT", "INTOTO_PAYLOAD_TYPE", "RESPONSE_ACTION_PREDICATE",
    "STEPS", "TASK_EXECUTION_PREDICATE", "Anchor", "AppendResult", "AuditChainError",
    "BundleVerificationError", "Checkpoint", "CheckpointPublisher", "CheckpointRegressionError",
    "CommitmentMismatchError", "ConsistencyProofError", "EntryMismatchError", "EntryTail",
    "Envelope", "EnvelopeVerificationError", "FileTileStore", "ForgedSignatureError",
    "FormatError", "InclusionProofError", "InputTooLargeError", "LogError", "LogMonitor",
    "LogState", "LogStateError", "MalformedBundleError", "MalformedCheckpointError",
    "MalformedEnvelopeError", "MalformedKeyError", "MalformedNoteError",
    "MalformedStatementError", "MemoryTileStore", "MonitorError", "MonitorState",
    "NodeResultSignature", "NoteSigner", "NoteVerificationError", "NoteVerifier",
    "PreparedBatch", "RemoteTileStore", "ProofBundle", "ProofError", "ResponseAction",
    "RollbackError",
    "SplitViewError", "Statement", "TaskExecution", "TileBatch", "TileId", "TileNotFoundError",
    "TilePathError", "TileStore", "TiledLog", "UnknownKeyError", "VerificationError",
    "build_bundle", "commit", "consistency_proof", "ensure_publishable", "inclusion_proof",
    "leaf_hash", "monitor_poll", "new_salt", "node_hash", "open_checkpoint", "open_note",
    "open_statement",
    "parse_bundle", "parse_checkpoint", "parse_envelope", "parse_statement", "parse_tile_path",
    "root_hash", "sign_checkpoint", "sign_envelope", "sign_note", "sign_statement",
    "statement_for", "tile_path", "verify_bundle", "verify_checkpoint_update",
    "verify_commitment", "verify_consistency", "verify_envelope", "verify_inclusion",
    "NodeResultVerificationError", "node_key_id", "node_result_message", "usage_counters",
    "verify_node_result",
}  # fmt: skip


def test_public_api_is_pinned() -> None:
    assert set(audit_chain.__all__) == EXPECTED
    assert len(audit_chain.__all__) == len(EXPECTED)  # no duplicates


def test_every_exported_name_exists() -> None:
    for name in audit_chain.__all__:
        assert getattr(audit_chain, name) is not None, name


def test_every_error_derives_from_the_package_root() -> None:
    for name in audit_chain.__all__:
        obj = getattr(audit_chain, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, audit_chain.AuditChainError), name


def test_importing_the_verifier_does_not_pull_in_the_chain_stack() -> None:
    import subprocess
    import sys

    code = (
        "import sys, audit_chain.verify; "
        "bad = [m for m in ('web3', 'eth_tester', 'fastapi', 'sqlalchemy') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
