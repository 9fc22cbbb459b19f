"""A service whose body limit admits a whole exported policy set (the default pack's export
is ~21 kB; the shared fixture's limit is 16 kB, the production default 64 kB).

A test may change its settings by indirect parametrization, e.g. :data:`GATE_OFF`: the
attestation gate off, so Cedar's own attestation rules are what excludes a node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeClock


@pytest.fixture
def service(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str, clock: FakeClock
) -> Iterator[Any]:
    from scheduler.service import Service
    from scheduler.settings import Settings

    overrides: dict[str, Any] = dict(getattr(request, "param", None) or {})
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        heartbeat_timeout_s=overrides.pop("heartbeat_timeout_s", 10),
        claim_wait_s=0.2,
        max_body_bytes=64 * 1024,
        **overrides,
    )
    svc = Service(settings, clock=clock)
    yield svc
    svc.close()


GATE_OFF = pytest.mark.parametrize(
    "service", [{"attestation_gate": False}], indirect=True, ids=["gate-off"]
)
"""Run the test on a service without the attestation gate (nodes do not attest)."""
