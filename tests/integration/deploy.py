"""Start a real ``cntrust up`` process for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx

from scheduler.local import free_port


class UpProcess:
    def __init__(
        self,
        data_dir: Path,
        nodes: int = 0,
        env: dict[str, str] | None = None,
        layers: bool = True,
        agent_auth: str = "mtls",
        extra_args: list[str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.nodes = nodes
        self.layers = layers
        self.agent_auth = agent_auth
        self.extra_args = list(extra_args or [])
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> UpProcess:
        cmd = [
            sys.executable, "-m", "scheduler.cli", "up", "--data-dir", str(self.data_dir),
            "--port", str(self.port), "--nodes", str(self.nodes),
            "--layers" if self.layers else "--no-layers",
            "--agent-auth", self.agent_auth, *self.extra_args,
        ]  # fmt: skip
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "up.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("cntrust up exited: " + self.log())
            try:
                if (
                    httpx.get(self.url + "/healthz", timeout=1).status_code == 200
                    and (self.data_dir / "admin.token").exists()
                ):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("cntrust up did not become healthy: " + self.log())

    def log(self) -> str:
        path = self.data_dir / "up.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def admin_token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    def token(self, role: str, name: str, ttl_s: int = 600) -> str:
        from identity import TokenIssuer
        from scheduler.keys import load_or_create_keyset
        from scheduler.service import ROLE_CLAIM

        issuer = TokenIssuer(load_or_create_keyset(self.data_dir), "cntrust", time.time)
        return issuer.issue(name, "cntrust-api", timedelta(seconds=ttl_s), {ROLE_CLAIM: role})

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                return -9
        return self.proc.returncode
