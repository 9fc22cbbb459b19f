"""cntrust audit_chain: what happened, provably.

Merkle log, signed checkpoints, proof bundles, offline verification; see below.

Public API (pinned by tests/unit/audit_chain/test_exports.py):

* Merkle (RFC 6962/9162): :func:`leaf_hash`, :func:`node_hash`, :func:`root_hash`,
  :func:`inclusion_proof`, :func:`consistency_proof`, :func:`verify_inclusion`,
  :func:`verify_consistency`.
* Tiled log (C2SP tlog-tiles): :class:`TiledLog`, :class:`TileStore`,
  :class:`MemoryTileStore`, :class:`FileTileStore`, :class:`TileId`.
* Signed notes and checkpoints (C2SP signed-note, tlog-checkpoint): :class:`NoteSigner`,
  :class:`NoteVerifier`, :class:`Checkpoint`, :class:`CheckpointPublisher`.
* Records (in-toto Statement v1 in DSSE): :class:`TaskExecution`, :class:`ResponseAction`,
  :func:`statement_for`, :func:`sign_statement`, :func:`commit`.
* Bundles and verification: :func:`build_bundle`, :func:`verify_bundle`, :class:`Anchor`.
* Monitoring: :class:`LogMonitor`, :class:`EntryTail`, :func:`monitor_poll` over a
  tlog-tiles server reached through an injected ``fetch``.

The on-chain anchoring lives in ``audit_chain.anchoring`` and is not imported here, so the
verifier never pulls in web3.
"""

from audit_chain.bundle import BUNDLE_MEDIA_TYPE, Anchor, ProofBundle, build_bundle, parse_bundle
from audit_chain.checkpoint import (
    Checkpoint,
    ensure_publishable,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from audit_chain.commitment import commit, new_salt, verify_commitment
from audit_chain.dsse import (
    INTOTO_PAYLOAD_TYPE,
    Envelope,
    parse_envelope,
    sign_envelope,
    verify_envelope,
)
from audit_chain.errors import (
    AuditChainError,
    BundleVerificationError,
    CheckpointRegressionError,
    CommitmentMismatchError,
    ConsistencyProofError,
    EntryMismatchError,
    EnvelopeVerificationError,
    ForgedSignatureError,
    FormatError,
    InclusionProofError,
    InputTooLargeError,
    LogError,
    LogStateError,
    MalformedBundleError,
    MalformedCheckpointError,
    MalformedEnvelopeError,
    MalformedKeyError,
    MalformedNoteError,
    MalformedStatementError,
    MonitorError,
    NodeResultVerificationError,
    NoteVerificationError,
    ProofError,
    RollbackError,
    SplitViewError,
    TileNotFoundError,
    TilePathError,
    UnknownKeyError,
    VerificationError,
)
from audit_chain.follow import RemoteTileStore, monitor_poll
from audit_chain.log import AppendResult, PreparedBatch, TiledLog
from audit_chain.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from audit_chain.monitor import EntryTail, LogMonitor, MonitorState, verify_checkpoint_update
from audit_chain.node_result import (
    node_key_id,
    node_result_message,
    usage_counters,
    verify_node_result,
)
from audit_chain.note import NoteSigner, NoteVerifier, open_note, sign_note
from audit_chain.predicates import (
    RESPONSE_ACTION_PREDICATE,
    TASK_EXECUTION_PREDICATE,
    NodeResultSignature,
    ResponseAction,
    TaskExecution,
)
from audit_chain.publisher import CheckpointPublisher
from audit_chain.statement import (
    Statement,
    open_statement,
    parse_statement,
    sign_statement,
    statement_for,
)
from audit_chain.tiles import TileId, parse_tile_path, tile_path
from audit_chain.tilestore import FileTileStore, LogState, MemoryTileStore, TileBatch, TileStore
from audit_chain.verify import STEPS, verify_bundle

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "EMPTY_ROOT",
    "INTOTO_PAYLOAD_TYPE",
    "RESPONSE_ACTION_PREDICATE",
    "STEPS",
    "TASK_EXECUTION_PREDICATE",
    "Anchor",
    "AppendResult",
    "AuditChainError",
    "BundleVerificationError",
    "Checkpoint",
    "CheckpointPublisher",
    "CheckpointRegressionError",
    "CommitmentMismatchError",
    "ConsistencyProofError",
    "EntryMismatchError",
    "EntryTail",
    "Envelope",
    "EnvelopeVerificationError",
    "FileTileStore",
    "ForgedSignatureError",
    "FormatError",
    "InclusionProofError",
    "InputTooLargeError",
    "LogError",
    "LogMonitor",
    "LogState",
    "LogStateError",
    "MalformedBundleError",
    "MalformedCheckpointError",
    "MalformedEnvelopeError",
    "MalformedKeyError",
    "MalformedNoteError",
    "MalformedStatementError",
    "MemoryTileStore",
    "MonitorError",
    "MonitorState",
    "NodeResultSignature",
    "NodeResultVerificationError",
    "NoteSigner",
    "NoteVerificationError",
    "NoteVerifier",
    "PreparedBatch",
    "ProofBundle",
    "ProofError",
    "RemoteTileStore",
    "ResponseAction",
    "RollbackError",
    "SplitViewError",
    "Statement",
    "TaskExecution",
    "TileBatch",
    "TileId",
    "TileNotFoundError",
    "TilePathError",
    "TileStore",
    "TiledLog",
    "UnknownKeyError",
    "VerificationError",
    "build_bundle",
    "commit",
    "consistency_proof",
    "ensure_publishable",
    "inclusion_proof",
    "leaf_hash",
    "monitor_poll",
    "new_salt",
    "node_hash",
    "node_key_id",
    "node_result_message",
    "open_checkpoint",
    "open_note",
    "open_statement",
    "parse_bundle",
    "parse_checkpoint",
    "parse_envelope",
    "parse_statement",
    "parse_tile_path",
    "root_hash",
    "sign_checkpoint",
    "sign_envelope",
    "sign_note",
    "sign_statement",
    "statement_for",
    "tile_path",
    "usage_counters",
    "verify_bundle",
    "verify_checkpoint_update",
    "verify_commitment",
    "verify_consistency",
    "verify_envelope",
    "verify_inclusion",
    "verify_node_result",
]
