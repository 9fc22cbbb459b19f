"""Measurement log: replay like a TPM, strict JSON parsing."""

from __future__ import annotations

import hashlib
import json

import pytest

from identity.attestation import EvidenceVerificationError, MeasurementLog, pcr_composite_digest
from tests.unit.identity.test_attest_support import SoftTpm, node_log


def test_replay_matches_pcr_extend() -> None:
    log = node_log()
    tpm = SoftTpm().replay(log)
    assert log.replay() == tpm.pcrs
    d1 = hashlib.sha256(b"kernel").digest()
    assert log.replay()[10] == hashlib.sha256(bytes(32) + d1).digest()


def test_composite_digest_orders_and_defaults_to_zero() -> None:
    values = {3: b"\x03" * 32, 1: b"\x01" * 32}
    expected = hashlib.sha256(b"\x01" * 32 + bytes(32) + b"\x03" * 32).digest()
    assert pcr_composite_digest(values, [3, 2, 1]) == expected


def test_json_round_trip_and_components() -> None:
    log = node_log()
    again = MeasurementLog.from_json(log.to_json())
    assert again == log
    assert set(again.components()) == {"boot/kernel", "agent", "runtime/python", "agent/config"}


@pytest.mark.parametrize(
    "doc",
    [
        b"{}",
        b"not json",
        b"[1]",
        json.dumps([{"pcr": 1, "digest": "00" * 32}]).encode(),
        json.dumps([{"pcr": "1", "digest": "00" * 32, "component": "a"}]).encode(),
        json.dumps([{"pcr": True, "digest": "00" * 32, "component": "a"}]).encode(),
        json.dumps([{"pcr": 24, "digest": "00" * 32, "component": "a"}]).encode(),
        json.dumps([{"pcr": 1, "digest": "00" * 31, "component": "a"}]).encode(),
        json.dumps([{"pcr": 1, "digest": "zz" * 32, "component": "a"}]).encode(),
        json.dumps([{"pcr": 1, "digest": "00" * 32, "component": "../etc"}]).encode(),
        json.dumps([{"pcr": 1, "digest": "00" * 32, "component": "a", "x": 1}]).encode(),
        json.dumps([{"pcr": 1, "digest": "00" * 32, "component": "a"}] * 1025).encode(),
        b" " * (256 * 1024 + 1),
    ],
)
def test_malformed_logs_refused(doc: bytes) -> None:
    with pytest.raises(EvidenceVerificationError) as err:
        MeasurementLog.from_json(doc)
    assert err.value.reason == "measurement_log"
