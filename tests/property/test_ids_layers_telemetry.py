"""Hypothesis: the telemetry parser never fails with anything but TelemetryParseError, and
valid records round-trip through sign/encode/parse/verify."""

from __future__ import annotations

import contextlib
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ids.layers import (
    AuthFailure,
    FileWrite,
    ListeningSocket,
    ProcessSample,
    TaskUsage,
    TelemetryParseError,
    TelemetryRecord,
    encode_signed_telemetry,
    parse_signed_telemetry,
    sign_telemetry,
    verify_telemetry,
)

KEY = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
ints = st.integers(min_value=0, max_value=2**63 - 1)
text = st.text(max_size=40)

records = st.builds(
    TelemetryRecord,
    node_id=text,
    node_ip=st.sampled_from(["10.0.0.1", "2001:db8::1"]),
    seq=ints,
    collected_at_ms=ints,
    attested_digest=text,
    measurement_digest=text,
    listening=st.lists(st.builds(ListeningSocket, text, text, ints, ints, ints), max_size=3).map(
        tuple
    ),
    processes=st.lists(
        st.builds(ProcessSample, ints, ints, text, text, ints, ints), max_size=3
    ).map(tuple),
    tasks=st.lists(
        st.builds(
            TaskUsage,
            text,
            st.sampled_from(["running", "ended"]),
            text,
            ints,
            ints,
            ints,
            ints,
            ints,
            ints,
            st.lists(ints, max_size=3).map(tuple),
            st.lists(ints, max_size=3).map(tuple),
        ),
        max_size=2,
    ).map(tuple),
    file_writes=st.lists(st.builds(FileWrite, text, ints, text), max_size=3).map(tuple),
    auth_failures=st.lists(st.builds(AuthFailure, ints, text, text, text), max_size=3).map(tuple),
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(records)
def test_valid_records_round_trip_and_verify(record: TelemetryRecord) -> None:
    signed = sign_telemetry(record, KEY)
    parsed = parse_signed_telemetry(encode_signed_telemetry(signed))
    assert parsed == signed
    verify_telemetry(parsed, KEY.public_key())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_only_raise_parse_error(data: bytes) -> None:
    with contextlib.suppress(TelemetryParseError):
        parse_signed_telemetry(data)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_only_raises_parse_error(doc: object) -> None:
    with contextlib.suppress(TelemetryParseError):
        parse_signed_telemetry(json.dumps(doc).encode())


@settings(max_examples=200, deadline=None)
@given(records, st.sampled_from(["telemetry", "alg", "signature"]), json_values)
def test_mutated_envelopes_only_raise_parse_error(
    record: TelemetryRecord, field: str, value: object
) -> None:
    doc = json.loads(encode_signed_telemetry(sign_telemetry(record, KEY)))
    doc[field] = value
    with contextlib.suppress(TelemetryParseError):
        parse_signed_telemetry(json.dumps(doc).encode())
