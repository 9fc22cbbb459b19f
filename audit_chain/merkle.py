"""RFC 6962 / RFC 9162 Merkle tree hashing, proof generation and proof verification.

Hashing (RFC 9162 section 2.1.1), SHA-256 throughout:

* ``leaf_hash(d)    = SHA-256(0x00 || d)``
* ``node_hash(l, r) = SHA-256(0x01 || l || r)``
* the root of the empty tree is ``SHA-256("")``.

Tree addressing: a *node* ``(level, index)`` is the root of the perfect subtree over the
leaves ``[index * 2**level, (index + 1) * 2**level)``. Proof generation needs only a
source of such perfect-subtree hashes (:class:`HashSource`); incomplete subtrees on the
right border are rebuilt from them, so a proof costs O(log n) stored hashes.

Proof layout matches RFC 9162 and transparency-dev/merkle: inclusion proofs go from the
leaf's sibling up to the root's child; consistency proofs are the RFC 9162 SUBPROOF.

Verifications return ``None`` and raise :class:`~audit_chain.errors.InclusionProofError`
or :class:`~audit_chain.errors.ConsistencyProofError` carrying ``expected_root`` /
``calculated_root`` and a stable ``reason``.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from typing import Protocol

from audit_chain.errors import ConsistencyProofError, InclusionProofError, LogStateError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_MAX_TREE_SIZE = 1 << 63

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "HashSource",
    "ListHashSource",
    "consistency_proof",
    "fold_right",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_hashes",
    "root_from_inclusion_proof",
    "root_hash",
    "subtree_hash",
    "verify_consistency",
    "verify_inclusion",
]


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def fold_right(parts: Sequence[bytes]) -> bytes:
    """Root over consecutive perfect subtrees, biggest (leftmost) first, hashed right to left.

    This is how RFC 9162 joins the decomposition of a tree (or of a border subtree) into
    perfect subtrees; ``parts`` must not be empty.
    """
    acc = parts[-1]
    for left in reversed(parts[:-1]):
        acc = node_hash(left, acc)
    return acc


class CompactRange:
    """The perfect subtrees covering leaves ``[0, size)``: append hashes, read the root."""

    def __init__(self, nodes: Sequence[tuple[int, bytes]] = ()) -> None:
        """Start empty, or resume from ``nodes`` as returned by :attr:`nodes`.

        Raises:
            LogStateError: heights not strictly decreasing, or a hash not 32 bytes.
        """
        heights = [h for h, _ in nodes]
        if any(a <= b for a, b in itertools.pairwise(heights)) or any(
            not 0 <= h < 64 or len(x) != HASH_SIZE for h, x in nodes
        ):
            raise LogStateError("not a compact range")
        self._nodes: list[tuple[int, bytes]] = list(nodes)  # (height, hash), biggest first
        self.size = sum(1 << h for h in heights)

    @property
    def nodes(self) -> tuple[tuple[int, bytes], ...]:
        """The perfect subtrees, biggest first, as (height, hash)."""
        return tuple(self._nodes)

    def append(self, h: bytes) -> None:
        """Append one leaf hash (or one subtree root of the same height as the leaves)."""
        height = 0
        while self._nodes and self._nodes[-1][0] == height:
            _, left = self._nodes.pop()
            h = node_hash(left, h)
            height += 1
        self._nodes.append((height, h))
        self.size += 1

    def root(self) -> bytes:
        return fold_right([h for _, h in self._nodes]) if self._nodes else EMPTY_ROOT


def root_from_hashes(hashes: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash over already-hashed leaves (or equal-height subtree roots)."""
    compact = CompactRange()
    for h in hashes:
        compact.append(h)
    return compact.root()


