"""Node-side TPM access through tpm2-tools (the agent's half of TPM attestation).

Drives ``tpm2_*`` commands by subprocess against one TCTI (e.g.
``swtpm:host=127.0.0.1,port=2321`` or ``device:/dev/tpmrm0``): read the EK and
its certificate, create an AK under the EK, answer a MakeCredential
challenge with TPM2_ActivateCredential, extend PCRs and take quotes.

Invariants:
- Binaries are looked up only in the injected ``bin_dir``; the child gets a
  minimal environment (the TCTI and nothing else from the parent).
- Every failure raises :class:`TpmToolError` with the command, exit code and
  stderr; a timed-out command is killed.
- Transient objects and sessions are flushed after each command that loads
  them, so a TPM without a resource manager does not run out of slots.
- Files live in the injected ``workdir`` (mode 0700), including ``ak.ctx``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from identity.attestation.errors import TpmToolError

EK_RSA_PERSISTENT_HANDLE = 0x81010001
EK_RSA_CERT_NV_INDEX = 0x01C00002
DEFAULT_TIMEOUT_S = 30.0
OWNER_PERSISTENT_FIRST = 0x81000000
OWNER_PERSISTENT_LAST = 0x817FFFFF
RESETTABLE_PCRS = frozenset({16, 23})


def _check_persistent(handle: int) -> None:
    if not OWNER_PERSISTENT_FIRST <= handle <= OWNER_PERSISTENT_LAST:
        raise ValueError("persistent AK handle must be in 0x81000000..0x817FFFFF")


class Tpm2Tools:
    """A TPM reached through tpm2-tools; one instance per TPM and work directory."""

    def __init__(
        self,
        tcti: str,
        workdir: Path,
        *,
        bin_dir: Path = Path("/usr/bin"),
        timeout_s: float = DEFAULT_TIMEOUT_S,
        ek_algorithm: str = "rsa",
    ) -> None:
        if ek_algorithm not in ("rsa", "ecc"):
            raise ValueError("ek_algorithm must be 'rsa' or 'ecc'")
        self.tcti = tcti
        self.ek_algorithm = ek_algorithm
        self.workdir = workdir
        self.bin_dir = bin_dir
        self.timeout_s = timeout_s
        workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._ek_ref: str | None = None
        self._ak_ref = "ak.ctx"

    def _run(self, tool: str, *args: str) -> bytes:
        command = [str(self.bin_dir / tool), *args]
        env = {"TPM2TOOLS_TCTI": self.tcti, "TSS2_LOG": "all+NONE"}
        try:
            proc = subprocess.run(
                command,
                env=env,
                cwd=self.workdir,
                capture_output=True,
                timeout=self.timeout_s,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TpmToolError(
                f"{tool} could not run: {exc}", command=tool, returncode=-1, stderr=str(exc)
            ) from exc
        if proc.returncode != 0:
            stderr = proc.stderr.decode(errors="replace")[-2000:]
            raise TpmToolError(
                f"{tool} failed ({proc.returncode}): {stderr.strip()}",
                command=tool,
                returncode=proc.returncode,
                stderr=stderr,
            )
        return proc.stdout

    def _flush_transient(self) -> None:
        self._run("tpm2_flushcontext", "-t")

    def _persistent_handles(self) -> set[int]:
        out = self._run("tpm2_getcap", "handles-persistent").decode()
        return {int(line.strip("- \t"), 16) for line in out.splitlines() if line.strip()}

    def _ek(self) -> str:
        """The EK: the persistent RSA EK if provisioned, else one made from the default
        template (RSA 2048 or ECC P-256) and kept as a saved context."""
        if self._ek_ref is None:
            rsa = self.ek_algorithm == "rsa"
            if rsa and EK_RSA_PERSISTENT_HANDLE in self._persistent_handles():
                self._ek_ref = hex(EK_RSA_PERSISTENT_HANDLE)
            else:
                self._run("tpm2_createek", "-c", "ek.ctx", "-G", self.ek_algorithm, "-u", "ek.pub")
                self._flush_transient()
                self._ek_ref = "ek.ctx"
        return self._ek_ref

    def ek_public(self) -> bytes:
        """The EK's TPM2B_PUBLIC."""
        self._run("tpm2_readpublic", "-c", self._ek(), "-o", "ek.pub", "-f", "tss")
        self._flush_transient()
        return (self.workdir / "ek.pub").read_bytes()

    def ek_certificate(self, nv_index: int = EK_RSA_CERT_NV_INDEX) -> bytes | None:
        """The EK certificate from its NV index, or None where none is provisioned."""
        listed = self._run("tpm2_getcap", "handles-nv-index").decode()
        if f"0x{nv_index:x}" not in listed.lower():
            return None
        return self._run("tpm2_nvread", f"0x{nv_index:x}")

    def create_ak(self, *, persistent_handle: int | None = None) -> bytes:
        """Create an ECDSA P-256 / SHA-256 AK under the EK; returns its TPM2B_PUBLIC.

        Without ``persistent_handle`` the AK lives in ``ak.ctx``, a saved context
        that a TPM reset (reboot) invalidates; with it, the AK is made persistent
        (TPM2_EvictControl, owner hierarchy) and survives reboots.
        """
        if persistent_handle is not None:
            _check_persistent(persistent_handle)
        self._run(
            "tpm2_createak",
            *("-C", self._ek(), "-c", "ak.ctx", "-G", "ecc", "-g", "sha256", "-s", "ecdsa"),
            *("-u", "ak.pub", "-n", "ak.name"),
        )
        self._flush_transient()
        if persistent_handle is not None:
            self._run("tpm2_evictcontrol", "-C", "o", "-c", "ak.ctx", hex(persistent_handle))
            self._flush_transient()
            self._ak_ref = hex(persistent_handle)
        return (self.workdir / "ak.pub").read_bytes()

    def use_persistent_ak(self, handle: int) -> bytes:
        """Use an AK made persistent earlier (e.g. after a reboot); returns its TPM2B_PUBLIC."""
        _check_persistent(handle)
        self._run("tpm2_readpublic", "-c", hex(handle), "-o", "ak.pub", "-f", "tss")
        self._ak_ref = hex(handle)
        return (self.workdir / "ak.pub").read_bytes()

    def activate_credential(self, challenge: bytes) -> bytes:
        """TPM2_ActivateCredential on a MakeCredential challenge (tpm2-tools file format)."""
        (self.workdir / "challenge.bin").write_bytes(challenge)
        self._run("tpm2_startauthsession", "--policy-session", "-S", "session.ctx")
        try:
            self._run("tpm2_policysecret", "-S", "session.ctx", "-c", "e")
            self._run(
                "tpm2_activatecredential",
                *("-c", self._ak_ref, "-C", self._ek(), "-i", "challenge.bin"),
                *("-o", "activated.bin", "-P", "session:session.ctx"),
            )
        finally:
            self._run("tpm2_flushcontext", "-s")
            self._flush_transient()
        return (self.workdir / "activated.bin").read_bytes()

    def extend_pcr(self, pcr: int, digest: bytes) -> None:
        """TPM2_PCR_Extend of one SHA-256 digest into ``pcr``."""
        if not 0 <= pcr < 24 or len(digest) != 32:
            raise ValueError("pcr must be 0..23 and digest 32 bytes")
        self._run("tpm2_pcrextend", f"{pcr}:sha256={digest.hex()}")

    def reset_pcr(self, pcr: int) -> None:
        """TPM2_PCR_Reset of a resettable PCR (16 debug, 23 application at locality 0)."""
        if pcr not in RESETTABLE_PCRS:
            raise ValueError(f"pcr must be one of {sorted(RESETTABLE_PCRS)}")
        self._run("tpm2_pcrreset", str(pcr))

    def quote(self, nonce: bytes, pcrs: Sequence[int]) -> tuple[bytes, bytes]:
        """TPM2_Quote of SHA-256 ``pcrs`` with ``nonce`` as qualifying data.

        Returns (TPMS_ATTEST, TPMT_SIGNATURE) bytes.
        """
        if not pcrs or not 0 < len(nonce) <= 64:
            raise ValueError("quote needs PCRs and a 1..64 byte nonce")
        selection = "sha256:" + ",".join(str(p) for p in sorted(set(pcrs)))
        self._run(
            "tpm2_quote",
            *("-c", self._ak_ref, "-l", selection, "-q", nonce.hex(), "-g", "sha256"),
            *("-m", "quote.msg", "-s", "quote.sig"),
        )
        self._flush_transient()
        return (self.workdir / "quote.msg").read_bytes(), (self.workdir / "quote.sig").read_bytes()
