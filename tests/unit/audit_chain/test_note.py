"""C2SP signed notes: the Go sumdb/note known answer, key formats, and every refusal."""

from __future__ import annotations

import base64
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit_chain.errors import (
    ForgedSignatureError,
    InputTooLargeError,
    MalformedKeyError,
    MalformedNoteError,
    UnknownKeyError,
)
from audit_chain.note import NoteSigner, NoteVerifier, key_id, open_note, sign_note

from .helpers import seeded

# golang.org/x/mod/sumdb/note example (note.go documentation and note_test.go).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann "
    + "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFY"
    + "C2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()


def test_go_known_answer_signs_byte_for_byte() -> None:
    signer = NoteSigner.from_skey(GO_SKEY)
    assert signer.vkey == GO_VKEY
    assert signer.key_id == 0xC74F20A3
    assert sign_note(GO_TEXT, [signer]) == GO_NOTE
    assert NoteSigner.from_skey(signer.skey).vkey == GO_VKEY


def test_signatures_are_those_of_pyca_cryptography() -> None:
    # NoteSigner signs with libsodium; Ed25519 is deterministic, so every signature must be
    # byte-identical to pyca/cryptography's for the same seed and message, and verify
    rng = random.Random(3)
    for n in range(40):
        seed = rng.randbytes(32)
        signer = NoteSigner.generate("k", random=lambda _, seed=seed: seed)
        reference = Ed25519PrivateKey.from_private_bytes(seed)
        for message in (b"", b"\x00", rng.randbytes(n * 97), rng.randbytes(70_000)):
            sig = signer.sign(message)
            assert sig == reference.sign(message)
            assert signer.verifier.verify(message, sig)


def test_go_known_answer_opens() -> None:
    note = open_note(GO_NOTE, [NoteVerifier.from_vkey(GO_VKEY)])
    assert note.text == GO_TEXT
    assert [s.name for s in note.signatures] == ["PeterNeumann"]


def test_key_id_follows_the_spec() -> None:
    v = NoteVerifier.from_vkey(GO_VKEY)
    assert key_id(v.name, v.public_key) == 0xC74F20A3


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # uppercase hex
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space
        "PeterNeumann+c74f20a3+AhpcQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # bad base64 len
        "PeterNeumann+c74f20a3+AhpC2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # alg 0x02
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # truncated
        "x+" * 300,
    ],
)
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(MalformedKeyError):
        NoteVerifier.from_vkey(vkey)


def test_malformed_signer_keys_are_refused() -> None:
    for skey in ["", "PRIVATE+KEY+x", GO_SKEY.replace("c74f20a3", "00000000"), GO_SKEY[:-2]]:
        with pytest.raises(MalformedKeyError):
            NoteSigner.from_skey(skey)


def test_forged_signature_is_refused() -> None:
    tampered = GO_NOTE.replace(b"cryptography", b"cryptographY")
    with pytest.raises(ForgedSignatureError) as info:
        open_note(tampered, [NoteVerifier.from_vkey(GO_VKEY)])
    assert info.value.key_name == "PeterNeumann"
    assert info.value.key_id == 0xC74F20A3


def test_extra_blank_line_changes_the_signed_text() -> None:
    # The text ends at the last blank line, so an inserted one alters what was signed.
    moved = GO_NOTE.replace(b"\n\xe2\x80\x94", b"\n\n\xe2\x80\x94")
    with pytest.raises(ForgedSignatureError):
        open_note(moved, [NoteVerifier.from_vkey(GO_VKEY)])


def test_signature_by_another_key_is_unknown() -> None:
    other = seeded("other")
    with pytest.raises(UnknownKeyError) as info:
        open_note(GO_NOTE, [other.verifier])
    assert info.value.key_names == ("PeterNeumann",)


def test_same_name_other_key_is_ignored_not_trusted() -> None:
    impostor = NoteSigner.generate("PeterNeumann", random=lambda n: b"\x01" * n)
    note = sign_note(GO_TEXT, [impostor])
    with pytest.raises(UnknownKeyError):
        open_note(note, [NoteVerifier.from_vkey(GO_VKEY)])


def test_unknown_signatures_are_ignored_when_a_known_one_verifies() -> None:
    log, witness = seeded("log"), seeded("witness")
    note = sign_note("origin\n1\n" + "A" * 43 + "=\n", [witness, log])
    opened = open_note(note, [log.verifier])
    assert [s.name for s in opened.signatures] == [log.name]
    assert [s.name for s in opened.unverified] == [witness.name]


@pytest.mark.parametrize(
    "note",
    [
        b"",
        b"no signature block\n",
        b"text\n\n",
        b"text\n\n\xe2\x80\x94 PeterNeumann x08go\n",  # signature too short / bad base64
        GO_NOTE.replace(b"\xe2\x80\x94 ", b"- "),
        GO_NOTE.replace(b"PeterNeumann x08", b" x08"),  # empty key name
        GO_NOTE.replace(b"PeterNeumann x08", b"Peter+Neumann x08"),  # plus in the key name
        GO_NOTE[:-1],  # no final newline
        GO_NOTE.replace(b"If", b"I\x01f"),  # control character
        GO_NOTE.replace(b"If", b"\xff\xfe"),  # not UTF-8
        GO_NOTE.replace(b"PeterNeumann x08", b"PeterNeumann  x08"),
        GO_NOTE.replace(b"AM=\n", b"AM\n"),  # base64 without padding
    ],
)
def test_malformed_notes_are_refused(note: bytes) -> None:
    with pytest.raises(MalformedNoteError):
        open_note(note, [NoteVerifier.from_vkey(GO_VKEY)])


def test_oversize_note_is_refused_before_parsing() -> None:
    with pytest.raises(InputTooLargeError) as info:
        open_note(b"\xff" * 20_000, [NoteVerifier.from_vkey(GO_VKEY)])
    assert info.value.size_bytes == 20_000


def test_too_many_signatures_are_refused() -> None:
    blob = base64.b64encode(b"\x00" * 68).decode()
    lines = "".join(f"\u2014 w{i} {blob}\n" for i in range(101))
    with pytest.raises(MalformedNoteError):
        open_note((GO_TEXT + "\n" + lines).encode(), [NoteVerifier.from_vkey(GO_VKEY)])


def test_sign_refuses_text_without_final_newline() -> None:
    with pytest.raises(MalformedNoteError):
        sign_note("no newline", [seeded("log")])
