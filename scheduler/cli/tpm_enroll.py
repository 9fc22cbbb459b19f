"""The node side of TPM-rooted enrollment (``cntrust node enroll --tpm``).

Reads the EK (and its certificate where the TPM has one provisioned), creates an AK under
the EK (its context stays in ``<dir>/tpm``, mode 0700, for the quotes the node will sign
later), sends both with the CSR, answers the scheduler's MakeCredential challenge with
TPM2_ActivateCredential, and returns the enrollment result. Every TPM failure ends the
command with a message and a non-zero exit.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

from scheduler.cli.common import fail
from scheduler.client import Client

TPM_DIR = "tpm"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def enroll_with_tpm(
    client: Client, body: dict[str, str], tcti: str, directory: Path
) -> dict[str, Any]:
    """Raises ApiError (the caller turns it into a message)."""
    from identity.attestation import Tpm2Tools, TpmToolError

    tool = shutil.which("tpm2_activatecredential")
    if tool is None:
        fail("tpm2-tools are not installed (Debian package tpm2-tools)", 1)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    tpm = Tpm2Tools(tcti, directory / TPM_DIR, bin_dir=Path(tool).parent)
    try:
        ek_public = tpm.ek_public()
        ek_certificate = tpm.ek_certificate()
        ak_public = tpm.create_ak()
    except TpmToolError as exc:
        fail(f"cannot use the TPM ({tcti}): {exc}", 1)
    begin = client.request(
        "POST",
        "/v1/enroll/tpm",
        json={
            **body,
            "ek_public": _b64(ek_public),
            "ek_certificate": _b64(ek_certificate) if ek_certificate is not None else None,
            "ak_public": _b64(ak_public),
        },
    )
    try:
        activated = tpm.activate_credential(base64.b64decode(begin["credential_blob"]))
    except TpmToolError as exc:
        fail(f"the TPM could not activate the credential: {exc}", 1)
    answer = {"join_token": body["join_token"], "activated_credential": _b64(activated)}
    result = dict(client.request("POST", f"/v1/enroll/tpm/{begin['challenge_id']}", json=answer))
    from scheduler.attest_tpm import write_state

    write_state(directory, tcti)  # the agent attests with quotes from this AK from now on
    return result
