"""The node agent: registers, heartbeats, pulls tasks over HTTP(S), runs them, reports.

Pull only: the node opens every connection, so it needs no open inbound port.
State (node id, session token) lives in the agent's own data dir (mode 0600),
so several agents on one machine work side by side. Results are kept until
the scheduler acknowledged them; a lost connection is retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from scheduler.agent_identity import AgentIdentity, RotatingTransport, renewal_loop
from scheduler.agent_signing import KeyFileError, ResultSigner
from scheduler.element_agent import ElementReporter
from scheduler.runner import RunResult, TaskSpec, run_task
from scheduler.telemetry import Telemetry

log = logging.getLogger("cntrust.agent")

REPORT_COALESCE_S = 0.01


@dataclass
class AgentConfig:
    server: str
    data_dir: Path
    registration_token: str | None = None
    cpu_cores: float = 1.0
    memory_mb: int = 1024
    accelerators: list[dict[str, Any]] = field(default_factory=list)
    region: str = "local"
    operator: str = "local"
    slots: int | None = None
    claim_wait_s: float = 10.0
    ca_bundle: str | None = None
    # present the enrolled node's X.509-SVID from data_dir (mTLS, no bearer token)
    mtls: bool = False
    # push-mode attestation (scheduler.attest_agent); None: the scheduler's interval
    attest: bool = True
    attest_interval_s: float | None = None


class AgentError(Exception):
    """The agent cannot work: refused registration or no saved state."""


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.state_path = config.data_dir / "agent.json"
        self.scratch = config.data_dir / "scratch"
        self.node_id: str | None = None
        self.token: str | None = None
        self.running: set[str] = set()
        self.results: asyncio.Queue[RunResult] = asyncio.Queue()
        self.completed = 0
        self.heartbeat_s = 2.0
        self.telemetry = Telemetry("cntrust-agent")
        self._stop = asyncio.Event()
        # the scheduler places within the node's capacity; slots only bound the agent itself
        slots = config.slots or 64
        self._slots = asyncio.Semaphore(slots)
        self._free = slots
        self._tasks: set[asyncio.Task[None]] = set()
        self.identity: AgentIdentity | None = None
        if config.mtls:
            self.identity = AgentIdentity.load(config.data_dir)
            self.node_id = self.identity.node_id
        self.signer: ResultSigner | None = None  # signs results (scheduler/agent_signing.py)
        self.attempts: dict[str, int] = {}
        from scheduler.attest_agent import agent_digest

        # signed element telemetry, including drift of the agent's own code between
        # attestation rounds
        self.element = ElementReporter(
            config.data_dir, self.scratch, measure=lambda: agent_digest().hex()
        )

    # -- state -------------------------------------------------------------
    def _load_state(self) -> None:
        if self.state_path.exists():
            data = json.loads(self.state_path.read_text())
            self.node_id, self.token = data["node_id"], data["token"]

    def _save_state(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.config.data_dir, 0o700)
        tmp = self.state_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"node_id": self.node_id, "token": self.token}, fh)
        os.replace(tmp, self.state_path)

    def _auth(self) -> dict[str, str]:
        if self.identity is not None:  # the TLS client certificate authenticates
            return {}
        return {"Authorization": f"Bearer {self.token}"}

    # -- protocol ------------------------------------------------------------
    async def register(self, client: httpx.AsyncClient) -> None:
        if self.config.registration_token is None and self.identity is None:
            self._load_state()
            if self.token is None:
                raise AgentError("no registration token and no saved agent state")
            return
        body = {
            "cpu_cores": self.config.cpu_cores,
            "memory_mb": self.config.memory_mb,
            "accelerators": self.config.accelerators,
            "region": self.config.region,
            "operator": self.config.operator,
        }
        headers = {"Authorization": f"Bearer {self.config.registration_token}"}
        if self.identity is not None:
            body["operator"] = self.identity.operator
            headers = {}
        resp = await client.post("/v1/nodes/register", json=body, headers=headers)
        if resp.status_code != 201:
            raise AgentError(f"registration refused: {resp.status_code} {_detail(resp)}")
        data = resp.json()
        self.node_id, self.token = data["node_id"], data["token"]
        self.heartbeat_s = float(data["heartbeat_interval_s"])
        self._save_state()

    async def _heartbeat_loop(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            try:
                resp = await client.post(
                    "/v1/agent/heartbeat",
                    json={"running": sorted(self.running)},
                    headers=self._auth(),
                )
                if resp.status_code == 200:
                    new_token = resp.json().get("token")
                    if new_token:
                        self.token = new_token
                        self._save_state()
                else:
                    log.warning("heartbeat refused: %s %s", resp.status_code, _detail(resp))
            except httpx.HTTPError as exc:
                log.warning("heartbeat failed: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.heartbeat_s)

    async def _claim_loop(self, client: httpx.AsyncClient) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            await self._slots.acquire()
            self._slots.release()
            try:
                resp = await client.post(
                    "/v1/agent/claim",
                    json={"max_tasks": max(1, self._free), "wait_s": self.config.claim_wait_s},
                    headers=self._auth(),
                    timeout=self.config.claim_wait_s + 10,
                )
            except httpx.HTTPError as exc:
                log.warning("claim failed: %s", type(exc).__name__)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if resp.status_code != 200:
                log.warning("claim refused: %s %s", resp.status_code, _detail(resp))
                await self._sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.2
            for item in resp.json():
                await self._start(item)

    async def _start(self, item: dict[str, Any]) -> None:
        await self._slots.acquire()
        self._free -= 1
        self.running.add(item["id"])
        self.attempts[item["id"]] = int(item.get("attempt", 0))
        task = asyncio.create_task(self._execute(item))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, item: dict[str, Any]) -> None:
        spec = TaskSpec(
            id=item["id"],
            command=list(item["command"]),
            cpu=float(item["cpu"]),
            memory_mb=int(item["memory_mb"]),
            timeout_s=float(item["timeout_s"]),
        )
        self.element.task_started(spec.id, spec.cpu, spec.memory_mb)
        try:
            with self.telemetry.span(
                "task.run", item.get("trace_parent"), task_id=spec.id, node_id=self.node_id
            ) as span:
                result = await asyncio.to_thread(run_task, spec, self.scratch)
                span.set_attribute("cntrust.exit_code", result.exit_code)
            await self.results.put(result)
        finally:
            self.element.task_ended(spec.id)
            self._free += 1
            self._slots.release()

    async def _report_loop(self, client: httpx.AsyncClient) -> None:
        pending: list[RunResult] = []
        backoff = 0.2
        while not (self._stop.is_set() and not pending and self.results.empty()):
            if not pending:
                try:
                    pending.append(await asyncio.wait_for(self.results.get(), timeout=0.5))
                except TimeoutError:
                    continue
            # results of concurrent tasks arrive close together: send them in one report
            deadline = asyncio.get_running_loop().time() + REPORT_COALESCE_S
            while len(pending) < 128:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0 and self.results.empty():
                    break
                try:
                    pending.append(await asyncio.wait_for(self.results.get(), max(remaining, 0)))
                except TimeoutError:
                    break
            body = {
                # report and take the next tasks in the same round trip
                "claim_max": max(0, self._free),
                "results": [
                    {
                        "task_id": r.task_id,
                        "exit_code": max(-255, min(255, r.exit_code)),
                        "output_digest": r.output_digest,
                        "usage": r.usage,
                        "error": r.error,
                        "started_at": r.started_at,
                        "finished_at": r.finished_at,
                        "node_signature": self._sign(r),
                    }
                    for r in pending
                ],
            }
            try:
                resp = await client.post("/v1/agent/exchange", json=body, headers=self._auth())
            except httpx.HTTPError as exc:
                log.warning("report failed: %s; will retry", type(exc).__name__)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.2
            if resp.status_code not in (200, 404, 409):
                log.warning("report refused: %s %s", resp.status_code, _detail(resp))
                await self._sleep(1.0)
                continue
            for r in pending:
                self.running.discard(r.task_id)
                self.attempts.pop(r.task_id, None)
                self.completed += 1
            pending = []
            if resp.status_code == 200:
                for item in resp.json().get("tasks", []):
                    await self._start(item)

    def _sign(self, r: RunResult) -> str | None:
        if self.signer is None:
            return None
        return self.signer.sign(
            task_id=r.task_id,
            attempt=self.attempts.get(r.task_id, 0),
            exit_code=max(-255, min(255, r.exit_code)),
            output_digest=r.output_digest,
            usage=r.usage,
            started_at=r.started_at,
            finished_at=r.finished_at,
        )

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds * (0.5 + random.random()))

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        verify: bool | str = self.config.ca_bundle or True
        limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
        transport = RotatingTransport(self.identity) if self.identity is not None else None
        async with httpx.AsyncClient(
            base_url=self.config.server,
            timeout=30,
            limits=limits,
            verify=verify,
            transport=transport,
        ) as client:
            await self.register(client)
            try:
                self.signer = ResultSigner.load_or_create(self.config.data_dir)
                await self.signer.register(client, self._auth())
            except KeyFileError as exc:
                raise AgentError(str(exc)) from exc
            log.info("node %s registered with %s", self.node_id, self.config.server)
            loops = [
                asyncio.create_task(self._heartbeat_loop(client)),
                asyncio.create_task(self._claim_loop(client)),
                asyncio.create_task(self._report_loop(client)),
                asyncio.create_task(
                    self.element.run(client, lambda: self.node_id, self._auth, self._stop)
                ),
            ]
            if self.identity is not None and transport is not None:
                loops.append(
                    asyncio.create_task(renewal_loop(self.identity, client, transport, self._stop))
                )
            if self.config.attest:
                from scheduler.attest_agent import Attester

                attester = Attester(
                    self.config.data_dir,
                    accelerators=self.config.accelerators,
                    interval_s=self.config.attest_interval_s,
                )
                loops.append(
                    asyncio.create_task(
                        attester.loop(client, self._auth, lambda: self.node_id, self._stop)
                    )
                )
            await self._stop.wait()
            loops[1].cancel()
            await asyncio.gather(loops[0], *loops[2:], return_exceptions=True)
            with contextlib.suppress(asyncio.CancelledError):
                await loops[1]


def _detail(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("detail", ""))[:200]
    except (ValueError, AttributeError):
        return resp.text[:200]
