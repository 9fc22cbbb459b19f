"""DSSE (Dead Simple Signing Envelope) v1 with Ed25519 signatures.

The signature covers the pre-authentication encoding::

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

(LEN is the ASCII decimal byte length). Envelopes are JSON objects
``{"payload": b64, "payloadType": str, "signatures": [{"keyid": str, "sig": b64}]}``.

Invariant: a log entry is the *canonical* envelope bytes - compact JSON with sorted keys
and no other members - so the same envelope always has the same leaf hash; parsing
refuses any non-canonical encoding. Key IDs are ``<name>+<hex key ID>``, the first two
fields of the signer's signed-note verifier key.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from audit_chain._b64 import b64decode_strict
from audit_chain.errors import (
    EnvelopeVerificationError,
    InputTooLargeError,
    MalformedEnvelopeError,
)
from audit_chain.note import NoteSigner, NoteVerifier

__all__ = [
    "INTOTO_PAYLOAD_TYPE",
    "MAX_ENVELOPE_BYTES",
    "Envelope",
    "EnvelopeSignature",
    "dsse_keyid",
    "envelope_from_json",
    "pae",
    "parse_envelope",
    "sign_envelope",
    "verify_envelope",
]

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_ENVELOPE_BYTES = 0xFFFF  # an entry must fit a tlog-tiles entry bundle
_MAX_SIGNATURES = 8
_str = json.encoder.encode_basestring_ascii  # json.dumps(ensure_ascii=True)'s string encoder


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


def dsse_keyid(verifier: NoteVerifier) -> str:
    """The DSSE ``keyid`` for a signed-note key: ``<name>+<hex key ID>``."""
    return f"{verifier.name}+{verifier.key_id:08x}"


@dataclass(frozen=True)
class EnvelopeSignature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope."""

    payload: bytes
    payload_type: str
    signatures: tuple[EnvelopeSignature, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "payload": base64.b64encode(self.payload).decode(),
            "payloadType": self.payload_type,
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()} for s in self.signatures
            ],
        }

    def canonical_bytes(self) -> bytes:
        """Compact, key-sorted JSON: the exact bytes of the log entry.

        The bytes of ``json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"),
        ensure_ascii=True)``, written out for the envelope's fixed shape (members already in
        sorted order, strings escaped by that same encoder) at a third of the cost."""
        sigs = ",".join(
            '{"keyid":' + _str(s.keyid) + ',"sig":' + _str(base64.b64encode(s.sig).decode()) + "}"
            for s in self.signatures
        )
        payload = _str(base64.b64encode(self.payload).decode())
        text = '{"payload":' + payload + ',"payloadType":' + _str(self.payload_type)
        return (text + ',"signatures":[' + sigs + "]}").encode()


def _b64(value: object, what: str) -> bytes:
    return b64decode_strict(value, what, MalformedEnvelopeError, "malformed")


def envelope_from_json(obj: object) -> Envelope:
    """Build an envelope from a decoded JSON object, refusing unknown or missing members.

    Raises:
        MalformedEnvelopeError: wrong members or types, bad base64, no signatures.
    """
    if not isinstance(obj, dict) or set(obj) != {"payload", "payloadType", "signatures"}:
        raise MalformedEnvelopeError("envelope must have exactly payload/payloadType/signatures")
    payload = _b64(obj["payload"], "payload")
    ptype = obj["payloadType"]
    if not isinstance(ptype, str) or not ptype or len(ptype) > 128 or not ptype.isascii():
        raise MalformedEnvelopeError("payloadType must be a short ASCII string")
    sigs = obj["signatures"]
    if not isinstance(sigs, list) or not 1 <= len(sigs) <= _MAX_SIGNATURES:
        raise MalformedEnvelopeError("signatures must be a list of 1 to 8 signatures")
    out: list[EnvelopeSignature] = []
    for s in sigs:
        if not isinstance(s, dict) or set(s) != {"keyid", "sig"}:
            raise MalformedEnvelopeError("a signature must have exactly keyid and sig")
        keyid = s["keyid"]
        if not isinstance(keyid, str) or len(keyid) > 256 or not keyid.isascii():
            raise MalformedEnvelopeError("keyid must be a short ASCII string")
        out.append(EnvelopeSignature(keyid, _b64(s["sig"], "sig")))
    return Envelope(payload, ptype, tuple(out))


def parse_envelope(data: bytes, *, max_bytes: int = MAX_ENVELOPE_BYTES) -> Envelope:
    """Parse canonical envelope bytes (a log entry).

    Raises:
        InputTooLargeError: over ``max_bytes``.
        MalformedEnvelopeError: not JSON, not an envelope, or not the canonical encoding.
    """
    if len(data) > max_bytes:
        raise InputTooLargeError("DSSE envelope", size_bytes=len(data), limit_bytes=max_bytes)
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise MalformedEnvelopeError("envelope is not JSON") from exc
    env = envelope_from_json(obj)
    if env.canonical_bytes() != data:
        raise MalformedEnvelopeError("envelope is not canonically encoded", reason="non_canonical")
    return env


def sign_envelope(payload: bytes, payload_type: str, signer: NoteSigner) -> Envelope:
    """Sign ``payload`` into a DSSE envelope with one Ed25519 signature."""
    sig = signer.sign(pae(payload_type, payload))
    return Envelope(payload, payload_type, (EnvelopeSignature(dsse_keyid(signer.verifier), sig),))


def verify_envelope(envelope: Envelope, verifier: NoteVerifier) -> None:
    """Verify that ``verifier`` signed the envelope.

    Every signature with the verifier's key ID must verify, and there must be one.

    Raises:
        EnvelopeVerificationError: ``reason`` ``unknown_key`` (no signature by this key) or
            ``bad_signature``.
    """
    keyid = dsse_keyid(verifier)
    mine = [s for s in envelope.signatures if s.keyid == keyid]
    if not mine:
        raise EnvelopeVerificationError(f"no signature by {keyid}", reason="unknown_key")
    message = pae(envelope.payload_type, envelope.payload)
    for s in mine:
        if not verifier.verify(message, s.sig):
            raise EnvelopeVerificationError(
                f"signature by {keyid} does not verify", reason="bad_signature"
            )
