"""Appraisal -> EAR-shaped attestation results, with a reason per claim."""

from __future__ import annotations

import hashlib

import pytest

from identity import SigningKey
from identity.attestation import (
    AcceleratorClaims,
    AppraisalContext,
    AttestationResult,
    ClaimAppraisal,
    NonceRegistry,
    ReferenceValueSet,
    TrustTier,
    appraise_eat,
    appraise_quote,
    is_fresh,
    make_eat,
)
from tests.unit.identity.test_attest_support import (
    AGENT_V1,
    AGENT_V2,
    CONFIG,
    RUNTIME,
    Clock,
    SoftTpm,
    node_log,
)

NODE, VERIFIER = "op1/node-a", "verifier-1"
KERNEL = hashlib.sha256(b"kernel").digest()
UEID = b"\x01" + b"\x11" * 16


def golden(version: int = 1, agent: bytes = AGENT_V1, minimum: str = "96.0.5") -> ReferenceValueSet:
    return ReferenceValueSet(
        "gpu-a100",
        version,
        {
            "boot/kernel": frozenset({KERNEL}),
            "agent": frozenset({agent}),
            "runtime/python": frozenset({RUNTIME}),
            "agent/config": frozenset({CONFIG}),
        },
        {"GPU/A100": minimum},
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def nonces(clock: Clock) -> NonceRegistry:
    return NonceRegistry(clock)


def ctx(clock: Clock, nonces: NonceRegistry, *sets: ReferenceValueSet) -> AppraisalContext:
    return AppraisalContext(NODE, VERIFIER, sets or (golden(),), nonces, clock.now)


def quote_result(
    clock: Clock, nonces: NonceRegistry, agent: bytes = AGENT_V1, *sets: ReferenceValueSet
) -> AttestationResult:
    log = node_log(agent)
    tpm = SoftTpm().replay(log)
    nonce = nonces.issue(NODE)
    quote, sig = tpm.quote(nonce)
    return appraise_quote(
        ctx(clock, nonces, *sets),
        quote=quote,
        signature=sig,
        ak_public=tpm.ak_public,
        nonce=nonce,
        measurement_log=log,
    )


def test_good_quote_is_affirming(clock: Clock, nonces: NonceRegistry) -> None:
    result = quote_result(clock, nonces)
    assert result.status is TrustTier.AFFIRMING
    assert {c.claim for c in result.claims} == {
        "instance-identity",
        "configuration",
        "executables",
        "hardware",
    }
    assert result.reference_values_id == "gpu-a100@1"
    assert result.permits_work(clock.now)


def test_drifted_agent_binary_is_contraindicated_naming_the_component(
    clock: Clock, nonces: NonceRegistry
) -> None:
    result = quote_result(clock, nonces, AGENT_V2)
    assert result.status is TrustTier.CONTRAINDICATED
    (reason,) = [r for r in result.reasons()["executables"] if "drifted" in r]
    assert reason.startswith("component agent drifted")
    assert not result.permits_work(clock.now)


def test_update_window_accepts_new_agent_against_new_set(
    clock: Clock, nonces: NonceRegistry
) -> None:
    sets = (golden(2, AGENT_V2), golden(1, AGENT_V1))
    new = quote_result(clock, nonces, AGENT_V2, *sets)
    old = quote_result(clock, nonces, AGENT_V1, *sets)
    assert new.status is old.status is TrustTier.AFFIRMING
    assert (new.reference_values_id, old.reference_values_id) == ("gpu-a100@2", "gpu-a100@1")


def test_no_reference_values_fails_closed(clock: Clock, nonces: NonceRegistry) -> None:
    c = AppraisalContext(NODE, VERIFIER, (), nonces, clock.now)
    tpm = SoftTpm().replay(node_log())
    nonce = nonces.issue(NODE)
    q, s = tpm.quote(nonce)
    result = appraise_quote(
        c, quote=q, signature=s, ak_public=tpm.ak_public, nonce=nonce, measurement_log=node_log()
    )
    assert result.status is TrustTier.CONTRAINDICATED
    assert "no accepted reference values" in result.reasons()["executables"][0]


def test_refused_evidence_becomes_contraindicated_result(
    clock: Clock, nonces: NonceRegistry
) -> None:
    tpm, other = SoftTpm().replay(node_log()), SoftTpm().replay(node_log())
    nonce = nonces.issue(NODE)
    q, s = other.quote(nonce)
    result = appraise_quote(
        ctx(clock, nonces),
        quote=q,
        signature=s,
        ak_public=tpm.ak_public,
        nonce=nonce,
        measurement_log=node_log(),
    )
    assert result.status is TrustTier.CONTRAINDICATED
    assert "(signature)" in result.reasons()["instance-identity"][0]
    q, s = tpm.quote(nonce)
    lying = appraise_quote(
        ctx(clock, nonces),
        quote=q,
        signature=s,
        ak_public=tpm.ak_public,
        nonce=nonce,
        measurement_log=node_log(AGENT_V2),
    )
    assert "(pcr_digest)" in lying.reasons()["executables"][0]
    garbage = appraise_quote(
        ctx(clock, nonces),
        quote=b"\x00",
        signature=b"",
        ak_public=tpm.ak_public,
        nonce=nonce,
        measurement_log=node_log(),
    )
    assert "(malformed)" in garbage.reasons()["instance-identity"][0]


def test_unknown_component_is_a_warning(clock: Clock, nonces: NonceRegistry) -> None:
    rv = ReferenceValueSet("c", 1, {"agent": frozenset({AGENT_V1})})
    result = quote_result(clock, nonces, AGENT_V1, rv)
    assert result.status is TrustTier.WARNING
    assert any(
        "runtime/python has no reference value" in r for r in result.reasons()["executables"]
    )
    assert result.permits_work(clock.now)


def eat_result(
    clock: Clock, nonces: NonceRegistry, gpu: AcceleratorClaims, rv: ReferenceValueSet
) -> AttestationResult:
    key = SigningKey.generate("ES256")
    nonce = nonces.issue(NODE)
    token = make_eat(
        key,
        node_id=NODE,
        verifier_id=VERIFIER,
        nonce=nonce,
        ueid=UEID,
        measurements={"agent": AGENT_V1},
        accelerators=[gpu],
        now=clock.now,
    )
    return appraise_eat(
        ctx(clock, nonces, rv), token=token, node_key=key.public(), ueid=UEID, nonce=nonce
    )


def test_eat_accelerator_firmware_minimum(clock: Clock, nonces: NonceRegistry) -> None:
    rv = ReferenceValueSet("gpu", 1, {"agent": frozenset({AGENT_V1})}, {"GPU/A100": "96.0.5"})
    ok = eat_result(clock, nonces, AcceleratorClaims("GPU", "A100", "535.1", "96.0.7"), rv)
    assert ok.status is TrustTier.WARNING  # TPM-less: no hardware root of trust
    assert ok.claims[0] == ClaimAppraisal(
        "instance-identity",
        TrustTier.AFFIRMING,
        ("EAT signed by the enrolled node key; nonce fresh",),
    )
    old = eat_result(clock, nonces, AcceleratorClaims("GPU", "A100", "535.1", "96.0.4"), rv)
    assert old.status is TrustTier.CONTRAINDICATED
    assert any("below minimum 96.0.5" in r for r in old.reasons()["hardware"])
    odd = eat_result(clock, nonces, AcceleratorClaims("GPU", "A100", "535.1", "96.0.4a"), rv)
    assert any("not comparable" in r for r in odd.reasons()["hardware"])
    unknown = eat_result(clock, nonces, AcceleratorClaims("FPGA", "U250", "1", "2"), rv)
    assert unknown.status is TrustTier.WARNING


def test_eat_refusal_is_contraindicated(clock: Clock, nonces: NonceRegistry) -> None:
    key = SigningKey.generate()
    result = appraise_eat(
        ctx(clock, nonces), token="not-a-jwt", node_key=key.public(), ueid=UEID, nonce=b"n" * 32
    )
    assert result.status is TrustTier.CONTRAINDICATED and result.evidence_type == "eat"


def test_ear_shape_and_freshness(clock: Clock, nonces: NonceRegistry) -> None:
    result = quote_result(clock, nonces, AGENT_V2)
    ear = result.to_dict()
    assert ear["eat_profile"] == "tag:github.com,2023:veraison/ear"
    assert ear["ear.verifier-id"] == {"developer": "cntrust", "build": VERIFIER}
    assert ear["exp"] - ear["iat"] == 90 and ear["jti"].startswith("ear-")
    sub = ear["submods"][NODE]
    assert sub["ear.status"] == "contraindicated"
    assert sub["ear.trustworthiness-vector"]["executables"] == 96
    assert sub["ear.trustworthiness-vector"]["instance-identity"] == 2
    assert any("agent drifted" in r for r in sub["cntrust.reasons"]["executables"])
    assert is_fresh(result, clock.now) and is_fresh(result, clock.now + 89.9)
    assert not is_fresh(result, clock.now + 90) and not is_fresh(result, clock.now - 1)


def test_results_are_frozen_and_ids_unique(clock: Clock, nonces: NonceRegistry) -> None:
    a, b = quote_result(clock, nonces), quote_result(clock, nonces)
    assert a.result_id != b.result_id
    with pytest.raises(AttributeError):
        a.expires_at = 0  # type: ignore[misc]
    empty = AttestationResult("r", NODE, VERIFIER, "eat", (), 0, 1)
    assert empty.status is TrustTier.CONTRAINDICATED
    with pytest.raises(ValueError):
        ClaimAppraisal("freshness", TrustTier.AFFIRMING, ())
