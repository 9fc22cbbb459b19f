"""Appraisal: evidence + reference values -> attestation result (RFC 9334 verifier).

``appraise_quote`` and ``appraise_eat`` verify the evidence and compare what
it measured with the accepted reference-value sets of the node's class,
returning an :class:`AttestationResult` that always carries its reasons:

- evidence refused (bad signature, replayed nonce, PCR mismatch, ...): the
  result is contraindicated, naming the check that failed; no reference
  values are consulted
- ``executables``: every component of the set must be measured, with an
  allowed digest (else contraindicated, naming the component — a changed
  agent binary is drift); a measured component the set does not know is a
  warning
- ``hardware``: accelerator firmware at or above the set's minimum for its
  model (else contraindicated); a model without a minimum is a warning; an
  EAT-only node has no hardware root of trust (warning, or ``ctx.software_root_tier``)
- with several accepted sets (update window) the best-matching one is used,
  newest first among equals
- no accepted set for the class: contraindicated

These functions never raise for bad evidence; they return a result. Callers
that want the exception use ``verify_quote`` / ``decode_eat`` directly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from identity.attestation.eat import AcceleratorClaims, decode_eat
from identity.attestation.errors import (
    EvidenceVerificationError,
    PcrMismatchError,
    ReferenceValueError,
)
from identity.attestation.measurement_log import MeasurementLog
from identity.attestation.nonces import NonceRegistry
from identity.attestation.quote import verify_quote
from identity.attestation.reference_values import ReferenceValueSet, parse_version
from identity.attestation.result import AttestationResult, ClaimAppraisal, TrustTier
from identity.tokens import VerificationKey

DEFAULT_RESULT_TTL_S = 90.0
_A, _W, _C = TrustTier.AFFIRMING, TrustTier.WARNING, TrustTier.CONTRAINDICATED
_EXECUTABLE_REASONS = frozenset({"pcr_digest", "pcr_selection", "measurement_log"})


@dataclass(frozen=True)
class AppraisalContext:
    """What the verifier knows about the node and itself (never taken from evidence)."""

    node_id: str
    verifier_id: str
    reference_values: Sequence[ReferenceValueSet]
    nonces: NonceRegistry
    now: float
    result_ttl_s: float = DEFAULT_RESULT_TTL_S
    # the hardware claim of a TPM-less (EAT-only) node: WARNING by default; a verifier whose
    # policy makes no hardware claim for such nodes sets NONE (the claim then does not
    # lower the status, and the reason still says there is no hardware root of trust)
    software_root_tier: TrustTier = TrustTier.WARNING


def _result_id(ctx: AppraisalContext, evidence: bytes) -> str:
    h = hashlib.sha256()
    for part in (ctx.verifier_id.encode(), ctx.node_id.encode(), repr(ctx.now).encode(), evidence):
        h.update(len(part).to_bytes(4, "big") + part)
    return "ear-" + h.hexdigest()[:32]


def _result(
    ctx: AppraisalContext,
    evidence_type: str,
    evidence: bytes,
    claims: Sequence[ClaimAppraisal],
    reference_values_id: str | None = None,
    refusal: str | None = None,
) -> AttestationResult:
    return AttestationResult(
        result_id=_result_id(ctx, evidence),
        node_id=ctx.node_id,
        verifier_id=ctx.verifier_id,
        evidence_type=evidence_type,
        claims=tuple(claims),
        issued_at=ctx.now,
        expires_at=ctx.now + ctx.result_ttl_s,
        reference_values_id=reference_values_id,
        refusal=refusal,
    )


def _refused(
    ctx: AppraisalContext, evidence_type: str, evidence: bytes, exc: EvidenceVerificationError
) -> AttestationResult:
    claim = "executables" if exc.reason in _EXECUTABLE_REASONS else "instance-identity"
    reason = f"evidence refused ({exc.reason}): {exc}"
    if isinstance(exc, PcrMismatchError):
        reason += f" [quoted {exc.expected.hex()[:16]}, log {exc.calculated.hex()[:16]}]"
    claims = [ClaimAppraisal(claim, _C, (reason,))]
    return _result(ctx, evidence_type, evidence, claims, refusal=exc.reason)


def _claim(name: str, findings: list[tuple[TrustTier, str]]) -> ClaimAppraisal:
    return ClaimAppraisal(name, max(t for t, _ in findings), tuple(r for _, r in findings))


def _executables(rv: ReferenceValueSet, measured: Mapping[str, Sequence[bytes]]) -> ClaimAppraisal:
    findings: list[tuple[TrustTier, str]] = []
    for name in sorted(rv.components):
        allowed = rv.components[name]
        digests = measured.get(name)
        if not digests:
            findings.append((_C, f"component {name} not measured (required by {rv.id})"))
            continue
        bad = [d for d in digests if d not in allowed]
        if bad:
            findings.append(
                (_C, f"component {name} drifted: digest {bad[0].hex()[:16]} not in {rv.id}")
            )
        else:
            findings.append((_A, f"component {name} matches {rv.id}"))
    for name in sorted(set(measured) - set(rv.components)):
        findings.append((_W, f"component {name} has no reference value in {rv.id}"))
    if not findings:
        findings.append((_A, f"no components required by {rv.id}"))
    return _claim("executables", findings)


def _firmware_finding(rv: ReferenceValueSet, accel: AcceleratorClaims) -> tuple[TrustTier, str]:
    key = f"{accel.kind}/{accel.model}"
    minimum = rv.accelerator_firmware_minimums.get(key)
    if minimum is None:
        return _W, f"{key} has no firmware minimum in {rv.id}"
    try:
        below = parse_version(accel.firmware_version) < parse_version(minimum)
    except ReferenceValueError:
        return _C, f"{key} firmware version {accel.firmware_version!r} is not comparable"
    if below:
        return _C, f"{key} firmware {accel.firmware_version} below minimum {minimum}"
    return (
        _A,
        f"{key} firmware {accel.firmware_version} >= {minimum} (driver {accel.driver_version})",
    )


def _against(
    rv: ReferenceValueSet,
    measured: Mapping[str, Sequence[bytes]],
    accelerators: Sequence[AcceleratorClaims],
    hardware_root: tuple[TrustTier, str],
) -> list[ClaimAppraisal]:
    claims = [_executables(rv, measured)]
    hardware = [hardware_root, *(_firmware_finding(rv, a) for a in accelerators)]
    claims.append(_claim("hardware", hardware))
    return claims


def _best(
    ctx: AppraisalContext,
    base: list[ClaimAppraisal],
    measured: Mapping[str, Sequence[bytes]],
    accelerators: Sequence[AcceleratorClaims],
    hardware_root: tuple[TrustTier, str],
) -> tuple[list[ClaimAppraisal], str | None]:
    if not ctx.reference_values:
        missing = ClaimAppraisal("executables", _C, ("no accepted reference values for the node",))
        return [*base, missing], None
    candidates = [
        (_against(rv, measured, accelerators, hardware_root), rv.id) for rv in ctx.reference_values
    ]
    # newest first; min() keeps the first of equally good matches
    claims, rv_id = min(candidates, key=lambda c: max(x.tier for x in c[0]))
    return [*base, *claims], rv_id


def appraise_quote(
    ctx: AppraisalContext,
    *,
    quote: bytes,
    signature: bytes,
    ak_public: bytes,
    nonce: bytes,
    measurement_log: MeasurementLog,
) -> AttestationResult:
    """Appraise a TPM quote with its measurement log for ``ctx.node_id``.

    ``ak_public`` is the AK enrolled for the node. Never raises for bad
    evidence: refusals become a contraindicated result.
    """
    evidence = quote + signature
    try:
        verify_quote(
            quote,
            signature,
            ak_public=ak_public,
            node_id=ctx.node_id,
            nonce=nonce,
            nonces=ctx.nonces,
            measurement_log=measurement_log,
        )
    except EvidenceVerificationError as exc:
        return _refused(ctx, "tpm-quote", evidence, exc)
    base = [
        ClaimAppraisal("instance-identity", _A, ("quote signed by the enrolled AK; nonce fresh",)),
        ClaimAppraisal(
            "configuration",
            _A,
            (f"PCR digest matches the replayed log ({len(measurement_log.events)} events)",),
        ),
    ]
    hardware_root = (_A, "TPM 2.0 AK, residency proven by credential activation")
    claims, rv_id = _best(ctx, base, measurement_log.components(), (), hardware_root)
    return _result(ctx, "tpm-quote", evidence, claims, rv_id)


def appraise_eat(
    ctx: AppraisalContext,
    *,
    token: str,
    node_key: VerificationKey,
    ueid: bytes,
    nonce: bytes,
) -> AttestationResult:
    """Appraise an EAT for ``ctx.node_id`` (``node_key`` and ``ueid`` as enrolled).

    Never raises for bad evidence: refusals become a contraindicated result.
    """
    evidence = token.encode() if isinstance(token, str) else b""
    try:
        claims_set = decode_eat(
            token,
            node_id=ctx.node_id,
            node_key=node_key,
            ueid=ueid,
            verifier_id=ctx.verifier_id,
            nonce=nonce,
            nonces=ctx.nonces,
            now=ctx.now,
        )
    except EvidenceVerificationError as exc:
        return _refused(ctx, "eat", evidence, exc)
    base = [
        ClaimAppraisal(
            "instance-identity", _A, ("EAT signed by the enrolled node key; nonce fresh",)
        )
    ]
    measured = {name: (digest,) for name, digest in claims_set.measurements.items()}
    hardware_root = (ctx.software_root_tier, "no hardware root of trust (software-signed EAT)")
    claims, rv_id = _best(ctx, base, measured, claims_set.accelerators, hardware_root)
    return _result(ctx, "eat", evidence, claims, rv_id)
