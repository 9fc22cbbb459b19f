"""The node side of attestation (push mode): measure, sign an EAT, send it, every interval.

The agent keeps an attestation key (Ed25519, ``attestation.key`` mode 0600) and a random
UEID (``attestation.json``) in its data dir, binds them once at the scheduler
(``POST /v1/attestation/key``), then every ``interval_s`` (the scheduler's
``attestation_interval_s`` unless configured): fetch a nonce, measure, sign an EAT (RFC 9711)
carrying the nonce, the measurements and the accelerator claims, send it, and log the
result. The node opens every connection: it needs no inbound port.

Measurements (SHA-256, re-read from disk every round, so a changed file shows at once):

- ``agent``: the agent's code files (its modules' sources, name and content), i.e. the
  agent binary as it would run now;
- ``runtime``: the interpreter binary it runs on, with its version.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import platform
import secrets
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from identity import SigningKey
from identity.attestation import AcceleratorClaims, make_eat

log = logging.getLogger("cntrust.attest")

KEY_FILE = "attestation.key"
STATE_FILE = "attestation.json"
# the modules that make up the node agent (what "the agent binary" is for a Python agent)
AGENT_MODULES = (
    "scheduler.agent",
    "scheduler.attest_agent",
    "scheduler.runner",
    "scheduler.telemetry",
    "scheduler.cli.core_cmd",
)
DEFAULT_FIRMWARE = "1.0"
DEFAULT_DRIVER = "1.0"


class AttestError(Exception):
    """An attestation round failed (refused evidence, unreachable scheduler, no state)."""

    def __init__(self, message: str, status: int = 0, problem: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem


def _digest_file(h: Any, path: Path) -> None:
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)


def agent_digest(modules: Sequence[str] = AGENT_MODULES) -> bytes:
    """SHA-256 over (module name, source) of the agent's modules, as found on disk now."""
    h = hashlib.sha256(b"cntrust-agent-v1\0")
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise AttestError(f"agent module {name} not found")
        h.update(name.encode() + b"\0")
        _digest_file(h, Path(spec.origin))
        h.update(b"\0")
    return h.digest()


def runtime_digest() -> bytes:
    """SHA-256 over the interpreter binary and its version string."""
    h = hashlib.sha256(b"cntrust-runtime-v1\0")
    h.update(f"{platform.python_implementation()} {sys.version}".encode() + b"\0")
    _digest_file(h, Path(os.path.realpath(sys.executable)))
    return h.digest()


def local_measurements() -> dict[str, bytes]:
    """What this installation's agent measures (``cntrust up`` makes its reference set
    from these, so its own agents attest out of the box)."""
    return {"agent": agent_digest(), "runtime": runtime_digest()}


def accelerator_claims(accelerators: Sequence[Mapping[str, Any]]) -> list[AcceleratorClaims]:
    """The agent's configured accelerators as EAT claims (one per kind/model)."""
    out = []
    for acc in accelerators:
        out.append(
            AcceleratorClaims(
                kind=str(acc.get("kind", "gpu")).upper(),
                model=str(acc.get("model", "generic")),
                driver_version=str(acc.get("driver_version", DEFAULT_DRIVER)),
                firmware_version=str(acc.get("firmware_version", DEFAULT_FIRMWARE)),
            )
        )
    return out


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


