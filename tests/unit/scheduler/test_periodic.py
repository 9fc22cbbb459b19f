"""scheduler.periodic.Periodic: a pass on its own thread that survives a failing tick."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import pytest

from scheduler.periodic import Periodic


def test_ticks_survive_a_failure_and_stop_with_the_service(caplog) -> None:
    ticks: list[int] = []
    third = threading.Event()

    def tick() -> None:
        ticks.append(len(ticks))
        if len(ticks) == 1:
            raise RuntimeError("first pass fails")
        if len(ticks) >= 3:
            third.set()

    service = SimpleNamespace(close_hooks=[])
    loop = Periodic("test-loop", tick, service)
    with caplog.at_level(logging.ERROR, logger="scheduler.periodic"):
        loop.start(0.01)
        loop.start(0.01)  # a second start is a no-op: one thread
        assert third.wait(5)
    assert loop.running and service.close_hooks == [loop.stop]
    assert "test-loop: pass failed" in caplog.text and "first pass fails" in caplog.text
    service.close_hooks[0]()
    assert not loop.running
    count = len(ticks)
    threading.Event().wait(0.05)
    assert len(ticks) == count  # stopped: no more passes


@pytest.mark.parametrize("interval", [0, -1.0, float("nan")])
def test_an_interval_that_is_not_positive_is_refused(interval: float) -> None:
    loop = Periodic("bad", lambda: None, SimpleNamespace(close_hooks=[]))
    with pytest.raises(ValueError, match="interval_s must be > 0"):
        loop.start(interval)
    assert not loop.running


def test_tail_turns_skipped_ids_into_gaps_and_fills_them() -> None:
    from scheduler.periodic import advance_tail

    gaps: dict[int, float] = {}
    cursor = advance_tail(0, gaps, 3, 1.0, 100)  # ids 1 and 2 not committed yet
    assert cursor == 3 and gaps == {1: 1.0, 2: 1.0}
    cursor = advance_tail(cursor, gaps, 2, 2.0, 100)  # a late commit fills its gap
    assert cursor == 3 and gaps == {1: 1.0}
    cursor = advance_tail(cursor, gaps, 10, 3.0, 5)  # at most 5 gaps: the oldest ids go
    assert cursor == 10 and sorted(gaps) == [5, 6, 7, 8, 9]
