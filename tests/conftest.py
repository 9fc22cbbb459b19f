"""Shared fixtures: a database per test (SQLite file, or a fresh PostgreSQL schema when
CNTRUST_DATABASE_URL names a PostgreSQL server), a service, an API client, tokens."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextlib.contextmanager
def fresh_database(path: Path) -> Iterator[str]:
    """An empty database: a schema of its own on the PostgreSQL server that
    CNTRUST_DATABASE_URL names, else a SQLite file at ``path``."""
    base = os.environ.get("CNTRUST_DATABASE_URL")
    if not base or not base.startswith("postgresql"):
        yield f"sqlite:///{path}"
        return
    import sqlalchemy as sa

    schema = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for one test."""
    with fresh_database(tmp_path / "test.db") as url:
        yield url


@pytest.fixture
def second_database_url(tmp_path: Path) -> Iterator[str]:
    """Another fresh, empty database in the same test (a second deployment)."""
    with fresh_database(tmp_path / "second.db") as url:
        yield url


@pytest.fixture
def clock() -> FakeClock:
    import time

    return FakeClock(time.time())


@pytest.fixture
def service(tmp_path: Path, database_url: str, clock: FakeClock) -> Iterator[object]:
    from scheduler.service import Service
    from scheduler.settings import Settings

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        heartbeat_timeout_s=10,
        claim_wait_s=0.2,
        max_body_bytes=16 * 1024,
    )
    svc = Service(settings, clock=clock)
    yield svc
    svc.close()


@pytest.fixture
def api(service: object) -> Iterator[object]:
    from fastapi.testclient import TestClient

    from scheduler.app import create_app

    with TestClient(create_app(service)) as client:  # type: ignore[arg-type]
        yield client


def bearer(service: object, role: str, name: str, ttl_s: int = 600) -> dict[str, str]:
    token = service.issue_token(role, name, timedelta(seconds=ttl_s))  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {token}"}
