"""verify_bundle: the happy path and every tampering, each refused at its named step."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest

from audit_chain import (
    STEPS,
    Anchor,
    BundleVerificationError,
    CheckpointPublisher,
    MemoryTileStore,
    TiledLog,
    build_bundle,
    parse_bundle,
    verify_bundle,
)
from audit_chain.dsse import INTOTO_PAYLOAD_TYPE, sign_envelope
from audit_chain.errors import LogStateError

from .helpers import anchor_for, make_bundle, seeded

Bundle = dict[str, Any]


@cache
def _good() -> tuple[bytes, str]:
    bundle, signer = make_bundle(300, 7, anchored_extra=21)
    return bundle.to_bytes(), signer.vkey


def _obj() -> Bundle:
    return copy.deepcopy(json.loads(_good()[0]))


def _dump(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _step(data: bytes, vkey: str | None = None, **kwargs: Any) -> str:
    with pytest.raises(BundleVerificationError) as info:
        verify_bundle(data, vkey or _good()[1], **kwargs)
    assert info.value.step in STEPS
    assert info.value.__cause__ is not None or info.value.step == "anchor"
    return info.value.step


def test_good_bundle_verifies_offline() -> None:
    data, vkey = _good()
    assert verify_bundle(data, vkey) is None
    assert len(data) < 4096


def test_round_trip_is_canonical() -> None:
    data, _ = _good()
    assert parse_bundle(data).to_bytes() == data


def test_chain_check_receives_the_anchor() -> None:
    data, vkey = _good()
    seen: list[Anchor] = []
    verify_bundle(data, vkey, check_anchor=seen.append)
    assert seen and seen[0].tree_size == 321 and seen[0].chain_id == 31337


def test_chain_check_failure_is_the_chain_step() -> None:
    def not_on_chain(anchor: Anchor) -> None:
        raise LookupError(f"no anchor at {anchor.tx_hash}")

    assert _step(_good()[0], check_anchor=not_on_chain) == "chain"


def test_oversize_bundle_is_refused_before_parsing() -> None:
    assert _step(b"{" * 200_000) == "size"
    assert _step(_good()[0], max_bytes=1000) == "size"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"[1,2]",
        b'{"mediaType":"x"}',
        _good()[0][: len(_good()[0]) // 2],  # truncated file
    ],
)
def test_garbage_is_a_parse_failure(data: bytes) -> None:
    assert _step(data) == "parse"


Mutation = Callable[[Bundle], None]


def _set(path: list[Any], value: object) -> Mutation:
    def mutate(b: Bundle) -> None:
        target: Any = b
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _proof_op(key: str, op: Callable[[list[str]], list[str]]) -> Mutation:
    """Apply ``op`` to the proof as a list of base64 hashes (the bundle carries them
    concatenated in one base64 string)."""

    def mutate(b: Bundle) -> None:
        raw = base64.b64decode(b[key])
        hashes = [base64.b64encode(raw[i : i + 32]).decode() for i in range(0, len(raw), 32)]
        b[key] = base64.b64encode(b"".join(base64.b64decode(h) for h in op(hashes))).decode()

    return mutate


def _flip(h: str) -> str:
    raw = bytearray(base64.b64decode(h))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _modify_payload(b: Bundle) -> None:
    b["record"]["payload"]["predicate"]["outcome"] = "cancelled"


def _forge_checkpoint(b: Bundle) -> None:
    b["checkpoint"] = b["checkpoint"].replace("\n300\n", "\n301\n")


def _swap_anchor_root(b: Bundle) -> None:
    # The anchor claims the checkpoint's root: "swapped roots" between the two trees.
    cp_root = base64.b64decode(b["checkpoint"].split("\n")[2])
    b["anchor"]["root"] = "0x" + cp_root.hex()


ZERO_SIG = base64.b64encode(b"\x00" * 64).decode()


def _strip_signature(b: Bundle) -> None:
    b["checkpoint"] = b["checkpoint"].split("\u2014")[0]


CASES: list[tuple[str, Mutation, str]] = [
    ("unknown member", _set(["extra"], 1), "parse"),
    ("wrong media type", _set(["mediaType"], "application/json"), "parse"),
    ("garbage proof", _set(["inclusionProof"], "!!notbase64!!"), "parse"),
    ("proof not a string", _set(["inclusionProof"], 12), "parse"),
    ("proof list of garbage (v1 form)", _set(["inclusionProof"], ["!!notbase64!!"]), "parse"),
    ("negative index", _set(["leafIndex"], -1), "parse"),
    ("record without signatures", _set(["record", "signatures"], []), "parse"),
    ("anchor without consistency proof", lambda b: b.pop("consistencyProof"), "parse"),
    ("anchor contract not an address", _set(["anchor", "contract"], "0x1234"), "parse"),
    ("forged checkpoint signature", _forge_checkpoint, "checkpoint"),
    ("checkpoint signature removed", _strip_signature, "checkpoint"),
    ("modified record", _modify_payload, "record_signature"),
    (
        "record signature replaced",
        _set(["record", "signatures", 0, "sig"], ZERO_SIG),
        "record_signature",
    ),
    ("truncated inclusion proof", _proof_op("inclusionProof", lambda p: p[:-1]), "inclusion"),
    ("extra inclusion hash", _proof_op("inclusionProof", lambda p: [*p, p[0]]), "inclusion"),
    ("empty inclusion proof", _proof_op("inclusionProof", lambda p: []), "inclusion"),
    ("short inclusion hash", _proof_op("inclusionProof", lambda p: ["AAAA", *p[1:]]), "inclusion"),
    (
        "flipped inclusion hash",
        _proof_op("inclusionProof", lambda p: [_flip(p[0]), *p[1:]]),
        "inclusion",
    ),
    ("reordered inclusion proof", _proof_op("inclusionProof", lambda p: p[::-1]), "inclusion"),
    ("wrong leaf index", _set(["leafIndex"], 8), "inclusion"),
    ("index beyond tree", _set(["leafIndex"], 300), "inclusion"),
    ("anchor smaller than checkpoint", _set(["anchor", "treeSize"], 299), "anchor"),
    ("wrong anchored size", _set(["anchor", "treeSize"], 642), "consistency"),
    ("different anchor root", _set(["anchor", "root"], "0x" + "ab" * 32), "consistency"),
    ("swapped roots", _swap_anchor_root, "consistency"),
    ("truncated consistency proof", _proof_op("consistencyProof", lambda p: p[:-1]), "consistency"),
    ("empty consistency proof", _proof_op("consistencyProof", lambda p: []), "consistency"),
    (
        "flipped consistency hash",
        _proof_op("consistencyProof", lambda p: [*p[:-1], _flip(p[-1])]),
        "consistency",
    ),
    (
        "garbage-length consistency hash",
        _proof_op("consistencyProof", lambda p: [*p[:-1], "AAAAAAAA"]),
        "consistency",
    ),
]


@pytest.mark.parametrize(("name", "mutate", "step"), CASES, ids=[c[0] for c in CASES])
def test_tampered_bundle_is_refused_at_its_step(name: str, mutate: Mutation, step: str) -> None:
    obj = _obj()
    mutate(obj)
    assert _step(_dump(obj)) == step


def test_missing_anchor_is_refused_unless_allowed() -> None:
    obj = _obj()
    obj.pop("anchor")
    obj.pop("consistencyProof")
    assert _step(_dump(obj)) == "anchor"
    assert verify_bundle(_dump(obj), _good()[1], require_anchor=False) is None


def test_bad_or_wrong_keys() -> None:
    data, _ = _good()
    assert _step(data, "not a key") == "keys"
    assert _step(data, seeded("other").vkey) == "checkpoint"
    assert _step(data, statement_vkey=seeded("other").vkey) == "record_signature"
    assert _step(data, origin="another.example/log") == "checkpoint"


def test_validly_signed_non_statement_is_the_statement_step() -> None:
    signer = seeded("log")
    log = TiledLog(MemoryTileStore())
    junk = sign_envelope(b'{"hello":"world"}', INTOTO_PAYLOAD_TYPE, signer)
    log.append_batch([junk.canonical_bytes(), b"other"])
    note = CheckpointPublisher(log, signer).publish()
    bundle = build_bundle(log, 0, note, signer.verifier, anchor=anchor_for(log, 2))
    assert _step(bundle.to_bytes(), signer.vkey) == "statement"


def test_build_bundle_refuses_impossible_requests() -> None:
    bundle, signer = make_bundle(20, 3, anchored_extra=0)
    log = TiledLog(MemoryTileStore())
    with pytest.raises(LogStateError):
        build_bundle(log, 25, bundle.checkpoint, signer.verifier)


def test_anchored_size_is_authenticated_by_the_chain_check() -> None:
    # RFC 6962 roots do not commit to the tree size: an anchored size off by one that
    # leaves the proof's shape unchanged still proves the checkpoint is a prefix of the
    # anchored root offline. The chain check compares (tree size, root) with the contract.
    obj = _obj()
    on_chain = (obj["anchor"]["treeSize"], obj["anchor"]["root"])
    obj["anchor"]["treeSize"] += 1
    data = _dump(obj)
    verify_bundle(data, _good()[1])

    def contract_lookup(anchor: Anchor) -> None:
        if (anchor.tree_size, "0x" + anchor.root.hex()) != on_chain:
            raise ValueError("anchor differs from the contract's record")

    assert _step(data, check_anchor=contract_lookup) == "chain"
