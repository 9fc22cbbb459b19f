"""The attestation layer wired into the scheduler (IETF RATS: the agent attests,
:mod:`identity.attestation` verifies, the scheduler relies on the result).

:class:`AttestationLayer` owns:

- freshness: server-issued nonces, single use, bound to the node, valid 60 s, stored in the
  database (:class:`scheduler.attestation_store.DbNonces`) so they work across replicas;
- node attestation keys: the JWK and UEID a node's EATs are verified with (and optionally a
  TPM AK), bound on first registration by the authenticated node and never replaced by it;
- reference values: signed, versioned sets per node class with update windows;
- appraisal: evidence (EAT or TPM quote) -> an EAR-shaped result, stored as history and as
  the node's current result (``Node.attestation_*``) in the transaction that consumes the
  nonce; fed to the trust engine when ``service.trust`` is installed;
- the gate (:mod:`scheduler.attestation_gate`), when ``settings.attestation_gate`` is on.

Evidence that cannot be attributed to the node as fresh (malformed, bad signature, another
node's token, unknown/replayed/expired nonce) is refused with a specific problem type and
changes nothing. Evidence that is authentic and fresh but fails appraisal (drifted
measurements, PCR digest not matching the log, no accepted reference values) is stored as a
contraindicated result: the node is excluded and its work requeued in that same commit.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

import trust
from identity import TokenVerificationError, VerificationKey, verification_key_from_jwk
from identity.attestation import (
    AppraisalContext,
    AttestationResult,
    EvidenceVerificationError,
    MeasurementLog,
    TpmStructureError,
    TrustTier,
    appraise_eat,
    appraise_quote,
    load_attestation_key,
)
from identity.attestation.eat import MAX_EAT_BYTES
from identity.attestation.measurement_log import MAX_LOG_BYTES
from identity.attestation.nonces import NONCE_BYTES, NONCE_TTL_S
from scheduler.attestation_gate import AttestationFilter, enforce, gate_reason, requeue_node
from scheduler.attestation_store import (
    DEFAULT_NODE_CLASS,
    DbNonces,
    ReferenceValues,
    ensure_local_refvalues,
    issue_nonce,
    load_or_create_refvalues_key,
    prune_nonces,
)
from scheduler.attestation_tpm import check_no_other_ak, enrolled_ak
from scheduler.db import after_commit
from scheduler.errors import Conflict, NotFound, SchedulerError
from scheduler.models import Node
from scheduler.tables.attestation import AttestationKey, AttestationResultRow

if TYPE_CHECKING:
    from scheduler.service import Service

log = logging.getLogger(__name__)

LAYER_DIR = "attestation"
MAX_QUOTE_BYTES = 4096
# refusals after which the evidence is still the node's own, fresh word: stored as results
APPRAISED_REFUSALS = frozenset({"pcr_digest", "pcr_selection", "measurement_log"})
_install_lock = threading.Lock()


class EvidenceRefused(SchedulerError):
    """Evidence refused before appraisal; ``type`` names the check
    (``attestation-nonce-replayed``, ``attestation-evidence-signature``, ...)."""

    status = 422
    title = "Attestation evidence refused"

    def __init__(self, detail: str, reason: str, status: int = 422) -> None:
        super().__init__(detail, reason=reason)
        self.status = status
        kind = "nonce" if reason.startswith("nonce") else "evidence"
        suffix = reason.removeprefix("nonce_") if kind == "nonce" else reason
        if reason == "nonce":  # the evidence answers another nonce than the one named
            suffix = "mismatch"
        self.type_slug = f"attestation-{kind}-{suffix.replace('_', '-')}"


def b64u_decode(text: str, what: str, max_bytes: int) -> bytes:
    """Decode base64url (padding optional); raises EvidenceRefused ``malformed``."""
    if len(text) > (max_bytes * 4) // 3 + 4:
        raise EvidenceRefused(f"{what} larger than {max_bytes} bytes", "too_large", 413)
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise EvidenceRefused(f"{what} is not base64url", "malformed") from exc


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Evidence:
    """Evidence as received (already size-checked and decoded)."""

    type: str  # "eat" | "tpm-quote"
    nonce: bytes
    eat: str | None = None
    quote: bytes = b""
    signature: bytes = b""
    measurement_log: MeasurementLog | None = None


def parse_evidence(body: dict[str, Any]) -> Evidence:
    """The evidence endpoint's parser (sizes checked before decoding).

    Raises EvidenceRefused: ``too_large`` (413), ``malformed``, ``measurement_log``.
    """
    kind = body.get("type")
    nonce = b64u_decode(str(body.get("nonce", "")), "nonce", 64)
    if not 16 <= len(nonce) <= 64:
        raise EvidenceRefused("nonce must be 16..64 bytes", "malformed")
    if kind == "eat":
        token = body.get("eat")
        if not isinstance(token, str) or not token:
            raise EvidenceRefused("an EAT evidence needs 'eat'", "malformed")
        if len(token) > MAX_EAT_BYTES:
            raise EvidenceRefused(f"EAT larger than {MAX_EAT_BYTES} bytes", "too_large", 413)
        return Evidence("eat", nonce, eat=token)
    if kind == "tpm-quote":
        quote = b64u_decode(str(body.get("quote") or ""), "quote", MAX_QUOTE_BYTES)
        signature = b64u_decode(str(body.get("signature") or ""), "signature", MAX_QUOTE_BYTES)
        raw_log = body.get("measurement_log")
        if not quote or not signature or not isinstance(raw_log, str):
            raise EvidenceRefused("a quote needs quote, signature, measurement_log", "malformed")
        if len(raw_log) > MAX_LOG_BYTES:
            raise EvidenceRefused(f"log larger than {MAX_LOG_BYTES} bytes", "too_large", 413)
        try:
            mlog = MeasurementLog.from_json(raw_log.encode())
        except EvidenceVerificationError as exc:
            raise EvidenceRefused(f"measurement log refused: {exc}", "measurement_log") from exc
        return Evidence("tpm-quote", nonce, quote=quote, signature=signature, measurement_log=mlog)
    raise EvidenceRefused("type must be 'eat' or 'tpm-quote'", "malformed")


class AttestationLayer:
    """One per service: nonces, keys, reference values, appraisal, results, the gate."""

    def __init__(self, service: Service) -> None:
        settings = service.settings
        self.service = service
        self.gate = settings.attestation_gate
        self.result_ttl_s = settings.attestation_result_ttl_s
        self.interval_s = settings.attestation_interval_s
        self.nonce_ttl_s = NONCE_TTL_S
        self.verifier_id = f"{settings.issuer}-verifier"
        self.software_root_tier = (
            TrustTier.NONE if settings.attestation_eat_hardware == "none" else TrustTier.WARNING
        )
        self.trust_refresh_s = settings.attestation_trust_refresh_s
        # node -> (status, time) last fed to the trust engine (periodic re-attestation of
        # an unchanged state is not new evidence: it is fed on change, or after the refresh)
        self._fed: dict[str, tuple[str, float]] = {}
        self._fed_lock = threading.Lock()
        key = load_or_create_refvalues_key(settings.data_dir / LAYER_DIR)
        self.refvalues = ReferenceValues(key, update_window_s=settings.attestation_update_window_s)
        self.randomness: Callable[[int], bytes] = secrets.token_bytes
        self.last_sweep: dict[str, list[str]] = {}

    @classmethod
    def install(cls, service: Service) -> AttestationLayer:
        """Build the layer once per service; with the gate on, add the placement filter
        (first, so an unattested node's exclusion names attestation) and the sweep."""
        with _install_lock:
            layer = getattr(service, "attestation", None)
            if isinstance(layer, AttestationLayer):
                return layer
            layer = cls(service)
            if layer.gate:
                service.pipeline.filters.insert(0, AttestationFilter(service.clock))
                service.maintenance_hooks.append(layer.maintain)
            service.attestation = layer  # type: ignore[attr-defined]
            return layer

    # -- nonces ---------------------------------------------------------------------------
    def new_nonce(self, node_id: str) -> tuple[bytes, float, Callable[[Session], float]]:
        """A fresh nonce for ``node_id``, its expiry, and the write that stores it."""
        now = self.service.clock()
        nonce = self.randomness(NONCE_BYTES)
        ttl = self.nonce_ttl_s

        def op(session: Session) -> float:
            if session.get(Node, node_id) is None:
                raise NotFound(f"node {node_id} is not registered")
            return issue_nonce(session, node_id, nonce, now, ttl)

        return nonce, now + ttl, op

    # -- keys -----------------------------------------------------------------------------
    def register_key(
        self, node_id: str, jwk: dict[str, Any], ueid: bytes, ak_public: bytes | None, by: str
    ) -> Callable[[Session], AttestationKey]:
        """The write binding ``node_id`` to its EAT key (and AK). Registering the same key
        again is a no-op; another key is refused (Conflict ``attestation_key_bound``)."""
        key = _checked_key(jwk)
        if not 17 <= len(ueid) <= 33 or ueid[0] != 0x01:
            raise EvidenceRefused("ueid must be a RAND UEID (0x01 + 16..32 bytes)", "malformed")
        if ak_public is not None:
            try:
                load_attestation_key(ak_public)
            except EvidenceVerificationError as exc:
                raise EvidenceRefused(f"AK refused: {exc}", "ak") from exc
        now = self.service.clock()
        public = key.to_jwk()

        def op(session: Session) -> AttestationKey:
            if session.get(Node, node_id) is None:
                raise NotFound(f"node {node_id} is not registered")
            check_no_other_ak(session, node_id, ak_public)
            row = session.get(AttestationKey, node_id)
            if row is not None:
                same = row.jwk == public and row.ueid == ueid.hex()
                same = same and (ak_public is None or row.ak_public == ak_public.hex())
                if not same:
                    raise Conflict(
                        f"node {node_id} already has another attestation key",
                        reason="attestation_key_bound",
                    )
                return row
            row = AttestationKey(
                node_id=node_id,
                jwk=public,
                ueid=ueid.hex(),
                ak_public=ak_public.hex() if ak_public is not None else None,
                registered_at=now,
                registered_by=by[:140],
            )
            session.add(row)
            return row

        return op

    def reset_key(self, node_id: str) -> Callable[[Session], bool]:
        """The write forgetting ``node_id``'s key binding; False when there was none."""

        def op(session: Session) -> bool:
            row = session.get(AttestationKey, node_id)
            if row is None:
                if session.get(Node, node_id) is None:
                    raise NotFound(f"node {node_id} not found")
                return False
            session.delete(row)
            return True

        return op

    # -- appraisal ------------------------------------------------------------------------
    def appraise(self, node_id: str, evidence: Evidence) -> Callable[[Session], AttestationResult]:
        """The write that appraises ``evidence`` from the authenticated ``node_id``, stores
        the result and applies it. The op raises EvidenceRefused (nothing written) when the
        evidence itself is refused, NotFound/Conflict when the node or its key is unknown."""
        now = self.service.clock()

        def op(session: Session) -> AttestationResult:
            node = session.get(Node, node_id)
            if node is None:
                raise NotFound(f"node {node_id} is not registered")
            key = session.get(AttestationKey, node_id)
            tpm_ak = enrolled_ak(session, node_id) if evidence.type == "tpm-quote" else None
            if tpm_ak is not None:  # a TPM-enrolled node: the AK recorded at enrollment
                key = AttestationKey(
                    node_id=node_id,
                    ueid="",
                    ak_public=tpm_ak.hex(),
                    registered_at=now,
                    registered_by="tpm-enrollment",
                )
            if key is None:
                raise Conflict(
                    f"node {node_id} has no attestation key", reason="attestation_key_missing"
                )
            node_class = str(node.labels.get("node_class") or DEFAULT_NODE_CLASS)
            ctx = AppraisalContext(
                node_id=node_id,
                verifier_id=self.verifier_id,
                reference_values=self.refvalues.accepted(session, node_class, now),
                nonces=DbNonces(session, now),
                now=now,
                result_ttl_s=self.result_ttl_s,
                software_root_tier=self.software_root_tier,
            )
            result = self._appraise(ctx, key, evidence)
            if result.refusal is not None and result.refusal not in APPRAISED_REFUSALS:
                reasons = "; ".join(r for rs in result.reasons().values() for r in rs)
                raise EvidenceRefused(reasons[:500], result.refusal)
            self.record(session, node, result)
            return result

        return op

    def _appraise(
        self, ctx: AppraisalContext, key: AttestationKey, evidence: Evidence
    ) -> AttestationResult:
        if evidence.type == "eat":
            return appraise_eat(
                ctx,
                token=evidence.eat or "",
                node_key=_checked_key(key.jwk),
                ueid=bytes.fromhex(key.ueid),
                nonce=evidence.nonce,
            )
        if key.ak_public is None or evidence.measurement_log is None:
            raise Conflict(
                f"node {ctx.node_id} has no enrolled TPM AK", reason="attestation_ak_missing"
            )
        try:
            return appraise_quote(
                ctx,
                quote=evidence.quote,
                signature=evidence.signature,
                ak_public=bytes.fromhex(key.ak_public),
                nonce=evidence.nonce,
                measurement_log=evidence.measurement_log,
            )
        except TpmStructureError as exc:  # the enrolled AK itself no longer parses
            raise Conflict(f"enrolled AK unusable: {exc}", reason="attestation_ak") from exc

    def record(self, session: Session, node: Node, result: AttestationResult) -> list[str]:
        """Store ``result`` as history and as the node's current result; requeue the node's
        work if it no longer permits work; feed the trust engine; record the response."""
        now = result.issued_at
        before = gate_reason(node.attestation_status, node.attestation_expires_at, now)
        first = node.attestation_status is None  # a new node's first result is no response
        ear = result.to_dict()
        session.add(
            AttestationResultRow(
                result_id=result.result_id,
                node_id=node.id,
                status=result.status.label,
                evidence_type=result.evidence_type,
                issued_at=result.issued_at,
                expires_at=result.expires_at,
                reference_values_id=result.reference_values_id,
                ear=ear,
            )
        )
        node.attestation_status = result.status.label
        node.attestation_id = result.result_id
        node.attested_at = result.issued_at
        node.attestation_expires_at = result.expires_at
        session.add(node)
        after = gate_reason(node.attestation_status, node.attestation_expires_at, now)
        requeued = requeue_node(session, node, now) if self.gate and after else []
        layer = getattr(self.service, "trust", None)
        if layer is not None and self._feed_trust(session, node.id, result):
            try:
                layer.record_attestation(
                    session,
                    {**ear, "eat_nonce": result.result_id},
                    node_id=node.id,
                    verifier=self.verifier_id,
                )
            except trust.EvidenceError as exc:
                log.warning("attestation result %s gives no trust evidence: %s", node.id, exc)
        if self.gate and (before is None) != (after is None) and not (first and after is None):
            self._respond(session, node, result, after, requeued)
        return requeued

    def _feed_trust(self, session: Session, node_id: str, result: AttestationResult) -> bool:
        """True when this result is news for the trust engine (first, changed status, or
        the refresh interval passed); remembered only once the transaction commits."""
        status, now = result.status.label, result.issued_at
        with self._fed_lock:
            last = self._fed.get(node_id)
        if last is not None and last[0] == status and now - last[1] < self.trust_refresh_s:
            return False

        def fed() -> None:
            with self._fed_lock:
                self._fed[node_id] = (status, now)

        after_commit(session, fed)
        return True

    def _respond(
        self,
        session: Session,
        node: Node,
        result: AttestationResult,
        why: str | None,
        requeued: list[str],
    ) -> None:
        from scheduler.service import ResponseAction

        excluded = why is not None
        claims = {c.claim: c.tier.label for c in result.claims}
        self.service.record_response(
            session,
            ResponseAction(
                action="response.quarantine" if excluded else "response.release",
                subject=node.id,
                reason=(
                    f"excluded by attestation: {why}"
                    if excluded
                    else f"attestation {result.status.label}: placement resumes"
                ),
                actor=self.verifier_id,
                source="attestation",
                at=result.issued_at,
                detail={"result_id": result.result_id, "claims": claims, "requeued": requeued},
            ),
        )

    # -- periodic -------------------------------------------------------------------------
    def maintain(self, session: Session, now: float) -> None:
        """Maintenance-loop hook: requeue the work of nodes whose result expired (or is
        missing / contraindicated) and forget long-expired nonces."""
        swept = enforce(session, now)
        if swept:
            self.last_sweep = swept
            log.warning("attestation gate requeued work of %s", ", ".join(sorted(swept)))
            from scheduler.service import ResponseAction

            for node_id, requeued in sorted(swept.items()):
                node = session.get(Node, node_id)
                why = gate_reason(
                    node.attestation_status if node else None,
                    node.attestation_expires_at if node else None,
                    now,
                )
                self.service.record_response(
                    session,
                    ResponseAction(
                        action="response.quarantine",
                        subject=node_id,
                        reason=f"excluded by attestation: {why}",
                        actor=self.verifier_id,
                        source="attestation",
                        at=now,
                        detail={
                            "result_id": node.attestation_id if node else None,
                            "requeued": requeued,
                        },
                    ),
                )
        prune_nonces(session, now, retain_s=self.nonce_ttl_s)

    # -- reads ----------------------------------------------------------------------------
    def history(self, session: Session, node_id: str, limit: int) -> list[AttestationResultRow]:
        return list(
            session.exec(
                select(AttestationResultRow)
                .where(AttestationResultRow.node_id == node_id)
                .order_by(col(AttestationResultRow.issued_at).desc())
                .limit(limit)
            )
        )


def _checked_key(jwk: dict[str, Any]) -> VerificationKey:
    try:
        return verification_key_from_jwk(jwk)
    except TokenVerificationError as exc:
        raise EvidenceRefused(f"attestation key refused: {exc}", "key") from exc


def trust_local_agents(service: Service) -> str | None:
    """``cntrust up`` / ``cntrust demo``: reference values for this installation's own
    agents (their measurements as computed here), so the embedded deployment attests
    out of the box. Returns the id of the set added, or None if one matched already."""
    from scheduler.attest_agent import local_measurements

    layer = AttestationLayer.install(service)
    measured = local_measurements()
    now = service.clock()
    return service.write_sync(lambda s: ensure_local_refvalues(s, layer.refvalues, measured, now))
