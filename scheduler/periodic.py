"""What the replicas' sync loops (trust evidence, incident feed) share: a pass that runs
every few seconds on a daemon thread of its own, stopped with the service, and the
bookkeeping of a table tailed by id (cursor and gaps)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import or_

log = logging.getLogger(__name__)


class Periodic:
    """Run ``tick()`` every ``interval_s`` on a daemon thread named ``name`` until
    :meth:`stop`, which :meth:`start` registers on ``service.close_hooks``.

    A tick that raises is logged with its traceback and retried on the next tick: one bad
    pass never stops the loop."""

    def __init__(self, name: str, tick: Callable[[], None], service: Any) -> None:
        self.name = name
        self.tick = tick
        self.service = service
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, interval_s: float) -> None:
        """Start the thread (once). Raises ValueError for an interval that is not > 0."""
        if not interval_s > 0:
            raise ValueError("interval_s must be > 0")
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, args=(interval_s,), name=self.name, daemon=True
        )
        self._thread.start()
        hooks = getattr(self.service, "close_hooks", None)
        if isinstance(hooks, list):
            hooks.append(self.stop)

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.tick()
            except Exception:  # a failed pass is retried on the next tick
                log.exception("%s: pass failed", self.name)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


def advance_tail(cursor: int, gaps: dict[int, float], row_id: int, now: float, limit: int) -> int:
    """Account for a row read from a shared table tailed by id; returns the new cursor.

    Ids are handed out at insert and a transaction may commit after a later one, so the
    ids skipped between the cursor and ``row_id`` become gaps (``gaps``: id -> ``now``, the
    monotonic time first missed; read again until their row appears or they time out);
    ``row_id`` itself is no longer one. At most ``limit`` gaps are kept, the oldest ids
    dropped first."""
    gaps.pop(row_id, None)
    if row_id <= cursor:
        return cursor
    for missing in range(max(cursor + 1, row_id - limit), row_id):
        gaps[missing] = now
    while len(gaps) > limit:
        del gaps[min(gaps)]
    return row_id


def expire_gaps(gaps: dict[int, float], now: float, timeout_s: float) -> None:
    """Forget the gaps first missed more than ``timeout_s`` ago: their transactions rolled
    back (a failed write leaves its id unused)."""
    for gap, first in list(gaps.items()):
        if now - first > timeout_s:
            del gaps[gap]


def tail_where(column: Any, cursor: int, gaps: Iterable[int]) -> Any:
    """The rows of a tailed table still to read: ids above ``cursor``, and the gaps."""
    missing = sorted(gaps)
    condition = column > cursor
    return or_(condition, column.in_(missing)) if missing else condition
