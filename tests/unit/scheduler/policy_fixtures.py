"""A service whose body limit admits a whole exported policy set (the default pack's export
is ~21 kB; the shared fixture's limit is 16 kB, the production default 64 kB)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeClock


@pytest.fixture
def service(tmp_path: Path, database_url: str, clock: FakeClock) -> Iterator[Any]:
    from scheduler.service import Service
    from scheduler.settings import Settings

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        heartbeat_timeout_s=10,
        claim_wait_s=0.2,
        max_body_bytes=64 * 1024,
    )
    svc = Service(settings, clock=clock)
    yield svc
    svc.close()
