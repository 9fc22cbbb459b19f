"""Shared fixtures for trust tests: a controllable clock and a small engine."""

from __future__ import annotations

import itertools

import pytest

from trust import EngineConfig, Evidence, EvidenceKind, TrustEngine

T0 = 1_800_000_000.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine(clock: FakeClock) -> TrustEngine:
    eng = TrustEngine(EngineConfig(half_life_s=3600.0), clock=clock)
    for k in range(3):
        eng.register_node(f"n{k}", operator="acme", registered_at=T0 - 86400 * (k + 1))
        eng.ingest(attest(f"n{k}", T0), authenticated=True)
    return eng


_ids = itertools.count()


def ev(
    node: str,
    kind: EvidenceKind,
    at: float = T0,
    *,
    source: str = "scheduler",
    evidence_id: str | None = None,
    **extra: object,
) -> Evidence:
    return Evidence(evidence_id or f"e{next(_ids)}", kind, node, at, source, **extra)  # type: ignore[arg-type]


def attest(node: str, at: float = T0) -> Evidence:
    return ev(node, EvidenceKind.ATTESTATION_AFFIRMING, at, source="verifier")


def feed(engine: TrustEngine, node: str, kind: EvidenceKind, n: int, at: float = T0) -> None:
    for _ in range(n):
        assert engine.ingest(ev(node, kind, at), authenticated=True).accepted
