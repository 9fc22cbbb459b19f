"""Self-contained proof bundles for one log entry, in the spirit of C2SP tlog-proof.

A bundle is canonical JSON (compact, sorted keys)::

    {
      "mediaType": "application/vnd.cntrust.proof-bundle.v2+json",
      "record": {DSSE envelope; its canonical bytes are the log entry; the payload, when it
                 is a canonical JSON statement, is carried as that JSON object instead of
                 base64, and re-encoded canonically (sorted keys, no spaces) on parsing},
      "leafIndex": 1234,
      "inclusionProof": "<base64 of the hashes concatenated>",   leaf's sibling first
      "checkpoint": "<signed tlog-checkpoint note>",
      "anchor": {                                 optional: the on-chain anchor covering it
        "chainId": 1, "contract": "0x..", "txHash": "0x..", "blockNumber": 7,
        "treeSize": 2048, "root": "0x<64 hex>", ["blockHash": "0x..",] ["logId": "0x.."]
      },
      "consistencyProof": "<base64 of the hashes concatenated>"  checkpoint -> anchored tree
    }

The compact encodings keep every bundle under 4 KB (the record is ~25% smaller than its
base64 form, a proof 3 bytes per hash smaller than a list). Version 1 bundles (payload as
base64, proofs as lists of base64 hashes) still parse.

``consistencyProof`` is present exactly when ``anchor`` is. The anchored tree must be at
least as large as the checkpoint's; when they are equal the proof is empty.
:func:`audit_chain.verify.verify_bundle` checks a bundle; :func:`build_bundle` makes one
from a log.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

from audit_chain._b64 import b64decode_strict
from audit_chain.checkpoint import open_checkpoint
from audit_chain.dsse import Envelope, envelope_from_json, parse_envelope
from audit_chain.errors import (
    InputTooLargeError,
    LogStateError,
    MalformedBundleError,
    MalformedEnvelopeError,
)
from audit_chain.log import TiledLog
from audit_chain.merkle import HASH_SIZE
from audit_chain.note import MAX_NOTE_BYTES, NoteVerifier
from audit_chain.statement import canonical_json

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "MAX_BUNDLE_BYTES",
    "Anchor",
    "ProofBundle",
    "build_bundle",
    "parse_bundle",
]

BUNDLE_MEDIA_TYPE = "application/vnd.cntrust.proof-bundle.v2+json"
BUNDLE_MEDIA_TYPE_V1 = "application/vnd.cntrust.proof-bundle.v1+json"
MAX_BUNDLE_BYTES = 128 * 1024
_MAX_PROOF_HASHES = 128
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HASH_HEX = re.compile(r"0x[0-9a-f]{64}")


def _fail(message: str, reason: str = "malformed") -> MalformedBundleError:
    return MalformedBundleError(message, reason=reason)


def _uint(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 63:
        raise _fail(f"{key} must be a non-negative integer", "bad_integer")
    return value


def _hex32(value: object, key: str) -> bytes:
    if not isinstance(value, str) or not _HASH_HEX.fullmatch(value):
        raise _fail(f"{key} must be 0x followed by 64 lowercase hex digits", "bad_hash")
    return bytes.fromhex(value[2:])


@dataclass(frozen=True)
class Anchor:
    """Where a tree head was anchored on an EVM chain."""

    chain_id: int
    contract: str
    tx_hash: str
    block_number: int
    tree_size: int
    root: bytes
    block_hash: str | None = None
    log_id: bytes | None = None

    def __post_init__(self) -> None:
        _uint(self.chain_id, "anchor.chainId")
        _uint(self.block_number, "anchor.blockNumber")
        _uint(self.tree_size, "anchor.treeSize")
        if not isinstance(self.contract, str) or not _ADDRESS.fullmatch(self.contract):
            raise _fail("anchor.contract must be a 0x-prefixed 20-byte address", "bad_address")
        _hex32(self.tx_hash, "anchor.txHash")
        if self.block_hash is not None:
            _hex32(self.block_hash, "anchor.blockHash")
        if len(self.root) != HASH_SIZE:
            raise _fail("anchor.root must be 32 bytes", "bad_hash")
        if self.log_id is not None and len(self.log_id) != HASH_SIZE:
            raise _fail("anchor.logId must be 32 bytes", "bad_hash")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "chainId": self.chain_id,
            "contract": self.contract,
            "txHash": self.tx_hash,
            "blockNumber": self.block_number,
            "treeSize": self.tree_size,
            "root": "0x" + self.root.hex(),
        }
        if self.block_hash is not None:
            out["blockHash"] = self.block_hash
        if self.log_id is not None:
            out["logId"] = "0x" + self.log_id.hex()
        return out

    @classmethod
    def from_json(cls, obj: object) -> Anchor:
        required = {"chainId", "contract", "txHash", "blockNumber", "treeSize", "root"}
        if not isinstance(obj, dict) or not required <= set(obj) <= required | {
            "blockHash",
            "logId",
        }:
            raise _fail("anchor has missing or unknown members")
        log_id = obj.get("logId")
        return cls(
            chain_id=_uint(obj["chainId"], "anchor.chainId"),
            contract=obj["contract"],
            tx_hash=obj["txHash"],
            block_number=_uint(obj["blockNumber"], "anchor.blockNumber"),
            tree_size=_uint(obj["treeSize"], "anchor.treeSize"),
            root=_hex32(obj["root"], "anchor.root"),
            block_hash=obj.get("blockHash"),
            log_id=None if log_id is None else _hex32(log_id, "anchor.logId"),
        )


def _proof_to_json(proof: tuple[bytes, ...]) -> str:
    return base64.b64encode(b"".join(proof)).decode()


def _proof_from_json(value: object, key: str) -> tuple[bytes, ...]:
    # Hash lengths are checked by the proof verification, which names its own step: a
    # concatenation whose length is not a multiple of 32 ends in a short hash.
    if isinstance(value, str):
        if len(value) > 4 * (_MAX_PROOF_HASHES * HASH_SIZE // 3 + 1):
            raise _fail(f"{key} is longer than {_MAX_PROOF_HASHES} hashes", "bad_proof")
        raw = b64decode_strict(value, key, MalformedBundleError, "bad_proof")
        return tuple(raw[i : i + HASH_SIZE] for i in range(0, len(raw), HASH_SIZE))
    if not isinstance(value, list) or len(value) > _MAX_PROOF_HASHES:
        raise _fail(f"{key} must be a list of at most {_MAX_PROOF_HASHES} hashes", "bad_proof")
    out: list[bytes] = []
    for item in value:
        if not isinstance(item, str) or len(item) > 88:
            raise _fail(f"{key} holds a value that is not a short base64 string", "bad_proof")
        out.append(b64decode_strict(item, f"a {key} hash", MalformedBundleError, "bad_proof"))
    return tuple(out)


@dataclass(frozen=True)
class ProofBundle:
    """Everything needed to verify one entry offline (see the module docstring)."""

    envelope: Envelope
    leaf_index: int
    inclusion_proof: tuple[bytes, ...]
    checkpoint: bytes
    anchor: Anchor | None = None
    consistency_proof: tuple[bytes, ...] = ()

    @property
    def entry(self) -> bytes:
        """The log entry: the canonical bytes of the DSSE envelope."""
        return self.envelope.canonical_bytes()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "record": _record_to_json(self.envelope),
            "leafIndex": self.leaf_index,
            "inclusionProof": _proof_to_json(self.inclusion_proof),
            "checkpoint": self.checkpoint.decode("utf-8"),
        }
        if self.anchor is not None:
            out["anchor"] = self.anchor.to_json()
            out["consistencyProof"] = _proof_to_json(self.consistency_proof)
        return out

    def to_bytes(self) -> bytes:
        """Canonical JSON encoding of the bundle."""
        return json.dumps(
            self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()


def _record_to_json(envelope: Envelope) -> dict[str, Any]:
    record = envelope.to_json()
    try:
        payload = json.loads(envelope.payload)
    except (ValueError, RecursionError):
        return record
    if isinstance(payload, dict) and canonical_json(payload) == envelope.payload:
        record["payload"] = payload  # re-encodes to exactly the signed bytes
    return record


def _record_from_json(record: object) -> object:
    if isinstance(record, dict) and isinstance(record.get("payload"), dict):
        try:
            payload = canonical_json(record["payload"])
        except (ValueError, TypeError, RecursionError) as exc:
            raise _fail("record payload cannot be encoded", "bad_record") from exc
        return {**record, "payload": base64.b64encode(payload).decode()}
    return record


def parse_bundle(data: bytes, *, max_bytes: int = MAX_BUNDLE_BYTES) -> ProofBundle:
    """Parse bundle bytes, checking the size first.

    Raises:
        InputTooLargeError: over ``max_bytes``.
        MalformedBundleError: not JSON, wrong media type, missing/unknown members, bad
            types, proofs that are not lists of base64 SHA-256 hashes, an anchor without a
            consistency proof or the reverse, a record that is not a DSSE envelope.
    """
    if len(data) > max_bytes:
        raise InputTooLargeError("proof bundle", size_bytes=len(data), limit_bytes=max_bytes)
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise _fail("bundle is not JSON", "not_json") from exc
    if not isinstance(obj, dict):
        raise _fail("bundle must be a JSON object")
    required = {"mediaType", "record", "leafIndex", "inclusionProof", "checkpoint"}
    if not required <= set(obj) <= required | {"anchor", "consistencyProof"}:
        raise _fail("bundle has missing or unknown members", "bad_members")
    if obj["mediaType"] not in (BUNDLE_MEDIA_TYPE, BUNDLE_MEDIA_TYPE_V1):
        raise _fail(f"mediaType is not {BUNDLE_MEDIA_TYPE}", "bad_media_type")
    if ("anchor" in obj) != ("consistencyProof" in obj):
        raise _fail("anchor and consistencyProof go together", "bad_members")
    checkpoint = obj["checkpoint"]
    if not isinstance(checkpoint, str) or len(checkpoint.encode()) > MAX_NOTE_BYTES:
        raise _fail("checkpoint must be a signed note string", "bad_checkpoint")
    try:
        envelope = envelope_from_json(_record_from_json(obj["record"]))
    except MalformedEnvelopeError as exc:
        raise _fail(f"record is not a DSSE envelope: {exc}", "bad_record") from exc
    anchor = Anchor.from_json(obj["anchor"]) if "anchor" in obj else None
    return ProofBundle(
        envelope=envelope,
        leaf_index=_uint(obj["leafIndex"], "leafIndex"),
        inclusion_proof=_proof_from_json(obj["inclusionProof"], "inclusionProof"),
        checkpoint=checkpoint.encode(),
        anchor=anchor,
        consistency_proof=_proof_from_json(obj.get("consistencyProof", []), "consistencyProof"),
    )


def build_bundle(
    log: TiledLog,
    leaf_index: int,
    checkpoint_note: bytes,
    verifier: NoteVerifier,
    *,
    anchor: Anchor | None = None,
) -> ProofBundle:
    """Assemble the bundle of entry ``leaf_index`` against a published checkpoint.

    The checkpoint is verified with the log's ``verifier``; the anchor (if any) must cover
    a tree at least as large as the checkpoint's and no larger than the log.

    Raises:
        LogStateError: the index is not in the checkpoint's tree, or the anchor's tree
            is smaller than the checkpoint's or larger than the log.
        MalformedEnvelopeError: the stored entry is not a canonical DSSE envelope.
        audit_chain.errors.NoteVerificationError, MalformedCheckpointError: bad checkpoint.
    """
    cp = open_checkpoint(checkpoint_note, verifier)
    if not 0 <= leaf_index < cp.tree_size:
        raise LogStateError(f"entry {leaf_index} is not in the checkpoint of size {cp.tree_size}")
    envelope = parse_envelope(log.read_entry(leaf_index))
    proof = tuple(log.inclusion_proof(leaf_index, cp.tree_size))
    consistency: tuple[bytes, ...] = ()
    if anchor is not None:
        if anchor.tree_size < cp.tree_size:
            raise LogStateError(
                f"anchor covers {anchor.tree_size} entries, the checkpoint {cp.tree_size}"
            )
        consistency = tuple(log.consistency_proof(cp.tree_size, anchor.tree_size))
    return ProofBundle(envelope, leaf_index, proof, checkpoint_note, anchor, consistency)
