"""RotatingTransport closes every transport it made, retired ones in their grace included."""

from __future__ import annotations

import asyncio
from typing import Any

from scheduler.agent_identity import RotatingTransport


class Recorder:
    def __init__(self, name: str, closed: list[str]) -> None:
        self.name, self.closed = name, closed

    async def aclose(self) -> None:
        self.closed.append(self.name)


class Counting(RotatingTransport):
    def __init__(self, closed: list[str], grace_s: float) -> None:
        self.closed = closed
        self.made = 0
        super().__init__(identity=None, grace_s=grace_s)  # type: ignore[arg-type]

    def _make(self) -> Any:
        self.made += 1
        return Recorder(f"t{self.made}", self.closed)


def test_close_during_the_grace_period_closes_the_retired_transport() -> None:
    closed: list[str] = []

    async def run() -> None:
        transport = Counting(closed, grace_s=60)
        transport.rotate()  # t1 retired, still in its grace period
        await transport.aclose()

    asyncio.run(run())
    assert sorted(closed) == ["t1", "t2"]


def test_a_retired_transport_closes_after_its_grace_and_only_once() -> None:
    closed: list[str] = []

    async def run() -> None:
        transport = Counting(closed, grace_s=0.01)
        transport.rotate()
        await asyncio.sleep(0.1)
        assert closed == ["t1"]
        await transport.aclose()

    asyncio.run(run())
    assert closed == ["t1", "t2"]
