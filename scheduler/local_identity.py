"""Local deployments with the layers on: node agents enroll through join tokens and talk
to the scheduler over mTLS with their X.509-SVIDs.

For each local node, exactly as an operator would on a remote machine: the deployment
creates the node's operator (once) and a one-time join token; ``cntrust node enroll``
(a process of its own) makes the node key in the node's directory, sends the CSR over TLS
(verifying the scheduler with the deployment's trust bundle) and stores the SVID; the
agent then runs against the mTLS listener with ``--dir`` of the enrolled node.

A node directory that already holds an SVID valid for at least ``MIN_REMAINING_S`` more is
not enrolled again (a restarted deployment); otherwise it enrolls with a new token.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from identity.errors import IdentityError
from identity.pki import load_node_credentials
from scheduler.errors import Conflict
from scheduler.identity_layer import install as install_identity

if TYPE_CHECKING:
    from scheduler.local import NodeSpec
    from scheduler.service import Service

JOIN_TOKEN_TTL = timedelta(minutes=10)
MIN_REMAINING_S = 300.0
ENROLL_TIMEOUT_S = 60.0


def _enrolled(node_dir: Path, now: float) -> bool:
    try:
        creds = load_node_credentials(node_dir)
    except IdentityError:
        return False
    return creds.certificate.not_valid_after_utc.timestamp() - now > MIN_REMAINING_S


def enroll_local_nodes(
    service: Service,
    specs: Sequence[NodeSpec],
    node_dirs: Sequence[Path],
    server_url: str,
    ca_bundle: Path,
) -> None:
    """Enroll every node that needs it, in parallel processes. Raises RuntimeError with
    the enrollment's own message when one fails."""
    layer = install_identity(service)
    for operator in sorted({spec.operator for spec in specs}):
        with contextlib.suppress(Conflict):  # a restarted deployment: the operator exists
            service.write_sync(layer.add_operator(operator, "local-deployment"))
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    now = time.time()
    for spec, node_dir in zip(specs, node_dirs, strict=True):
        if _enrolled(node_dir, now):
            continue
        token, _record, write = layer.create_join_token(spec.operator, JOIN_TOKEN_TTL)
        service.write_sync(write)
        node_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "scheduler.cli", "node", "enroll",
            "--server", server_url,
            "--ca-bundle", str(ca_bundle),
            "--dir", str(node_dir),
            "--node-id", spec.name,
        ]  # fmt: skip
        procs.append(
            (
                spec.name,
                subprocess.Popen(  # the token in the environment, not in the process list
                    cmd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "CNTRUST_JOIN_TOKEN": token},
                ),
            )
        )
    failures = []
    for name, proc in procs:
        try:
            out, _ = proc.communicate(timeout=ENROLL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        if proc.returncode != 0:
            failures.append(f"{name}: {out.decode(errors='replace').strip()[-300:]}")
    if failures:
        raise RuntimeError("node enrollment failed: " + "; ".join(failures))
