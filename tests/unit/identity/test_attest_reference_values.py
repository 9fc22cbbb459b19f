"""Signed, versioned reference values and their update window."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from identity.attestation import (
    ReferenceValueError,
    ReferenceValueSet,
    ReferenceValueSignatureError,
    ReferenceValueStore,
    SignedReferenceValues,
    open_reference_values,
    sign_reference_values,
)
from identity.attestation.reference_values import key_id, parse_version
from tests.unit.identity.test_attest_support import AGENT_V1, AGENT_V2, RUNTIME

SIGNER = ed25519.Ed25519PrivateKey.generate()
TRUSTED = {key_id(SIGNER.public_key()): SIGNER.public_key()}


def rv(version: int, agent: bytes = AGENT_V1, node_class: str = "gpu-a100") -> ReferenceValueSet:
    return ReferenceValueSet(
        node_class,
        version,
        {"agent": frozenset({agent}), "runtime/python": frozenset({RUNTIME})},
        {"GPU/A100": "96.0.5"},
    )


def test_sign_open_round_trip_through_json() -> None:
    signed = sign_reference_values(rv(1), SIGNER)
    again = SignedReferenceValues.from_json(signed.to_json())
    assert open_reference_values(again, TRUSTED) == rv(1)


def test_tampered_or_untrusted_sets_refused() -> None:
    signed = sign_reference_values(rv(1), SIGNER)
    tampered = SignedReferenceValues(
        signed.payload.replace(b'"version":1', b'"version":9'), signed.signature, signed.key_id
    )
    with pytest.raises(ReferenceValueSignatureError) as err:
        open_reference_values(tampered, TRUSTED)
    assert err.value.reason == "signature"
    rogue = sign_reference_values(rv(1), ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(ReferenceValueSignatureError) as err:
        open_reference_values(rogue, TRUSTED)
    assert err.value.reason == "untrusted_signer"
    forged_kid = SignedReferenceValues(rogue.payload, rogue.signature, signed.key_id)
    with pytest.raises(ReferenceValueSignatureError):
        open_reference_values(forged_kid, TRUSTED)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ReferenceValueSet("Bad Class", 1, {}),
        lambda: ReferenceValueSet("c", 0, {}),
        lambda: ReferenceValueSet("c", 1, {"agent": frozenset()}),
        lambda: ReferenceValueSet("c", 1, {"agent": frozenset({b"short"})}),
        lambda: ReferenceValueSet("c", 1, {}, {"TPU/x": "1"}),
        lambda: ReferenceValueSet("c", 1, {}, {"GPU/x": "1.beta"}),
        lambda: ReferenceValueSet.from_dict({"node_class": "c"}),
        lambda: SignedReferenceValues.from_json(b"{}"),
        lambda: SignedReferenceValues.from_json(b"x" * 600_000),
    ],
)
def test_malformed_sets_refused(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ReferenceValueError):
        make()


def test_parse_version() -> None:
    assert parse_version("96.00.5") == (96, 0, 5)
    assert parse_version("10") > parse_version("9.9")
    with pytest.raises(ReferenceValueError):
        parse_version("")


def test_update_window_accepts_old_and_new_then_only_new() -> None:
    store = ReferenceValueStore(TRUSTED, update_window_s=600)
    store.add(sign_reference_values(rv(1), SIGNER), now=0)
    assert [s.version for s in store.accepted("gpu-a100", now=10)] == [1]
    store.add(sign_reference_values(rv(2, AGENT_V2), SIGNER), now=100)
    assert [s.version for s in store.accepted("gpu-a100", now=650)] == [2, 1]
    assert [s.version for s in store.accepted("gpu-a100", now=700)] == [2]
    statuses = [(e.values.version, e.status(650)) for e in store.list("gpu-a100")]
    assert statuses == [(1, "update-window"), (2, "current")]
    assert store.list("gpu-a100")[0].status(700) == "superseded"


def test_versions_only_increase_and_classes_are_separate() -> None:
    store = ReferenceValueStore(TRUSTED)
    store.add(sign_reference_values(rv(2), SIGNER), now=0)
    with pytest.raises(ReferenceValueError, match="not newer"):
        store.add(sign_reference_values(rv(2), SIGNER), now=1)
    with pytest.raises(ReferenceValueError):
        store.add(sign_reference_values(rv(1), SIGNER), now=1)
    store.add(sign_reference_values(rv(1, node_class="cpu-x86"), SIGNER), now=1)
    assert [e.values.id for e in store.list()] == ["cpu-x86@1", "gpu-a100@2"]
    assert store.accepted("unknown", now=1) == ()


def test_retire_stops_acceptance_at_once() -> None:
    store = ReferenceValueStore(TRUSTED, update_window_s=600)
    store.add(sign_reference_values(rv(1), SIGNER), now=0)
    store.add(sign_reference_values(rv(2, AGENT_V2), SIGNER), now=10)
    store.retire("gpu-a100", 1, now=20)
    assert [s.version for s in store.accepted("gpu-a100", now=21)] == [2]
    store.retire("gpu-a100", 2, now=30)
    assert store.accepted("gpu-a100", now=31) == ()
    assert store.list("gpu-a100")[1].status(31) == "retired"
    with pytest.raises(ReferenceValueError):
        store.retire("gpu-a100", 7, now=40)


def test_store_refuses_unsigned_additions() -> None:
    store = ReferenceValueStore(TRUSTED)
    rogue = sign_reference_values(rv(1), ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(ReferenceValueSignatureError):
        store.add(rogue, now=0)
    assert store.list() == []
    with pytest.raises(ValueError):
        ReferenceValueStore(TRUSTED, update_window_s=-1)
