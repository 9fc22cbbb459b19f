"""Hypothesis: proofs from the tiled log and the list source agree with a naive recursive
RFC 6962 reference (as transparency-dev/merkle testonly/reference_test.go does)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from audit_chain.errors import ConsistencyProofError, InclusionProofError
from audit_chain.log import TiledLog
from audit_chain.merkle import (
    ListHashSource,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from audit_chain.tilestore import MemoryTileStore


def _split(n: int) -> int:
    """Largest power of two strictly below n (RFC 6962 section 2.1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def ref_root(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = _split(len(leaves))
    return hashlib.sha256(b"\x01" + ref_root(leaves[:k]) + ref_root(leaves[k:])).digest()


def ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 6962 PATH(m, D[n])."""
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_root(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_root(leaves[:k])]


def ref_subproof(m: int, leaves: Sequence[bytes], b: bool) -> list[bytes]:
    """RFC 6962 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if b else [ref_root(leaves)]
    k = _split(n)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], b), ref_root(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_root(leaves[:k])]


sizes = st.integers(min_value=1, max_value=600)


@settings(max_examples=60, deadline=None)
@given(n=sizes, data=st.data())
def test_inclusion_matches_reference(n: int, data: st.DataObject) -> None:
    leaves = [b"leaf-%d" % i for i in range(n)]
    index = data.draw(st.integers(0, n - 1))
    src = ListHashSource([leaf_hash(x) for x in leaves])
    proof = inclusion_proof(src, index, n)
    assert proof == ref_path(index, leaves)
    verify_inclusion(index, n, leaf_hash(leaves[index]), proof, ref_root(leaves))


@settings(max_examples=60, deadline=None)
@given(n=sizes, data=st.data())
def test_consistency_matches_reference(n: int, data: st.DataObject) -> None:
    leaves = [b"leaf-%d" % i for i in range(n)]
    m = data.draw(st.integers(1, n))
    src = ListHashSource([leaf_hash(x) for x in leaves])
    proof = consistency_proof(src, m, n)
    assert proof == (ref_subproof(m, leaves, True) if m < n else [])
    verify_consistency(m, n, proof, ref_root(leaves[:m]), ref_root(leaves))


@settings(max_examples=25, deadline=None)
@given(
    batches=st.lists(st.integers(1, 300), min_size=1, max_size=8),
    data=st.data(),
)
def test_tiled_log_matches_reference(batches: list[int], data: st.DataObject) -> None:
    log = TiledLog(MemoryTileStore())
    leaves: list[bytes] = []
    for k in batches:
        new = [b"e-%d" % (len(leaves) + i) for i in range(k)]
        log.append_batch(new)
        leaves += new
    n = len(leaves)
    assert log.root == ref_root(leaves)
    index = data.draw(st.integers(0, n - 1))
    size = data.draw(st.integers(index + 1, n))
    assert log.inclusion_proof(index, size) == ref_path(index, leaves[:size])
    m = data.draw(st.integers(1, size))
    expected = ref_subproof(m, leaves[:size], True) if m < size else []
    assert log.consistency_proof(m, size) == expected


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(2, 200),
    data=st.data(),
    flip=st.integers(0, 255),
)
def test_any_mutated_inclusion_proof_is_refused(n: int, data: st.DataObject, flip: int) -> None:
    leaves = [b"x%d" % i for i in range(n)]
    src = ListHashSource([leaf_hash(x) for x in leaves])
    index = data.draw(st.integers(0, n - 1))
    proof = inclusion_proof(src, index, n)
    root = ref_root(leaves)
    which = data.draw(st.integers(0, len(proof) - 1)) if proof else None
    if which is None:
        return
    mutated = bytearray(proof[which])
    mutated[flip % 32] ^= 1 << (flip % 8)
    bad = [*proof[:which], bytes(mutated), *proof[which + 1 :]]
    try:
        verify_inclusion(index, n, leaf_hash(leaves[index]), bad, root)
    except InclusionProofError:
        return
    raise AssertionError("mutated proof verified")


@settings(max_examples=80, deadline=None)
@given(n=st.integers(3, 200), data=st.data())
def test_consistency_with_wrong_sizes_is_refused(n: int, data: st.DataObject) -> None:
    leaves = [b"x%d" % i for i in range(n)]
    src = ListHashSource([leaf_hash(x) for x in leaves])
    m = data.draw(st.integers(1, n - 1))
    proof = consistency_proof(src, m, n)
    other = data.draw(st.integers(1, n - 1).filter(lambda v: v != m))
    try:
        verify_consistency(other, n, proof, ref_root(leaves[:other]), ref_root(leaves))
    except ConsistencyProofError:
        return
    # A different size1 can only pass if it is genuinely provable with the same hashes.
    assert proof == consistency_proof(src, other, n)
