"""C2SP signed-note with Ed25519 signatures (signature type 0x01).

A note is UTF-8 text ending in a newline, a blank line, then signature lines
``— <key name> base64(key ID || signature)``. The key ID is
``SHA-256(key name || 0x0A || 0x01 || public key)[:4]`` read big-endian. Keys are written
in the golang.org/x/mod/sumdb/note text forms::

    verifier key:  <name>+<hex key ID>+<base64(0x01 || 32-byte public key)>
    signer key:    PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || 32-byte seed)>

Opening a note (:func:`open_note`) checks size first, then format, then signatures:
signatures by unknown keys (name *and* key ID must match) are ignored; a signature by a
known key that fails is a :class:`~audit_chain.errors.ForgedSignatureError`; a note with
no verified signature is an :class:`~audit_chain.errors.UnknownKeyError`.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import nacl.bindings
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit_chain._b64 import b64decode_strict
from audit_chain.errors import (
    ForgedSignatureError,
    InputTooLargeError,
    MalformedKeyError,
    MalformedNoteError,
    UnknownKeyError,
)

__all__ = [
    "MAX_NOTE_BYTES",
    "Note",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "key_id",
    "open_note",
    "sign_note",
]

ALG_ED25519 = 0x01
MAX_NOTE_BYTES = 16 * 1024  # ample for a checkpoint with 16+ Ed25519 signatures
MAX_SIGNATURES = 100
_SIG_PREFIX = "\u2014 "  # em dash, space


def is_valid_key_name(name: str) -> bool:
    """Key names are non-empty, with no Unicode spaces and no ``+``."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_id(name: str, public_key: bytes) -> int:
    """Signed-note key ID of an Ed25519 key: first 4 bytes of SHA-256(name||0x0A||0x01||key)."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted Ed25519 verifier key for signed notes."""

    name: str
    key_id: int
    public_key: bytes

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse ``<name>+<hex key ID>+<base64(0x01 || public key)>``.

        Raises:
            MalformedKeyError: wrong shape, algorithm, key length or key ID.
        """
        vkey = vkey.strip()
        if len(vkey) > 512:
            raise MalformedKeyError("verifier key too long", reason="oversize")
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise MalformedKeyError("verifier key is not <name>+<hex id>+<base64 key>")
        name, hex_id, b64 = parts
        if not is_valid_key_name(name):
            raise MalformedKeyError(f"invalid key name {name!r}")
        if len(hex_id) != 8 or any(c not in "0123456789abcdef" for c in hex_id):
            raise MalformedKeyError("key ID must be 8 lowercase hex digits")
        raw = b64decode_strict(b64, "verifier key", MalformedKeyError, "bad_base64")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise MalformedKeyError("verifier key is not an Ed25519 (0x01) key", reason="bad_alg")
        kid = key_id(name, raw[1:])
        if kid != int(hex_id, 16):
            raise MalformedKeyError("key ID does not match the key", reason="bad_key_id")
        try:
            Ed25519PublicKey.from_public_bytes(raw[1:])
        except ValueError as exc:
            raise MalformedKeyError("invalid Ed25519 public key", reason="bad_key") from exc
        return cls(name, kid, raw[1:])

    @classmethod
    def from_public_key(cls, name: str, public_key: Ed25519PublicKey) -> NoteVerifier:
        if not is_valid_key_name(name):
            raise MalformedKeyError(f"invalid key name {name!r}")
        raw = _raw_public(public_key)
        return cls(name, key_id(name, raw), raw)

    @property
    def vkey(self) -> str:
        """The verifier key in text form."""
        b64 = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{b64}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Raw Ed25519 check (internal building block; callers use :func:`open_note`)."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class NoteSigner:
    """An Ed25519 signer for signed notes (and, reused, for DSSE envelopes)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not is_valid_key_name(name):
            raise MalformedKeyError(f"invalid key name {name!r}")
        self.name = name
        self._key = private_key
        # libsodium signs the same (Ed25519 is deterministic, RFC 8032) in about 60% of the
        # time: every log entry and checkpoint is signed on the scheduler's committer thread
        _, self._sodium_key = nacl.bindings.crypto_sign_seed_keypair(
            private_key.private_bytes_raw()
        )
        self.verifier = NoteVerifier.from_public_key(name, private_key.public_key())

    @classmethod
    def generate(cls, name: str, random: Callable[[int], bytes] | None = None) -> NoteSigner:
        """A fresh key; ``random(32)`` supplies the seed when given (tests)."""
        if random is None:
            return cls(name, Ed25519PrivateKey.generate())
        return cls(name, Ed25519PrivateKey.from_private_bytes(random(32)))

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        """Parse ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>``.

        Raises:
            MalformedKeyError: wrong shape, algorithm, seed length or key ID.
        """
        skey = skey.strip()
        if len(skey) > 512:
            raise MalformedKeyError("signer key too long", reason="oversize")
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise MalformedKeyError("signer key is not PRIVATE+KEY+<name>+<id>+<key>")
        _, _, name, hex_id, b64 = parts
        raw = b64decode_strict(b64, "signer key", MalformedKeyError, "bad_base64")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise MalformedKeyError("signer key is not an Ed25519 (0x01) key", reason="bad_alg")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if f"{signer.key_id:08x}" != hex_id:
            raise MalformedKeyError("key ID does not match the key", reason="bad_key_id")
        return signer

    @property
    def key_id(self) -> int:
        return self.verifier.key_id

    @property
    def vkey(self) -> str:
        return self.verifier.vkey

    @property
    def skey(self) -> str:
        """The signer key in text form. Secret: store it like a private key."""
        seed = self._key.private_bytes_raw()
        b64 = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{b64}"

    def sign(self, message: bytes) -> bytes:
        """Raw Ed25519 signature over ``message``."""
        signed = nacl.bindings.crypto_sign(message, self._sodium_key)  # signature || message
        return signed[: nacl.bindings.crypto_sign_BYTES]


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, key ID and the base64 of (key ID || signature)."""

    name: str
    key_id: int
    base64: str


@dataclass(frozen=True)
class Note:
    """An opened note: its text and the signatures that verified / were by unknown keys."""

    text: str
    signatures: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedNoteError("note text must end in a newline")
    for c in text:
        if c < " " and c != "\n":
            raise MalformedNoteError("note text contains a control character")


def sign_note(text: str, signers: Sequence[NoteSigner]) -> bytes:
    """Sign ``text`` with each signer and return the signed note bytes.

    Raises:
        MalformedNoteError: the text does not end in a newline or has control characters.
    """
    _check_text(text)
    if not signers:
        raise MalformedNoteError("a note needs at least one signature")
    lines = [text, "\n"]
    data = text.encode()
    for s in signers:
        blob = struct.pack(">I", s.key_id) + s.sign(data)
        lines.append(f"{_SIG_PREFIX}{s.name} {base64.b64encode(blob).decode()}\n")
    return "".join(lines).encode()


def open_note(
    note: bytes, verifiers: Iterable[NoteVerifier], *, max_bytes: int = MAX_NOTE_BYTES
) -> Note:
    """Open a signed note with the trusted ``verifiers``.

    Steps: (1) size <= ``max_bytes``; (2) valid UTF-8, no control characters but newline;
    (3) split text and signature block at the last blank line; (4) parse each signature
    line; (5) verify every signature by a known key (name and key ID), ignore the others.

    Raises:
        InputTooLargeError: the note is over ``max_bytes``.
        MalformedNoteError: the note does not follow the signed-note format.
        ForgedSignatureError: a signature by a trusted key does not verify.
        UnknownKeyError: no signature by a trusted key.
    """
    # 1. size
    if len(note) > max_bytes:
        raise InputTooLargeError("signed note", size_bytes=len(note), limit_bytes=max_bytes)
    # 2. encoding
    try:
        msg = note.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedNoteError("note is not valid UTF-8") from exc
    for c in msg:
        if c < " " and c != "\n":
            raise MalformedNoteError("note contains a control character")
    # 3. text / signatures split at the last blank line
    split = msg.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("note has no signature block")
    text, sig_block = msg[: split + 1], msg[split + 2 :]
    if not sig_block or not sig_block.endswith("\n"):
        raise MalformedNoteError("signature block must end in a newline")
    known = {(v.name, v.key_id): v for v in verifiers}
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError("too many signatures", reason="too_many_signatures")
    data = text.encode()
    for line in lines:
        # 4. signature line
        if not line.startswith(_SIG_PREFIX):
            raise MalformedNoteError("signature line does not start with an em dash")
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not is_valid_key_name(name) or not b64:
            raise MalformedNoteError("malformed signature line")
        blob = b64decode_strict(b64, "signature", MalformedNoteError, "bad_base64")
        if len(blob) < 5:
            raise MalformedNoteError("signature too short")
        kid = int.from_bytes(blob[:4], "big")
        sig = NoteSignature(name, kid, b64)
        verifier = known.get((name, kid))
        if verifier is None:
            unverified.append(sig)
            continue
        # 5. signature by a trusted key
        if (name, kid) in seen:
            continue
        seen.add((name, kid))
        if not verifier.verify(data, blob[4:]):
            raise ForgedSignatureError(
                f"signature by {name}+{kid:08x} does not verify", key_name=name, key_id=kid
            )
        verified.append(sig)
    if not verified:
        raise UnknownKeyError(
            "no signature by a trusted key",
            key_names=tuple(sorted({s.name for s in unverified})),
        )
    return Note(text, tuple(verified), tuple(unverified))