def root_hash(entries: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash of a list of raw entries."""
    return root_from_hashes([leaf_hash(e) for e in entries])


class HashSource(Protocol):
    """Source of perfect-subtree hashes of a tree of at least the requested size."""

    def node(self, level: int, index: int) -> bytes:
        """Hash of the perfect subtree ``(level, index)``; it lies fully inside the tree."""


def subtree_hash(source: HashSource, level: int, index: int, tree_size: int) -> bytes:
    """Hash of leaves ``[index << level, min((index + 1) << level, tree_size))``.

    Perfect subtrees come straight from ``source``; a subtree cut by the right border of
    the tree is rebuilt from the perfect subtrees that tile it.
    """
    begin = index << level
    end = min(begin + (1 << level), tree_size)
    if begin >= end:
        raise LogStateError(f"subtree ({level}, {index}) is empty in a tree of size {tree_size}")
    if end - begin == 1 << level:
        return source.node(level, index)
    # Decompose [begin, end) into perfect subtrees, biggest first, then fold from the right.
    parts: list[bytes] = []
    pos = begin
    remaining = end - begin
    for h in range(level - 1, -1, -1):
        if remaining & (1 << h):
            parts.append(source.node(h, pos >> h))
            pos += 1 << h
    return fold_right(parts)


def _check_size(tree_size: int) -> None:
    if tree_size < 0 or tree_size >= _MAX_TREE_SIZE:
        raise LogStateError(f"tree size {tree_size} out of range")


def _path(source: HashSource, level: int, index: int, tree_size: int) -> list[bytes]:
    """Inclusion path of node ``(level, index)`` in a tree of ``tree_size`` leaves."""
    last = (tree_size - 1) >> level
    inner = (index ^ last).bit_length()
    proof = [subtree_hash(source, level + i, (index >> i) ^ 1, tree_size) for i in range(inner)]
    for j in range(inner, index.bit_length()):
        if (index >> j) & 1:
            proof.append(source.node(level + j, (index >> j) ^ 1))
    return proof


def inclusion_proof(source: HashSource, index: int, tree_size: int) -> list[bytes]:
    """Inclusion proof for leaf ``index`` in the tree of ``tree_size`` leaves.

    Raises:
        LogStateError: ``index`` is not below ``tree_size``.
    """
    _check_size(tree_size)
    if not 0 <= index < tree_size:
        raise LogStateError(f"leaf index {index} not in a tree of size {tree_size}")
    return _path(source, 0, index, tree_size)


def consistency_proof(source: HashSource, size1: int, size2: int) -> list[bytes]:
    """Consistency proof from the tree of ``size1`` leaves to the tree of ``size2`` leaves.

    Empty when ``size1 == size2`` or ``size1 == 0`` (nothing to prove).

    Raises:
        LogStateError: ``size1 > size2``.
    """
    _check_size(size2)
    if not 0 <= size1 <= size2:
        raise LogStateError(f"no consistency proof from size {size1} to size {size2}")
    if size1 in (0, size2):
        return []
    level = (size1 & -size1).bit_length() - 1  # trailing zeros
    index = (size1 - 1) >> level
    proof = _path(source, level, index, size2)
    if index != 0:  # size1 is not a power of two: the verifier needs this subtree's hash
        proof.insert(0, source.node(level, index))
    return proof


# --------------------------------------------------------------------------- verification


def _check_hash(
    value: bytes, what: str, error: type[InclusionProofError | ConsistencyProofError]
) -> None:
    if len(value) != HASH_SIZE:
        raise error(f"{what} is {len(value)} bytes, not {HASH_SIZE}", reason=f"bad_{what}_size")


def _decomp(index: int, size: int) -> tuple[int, int]:
    """Split an inclusion proof length into (inner, border) parts (RFC 9162 2.1.3.2)."""
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        seed = node_hash(seed, h) if (index >> i) & 1 == 0 else node_hash(h, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        if (index >> i) & 1:
            seed = node_hash(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = node_hash(h, seed)
    return seed


def root_from_inclusion_proof(
    index: int, tree_size: int, leaf: bytes, proof: Sequence[bytes]
) -> bytes:
    """Root implied by an inclusion proof for leaf hash ``leaf`` at ``index``.

    Raises:
        InclusionProofError: index/size out of range, bad hash sizes, wrong proof length.
    """
    if tree_size <= 0 or tree_size >= _MAX_TREE_SIZE:
        raise InclusionProofError(f"tree size {tree_size} out of range", reason="bad_tree_size")
    if not 0 <= index < tree_size:
        raise InclusionProofError(
            f"leaf index {index} not below tree size {tree_size}", reason="index_out_of_range"
        )
    _check_hash(leaf, "leaf_hash", InclusionProofError)
    for h in proof:
        _check_hash(h, "proof_hash", InclusionProofError)
    inner, border = _decomp(index, tree_size)
    if len(proof) != inner + border:
        raise InclusionProofError(
            f"proof has {len(proof)} hashes, expected {inner + border}",
            reason="wrong_proof_length",
        )
    res = _chain_inner(leaf, proof[:inner], index)
    return _chain_border_right(res, proof[inner:])


def verify_inclusion(
    index: int, tree_size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify that leaf hash ``leaf`` is at ``index`` in the tree of ``tree_size`` with ``root``.

    Raises:
        InclusionProofError: with ``reason`` one of ``bad_tree_size``, ``index_out_of_range``,
            ``bad_leaf_hash_size``, ``bad_proof_hash_size``, ``wrong_proof_length``,
            ``root_mismatch`` (the last carries expected/calculated roots).
    """
    calculated = root_from_inclusion_proof(index, tree_size, leaf, proof)
    if calculated != root:
        raise InclusionProofError(
            "calculated root does not match the expected root",
            reason="root_mismatch",
            expected_root=root,
            calculated_root=calculated,
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Verify that the tree of ``size2`` with ``root2`` extends the tree of ``size1``/``root1``.

    For equal sizes the proof must be empty and the roots equal; a tree of size 0 must have
    the empty-tree root, and a consistency proof from an empty tree to a non-empty one is
    meaningless and refused.

    Raises:
        ConsistencyProofError: with ``reason`` one of ``size_decreased``, ``bad_tree_size``,
            ``non_empty_proof``, ``empty_tree``, ``empty_proof``, ``bad_proof_hash_size``,
            ``wrong_proof_length``, ``root1_mismatch``, ``root2_mismatch``.
    """
    if size1 < 0 or size2 >= _MAX_TREE_SIZE:
        raise ConsistencyProofError(
            f"tree sizes {size1}, {size2} out of range", reason="bad_tree_size"
        )
    if size2 < size1:
        raise ConsistencyProofError(f"size2 ({size2}) < size1 ({size1})", reason="size_decreased")
    if size1 == size2:
        if proof:
            raise ConsistencyProofError(
                "sizes are equal but the proof is not empty", reason="non_empty_proof"
            )
        if size1 == 0 and root1 != EMPTY_ROOT:
            raise ConsistencyProofError(
                "a tree of size 0 must have the empty root",
                reason="root1_mismatch",
                expected_root=EMPTY_ROOT,
                calculated_root=root1,
            )
        if root1 != root2:
            raise ConsistencyProofError(
                "sizes are equal but the roots differ",
                reason="root2_mismatch",
                expected_root=root2,
                calculated_root=root1,
            )
        return
    if size1 == 0:
        raise ConsistencyProofError(
            "a consistency proof from the empty tree is meaningless", reason="empty_tree"
        )
    if not proof:
        raise ConsistencyProofError("empty proof", reason="empty_proof")
    for h in proof:
        _check_hash(h, "proof_hash", ConsistencyProofError)

    inner, border = _decomp(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1
    inner -= shift  # shift < inner because size1 < size2
    # The proof starts with the hash of the perfect subtree of size 2**shift ending at
    # size1, unless size1 is that power of two itself, whose hash is root1.
    if size1 == 1 << shift:
        seed, start = root1, 0
    else:
        seed, start = proof[0], 1
    if len(proof) != start + inner + border:
        raise ConsistencyProofError(
            f"proof has {len(proof)} hashes, expected {start + inner + border}",
            reason="wrong_proof_length",
        )
    rest = proof[start:]
    mask = (size1 - 1) >> shift
    hash1 = _chain_border_right(_chain_inner_right(seed, rest[:inner], mask), rest[inner:])
    if hash1 != root1:
        raise ConsistencyProofError(
            "proof does not lead to root1",
            reason="root1_mismatch",
            expected_root=root1,
            calculated_root=hash1,
        )
    hash2 = _chain_border_right(_chain_inner(seed, rest[:inner], mask), rest[inner:])
    if hash2 != root2:
        raise ConsistencyProofError(
            "proof does not lead to root2",
            reason="root2_mismatch",
            expected_root=root2,
            calculated_root=hash2,
        )


class ListHashSource:
    """:class:`HashSource` over an in-memory list of leaf hashes (for small trees and tests).

    Node hashes are computed on demand and memoised; O(n) memory.
    """

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self._levels: list[list[bytes]] = [list(leaf_hashes)]
        while len(self._levels[-1]) > 1:
            below = self._levels[-1]
            self._levels.append(
                [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            )

    def node(self, level: int, index: int) -> bytes:
        try:
            return self._levels[level][index]
        except IndexError:
            raise LogStateError(f"node ({level}, {index}) is not a perfect subtree") from None

    @property
    def tree_size(self) -> int:
        return len(self._levels[0])

    def root(self, tree_size: int | None = None) -> bytes:
        """Root of the first ``tree_size`` leaves (all of them by default)."""
        size = self.tree_size if tree_size is None else tree_size
        if size == 0:
            return EMPTY_ROOT
        top = (size - 1).bit_length()
        return subtree_hash(self, top, 0, size)
