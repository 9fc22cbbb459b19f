"""A long-polling claim answers at once when the server is stopping (it does not hold the
shutdown for its whole wait)."""

from __future__ import annotations

import threading
import time

from fastapi.testclient import TestClient

from scheduler.app import create_app
from scheduler.service import Service
from scheduler.settings import Settings
from tests.unit.scheduler.helpers import add_node


def test_a_stopping_server_answers_long_polls_now(tmp_path, database_url) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        claim_wait_s=30,
    )
    service = Service(settings)
    try:
        app = create_app(service)
        with TestClient(app) as api:
            node = add_node(api, service, "n1")
            answered: list[tuple[int, float]] = []

            def poll() -> None:
                started = time.monotonic()
                resp = api.post("/v1/agent/claim", json={"wait_s": 30}, headers=node)
                answered.append((resp.status_code, time.monotonic() - started))

            poller = threading.Thread(target=poll)
            poller.start()
            time.sleep(0.5)
            assert not answered  # still waiting for work
            app.state.notifier.close()
            poller.join(10)
            assert answered and answered[0][0] == 200
            assert answered[0][1] < 10  # not the 30 s it asked to wait
    finally:
        service.close()
