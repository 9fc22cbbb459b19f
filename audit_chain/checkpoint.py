"""C2SP tlog-checkpoint: the signed tree head of a log, as a signed note.

Body (note text)::

    <origin>
    <tree size, decimal, no leading zeros>
    <base64 root hash>
    [extension lines, each non-empty]

Invariants: a :class:`Checkpoint` always has a non-empty origin without newlines, a
non-negative size and a 32-byte root; :func:`parse_checkpoint` accepts exactly what
:meth:`Checkpoint.body` produces. :func:`ensure_publishable` is the log-side guard
that a log never signs a checkpoint smaller than, or inconsistent with, the last one.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from audit_chain._b64 import b64decode_strict
from audit_chain.errors import (
    CheckpointRegressionError,
    ConsistencyProofError,
    MalformedCheckpointError,
)
from audit_chain.merkle import HASH_SIZE, verify_consistency
from audit_chain.note import MAX_NOTE_BYTES, NoteSigner, NoteVerifier, open_note, sign_note

__all__ = [
    "Checkpoint",
    "ensure_publishable",
    "open_checkpoint",
    "parse_checkpoint",
    "sign_checkpoint",
]

_MAX_SIZE_DIGITS = 19


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, tree size, root hash, optional extension lines."""

    origin: str
    tree_size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise MalformedCheckpointError("origin must be one non-empty line", reason="bad_origin")
        if not 0 <= self.tree_size < 1 << 63:
            raise MalformedCheckpointError("tree size out of range", reason="bad_tree_size")
        if len(self.root) != HASH_SIZE:
            raise MalformedCheckpointError("root hash must be 32 bytes", reason="bad_root")
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise MalformedCheckpointError("bad extension line", reason="bad_extension")

    def body(self) -> str:
        """The note text."""
        lines = [self.origin, str(self.tree_size), base64.b64encode(self.root).decode()]
        return "\n".join([*lines, *self.extensions]) + "\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body (the note text, with its final newline).

    Raises:
        MalformedCheckpointError: fewer than three lines, a size with leading zeros or
            non-digits, a root that is not canonical base64 of 32 bytes, an empty line.
    """
    if len(text) > MAX_NOTE_BYTES:
        raise MalformedCheckpointError("checkpoint text too long", reason="oversize")
    if not text.endswith("\n"):
        raise MalformedCheckpointError("checkpoint text must end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise MalformedCheckpointError("checkpoint needs origin, size and root lines")
    origin, size_s, root_s, *extensions = lines
    if (
        not size_s.isascii()
        or not size_s.isdigit()
        or len(size_s) > _MAX_SIZE_DIGITS
        or (size_s != "0" and size_s.startswith("0"))
    ):
        raise MalformedCheckpointError(f"bad tree size line {size_s!r}", reason="bad_tree_size")
    root = b64decode_strict(root_s, "root hash", MalformedCheckpointError, "bad_root")
    return Checkpoint(origin, int(size_s), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> bytes:
    """Sign a checkpoint as a note with the log's key."""
    return sign_note(checkpoint.body(), [signer])


def open_checkpoint(
    note: bytes,
    verifier: NoteVerifier,
    *,
    origin: str | None = None,
    max_bytes: int = MAX_NOTE_BYTES,
) -> Checkpoint:
    """Verify a signed checkpoint with the log's key and parse it.

    ``origin`` is the expected origin line; by default the verifier key's name (the
    tlog-checkpoint recommendation that the key name match the origin).

    Raises:
        InputTooLargeError, MalformedNoteError, ForgedSignatureError, UnknownKeyError:
            from :func:`audit_chain.note.open_note`.
        MalformedCheckpointError: the text is not a checkpoint, or the origin differs.
    """
    opened = open_note(note, [verifier], max_bytes=max_bytes)
    cp = parse_checkpoint(opened.text)
    want = verifier.name if origin is None else origin
    if cp.origin != want:
        raise MalformedCheckpointError(
            f"checkpoint origin {cp.origin!r} is not {want!r}", reason="wrong_origin"
        )
    return cp


def ensure_publishable(
    last: Checkpoint | None, candidate: Checkpoint, consistency_proof: Sequence[bytes]
) -> None:
    """Refuse to publish ``candidate`` unless it extends ``last`` (the last published one).

    Raises:
        CheckpointRegressionError: different origin, smaller tree, same size with another
            root, or a consistency proof from ``last`` to ``candidate`` that fails.
    """
    if last is None:
        return
    if candidate.origin != last.origin:
        raise CheckpointRegressionError(
            f"origin changed from {last.origin!r} to {candidate.origin!r}",
            last_size=last.tree_size,
            new_size=candidate.tree_size,
        )
    if candidate.tree_size < last.tree_size:
        raise CheckpointRegressionError(
            f"tree size {candidate.tree_size} is below the published {last.tree_size}",
            last_size=last.tree_size,
            new_size=candidate.tree_size,
        )
    if last.tree_size == 0:
        return
    try:
        verify_consistency(
            last.tree_size, candidate.tree_size, consistency_proof, last.root, candidate.root
        )
    except ConsistencyProofError as exc:
        raise CheckpointRegressionError(
            f"candidate is inconsistent with the published checkpoint: {exc}",
            last_size=last.tree_size,
            new_size=candidate.tree_size,
        ) from exc
