"""Errors raised by `audit_chain`.

Every error carries data (sizes, roots, key names, the failing step), not just text.

Tree::

    AuditChainError
    ├── FormatError                       outside input is malformed or too large
    │   ├── InputTooLargeError            size_bytes > limit_bytes (checked before parsing)
    │   ├── MalformedNoteError            not a C2SP signed note
    │   ├── MalformedCheckpointError      note text is not a tlog-checkpoint body
    │   ├── MalformedKeyError             not a signed-note verifier/signer key
    │   ├── MalformedEnvelopeError        not a canonical DSSE envelope
    │   ├── MalformedStatementError       not an in-toto Statement v1 with a known predicate
    │   ├── MalformedBundleError          not a cntrust proof bundle
    │   └── TilePathError                 not a tlog-tiles path
    ├── VerificationError                 a security check failed; ``reason`` is a stable code
    │   ├── ProofError
    │   │   ├── InclusionProofError       expected_root / calculated_root
    │   │   └── ConsistencyProofError     expected_root / calculated_root
    │   ├── NoteVerificationError
    │   │   ├── UnknownKeyError           no signature by a trusted key
    │   │   └── ForgedSignatureError      a trusted key's signature does not verify
    │   ├── EnvelopeVerificationError     DSSE signature missing or invalid
    │   ├── CommitmentMismatchError       a salted commitment does not open to the value
    │   ├── NodeResultVerificationError   the node's own signature over its result fails
    │   ├── BundleVerificationError       ``step`` names the failing step of verify_bundle
    │   └── MonitorError
    │       ├── SplitViewError            two checkpoints that cannot both be true
    │       ├── RollbackError             the log went back to a smaller tree
    │       └── EntryMismatchError        stored entries do not hash to the signed root
    └── LogError                          the log itself cannot proceed
        ├── TileNotFoundError             a tile the tree size requires is missing
        ├── LogStateError                 stored state is inconsistent / wrong tree size
        └── CheckpointRegressionError     refusing to publish a smaller or inconsistent checkpoint

The anchoring helper's errors (``audit_chain.anchoring.errors``) also subclass
:class:`AuditChainError`.
"""

from __future__ import annotations


class AuditChainError(Exception):
    """Root of every error audit_chain raises."""


# --------------------------------------------------------------------------- format


class FormatError(AuditChainError):
    """Outside input is malformed. ``reason`` is a stable machine-readable code."""

    def __init__(self, message: str, *, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


class InputTooLargeError(FormatError):
    """Input larger than the limit; raised before any parsing."""

    def __init__(self, what: str, *, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(
            f"{what} is {size_bytes} bytes, over the {limit_bytes}-byte limit", reason="oversize"
        )
        self.what = what
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class MalformedNoteError(FormatError):
    """The bytes are not a C2SP signed note."""


class MalformedCheckpointError(FormatError):
    """The note text is not a C2SP tlog-checkpoint body."""


class MalformedKeyError(FormatError):
    """A signed-note verifier or signer key string is malformed."""


class MalformedEnvelopeError(FormatError):
    """The bytes are not a canonical DSSE envelope."""


class MalformedStatementError(FormatError):
    """The payload is not an in-toto Statement v1 with a known cntrust predicate."""


class MalformedBundleError(FormatError):
    """The bytes are not a cntrust proof bundle."""


class TilePathError(FormatError):
    """A string is not a C2SP tlog-tiles resource path."""


# --------------------------------------------------------------------------- verification


class VerificationError(AuditChainError):
    """A security check failed. ``reason`` is a stable machine-readable code."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ProofError(VerificationError):
    """A Merkle proof did not verify.

    ``expected_root`` is the root the caller trusts, ``calculated_root`` the one the proof
    led to (``None`` when the proof was refused before any hashing, e.g. a wrong length).
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        expected_root: bytes | None = None,
        calculated_root: bytes | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.expected_root = expected_root
        self.calculated_root = calculated_root


class InclusionProofError(ProofError):
    """An inclusion proof did not verify (RFC 9162 section 2.1.3.2)."""


class ConsistencyProofError(ProofError):
    """A consistency proof did not verify (RFC 9162 section 2.1.4.2)."""


class NoteVerificationError(VerificationError):
    """A signed note did not verify."""


class UnknownKeyError(NoteVerificationError):
    """No signature on the note is by a trusted key (name and key ID both match)."""

    def __init__(self, message: str, *, key_names: tuple[str, ...] = ()) -> None:
        super().__init__(message, reason="unknown_key")
        self.key_names = key_names


class ForgedSignatureError(NoteVerificationError):
    """A signature by a trusted key (name and key ID match) does not verify."""

    def __init__(self, message: str, *, key_name: str, key_id: int) -> None:
        super().__init__(message, reason="forged_signature")
        self.key_name = key_name
        self.key_id = key_id


class EnvelopeVerificationError(VerificationError):
    """A DSSE envelope carries no valid signature by the expected key."""


class CommitmentMismatchError(VerificationError):
    """A salted commitment does not open to the claimed value."""

    def __init__(self, message: str, *, expected: str, calculated: str) -> None:
        super().__init__(message, reason="commitment_mismatch")
        self.expected = expected
        self.calculated = calculated


class NodeResultVerificationError(VerificationError):
    """The node's signature over its result is missing, from another key, or invalid."""

    def __init__(self, message: str, *, reason: str, key_id: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.key_id = key_id


class BundleVerificationError(VerificationError):
    """``verify_bundle`` failed at ``step`` because of ``detail``; ``__cause__`` says why."""

    def __init__(self, step: str, detail: str, *, reason: str) -> None:
        super().__init__(f"step {step!r} failed: {detail}", reason=reason)
        self.step = step
        self.detail = detail


class MonitorError(VerificationError):
    """A log monitor saw the log misbehave."""

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        old_size: int,
        new_size: int,
        old_root: bytes,
        new_root: bytes,
    ) -> None:
        super().__init__(message, reason=reason)
        self.old_size = old_size
        self.new_size = new_size
        self.old_root = old_root
        self.new_root = new_root


class SplitViewError(MonitorError):
    """Two checkpoints of the same origin that cannot both be true (fork / split view)."""


class RollbackError(MonitorError):
    """A checkpoint with a smaller tree than one already seen."""


class EntryMismatchError(MonitorError):
    """The log's entries do not hash to the root of a signed checkpoint (changed in storage)."""


# --------------------------------------------------------------------------- log


class LogError(AuditChainError):
    """The log cannot proceed."""


class TileNotFoundError(LogError):
    """A tile (or entry bundle) that the tree size requires is missing from storage."""

    def __init__(self, path: str) -> None:
        super().__init__(f"tile {path} not found")
        self.path = path


class LogStateError(LogError):
    """Stored log state is inconsistent, or a call asks for an impossible tree size/index."""


class CheckpointRegressionError(LogError):
    """Refusing to publish a checkpoint smaller than, or inconsistent with, the last one."""

    def __init__(self, message: str, *, last_size: int, new_size: int) -> None:
        super().__init__(message)
        self.last_size = last_size
        self.new_size = new_size
