"""Helpers for the replication tests: a fake node agent that can lie about its results, and
a way to make a node high-trust through the trust layer's own intake."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import trust
from tests.unit.scheduler.helpers import add_node


def honest_digest(command: list[str]) -> str:
    """What an honest node reports for a command: a deterministic function of it (the fake
    stands in for running a deterministic program)."""
    return "sha256:" + hashlib.sha256(json.dumps(command).encode()).hexdigest()


class FakeAgent:
    """A node agent over the API that does not run anything: it claims its tasks and reports
    exit code 0 with the honest digest, or (``lie=True``) a forged digest, through the same
    ``/v1/agent/claim`` and ``/v1/agent/exchange`` routes the real agent uses."""

    def __init__(
        self, api: Any, service: Any, name: str, *, operator: str, lie: bool = False, **spec: Any
    ) -> None:
        self.api = api
        self.name = name
        self.lie = lie
        self.headers = add_node(api, service, name, operator=operator, **spec)
        self.ran: list[str] = []
        self.refused: list[dict[str, Any]] = []
        self.claims_refused = 0

    def digest(self, command: list[str]) -> str:
        if self.lie:
            return "sha256:" + hashlib.sha256(b"forged:" + json.dumps(command).encode()).hexdigest()
        return honest_digest(command)

    def step(self) -> int:
        """Claim this node's placed tasks and report a result for each. Returns how many."""
        resp = self.api.post(
            "/v1/agent/claim", json={"max_tasks": 64, "wait_s": 0}, headers=self.headers
        )
        if resp.status_code == 403:  # quarantined (or revoked): the node receives nothing
            assert resp.json()["policy_ids"] == ["node.unfit-receives-nothing"], resp.text
            self.claims_refused += 1
            return 0
        assert resp.status_code == 200, resp.text
        tasks = resp.json()
        if not tasks:
            return 0
        results = [
            {"task_id": t["id"], "exit_code": 0, "output_digest": self.digest(t["command"])}
            for t in tasks
        ]
        resp = self.api.post(
            "/v1/agent/exchange", json={"results": results, "claim_max": 0}, headers=self.headers
        )
        assert resp.status_code == 200, resp.text
        for outcome in resp.json()["outcomes"]:
            if outcome["accepted"]:
                self.ran.append(outcome["task_id"])
            else:
                self.refused.append(outcome)
        return len(tasks)


def drain(agents: list[FakeAgent], rounds: int = 50) -> None:
    """Let every agent work until a whole round finds nothing to do."""
    for _ in range(rounds):
        if sum(agent.step() for agent in agents) == 0:
            return
    raise AssertionError(f"work was still being placed after {rounds} rounds")


def make_trusted(service: Any, node_id: str, count: int = 10) -> None:
    """Give a node ``count`` affirming attestation results (each +1 evidence mass): ten make
    it high-trust (score ~0.92, uncertainty ~0.17) under the default engine configuration."""
    layer = service.trust
    for i in range(count):
        ev = trust.from_attestation_result(
            evidence_id=f"att:{node_id}:{i}",
            node_id=node_id,
            status="affirming",
            observed_at=service.clock(),
            verifier="verifier",
        )
        assert service.write_sync(lambda s, ev=ev: layer.record(s, ev)).accepted