class Attester:
    """One node's attestation client (keys in ``data_dir``)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        accelerators: Sequence[Mapping[str, Any]] = (),
        interval_s: float | None = None,
        measure: Callable[[], dict[str, bytes]] = local_measurements,
        tpm: bool | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.accelerators = accelerator_claims(accelerators)
        self.interval_s = interval_s
        self.measure = measure
        self.key, self.ueid = self._load_or_create()
        self.bound = False
        # a node enrolled with --tpm attests with TPM quotes (scheduler.attest_tpm)
        self.tpm: Any = None
        if tpm is None:
            from scheduler.attest_tpm import enrolled

            tpm = enrolled(data_dir)
        self.use_tpm = tpm
        self.last: dict[str, Any] | None = None

    def _load_or_create(self) -> tuple[SigningKey, bytes]:
        key_path, state_path = self.data_dir / KEY_FILE, self.data_dir / STATE_FILE
        if key_path.exists() and state_path.exists():
            state = json.loads(state_path.read_text())
            return SigningKey.from_pem(key_path.read_bytes()), bytes.fromhex(state["ueid"])
        key = SigningKey.generate("EdDSA")
        ueid = b"\x01" + secrets.token_bytes(32)
        _write_private(key_path, key.to_pem())
        _write_private(state_path, json.dumps({"ueid": ueid.hex()}).encode())
        return key, ueid

    async def bind(self, client: httpx.AsyncClient, headers: Mapping[str, str]) -> None:
        """Bind this node's key and UEID at the scheduler (idempotent)."""
        body = {"jwk": self.key.public().to_jwk(), "ueid": self.ueid.hex()}
        resp = await client.post("/v1/attestation/key", json=body, headers=dict(headers))
        _raise_for(resp, "binding the attestation key")
        self.bound = True

    async def attest_once(
        self, client: httpx.AsyncClient, headers: Mapping[str, str], node_id: str
    ) -> dict[str, Any]:
        """One round: nonce, measure, sign, send. Returns the scheduler's result.

        Raises AttestError (with the problem type) when the scheduler refuses.
        """
        if not self.bound and not self.use_tpm:
            await self.bind(client, headers)
        resp = await client.post("/v1/attestation/nonce", headers=dict(headers))
        _raise_for(resp, "fetching a nonce")
        issued = resp.json()
        if self.interval_s is None:
            self.interval_s = float(issued.get("interval_s", 30.0))
        nonce_b64 = str(issued["nonce"])
        nonce = _b64u_decode(nonce_b64)
        if self.use_tpm:
            body = await asyncio.to_thread(self._tpm_evidence, nonce, nonce_b64)
            return await self._send(client, headers, body)
        token = make_eat(
            self.key,
            node_id=node_id,
            verifier_id=str(issued["verifier_id"]),
            nonce=nonce,
            ueid=self.ueid,
            measurements=self.measure(),
            accelerators=self.accelerators,
            now=_now(),
        )
        body = {"type": "eat", "nonce": nonce_b64, "eat": token}
        return await self._send(client, headers, body)

    def _tpm_evidence(self, nonce: bytes, nonce_b64: str) -> dict[str, str]:
        from scheduler.attest_tpm import TpmQuoter

        if self.tpm is None:
            self.tpm = TpmQuoter.load(self.data_dir)
        return dict(self.tpm.evidence(nonce, nonce_b64, self.measure()))

    async def _send(
        self, client: httpx.AsyncClient, headers: Mapping[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        resp = await client.post("/v1/attestation/evidence", json=body, headers=dict(headers))
        _raise_for(resp, "sending evidence")
        self.last = dict(resp.json())
        return self.last

    async def loop(
        self,
        client: httpx.AsyncClient,
        headers: Callable[[], Mapping[str, str]],
        node_id: Callable[[], str | None],
        stop: asyncio.Event,
    ) -> None:
        """Attest now, then every interval until ``stop``; failures are logged and retried."""
        while not stop.is_set():
            wait = self.interval_s or 30.0
            current = node_id()
            if current is not None:
                try:
                    result = await self.attest_once(client, headers(), current)
                    log.info("attestation %s (%s)", result["status"], result["result_id"])
                    wait = self.interval_s or 30.0
                except AttestError as exc:
                    log.warning("attestation failed: %s", exc)
                    wait = min(self.interval_s or 30.0, 5.0) if exc.status != 404 else 60.0
                except httpx.HTTPError as exc:
                    log.warning("attestation failed: %s", type(exc).__name__)
                    wait = min(self.interval_s or 30.0, 5.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)


def _now() -> float:
    import time

    return time.time()


def _b64u_decode(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raise_for(resp: httpx.Response, doing: str) -> None:
    if resp.status_code < 400:
        return
    try:
        body = resp.json()
    except ValueError:
        body = {}
    problem = str(body.get("type", "")).rsplit("/", 1)[-1] or None
    detail = str(body.get("detail", resp.text[:200]))[:300]
    raise AttestError(f"{doing}: {resp.status_code} {problem}: {detail}", resp.status_code, problem)
