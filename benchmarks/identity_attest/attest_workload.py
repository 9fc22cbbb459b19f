"""Shared workload for the attestation benchmarks: prepared quotes and EATs with fresh nonces.

A prepared item is what the verifier receives from one node in one push:
its nonce was issued by the registry, the evidence answers it. Preparing
(node-side signing) is not timed; appraisal (verifier side) is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from identity import SigningKey
from identity.attestation import (
    AppraisalContext,
    AttestationResult,
    NonceRegistry,
    ReferenceValueSet,
    appraise_eat,
    appraise_quote,
    make_eat,
)
from tests.unit.identity.test_attest_support import (
    AGENT_V1,
    CONFIG,
    RUNTIME,
    SoftTpm,
    node_log,
)

VERIFIER = "bench-verifier"
KERNEL_LOG = node_log()
GOLDEN = ReferenceValueSet(
    "bench",
    1,
    {name: frozenset(digests) for name, digests in KERNEL_LOG.components().items()},
    {"GPU/A100": "96.0.5"},
)
UEID = b"\x01" + b"\x22" * 16


@dataclass
class QuoteItem:
    node_id: str
    ak_public: bytes
    nonce: bytes
    quote: bytes
    signature: bytes


@dataclass
class EatItem:
    node_id: str
    token: str
    nonce: bytes


class QuoteWorkload:
    """``nodes`` software AKs; ``prepare(n)`` makes n fresh quotes round-robin."""

    def __init__(self, nodes: int = 50) -> None:
        self.nonces = NonceRegistry(time.monotonic, max_outstanding=10_000_000)
        self.tpms = [SoftTpm().replay(KERNEL_LOG) for _ in range(nodes)]

    def prepare(self, n: int) -> list[QuoteItem]:
        items = []
        for i in range(n):
            tpm = self.tpms[i % len(self.tpms)]
            node_id = f"op/node-{i % len(self.tpms)}"
            nonce = self.nonces.issue(node_id)
            quote, sig = tpm.quote(nonce)
            items.append(QuoteItem(node_id, tpm.ak_public, nonce, quote, sig))
        return items

    def appraise(self, item: QuoteItem) -> AttestationResult:
        ctx = AppraisalContext(item.node_id, VERIFIER, (GOLDEN,), self.nonces, time.time())
        return appraise_quote(
            ctx,
            quote=item.quote,
            signature=item.signature,
            ak_public=item.ak_public,
            nonce=item.nonce,
            measurement_log=KERNEL_LOG,
        )


class EatWorkload:
    """``nodes`` node keys (EdDSA or ES256); ``prepare(n)`` makes n fresh EATs."""

    def __init__(self, algorithm: str = "ES256", nodes: int = 50) -> None:
        self.nonces = NonceRegistry(time.monotonic, max_outstanding=10_000_000)
        self.keys = [SigningKey.generate(algorithm) for _ in range(nodes)]
        self.public = [k.public() for k in self.keys]
        self.measurements = {"agent": AGENT_V1, "runtime/python": RUNTIME, "agent/config": CONFIG}
        self.golden = ReferenceValueSet(
            "bench", 1, {k: frozenset({v}) for k, v in self.measurements.items()}
        )

    def prepare(self, n: int) -> list[EatItem]:
        items = []
        now = time.time()
        for i in range(n):
            node_id = f"op/node-{i % len(self.keys)}"
            nonce = self.nonces.issue(node_id)
            token = make_eat(
                self.keys[i % len(self.keys)],
                node_id=node_id,
                verifier_id=VERIFIER,
                nonce=nonce,
                ueid=UEID,
                measurements=self.measurements,
                now=now,
            )
            items.append(EatItem(node_id, token, nonce))
        return items

    def appraise(self, item: EatItem) -> AttestationResult:
        index = int(item.node_id.rsplit("-", 1)[1])
        ctx = AppraisalContext(item.node_id, VERIFIER, (self.golden,), self.nonces, time.time())
        return appraise_eat(
            ctx, token=item.token, node_key=self.public[index], ueid=UEID, nonce=item.nonce
        )
