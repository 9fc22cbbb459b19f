"""A local deployment: the scheduler API plus N node agents, on embedded defaults.

Used by ``cntrust up`` (until Ctrl-C / SIGTERM) and ``cntrust demo`` (scripted).
The API runs in this process (uvicorn in a thread); each agent is a real
process of its own with its own data dir, exactly as on a remote node.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from scheduler.app import create_app

if TYPE_CHECKING:
    from scheduler.provenance import ProvenanceLayer
from scheduler.service import Service
from scheduler.settings import Settings

ADMIN_TOKEN_TTL = timedelta(hours=12)
REGISTRATION_TTL = timedelta(minutes=15)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")


@dataclass
class NodeSpec:
    name: str
    cpu_cores: float = 4.0
    memory_mb: int = 4096
    region: str = "local"
    operator: str = "local"
    gpus: int = 0
    gpu_model: str = "generic"
    fpgas: int = 0


def default_nodes(count: int) -> list[NodeSpec]:
    """Heterogeneous local nodes: every third one has a GPU, every fifth an FPGA."""
    nodes = []
    for i in range(count):
        nodes.append(
            NodeSpec(
                name=f"node-{i + 1}",
                region="east" if i % 2 == 0 else "west",
                gpus=1 if i % 3 == 2 else 0,
                gpu_model="sim-a100" if i % 3 == 2 else "generic",
                fpgas=1 if i % 5 == 4 else 0,
            )
        )
    return nodes


@dataclass
class Deployment:
    settings: Settings
    host: str = "127.0.0.1"
    port: int = 8440
    nodes: list[NodeSpec] = field(default_factory=list)
    quiet_agents: bool = True
    service: Service | None = None
    provenance: ProvenanceLayer | None = None
    anchoring: bool = True
    # anchor on an external EVM chain instead of the embedded one (scheduler/chain_external.py)
    chain_rpc: str | None = None
    chain_key: Path | None = None
    chain_contract: str | None = None
    # False: the bare reference scheduler (built-in role rules, no identity, trust or
    # provenance layer) — the "layers off" side of the overhead benchmarks
    layers: bool = True
    server: uvicorn.Server | None = None
    # with the layers on, agents talk mTLS on this port (0: a free one)
    tls_port: int = 0
    tls_url: str | None = None
    # layers on: agents enroll and use their SVIDs (False: bearer tokens, for comparisons)
    agent_mtls: bool = True
    thread: threading.Thread | None = None
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def admin_token_path(self) -> Path:
        return self.settings.data_dir / "admin.token"

    def start(self) -> None:
        # agents hold SVIDs only where the identity layer is on
        self.agent_mtls = self.agent_mtls and self.layers and self.settings.layer_on("identity")
        if self.layers:
            self.service = Service(self.settings)
        if self.layers and self.settings.layer_on("provenance"):
            from scheduler.provenance import ProvenanceLayer

            # every finished task's record enters the log in the transaction that finishes
            # it; checkpoints are anchored on the embedded chain in the data dir
            prov_options: dict[str, Any] = {"anchoring": self.anchoring}
            if self.chain_rpc is not None:
                from scheduler.chain_external import ChainConfigError, external_anchorer

                if self.chain_key is None:
                    raise RuntimeError("--chain-rpc needs --chain-key")
                chain_dir = self.settings.data_dir / "chain-rpc"
                try:
                    prov_options["anchorer"] = external_anchorer(
                        self.chain_rpc, self.chain_key, self.chain_contract, chain_dir
                    )
                except ChainConfigError as exc:
                    raise RuntimeError(str(exc)) from exc
                prov_options.update(anchoring=True, chain_dir=chain_dir)
            self.provenance = ProvenanceLayer.for_service(self.service, **prov_options)
            self.provenance.start()
        elif not self.layers:
            from scheduler.authz import BuiltinAuthorizer

            self.service = Service(self.settings, authorizer=BuiltinAuthorizer())
        app = create_app(self.service, layers=self.layers)
        if self.layers and self.settings.layer_on("attestation"):
            # the local agents' own measurements are the reference values
            from scheduler.attestation import trust_local_agents

            trust_local_agents(self.service)
        if self.layers and self.settings.layer_on("identity"):
            # plain HTTP for the CLI, mTLS for the node agents
            self.server = self._mtls_server(app)
        else:
            config = uvicorn.Config(
                app, host=self.host, port=self.port, log_level="warning", access_log=False
            )
            self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="cntrust-api", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start on {self.url} (port in use?)")
            time.sleep(0.02)
        write_secret(
            self.admin_token_path, self.service.issue_token("admin", "admin", ADMIN_TOKEN_TTL)
        )
        if self.layers and self.agent_mtls and self.nodes:
            from scheduler.local_identity import enroll_local_nodes

            assert self.tls_url is not None
            dirs = [self.settings.data_dir / "nodes" / spec.name for spec in self.nodes]
            enroll_local_nodes(
                self.service, self.nodes, dirs, self.tls_url, self.settings.data_dir / "tls/ca.pem"
            )
        for spec in self.nodes:
            self.start_agent(spec)

    def _mtls_server(self, app: object) -> uvicorn.Server:
        from scheduler.identity_layer import install as install_identity
        from scheduler.tls import MtlsServer, ServerTls, bind_socket, mtls_config, server_hosts

        assert self.service is not None
        try:
            tls_socket = bind_socket(self.host, self.tls_port)
        except OSError as exc:
            raise RuntimeError(f"cannot listen on {self.host}:{self.tls_port}: {exc}") from exc
        self.tls_url = f"https://{self.host}:{tls_socket.getsockname()[1]}"
        config = mtls_config(app, self.host, self.port, log_level="warning", access_log=False)
        return MtlsServer(
            config,
            tls_socket=tls_socket,
            tls=ServerTls(self.settings.data_dir / "tls"),
            ca=install_identity(self.service).ca,
            hosts=[*server_hosts(self.host), *self.settings.tls_server_names],
        )

    def registration_token(self, name: str) -> str:
        assert self.service is not None
        return self.service.issue_token("node-register", name, REGISTRATION_TTL)

    def start_agent(self, spec: NodeSpec) -> subprocess.Popen[bytes]:
        node_dir = self.settings.data_dir / "nodes" / spec.name
        # layers on: the enrolled node's SVID authenticates (mTLS); off: a bearer token
        auth = (
            ["--server", self.tls_url]
            if self.layers and self.agent_mtls and self.tls_url
            else ["--server", self.url, "--token", self.registration_token(spec.name)]
        )
        cmd = [
            sys.executable, "-m", "scheduler.cli", "node", "agent",
            *auth,
            "--dir", str(node_dir),
            "--cpu", str(spec.cpu_cores),
            "--memory", str(spec.memory_mb),
            "--region", spec.region,
            "--operator", spec.operator,
        ]  # fmt: skip
        if spec.gpus:
            cmd += ["--gpu", str(spec.gpus), "--gpu-model", spec.gpu_model]
        if spec.fpgas:
            cmd += ["--fpga", str(spec.fpgas)]
        node_dir.mkdir(parents=True, exist_ok=True)
        log = open(node_dir / "agent.log", "ab")  # noqa: SIM115 (owned by the process)
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.agents[spec.name] = proc
        return proc

    def kill_agent(self, name: str) -> None:
        proc = self.agents.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.agents.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.agents.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.agents.clear()
        if self.server is not None:
            notifier = getattr(getattr(self.server.config.app, "state", None), "notifier", None)
            if notifier is not None:
                notifier.close()  # long polls answer now instead of at their wait_s
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(15)
        if self.service is not None:
            if self.provenance is not None:
                self.provenance.stop()
            self.service.close()
