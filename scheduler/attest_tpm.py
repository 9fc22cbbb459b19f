"""The node side of TPM quote attestation (push mode), for nodes enrolled with ``--tpm``.

``cntrust node enroll --tpm`` leaves the AK's saved context in ``<dir>/tpm`` and writes
``<dir>/tpm/tpm.json`` (the TCTI the TPM is reached with). Each attestation round then:

1. resets the application PCR (``MEASUREMENT_PCR``, 23: resettable at locality 0, so each
   round's log starts from the PCR's reset value of 32 zero bytes);
2. extends the agent's and runtime's digests into it (``tpm2_pcrextend``), in the order of
   the measurement log it will send (components ``agent`` and ``runtime``, the names the
   installation's reference values use);
3. takes ``tpm2_quote`` over that PCR with the scheduler's nonce as qualifying data, signed
   by the enrolled AK.

The scheduler verifies the signature with the AK recorded at enrollment, the nonce, and the
quoted PCR digest against the replayed log, then appraises the log's digests against the
reference values (:func:`identity.attestation.appraise_quote`).

Invariants: every TPM failure or unusable state raises :class:`TpmAttestError` (an
AttestError) naming the check; tpm2-tools are looked up on PATH only once, at load.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from identity.attestation import MeasurementLog, Tpm2Tools, TpmToolError
from identity.attestation.errors import EvidenceVerificationError
from scheduler.attest_agent import AttestError

TPM_DIR = "tpm"
STATE_FILE = "tpm.json"
MEASUREMENT_PCR = 23
MAX_STATE_BYTES = 4096


class TpmAttestError(AttestError):
    """The node cannot attest with its TPM; ``reason`` names the check
    (``tpm_state``, ``tpm_tools``, ``tpm``, ``measurement``)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def write_state(directory: Path, tcti: str) -> None:
    """Record how the enrolled TPM is reached (called by ``node enroll --tpm``)."""
    path = directory / TPM_DIR / STATE_FILE
    path.write_text(json.dumps({"tcti": tcti, "pcr": MEASUREMENT_PCR}))
    path.chmod(0o600)


def enrolled(directory: Path) -> bool:
    """True when ``directory`` holds a TPM enrollment (the agent then attests with quotes)."""
    return (directory / TPM_DIR / STATE_FILE).exists()


@dataclass
class TpmQuoter:
    """Quotes from the TPM a node enrolled with."""

    tpm: Tpm2Tools
    pcr: int = MEASUREMENT_PCR

    @classmethod
    def load(cls, directory: Path) -> TpmQuoter:
        """The enrolled TPM of ``directory``; raises TpmAttestError."""
        workdir = directory / TPM_DIR
        path = workdir / STATE_FILE
        try:
            if path.stat().st_size > MAX_STATE_BYTES:
                raise ValueError("state file too large")
            state = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise TpmAttestError(f"no usable TPM state in {path}: {exc}", "tpm_state") from exc
        tcti, pcr = (state.get("tcti"), state.get("pcr")) if isinstance(state, dict) else (0, 0)
        if not isinstance(tcti, str) or not tcti or type(pcr) is not int or pcr not in (16, 23):
            raise TpmAttestError(f"TPM state {path} needs a tcti and pcr 16 or 23", "tpm_state")
        if not (workdir / "ak.ctx").exists():
            raise TpmAttestError(f"no AK context in {workdir} (enroll with --tpm)", "tpm_state")
        tool = shutil.which("tpm2_quote")
        if tool is None:
            raise TpmAttestError("tpm2-tools are not installed (tpm2_quote)", "tpm_tools")
        return cls(Tpm2Tools(tcti, workdir, bin_dir=Path(tool).parent), pcr)

    def measure_into_pcr(self, measurements: Mapping[str, bytes]) -> MeasurementLog:
        """Reset the PCR and extend ``measurements`` (name -> SHA-256) into it, in name
        order; returns the log the scheduler replays. Raises TpmAttestError."""
        try:
            log = MeasurementLog.of((self.pcr, d, n) for n, d in sorted(measurements.items()))
        except EvidenceVerificationError as exc:
            raise TpmAttestError(f"measurement refused: {exc}", "measurement") from exc
        try:
            self.tpm.reset_pcr(self.pcr)
            for event in log.events:
                self.tpm.extend_pcr(event.pcr, event.digest)
        except TpmToolError as exc:
            raise TpmAttestError(f"cannot extend PCR {self.pcr}: {exc}", "tpm") from exc
        return log

    def quote(self, nonce: bytes) -> tuple[bytes, bytes]:
        """TPM2_Quote over the measurement PCR with ``nonce``; raises TpmAttestError."""
        try:
            return self.tpm.quote(nonce, [self.pcr])
        except (TpmToolError, ValueError) as exc:
            raise TpmAttestError(f"cannot quote: {exc}", "tpm") from exc

    def evidence(
        self, nonce: bytes, nonce_b64: str, measurements: Mapping[str, bytes]
    ) -> dict[str, str]:
        """One round's evidence body (measure, extend, quote) for /v1/attestation/evidence."""
        log = self.measure_into_pcr(measurements)
        quote, signature = self.quote(nonce)
        return evidence_body(nonce_b64, quote, signature, log)


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def evidence_body(
    nonce_b64: str, quote: bytes, signature: bytes, log: MeasurementLog
) -> dict[str, str]:
    return {
        "type": "tpm-quote",
        "nonce": nonce_b64,
        "quote": b64u(quote),
        "signature": b64u(signature),
        "measurement_log": log.to_json().decode(),
    }
