"""Hypothesis fuzzing: every outside-input parser raises only AuditChainError subclasses."""

from __future__ import annotations

import base64
import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from audit_chain.bundle import parse_bundle
from audit_chain.checkpoint import parse_checkpoint
from audit_chain.dsse import parse_envelope
from audit_chain.errors import AuditChainError, BundleVerificationError
from audit_chain.monitor import MonitorState
from audit_chain.note import NoteVerifier, open_note
from audit_chain.statement import parse_statement
from audit_chain.tiles import parse_entry_bundle, parse_tile_path
from audit_chain.verify import verify_bundle

VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
VERIFIER = NoteVerifier.from_vkey(VKEY)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)


def _never_crashes(fn: object, data: object) -> None:
    assert callable(fn)
    with contextlib.suppress(AuditChainError):
        fn(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_bytes_parsers(data: bytes) -> None:
    _never_crashes(lambda d: open_note(d, [VERIFIER]), data)
    _never_crashes(parse_envelope, data)
    _never_crashes(parse_statement, data)
    _never_crashes(parse_bundle, data)
    _never_crashes(parse_entry_bundle, data)
    _never_crashes(MonitorState.from_bytes, data)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_text_parsers(text: str) -> None:
    _never_crashes(parse_checkpoint, text)
    _never_crashes(parse_tile_path, text)
    _never_crashes(NoteVerifier.from_vkey, text)
    _never_crashes(lambda t: open_note(t.encode(), [VERIFIER]), text)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_json_shaped_inputs(value: object) -> None:
    data = json.dumps(value).encode()
    _never_crashes(parse_bundle, data)
    _never_crashes(parse_envelope, data)
    _never_crashes(parse_statement, data)
    wrapped = {
        "mediaType": "application/vnd.cntrust.proof-bundle.v1+json",
        "record": value,
        "leafIndex": 0,
        "inclusionProof": [],
        "checkpoint": "x",
        "anchor": value,
        "consistencyProof": [base64.b64encode(b"\x00" * 32).decode()],
    }
    _never_crashes(parse_bundle, json.dumps(wrapped).encode())


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_verify_bundle_only_raises_its_error(data: bytes) -> None:
    try:
        verify_bundle(data, VKEY)
    except BundleVerificationError:
        pass
    else:
        raise AssertionError("random bytes verified")
