"""NonceRegistry: single use, 60 s, bound to a node, bounded memory."""

from __future__ import annotations

import pytest

from identity.attestation import NonceRegistry, NonceVerificationError
from tests.unit.identity.test_attest_support import Clock


def _reason(registry: NonceRegistry, nonce: bytes, node: str) -> str:
    with pytest.raises(NonceVerificationError) as err:
        registry.consume(nonce, node)
    return err.value.reason


def test_issue_then_consume_once() -> None:
    registry = NonceRegistry(Clock())
    nonce = registry.issue("a")
    assert len(nonce) == 32
    registry.consume(nonce, "a")
    assert _reason(registry, nonce, "a") == "nonce_replayed"


def test_valid_until_just_before_60_s() -> None:
    clock = Clock()
    registry = NonceRegistry(clock)
    early, late = registry.issue("a"), registry.issue("a")
    clock.now += 59.9
    registry.consume(early, "a")
    clock.now += 0.1
    assert _reason(registry, late, "a") == "nonce_expired"


def test_wrong_node_refused_without_burning() -> None:
    registry = NonceRegistry(Clock())
    nonce = registry.issue("a")
    assert _reason(registry, nonce, "b") == "nonce_node"
    registry.consume(nonce, "a")


def test_unknown_and_forgotten_nonces() -> None:
    clock = Clock()
    registry = NonceRegistry(clock)
    assert _reason(registry, b"\x01" * 32, "a") == "nonce_unknown"
    assert _reason(registry, b"\x01" * 65, "a") == "nonce_unknown"
    nonce = registry.issue("a")
    clock.now += 121.0  # ttl + retention
    assert _reason(registry, nonce, "a") == "nonce_unknown"
    assert len(registry) == 0


def test_capacity_bound() -> None:
    clock = Clock()
    registry = NonceRegistry(clock, max_outstanding=3)
    for _ in range(3):
        registry.issue("a")
    with pytest.raises(NonceVerificationError) as err:
        registry.issue("a")
    assert err.value.reason == "nonce_capacity"
    clock.now += 120.0
    registry.issue("a")


def test_duplicate_randomness_refused() -> None:
    registry = NonceRegistry(Clock(), randomness=lambda n: b"\x07" * n)
    registry.issue("a")
    with pytest.raises(NonceVerificationError):
        registry.issue("b")


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        NonceRegistry(Clock(), ttl_s=0)
    with pytest.raises(ValueError):
        NonceRegistry(Clock(), nonce_bytes=8)
