"""Merkle hashing, proof generation and the data carried by proof errors."""

from __future__ import annotations

import hashlib

import pytest

from audit_chain.errors import ConsistencyProofError, InclusionProofError, LogStateError
from audit_chain.merkle import (
    EMPTY_ROOT,
    ListHashSource,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_hashes,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# RFC 6962 test tree (transparency-dev/merkle testonly): 8 leaves and their roots.
LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_hashes_use_rfc6962_domain_separation() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert root_hash([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_of_the_rfc6962_test_tree(size: int) -> None:
    assert root_hash(LEAVES[:size]).hex() == ROOTS[size - 1]
    src = ListHashSource([leaf_hash(x) for x in LEAVES])
    assert src.root(size).hex() == ROOTS[size - 1]


def test_known_inclusion_and_consistency_proofs() -> None:
    src = ListHashSource([leaf_hash(x) for x in LEAVES])
    # Leaf 0 in the tree of 8 (transparency-dev/merkle inclusion/1 happy path).
    assert [h.hex() for h in inclusion_proof(src, 0, 8)] == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]
    assert [h.hex() for h in consistency_proof(src, 6, 8)] == [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]
    verify_consistency(6, 8, consistency_proof(src, 6, 8), src.root(6), src.root(8))


def test_every_proof_of_a_small_tree_verifies() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(37)]
    src = ListHashSource(leaves)
    for size in range(1, 38):
        root = src.root(size)
        assert root == root_from_hashes(leaves[:size])
        for index in range(size):
            verify_inclusion(index, size, leaves[index], inclusion_proof(src, index, size), root)
        for size1 in range(0, size + 1):
            proof = consistency_proof(src, size1, size)
            if size1 > 0:
                verify_consistency(size1, size, proof, src.root(size1), root)


def test_root_mismatch_carries_expected_and_calculated_roots() -> None:
    src = ListHashSource([leaf_hash(x) for x in LEAVES])
    proof = inclusion_proof(src, 3, 8)
    wrong = b"\x00" * 32
    with pytest.raises(InclusionProofError) as info:
        verify_inclusion(3, 8, leaf_hash(LEAVES[3]), proof, wrong)
    assert info.value.reason == "root_mismatch"
    assert info.value.expected_root == wrong
    assert info.value.calculated_root == src.root(8)


def test_wrong_proof_length_and_sizes_are_named() -> None:
    src = ListHashSource([leaf_hash(x) for x in LEAVES])
    proof = inclusion_proof(src, 3, 8)
    with pytest.raises(InclusionProofError) as info:
        verify_inclusion(3, 8, leaf_hash(LEAVES[3]), proof[:-1], src.root(8))
    assert info.value.reason == "wrong_proof_length"
    with pytest.raises(InclusionProofError) as info:
        verify_inclusion(8, 8, leaf_hash(LEAVES[3]), proof, src.root(8))
    assert info.value.reason == "index_out_of_range"
    with pytest.raises(InclusionProofError) as info:
        verify_inclusion(3, 8, leaf_hash(LEAVES[3]), [*proof[:-1], b"short"], src.root(8))
    assert info.value.reason == "bad_proof_hash_size"
    cproof = consistency_proof(src, 3, 7)
    with pytest.raises(ConsistencyProofError) as cinfo:
        verify_consistency(7, 3, cproof, src.root(7), src.root(3))
    assert cinfo.value.reason == "size_decreased"
    with pytest.raises(ConsistencyProofError) as cinfo:
        verify_consistency(3, 7, cproof, src.root(7), src.root(3))  # swapped roots
    assert cinfo.value.reason == "root1_mismatch"
    assert cinfo.value.expected_root == src.root(7)


def test_proof_generation_refuses_impossible_requests() -> None:
    src = ListHashSource([leaf_hash(x) for x in LEAVES])
    with pytest.raises(LogStateError):
        inclusion_proof(src, 8, 8)
    with pytest.raises(LogStateError):
        consistency_proof(src, 5, 4)
    assert consistency_proof(src, 0, 8) == []
    assert consistency_proof(src, 8, 8) == []
