"""Telemetry records: canonical form, Ed25519 signing, strict parsing, each verify step."""

from __future__ import annotations

import dataclasses
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ids.layers import (
    AuthFailure,
    FileWrite,
    ListeningSocket,
    ProcessSample,
    SignedTelemetry,
    TaskUsage,
    TelemetryParseError,
    TelemetryRecord,
    TelemetryVerificationError,
    encode_signed_telemetry,
    parse_signed_telemetry,
    sign_telemetry,
    verify_telemetry,
)
from ids.layers.telemetry import (
    MAX_TELEMETRY_BYTES,
    canonical_telemetry,
    record_from_dict,
    record_to_dict,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def full_record(**kw: object) -> TelemetryRecord:
    base: dict = dict(
        node_id="node-01",
        node_ip="10.0.0.11",
        seq=7,
        collected_at_ms=1_767_225_600_000,
        attested_digest="sha256:" + "a" * 64,
        measurement_digest="sha256:" + "a" * 64,
        listening=(ListeningSocket("tcp", "0.0.0.0", 7443, 1234, 99),),
        processes=(ProcessSample(4242, 1, "worker", "task-1", 1500, 10_000_000),),
        tasks=(
            TaskUsage(
                "task-1",
                "running",
                "/var/lib/cntrust/scratch/task-1",
                1000,
                1 << 30,
                60_000,
                30_000,
                1 << 20,
                512,
                (4242,),
                (8080,),
            ),
        ),
        file_writes=(FileWrite("task-1", 4242, "/var/lib/cntrust/scratch/task-1/out.bin"),),
        auth_failures=(AuthFailure(1_767_225_599_000, "203.0.113.9", "admin", "bad password"),),
    )
    base.update(kw)
    return TelemetryRecord(**base)


def test_dict_round_trip_and_canonical_bytes_are_sorted_compact() -> None:
    rec = full_record()
    assert record_from_dict(record_to_dict(rec)) == rec
    canon = canonical_telemetry(rec)
    assert canon == json.dumps(record_to_dict(rec), sort_keys=True, separators=(",", ":")).encode()
    assert b" " not in canon.replace(b"bad password", b"")


def test_sign_encode_parse_verify_round_trip() -> None:
    signed = sign_telemetry(full_record(), KEY)
    wire = encode_signed_telemetry(signed)
    parsed = parse_signed_telemetry(wire)
    assert parsed == signed
    verify_telemetry(
        parsed,
        KEY.public_key(),
        expected_node_id="node-01",
        last_seq=6,
        now_ms=1_767_225_601_000,
        max_age_ms=5_000,
    )


def test_signature_is_deterministic_and_covers_every_field() -> None:
    assert (
        sign_telemetry(full_record(), KEY).signature == sign_telemetry(full_record(), KEY).signature
    )
    signed = sign_telemetry(full_record(), KEY)
    tampered = dataclasses.replace(
        signed, record=full_record(measurement_digest="sha256:" + "b" * 64)
    )
    with pytest.raises(TelemetryVerificationError) as err:
        verify_telemetry(tampered, KEY.public_key())
    assert err.value.step == "signature"


def test_step1_rejects_other_algorithms_and_key_types() -> None:
    signed = sign_telemetry(full_record(), KEY)
    with pytest.raises(TelemetryVerificationError) as err:
        verify_telemetry(dataclasses.replace(signed, alg="ES256"), KEY.public_key())
    assert err.value.step == "alg" and err.value.calculated == "ES256"
    ec_key = generate_private_key(SECP256R1()).public_key()
    with pytest.raises(TelemetryVerificationError) as err:
        verify_telemetry(signed, ec_key)  # type: ignore[arg-type]
    assert err.value.step == "alg"


def test_step2_signature_length() -> None:
    signed = sign_telemetry(full_record(), KEY)
    with pytest.raises(TelemetryVerificationError) as err:
        verify_telemetry(
            dataclasses.replace(signed, signature=signed.signature[:63]), KEY.public_key()
        )
    assert err.value.step == "signature_length" and err.value.calculated == 63


def test_step3_wrong_key() -> None:
    signed = sign_telemetry(full_record(), KEY)
    other = Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    with pytest.raises(TelemetryVerificationError) as err:
        verify_telemetry(signed, other)
    assert err.value.step == "signature"


def test_step4_node_binding() -> None:
    signed = sign_telemetry(full_record(), KEY)
    with pytest.raises(TelemetryVerificationError) as err:
        verify_telemetry(signed, KEY.public_key(), expected_node_id="node-02")
    assert (err.value.expected, err.value.calculated) == ("node-02", "node-01")


def test_step5_replay() -> None:
    signed = sign_telemetry(full_record(), KEY)
    with pytest.raises(TelemetryVerificationError) as err:
        verify_telemetry(signed, KEY.public_key(), last_seq=7)
    assert err.value.step == "seq"


def test_step6_freshness() -> None:
    signed = sign_telemetry(full_record(), KEY)
    with pytest.raises(TelemetryVerificationError) as err:
        verify_telemetry(signed, KEY.public_key(), now_ms=1_767_225_700_000, max_age_ms=5_000)
    assert err.value.step == "freshness"
    with pytest.raises(TelemetryVerificationError):
        verify_telemetry(signed, KEY.public_key(), now_ms=1_767_225_500_000, max_age_ms=5_000)


def _wire_dict() -> dict:
    return json.loads(encode_signed_telemetry(sign_telemetry(full_record(), KEY)))


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d.update(extra=1), ""),
        (lambda d: d["telemetry"].update(surprise=True), ""),
        (lambda d: d["telemetry"].pop("node_id"), "node_id"),
        (lambda d: d["telemetry"].update(seq=-1), "seq"),
        (lambda d: d["telemetry"].update(seq=True), "seq"),
        (lambda d: d["telemetry"].update(seq=2**64), "seq"),
        (lambda d: d["telemetry"].update(node_id=5), "node_id"),
        (lambda d: d["telemetry"].update(node_id="x" * 5000), "node_id"),
        (lambda d: d["telemetry"].update(listening={}), "listening"),
        (lambda d: d["telemetry"]["tasks"][0].update(pids=["1"]), "tasks[0].pids[0]"),
        (lambda d: d["telemetry"]["processes"][0].pop("pid"), "processes[0].pid"),
        (lambda d: d.update(signature=7), "signature"),
        (lambda d: d.update(telemetry=[]), ""),
    ],
)
def test_parse_rejects_malformed_shapes(mutate: object, path: str) -> None:
    doc = _wire_dict()
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(TelemetryParseError) as err:
        parse_signed_telemetry(json.dumps(doc).encode())
    assert err.value.path == path


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"\xff\xfe", b"[]", b"{}", b'{"alg":"Ed25519"}', b"[" * 100_000],
)
def test_parse_rejects_garbage(data: bytes) -> None:
    with pytest.raises(TelemetryParseError):
        parse_signed_telemetry(data)


def test_parse_checks_size_before_parsing() -> None:
    with pytest.raises(TelemetryParseError) as err:
        parse_signed_telemetry(b" " * (MAX_TELEMETRY_BYTES + 1))
    assert "exceeds" in err.value.reason


def test_signed_type_is_frozen() -> None:
    signed = sign_telemetry(full_record(), KEY)
    assert isinstance(signed, SignedTelemetry)
    with pytest.raises(dataclasses.FrozenInstanceError):
        signed.signature = b""  # type: ignore[misc]
