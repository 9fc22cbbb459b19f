"""``cntrust demo``: one extra node enrolls through a software TPM and attests with quotes.

Where swtpm and tpm2-tools are installed, :func:`start` (before the deployment starts)
provisions a software TPM in ``<data dir>/swtpm`` with an EK certificate from a local CA
(swtpm_setup + swtpm_localca), starts ``swtpm socket`` on a free pair of loopback ports and
returns the EK CA file for the scheduler's ``tpm_enroll`` settings. :func:`run` (a demo
step) then enrolls ``node-tpm`` exactly as an operator would (``cntrust node enroll --tpm``:
EK certificate + AK, MakeCredential / ActivateCredential), starts its agent (mTLS with the
SVID; it finds the enrolled TPM in its dir and attests with TPM quotes) and checks that its
attestation is affirming from a ``tpm-quote``. :meth:`SoftTpm.stop` ends swtpm.

Where the binaries are absent the step says it was skipped; that is not a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scheduler.demo import Scenario

TPM_NODE = "node-tpm"
TPM_OPERATOR = "tpm-lab"
TOOLS = (
    "swtpm",
    "swtpm_setup",
    "swtpm_localca",
    "tpm2_createek",
    "tpm2_createak",
    "tpm2_activatecredential",
    "tpm2_quote",
    "tpm2_pcrextend",
    "tpm2_pcrreset",
)
START_TIMEOUT_S = 10.0
ATTEST_TIMEOUT_S = 30.0


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def free_port_pair(host: str = "127.0.0.1") -> int:
    """A free loopback port P with P+1 free too (swtpm's control channel is at P+1)."""
    for _ in range(50):
        with socket.socket() as first, socket.socket() as second:
            first.bind((host, 0))
            port = int(first.getsockname()[1])
            try:
                second.bind((host, port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no free pair of loopback ports for swtpm")


@dataclass
class SoftTpm:
    """A running swtpm provisioned with an EK certificate."""

    tcti: str
    ek_ca_file: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _provision(root: Path) -> Path:
    """swtpm_setup with an EK certificate from swtpm_localca; returns the TPM state dir."""
    state, ca = root / "state", root / "ca"
    state.mkdir(parents=True)
    ca.mkdir()
    (root / "localca.conf").write_text(
        f"statedir = {ca}\nsigningkey = {ca}/signkey.pem\n"
        f"issuercert = {ca}/issuercert.pem\ncertserial = {ca}/certserial\n"
    )
    (root / "localca.options").write_text(
        "--platform-manufacturer cntrust\n--platform-model demo\n"
    )
    (root / "setup.conf").write_text(
        f"create_certs_tool = {shutil.which('swtpm_localca')}\n"
        f"create_certs_tool_config = {root}/localca.conf\n"
        f"create_certs_tool_options = {root}/localca.options\n"
        "active_pcr_banks = sha256\n"
    )
    proc = subprocess.run(
        [
            *("swtpm_setup", "--tpm2", "--tpmstate", str(state), "--create-ek-cert"),
            *("--config", str(root / "setup.conf"), "--logfile", str(root / "setup.log")),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"swtpm_setup failed ({proc.returncode}); see {root / 'setup.log'}")
    ek_ca = root / "ek-ca.pem"
    ek_ca.write_bytes(
        (ca / "swtpm-localca-rootca-cert.pem").read_bytes() + (ca / "issuercert.pem").read_bytes()
    )
    return state


def start(data_dir: Path) -> SoftTpm | None:
    """Provision and start a software TPM in ``data_dir/swtpm``; None where swtpm or
    tpm2-tools are absent. Raises RuntimeError when swtpm is present but will not start."""
    if missing_tools():
        return None
    root = data_dir / "swtpm"
    state = _provision(root)
    host = "127.0.0.1"
    port = free_port_pair(host)
    log = open(root / "swtpm.log", "ab")  # noqa: SIM115 (owned by the process)
    proc = subprocess.Popen(
        [
            *("swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}"),
            *("--server", f"type=tcp,port={port},bindaddr={host}"),
            *("--ctrl", f"type=tcp,port={port + 1},bindaddr={host}"),
            *("--flags", "not-need-init,startup-clear"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    tpm = SoftTpm(f"swtpm:host={host},port={port}", root / "ek-ca.pem", proc)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            socket.create_connection((host, port + 1), timeout=0.5).close()
            return tpm
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                tpm.stop()
                raise RuntimeError(f"swtpm did not start; see {root / 'swtpm.log'}") from None
            time.sleep(0.05)


class PendingTpm:
    """A software TPM being provisioned and started in the background (swtpm_setup takes
    ~2 s), while the deployment starts and the other demo steps run. The EK CA file's
    path is known at once, for the scheduler's settings."""

    def __init__(self, data_dir: Path) -> None:
        self.ek_ca_file = data_dir / "swtpm" / "ek-ca.pem"
        self._tpm: SoftTpm | None = None
        self._error: str | None = None
        self._thread = threading.Thread(
            target=self._start, args=(data_dir,), name="demo-swtpm", daemon=True
        )
        self._thread.start()

    def _start(self, data_dir: Path) -> None:
        try:
            self._tpm = start(data_dir)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            self._error = str(exc)

    def wait(self) -> SoftTpm:
        """The running TPM; raises RuntimeError when it could not be started."""
        self._thread.join(START_TIMEOUT_S + 60)
        if self._tpm is None:
            raise RuntimeError(self._error or "swtpm did not start in time")
        return self._tpm

    def stop(self) -> None:
        self._thread.join(START_TIMEOUT_S + 60)
        if self._tpm is not None:
            self._tpm.stop()


def begin(data_dir: Path) -> PendingTpm | None:
    """Start provisioning a software TPM for the demo; None where the tools are absent."""
    return None if missing_tools() else PendingTpm(data_dir)


def _enroll(scenario: Scenario, tpm: SoftTpm, node_dir: Path) -> str | None:
    """``cntrust node enroll --tpm`` for node-tpm; None on success, else the message."""
    from scheduler.errors import Conflict
    from scheduler.identity_layer import install as install_identity
    from scheduler.local_identity import JOIN_TOKEN_TTL

    d = scenario.d
    assert d.service is not None and d.tls_url is not None
    layer = install_identity(d.service)
    with contextlib.suppress(Conflict):
        d.service.write_sync(layer.add_operator(TPM_OPERATOR, "demo"))
    token, _record, write = layer.create_join_token(TPM_OPERATOR, JOIN_TOKEN_TTL)
    d.service.write_sync(write)
    cmd = [
        sys.executable, "-m", "scheduler.cli", "node", "enroll", "--tpm",
        "--tcti", tpm.tcti,
        "--server", d.tls_url,
        "--ca-bundle", str(d.settings.data_dir / "tls" / "ca.pem"),
        "--dir", str(node_dir),
        "--node-id", TPM_NODE,
    ]  # fmt: skip
    proc = subprocess.run(  # the token in the environment, not in the process list
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CNTRUST_JOIN_TOKEN": token},
        check=False,
    )
    return None if proc.returncode == 0 else (proc.stdout + proc.stderr).strip()[-300:]


def _latest(scenario: Scenario) -> dict[str, Any] | None:
    from scheduler.client import ApiError

    try:
        body = scenario.admin.request("GET", f"/v1/attestation/nodes/{TPM_NODE}?limit=1")
    except ApiError:
        return None
    history = body.get("history") or []
    return dict(history[0]) if history else None


def run(scenario: Scenario, pending: PendingTpm | None) -> None:
    """The demo step (after the other steps, so the extra node changes none of them)."""
    from scheduler.local import NodeSpec

    out, d = scenario.console, scenario.d
    out.rule("[bold]a node enrolls through a software TPM and attests with quotes")
    if pending is None:
        missing = ", ".join(missing_tools())
        out.print(f"  skipped: swtpm/tpm2-tools not installed (missing: {missing})")
        return
    if d.tls_url is None or d.service is None or getattr(d.service, "attestation", None) is None:
        out.print("  skipped: the identity and attestation layers are not both on")
        return
    step = f"{TPM_NODE} enrolled via TPM (EK/AK, credential activation), attests with TPM quotes"
    try:
        tpm = pending.wait()
    except RuntimeError as exc:
        scenario.check(step, "affirming (tpm-quote)", f"software TPM failed: {exc}", False)
        return
    node_dir = d.settings.data_dir / "nodes" / TPM_NODE
    try:
        failure = _enroll(scenario, tpm, node_dir)
    except (OSError, subprocess.SubprocessError) as exc:
        failure = f"{type(exc).__name__}: {exc}"
    if failure is not None:
        scenario.check(step, "affirming (tpm-quote)", f"enrollment failed: {failure}", False)
        return
    d.start_agent(NodeSpec(name=TPM_NODE, cpu_cores=1.0, memory_mb=512, operator=TPM_OPERATOR))
    deadline = time.monotonic() + ATTEST_TIMEOUT_S
    latest = _latest(scenario)
    while (latest is None or latest["status"] != "affirming") and time.monotonic() < deadline:
        time.sleep(0.1)
        latest = _latest(scenario)
    observed = (
        f"{latest['status']} ({latest['evidence_type']}, result {latest['result_id'][:12]}…)"
        if latest is not None
        else f"no attestation result within {ATTEST_TIMEOUT_S:g} s"
    )
    ok = (
        latest is not None
        and latest["status"] == "affirming"
        and latest["evidence_type"] == "tpm-quote"
    )
    scenario.check(step, "affirming (tpm-quote)", observed, ok)
